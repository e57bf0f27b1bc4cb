"""The course's promises about itself, checked on the committed notebooks and README.

- every exercise has a self-check the learner runs, and a worked solution that is collapsed
  (``metadata.jupyter.source_hidden``) and asserts the same check, so CI tests it;
- the README's Quickstart prints what the README says it prints.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: An exercise starts at a "### Exercise ..." heading, or, in an "## Exercises" section, at
#: a paragraph that opens with a bold number ("**2. What fits?** ...").
EXERCISE = re.compile(r"^###\s+Exercise\b.*$", re.MULTILINE)
NUMBERED = re.compile(r"^\*\*\d+\.\s[^*]+\*\*", re.MULTILINE)
CHECK_CALL = re.compile(r"\bcheck_\w+\(")


def _exercises(path):
    """[(title, [code cells])] for each '### Exercise' heading, up to the next heading."""
    cells = json.loads(path.read_text())["cells"]
    out, current, in_section = [], None, False
    for cell in cells:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if re.search(r"^##\s", src, re.MULTILINE):
                in_section = bool(re.search(r"^##\s+Exercises\b", src, re.MULTILINE))
            m = EXERCISE.search(src) or (NUMBERED.search(src) if in_section else None)
            if m:
                current = (m.group(0).strip("#* ").strip(), [])
                out.append(current)
            elif re.search(r"^#{1,3}\s", src, re.MULTILINE) and "Solution" not in src:
                current = None  # a new section (e.g. the summary) ends the exercise
        elif current is not None:
            current[1].append(cell)
    return out


def _hidden(cell):
    return bool(cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"))


def test_the_course_has_exercises():
    per_nb = {p.name: len(_exercises(p)) for p in NOTEBOOKS}
    assert len(per_nb) >= 11
    assert sum(per_nb.values()) >= 25, per_nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_self_check_and_a_hidden_tested_solution(path):
    for title, cells in _exercises(path):
        visible = [c for c in cells if not _hidden(c)]
        hidden = [c for c in cells if _hidden(c)]
        where = f"{path.name}, {title!r}"
        assert any(CHECK_CALL.search("".join(c["source"])) for c in visible), (
            f"{where}: no self-check call (check_...(...)) in a visible cell")
        assert hidden, f"{where}: the solution is not collapsed (metadata.jupyter.source_hidden)"
        assert any("assert" in "".join(c["source"]) and CHECK_CALL.search("".join(c["source"]))
                   for c in hidden), f"{where}: the collapsed solution does not assert a check"
        for c in visible:
            for out in c.get("outputs", []):
                assert out.get("output_type") != "error", f"{where}: a stored error output"


def _readme_block(after, lang):
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    m = re.compile(rf"```{lang}\n(.*?)```", re.DOTALL).search(text, start)
    return m.group(1), m.end()


def _numbers_and_words(text):
    return [float(t) if re.fullmatch(r"-?\d+(\.\d+)?", t) else t
            for t in re.findall(r"-?\d+(?:\.\d+)?|[^\s\d.-]+", text)]


def test_readme_quickstart_prints_what_the_readme_says():
    code, end = _readme_block("## Quickstart", "python")
    text = (ROOT / "README.md").read_text()
    expected = re.compile(r"```\n(.*?)```", re.DOTALL).search(text, end).group(1)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(compile(code, "README Quickstart", "exec"), {})
    got, want = _numbers_and_words(buf.getvalue()), _numbers_and_words(expected)
    assert len(got) == len(want), (buf.getvalue(), expected)
    for g, w in zip(got, want, strict=True):
        assert g == (pytest.approx(w, rel=1e-6) if isinstance(w, float) else w), (buf.getvalue(), expected)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_shown_is_stored(path):
    # a notebook re-executed with a non-interactive matplotlib backend keeps no figures
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "code" and "plt.show()" in "".join(cell["source"]):
            assert any("image/png" in out.get("data", {}) for out in cell.get("outputs", [])), (
                f"{path.name}, cell {i}: plt.show() but no stored figure (re-execute with "
                "scripts/run_notebooks.py, which keeps the inline backend)")
