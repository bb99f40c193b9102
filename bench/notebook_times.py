"""Measure how long every solution notebook takes top to bottom, in fast and in full mode.

Prints the rows of the README's "Assignments" table.  Each notebook runs in a fresh kernel of this
environment (nbclient), from its own folder, once per mode; nothing is written to the repository.

    python bench/notebook_times.py                 # every assignment, both modes
    python bench/notebook_times.py 01_filters --modes fast
    python bench/notebook_times.py --repeat 2      # each run twice: both times and their spread

Run it alone on the machine: on 2 cores, any other job makes the times meaningless.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run(path: Path, fast: bool) -> float:
    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update({"COURSE_FAST": "1" if fast else "0", "COURSE_PROGRESS": "0", "MPLBACKEND": "Agg"})
    try:
        client = NotebookClient(nb, timeout=1800, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        t0 = time.perf_counter()
        client.execute()
        return time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(env_before)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("assignments", nargs="*", help="e.g. 01_filters (default: all in solutions/)")
    ap.add_argument("--modes", nargs="+", choices=["fast", "full"], default=["fast", "full"])
    ap.add_argument("--repeat", type=int, default=1, help="runs per notebook and mode (default 1)")
    args = ap.parse_args(argv)
    paths = sorted(p for p in (ROOT / "solutions").glob("[0-9][0-9]_*/*.ipynb") if p.stem == p.parent.name)
    if args.assignments:
        paths = [p for p in paths if p.stem in args.assignments]
        if not paths:
            ap.error(f"no solution notebook for {args.assignments}")
    print(f"# {os.cpu_count()} CPU cores; times include kernel start-up")
    print("| notebook | " + " | ".join(f"{m} mode" for m in args.modes) + " |")
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, got {args.repeat}")
    for p in paths:
        cells = []
        for m in args.modes:
            times = [run(p, fast=(m == "fast")) for _ in range(args.repeat)]
            cell = " / ".join(f"{t:.0f} s" for t in times)
            if len(times) > 1:
                cell += f" (spread {max(times) / min(times) - 1:.0%})"
            cells.append(cell)
        print(f"| {p.stem} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
