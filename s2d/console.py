"""Keep a command's console to s2d's own lines: known messages of other libraries filtered at their source.

Every s2d command that runs a Trainer or a W&B run (`s2d.run`, `s2d.plan`) calls `quiet_library_noise()` once
Hydra has set up logging.
"""

from __future__ import annotations

import logging
import re
import warnings

# Known messages of other libraries that say nothing about this run. They stay out of the console; the Lightning
# lines still reach the run's log file (`<run dir>/s2d.log`), and W&B writes its own banners to its debug log
# (`WandbTracker`). Each pattern is the start of the library's exact text, so nothing else is filtered.
CONSOLE_NOISE = (
    # Lightning's rank-zero advertisements: for its own experiment logger (printed by every Trainer that is not
    # given one) and for its model registry (printed when a Trainer checkpoints).
    re.compile(re.escape("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")),
    re.compile(re.escape("💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]")),
)
LIBRARY_WARNINGS = (
    # torch deprecates LeafSpec; Lightning's own pytree helper still builds one on every training batch.
    (FutureWarning, re.escape("`isinstance(treespec, LeafSpec)` is deprecated")),
)
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning_fabric", "lightning")


class DropConsoleNoise(logging.Filter):
    """Drops CONSOLE_NOISE from the handler it is attached to (the console), nothing else."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.match(message) for p in CONSOLE_NOISE)


def quiet_library_noise() -> None:
    """Keep the console to s2d's progress and table. Call after Hydra has set up logging (inside the job)."""
    for category, message in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    # Lightning, imported before Hydra configured logging, gave itself a stderr handler of its own, so its lines
    # reached the console only. Through the root logger's handlers they reach Hydra's log file as well.
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)
        logger.propagate = True
    for handler in logging.getLogger().handlers:
        console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if console and not any(isinstance(f, DropConsoleNoise) for f in handler.filters):
            handler.addFilter(DropConsoleNoise())
