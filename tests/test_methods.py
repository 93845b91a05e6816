"""Methods against a scripted LLM: prompts per stage, and token cost summed over calls and samples."""

from s2d.methods.cot import CoT
from s2d.methods.rar import RaR1, RaR2
from s2d.methods.system1 import System1
from s2d.scoring import score
from s2d.tasks.coin_flip import CoinFlip
from s2d.tasks.last_letter import LastLetter
from conftest import ScriptedLLM
from s2d.types import Sampling


def test_system1_is_one_call_on_the_task_prompt():
    task = LastLetter(n_train=2, n_eval=2)
    llm = ScriptedLLM(lambda p, k: 'The answer is "rb".')
    traces = System1().run(task.eval_examples(), task, llm, Sampling(n=1))
    assert len(llm.calls) == 1 and llm.calls[0][1] == [e.input for e in task.eval_examples()]
    assert [t.completion_tokens for t in traces] == [4, 4]
    assert all(t.answer == "rb" for t in traces)


def test_rar2_two_calls_sum_over_calls_and_samples():
    task = CoinFlip(n_train=3, n_eval=3)
    exs = task.eval_examples()

    def reply(prompt, k):
        if "Rewrite the question above" in prompt:
            return "Is the coin heads up after the flips described?"  # 9 tokens
        assert prompt.endswith("Answer the Yes or No question.")
        return "Yes it is."  # 3 tokens

    llm = ScriptedLLM(reply)
    traces = RaR2().run(exs, task, llm, Sampling(n=4, temperature=0.7))
    assert [c[0] for c in llm.calls] == ["rephrase", "respond"]
    assert llm.calls[0][2].n == 4 and llm.calls[1][2].n == 1
    assert len(llm.calls[1][1]) == 3 * 4  # every rephrasing answered once
    assert len(traces) == 12
    assert all([c.stage for c in t.calls] == ["rephrase", "respond"] for t in traces)
    assert all(t.completion_tokens == 9 + 3 for t in traces)
    assert all(t.answer == "yes" for t in traces)
    _, m = score(exs, traces, task, "system2")
    # the paper's #Tokens: per input, summed over every call of every sample
    # the paper's #Tokens: per input, summed over both calls of all 4 samples
    assert m["system2/tokens_per_input"] == 4 * (9 + 3)
    assert m["system2/n"] == 3


def test_rar1_and_cot_prompts_carry_their_instruction():
    task = LastLetter(n_train=1, n_eval=1)
    llm = ScriptedLLM(lambda p, k: "Final answer: ab")
    t = RaR1().run(task.eval_examples(), task, llm, Sampling())[0]
    assert t.calls[0].prompt.startswith(task.eval_examples()[0].input) and "Restate the question" in t.calls[0].prompt
    t = CoT().run(task.eval_examples(), task, llm, Sampling())[0]
    assert "step by step" in t.calls[0].prompt and t.answer == "ab"


def test_score_counts_parse_failures_as_wrong():
    task = LastLetter(n_train=1, n_eval=3)
    exs = task.eval_examples()
    replies = iter([f'The answer is "{exs[0].gold}".', "I cannot tell.", 'The answer is "zz".'])
    traces = System1().run(exs, task, ScriptedLLM(lambda p, k: next(replies)), Sampling())
    rows, m = score(exs, traces, task, "system1")
    assert [r["correct"] for r in rows] == [True, False, False]
    assert m["system1/accuracy"] == 1 / 3
    assert m["system1/parse_failures"] == 1
    assert m["system1/tokens_per_input"] == (4 + 3 + 4) / 3


def test_prompt_override_reaches_the_model():
    task = CoinFlip(n_train=1, n_eval=2)
    llm = ScriptedLLM(lambda p, k: "Yes.")
    RaR2(prompts={"rephrase": "Q: {question}{note} -- improve this.", "respond": "{question}\nAnswer: {suffix}"}).run(
        task.eval_examples(), task, llm, Sampling(n=1))
    first, second = llm.calls[0][1], llm.calls[1][1]
    ex = task.eval_examples()[0]
    assert first[0] == f"Q: {task.prompt(ex)} {task.rephrase_note} -- improve this."
    assert second[0] == f"Yes.\nAnswer: {task.respond_suffix}"
    t = CoT(prompts={"instruction": "Think, then say Final answer."}).run(task.eval_examples(), task, llm, Sampling())[0]
    assert t.calls[0].prompt == f"{task.prompt(ex)}\n\nThink, then say Final answer."


def test_single_call_seeds_each_example_and_passes_truncation_to_extract():
    from s2d.types import request_seed

    seen = []

    class Task(LastLetter):
        def extract(self, text, truncated=False):
            seen.append(truncated)
            return super().extract(text, truncated=truncated)

    class Cut(ScriptedLLM):
        def generate(self, prompts, sampling, desc="", seeds=None):
            out = super().generate(prompts, sampling, desc, seeds)
            for comps in out:
                comps[0].truncated = True
            return out

    task = Task(n_train=1, n_eval=2)
    llm = Cut(lambda p, k: 'The answer is "ab".')
    traces = System1().run(task.eval_examples(), task, llm, Sampling(n=2, temperature=1.0, seed=4))
    assert llm.seeds[0] == [request_seed(4, e.id, "answer") for e in task.eval_examples()]
    assert [c.truncated for t in traces for c in t.calls] == [True, False, True, False]
    assert seen == [True, False, True, False]


def test_bsm_branch_sees_the_question_only():
    from s2d.methods.bsm import BranchSolveMerge
    from s2d.types import Example

    ex = Example("p1", "x", meta={"query": "Why is the sky blue?", "a": "REPLY-ONE text", "b": "REPLY-TWO text"})

    class Judge(LastLetter):
        name = "oasst2"

        def extract(self, text, truncated=False):
            return "A" if "[[A]]" in text else None

    llm = ScriptedLLM(lambda p, k: "1. Accuracy: is it right" if "List the criteria" in p
                      else "Scores: Assistant A: 4, Assistant B: 2" if "one criterion" in p else "[[A]]")
    t = BranchSolveMerge().run([ex], Judge(n_train=1, n_eval=1), llm, Sampling(n=2, temperature=0.7, seed=1))[0]
    branch = llm.calls[0][1][0]
    assert "Why is the sky blue?" in branch[-1]["content"]
    assert all("REPLY-ONE" not in m["content"] and "REPLY-TWO" not in m["content"] for m in branch)
    assert "REPLY-ONE" in llm.calls[1][1][0][-1]["content"]  # the solve calls do read both replies
    assert t.answer == "A"
    # every later call has its own seed: solve per (sample, criterion), merge per sample
    assert len(set(llm.seeds[1])) == 2 and len(set(llm.seeds[2])) == 2
