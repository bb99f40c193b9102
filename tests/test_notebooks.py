"""Every solution notebook runs top to bottom in fast mode (nbval, lax mode).

How: one test per notebook, each running ``pytest --nbval-lax --nbval-current-env`` in a
subprocess on a scratch copy of the notebook's folder.  Chosen over letting this pytest session
collect the notebooks itself because
* a notebook is one test with one name (``pytest tests/test_notebooks.py -k 03_saliency``), and
  its failure shows the cell that broke, instead of one item per cell where every cell after a
  failure fails again;
* the copy keeps the repository clean: a notebook that saves a picture next to itself (the kernel's
  working directory is the notebook's folder) writes into tmp, not into solutions/;
* nothing in pyproject.toml (``testpaths = ["tests"]``) or in other tests' collection changes;
* the kernel inherits a clean, known environment (COURSE_FAST=1, MPLBACKEND=Agg, no
  NBGRADER_EXECUTION), set in tests/conftest.py.
The price is one pytest start-up (about two seconds) per notebook, next to about a minute of
notebook.  Each solution notebook is executed exactly once in the whole suite, here: a test cell
that fails raises, so this run also proves that the solution passes every test cell in notebook
order (the nbgrader round trip in test_grading.py executes only the *student* notebook, to prove
that it earns nothing).

Lax mode: a cell fails only when it raises; outputs are compared only in cells marked
``# NBVAL_CHECK_OUTPUT``.  --nbval-current-env: the kernel runs in this interpreter's environment,
whatever kernel name the notebook's metadata holds.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import solution_notebook_paths

#: Same per-cell limit as nbgrader's (grading/nbgrader_config.py: Execute.timeout).
CELL_TIMEOUT = 600
NBVAL_ARGS = ["--nbval-lax", "--nbval-current-env", f"--nbval-cell-timeout={CELL_TIMEOUT}",
              "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--tb=short", "--color=no"]


def run_nbval(notebook: Path, scratch: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Copy the notebook's folder into ``scratch`` and run nbval on the copy."""
    workdir = scratch / notebook.parent.name
    shutil.copytree(notebook.parent, workdir,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBGRADER_")}
    env.update(COURSE_FAST="1", MPLBACKEND="Agg", COURSE_PROGRESS="0")
    return subprocess.run([sys.executable, "-m", "pytest", *NBVAL_ARGS, "--rootdir", str(scratch),
                           str(workdir / notebook.name)],
                          cwd=scratch, env=env, text=True, capture_output=True, timeout=timeout)


def _tail(text: str, n: int = 12000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


@pytest.mark.slow
@pytest.mark.parametrize("notebook", solution_notebook_paths(), ids=lambda p: p.parent.name)
def test_solution_notebook_runs(notebook, tmp_path):
    proc = run_nbval(notebook, tmp_path)
    if proc.returncode != 0:
        pytest.fail(f"{notebook.relative_to(notebook.parents[2])} failed under nbval "
                    f"(exit {proc.returncode}):\n{_tail(proc.stdout + proc.stderr)}", pytrace=False)


@pytest.mark.slow
def test_runner_reports_a_broken_notebook(tmp_path):
    """The runner above can fail: a notebook whose second cell raises is reported, a good one not."""
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 41"),
                                           nbformat.v4.new_code_cell("assert x + 1 == 42")])
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 41"),
                                          nbformat.v4.new_code_cell("assert x == 42, 'x is 41'")])
    for name, nb in (("good", good), ("bad", bad)):
        folder = tmp_path / "src" / name
        folder.mkdir(parents=True)
        nbformat.write(nb, str(folder / f"{name}.ipynb"))
    ok = run_nbval(tmp_path / "src" / "good" / "good.ipynb", tmp_path / "run_good")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 passed" in ok.stdout
    broken = run_nbval(tmp_path / "src" / "bad" / "bad.ipynb", tmp_path / "run_bad")
    assert broken.returncode == 1
    assert "x is 41" in broken.stdout and "1 failed, 1 passed" in broken.stdout
