"""The text sources of the solution notebooks: ``solutions/NN_topic/NN_topic.py``.

Every solution notebook is written as a jupytext "percent" script, the only hand-edited file of an
assignment.  ``python -m grading release`` builds ``solutions/NN_topic/NN_topic.ipynb`` from it
(and nbgrader then builds the student notebook from that); ``python -m grading import`` turns an
edited ``.ipynb`` back into the script.  A change to one exercise is a diff of a few readable lines.

The script
==========

Cells start with ``# %%`` (code) or ``# %% [markdown]`` (markdown; every line is commented with
``# ``).  The header carries the nbgrader metadata in a compact form, ``key=value`` with JSON values::

    # %% [markdown]                                        plain markdown
    # %%                                                   plain code
    # %% nbgrader="setup"                                  the course setup cell (see below)
    # %% nbgrader="answer" id="conv2d_answer"              autograded answer (### BEGIN SOLUTION)
    # %% nbgrader="tests" id="conv2d_test" points=3        autograded tests (locked)
    # %% [markdown] nbgrader="manual" id="q1" points=2     written answer, graded by hand
    # %% nbgrader="readonly" id="data_loading"             read-only cell (locked, not graded)
    # %% [markdown] nbgrader="task" id="t1" points=2       nbgrader "manually graded task"

``id`` is the nbgrader ``grade_id`` (required for every kind but ``setup``); ``points`` is
required for ``tests``, ``manual`` and ``task`` and not allowed for the others.  Each kind expands
to the full nbgrader v3 dictionary (``schema_version: 3`` and all of ``grade``, ``solution``,
``locked``, ``task``; see :data:`KINDS`) and a cell's nbgrader metadata is written compactly only
when the expansion gives it back exactly; anything else is written in full,
``nbgrader={"grade": true, ...}``.  Any other cell metadata (``tags=["raises-exception"]``,
``deletable=false``, ...) is written as ``key=value`` too and reaches the notebook unchanged.
Jupyter's view state (``collapsed``, ``scrolled``, ``execution``, ...) is not kept, and no cell
ends in blank lines (the blank lines before the next ``# %%`` are layout).

The setup cell's body in the script is one comment (:data:`SETUP_PLACEHOLDER`): the build fills in
``grading.setup_cell.SOURCE``, the one place where that cell is edited.

What the build adds
===================

* cell ids, derived and stable (:func:`stable_cell_ids`): a graded cell's id is its grade id; the
  setup cell's is ``course-setup``; any other cell is named after the nearest graded cell above
  it plus a running number (``conv2d_test-2``; ``intro-1`` before the first), so inserting a cell
  renames only the cells up to the next graded cell;
* the notebook metadata every notebook of the course has (:data:`NOTEBOOK_METADATA`);
* a stamp (``metadata.inside_the_cnn``): generated from which script, and a SHA-256 of the
  notebook's content as built (:func:`content_sha256`).  It lets ``release`` tell a notebook it
  built from a notebook somebody edited afterwards (in JupyterLab, say): it never overwrites such
  an edit, but asks for ``python -m grading import NN`` first, which carries the edit into the
  script.  It lets ``import`` tell, in turn, whether the script has changed since the build (it
  then builds different content) and would lose those changes.

No notebook-level metadata is kept in the script: the build always writes the standard kernelspec.

Editing in JupyterLab
=====================

Either open the built ``.ipynb``, edit and save, then ``python -m grading import NN`` (and
``python -m grading release NN``); or, with jupytext's JupyterLab extension installed, open the
``.py`` itself as a notebook (right click > Open With > Jupytext Notebook): its cells then show
the compact headers as cell metadata, and saving writes the ``.py``.  Do not pair the two files
with jupytext: release, not jupytext, writes the ``.ipynb``.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import nbformat

from . import course, setup_cell

#: The jupytext format of the scripts.
FORMAT = "py:percent"

#: nbgrader kinds of the compact header: ``nbgrader="<kind>"`` -> the flags of the cell.
#: ``points`` says whether the kind carries points (required) or not (not allowed).
KINDS: Dict[str, dict] = {
    "answer": {"flags": {"grade": False, "solution": True, "locked": False, "task": False},
               "points": False},
    "tests": {"flags": {"grade": True, "solution": False, "locked": True, "task": False},
              "points": True},
    "manual": {"flags": {"grade": True, "solution": True, "locked": False, "task": False},
               "points": True},
    "task": {"flags": {"grade": False, "solution": False, "locked": True, "task": True},
             "points": True},
    "readonly": {"flags": {"grade": False, "solution": False, "locked": True, "task": False},
                 "points": False},
}
#: The kind of the course setup cell (nbgrader metadata ``course.SETUP_METADATA``).
SETUP_KIND = "setup"

#: The body of the setup cell in a script.
SETUP_PLACEHOLDER = ("# The course setup cell: `python -m grading release` inserts "
                     "grading/setup_cell.py here.")

#: Notebook metadata of every built solution notebook (what the notebooks had when they were
#: edited by hand; nbgrader copies it into the student notebooks).
NOTEBOOK_METADATA = {
    "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}

#: Cell metadata that records Jupyter's view of a cell, not its content: never written to a
#: script, not part of the content hash (jupytext ignores the same keys).
VIEW_STATE_KEYS = frozenset({"autoscroll", "collapsed", "scrolled", "trusted", "execution",
                             "ExecuteTime"})
#: Cell metadata jupytext adds while reading a script (blank-line bookkeeping): dropped by the build.
JUPYTEXT_KEYS = frozenset({"lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker",
                           "region_name", "skipline", "noskipline"})
#: Metadata jupytext makes from a header it cannot read as ``key=value``: an error in a script.
JUPYTEXT_MISREAD = {
    "incorrectly_encoded_metadata": "this header is not a list of key=value pairs with JSON values "
                                    "(strings need double quotes: nbgrader=\"answer\" id=\"x\")",
    "title": "text after '# %%' that is not key=value metadata (a cell title) is not allowed",
}

#: First line of a cell in a script: what jupytext's percent format reads as a cell marker
#: ("# %%" alone or before a space, "#%%", "# <codecell>", "# In[3]:"; not "# %%time").
MARKER_RE = re.compile(r"^\s*#\s*(%%%*\s.*|%%|<codecell>|In\[[0-9 ]*\]:?)\s*$")
#: A valid nbformat cell id.
CELL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
#: Cell id of the cells above the first graded cell.
INTRO_ANCHOR = "intro"

STAMP_NOTE = ("GENERATED by `python -m grading release` from {source} -- edit that file and run "
              "the release again. If you edit this notebook instead (e.g. in JupyterLab), run "
              "`python -m grading import {assignment}` before the next release to carry the edit "
              "into {source}.")


class SourceError(ValueError):
    """A script cannot become a notebook, or a notebook cannot become a script.

    ``str()`` names the file and, where known, the line: ``solutions/01_filters/01_filters.py:
    line 42: ...``.
    """

    def __init__(self, message: str, path: Optional[str] = None, line: Optional[int] = None):
        self.message, self.path, self.line = message, path, line
        where = path or "<source>"
        if line is not None:
            where += f": line {line}"
        super().__init__(f"{where}: {message}")


# -- cell ids -------------------------------------------------------------------------------------

def sanitize_id(text: str, limit: int = 64) -> str:
    """``text`` as a valid nbformat cell id: [a-zA-Z0-9-_] (others become "-"), at most ``limit``."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "-", str(text))[:limit]
    return cleaned or "cell"


