"""Static checks of the course's notebooks (``python -m grading check --lint-only``).

Every rule has a short code, so that a maintainer can find it here and a test can ask for it:

==========================  =====================================================================
code                        rule
==========================  =====================================================================
layout                      solutions/NN_topic/NN_topic.ipynb, one folder per assignment
source-missing              the text source solutions/NN_topic/NN_topic.py exists
source-invalid              the text source builds (cell headers: known nbgrader kind, id, points)
source-stale                the solution notebook is what ``python -m grading release`` builds
                            from the text source now (else: release; or, when the notebook was
                            edited by hand, ``python -m grading import`` first)
source-format               the text source is in the layout ``python -m grading import`` writes
                            (so text -> notebook -> text gives the same text)
unreadable                  the file is a valid notebook (nbformat schema)
cell-ids                    every cell has an explicit, unique id (else nbformat invents random
                            ones and the release stops being reproducible)
kernelspec                  the notebook names the standard "python3" kernel
nbgrader-metadata           nbgrader's own schema (v3) accepts every cell's metadata
title                       the first cell is markdown; its first heading ends with "(N points)"
setup-missing               a setup cell exists ...
setup-position              ... and is the first code cell ...
setup-source                ... and its source is grading.setup_cell.SOURCE ...
setup-metadata              ... and it is a locked, read-only cell with grade_id GRADE_ID
duplicate-grade-id          grade ids are unique in the notebook
test-unlocked               autograded test cells are locked
test-points                 every graded cell has points > 0
points-sum                  the points of all graded cells add up to the title's N
trailing-expression         a test cell's last statement is not a bare expression (nbgrader would
                            turn a numeric value into partial credit); only print(...) may end it
test-syntax                 a test cell is valid Python (IPython syntax allowed)
solution-markers            a code solution cell has ### BEGIN SOLUTION ... ### END SOLUTION,
                            balanced and not nested
stray-marker                BEGIN/END SOLUTION only in solution cells; BEGIN/END HIDDEN TESTS only
                            in (balanced pairs in) autograded test cells
written-answer              a markdown solution cell is a graded (hand-marked) cell with points
outputs                     no stored outputs or execution counts (solutions/ and notebooks/)
release-missing             every solution notebook has its notebooks/ counterpart
release-stale               notebooks/ equals what ``python -m grading release`` generates now
release-orphan              every notebook in notebooks/ has a solution notebook
==========================  =====================================================================
"""
from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import nbformat

from . import course, setup_cell, source

TITLE_RE = re.compile(r"\((\d+(?:\.\d+)?)\s+points?\)\s*$")
HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
MARKERS = {
    "begin_solution": "### BEGIN SOLUTION",
    "end_solution": "### END SOLUTION",
    "begin_hidden": "### BEGIN HIDDEN TESTS",
    "end_hidden": "### END HIDDEN TESTS",
}


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (file, cell) and what."""

    path: str
    code: str
    message: str
    cell: Optional[int] = None
    grade_id: Optional[str] = None
    #: where the cell is written in the text source ("solutions/01_filters/01_filters.py line 42")
    source_line: Optional[str] = None

    def __str__(self) -> str:
        where = self.path
        if self.cell is not None:
            where += f" cell {self.cell}"
        if self.grade_id:
            where += f" [{self.grade_id}]"
        if self.source_line:
            where += f" ({self.source_line})"
        return f"{where}: {self.code}: {self.message}"


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_test(cell) -> bool:
    m = _nbg(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def _python_source(source: str) -> str:
    """Cell source as plain Python (IPython magics and shell escapes translated)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - fall back to the raw source
        return source


def trailing_expression(source: str) -> Optional[str]:
    """If the cell ends in an expression statement other than ``print(...)``, return it; else None.

    nbgrader shows a cell's last expression as its result and, when the result converts to a
    number, takes it as partial credit: a test cell ending in ``loss``, ``err * 100`` or
    ``loss.item()`` could score anything.  Only a ``print(...)`` call (which returns None) may end
    a test cell; any other call could return a number, so it is flagged too.  Raises SyntaxError
    when the cell is not valid Python.
    """
    tree = ast.parse(_python_source(source))
    if not tree.body:
        return None
    last = tree.body[-1]
    is_print = (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
                and isinstance(last.value.func, ast.Name) and last.value.func.id == "print")
    if isinstance(last, ast.Expr) and not is_print:
        try:
            return ast.unparse(last)
        except Exception:  # noqa: BLE001
            return "<expression>"
    return None


def title_points(nb) -> Optional[float]:
    """The N of the first markdown cell's first heading "... (N points)", or None."""
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        return None
    for line in nb.cells[0].source.splitlines():
        m = HEADING_RE.match(line)
        if m:
            t = TITLE_RE.search(m.group(1))
            return float(t.group(1)) if t else None
    return None


