"""s2d: distil System 2 methods into System 1 models (Yu et al., 2024)."""

__version__ = "0.1.0"
