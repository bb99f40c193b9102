"""Tests of the instructor toolbox (grading/) and of the nbgrader facts it relies on.

Fast tests (no kernel): configuration, lint rules on a fixture assignment built in tmp_path,
text sources (round trip, compact headers, stable ids, hand-edit refusal, import), release
determinism, refusal to overwrite work, IgnorePattern on recorded stderr.

Slow tests (they start Jupyter kernels; each notebook execution is a few seconds for the fixture
and about a minute for a real assignment):
* the nbgrader round trip of the fixture and of every real assignment (solutions/NN_*/):
  generate, submit the solution and the untouched student notebook, autograde, read the gradebook;
* ``nbgrader validate`` from the command line on a notebook that warns, to prove that the config
  file's environment reaches the grading kernel.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import (FIXTURE_ID, REPO, build_fixture_notebook, copy_course, solution_notebook_paths,
                      write_fixture_course)
from grading import course, engine, lint, release, setup_cell, source
from grading import nbgrader_config as settings
from grading.__main__ import main

REAL_ASSIGNMENTS = [p.parent.name for p in solution_notebook_paths()]


def _codes(problems):
    return {p.code for p in problems}


def _lint_fixture(nb, tmp_path):
    path = tmp_path / "solutions" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(course.dumps(nb), encoding="utf-8")
    return lint.lint_notebook(path, tmp_path)


def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


# -- configuration --------------------------------------------------------------------------------

def test_config_values():
    c = settings.c
    assert Path(c.CourseDirectory.root) == REPO
    assert c.CourseDirectory.source_directory == "solutions"
    assert c.CourseDirectory.release_directory == "notebooks"
    assert c.CourseDirectory.course_id == "inside-the-cnn"
    assert c.Execute.timeout == 600 and c.Execute.interrupt_on_timeout is True
    assert c.IgnorePattern.enabled is True
    assert c.OverwriteCells.add_missing_cells is True
    stub = c.ClearSolutions.code_stub["python"]
    assert "YOUR CODE HERE" in stub and stub.splitlines()[-1] == "raise NotImplementedError()"
    # importing the module must not change this process's environment (only nbgrader's load does)
    assert settings.LOADED_BY_NBGRADER is False


def test_engine_config_is_a_copy_pointed_at_root(tmp_path):
    cfg = engine.course_config(tmp_path, db_url="sqlite:///x.db")
    assert cfg.CourseDirectory.root == str(tmp_path.resolve())
    assert settings.c.CourseDirectory.root == str(REPO)  # the module's config is untouched


def test_shim_loads_config_and_sets_kernel_env(tmp_path):
    """What nbgrader does at start-up: load ./nbgrader_config.py (the shim) with traitlets.

    Run in a subprocess (the load sets os.environ).  In a copy of the course the root follows the
    copy, and variables already set by the user win over the defaults (setdefault)."""
    copy_course(tmp_path, assignments=[])
    script = ("import json, os\nfrom traitlets.config.loader import PyFileConfigLoader\n"
              "c = PyFileConfigLoader('nbgrader_config.py', path='.').load_config()\n"
              "print(json.dumps({'root': c.CourseDirectory.root, 'src': c.CourseDirectory."
              "source_directory, 'pattern': c.IgnorePattern.pattern, 'env': {k: os.environ.get(k)"
              " for k in ('PYTHONWARNINGS', 'TQDM_DISABLE', 'COURSE_PROGRESS')}}))")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONWARNINGS", "TQDM_DISABLE", "COURSE_PROGRESS", "INSIDE_THE_CNN_ROOT")}
    for where, expect_root in ((REPO, REPO), (tmp_path, tmp_path)):
        out = subprocess.run([sys.executable, "-c", script], cwd=where, env=env, text=True,
                             capture_output=True, check=True).stdout
        got = json.loads(out)
        assert Path(got["root"]) == expect_root.resolve()
        assert got["src"] == "solutions" and got["pattern"] == settings.IGNORE_PATTERN
        assert got["env"] == settings.KERNEL_ENV
    env["PYTHONWARNINGS"] = "default"
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, text=True,
                         capture_output=True, check=True).stdout
    assert json.loads(out)["env"]["PYTHONWARNINGS"] == "default"


# -- IgnorePattern and the stderr rule (no kernel: outputs recorded from a real run) --------------

#: stderr chunks as a kernel really sends them (recorded from the fixture's noisy test cell).
RECORDED_STDERR = [
    "/tmp/ipykernel_5621/1444073498.py:6: UserWarning: fixture: a harmless UserWarning\n"
    "  warnings.warn(\"fixture: a harmless UserWarning\", UserWarning)\n"
    "/tmp/ipykernel_5621/1444073498.py:7: UserWarning: To copy construct from a tensor, it is "
    "recommended to use sourceTensor.detach().clone() or sourceTensor.detach().clone()."
    "requires_grad_(True), rather than torch.tensor(sourceTensor).\n"
    "  torch.tensor(torch.ones(2))\n",
    "\r  0%|          | 0/3 [00:00<?, ?it/s]",
    "\r 33%|███▎      | 1/3 [00:00<00:00, 104857.60it/s]",
    "\r100%|██████████| 3/3 [00:00<00:00, 3701.95it/s]",
    "\n",
    "\rloading: 12.0MB [00:03, 4.10MB/s]",  # tqdm with unknown total and a unit
    "/opt/lib/torch/nn/modules/module.py:1234: FutureWarning: `x` is deprecated\n",
    "\r  5%|▌         | 1/20 [1:02:03<19:38:57, 3723.00s/it]",  # hours, seconds per iteration
]


def _graded_cell(stderr_texts, points=2):
    cell = nbformat.v4.new_code_cell("assert True")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": points,
                                 "grade_id": "t", "schema_version": 3}
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=t) for t in stderr_texts]
    return cell


def _apply_ignore_pattern(cell):
    from nbgrader.preprocessors import IgnorePattern

    nb = nbformat.v4.new_notebook(cells=[cell])
    pp = IgnorePattern(config=copy.deepcopy(settings.c))
    nb, _ = pp(nb, {})
    return nb.cells[0]


def test_stderr_costs_all_points_without_the_filter():
    """The nbgrader rule the configuration defends against: any stderr output scores 0."""
    from nbgrader.utils import determine_grade

    assert determine_grade(_graded_cell([]))[0] == 2
    for text in RECORDED_STDERR:
        assert determine_grade(_graded_cell([text]))[0] == 0


def test_ignore_pattern_removes_warnings_and_progress_bars():
    from nbgrader.utils import determine_grade

    cell = _apply_ignore_pattern(_graded_cell(RECORDED_STDERR))
    assert cell.outputs == []
    assert determine_grade(cell)[0] == 2


@pytest.mark.parametrize("text", ["Traceback (most recent call last):\n  oops\n",
                                  "my debugging print\n", "Warning: not in the format of a warning\n",
                                  "progress 3/10\n"])
def test_ignore_pattern_keeps_other_stderr(text):
    """Only warnings, bars and blank output go: any other stderr still fails the cell."""
    from nbgrader.utils import determine_grade

    cell = _apply_ignore_pattern(_graded_cell([text]))
    assert [o.text for o in cell.outputs] == [text]
    assert determine_grade(cell)[0] == 0


# -- lint -----------------------------------------------------------------------------------------

def test_fixture_follows_every_rule(tmp_path):
    assert _lint_fixture(build_fixture_notebook(), tmp_path) == []


def _mutate(name):
    """Each mutation breaks exactly one convention; returns (mutated notebook, expected code)."""
    nb = build_fixture_notebook()
    setup_idx = course.find_setup_cell(nb)
    if name == "duplicate-grade-id":
        _cell(nb, "clamp_test").metadata.nbgrader["grade_id"] = "double_test"
    elif name == "test-unlocked":
        _cell(nb, "double_test").metadata.nbgrader["locked"] = False
    elif name == "points-sum":
        nb.cells[0].source = nb.cells[0].source.replace("(10 points)", "(12 points)")
    elif name == "outputs":
        _cell(nb, "clamp_test").outputs = [nbformat.v4.new_output("stream", text="clamp01 passed\n")]
    elif name == "outputs-execution-count":
        nb.cells[setup_idx].execution_count = 1
        return nb, "outputs"
    elif name == "trailing-expression":
        _cell(nb, "double_test").source += "\ndouble(2) / 4"
    elif name == "trailing-name":
        _cell(nb, "clamp_test").source += "\nscore = 1.0\nscore"
        return nb, "trailing-expression"
    elif name == "setup-missing":
        del nb.cells[setup_idx]
    elif name == "setup-position":
        nb.cells.insert(1, nbformat.v4.new_code_cell("x = 1", id="early"))
    elif name == "setup-source":
        nb.cells[setup_idx].source += "\nprint('edited by hand')"
    elif name == "setup-metadata":
        nb.cells[setup_idx].metadata.nbgrader["locked"] = False
    elif name == "solution-markers":
        cell = _cell(nb, "clamp_answer")
        cell.source = cell.source.replace("    ### END SOLUTION", "")
    elif name == "stray-marker":
        nb.cells.append(nbformat.v4.new_code_cell("### BEGIN SOLUTION\nsecret = 42\n### END SOLUTION",
                                                  id="stray"))
    elif name == "stray-hidden":
        cell = _cell(nb, "double_answer")
        cell.source += "\n### BEGIN HIDDEN TESTS\nassert True\n### END HIDDEN TESTS"
        return nb, "stray-marker"
    elif name == "title":
        nb.cells[0].source = "# 99 · A fixture assignment\n\nNo points in the title."
    elif name == "test-points":
        _cell(nb, "clamp_test").metadata.nbgrader["points"] = 0
    elif name == "written-answer":
        md = nbformat.v4.new_markdown_cell("Answer here", id="answer")
        md.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False,
                                   "grade_id": "loose_answer", "schema_version": 3}
        nb.cells.append(md)
    elif name == "kernelspec":
        nb.metadata.kernelspec["name"] = "my-env"
    elif name == "test-syntax":
        _cell(nb, "double_test").source += "\nassert (1 ==\n"
    elif name == "nbgrader-metadata":
        del _cell(nb, "double_test").metadata.nbgrader["points"]
    else:
        raise KeyError(name)
    return nb, name


MUTATIONS = ["duplicate-grade-id", "test-unlocked", "points-sum", "outputs", "outputs-execution-count",
             "trailing-expression", "trailing-name", "setup-missing", "setup-position",
             "setup-source", "setup-metadata", "solution-markers", "stray-marker", "stray-hidden",
             "title", "test-points", "written-answer", "kernelspec", "test-syntax",
             "nbgrader-metadata"]


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_lint_catches(mutation, tmp_path):
    nb, code = _mutate(mutation)
    problems = _lint_fixture(nb, tmp_path)
    assert code in _codes(problems), [str(p) for p in problems]


def test_lint_message_names_the_cell(tmp_path):
    nb, _ = _mutate("test-unlocked")
    (problem,) = [p for p in _lint_fixture(nb, tmp_path) if p.code == "test-unlocked"]
    assert problem.grade_id == "double_test" and problem.cell == 4
    assert str(problem).startswith(f"solutions/{FIXTURE_ID}/{FIXTURE_ID}.ipynb cell 4 [double_test]")


def test_lint_names_the_line_of_the_text_source(fixture_course):
    """A problem in a cell of the solution notebook points at that cell's header in the .py."""
    py, _ = _fixture_paths(fixture_course)
    text = py.read_text(encoding="utf-8")
    header = '# %% nbgrader="tests" id="double_test" points=3'
    py.write_text(text.replace(header, header.replace("points=3", "points=5")), encoding="utf-8")
    assert main(["--root", str(fixture_course), "release"]) == 0
    problems = lint.lint(fixture_course, release_files=False)[FIXTURE_ID]
    (problem,) = [p for p in problems if p.code == "points-sum"]
    assert problem.source_line is None  # not about one cell
    nb, _ = _mutate("test-unlocked")
    py.write_text(source.notebook_to_text(nb), encoding="utf-8")
    assert main(["--root", str(fixture_course), "release"]) == 0
    (problem,) = [p for p in lint.lint(fixture_course, release_files=False)[FIXTURE_ID]
                  if p.code == "test-unlocked"]
    line = _line_of(py.read_text(encoding="utf-8"), '"grade_id": "double_test"')  # a full dict
    assert str(problem).startswith(f"solutions/{FIXTURE_ID}/{FIXTURE_ID}.ipynb cell 4 [double_test] "
                                   f"(solutions/{FIXTURE_ID}/{FIXTURE_ID}.py line {line}): ")