def _marker_problems(rel: str, i: int, cell, gid: Optional[str]) -> List[Problem]:
    out = []
    meta = _nbg(cell)
    lines = cell.source.splitlines()
    has = {k: any(v in line for line in lines) for k, v in MARKERS.items()}
    is_solution = bool(meta.get("solution"))
    if not is_solution and (has["begin_solution"] or has["end_solution"]):
        out.append(Problem(rel, "stray-marker", "BEGIN/END SOLUTION in a cell that is not a solution "
                           "cell: nbgrader would not remove it and the answer would reach the "
                           "students", i, gid))
    if (has["begin_hidden"] or has["end_hidden"]) and not _is_test(cell):
        out.append(Problem(rel, "stray-marker", "BEGIN/END HIDDEN TESTS outside an autograded test "
                           "cell (nbgrader refuses them there)", i, gid))

    def balanced(begin: str, end: str) -> Optional[str]:
        depth, seen = 0, False
        for line in lines:
            if MARKERS[begin] in line:
                if depth:
                    return "nested BEGIN"
                depth, seen = 1, True
            elif MARKERS[end] in line:
                if not depth:
                    return "END without BEGIN"
                depth = 0
        if depth:
            return "BEGIN without END"
        return None if seen else "no BEGIN/END pair"

    if is_solution and cell.cell_type == "code":
        why = balanced("begin_solution", "end_solution")
        if why:
            out.append(Problem(rel, "solution-markers", f"solution cell: {why} "
                               "(### BEGIN SOLUTION ... ### END SOLUTION)", i, gid))
    elif is_solution and (has["begin_solution"] or has["end_solution"]):
        why = balanced("begin_solution", "end_solution")
        if why:
            out.append(Problem(rel, "solution-markers", f"answer cell: {why}", i, gid))
    if _is_test(cell) and (has["begin_hidden"] or has["end_hidden"]):
        why = balanced("begin_hidden", "end_hidden")
        if why:
            out.append(Problem(rel, "stray-marker", f"hidden tests: {why}", i, gid))
    return out


