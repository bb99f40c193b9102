"""Tests of the instructor toolbox (grading/) and of the nbgrader facts it relies on.

Fast tests (no kernel): configuration, lint rules on a fixture assignment built in tmp_path,
release determinism, setup-cell sync, refusal to overwrite work, IgnorePattern on recorded stderr.

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
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import (FIXTURE_ID, REPO, build_fixture_notebook, copy_course, solution_notebook_paths,
                      write_fixture_course)
from grading import course, engine, lint, release, setup_cell
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


# -- setup cell sync ------------------------------------------------------------------------------

def test_sync_rewrites_only_the_setup_cell(tmp_path):
    path = write_fixture_course(tmp_path)
    nb = course.read_notebook(path)
    idx = course.find_setup_cell(nb)
    nb.cells[idx].source = setup_cell.MARKER + "\nimport helpers  # an old version of the cell"
    nb.cells[idx].metadata["tags"] = ["keep-me"]
    path.write_text(course.dumps(nb), encoding="utf-8")
    before = course.read_notebook(path)

    result = course.sync_setup_cell(path)
    assert result.action == "updated" and not result.reformatted
    after = course.read_notebook(path)
    assert after.cells[idx].source == setup_cell.SOURCE
    assert after.cells[idx].metadata["tags"] == ["keep-me"]
    # everything else is byte-for-byte the same: patch the old notebook by hand and compare
    before.cells[idx].source = setup_cell.SOURCE
    assert path.read_text(encoding="utf-8") == course.dumps(before)

    mtime = path.stat().st_mtime_ns
    assert course.sync_setup_cell(path).action == "unchanged"
    assert path.stat().st_mtime_ns == mtime


def test_sync_inserts_a_missing_setup_cell(tmp_path):
    path = write_fixture_course(tmp_path)
    nb = course.read_notebook(path)
    del nb.cells[course.find_setup_cell(nb)]
    path.write_text(course.dumps(nb), encoding="utf-8")
    assert course.sync_setup_cell(path).action == "inserted"
    assert lint.lint_notebook(path, tmp_path) == []


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

    report = release.release(fixture_course, echo=lambda s: None)
    assert report.ok and len(report.written) == 1
    dest = fixture_course / "notebooks" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"
    data = dest.read_bytes()
    assert data == first[f"{FIXTURE_ID}.ipynb"]
    report = release.release(fixture_course, echo=lambda s: None)
    assert report.ok and report.written == [] and report.unchanged == [dest]
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
    src = fixture_course / "solutions" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"
    snb = course.read_notebook(src)
    snb.cells[2].source += " -- revised"
    src.write_text(course.dumps(snb), encoding="utf-8")
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


def test_release_prints_synced_setup_cells(fixture_course, capsys):
    src = fixture_course / "solutions" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"
    nb = course.read_notebook(src)
    nb.cells[course.find_setup_cell(nb)].source += "\n# stale"
    src.write_text(course.dumps(nb), encoding="utf-8")
    assert main(["--root", str(fixture_course), "release", "99"]) == 0
    out = capsys.readouterr().out
    assert f"setup cell updated: solutions/{FIXTURE_ID}/{FIXTURE_ID}.ipynb" in out
    assert lint.lint_notebook(src, fixture_course) == []


def test_stale_release_is_detected(fixture_course, capsys):
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 1
    assert "release-missing" in capsys.readouterr().out
    assert main(["--root", str(fixture_course), "release"]) == 0
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 0
    src = fixture_course / "solutions" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"
    nb = course.read_notebook(src)
    _cell(nb, "clamp_test").source = _cell(nb, "clamp_test").source.replace("0.5", "0.25")
    src.write_text(course.dumps(nb), encoding="utf-8")
    capsys.readouterr()
    assert main(["--root", str(fixture_course), "check", "--lint-only"]) == 1
    out = capsys.readouterr().out
    assert "release-stale" in out and f"python -m grading release {FIXTURE_ID}" in out


def test_release_of_a_broken_solution_fails_clearly(fixture_course, capsys):
    nb, _ = _mutate("duplicate-grade-id")
    src = fixture_course / "solutions" / FIXTURE_ID / f"{FIXTURE_ID}.ipynb"
    src.write_text(course.dumps(nb), encoding="utf-8")
    assert main(["--root", str(fixture_course), "release"]) == 1
    out = capsys.readouterr().out
    assert "ValidationError: Duplicate grade id: double_test" in out.splitlines()[0]
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

def _round_trip(root: Path, assignment: str, release_files=None):
    """Submit the solution as student "solution" and the untouched student notebook as "blank",
    autograde both through `python -m grading autograde`, and return the gradebook's scores."""
    built = release_files or release.build(root, assignment)
    expected_auto = {}
    for src in course.solution_notebooks(root, assignment):
        nb = course.read_notebook(src)
        for i in engine.autograded_tests(nb):
            meta = nb.cells[i].metadata.nbgrader
            expected_auto[(src.stem, meta["grade_id"])] = float(meta["points"])
        for student, data in (("solution", src.read_bytes()), ("blank", built[src.name])):
            dest = root / "submitted" / student / assignment / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
    assert main(["--root", str(root), "autograde", assignment]) == 0
    db_url = f"sqlite:///{root / 'gradebook.db'}"
    scores = {s: engine.read_scores(db_url, assignment, s) for s in ("solution", "blank")}
    return expected_auto, scores


def _check_scores(expected_auto, scores):
    auto = {s: {(g.notebook, g.grade_id): g for g in scores[s] if g.cell_type == "code"}
            for s in scores}
    assert set(auto["solution"]) == set(expected_auto), "gradebook and notebook disagree on tests"
    lost = {k: (g.auto_score, g.max_score) for k, g in auto["solution"].items()
            if g.auto_score != expected_auto[k]}
    assert not lost, f"the solution loses points in: {lost}"
    total = sum(g.auto_score for g in auto["solution"].values())
    assert total == sum(expected_auto.values()) > 0
    free = {k: g.auto_score for k, g in auto["blank"].items() if g.auto_score != 0}
    assert not free, f"the blank student notebook earns points in: {free}"
    manual = [g for g in scores["solution"] if g.cell_type == "markdown"]
    assert all(g.needs_manual_grade and g.auto_score is None for g in manual)


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
    copy_course(tmp_path, [assignment])
    built = release.build(tmp_path, assignment)
    committed = REPO / "notebooks" / assignment
    files = {name: ((committed / name).read_bytes() if (committed / name).exists() else data)
             for name, data in built.items()}
    expected, scores = _round_trip(tmp_path, assignment, files)
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
