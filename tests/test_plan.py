"""python -m s2d.plan: a pilot of the cell at a small size, scaled to the run's, against the run itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, compose_config, tiny_overrides
from s2d import plan as planner
from s2d.artifacts import read_json


def test_a_planned_tiny_cell_then_run_falls_within_the_plan(tiny_model_dir, tmp_path, caplog):
    from s2d.run import run

    # Chunks of 3 inputs: the pilot's 6 already fill one batch of the run, so plan.fill_batch leaves them at 6.
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task.n_train=12", "task.n_eval=12", "plan.n_train=6",
                               "plan.n_eval=6", "generate.max_new_tokens=24", "plan.z=3", "generate.chunk_size=3",
                               "eval.chunk_size=3",
                               "filter=none", "target=full_response")
    cfg = compose_config(*overrides)
    p = planner.plan(cfg)
    assert p["pilot"] == {"train": 6, "eval": 6} and p["run"] == {"train": 12, "eval": 12}
    text = planner.render(p)
    assert "generate" in text and "total" in text

    # Planning again reuses the pilot: the same figures, nothing run.
    assert planner.plan(cfg, run_pilot_if_needed=False)["total"] == p["total"]

    caplog.set_level("INFO", logger="s2d.plan")
    run(compose_config(*overrides))
    assert any(r.getMessage().startswith("plan: this cell ~") for r in caplog.records)
    run_json = read_json(tmp_path / "run" / "run.json")
    gen = read_json(tmp_path / "run" / "generate" / "DONE.json")
    train = read_json(tmp_path / "run" / "train" / "DONE.json")
    assert p["stages"]["train"]["pairs"][0] == 12 and p["stages"]["train"]["steps"][0] == train["steps"] == 1
    est, low, high = p["stages"]["generate"]["tokens"]
    assert low <= gen["completion_tokens"] <= high, (gen["completion_tokens"], p["stages"]["generate"])
    for system in ("system1", "system2", "distilled"):
        info = read_json(tmp_path / "run" / f"evaluate-{system}" / "DONE.json")
        actual = info[f"{system}/tokens_per_input"] * info[f"{system}/n"]
        _, low, high = p["stages"][system]["tokens"]
        assert low <= actual <= high, (system, actual, p["stages"][system])
    assert set(run_json["stages"]) >= {"generate", "filter", "train", "evaluate/system1"}

    # After the run, every one of its stages is cached: the plan says so and costs nothing.
    again = planner.plan(compose_config(*overrides))
    assert set(again["stages"]) == {"generate", "filter", "train", "system1", "system2", "distilled"}
    assert all(s.get("cached") for s in again["stages"].values()), again["stages"]
    assert again["total"]["tokens"] == (0, 0, 0)


def test_a_pilot_as_large_as_the_run_shows_its_measured_stages_and_the_run_reuses_them(tiny_model_dir, tmp_path,
                                                                                       caplog):
    from s2d.run import run

    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task.n_train=6", "task.n_eval=6", "plan.n_train=6",
                               "plan.n_eval=6", "generate.max_new_tokens=16", "filter=none", "target=full_response")
    p = planner.plan(compose_config(*overrides))
    assert p["pilot"] == {"train": 6, "eval": 6}
    gen = p["stages"]["generate"]
    assert not gen.get("cached") and gen["tokens"][0] == gen["tokens"][1] == gen["tokens"][2]
    assert "the pilot ran it at the run's size" in planner.render(p)
    caplog.set_level("INFO", logger="s2d.stages")
    run(compose_config(*overrides))
    done = read_json(tmp_path / "run" / "generate" / "DONE.json")
    assert done["completion_tokens"] == gen["tokens"][0]
    reused = {r.getMessage().split(":")[0] for r in caplog.records if ": reusing " in r.getMessage()}
    assert {"generate", "filter", "train"} <= reused  # the pilot's own stages


def test_the_routed_range_reaches_down_to_routing_none(tiny_model_dir, tmp_path):
    # The pilot's distilled model (few pairs) routes more than the run's will: the coin-flip row's pilot routed
    # every input, the run none. The range's low end is what routing costs when nothing is routed.
    overrides = tiny_overrides(tiny_model_dir, tmp_path, "task.n_train=12", "task.n_eval=12", "plan.n_train=4",
                               "plan.n_eval=4", "generate.chunk_size=2", "eval.chunk_size=2", "filter=none",
                               "target=full_response", "eval.systems=[system1,system2,distilled,routed]")
    p = planner.plan(compose_config(*overrides))
    routed, distilled = p["stages"]["routed"], p["stages"]["distilled"]
    assert routed["tokens"][1] <= distilled["tokens"][1] <= distilled["tokens"][0] <= routed["tokens"][2]
    assert "down to none routed" in planner.render(p)


def test_the_pilot_fills_one_batch_of_the_run(tiny_model_dir, tmp_path):
    base = [*tiny_overrides(tiny_model_dir, tmp_path), "task.n_train=500", "task.n_eval=300", "generate.n=4",
            "generate.chunk_size=32", "eval.chunk_size=40", "backend.batch_size=64"]
    pilot = planner.pilot_config(compose_config(*base))
    # 32 inputs × 4 samples, at most 64 sequences a batch: 16 inputs; eval: 40 items × 1, at most 64: 40.
    assert (pilot.task.n_train, pilot.task.n_eval) == (16, 40)
    pilot = planner.pilot_config(compose_config(*base, "task.n_train=10", "task.n_eval=20"))
    assert (pilot.task.n_train, pilot.task.n_eval) == (10, 20)  # never more than the run's own
    pilot = planner.pilot_config(compose_config(*base, "plan.fill_batch=false"))
    assert (pilot.task.n_train, pilot.task.n_eval) == (12, 12)  # plan.n_train, plan.n_eval as given


def test_the_spread_gives_the_range():
    est, low, high = planner.spread([10.0, 20.0, 30.0], 100, z=2.0)
    assert est == pytest.approx(2000.0)
    se = 10.0 / 3 ** 0.5
    assert (low, high) == (pytest.approx(100 * (20 - 2 * se)), pytest.approx(100 * (20 + 2 * se)))
    assert planner.spread([5.0], 10, z=2.0) == (50.0, 50.0, 50.0)


def test_a_step_is_timed_per_pair_so_a_part_filled_pilot_batch_does_not_shrink_the_run():
    # The pilot's 12 pairs in batches of 8 make epochs of one full step and one of 4; the run fills every batch.
    steps = [{"seconds": 9.0, "pairs": 8}] + [{"seconds": 0.5 + 0.3 * b, "pairs": b} for b in (4, 8, 4, 8, 4)]
    fixed, (per_pair, low, high) = planner.step_model(steps)
    assert fixed == pytest.approx(0.5) and per_pair == pytest.approx(0.3) and low == pytest.approx(0.3)
    assert high == pytest.approx((9.0 - 0.5) / 8)  # the warm-up step widens the range only
    # The old estimate, the median step, would say 1.7 s for a full step of 8; per pair it is 2.9 s.
    assert fixed + 8 * per_pair == pytest.approx(2.9)
    # One batch size only: all of a step's time per pair. Noise that fits a negative fixed cost falls back too.
    assert planner.step_model([{"seconds": 2.0, "pairs": 4}] * 3) == (0.0, (0.5, 0.5, 0.5))
    fixed, (per_pair, _, _) = planner.step_model([{"seconds": 1.0, "pairs": 8}, {"seconds": 3.0, "pairs": 2},
                                                   {"seconds": 1.0, "pairs": 8}])
    assert fixed == 0.0 and per_pair == pytest.approx((3.0 / 2 + 1.0 / 8) / 2)  # the median of 1.5 and 0.125


def test_a_throughput_table_sets_the_rate_between_measured_batches(tmp_path):
    path = tmp_path / "tp.yaml"
    path.write_text("generate:\n  - {model: smollm2-135m, backend: hf, batch: 8, tokens_per_s: 100}\n"
                    "  - {model: smollm2-135m, backend: hf, batch: 24, tokens_per_s: 300}\n")
    cfg = compose_config("model=smollm2-135m", "backend.batch_size=128")
    table = planner.load_throughput(str(path))
    assert planner.table_rate(table, cfg, 16) == pytest.approx(200.0)
    assert planner.table_rate(table, cfg, 4) == pytest.approx(100.0)
    assert planner.table_rate(table, cfg, 400) == pytest.approx(300.0)
    other = compose_config("model=qwen2.5-7b-instruct")
    with pytest.raises(ValueError, match="no generate row for model qwen2.5-7b-instruct"):
        planner.table_rate(table, other, 16)
    bad = tmp_path / "bad.yaml"
    bad.write_text("generate:\n  - {model: smollm2-135m, batch: 8}\n")
    with pytest.raises(ValueError, match="lacks"):
        planner.load_throughput(str(bad))


def test_a_model_that_does_not_fit_is_reported_instead_of_estimated(tmp_path):
    cfg = compose_config("model=llama-2-70b-chat", f"paths.cache_dir={tmp_path}", "paths.output_dir=" + str(tmp_path))
    p = planner.plan(cfg)
    assert "does not fit" in p["does_not_fit"] and "stages" not in p
    assert "does not fit, so no estimate" in planner.render(p)


def test_a_sweep_total_counts_a_stage_two_cells_share_once():
    shared = {"tokens": (100, 80, 120), "seconds": (10, 8, 12), "bytes": (5, 4, 6), "key": "abc"}
    own = {"tokens": (50, 40, 60), "seconds": (5, 4, 6), "bytes": (1, 1, 1), "key": "def"}
    train = {"seconds": (3, 2, 4), "bytes": (7, 7, 7)}
    cells = [{"stages": {"system1": shared, "generate": own, "train": train}},
             {"stages": {"system1": dict(shared), "generate": {**own, "key": "ghi"}, "train": train}},
             {"cell": {}, "does_not_fit": "too big"}]
    total = planner.sweep_total(cells)
    assert total["tokens"] == (200, 160, 240)
    assert total["seconds"] == (26, 20, 32)
    assert total["bytes"] == (21, 20, 22)


def test_a_long_stage_logs_elapsed_against_its_estimate(caplog):
    import time

    caplog.set_level("INFO", logger="s2d.plan")
    with planner.progress("generate", {"generate": (0.5, 0.4, 0.6)}, every_s=0.1):
        time.sleep(0.35)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("generate: ")]
    assert 2 <= len(lines) <= 4 and "elapsed, estimate 0s [0s–1s]" in lines[0]
    caplog.clear()
    with planner.progress("generate", {"generate": (0.05, 0.04, 0.06)}, every_s=0.1):  # shorter than a beat
        time.sleep(0.25)
    with planner.progress("train", {"generate": (5, 4, 6)}, every_s=0.1):  # no estimate for the stage
        time.sleep(0.25)
    assert not caplog.records


def test_a_stand_in_pilot_with_a_throughput_table_plans_another_machine(tiny_model_dir, tmp_path, monkeypatch):
    """The run's model (an 8B model on vLLM) is not here: the pilot runs on a stand-in, and time comes from the
    user's table, one engine start added where the run starts one."""
    real_compose = planner.compose_option
    monkeypatch.setattr(planner, "compose_option",
                        lambda overrides: real_compose([*overrides, f"model.name_or_path={tiny_model_dir}"]))
    table = tmp_path / "tp.yaml"
    table.write_text("generate:\n  - {model: llama-3.1-8b-instruct, backend: vllm, batch: 8, tokens_per_s: 40}\n"
                     "  - {model: llama-3.1-8b-instruct, backend: vllm, batch: 128, tokens_per_s: 200}\n"
                     "train:\n  - {model: llama-3.1-8b-instruct, batch_size: 4, seconds_per_step: 3.0}\n"
                     "load_s: {llama-3.1-8b-instruct: 50}\n")
    overrides = [o for o in tiny_overrides(tiny_model_dir, tmp_path) if not o.startswith("model")]
    cfg = compose_config(*overrides, "model=llama-3.1-8b-instruct", "backend=vllm", "train=lora",
                         "train/trainer=gpu", "train.dtype=bfloat16", "plan.model=smollm2-135m", "plan.n_train=4",
                         "plan.n_eval=4", f"plan.throughput={table}", "filter=none", "target=full_response",
                         "task.n_train=64", "task.n_eval=40")
    p = planner.plan(cfg)
    assert p["stand_in"] == "smollm2-135m" and p["cell"]["model"] == "llama-3.1-8b-instruct"
    gen = p["stages"]["generate"]
    # 64 inputs × 2 samples = 128 sequences in flight: the table's 200 tokens/s, and the engine's start.
    assert gen["seconds"][0] == pytest.approx(50 + gen["tokens"][0] / 200)
    # 40 sequences: 40 + (40 - 8) / 120 × 160 = 82.7 tokens/s; training released the model, so it starts again.
    s1, s2 = p["stages"]["system1"], p["stages"]["system2"]
    assert s1["seconds"][0] == pytest.approx(50 + s1["tokens"][0] / (40 + 32 / 120 * 160))
    assert s2["seconds"][0] == pytest.approx(s2["tokens"][0] / (40 + 32 / 120 * 160))
    train = p["stages"]["train"]  # 64 pairs (all kept), batch 2: 32 steps per epoch, max_steps=1 → 1 step
    assert train["steps"][0] == 1 and train["seconds_per_step"] == pytest.approx(3.0 * 2 / 4)
    text = planner.render(p)
    assert "stand-in model smollm2-135m" in text and "throughput table" in text

    # Without a train row the stand-in's CPU steps would time the wrong model: training time is left out, and said.
    table.write_text(table.read_text().split("train:")[0] + "load_s: {llama-3.1-8b-instruct: 50}\n")
    p = planner.plan(compose_config(*overrides, "model=llama-3.1-8b-instruct", "backend=vllm", "train=lora",
                                    "train/trainer=gpu", "train.dtype=bfloat16", "plan.model=smollm2-135m",
                                    "plan.n_train=4", "plan.n_eval=4", f"plan.throughput={table}", "filter=none",
                                    "target=full_response", "task.n_train=64", "task.n_eval=40"),
                     run_pilot_if_needed=False)
    assert "seconds" not in p["stages"]["train"] and p["stages"]["train"]["steps"][0] == 1
    text = planner.render(p)
    assert "time not estimated: no train row for llama-3.1-8b-instruct" in text and "(time without train)" in text


