"""Thin, tested wrappers around nbgrader's Python API, configured the course's way.

* :func:`course_config` -- the settings of ``grading/nbgrader_config.py`` for a given root.
* :func:`grading_env` -- the environment nbgrader's kernels must see (and clean-up afterwards).
* :func:`generate` -- ``nbgrader generate_assignment`` into any folder.
* :func:`execute` -- run a notebook the way nbgrader's validator does, then score every
  autograded test cell the way autograde does (IgnorePattern included).
* :func:`autograde` and :func:`read_scores` -- ``nbgrader autograde`` and the gradebook's answer.
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

import nbformat
from traitlets.config import Config

from . import nbgrader_config as course_settings


class GradingError(RuntimeError):
    """nbgrader failed; the message carries nbgrader's log."""

    @property
    def summary(self) -> str:
        """The first concrete error in nbgrader's log (e.g. "ValidationError: Duplicate grade id")."""
        text = str(self)
        for line in text.splitlines():
            m = re.search(r"(\w+(?:Error|Exception)): (.+)", line)
            if m and "Please see the" not in m.group(2):
                return f"{m.group(1)}: {m.group(2).strip()}"
        return text.strip().splitlines()[-1] if text.strip() else "nbgrader failed"


def _quiet_sqlalchemy() -> None:
    try:
        from sqlalchemy.exc import SAWarning
    except ImportError:  # pragma: no cover
        return
    warnings.filterwarnings("ignore", category=SAWarning)


def course_config(root: Path, *, db_url: Optional[str] = None, release_dir: Optional[Path] = None,
                  no_database: bool = False) -> Config:
    """A fresh copy of the course's nbgrader configuration, pointed at ``root``.

    ``db_url`` (default ``sqlite:///<root>/gradebook.db``) and ``release_dir`` (default
    ``<root>/notebooks``) redirect the gradebook and the student notebooks, e.g. into a temporary
    folder.  ``no_database`` is nbgrader's ``--no-db``: nothing is read from or saved to a gradebook.
    """
    cfg = copy.deepcopy(course_settings.c)
    cfg.CourseDirectory.root = str(Path(root).resolve())
    if db_url is not None:
        cfg.CourseDirectory.db_url = db_url
    if release_dir is not None:
        cfg.CourseDirectory.release_directory = str(Path(release_dir).resolve())
    if no_database:
        cfg.SaveCells.enabled = False
        cfg.GenerateAssignment.no_database = True
    return cfg


@contextlib.contextmanager
def grading_env() -> Iterator[None]:
    """Environment for nbgrader work in this process; everything is restored on exit.

    * the kernel variables of ``nbgrader_config.KERNEL_ENV`` (unless already set), which the
      kernels nbgrader starts inherit;
    * this interpreter's ``bin`` folder on PATH: nbgrader's Gradebook runs the ``alembic``
      executable by name, which fails when the virtual environment is not activated;
    * nbgrader sets NBGRADER_EXECUTION / NBGRADER_VALIDATING while it runs a notebook and does not
      remove them when the run raises; restoring the whole environment undoes that too.
    """
    saved = dict(os.environ)
    try:
        for name, value in course_settings.KERNEL_ENV.items():
            os.environ.setdefault(name, value)
        bindir = str(Path(sys.executable).parent)
        path = os.environ.get("PATH", "")
        if bindir not in path.split(os.pathsep):
            os.environ["PATH"] = bindir + (os.pathsep + path if path else "")
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run(app) -> str:
    from nbgrader.utils import capture_log

    with warnings.catch_warnings():
        # nbgrader 0.9 + SQLAlchemy 2 warn "Object of type <SubmittedAssignment> not in session"
        # on every autograde; the grades are stored correctly (the tests read them back).
        _quiet_sqlalchemy()
        result = capture_log(app)
    if not result["success"]:
        raise GradingError((result.get("log") or "") + (result.get("error") or ""))
    return result.get("log", "")


def generate(root: Path, assignment: str, release_dir: Path, *, db_url: Optional[str] = None) -> Path:
    """Run nbgrader's generate_assignment for ``solutions/<assignment>`` into ``release_dir``.

    Without ``db_url`` nothing touches a gradebook (``--no-db``); with it the assignment, its
    notebooks and their grade cells are recorded there (needed before autograde).  Returns the
    folder ``release_dir/<assignment>``.  nbgrader deletes that folder before writing it: point
    ``release_dir`` at a scratch folder, never at notebooks/ (see ``grading.release``).
    """
    from nbgrader.converters import GenerateAssignment
    from nbgrader.coursedir import CourseDirectory

    cfg = course_config(root, db_url=db_url, release_dir=release_dir, no_database=db_url is None)
    cfg.CourseDirectory.assignment_id = assignment
    with grading_env():
        coursedir = CourseDirectory(config=cfg)
        app = GenerateAssignment(coursedir=coursedir, config=cfg)
        app.force = True
        app.create_assignment = True
        _run(app)
    return Path(release_dir) / assignment


# -- executing and scoring ------------------------------------------------------------------

@dataclass
class TestOutcome:
    """One autograded test cell after execution."""

    index: int
    grade_id: str
    points: float
    score: float
    error: str = ""

    @property
    def passed(self) -> bool:
        return self.score >= self.points


