"""The stand-in's `vllm.platforms.current_platform`: CUDA unless FAKE_VLLM_PLATFORM=cpu."""

import os


class _Platform:
    @property
    def device_type(self) -> str:
        return "cpu" if os.environ.get("FAKE_VLLM_PLATFORM") == "cpu" else "cuda"

    def is_cpu(self) -> bool:
        return self.device_type == "cpu"


current_platform = _Platform()