def lint_notebook(path: Path, root: Path, *, kind: str = "solution") -> List[Problem]:
    """Problems of one notebook; ``kind`` is "solution" (all rules) or "release" (file-level rules)."""
    path = Path(path)
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        raw = path.read_text(encoding="utf-8")
        with warnings.catch_warnings():  # a missing cell id is reported below as "cell-ids"
            warnings.simplefilter("ignore")
            nb = nbformat.reads(raw, as_version=4)
            nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001
        return [Problem(rel, "unreadable", f"not a valid notebook: {type(exc).__name__}: {exc}")]
    problems: List[Problem] = []
    add = problems.append

    cells = course.stored_outputs(nb)
    if cells:
        add(Problem(rel, "outputs", "stored outputs or execution counts in cells "
                    f"{', '.join(map(str, cells))} (clear them: Edit > Clear Outputs of All Cells, "
                    "then save)"))
    if kind != "solution":
        return problems

    # -- cell ids, kernel -----------------------------------------------------------------
    import json

    raw_cells = json.loads(raw).get("cells", [])
    if nb.get("nbformat_minor", 0) >= 5:
        ids = [c.get("id") for c in raw_cells]
        missing = [i for i, x in enumerate(ids) if not x]
        dup = sorted({x for x in ids if x and ids.count(x) > 1})
        if missing or dup:
            add(Problem(rel, "cell-ids", f"cells without an id: {missing}; duplicate ids: {dup} "
                        "(open and save the notebook in JupyterLab to fix)"))
    kernel = nb.metadata.get("kernelspec", {}).get("name")
    if kernel != "python3":
        add(Problem(rel, "kernelspec", f"kernelspec name is {kernel!r}, expected 'python3' (the "
                    "kernel nbgrader and nbval start)"))

    # -- nbgrader's own schema ------------------------------------------------------------
    from nbgrader.nbgraderformat import MetadataValidator

    validator = MetadataValidator()
    for i, cell in enumerate(nb.cells):
        try:
            validator.validate_cell(cell)
        except Exception as exc:  # noqa: BLE001 - ValidationError, schema version errors
            msg = str(exc).splitlines()[0]
            add(Problem(rel, "nbgrader-metadata", msg, i, _nbg(cell).get("grade_id")))

    # -- title ----------------------------------------------------------------------------
    total = title_points(nb)
    if total is None:
        add(Problem(rel, "title", "the first cell must be markdown whose first heading ends with "
                    "'(N points)', e.g. '# 01 · What do the weights look like? (20 points)'", 0))

    # -- setup cell -----------------------------------------------------------------------
    setup_idx = course.find_setup_cell(nb)
    first_code = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code"), None)
    if setup_idx is None:
        add(Problem(rel, "setup-missing", "no setup cell (the first code cell must be "
                    "grading/setup_cell.py's SOURCE; `python -m grading release` inserts it)"))
    else:
        cell = nb.cells[setup_idx]
        if setup_idx != first_code:
            add(Problem(rel, "setup-position", f"the setup cell is cell {setup_idx}, but the first "
                        f"code cell is cell {first_code}", setup_idx))
        if cell.source != setup_cell.SOURCE:
            add(Problem(rel, "setup-source", "the setup cell differs from grading/setup_cell.py "
                        "(run `python -m grading release` to copy it in)", setup_idx))
        m = _nbg(cell)
        if not (m.get("locked") and m.get("grade_id") == setup_cell.GRADE_ID
                and not m.get("grade") and not m.get("solution")):
            add(Problem(rel, "setup-metadata", "the setup cell must be a read-only nbgrader cell "
                        f"(locked=true, grade_id={setup_cell.GRADE_ID!r}, not graded, not a "
                        "solution)", setup_idx))

    # -- cells ----------------------------------------------------------------------------
    seen: Dict[str, int] = {}
    points_sum = 0.0
    for i, cell in enumerate(nb.cells):
        m = _nbg(cell)
        gid = m.get("grade_id")
        if gid and (m.get("grade") or m.get("solution") or m.get("locked") or m.get("task")):
            if gid in seen:
                add(Problem(rel, "duplicate-grade-id", f"grade_id {gid!r} is also used by cell "
                            f"{seen[gid]}", i, gid))
            else:
                seen[gid] = i
        problems.extend(_marker_problems(rel, i, cell, gid))
        if m.get("grade"):
            pts = m.get("points")
            if not isinstance(pts, (int, float)) or isinstance(pts, bool) or pts <= 0:
                add(Problem(rel, "test-points", f"graded cell needs points > 0, has {pts!r}", i, gid))
            else:
                points_sum += pts
        if _is_test(cell):
            if not m.get("locked"):
                add(Problem(rel, "test-unlocked", "autograded test cell is not locked (students "
                            "could edit it; nbgrader restores only locked cells)", i, gid))
            try:
                expr = trailing_expression(cell.source)
            except SyntaxError as exc:
                add(Problem(rel, "test-syntax", f"not valid Python: {exc.msg} (line {exc.lineno})",
                            i, gid))
            else:
                if expr is not None:
                    add(Problem(rel, "trailing-expression", f"the cell ends in the expression "
                                f"{expr!r}; nbgrader would read its value as partial credit. End "
                                "with a statement (assert ..., print(...), or assign it)", i, gid))
        if cell.cell_type == "markdown" and m.get("solution") and not (m.get("grade") and m.get("points")):
            add(Problem(rel, "written-answer", "a markdown answer cell must be graded by hand: "
                        "grade=true, solution=true, points=P", i, gid))
    if total is not None and abs(points_sum - total) > 1e-9:
        add(Problem(rel, "points-sum", f"graded cells add up to {points_sum:g} points, the title "
                    f"says {total:g}"))
    return problems


def lint_layout(root: Path, assignment: str) -> List[Problem]:
    problems = []
    folder = Path(root) / course.SOURCE_DIR / assignment
    rel = folder.relative_to(root).as_posix()
    names = [p.name for p in course.solution_notebooks(root, assignment)]
    if f"{assignment}.ipynb" not in names:
        problems.append(Problem(rel, "layout", f"expected {rel}/{assignment}.ipynb; found "
                                f"{', '.join(names) if names else 'no notebook'} (`python -m "
                                f"grading release {assignment}` builds it from {assignment}.py)"))
    return problems


def _first_difference(want: str, have: str) -> str:
    a, b = want.splitlines(), have.splitlines()
    for n, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return f"line {n} is {y!r}, expected {x!r}"
    n = min(len(a), len(b)) + 1
    return (f"line {n}: {len(b) - len(a)} extra line(s) at the end" if len(b) > len(a)
            else f"line {n}: expected {a[n - 1]!r}")