def test_cell_ids_rule_reads_the_file(tmp_path):
    """nbformat invents random ids for cells without one (and the release would change on every
    run), so the rule must look at the raw JSON."""
    path = write_fixture_course(tmp_path)
    raw = json.loads(path.read_text())
    del raw["cells"][2]["id"]
    path.write_text(json.dumps(raw, indent=1))
    assert "cell-ids" in _codes(lint.lint_notebook(path, tmp_path))


@pytest.mark.parametrize("source,flagged", [
    ("assert f(1) == 2", False),
    ("print('ok')", False),
    ("assert_close(a, b)", True),     # any call but print could return a number
    ("loss.item()", True),
    ("x = f(1)", False),
    ("for i in range(3):\n    assert i < 3", False),
    ("%time y = 1\nassert y == 1", False),  # IPython syntax is understood
    ("1.0", True),
    ("score", True),
    ("result.value", True),
    ("passed / total", True),
    ("x = 2\nx * 0.5", True),
    ("-1", True),
])
def test_trailing_expression(source, flagged):
    assert (lint.trailing_expression(source) is not None) == flagged


def test_title_points():
    nb = build_fixture_notebook()
    assert lint.title_points(nb) == 10
    nb.cells[0].source = "Intro text\n\n## 01 · Filters (1 point)"
    assert lint.title_points(nb) == 1
    nb.cells[0].source = "# 01 · Filters (20 points) and more"
    assert lint.title_points(nb) is None


