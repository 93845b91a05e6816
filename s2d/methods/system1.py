"""System 1: the model answers the task's prompt directly, with no intermediate tokens (paper Eq. 2)."""

from __future__ import annotations

from s2d.methods.base import single_call


class System1:
    name = "system1"
    version = 1  # bump when a prompt's wording changes: cached generations are then redone

    def run(self, examples, task, llm, sampling):
        return single_call("answer", examples, [task.prompt(e) for e in examples], task, llm, sampling)
