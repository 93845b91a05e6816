"""`python -m s2d.prompts [overrides]`: every prompt text a run with these overrides would send.

The texts live once, in each method's and filter's module (`PROMPTS`); the YAML lists their names with null
(the module's text) and holds only what a config or the command line replaces (`method.prompts.<name>='...'`).
This command composes the config exactly as `python -m s2d.run` does and prints, for the System 2 method, the
System 1 baseline and the filter, the texts in effect, e.g.

    python -m s2d.prompts method=rar2 task=last_letter
    python -m s2d.prompts filter=usc filter.prompts.answer='Reply {i}: {answer}'
"""

from __future__ import annotations

import sys
from pathlib import Path

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides: list[str]):
    """The primary config with `overrides`, composed as the `s2d.run` entry point composes it."""
    from hydra import compose as hydra_compose, initialize_config_dir

    import s2d.config  # noqa: F401  (registers the typed schema the primary config extends)

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose("config", overrides=overrides)


def show(cfg) -> str:
    """The prompts in effect, per group, as readable text (each text indented under its override key)."""
    from s2d.cache import prompts_in_effect

    out = []
    for group, texts in prompts_in_effect(cfg).items():
        out.append(f"# {group}: {cfg[group]._target_}, " + (
            f"{len(texts)} texts (replace one with {group}.prompts.<name>='...')" if texts
            else "no text of its own (the task's prompt is the whole request)"))
        for name, text in texts.items():
            overridden = cfg[group].prompts.get(name) is not None
            out.append(f"{group}.prompts.{name}:{'  # set in the config' if overridden else ''}")
            out += [f"    {line}".rstrip() for line in text.splitlines() or [""]]
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in args):
        print(__doc__)
        return
    print(show(compose(args)))


if __name__ == "__main__":
    main()
