"""The one wrong-answer harness: do a notebook's test cells catch the plausible mistakes?

Each assignment lists its graded exercises and its mutants as data, in
``tests/mutants/NN_topic.yaml``::

    prelude: |                       # optional: code every run starts with (imports, a model)
      import torch
    exercises:                       # function -> its answer cell and the test cells that grade it
      conv2d_naive:
        answer: conv2d_naive_answer
        tests: [conv2d_naive_test, conv2d_naive_hidden_test]
    mutants:
      - function: conv2d_naive
        what: kernel not flipped ... (what a student got wrong, in words)
        replace:                     # edits of the solution's answer cell: [old, new] pairs
          - ["w.flip(-1)", "w"]
      - function: conv2d_naive
        what: delegates to F.conv2d
        source: |                    # or: a whole answer cell of its own
          def conv2d_naive(x, w, b=None, *, stride=1, padding=0): ...

A run executes, in a fresh namespace, the prelude, the (mutated) answer cell and then every test
cell of that exercise, in-process (no kernel), with the solution notebook's own cell sources
(``solutions/NN_topic/NN_topic.ipynb``).  A mutant counts as *caught* only when a test cell fails
the way a student sees it fail: with an ``AssertionError`` that carries a message.  Any other
exception (a ``NameError`` in a test cell, a crash the test cell did not turn into a message) is
reported as a harness problem, not as a catch.  The unmutated solution must pass every test cell.
"""
from __future__ import annotations

import contextlib
import functools
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import nbformat
import yaml

REPO = Path(__file__).resolve().parent.parent
MUTANT_DIR = Path(__file__).resolve().parent / "mutants"


@dataclass(frozen=True)
class Mutant:
    assignment: str
    function: str
    what: str
    replace: tuple = ()
    source: Optional[str] = None

    @property
    def id(self) -> str:
        return f"{self.assignment}:{self.function}: {self.what}"


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``None`` test id means every test cell passed."""

    test_id: Optional[str] = None
    error: Optional[BaseException] = None

    @property
    def passed(self) -> bool:
        return self.test_id is None

    @property
    def caught(self) -> bool:
        """Failed like a test fails for a student: an AssertionError with a message."""
        return isinstance(self.error, AssertionError) and bool(str(self.error).strip())

    def __str__(self) -> str:
        if self.passed:
            return "every test cell passed"
        return f"{self.test_id}: {type(self.error).__name__}: {str(self.error)[:600]}"


def assignments() -> List[str]:
    return sorted(p.stem for p in MUTANT_DIR.glob("*.yaml"))


@functools.lru_cache(maxsize=None)
def spec(assignment: str) -> dict:
    data = yaml.safe_load((MUTANT_DIR / f"{assignment}.yaml").read_text(encoding="utf-8"))
    for function, ex in data["exercises"].items():
        if not isinstance(ex.get("tests"), list) or not ex["tests"] or "answer" not in ex:
            raise ValueError(f"{assignment}.yaml: exercise {function} needs 'answer' and a "
                             f"non-empty list 'tests'")
    return data


@functools.lru_cache(maxsize=None)
def cells(assignment: str) -> Dict[str, str]:
    """{grade_id: source} of the solution notebook."""
    path = REPO / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if "nbgrader" in c.metadata and "grade_id" in c.metadata["nbgrader"]}


def mutants(assignment: Optional[str] = None) -> List[Mutant]:
    out = []
    for aid in [assignment] if assignment else assignments():
        for m in spec(aid).get("mutants", []):
            out.append(Mutant(aid, m["function"], m["what"],
                              tuple(tuple(pair) for pair in m.get("replace", [])),
                              m.get("source")))
    return out


def answer_source(mutant: Mutant) -> str:
    """The solution's answer cell with the mutant's edits (each edit must apply exactly once)."""
    if mutant.source is not None:
        return mutant.source
    exercise = spec(mutant.assignment)["exercises"][mutant.function]
    source = cells(mutant.assignment)[exercise["answer"]]
    if not mutant.replace:
        raise ValueError(f"mutant {mutant.id!r} has neither 'replace' nor 'source'")
    for old, new in mutant.replace:
        count = source.count(old)
        if count != 1:
            raise AssertionError(f"mutant {mutant.id!r}: the solution contains {old!r} {count} "
                                 f"times (expected exactly once): update the mutant")
        source = source.replace(old, new)
    return source


def run(assignment: str, function: str, source: Optional[str] = None) -> Outcome:
    """Run ``function``'s test cells against ``source`` (default: the solution's answer cell)."""
    data = spec(assignment)
    exercise = data["exercises"][function]
    source = cells(assignment)[exercise["answer"]] if source is None else source
    ns: dict = {"__name__": "__main__"}
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        if data.get("prelude"):
            exec(compile(data["prelude"], f"<{assignment} prelude>", "exec"), ns)
        exec(compile(source, f"<{function} answer>", "exec"), ns)
        for test_id in exercise["tests"]:
            try:
                exec(compile(cells(assignment)[test_id], f"<{test_id}>", "exec"), ns)
            except Exception as err:  # noqa: BLE001 - every failure is reported, then judged
                return Outcome(test_id, err)
    return Outcome()
