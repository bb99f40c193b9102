#!/usr/bin/env python3
"""Set up the course and run it -- the two commands at the top of README.md.

    python3 course.py lab     # set up .venv (course + JupyterLab) and open notebooks/ in JupyterLab
    python3 course.py test    # set up .venv (everything, incl. nbgrader and test tools) and run all tests

Both are idempotent: the virtual environment is created once in ``.venv`` and ``pip install`` runs
again only when pyproject.toml changed or more extras are needed.  Extra arguments after the
command go to JupyterLab or pytest, e.g. ``python3 course.py test -k filters`` or
``python3 course.py lab --port 8899``.

Only the Python standard library is used here, so this file runs on a machine that has nothing
but Python 3.9+.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("COURSE_VENV", ROOT / ".venv"))
STAMP = VENV / "course-setup.json"
EXTRAS = {"lab": ["lab"], "test": ["lab", "grading", "dev"]}


def _venv_python() -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    exe = "python.exe" if os.name == "nt" else "python"
    return VENV / sub / exe


def _say(msg: str) -> None:
    print(f"[course] {msg}", flush=True)


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_environment(extras: list[str]) -> Path:
    """Create .venv if needed and install the course with ``extras``; return its python."""
    if sys.version_info < (3, 9):
        sys.exit(f"[course] Python 3.9 or newer is needed, this is {sys.version.split()[0]}")
    py = _venv_python()
    if not py.exists():
        _say(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    state = {}
    if STAMP.exists():
        try:
            state = json.loads(STAMP.read_text())
        except ValueError:
            state = {}
    have = set(state.get("extras", [])) if state.get("pyproject") == _fingerprint() else set()
    want = set(extras) | have
    if not set(extras) <= have:
        spec = f"{ROOT}[{','.join(sorted(want))}]"
        _say(f"installing the course package with extras {sorted(want)} (first time: several minutes)")
        subprocess.run([str(py), "-m", "pip", "install", "-e", spec], check=True)
        STAMP.write_text(json.dumps({"pyproject": _fingerprint(), "extras": sorted(want)}))
    else:
        _say(f"environment {VENV} is up to date (extras {sorted(have)})")
    return py


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    command, rest = argv[0], argv[1:]
    py = ensure_environment(EXTRAS[command])
    env = dict(os.environ)
    if command == "lab":
        args = [str(py), "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT / 'notebooks'}", *rest]
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in rest:
            # containers and cloud VMs often run as root, where Jupyter refuses to start without it
            _say("running as root: adding --allow-root")
            args.append("--allow-root")
    else:
        args = [str(py), "-m", "pytest", *rest]
    _say("running: " + " ".join(args))
    return subprocess.run(args, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        sys.exit(f"[course] setup failed: {' '.join(map(str, exc.cmd))} exited with {exc.returncode}")
    except KeyboardInterrupt:
        sys.exit(130)
