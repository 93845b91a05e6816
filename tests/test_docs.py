"""The user docs stay short and free of lab notes; their figures link to dated records that hold them."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_DOCS = [ROOT / "README.md", ROOT / "tests" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RESULTS = ROOT / "docs" / "results"
# (page, most bytes): the README a newcomer reads in ten minutes, the pages one topic each.
SIZES = [("README.md", 12 * 1024)] + [(f"docs/{p}.md", 15 * 1024) for p in
                                       ("organism", "routing", "runs", "measurement", "configuration", "paper-tasks")]


@pytest.mark.parametrize("page,limit", SIZES)
def test_user_pages_stay_short(page, limit):
    size = len((ROOT / page).read_bytes())
    assert size <= limit, f"{page} is {size} bytes (at most {limit}); move measurements to docs/results/"


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_hold_no_commit_hash_or_cpu_model(path):
    text = path.read_text()
    hashes = re.findall(r"\b(?:commit|at|build)\s+`?([0-9a-f]{7,40})\b", text)
    cpus = re.findall(r"\b(EPYC|Xeon|Ryzen|AVX2|AVX-512|AMX|Zen \d)\b", text)
    assert not hashes and not cpus, (f"{path.relative_to(ROOT)} names {hashes + cpus}: dated measurement notes belong "
                                     "in docs/results/<date>-<topic>.md, linked from the page")


@pytest.mark.parametrize("path", USER_DOCS + sorted(RESULTS.glob("*.md")), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    missing = [l for l in links if "://" not in l and not (path.parent / l).exists()]
    assert not missing, f"{path.relative_to(ROOT)} links to missing files: {missing}"


def test_the_summary_plot_data_is_the_records_figures(tmp_path):
    """Every figure the README's plot draws is written, as measured, in its dated record."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("organism_summary", RESULTS / "organism_summary.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = json.loads(module.RECORD.read_text())
    records = "".join((RESULTS / name).read_text() for name in module.SOURCES)
    for run in data["runs"]:
        m = run["metrics"]
        for system in ("system1", "system2", "distilled"):
            shown = (f"{100 * m[f'{system}/accuracy']:.1f}% [{100 * m[f'{system}/accuracy_ci_low']:.1f}, "
                     f"{100 * m[f'{system}/accuracy_ci_high']:.1f}]")
            assert shown in records, f"{run['task']} {system}: {shown} is in no record"
            assert f"{m[f'{system}/tokens_per_input']:.1f}" in records
    for c in data["curve"]["points"]:
        assert f"{100 * c['accuracy']:.1f}% [{100 * c['ci_low']:.1f}, {100 * c['ci_high']:.1f}]" in records
    out = module.draw(module.RECORD, tmp_path / "summary.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("page", [p for p, _ in SIZES] + ["tests/README.md"])
def test_no_table_cell_is_a_paragraph(page):
    long = [(i, len(cell.split())) for i, line in enumerate((ROOT / page).read_text().splitlines(), 1)
            if line.startswith("|") for cell in line.strip("|").split("|") if len(cell.split()) > 80]
    assert not long, f"{page}: table cells over 80 words at (line, words) {long}; say it in prose or in a record"