# -- text sources (solutions/NN_topic/NN_topic.py) ------------------------------------------------

def _fixture_paths(root):
    return course.source_path(root, FIXTURE_ID), course.solution_path(root, FIXTURE_ID)


def _line_of(text, needle):
    """1-based number of the first line of ``text`` that contains ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _view(nb):
    return [(c.cell_type, c.source, dict(c.metadata)) for c in nb.cells]


def test_fixture_text_round_trip(fixture_course):
    """notebook -> text -> notebook keeps every cell; text -> notebook -> text gives the text."""
    py, ipynb = _fixture_paths(fixture_course)
    text = py.read_text(encoding="utf-8")
    nb = build_fixture_notebook()
    built = source.notebook_from_text(text)
    assert _view(built) == _view(nb)
    assert source.notebook_to_text(built) == text
    assert ipynb.read_bytes() == source.build(fixture_course, FIXTURE_ID)
    assert lint.lint(fixture_course, release_files=False)[FIXTURE_ID] == []
    # the headers are the compact ones, and the setup cell is a placeholder
    assert '# %% nbgrader="tests" id="double_test" points=3\n' in text
    assert '# %% [markdown] nbgrader="manual" id="double_written" points=2\n' in text
    assert '# %% nbgrader="answer" id="clamp_answer"\n' in text
    assert f'# %% nbgrader="setup"\n{source.SETUP_PLACEHOLDER}\n' in text
    assert setup_cell.MARKER not in text


@pytest.mark.parametrize("assignment", REAL_ASSIGNMENTS)
def test_text_source_round_trip(assignment):
    """A committed text source is exactly what `python -m grading import` writes back from the
    notebook it builds (py -> ipynb -> py), and that notebook is the committed one."""
    src = course.source_path(REPO, assignment)
    assert src.exists(), f"{src} missing: run `python -m grading import {assignment}`"
    text = src.read_text(encoding="utf-8")
    nb = source.notebook_from_text(text, path=str(src))
    assert source.notebook_to_text(nb) == text, (
        f"{src} is not in canonical layout: run `python -m grading release {assignment} && "
        f"python -m grading import {assignment}`")
    committed = course.read_notebook(course.solution_path(REPO, assignment))
    assert _view(source.notebook_from_text(source.notebook_to_text(committed))) == _view(committed)


@pytest.mark.parametrize("assignment", REAL_ASSIGNMENTS)
def test_committed_solution_notebook_is_up_to_date(assignment):
    """solutions/NN/NN.ipynb must be what `python -m grading release` builds from NN.py now."""
    path = course.solution_path(REPO, assignment)
    assert path.read_bytes() == source.build(REPO, assignment), (
        f"{path} differs from what {assignment}.py builds: run `python -m grading release "
        f"{assignment}` (or `python -m grading import {assignment}` first if you edited the "
        "notebook) and commit the result")


@pytest.mark.parametrize("kind", sorted(source.KINDS))
def test_compact_kinds_expand_exactly_and_back(kind):
    points = 2.5 if source.KINDS[kind]["points"] else None
    full = source.expand(kind, "ex_1", points)
    assert full["schema_version"] == 3 and full["grade_id"] == "ex_1"
    assert set(full) >= {"grade", "solution", "locked", "task", "schema_version", "grade_id"}
    assert ("points" in full) == source.KINDS[kind]["points"]
    header = source.compact(full)
    assert header["nbgrader"] == kind and header["id"] == "ex_1"
    assert source.expand(header["nbgrader"], header["id"], header.get("points")) == full


def test_compact_vocabulary_covers_the_real_notebooks():
    """Every nbgrader cell of the course is written compactly (no full dictionaries)."""
    for assignment in REAL_ASSIGNMENTS:
        text = course.source_path(REPO, assignment).read_text(encoding="utf-8")
        assert "nbgrader={" not in text, assignment


def test_other_metadata_and_unusual_nbgrader_survive_the_round_trip():
    nb = build_fixture_notebook()
    _cell(nb, "double_test").metadata["tags"] = ["raises-exception"]
    _cell(nb, "double_test").metadata["deletable"] = False
    nb.cells[0].metadata["editable"] = False
    odd = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {
        "grade": True, "solution": True, "locked": True, "task": False, "points": 1,
        "grade_id": "odd", "schema_version": 3}})
    nb.cells.append(odd)
    nb.cells.append(nbformat.v4.new_code_cell("%%time\n%matplotlib inline\n!ls\nx = 1  # In[3]:"))
    nb.cells[1].metadata["collapsed"] = True  # view state: dropped
    text = source.notebook_to_text(nb)
    assert 'tags=["raises-exception"] deletable=false' in text
    assert 'nbgrader={"grade": true, "solution": true, "locked": true' in text
    back = source.notebook_from_text(text)
    del nb.cells[1].metadata["collapsed"]
    assert _view(back) == _view(nb)
    assert source.notebook_to_text(back) == text


def test_stable_ids():
    nb = source.notebook_from_text(source.notebook_to_text(build_fixture_notebook()))
    assert [c.id for c in nb.cells] == [
        "intro-1", "course-setup", "course-setup-1", "double_answer", "double_test",
        "double_noisy_test", "double_noisy_test-1", "double_written", "double_written-1",
        "clamp_answer", "clamp_test"]
    assert source.sanitize_id("a b/c") == "a-b-c" and len(source.sanitize_id("x" * 99)) == 64
    long = nbformat.v4.new_code_cell("", metadata={"nbgrader": {"grade_id": "é" * 70}})
    ids = source.stable_cell_ids([long, nbformat.v4.new_markdown_cell("")])
    assert all(source.CELL_ID_RE.match(i) for i in ids) and ids[1].endswith("-1")
    dup = nbformat.v4.new_code_cell("", metadata={"nbgrader": {"grade_id": "same"}})
    assert source.stable_cell_ids([dup, dup]) == ["same", "same_2"]


def test_ids_stable_under_insertion_of_a_markdown_cell(fixture_course):
    py, _ = _fixture_paths(fixture_course)
    text = py.read_text(encoding="utf-8")
    before = [c.id for c in source.notebook_from_text(text).cells]
    anchor = '# %% nbgrader="tests" id="double_test" points=3\n'
    edited = text.replace(anchor, "# %% [markdown]\n# A new hint before the tests.\n\n" + anchor)
    after = [c.id for c in source.notebook_from_text(edited).cells]
    assert len(after) == len(before) + 1
    i = before.index("double_test")
    assert after[:i] == before[:i]       # nothing above the insertion is renamed
    assert after[i] == "double_answer-1"  # the new cell, named after the graded cell above it
    assert after[i + 1:] == before[i:]   # and below it every id is the same


@pytest.mark.parametrize("bad,needle,message", [
    ('# %% nbgrader="answr" id="double_answer"', 'id="double_answer"', "unknown nbgrader kind 'answr'"),
    ('# %% nbgrader="tests" points=3', 'id="double_test"', 'needs id="..."'),
    ('# %% nbgrader="tests" id="double_test"', 'id="double_test"', "needs points=N"),
    ('# %% nbgrader="answer" id="double_answer" points=1', 'id="double_answer"', "not graded"),
    ('# %% nbgrader=tests id="double_test" points=3', 'id="double_test"', "key=value"),
    ('# %% id="double_test" points=3', 'id="double_test"', "belong to an nbgrader cell"),
    ('# %% Tests nbgrader="tests" id="double_test" points=3', 'id="double_test"', "cell title"),
])
def test_bad_header_names_file_and_line(fixture_course, capsys, bad, needle, message):
    py, ipynb = _fixture_paths(fixture_course)
    text = py.read_text(encoding="utf-8")
    line = _line_of(text, needle)
    lines = text.splitlines(keepends=True)
    lines[line - 1] = bad + "\n"
    py.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(source.SourceError) as exc:
        source.build(fixture_course, FIXTURE_ID)
    assert exc.value.line == line and message in str(exc.value)
    assert str(exc.value).startswith(f"solutions/{FIXTURE_ID}/{FIXTURE_ID}.py: line {line}: ")
    before = ipynb.read_bytes()
    assert main(["--root", str(fixture_course), "release"]) == 1
    out = capsys.readouterr().out
    assert f"ERROR solutions/{FIXTURE_ID}/{FIXTURE_ID}.py: line {line}: " in out and message in out
    assert ipynb.read_bytes() == before and not (fixture_course / "notebooks").exists()
    problems = lint.lint(fixture_course, release_files=False)[FIXTURE_ID]
    assert [p.code for p in problems if p.code.startswith("source")] == ["source-invalid"]
    assert f"line {line}: " in str(problems[0])


def test_setup_cell_body_and_text_before_the_first_cell(fixture_course):
    py, _ = _fixture_paths(fixture_course)
    text = py.read_text(encoding="utf-8")
    with pytest.raises(source.SourceError, match="edit that file"):
        source.notebook_from_text(text.replace(source.SETUP_PLACEHOLDER, "import os"))
    with pytest.raises(source.SourceError, match=r"line 1: text before the first cell marker"):
        source.notebook_from_text("import os\n\n" + text)


def test_notebook_that_a_script_cannot_hold_is_refused_clearly():
    nb = build_fixture_notebook()
    _cell(nb, "double_answer").source += "\n# %% looks like a cell marker"
    with pytest.raises(source.SourceError, match=r"^x.ipynb: cell 3 \[double_answer\]: the line .# %% looks"):
        source.notebook_to_text(nb, path="x.ipynb")
    nb = build_fixture_notebook()
    nb.cells[0].source += "\n%% a markdown line that the script would comment as '# %%'"
    with pytest.raises(source.SourceError, match=r"^x.ipynb: cell 0: the line "):
        source.notebook_to_text(nb, path="x.ipynb")


def test_release_builds_the_solution_notebook_only_when_bytes_change(fixture_course):
    py, ipynb = _fixture_paths(fixture_course)
    ipynb.unlink()
    report = release.release(fixture_course, echo=lambda s: None)
    assert report.ok and ipynb in report.written
    stamp = course.read_notebook(ipynb).metadata[release.STAMP_KEY]
    assert stamp["generated_from"] == f"solutions/{FIXTURE_ID}/{FIXTURE_ID}.py"
    assert f"python -m grading import {FIXTURE_ID}" in stamp["note"]
    mtime = ipynb.stat().st_mtime_ns
    report = release.release(fixture_course, echo=lambda s: None)
    assert report.written == [] and ipynb in report.unchanged and ipynb.stat().st_mtime_ns == mtime
    # a change of layout only (blank lines) changes no byte of the notebook
    py.write_text(py.read_text(encoding="utf-8").replace("\n\n# %%", "\n\n\n# %%"), encoding="utf-8")
    assert release.release(fixture_course, echo=lambda s: None).written == []
    problems = lint.lint(fixture_course, release_files=False)[FIXTURE_ID]
    assert [p.code for p in problems] == ["source-format"]
    assert main(["--root", str(fixture_course), "import", FIXTURE_ID]) == 0  # rewrites the layout
    assert lint.lint(fixture_course, release_files=False)[FIXTURE_ID] == []


def test_jupytext_header_is_ignored_and_normalised_away(fixture_course):
    """Saving the .py from JupyterLab through jupytext may add its YAML header: it builds the
    same notebook; lint asks for the canonical layout, which release + import restore."""
    py, ipynb = _fixture_paths(fixture_course)
    text = py.read_text(encoding="utf-8")
    header = ("# ---\n# jupyter:\n#   jupytext:\n#     text_representation:\n#       extension: .py\n"
              "#       format_name: percent\n#   kernelspec:\n#     name: python3\n# ---\n\n")
    py.write_text(header + text, encoding="utf-8")
    assert source.build(fixture_course, FIXTURE_ID) == ipynb.read_bytes()
    problems = lint.lint(fixture_course, release_files=False)[FIXTURE_ID]
    assert [p.code for p in problems] == ["source-format"] and "line 1" in str(problems[0])
    assert main(["--root", str(fixture_course), "release", FIXTURE_ID]) == 0
    assert main(["--root", str(fixture_course), "import", FIXTURE_ID]) == 0
    assert py.read_text(encoding="utf-8") == text


def test_release_fills_in_the_setup_cell(fixture_course, monkeypatch, capsys):
    assert main(["--root", str(fixture_course), "release"]) == 0
    monkeypatch.setattr(setup_cell, "SOURCE", setup_cell.SOURCE + "\n# a new line of the setup cell")
    capsys.readouterr()
    assert main(["--root", str(fixture_course), "release"]) == 0
    out = capsys.readouterr().out
    assert f"written: solutions/{FIXTURE_ID}/{FIXTURE_ID}.ipynb" in out
    assert f"written: notebooks/{FIXTURE_ID}/{FIXTURE_ID}.ipynb" in out
    for path in (course.solution_path(fixture_course, FIXTURE_ID),
                 fixture_course / "notebooks" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"):
        nb = course.read_notebook(path)
        setup = nb.cells[course.find_setup_cell(nb)]
        assert setup.source == setup_cell.SOURCE and setup.id == course.SETUP_CELL_ID


def test_release_refuses_to_overwrite_a_hand_edit_and_import_carries_it(fixture_course, capsys):
    py, ipynb = _fixture_paths(fixture_course)
    assert main(["--root", str(fixture_course), "release"]) == 0
    student = fixture_course / "notebooks" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"
    student_before = student.read_bytes()
    # edited in JupyterLab: a changed test, a new cell (random id), outputs, view state
    nb = course.read_notebook(ipynb)
    _cell(nb, "clamp_test").source = _cell(nb, "clamp_test").source.replace("0.5", "0.25")
    nb.cells.insert(3, nbformat.v4.new_markdown_cell("A hint added in JupyterLab.", id="a1b2c3d4"))
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="cpu\n")]
    nb.cells[1].execution_count = 1
    nb.cells[1].metadata["scrolled"] = True
    edited = course.dumps(nb)
    ipynb.write_text(edited, encoding="utf-8")
    text_before = py.read_text(encoding="utf-8")
    py.write_text(text_before.replace("\n\n# %%", "\n\n\n# %%", 1), encoding="utf-8")  # layout only
    capsys.readouterr()

    assert main(["--root", str(fixture_course), "release"]) == 1
    out = capsys.readouterr().out
    assert f"REFUSED: solutions/{FIXTURE_ID}/{FIXTURE_ID}.ipynb was not overwritten" in out
    assert "edited by hand" in out and "cell 3" in out and "[clamp_test]" in out
    assert f"python -m grading import {FIXTURE_ID}" in out and "--force" in out
    assert ipynb.read_text(encoding="utf-8") == edited
    assert student.read_bytes() == student_before  # nothing generated from an edited notebook
    codes = _codes(lint.lint(fixture_course, release_files=False)[FIXTURE_ID])
    assert "source-stale" in codes

    assert main(["--root", str(fixture_course), "import", FIXTURE_ID]) == 0
    text = py.read_text(encoding="utf-8")
    assert "assert clamp01(0.25) == 0.25" in text and "# A hint added in JupyterLab." in text
    assert len(text.splitlines()) == len(text_before.splitlines()) + 3  # the hint cell, nothing else
    assert main(["--root", str(fixture_course), "release"]) == 0
    nb = course.read_notebook(ipynb)
    assert nb.cells[3].id == "course-setup-2" and course.stored_outputs(nb) == []
    assert ipynb.read_bytes() == source.build(fixture_course, FIXTURE_ID)
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 0


def test_import_refuses_to_overwrite_changes_of_the_text_source(fixture_course, capsys):
    py, ipynb = _fixture_paths(fixture_course)
    assert main(["--root", str(fixture_course), "import"]) == 0
    assert "already matches" in capsys.readouterr().out
    # both sides edited: release and import refuse, each naming the way out
    py.write_text(py.read_text(encoding="utf-8").replace("double(2) == 4", "double(3) == 6"),
                  encoding="utf-8")
    nb = course.read_notebook(ipynb)
    nb.cells[0].source += "\n\nEdited in the notebook."
    ipynb.write_text(course.dumps(nb), encoding="utf-8")
    capsys.readouterr()
    assert main(["--root", str(fixture_course), "import", FIXTURE_ID]) == 1
    out = capsys.readouterr().out
    assert f"REFUSED: solutions/{FIXTURE_ID}/{FIXTURE_ID}.py has changes" in out and "--force" in out
    assert "double(3) == 6" in py.read_text(encoding="utf-8")
    assert main(["--root", str(fixture_course), "release", FIXTURE_ID]) == 1
    assert main(["--root", str(fixture_course), "import", FIXTURE_ID, "--force"]) == 0
    text = py.read_text(encoding="utf-8")
    assert "double(3) == 6" not in text and "# Edited in the notebook." in text


def test_import_of_a_notebook_without_text_source(tmp_path, capsys):
    """The one-time conversion: a hand-made notebook (no stamp, arbitrary ids) gets its .py."""
    path = course.solution_path(tmp_path, FIXTURE_ID)
    path.parent.mkdir(parents=True)
    path.write_text(course.dumps(build_fixture_notebook()), encoding="utf-8")
    assert _codes(lint.lint(tmp_path, release_files=False)[FIXTURE_ID]) == {"source-missing"}
    assert main(["--root", str(tmp_path), "release"]) == 1
    assert f"python -m grading import {FIXTURE_ID}" in capsys.readouterr().out
    assert main(["--root", str(tmp_path), "import"]) == 0
    assert main(["--root", str(tmp_path), "release"]) == 0  # the ids change, nothing else
    new = course.read_notebook(path)
    assert _view(new)[:1] == _view(build_fixture_notebook())[:1]
    assert [c.source for c in new.cells] == [c.source for c in build_fixture_notebook().cells]
    assert main(["--root", str(tmp_path), "check", "--lint-only"]) == 0


def test_editing_one_exercise_changes_only_its_notebooks(tmp_path):
    """Editing one exercise in one text source and releasing changes that assignment's two
    notebooks, in that exercise's cell only, and no other file."""
    copy_course(tmp_path)
    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks")
    target = REAL_ASSIGNMENTS[0]
    py = course.source_path(tmp_path, target)
    text = py.read_text(encoding="utf-8")
    header = next(line for line in text.splitlines() if line.startswith('# %% nbgrader="tests"'))
    grade_id = header.split('id="')[1].split('"')[0]

    def snapshot():
        return {p.relative_to(tmp_path).as_posix(): p.read_bytes()
                for folder in ("solutions", "notebooks") for p in (tmp_path / folder).rglob("*")
                if p.is_file()}

    before = snapshot()
    edited = text.replace(header + "\n", header + "\nassert True  # one more visible check\n", 1)
    py.write_text(edited, encoding="utf-8")
    report = release.release(tmp_path, echo=lambda s: None)
    after = snapshot()
    assert report.ok and report.refused == []
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == sorted([f"solutions/{target}/{target}.py", f"solutions/{target}/{target}.ipynb",
                              f"notebooks/{target}/{target}.ipynb"])
    assert set(after) == set(before)
    for folder in ("solutions", "notebooks"):
        rel = f"{folder}/{target}/{target}.ipynb"
        old = nbformat.reads(before[rel].decode(), as_version=4)
        new = nbformat.reads(after[rel].decode(), as_version=4)
        assert [c.id for c in old.cells] == [c.id for c in new.cells]
        differ = [c.id for c, d in zip(old.cells, new.cells) if c != d]
        assert differ == [grade_id], (folder, differ)


