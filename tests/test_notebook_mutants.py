"""Every assignment's test cells pass the solution and catch every listed wrong answer.

The harness and the data format are described in ``tests/notebook_mutants.py``; the mutants of
each assignment live in ``tests/mutants/NN_topic.yaml``.
"""
from __future__ import annotations

import pytest

import notebook_mutants as nm
from conftest import solution_notebook_paths

EXERCISES = [(aid, fn) for aid in nm.assignments() for fn in nm.spec(aid)["exercises"]]
MUTANTS = nm.mutants()


def test_every_assignment_has_mutants():
    have = set(nm.assignments())
    want = {p.parent.name for p in solution_notebook_paths()}
    assert want <= have, f"no tests/mutants/<assignment>.yaml for {sorted(want - have)}"
    for aid in have:
        listed = {m.function for m in nm.mutants(aid)}
        missing = set(nm.spec(aid)["exercises"]) - listed
        assert not missing, f"{aid}: exercises without a single mutant: {sorted(missing)}"


def test_every_graded_test_cell_is_listed():
    """A test cell that no exercise lists would never be run against a mutant."""
    for aid in nm.assignments():
        listed = {t for ex in nm.spec(aid)["exercises"].values() for t in ex["tests"]}
        graded = {gid for gid, src in nm.cells(aid).items() if gid.endswith("_test")}
        assert graded <= listed, f"{aid}: test cells not in any exercise: {sorted(graded - listed)}"


@pytest.mark.parametrize("assignment,function", EXERCISES, ids=[f"{a}:{f}" for a, f in EXERCISES])
def test_solution_passes_its_test_cells(assignment, function):
    outcome = nm.run(assignment, function)
    assert outcome.passed, f"the solution of {function} fails: {outcome}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.id for m in MUTANTS])
def test_test_cells_catch_the_wrong_answer(mutant):
    outcome = nm.run(mutant.assignment, mutant.function, nm.answer_source(mutant))
    assert not outcome.passed, (
        f"no test cell of {mutant.function} fails when the answer has this mistake: {mutant.what}")
    assert outcome.caught, (
        f"{mutant.what}: the test cells stop with an exception instead of a failed test with a "
        f"message; a student would see a traceback, not what was expected: {outcome}")


def test_harness_can_fail(tmp_path, monkeypatch):
    """A mutant that changes nothing is not caught; a NameError in a test cell is not a catch."""
    aid = nm.assignments()[0]
    fn, ex = next(iter(nm.spec(aid)["exercises"].items()))
    solution = nm.cells(aid)[ex["answer"]]
    assert nm.run(aid, fn, solution + "\n# a comment changes nothing\n").passed
    outcome = nm.run(aid, fn, solution + f"\ndel {fn}\n")
    assert not outcome.passed and not outcome.caught, outcome
