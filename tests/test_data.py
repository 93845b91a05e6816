"""The data shipped with s2d: what its README records (provenance, SHA-256), the loaders reading it compressed,
and the revision of every hub load in the stage key."""

import gzip
import hashlib
import re

import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, ROOT
from s2d import cache
from s2d.tasks.base import SHIPPED_DATA, load_records, resolve_data_path

README = (SHIPPED_DATA / "README.md").read_text()
SHIPPED = sorted(p.relative_to(SHIPPED_DATA).as_posix() for p in SHIPPED_DATA.rglob("*.gz"))


def test_every_shipped_file_is_recorded_with_the_sha256_of_its_original_and_stays_small():
    recorded = dict(reversed(m.groups()) for m in re.finditer(r"^([0-9a-f]{64})  (\S+)$", README, re.M))
    assert sorted(f"{name}.gz" for name in recorded) == SHIPPED and len(SHIPPED) == 10
    for name, sha in recorded.items():
        path = SHIPPED_DATA / f"{name}.gz"
        assert path.stat().st_size < 5 * 2**20, name
        assert hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest() == sha, name
        assert f"`{name}.gz`" in README  # its row of provenance and licence
        assert cache._cached_digest(path) == sha  # the stage key hashes the original bytes
    assert (SHIPPED_DATA / "oasst2" / "LICENSE").read_text().count("Modified Apache License") == 1


def test_the_package_data_globs_take_every_shipped_file():
    text = (ROOT / "pyproject.toml").read_text()
    assert '"data/**/*.gz"' in text and '"data/README.md"' in text and '"data/**/LICENSE"' in text


@pytest.mark.parametrize("name, rows, first_key", [
    ("gsm8k/train.jsonl", 7473, "question"), ("gsm8k/test.jsonl", 1319, "question"),
    ("rephrase_and_respond/coin_val.json", 1333, "targets"),
    ("rephrase_and_respond/last_letter_concatenation_gpt-4.json", 219, "question"),
    ("triviaqa/triviaqa_sm_sub.jsonl", 3000, "context"), ("mt_bench/question.jsonl", 80, "question_id"),
    ("mt_bench_human_judgments/mtbench_stratified_198.csv", 198, "question_id"),
])
def test_loaders_read_the_compressed_files_by_their_plain_names(name, rows, first_key):
    path = resolve_data_path(name, None, "task.path")
    assert path == SHIPPED_DATA / f"{name}.gz"
    records = load_records(path)
    assert len(records) == rows and first_key in records[0]


def test_a_user_data_dir_wins_over_the_shipped_copy(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl.gz").write_bytes(gzip.compress(b'{"question": "q", "answer": "#### 1"}\n'))
    assert resolve_data_path("gsm8k/test.jsonl", str(tmp_path), "task.eval_path") == tmp_path / "gsm8k" / "test.jsonl.gz"
    assert resolve_data_path("gsm8k/test.jsonl", str(tmp_path / "empty"), "k") == SHIPPED_DATA / "gsm8k/test.jsonl.gz"


def cfg_of(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/x", *overrides])


@pytest.mark.parametrize("task, key", [
    ("triviaqa", "revision"), ("triviaqa", "sycophancy_revision"), ("gsm8k", "revision"),
    ("oasst2", "revision"), ("mt_bench", "judgments_revision"), ("mt_bench", "revision"),
])
def test_the_hub_revision_is_part_of_the_stage_key(task, key):
    base = cfg_of(f"task={task}")
    assert base.task[key] == (cache.content(base.task)[key])  # a config key, so it is in the task's content
    assert cache.task_key(cfg_of(f"task={task}", f"task.{key}=0123abc")) != cache.task_key(base)