# -- release --------------------------------------------------------------------------------------

def test_release_is_deterministic_and_stamped(fixture_course):
    first = release.build(fixture_course, FIXTURE_ID)
    second = release.build(fixture_course, FIXTURE_ID)
    assert first == second and list(first) == [f"{FIXTURE_ID}.ipynb"]
    nb = nbformat.reads(first[f"{FIXTURE_ID}.ipynb"].decode(), as_version=4)
    assert nb.metadata[release.STAMP_KEY]["generated_from"] == f"solutions/{FIXTURE_ID}/{FIXTURE_ID}.ipynb"
    text = first[f"{FIXTURE_ID}.ipynb"].decode()
    assert "return 2 * x" not in text and "double(-3)" not in text  # solution, hidden test gone
    assert "raise NotImplementedError()" in text
    setup = nb.cells[course.find_setup_cell(nb)]
    assert setup.source == setup_cell.SOURCE and setup.metadata["editable"] is False
    assert release.STAMP_NOTE in nb.metadata[release.STAMP_KEY]["note"]
    assert "content_sha256" not in nb.metadata[release.STAMP_KEY]  # the solution's stamp is replaced

    report = release.release(fixture_course, echo=lambda s: None)
    assert report.ok and len(report.written) == 1
    dest = fixture_course / "notebooks" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"
    data = dest.read_bytes()
    assert data == first[f"{FIXTURE_ID}.ipynb"]
    report = release.release(fixture_course, echo=lambda s: None)
    assert report.ok and report.written == []
    assert report.unchanged == [course.solution_path(fixture_course, FIXTURE_ID), dest]
    assert dest.read_bytes() == data
    assert not (fixture_course / "gradebook.db").exists()


