"""nbgrader configuration of the course "Inside the CNN".

nbgrader reads this file through the root-level ``nbgrader_config.py`` (a two-line shim), so every
``nbgrader ...`` command and the formgrader work when started from the repository root.
``python -m grading`` imports this module and uses the same settings (see ``grading/engine.py``).

Layout (nbgrader names -> this repository)::

    source/<assignment>/<nb>.ipynb     ->  solutions/<assignment>/<nb>.ipynb   (built from <nb>.py)
    release/<assignment>/<nb>.ipynb    ->  notebooks/<assignment>/<nb>.ipynb   (generated)
    submitted/ autograded/ feedback/   ->  same names, git-ignored, instructor side only
    gradebook.db                       ->  <root>/gradebook.db, git-ignored

The course root is the folder above ``grading/``, found from this file's location, so a copy of
the course (for example a fresh clone on the grading machine) needs no edit.  Override it with
``nbgrader ... --course-dir=PATH`` (the command line wins over this file) or with the environment
variable ``INSIDE_THE_CNN_ROOT``.

Use ``python -m grading release`` rather than ``nbgrader generate_assignment`` to make the student
notebooks: nbgrader deletes ``notebooks/<assignment>/`` before writing it and does not stamp the
result (CI would then call notebooks/ stale).  To grade, ``python -m grading autograde NN_topic``
records the assignment in gradebook.db (generating into a scratch folder) and autogrades every
``submitted/<student>/NN_topic/``; after that the formgrader, ``nbgrader generate_feedback`` and
``nbgrader export`` work as usual.  nbgrader's gradebook runs the ``alembic`` executable: activate
the virtual environment (or put its bin/ on PATH) before running ``nbgrader`` itself.
"""
import os
from pathlib import Path

try:  # traitlets provides get_config() when nbgrader loads this file as its configuration
    c = get_config()  # noqa: F821
    LOADED_BY_NBGRADER = True
except NameError:  # imported as a module (python -m grading, the tests): a private Config
    from traitlets.config import Config

    c = Config()
    LOADED_BY_NBGRADER = False

#: The course root (absolute): the folder holding solutions/, notebooks/ and grading/.
ROOT = Path(os.environ.get("INSIDE_THE_CNN_ROOT") or Path(__file__).resolve().parent.parent).resolve()

COURSE_ID = "inside-the-cnn"

#: Seconds one cell may run before nbgrader interrupts it and records a CellTimeoutError.
#: Grading runs in fast mode (nbgrader sets NBGRADER_EXECUTION, helpers.is_fast() is then True),
#: where the slowest reference cell of the course (a style-transfer optimisation) takes well
#: under a minute on a 2-core CPU.  600 s leaves a 10x margin for a slow but correct student
#: solution on a busy grading machine, and still bounds an infinite loop to 10 minutes per cell
#: (nbgrader's default of 30 s would fail correct CPU solutions).
EXECUTE_TIMEOUT = 600

#: Environment of the grading kernel.  nbgrader starts the kernel as a subprocess of the nbgrader
#: process, which inherits os.environ; these are set (if not already set) when nbgrader loads this
#: file, and around every execution started by ``python -m grading``.
#:  * PYTHONWARNINGS=ignore: Python warnings (torch UserWarnings, deprecations) are not printed;
#:    nbgrader gives 0 points to a test cell that wrote anything to stderr.
#:  * TQDM_DISABLE=1: tqdm progress bars (stderr) are off by default (tqdm >= 4.66 reads it).
#:  * COURSE_PROGRESS=0: the course's own progress bars are off (they also are under nbgrader).
KERNEL_ENV = {"PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1", "COURSE_PROGRESS": "0"}

#: Second line of defence, for stderr that the environment cannot silence (code that turns
#: warnings back on with warnings.simplefilter("always"), IPython's DeprecationWarnings for code
#: typed in the notebook, a tqdm bar created with disable=False).  nbgrader's IgnorePattern
#: preprocessor runs after execution during autograde and drops every stderr *output* (one stream
#: message; ipykernel batches the writes of a short moment into one) in which this regex is
#: found (re.search), before the scores are computed.  It matches
#:  * a warning as warnings.formatwarning prints it: "path/to/file.py:12: UserWarning: message"
#:    (any category whose name ends in "Warning");
#:  * a tqdm bar, recognised by its elapsed-time field: "[00:01<00:02, ..." or "[00:01, 3.2it/s]"
#:    (bars with a known total, unknown total, hours, or units such as B/s all have it);
#:  * stderr output that is only white space (tqdm ends a closed bar with a lone "\n").
#: Errors are not stderr streams but "error" outputs, so a failing test still scores 0.
IGNORE_PATTERN = r"(?m)^.*:\d+: \w*Warning: |\[\d+:\d\d(?::\d\d)?(?:<|, )|\A\s*\Z"

#: What replaces ### BEGIN SOLUTION ... ### END SOLUTION in the student notebooks.
CODE_STUB = "# YOUR CODE HERE: replace this line and the next one with your solution.\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE (double-click this cell to edit it)"

# -- where things are ---------------------------------------------------------------------------
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = COURSE_ID
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "notebooks"
# Everything else (submitted, autograded, feedback, gradebook.db) keeps nbgrader's default name
# under the root; .gitignore lists them.
# nbgrader copies every file of solutions/<assignment>/ besides the notebooks to the students.
# The text source solutions/NN_topic/NN_topic.py holds the solutions and hidden tests: never copy it.
SOURCE_PATTERN = "[0-9][0-9]_*.py"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", SOURCE_PATTERN]

# -- student version ----------------------------------------------------------------------------
c.ClearSolutions.code_stub = {"python": CODE_STUB}
c.ClearSolutions.text_stub = TEXT_STUB

# -- executing notebooks (validate and autograde) -------------------------------------------
c.Execute.timeout = EXECUTE_TIMEOUT
c.Execute.interrupt_on_timeout = True
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = IGNORE_PATTERN

# -- autograde ------------------------------------------------------------------------------
# Students (and Colab, which keeps no "deletable" flag) sometimes delete cells; re-insert the
# missing test cells from the gradebook so that a deleted test scores 0, not "missing".
c.OverwriteCells.add_missing_cells = True

if LOADED_BY_NBGRADER:
    for _name, _value in KERNEL_ENV.items():
        os.environ.setdefault(_name, _value)
