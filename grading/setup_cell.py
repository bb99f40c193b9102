"""The one setup cell that opens every notebook of the course.

This file is its single source of truth.  ``python -m grading release`` copies it into the first
code cell of every solution notebook (then nbgrader copies it into the student notebooks), and
``python -m grading check`` fails when a notebook's copy differs.  Edit it here, never in a notebook.

What the cell does:
* in Google Colab (and only there, and never while nbgrader grades) it installs the course
  package, which Colab does not have;
* everywhere it imports ``helpers``, picks the device (CUDA, then MPS, then CPU), seeds every
  random generator and prints the versions a helper would ask for in a bug report.
"""
from __future__ import annotations

#: Where Colab installs the course package from.  Instructors who fork the course point this at
#: their fork (a git URL pip understands, optionally @tag).
COLAB_PIP_SPEC = "git+https://github.com/inside-the-cnn/inside-the-cnn"

#: First line of the cell; the release pipeline finds the cell by it.
MARKER = "# Course setup -- generated from grading/setup_cell.py by `python -m grading release`; do not edit."

#: nbgrader id of the cell (it is a locked, read-only cell).
GRADE_ID = "course_setup"

SOURCE = f"""{MARKER}
import os, sys
if "google.colab" in sys.modules and not os.environ.get("NBGRADER_EXECUTION"):
    try:
        import helpers  # already installed in this Colab runtime
    except ImportError:
        get_ipython().run_line_magic("pip", "install -q {COLAB_PIP_SPEC!s}")
import helpers
device = helpers.get_device()
helpers.seed_everything(0)
print(helpers.environment_report(device))"""
