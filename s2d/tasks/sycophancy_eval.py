"""SycophancyEval's answer set (Sharma et al. 2023, `answer.jsonl`): the paper's S2A inputs, read as published.

Each record is one input: `prompt` (a list of messages; the human one holds the question with the user's
opinion), `base` (`dataset`, `question`, `answer` (the gold aliases), `correct_answer`, `incorrect_answer`)
and `metadata.prompt_template` (which of the four templates wrote the prompt). Records of one question are
grouped into one question with its inputs by template, so `task=triviaqa` splits questions, not records,
and the suggested wrong answer is the record's, not one a model drafted.
"""

from __future__ import annotations

from typing import Any

from s2d.tasks.base import require_field

PARTS = ("trivia_qa", "truthful_qa")  # base.dataset values of the answer set's two parts

# metadata.prompt_template's placeholders, as s2d's templates (tasks/triviaqa.py TEMPLATES) name them.
_PLACEHOLDERS = {"{correct_answer}": "{correct}", "{incorrect_answer}": "{incorrect}"}


def template_variant(template: str, templates: dict[str, str], where: str) -> str:
    """The variant (`plain`, `suggest_correct`, ...) whose template is the record's `prompt_template`."""
    text = template
    for theirs, ours in _PLACEHOLDERS.items():
        text = text.replace(theirs, ours)
    text = " ".join(text.split())
    for variant, ours in templates.items():
        if " ".join(ours.split()) == text:
            return variant
    raise ValueError(f"{where}: metadata.prompt_template {template!r} is not one of SycophancyEval's four answer "
                     f"templates ({', '.join(templates)})")


def human_text(prompt: Any, where: str) -> str:
    """The text of the (last) human message of a record's `prompt`."""
    if isinstance(prompt, str):
        return prompt
    if not isinstance(prompt, list) or not prompt:
        raise ValueError(f"{where}: 'prompt' must be a list of messages, got {type(prompt).__name__}")
    human = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("type", m.get("role")) in ("human", "user")]
    if not human or not isinstance(human[-1], str):
        raise ValueError(f"{where}: 'prompt' holds no human message with a 'content' string")
    return human[-1]


def parse_record(row: dict, templates: dict[str, str], where: str) -> dict:
    """{dataset, question, answer, aliases, incorrect, variant, text} of one answer-set record."""
    base = require_field(row, "base", where)
    if not isinstance(base, dict):
        raise ValueError(f"{where}: 'base' must be an object, got {type(base).__name__}")
    question = str(require_field(base, "question", f"{where} base"))
    correct = str(require_field(base, "correct_answer", f"{where} base"))
    incorrect = base.get("incorrect_answer")
    aliases = base.get("answer") or []
    aliases = [aliases] if isinstance(aliases, str) else [str(a) for a in aliases]
    template = require_field(row.get("metadata") or {}, "prompt_template", f"{where} metadata")
    return {"dataset": str(base.get("dataset") or ""), "question": " ".join(question.split()), "answer": correct,
            "aliases": list(dict.fromkeys([correct, *aliases])), "incorrect": str(incorrect) if incorrect else "",
            "variant": template_variant(template, templates, where),
            "text": human_text(require_field(row, "prompt", where), where)}


def questions_of(rows: list[dict], templates: dict[str, str], parts: tuple[str, ...], source: str) -> list[dict]:
    """The answer set's questions from `parts` in file order, each once: {question, answer, aliases, incorrect,
    dataset, inputs: {variant: prompt text}}."""
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ValueError(f"task.sycophancy_parts: unknown or empty parts {bad or list(parts)}; allowed: {', '.join(PARTS)}")
    by_question: dict[tuple[str, str], dict] = {}
    for i, row in enumerate(rows):
        rec = parse_record(row, templates, f"{source} record {i + 1}")
        if rec["dataset"] not in parts:
            continue
        q = by_question.setdefault((rec["dataset"], rec["question"]), {
            "question": rec["question"], "answer": rec["answer"], "aliases": rec["aliases"],
            "incorrect": rec["incorrect"], "dataset": rec["dataset"], "inputs": {}})
        q["inputs"][rec["variant"]] = rec["text"]
        q["incorrect"] = q["incorrect"] or rec["incorrect"]
    if not by_question:
        raise ValueError(f"{source}: no records of task.sycophancy_parts={list(parts)}")
    return list(by_question.values())
