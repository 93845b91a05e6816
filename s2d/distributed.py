"""Which process this is under a multi-process launcher (Lightning DDP, torchrun, SLURM tasks)."""

from __future__ import annotations

import os


def process_rank() -> int:
    """This process's rank under a multi-process launcher (Lightning DDP's own children, torchrun, SLURM
    tasks); 0 for a plain run."""
    ranks = [os.environ.get(v) for v in ("RANK", "LOCAL_RANK", "NODE_RANK")]
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        ranks.append(os.environ.get("SLURM_PROCID"))
    return max((int(r) for r in ranks if r and r.isdigit()), default=0)