def stable_cell_ids(cells) -> List[str]:
    """Cell ids that depend only on the cells' nbgrader metadata and position.

    * a cell with a grade id: the grade id (sanitised), except the setup cell: ``course-setup``;
    * any other cell: the id of the nearest such cell above it (``intro`` before the first) plus
      ``-1``, ``-2``, ... counting the cells since that one.

    So inserting or deleting a plain cell renames only the plain cells between it and the next
    graded cell.  Ids are unique: a clash (two cells with one grade id, which nbgrader rejects
    anyway) gets ``_2``, ``_3``, ... appended.
    """
    ids: List[str] = []
    taken: set = set()
    anchor, count = INTRO_ANCHOR, 0
    for cell in cells:
        meta = (cell.get("metadata", {}) or {}).get("nbgrader", {}) or {}
        gid = meta.get("grade_id") if isinstance(meta, dict) else None
        if gid == setup_cell.GRADE_ID:
            anchor, count = course.SETUP_CELL_ID, 0
            cid = anchor
        elif gid:
            anchor, count = sanitize_id(gid), 0
            cid = anchor
        else:
            count += 1
            suffix = f"-{count}"
            cid = sanitize_id(anchor, 64 - len(suffix)) + suffix
        base, k = cid, 2
        while cid in taken:
            suffix = f"_{k}"
            cid, k = sanitize_id(base, 64 - len(suffix)) + suffix, k + 1
        taken.add(cid)
        ids.append(cid)
    return ids