@dataclass
class RunReport:
    """What happened when a notebook was executed top to bottom."""

    path: Path
    seconds: float
    tests: List[TestOutcome] = field(default_factory=list)
    #: (cell index, first line of the error) of every cell with an error output
    errors: List[tuple] = field(default_factory=list)
    #: set when the run itself failed (kernel died, could not start, ...)
    crash: str = ""
    executed: Optional[nbformat.NotebookNode] = None

    @property
    def passed(self) -> List[TestOutcome]:
        return [t for t in self.tests if t.passed]

    @property
    def failed(self) -> List[TestOutcome]:
        return [t for t in self.tests if not t.passed]


def _error_text(cell) -> str:
    from nbconvert.filters import strip_ansi

    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "error":
            text = f"{out.ename}: {out.evalue}".strip()
            if not str(out.evalue).strip():  # a bare assert: show the line that failed
                arrows = [strip_ansi(line).strip() for line in out.get("traceback", [])
                          for line in line.splitlines() if "---->" in strip_ansi(line)]
                if arrows:
                    text += f" at {arrows[-1].replace('---->', '').strip()}"
            parts.append(text)
        elif out.output_type == "stream" and out.name == "stderr":
            parts.append("stderr: " + out.text.strip().splitlines()[0] if out.text.strip() else "stderr")
    return "; ".join(parts)


def autograded_tests(nb) -> List[int]:
    """Indices of the autograded test cells: code cells with grade=true and solution=false."""
    from nbgrader import utils

    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and utils.is_grade(c) and not utils.is_solution(c)]


def execute(notebook: Path, root: Optional[Path] = None) -> RunReport:
    """Execute ``notebook`` like ``nbgrader validate`` and score its tests like ``autograde``.

    The notebook's folder is copied to a scratch folder first (a notebook may write files next
    to itself; the repository must stay clean).  nbgrader's own preprocessors do the work, with
    the course configuration: CheckCellMetadata, ClearOutput and Execute (the validator's
    sequence, with NBGRADER_EXECUTION set so that ``helpers.is_fast()`` is True), then
    IgnorePattern (autograde's stderr filter).  Each autograded test cell gets
    ``nbgrader.utils.determine_grade`` -- the function autograde uses.
    """
    from nbgrader import utils
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, Execute, IgnorePattern
    from nbgrader.validator import Validator

    notebook = Path(notebook).resolve()
    cfg = course_config(root or notebook.parent)
    parent = Validator(config=cfg)
    start = time.perf_counter()
    report = RunReport(notebook, 0.0)
    with tempfile.TemporaryDirectory(prefix="grading-run-") as scratch:
        workdir = Path(scratch) / notebook.parent.name
        shutil.copytree(notebook.parent, workdir, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        nb = nbformat.read(str(workdir / notebook.name), as_version=4)
        resources = {"metadata": {"path": str(workdir)}}
        try:
            with grading_env():
                os.environ["NBGRADER_VALIDATING"] = "1"
                os.environ["NBGRADER_EXECUTION"] = "validate"
                for pp_class in (CheckCellMetadata, ClearOutput, Execute, IgnorePattern):
                    nb, resources = pp_class(parent=parent)(nb, resources)
        except Exception as exc:  # kernel died, could not start, ...
            report.crash = f"{type(exc).__name__}: {exc}".strip()
    report.seconds = time.perf_counter() - start
    report.executed = nb
    for i in autograded_tests(nb):
        cell = nb.cells[i]
        score, max_score = utils.determine_grade(cell)
        report.tests.append(TestOutcome(i, cell.metadata.nbgrader.get("grade_id", "?"),
                                        float(max_score), float(score or 0.0), _error_text(cell)))
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(o.output_type == "error" for o in cell.get("outputs", [])):
            report.errors.append((i, _error_text(cell)))
    return report


# -- autograde ------------------------------------------------------------------------------

def autograde(root: Path, assignment: str, student: str, *, db_url: Optional[str] = None) -> str:
    """Run nbgrader autograde for ``submitted/<student>/<assignment>``; returns nbgrader's log.

    The assignment must be in the gradebook (run :func:`generate` with the same ``db_url``, or
    ``nbgrader generate_assignment``, first).
    """
    from nbgrader.converters import Autograde
    from nbgrader.coursedir import CourseDirectory

    cfg = course_config(root, db_url=db_url)
    cfg.CourseDirectory.assignment_id = assignment
    cfg.CourseDirectory.student_id = student
    with grading_env():
        coursedir = CourseDirectory(config=cfg)
        app = Autograde(coursedir=coursedir, config=cfg)
        app.force = True
        app.create_student = True
        return _run(app)


@dataclass
class Score:
    """One grade of a submission, as the gradebook records it."""

    notebook: str
    grade_id: str
    cell_type: str  # "code" (autograded test) or "markdown" (written answer)
    auto_score: Optional[float]
    max_score: float
    needs_manual_grade: bool


def read_scores(db_url: str, assignment: str, student: str, course_id: str = course_settings.COURSE_ID
                ) -> List[Score]:
    """Every grade of one student's submission of ``assignment``, read from the gradebook."""
    from nbgrader.api import Gradebook

    with warnings.catch_warnings(), grading_env(), Gradebook(db_url, course_id) as gb:
        _quiet_sqlalchemy()
        submission = gb.find_submission(assignment, student)
        return [Score(nb.name, g.name, g.cell_type, g.auto_score, float(g.max_score),
                      bool(g.needs_manual_grade))
                for nb in submission.notebooks for g in nb.grades]
