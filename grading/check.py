"""``python -m grading check``: is every assignment ready to hand out?

1. Lint (``grading.lint``): conventions, points, setup cell, no outputs, solution notebooks built
   from their text sources (solutions/NN_topic/NN_topic.py), notebooks/ up to date.
2. Unless ``--lint-only``: execute every solution notebook and every student notebook through
   nbgrader (``grading.engine.execute``: the validator's preprocessors plus autograde's stderr
   filter, course configuration, fast mode) and demand that
   * the solution passes every autograded test cell and no cell of it raises;
   * the student notebook fails every autograded test cell (nothing is free).
   ``nbgrader validate`` is not used for its verdict: its exit status is 0 even when tests fail.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional

from . import course, engine, lint


@dataclass
class AssignmentResult:
    assignment: str
    problems: List[str] = field(default_factory=list)
    solution_runs: List[engine.RunReport] = field(default_factory=list)
    release_runs: List[engine.RunReport] = field(default_factory=list)


def _first_line(text: str, width: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def check(root: Path, assignments: Optional[Iterable[str]] = None, *, lint_only: bool = False,
          echo: Callable[[str], None] = print) -> Dict[str, AssignmentResult]:
    root = Path(root).resolve()
    results: Dict[str, AssignmentResult] = {}
    linted = lint.lint(root, assignments)
    for aid, problems in linted.items():
        res = results[aid] = AssignmentResult(aid, [str(p) for p in problems])
        echo(f"== {aid}")
        echo(f"   lint: {'ok' if not problems else f'{len(problems)} problem(s)'}")
        if lint_only or not (root / course.SOURCE_DIR / aid).is_dir():
            continue
        for src in course.solution_notebooks(root, aid):
            run = engine.execute(src, root)
            res.solution_runs.append(run)
            shown = src.relative_to(root).as_posix()
            echo(f"   solution {shown}: {len(run.passed)}/{len(run.tests)} test cells passed, "
                 f"{sum(t.score for t in run.tests):g}/{sum(t.points for t in run.tests):g} "
                 f"points, {run.seconds:.1f} s")
            if run.crash:
                res.problems.append(f"{shown}: execution failed: {_first_line(run.crash)}")
            for t in run.failed:
                res.problems.append(f"{shown} cell {t.index} [{t.grade_id}]: the solution fails "
                                    f"this test ({t.score:g}/{t.points:g}): {_first_line(t.error)}")
            for index, err in run.errors:
                if index not in {t.index for t in run.tests}:
                    res.problems.append(f"{shown} cell {index}: the solution raises: "
                                        f"{_first_line(err)}")
            rel_nb = course.release_path(root, aid, src.name)
            if not rel_nb.exists():
                continue  # reported by lint (release-missing)
            rrun = engine.execute(rel_nb, root)
            res.release_runs.append(rrun)
            rshown = rel_nb.relative_to(root).as_posix()
            echo(f"   student  {rshown}: {len(rrun.failed)}/{len(rrun.tests)} test cells fail "
                 f"as they should, {rrun.seconds:.1f} s")
            if rrun.crash:
                res.problems.append(f"{rshown}: execution failed: {_first_line(rrun.crash)}")
            for t in rrun.passed:
                res.problems.append(f"{rshown} cell {t.index} [{t.grade_id}]: the unanswered "
                                    f"student notebook already passes this test ({t.points:g} "
                                    "point(s) for nothing)")
            if len(rrun.tests) != len(run.tests):
                res.problems.append(f"{rshown}: {len(rrun.tests)} test cells, the solution has "
                                    f"{len(run.tests)} (stale? run `python -m grading release`)")
    return results