# -- compact <-> full nbgrader metadata -----------------------------------------------------------

def expand(kind: str, grade_id: Optional[str], points=None) -> dict:
    """The full nbgrader v3 metadata of a compact kind (``setup`` or a key of :data:`KINDS`)."""
    if kind == SETUP_KIND:
        return dict(course.SETUP_METADATA)
    full = {"schema_version": 3, "grade_id": grade_id, **KINDS[kind]["flags"]}
    if KINDS[kind]["points"]:
        full["points"] = points
    return full


def compact(nbgrader: dict) -> Optional[dict]:
    """The header entries (``nbgrader``, ``id``, ``points``) for full nbgrader metadata, or None
    when no kind expands to exactly ``nbgrader`` (the script then carries the full dictionary)."""
    if not isinstance(nbgrader, dict):
        return None
    gid = nbgrader.get("grade_id")
    if not isinstance(gid, str) or not gid:
        return None
    for kind, spec in KINDS.items():
        points = nbgrader.get("points")
        if spec["points"] and not _is_number(points):
            continue
        if expand(kind, gid, points) == nbgrader:
            header = {"nbgrader": kind, "id": gid}
            if spec["points"]:
                header["points"] = points
            return header
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- script -> notebook ---------------------------------------------------------------------------

def _marker_lines(text: str) -> List[int]:
    """1-based line numbers of the cell markers of a script."""
    return [i for i, line in enumerate(text.splitlines(), 1) if MARKER_RE.match(line)]


def cell_lines(text: str) -> List[int]:
    """1-based line numbers where the cells of a script start (their ``# %%`` lines)."""
    return _marker_lines(text)


def _header_end(lines: List[str]) -> int:
    """Number of lines of the YAML header jupytext writes when it saves a script opened in
    JupyterLab (``# ---`` ... ``# ---``), 0 when there is none.  The header is ignored."""
    if not lines or lines[0].rstrip() != "# ---":
        return 0
    for i, line in enumerate(lines[1:], 1):
        if line.rstrip() == "# ---":
            return i + 1
        if not line.startswith("#"):
            break
    return 0


def _strip_view_state(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k not in VIEW_STATE_KEYS}


def notebook_from_text(text: str, *, path: str = "<source>") -> nbformat.NotebookNode:
    """Build the solution notebook (nbformat 4.5, no stamp) that the script ``text`` describes.

    Raises :class:`SourceError` naming ``path`` and the line of the offending cell header: text
    before the first cell, a header that is not ``key=value``, an unknown nbgrader kind, a
    graded cell without ``id``, ``points`` missing or misplaced, a setup cell with code in it.
    """
    import jupytext

    text = text.replace("\r\n", "\n")
    markers = _marker_lines(text)
    lines = text.splitlines()
    first = markers[0] if markers else len(lines) + 1
    start = _header_end(lines)
    stray = next((i for i, line in enumerate(lines[start: first - 1], start + 1) if line.strip()),
                 None)
    if stray is not None or not markers:
        raise SourceError("text before the first cell marker: every cell must start with a "
                          "'# %%' line ('# %% [markdown]' for markdown)", path,
                          stray if stray is not None else 1)
    # the header's metadata is not used; the cells start at the first marker
    parsed = jupytext.reads("\n".join(lines[first - 1:]) + "\n", fmt=FORMAT)
    if len(parsed.cells) != len(markers):  # pragma: no cover - jupytext splits on the markers
        raise SourceError(f"jupytext read {len(parsed.cells)} cells but the file has "
                          f"{len(markers)} '# %%' markers", path)

    nb = nbformat.v4.new_notebook()
    nb.metadata.update(copy.deepcopy(NOTEBOOK_METADATA))
    for cell, line in zip(parsed.cells, markers):
        nb.cells.append(_expand_cell(cell, path, line))
    for cell, cid in zip(nb.cells, stable_cell_ids(nb.cells)):
        cell["id"] = cid
    return nb


