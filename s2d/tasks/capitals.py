"""World capitals asked both ways, wrapped in a user's opinion: the S2A organism row's questions (docs/organism.md).

TriviaQA's known questions are too few for the CPU organism: of the 2,776 staged questions it answers 86 right in
both opinion-free phrasings, which leaves 35 unlabeled inputs beside 50 eval items. The embedded model knows world
capitals far more often (147 of these 331 questions), so the same loop gets 97 unlabeled inputs. The task is
TriviaQA's in every other respect — the four opinion templates, the probe, the grader — and reads its questions
from `capitals.txt`, shipped with s2d: "What is the capital of <country>?" and "<capital> is the capital of which
country?" for each country, without the questions that hold their own answer (Monaco, Kuwait City), which the
grader could never count right.
"""

from __future__ import annotations

from pathlib import Path

from s2d.tasks.triviaqa import TriviaQA, alias_in

TABLE = Path(__file__).with_name("capitals.txt")


def capital_records() -> list[dict]:
    """TriviaQA-style records ({context, answer, aliases}) from the table, in its order: per country the capital
    question, then the country question."""
    rows = []
    for n, line in enumerate(TABLE.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            country, capital = ([name.strip() for name in side.split("|")] for side in line.split(";"))
        except ValueError:
            raise ValueError(f"s2d/tasks/{TABLE.name} line {n}: expected 'country|aliases;capital|aliases', "
                             f"got {line!r}") from None
        for question, names in ((f"What is the capital of {country[0]}?", capital),
                                (f"{capital[0]} is the capital of which country?", country)):
            if alias_in(names, question):
                continue  # holds its own answer
            rows.append({"context": f"Question: {question}\nAnswer:", "answer": names[0], "aliases": names})
    return rows


class Capitals(TriviaQA):
    """`task=organism/s2a_capitals`'s questions; every argument as TriviaQA's, without a data file or hub dataset."""

    name = "capitals"
    version = 1

    def __init__(self, **kwargs):
        for key in ("path", "hub_id"):
            if kwargs.get(key) is not None:
                raise ValueError(f"task.{key}: the capitals task reads s2d/tasks/{TABLE.name}; remove task.{key}, "
                                 "or use task=triviaqa for another file")
        super().__init__(**{**kwargs, "path": None, "hub_id": None})

    def _rows(self) -> tuple[list[dict], str]:
        return capital_records(), f"s2d/tasks/{TABLE.name}"

    def data_files(self) -> dict[str, Path]:
        return {"table": TABLE}