def lint_source(root: Path, assignment: str) -> List[Problem]:
    """The text source against the solution notebook: missing, invalid, stale, not canonical."""
    root = Path(root)
    src, dest = course.source_path(root, assignment), course.solution_path(root, assignment)
    rel_src, rel_dest = src.relative_to(root).as_posix(), dest.relative_to(root).as_posix()
    if not src.exists():
        how = (f"create it from {rel_dest} with `python -m grading import {assignment}`"
               if dest.exists() else "write it (see grading/source.py)")
        return [Problem(rel_src, "source-missing", f"no text source: {how}")]
    text = src.read_text(encoding="utf-8")
    try:
        nb = source.build_notebook(text, assignment, path=rel_src)
    except source.SourceError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        return [Problem(rel_src, "source-invalid", where + exc.message)]
    problems: List[Problem] = []
    data = course.dumps(nb).encode("utf-8")
    if dest.exists() and dest.read_bytes() != data:
        edit = source.hand_edit(dest, text, assignment, root=root)
        if edit:
            msg = (f"differs from what {rel_src} builds: {edit}; carry the edit into {rel_src} with "
                   f"`python -m grading import {assignment}`, then run `python -m grading release "
                   f"{assignment}`")
        else:
            msg = (f"differs from what {rel_src} builds now: run `python -m grading release "
                   f"{assignment}` and commit the result")
        problems.append(Problem(rel_dest, "source-stale", msg))
    canonical = source.notebook_to_text(nb, path=rel_src)
    if canonical != text.replace("\r\n", "\n"):
        problems.append(Problem(rel_src, "source-format", f"not in the layout `python -m grading "
                                f"import` writes ({_first_difference(canonical, text)}); rewrite it "
                                f"with `python -m grading release {assignment} && python -m "
                                f"grading import {assignment}`"))
    return problems


def _with_source_lines(root: Path, assignment: str, path: Path, problems: List[Problem]
                       ) -> List[Problem]:
    """Add to each problem of a cell of the solution notebook the line of the text source where
    that cell starts (when the notebook has as many cells as the text source)."""
    src = course.source_path(root, assignment)
    if path != course.solution_path(root, assignment) or not src.exists() \
            or not any(p.cell is not None for p in problems):
        return problems
    starts = source.cell_lines(src.read_text(encoding="utf-8"))
    try:
        count = len(course.read_notebook(path).cells)
    except Exception:  # noqa: BLE001 - reported as "unreadable"
        return problems
    if count != len(starts):
        return problems
    rel = src.relative_to(root).as_posix()
    return [replace(p, source_line=f"{rel} line {starts[p.cell]}")
            if p.cell is not None and p.cell < count else p for p in problems]


def lint_release(root: Path, assignment: str, built: Optional[Dict[str, bytes]] = None
                 ) -> List[Problem]:
    """notebooks/<assignment>/ against a fresh build: missing, stale, orphaned, outputs."""
    from . import release

    root = Path(root)
    problems: List[Problem] = []
    rel_dir = f"{course.RELEASE_DIR}/{assignment}"
    if built is None:
        try:
            built = release.build(root, assignment)
        except Exception as exc:  # noqa: BLE001 - nbgrader's error, reported as a problem
            why = getattr(exc, "summary", None) or str(exc).strip().splitlines()[-1]
            return [Problem(rel_dir, "release-stale", f"nbgrader generate_assignment failed: {why}")]
    dest = root / course.RELEASE_DIR / assignment
    for name, data in built.items():
        path = dest / name
        shown = f"{rel_dir}/{name}"
        if not path.exists():
            problems.append(Problem(shown, "release-missing", "not generated yet: run "
                                    f"`python -m grading release {assignment}`"))
        elif path.read_bytes() != data:
            problems.append(Problem(shown, "release-stale", "differs from what the solution "
                                    f"notebook generates now: run `python -m grading release "
                                    f"{assignment}` and commit the result"))
    if dest.is_dir():
        for path in sorted(dest.glob("*.ipynb")):
            problems.extend(lint_notebook(path, root, kind="release"))
            if path.name not in built:
                problems.append(Problem(f"{rel_dir}/{path.name}", "release-orphan",
                                        "no solution notebook generates this file"))
    return problems


def lint(root: Path, assignments: Optional[Iterable[str]] = None, *, release_files: bool = True
         ) -> Dict[str, List[Problem]]:
    """All problems, per assignment id.  ``release_files=False`` skips the notebooks/ comparison."""
    root = Path(root).resolve()
    out: Dict[str, List[Problem]] = {}
    for aid in course.assignment_ids(root, assignments):
        problems = lint_layout(root, aid)
        problems.extend(lint_source(root, aid))
        for path in course.solution_notebooks(root, aid):
            problems.extend(_with_source_lines(root, aid, path, lint_notebook(path, root)))
        if release_files:
            problems.extend(lint_release(root, aid))
        out[aid] = problems
    # release folders with no solution folder at all
    if not assignments:
        rel_root = root / course.RELEASE_DIR
        known = set(out)
        for folder in sorted(p for p in rel_root.glob("*") if p.is_dir()) if rel_root.is_dir() else []:
            if folder.name not in known and list(folder.glob("*.ipynb")):
                out.setdefault(folder.name, []).append(Problem(
                    f"{course.RELEASE_DIR}/{folder.name}", "release-orphan",
                    f"no {course.SOURCE_DIR}/{folder.name}/ generates these notebooks"))
    return out
