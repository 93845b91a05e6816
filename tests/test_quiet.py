"""The default run's console shows s2d's lines, not other libraries' advertisements, deprecation notices or banners;
the Lightning lines still reach the run's log file."""

import io
import logging
import os
import subprocess
import sys
import warnings

import pytest

from s2d.console import LIGHTNING_LOGGERS, quiet_library_noise


@pytest.fixture
def hydra_like_logging(tmp_path):
    """Root handlers as Hydra's job logging sets them (a console stream and the run's log file); restored after."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved_lightning = {n: (list(logging.getLogger(n).handlers), logging.getLogger(n).propagate) for n in LIGHTNING_LOGGERS}
    console_stream = io.StringIO()
    console = logging.StreamHandler(console_stream)
    log_file = tmp_path / "s2d.log"
    file_handler = logging.FileHandler(log_file)
    root.handlers = [console, file_handler]
    root.setLevel(logging.INFO)
    yield console_stream, log_file
    file_handler.close()
    root.handlers, _ = saved_root
    root.setLevel(saved_root[1])
    for name, (handlers, propagate) in saved_lightning.items():
        logging.getLogger(name).handlers = handlers
        logging.getLogger(name).propagate = propagate


def test_lightnings_tips_stay_off_the_console_but_in_the_log_file(hydra_like_logging, tmp_path):
    from pytorch_lightning import Trainer

    console, log_file = hydra_like_logging
    quiet_library_noise()
    # Building a Trainer prints Lightning's logger tip (s2d never passes it a LitLogger); a Trainer that checkpoints
    # queues its model-registry tip, which the connector prints once loggers are attached.
    trainer = Trainer(default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer._callback_connector._maybe_show_litmodels_tip()
    logging.getLogger("pytorch_lightning.utilities.rank_zero").info("an ordinary Lightning line")
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = log_file.read_text()
    assert "[litlogger]" in written and "[litmodels]" in written and "an ordinary Lightning line" in written
    assert "litlogger" not in console.getvalue() and "litmodels" not in console.getvalue()
    assert "an ordinary Lightning line" in console.getvalue() and "GPU available" in console.getvalue()


def test_the_leafspec_deprecation_is_filtered_and_other_future_warnings_are_not():
    from torch.utils._pytree import LeafSpec

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_library_noise()
        LeafSpec()  # what Lightning's pytree helper builds on every training batch
        warnings.warn("some other change is coming", FutureWarning)
    messages = [str(w.message) for w in caught]
    assert messages == ["some other change is coming"]


def test_wandb_offline_banner_is_not_printed(tmp_path):
    """In a fresh process without the test suite's WANDB_SILENT, as `python -m s2d.run` starts."""
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SILENT"}
    code = ("import logging, sys; from pathlib import Path; from s2d.tracking import WandbTracker; "
            "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s'); "
            "t = WandbTracker(mode='offline'); t.start({}, Path(sys.argv[1])); t.log({'x': 1.0}); t.finish()")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    printed = done.stdout + done.stderr
    for banner in ("Tracking run with wandb", "syncing is set to", "Run history", "You can sync this run"):
        assert banner not in printed
    # s2d's own line says where the run is and how to upload it
    assert "upload it with: wandb sync" in done.stdout and "offline-run-" in done.stdout
    assert list(tmp_path.glob("wandb/offline-run-*/logs/debug.log"))
