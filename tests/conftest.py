"""Shared test settings and fixtures.

Environment for every test (and every kernel a test starts, which inherits it):
* MPLBACKEND=Agg: no display needed, no GUI backend;
* COURSE_FAST=1: the notebooks and helpers run in fast mode (small images, few steps);
* COURSE_PROGRESS=0: no progress bars in test logs.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ["MPLBACKEND"] = "Agg"
os.environ["COURSE_FAST"] = "1"
os.environ["COURSE_PROGRESS"] = "0"

# Under pytest-xdist (addopts: -n auto) every worker is one process per core: give it, and the
# Jupyter kernels it starts (they inherit the environment), one torch/OpenMP thread, so that two
# workers on two cores do not each start two threads and fight.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

try:  # matplotlib may already be imported by a plugin; make sure it draws off-screen
    import matplotlib

    matplotlib.use("Agg", force=True)
except ImportError:  # pragma: no cover - matplotlib is a dependency of the course
    pass

REPO = Path(__file__).resolve().parent.parent


def solution_notebook_paths():
    """Every real assignment's solution notebook: solutions/NN_topic/NN_topic.ipynb."""
    return sorted(p for p in (REPO / "solutions").glob("[0-9][0-9]_*/*.ipynb")
                  if p.stem == p.parent.name and ".ipynb_checkpoints" not in p.parts)


# -- a small assignment that follows every convention of the course -------------------------------
FIXTURE_ID = "99_fixture"

#: (cell type, source, nbgrader metadata or None).  Points: 3 + 1 + 4 autograded, 2 by hand = 10.
FIXTURE_CELLS = [
    ("markdown", "# 99 · A fixture assignment (10 points)\n\nUsed by the grading tests.", None),
    ("setup", None, None),
    ("markdown", "## Exercise 1 · Double it (4 points)", None),
    ("code", "def double(x):\n    \"\"\"Return 2 * x.\"\"\"\n    ### BEGIN SOLUTION\n    return 2 * x\n"
             "    ### END SOLUTION",
     {"solution": True, "grade_id": "double_answer"}),
    ("code", "assert double(2) == 4, f\"double(2) should be 4, got {double(2)!r}\"\n"
             "### BEGIN HIDDEN TESTS\nassert double(-3) == -6\n### END HIDDEN TESTS",
     {"grade": True, "locked": True, "points": 3, "grade_id": "double_test"}),
    # A test cell that writes to stderr the three ways a PyTorch notebook does: a Python warning
    # (forced on with simplefilter("always") so that PYTHONWARNINGS cannot hide it), a warning
    # raised by torch itself, and a tqdm bar created with disable=False.  Under the course
    # configuration it must still earn its point.
    ("code", "import sys, warnings\nimport torch\nfrom tqdm import tqdm\n"
             "with warnings.catch_warnings():\n"
             "    warnings.simplefilter(\"always\")\n"
             "    warnings.warn(\"fixture: a harmless UserWarning\", UserWarning)\n"
             "    torch.tensor(torch.ones(2))  # torch: 'To copy construct from a tensor ...'\n"
             "for _ in tqdm(range(3), disable=False, file=sys.stderr, mininterval=0):\n"
             "    pass\n"
             "assert double(0.5) == 1.0",
     {"grade": True, "locked": True, "points": 1, "grade_id": "double_noisy_test"}),
    # nbgrader replaces the whole text of a markdown answer cell by the stub: the question lives
    # in the cell above it.
    ("markdown", "**Question (2 points).** Why is `double(a + b) == double(a) + double(b)`?", None),
    ("markdown", "Doubling is linear: 2(a + b) = 2a + 2b.",
     {"grade": True, "solution": True, "points": 2, "grade_id": "double_written"}),
    ("markdown", "## Exercise 2 · Clamp (4 points)", None),
    ("code", "def clamp01(x):\n    ### BEGIN SOLUTION\n    return min(1.0, max(0.0, x))\n"
             "    ### END SOLUTION",
     {"solution": True, "grade_id": "clamp_answer"}),
    ("code", "assert clamp01(0.5) == 0.5\nassert clamp01(2) == 1.0\n"
             "### BEGIN HIDDEN TESTS\nassert clamp01(-1) == 0.0\n### END HIDDEN TESTS\n"
             "print(\"clamp01 passed\")",
     {"grade": True, "locked": True, "points": 4, "grade_id": "clamp_test"}),
]


def build_fixture_notebook():
    """The fixture assignment as an nbformat notebook (the source/solution version)."""
    import nbformat

    from grading import course

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source, meta) in enumerate(FIXTURE_CELLS):
        if kind == "setup":
            cell = course.new_setup_cell(nb)
        else:
            make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
            cell = make(source)
            if meta is not None:
                full = {"grade": False, "locked": False, "schema_version": 3, "solution": False,
                        "task": False}
                full.update(meta)
                cell.metadata["nbgrader"] = full
        cell["id"] = f"cell-{i:02d}" if kind != "setup" else cell["id"]
        nb.cells.append(cell)
    return nb


def write_fixture_course(root: Path, assignment: str = FIXTURE_ID) -> Path:
    """Create the fixture assignment under ``root/solutions/<assignment>/``: its text source
    ``<assignment>.py`` (what ``python -m grading import`` writes) and the solution notebook
    ``<assignment>.ipynb`` that ``python -m grading release`` builds from it; return the
    notebook's path."""
    from grading import course, source

    path = course.solution_path(root, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    course.source_path(root, assignment).write_text(
        source.notebook_to_text(build_fixture_notebook()), encoding="utf-8")
    path.write_bytes(source.build(root, assignment))
    return path


@pytest.fixture
def fixture_course(tmp_path):
    """A course root in tmp_path holding the fixture assignment's solution (no release yet)."""
    write_fixture_course(tmp_path)
    return tmp_path


def copy_course(dest: Path, assignments=None) -> Path:
    """Copy solutions/ (all or some assignments) and the grading config into ``dest``."""
    for src in sorted((REPO / "solutions").iterdir()) if (REPO / "solutions").is_dir() else []:
        if src.is_dir() and (assignments is None or src.name in assignments):
            shutil.copytree(src, dest / "solutions" / src.name,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    (dest / "grading").mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "grading" / "nbgrader_config.py", dest / "grading" / "nbgrader_config.py")
    shutil.copy2(REPO / "nbgrader_config.py", dest / "nbgrader_config.py")
    return dest


PYTHON = sys.executable


@pytest.fixture(scope="session")
def model():
    """The course's EfficientNet-Lite0 with its bundled ImageNet weights, loaded once per session.

    Shared by every test file: a test must leave it as it found it (the helpers promise that for
    mode, flags, grads and hooks; tests that edit weights work on a copy.deepcopy).
    """
    from helpers.models import load_model

    return load_model("efficientnet_lite0")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: executes notebooks in Jupyter kernels (seconds to minutes)")