def test_wide_figures_keep_their_columns_apart():
    p = {"cell": {"method": "cot", "task": "coin_flip", "filter": "self_consistency", "model": "organism",
                  "backend": "hf"},
         "pilot": {"train": 12, "eval": 12}, "run": {"train": 20000, "eval": 1330}, "peak_rss_gib": 9.0,
         "stages": {"generate": {"units": 20000, "tokens": (12345678.0, 11234567.0, 13456789.0),
                                 "seconds": (86400.0, 80000.0, 90000.0), "bytes": (6.6e8,) * 3},
                    "train": {"pairs": (15000.0, 12000.0, 18000.0), "steps": (2813, 2250, 3375),
                              "seconds": (3600.0, 3000.0, 9000.0), "bytes": (5.4e8,) * 3}},
         "total": {"tokens": (12345678.0, 11234567.0, 13456789.0), "seconds": (90000.0, 83000.0, 99000.0),
                   "bytes": (1.2e9,) * 3}}
    train_line = next(line for line in planner.render(p).splitlines() if line.strip().startswith("train"))
    assert "steps " in train_line and "3,375] steps 1.0 h" in train_line, train_line


def test_the_sweep_line_says_when_its_time_leaves_a_stage_out(monkeypatch, capsys):
    timed = {"stages": {"generate": {"tokens": (10.0, 8.0, 12.0), "seconds": (5.0, 4.0, 6.0), "bytes": (1.0,) * 3}}}
    untimed = {"stages": {**timed["stages"], "train": {"pairs": (4.0,) * 3, "steps": (1,) * 3, "bytes": (2.0,) * 3}}}
    monkeypatch.setattr(planner, "_PLANS", [timed, untimed])
    planner.print_total()
    out = capsys.readouterr().out
    assert out.startswith("sweep: 2 cells") and "leaves out a stage of 1 cells" in out
