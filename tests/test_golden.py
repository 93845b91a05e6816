"""Golden numbers of the tiny model (tests/golden/tiny.json): a change that moves greedy or sampled token ids,
SFT losses or the tiny loop's metrics fails here; regenerate with `python tests/golden/tiny_numbers.py` only when
the change is meant to move them."""

import json

import pytest

from golden.tiny_numbers import GOLDEN, generation, loop_metrics, sft_losses

EXPECTED = json.loads(GOLDEN.read_text())


def test_greedy_and_sampled_token_ids(tiny_model_dir):
    assert generation(tiny_model_dir) == EXPECTED["generation"]


def test_sft_losses(tiny_model_dir, tmp_path):
    assert sft_losses(tiny_model_dir, tmp_path) == pytest.approx(EXPECTED["sft_losses"], rel=1e-4)


def test_tiny_loop_metrics(tiny_model_dir, tmp_path):
    got = loop_metrics(tiny_model_dir, tmp_path)
    assert got == pytest.approx(EXPECTED["loop"], rel=1e-4)