def test_release_with_and_without_gradebook_agree(fixture_course, tmp_path_factory):
    """release uses --no-db; autograde needs the gradebook: both must make the same notebook."""
    scratch = tmp_path_factory.mktemp("withdb")
    out = engine.generate(fixture_course, FIXTURE_ID, scratch / "rel",
                          db_url=f"sqlite:///{scratch / 'gb.db'}")
    nb = course.read_notebook(out / f"{FIXTURE_ID}.ipynb")
    release.stamp(nb, f"solutions/{FIXTURE_ID}/{FIXTURE_ID}.ipynb")
    assert course.dumps(nb).encode() == release.build(fixture_course, FIXTURE_ID)[f"{FIXTURE_ID}.ipynb"]


def test_release_refuses_to_overwrite_work_and_keeps_other_files(fixture_course, capsys):
    assert main(["--root", str(fixture_course), "release"]) == 0
    dest_dir = fixture_course / "notebooks" / FIXTURE_ID
    dest = dest_dir / f"{FIXTURE_ID}.ipynb"
    (dest_dir / "notes.txt").write_text("mine")
    # someone ran the student notebook in place ...
    nb = course.read_notebook(dest)
    nb.cells[1].execution_count = 1
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="cpu\n")]
    worked = course.dumps(nb)
    dest.write_text(worked, encoding="utf-8")
    # ... and then the solution changed
    src = course.source_path(fixture_course, FIXTURE_ID)
    text = src.read_text(encoding="utf-8")
    src.write_text(text.replace("# ## Exercise 1 · Double it (4 points)",
                                "# ## Exercise 1 · Double it (4 points) -- revised"), encoding="utf-8")
    capsys.readouterr()

    assert main(["--root", str(fixture_course), "release"]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "stored outputs" in out and "--force" in out
    assert dest.read_text(encoding="utf-8") == worked
    assert (dest_dir / "notes.txt").read_text() == "mine"

    assert main(["--root", str(fixture_course), "release", "--force"]) == 0
    assert "revised" in dest.read_text(encoding="utf-8")
    assert course.stored_outputs(course.read_notebook(dest)) == []
    assert (dest_dir / "notes.txt").read_text() == "mine"


def test_stale_release_is_detected(fixture_course, capsys):
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 1
    assert "release-missing" in capsys.readouterr().out
    assert main(["--root", str(fixture_course), "release"]) == 0
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 0
    # the text source changed, the notebooks were not built again
    src, ipynb = _fixture_paths(fixture_course)
    text = src.read_text(encoding="utf-8")
    src.write_text(text.replace("assert clamp01(0.5) == 0.5", "assert clamp01(0.25) == 0.25"),
                   encoding="utf-8")
    capsys.readouterr()
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 1
    out = capsys.readouterr().out
    assert "source-stale" in out and f"python -m grading release {FIXTURE_ID}" in out
    # the solution notebook was rebuilt but notebooks/ was not
    ipynb.write_bytes(source.build(fixture_course, FIXTURE_ID))
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 1
    out = capsys.readouterr().out
    assert "release-stale" in out and "source-stale" not in out
    # the solution notebook was edited by hand
    assert main(["--root", str(fixture_course), "release"]) == 0
    nb = course.read_notebook(ipynb)
    _cell(nb, "clamp_test").source += "\nassert clamp01(1) == 1.0"
    ipynb.write_text(course.dumps(nb), encoding="utf-8")
    capsys.readouterr()
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 1
    out = capsys.readouterr().out
    assert "source-stale" in out and "edited by hand" in out and "release-stale" in out
    assert f"python -m grading import {FIXTURE_ID}" in out


def test_release_of_a_broken_solution_fails_clearly(fixture_course, capsys):
    nb, _ = _mutate("duplicate-grade-id")
    src = course.source_path(fixture_course, FIXTURE_ID)
    src.write_text(source.notebook_to_text(nb), encoding="utf-8")
    assert main(["--root", str(fixture_course), "release"]) == 1
    out = capsys.readouterr().out
    error = next(line for line in out.splitlines() if line.startswith(f"{FIXTURE_ID}: ERROR"))
    assert "ValidationError: Duplicate grade id: double_test" in error
    assert not (fixture_course / "notebooks").exists()


def test_cli_usage_errors(fixture_course, capsys):
    assert main(["--root", str(fixture_course), "check", "42_nothing"]) == 2
    assert "42_nothing" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == 2


@pytest.mark.parametrize("assignment", REAL_ASSIGNMENTS)
def test_committed_student_notebook_is_up_to_date(assignment):
    """notebooks/ must be what `python -m grading release` makes from solutions/ right now."""
    built = release.build(REPO, assignment)
    for name, data in built.items():
        path = REPO / "notebooks" / assignment / name
        assert path.exists(), f"{path} missing: run `python -m grading release {assignment}`"
        assert path.read_bytes() == data, (f"{path} is stale: run `python -m grading release "
                                           f"{assignment}` and commit the result")


@pytest.mark.parametrize("assignment", REAL_ASSIGNMENTS)
def test_real_assignment_lint(assignment):
    problems = lint.lint(REPO, [assignment], release_files=False)[assignment]
    assert problems == [], "\n".join(map(str, problems))


# -- the nbgrader round trip (executes notebooks) -------------------------------------------------

def _round_trip(root: Path, assignment: str, release_files=None,
                students=("solution", "blank")):
    """Submit the solution as student "solution" and the untouched student notebook as "blank"
    (or only those named in ``students``), autograde them through `python -m grading autograde`,
    and return the expected points and the gradebook's scores."""
    built = release_files or release.build(root, assignment)
    expected_auto = {}
    for src in course.solution_notebooks(root, assignment):
        nb = course.read_notebook(src)
        for i in engine.autograded_tests(nb):
            meta = nb.cells[i].metadata.nbgrader
            expected_auto[(src.stem, meta["grade_id"])] = float(meta["points"])
        for student, data in (("solution", src.read_bytes()), ("blank", built[src.name])):
            if student not in students:
                continue
            dest = root / "submitted" / student / assignment / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
    assert main(["--root", str(root), "autograde", assignment]) == 0
    db_url = f"sqlite:///{root / 'gradebook.db'}"
    scores = {s: engine.read_scores(db_url, assignment, s) for s in students}
    return expected_auto, scores


def _check_scores(expected_auto, scores):
    auto = {s: {(g.notebook, g.grade_id): g for g in scores[s] if g.cell_type == "code"}
            for s in scores}
    for student in auto:
        assert set(auto[student]) == set(expected_auto), "gradebook and notebook disagree on tests"
    if "solution" in auto:
        lost = {k: (g.auto_score, g.max_score) for k, g in auto["solution"].items()
                if g.auto_score != expected_auto[k]}
        assert not lost, f"the solution loses points in: {lost}"
        total = sum(g.auto_score for g in auto["solution"].values())
        assert total == sum(expected_auto.values()) > 0
        manual = [g for g in scores["solution"] if g.cell_type == "markdown"]
        assert all(g.needs_manual_grade and g.auto_score is None for g in manual)
    if "blank" in auto:
        free = {k: g.auto_score for k, g in auto["blank"].items() if g.auto_score != 0}
        assert not free, f"the blank student notebook earns points in: {free}"


@pytest.mark.slow
def test_round_trip_fixture(fixture_course, capsys):
    """The fixture's noisy test cell writes warnings (forced on) and a tqdm bar to stderr; under
    the course configuration the solution still earns every autograded point."""
    expected, scores = _round_trip(fixture_course, FIXTURE_ID)
    assert expected == {(FIXTURE_ID, "double_test"): 3.0, (FIXTURE_ID, "double_noisy_test"): 1.0,
                        (FIXTURE_ID, "clamp_test"): 4.0}
    _check_scores(expected, scores)
    out = capsys.readouterr().out
    assert "solution: 8/8 autograded points; 2 points to grade by hand" in out
    assert "blank: 0/8 autograded points" in out
    graded = course.read_notebook(fixture_course / "autograded" / "solution" / FIXTURE_ID
                                  / f"{FIXTURE_ID}.ipynb")
    noisy = _cell(graded, "double_noisy_test")
    assert [o for o in noisy.outputs if o.get("name") == "stderr"] == []


@pytest.mark.slow
@pytest.mark.parametrize("assignment", REAL_ASSIGNMENTS)
def test_round_trip_real_assignment(assignment, tmp_path):
    """The committed student notebook, autograded by nbgrader, earns 0 points in every test cell.

    Each real notebook is executed once per property, not more: this run proves that the release
    gives nothing for free; the solution's full marks are proven by the run of the solution under
    nbval (tests/test_notebooks.py: every cell, test cells included, runs without an error, in
    notebook order), by the in-process harness (tests/test_notebook_mutants.py: every test cell
    passes the solution), and by the fixture's round trip above (a test cell that passes earns its
    points under nbgrader, stderr output included).  `python -m grading check` does both full
    executions for an instructor.
    """
    copy_course(tmp_path, [assignment])
    built = release.build(tmp_path, assignment)
    committed = REPO / "notebooks" / assignment
    files = {name: ((committed / name).read_bytes() if (committed / name).exists() else data)
             for name, data in built.items()}
    expected, scores = _round_trip(tmp_path, assignment, files, students=("blank",))
    _check_scores(expected, scores)


@pytest.mark.slow
def test_config_file_env_reaches_the_kernel(tmp_path):
    """`nbgrader validate` (no IgnorePattern in the validator!) from a copy of the course: a test
    cell that warns and shows a tqdm bar passes because the config file set PYTHONWARNINGS and
    TQDM_DISABLE for the kernel; with the user's own settings it fails."""
    copy_course(tmp_path, assignments=[])
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(
        "import warnings\nfrom tqdm import tqdm\nwarnings.warn('plain UserWarning')\n"
        "for _ in tqdm(range(3), mininterval=0):\n    pass\nprint('done')")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "points": 1,
                                 "grade_id": "noisy", "schema_version": 3}
    nb.cells.append(cell)
    (tmp_path / "noisy.ipynb").write_text(course.dumps(nb))
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONWARNINGS", "TQDM_DISABLE", "INSIDE_THE_CNN_ROOT")}

    def validate(extra_env):
        proc = subprocess.run([sys.executable, "-m", "nbgrader", "validate", "noisy.ipynb"],
                              cwd=tmp_path, env={**env, **extra_env}, text=True,
                              capture_output=True, timeout=300)
        return proc.stdout + proc.stderr

    out = validate({})
    assert "Success! Your notebook passes all the tests." in out, out
    out = validate({"PYTHONWARNINGS": "default", "TQDM_DISABLE": ""})
    assert "VALIDATION FAILED ON 1 CELL(S)" in out and "UserWarning" in out, out