def _expand_cell(cell, path: str, line: int) -> nbformat.NotebookNode:
    def fail(message: str):
        raise SourceError(message, path, line)

    meta = dict(cell.metadata)
    # Blank lines before the next '# %%' are layout, not content (jupytext adds surplus ones to
    # the cell): no cell of a built notebook ends in a newline.
    source = cell.source.rstrip("\n")
    cell_type = cell.cell_type
    for key, why in JUPYTEXT_MISREAD.items():
        if key in meta:
            fail(f"{why}: {meta[key]!r}")
    for key in JUPYTEXT_KEYS:
        meta.pop(key, None)
    kind = meta.pop("nbgrader", None)
    has_id, has_points = "id" in meta, "points" in meta
    gid, points = meta.pop("id", None), meta.pop("points", None)

    if kind is None:
        if has_id or has_points:
            fail("id= and points= belong to an nbgrader cell: add nbgrader=\"answer\", \"tests\", "
                 "\"manual\", \"readonly\" or \"task\"")
        nbgrader = None
    elif isinstance(kind, dict):
        if has_id or has_points:
            fail("a cell with the full nbgrader={...} dictionary takes its grade_id and points "
                 "from that dictionary, not from id= or points=")
        nbgrader = kind
    elif kind == SETUP_KIND:
        if has_id or has_points:
            fail(f"the setup cell takes no id= or points= (its grade_id is always "
                 f"{setup_cell.GRADE_ID!r})")
        if cell_type != "code":
            fail("nbgrader=\"setup\" must be a code cell ('# %% nbgrader=\"setup\"')")
        code = [ln for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        if code:
            fail("the setup cell's body is generated from grading/setup_cell.py: edit that file; "
                 f"here the body must stay the comment {SETUP_PLACEHOLDER!r}")
        nbgrader = expand(SETUP_KIND, None)
        source = setup_cell.SOURCE
    elif isinstance(kind, str) and kind in KINDS:
        if not isinstance(gid, str) or not gid.strip():
            fail(f"nbgrader=\"{kind}\" needs id=\"...\" (the cell's nbgrader grade_id, a string "
                 f"in double quotes), e.g. '# %% nbgrader=\"{kind}\" id=\"exercise1_{kind}\"'")
        if KINDS[kind]["points"]:
            if not _is_number(points):
                fail(f"nbgrader=\"{kind}\" needs points=N (a number), has "
                     f"{'none' if not has_points else repr(points)}")
        elif has_points:
            fail(f"nbgrader=\"{kind}\" is not graded: points= is only for "
                 f"{', '.join(k for k, s in KINDS.items() if s['points'])}")
        nbgrader = expand(kind, gid, points)
    else:
        fail(f"unknown nbgrader kind {kind!r}; known: "
             f"{', '.join(repr(k) for k in [*KINDS, SETUP_KIND])} (or a full dictionary "
             "nbgrader={...})")

    if nbgrader is not None:
        meta = {"nbgrader": nbgrader, **meta}
    if cell_type == "code":
        return nbformat.v4.new_code_cell(source, metadata=meta)
    if cell_type == "markdown":
        return nbformat.v4.new_markdown_cell(source, metadata=meta)
    return nbformat.v4.new_raw_cell(source, metadata=meta)


# -- notebook -> script ---------------------------------------------------------------------------

def _is_setup(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader")
    return cell.cell_type == "code" and meta == course.SETUP_METADATA


def _cell_label(index: int, cell) -> str:
    gid = (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")
    return f"cell {index}" + (f" [{gid}]" if gid else "")


def notebook_to_text(nb, *, path: str = "<notebook>",
                     warn: Optional[Callable[[str], None]] = None) -> str:
    """The script of a solution notebook: the inverse of :func:`notebook_from_text`.

    Cell ids, outputs, execution counts, notebook metadata and Jupyter's view state are not
    kept; the setup cell's body becomes :data:`SETUP_PLACEHOLDER`.  ``warn`` hears about what a
    script cannot hold and is dropped (an edited setup cell, unusual notebook metadata, trailing
    blank lines of a cell).  The result is verified: when reading it back does not give every
    cell (type, source, metadata) exactly, :class:`SourceError` names the cell.
    """
    import jupytext

    warn = warn or (lambda message: None)
    extra_meta = {k: v for k, v in nb.metadata.items()
                  if k != course.STAMP_KEY and NOTEBOOK_METADATA.get(k) != v and k != "language_info"}
    if extra_meta:
        warn(f"{path}: notebook metadata {sorted(extra_meta)} is not kept (every notebook gets "
             f"the standard {sorted(NOTEBOOK_METADATA)})")

    cells, expected = [], []
    for i, cell in enumerate(nb.cells):
        meta = _strip_view_state(dict(cell.get("metadata", {})))
        source = cell.source
        if source != source.rstrip("\n"):
            warn(f"{path}: {_cell_label(i, cell)}: trailing blank lines removed (a script does "
                 "not keep them)")
            source = source.rstrip("\n")
        as_comment = source if cell.cell_type == "code" else "\n".join(
            "# " + line for line in source.splitlines())
        marker = next((line for line in as_comment.splitlines() if MARKER_RE.match(line)), None)
        if marker is not None and not _is_setup(cell):
            raise SourceError(f"{_cell_label(i, cell)}: the line {marker!r} would read as a cell "
                              "marker ('# %%') in the script; change it (e.g. '#%%' -> '# -- ')",
                              path)
        header: dict = {}
        nbgrader = meta.pop("nbgrader", None)
        if _is_setup(cell):
            if source != setup_cell.SOURCE:
                warn(f"{path}: {_cell_label(i, cell)}: the setup cell differs from "
                     "grading/setup_cell.py; that edit is not kept (edit grading/setup_cell.py)")
            header["nbgrader"] = SETUP_KIND
            body, want_source = SETUP_PLACEHOLDER, setup_cell.SOURCE
        else:
            if nbgrader is not None:
                header.update(compact(nbgrader) or {"nbgrader": nbgrader})
            body, want_source = source, source
        clash = sorted(set(header) & set(meta) | ({"id", "points"} & set(meta)))
        if clash:
            raise SourceError(f"{_cell_label(i, cell)}: its metadata has the key(s) {clash}, which "
                              "the script's cell header uses for nbgrader", path)
        header.update(meta)
        new = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
               "raw": nbformat.v4.new_raw_cell}[cell.cell_type](body, metadata=header)
        cells.append(new)
        want_meta = dict(meta)
        if nbgrader is not None:
            want_meta = {"nbgrader": nbgrader, **want_meta}
        expected.append((cell.cell_type, want_source, want_meta))

    text_nb = nbformat.v4.new_notebook(cells=cells)
    text_nb.metadata["jupytext"] = {"notebook_metadata_filter": "-all", "cell_metadata_filter": "all"}
    text = jupytext.writes(text_nb, fmt=FORMAT)
    text = text if text.endswith("\n") else text + "\n"

    try:
        back = notebook_from_text(text, path=path)
    except SourceError as exc:
        raise SourceError(f"the script made from this notebook does not read back (line "
                          f"{exc.line} of the script: {exc.message})", path) from None
    got = [(c.cell_type, c.source, dict(c.metadata)) for c in back.cells]
    if len(got) != len(expected):
        raise SourceError(f"{len(expected)} cells became {len(got)} in the script: a cell contains "
                          "a line that reads as a cell marker ('# %%')", path)
    for i, (want, have) in enumerate(zip(expected, got)):
        if want != have:
            raise SourceError(f"{_cell_label(i, nb.cells[i])} does not survive the conversion to a "
                              "percent script (a line like '# %%' in it, or leading blank lines?)",
                              path)
    return text


# -- hashes and stamps ----------------------------------------------------------------------------

def _script_view(cell) -> Tuple[str, str, dict]:
    """(type, source, metadata) of a cell as a script holds it: the setup cell's body is the
    placeholder, no cell ends in blank lines, Jupyter's view state is gone."""
    meta = _strip_view_state(dict(cell.get("metadata", {})))
    src = SETUP_PLACEHOLDER if _is_setup(cell) else cell.source.rstrip("\n")
    return cell.cell_type, src, meta


def content_sha256(nb) -> str:
    """SHA-256 of what a script holds of a notebook: each cell's type, source and metadata as
    :func:`_script_view` sees them.  Ids, outputs, notebook metadata, the setup cell's body (it
    comes from grading/setup_cell.py) and a cell's trailing blank lines do not count."""
    cells = [dict(zip(("cell_type", "source", "metadata"), _script_view(c))) for c in nb.cells]
    blob = json.dumps(cells, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def stamp(nb, source: str, assignment: str) -> nbformat.NotebookNode:
    """Record in ``nb``'s metadata that it was built from the script ``source`` (a repo path),
    with the content hash that :func:`hand_edit` and :func:`import_source` compare against.

    The script's own text is not hashed: a script edit that changes no cell (blank lines, the
    spelling of a header) changes no byte of the notebook."""
    nb.metadata[course.STAMP_KEY] = {
        "generated_from": source,
        "note": STAMP_NOTE.format(source=source, assignment=assignment),
        "content_sha256": content_sha256(nb),
    }
    return nb


def read_stamp(nb) -> dict:
    value = nb.metadata.get(course.STAMP_KEY)
    return value if isinstance(value, dict) else {}


# -- build, release side --------------------------------------------------------------------------

def _rel(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return str(path)


def build_notebook(text: str, assignment: str, *, path: Optional[str] = None) -> nbformat.NotebookNode:
    """The stamped solution notebook built from the script ``text`` of ``assignment``."""
    path = path or f"{course.SOURCE_DIR}/{assignment}/{assignment}.py"
    nb = notebook_from_text(text, path=path)
    return stamp(nb, path, assignment)


def build(root: Path, assignment: str) -> bytes:
    """The bytes of ``solutions/<assignment>/<assignment>.ipynb`` as release writes them.

    Raises FileNotFoundError (no script) or :class:`SourceError`."""
    src = course.source_path(root, assignment)
    text = src.read_text(encoding="utf-8")
    return course.dumps(build_notebook(text, assignment, path=_rel(root, src))).encode("utf-8")


def _signature(cell) -> Tuple:
    kind, src, meta = _script_view(cell)
    return kind, src, json.dumps(meta, sort_keys=True)


def describe_differences(old, new) -> str:
    """Which cells of notebook ``old`` differ from notebook ``new`` ("cells 3 [x], 7; 1 removed")."""
    a, b = [_signature(c) for c in old.cells], [_signature(c) for c in new.cells]
    changed, removed = [], 0
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "insert", "delete"):
            changed.extend(range(i1, i2))
            removed += max(0, (j2 - j1) - (i2 - i1))
    labels = [_cell_label(i, old.cells[i]) for i in changed]
    text = ", ".join(labels[:6]) + (f" and {len(labels) - 6} more" if len(labels) > 6 else "")
    if removed:
        text += f"{'; ' if text else ''}{removed} cell(s) missing"
    return text or "notebook metadata only"


def hand_edit(dest: Path, text: str, assignment: str, *, root: Optional[Path] = None) -> Optional[str]:
    """Why the existing solution notebook ``dest`` must not be overwritten by a build of the
    script ``text`` (None: nothing would be lost).

    Its content (:func:`content_sha256`) is what release built last time (the hash in its
    stamp) or what ``text`` builds now (the edit was imported already): go ahead.  Anything else
    is an edit made in the notebook (or a notebook release never built) that would be lost.
    """
    dest = Path(dest)
    if not dest.exists():
        return None
    try:
        nb = nbformat.reads(dest.read_text(encoding="utf-8"), as_version=4)
    except Exception as exc:  # noqa: BLE001 - an unreadable notebook may be someone's work
        return f"it is not a readable notebook ({type(exc).__name__}: {exc})"
    have = content_sha256(nb)
    if have == read_stamp(nb).get("content_sha256"):
        return None
    try:
        built = notebook_from_text(text)
    except SourceError:
        return "it was edited by hand after release built it"
    if have == content_sha256(built):
        return None
    return (f"it was edited by hand after release built it ({describe_differences(nb, built)} "
            f"differ from what the script builds)")


# -- import, the other way round ------------------------------------------------------------------

@dataclass
class ImportResult:
    assignment: str
    action: str  # "written", "unchanged", "refused", "error"
    message: str = ""
    warnings: List[str] = field(default_factory=list)


def _script_is_behind(nb, current: str) -> bool:
    """True when the script text ``current`` has nothing that the notebook ``nb`` lacks: it builds
    what the notebook was built as (the content hash of its stamp) or what the notebook holds
    now, so it differs from the imported text at most in layout (blank lines, header spelling)."""
    stamp_ = read_stamp(nb)
    try:
        built = content_sha256(notebook_from_text(current))
    except SourceError:
        return False
    return built in (stamp_.get("content_sha256"), content_sha256(nb))


def import_source(root: Path, assignment: str, *, force: bool = False) -> ImportResult:
    """Write ``solutions/<a>/<a>.py`` from ``solutions/<a>/<a>.ipynb`` (``python -m grading import``).

    Refuses (unless ``force``) when the script has changes that the notebook does not reflect:
    what it builds is neither what the notebook was built as (the content hash in its stamp)
    nor what the notebook holds now.  A script that differs only
    in layout (blank lines, header spelling) is rewritten in the canonical layout.
    """
    root = Path(root)
    nb_path, py_path = course.solution_path(root, assignment), course.source_path(root, assignment)
    shown_nb, shown_py = _rel(root, nb_path), _rel(root, py_path)
    result = ImportResult(assignment, "error")
    if not nb_path.exists():
        result.message = f"{shown_nb} does not exist (nothing to import)"
        return result
    try:
        nb = course.read_notebook(nb_path)
        text = notebook_to_text(nb, path=shown_nb, warn=result.warnings.append)
    except SourceError as exc:
        result.message = str(exc)
        return result
    except Exception as exc:  # noqa: BLE001 - nbformat's errors
        result.message = f"{shown_nb}: not a readable notebook: {type(exc).__name__}: {exc}"
        return result
    if py_path.exists():
        current = py_path.read_text(encoding="utf-8")
        if current == text:
            result.action, result.message = "unchanged", f"{shown_py} already matches {shown_nb}"
            return result
        if not force and not _script_is_behind(nb, current):
            why = ("it changed after release last built the notebook"
                   if read_stamp(nb).get("content_sha256") else
                   "the notebook has no release stamp, so nothing shows the script is older")
            result.action = "refused"
            result.message = (
                f"REFUSED: {shown_py} has changes that {shown_nb} does not have ({why}); importing "
                f"would overwrite them. If the notebook holds no edits of its own, run `python -m "
                f"grading release {assignment}` instead; to keep the notebook's version and lose "
                f"the script's changes, run `python -m grading import {assignment} --force` (or "
                f"merge the two by hand).")
            return result
    py_path.parent.mkdir(parents=True, exist_ok=True)
    py_path.write_text(text, encoding="utf-8")
    result.action = "written"
    result.message = (f"written: {shown_py} (from {shown_nb}); now run `python -m grading release "
                      f"{assignment}`")
    return result