@pytest.mark.slow
def test_execute_scores_like_autograde(tmp_path):
    """grading.engine.execute (what `check` uses): a passing, a failing, a noisy-but-passing test
    cell and a demo cell that raises, in one small notebook without the torch-importing setup."""
    def test_cell(source, gid, points=1):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                     "points": points, "grade_id": gid, "schema_version": 3}
        return cell

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("import os\nfast = os.environ.get('NBGRADER_EXECUTION')"),
        test_cell("assert fast == 'validate'", "sees_nbgrader_env", 2),
        test_cell("assert 1 + 1 == 3, 'arithmetic is broken'", "fails"),
        test_cell("import sys, warnings\nfrom tqdm import tqdm\nwith warnings.catch_warnings():\n"
                  "    warnings.simplefilter('always')\n    warnings.warn('noise')\n"
                  "for _ in tqdm(range(2), disable=False, file=sys.stderr, mininterval=0):\n"
                  "    pass", "noisy"),
        nbformat.v4.new_code_cell("raise ValueError('demo cell broke')"),
    ]
    path = tmp_path / "a" / "a.ipynb"
    path.parent.mkdir()
    path.write_text(course.dumps(nb))
    before = path.read_bytes()
    report = engine.execute(path, tmp_path)
    assert not report.crash
    got = {t.grade_id: (t.score, t.points) for t in report.tests}
    assert got == {"sees_nbgrader_env": (2, 2), "fails": (0, 1), "noisy": (1, 1)}
    assert "arithmetic is broken" in report.failed[0].error
    assert [i for i, _ in report.errors] == [2, 4] and "demo cell broke" in report.errors[1][1]
    assert path.read_bytes() == before and sorted(os.listdir(path.parent)) == ["a.ipynb"]
    assert "NBGRADER_EXECUTION" not in os.environ
