"""Every public function of every topic module follows the one calling convention.

The convention (README, "For maintainers"):

    fn(model, x, target_or_unit, *, layer=..., <options>, progress=True)

* ``model`` first, the images ``x`` (N, 3, H, W) in [0, 1] second -- never ``img``, ``image``,
  ``images``; a function without a model takes its image first, as ``x``.
* a class is a ``target`` (int, list or (N,) tensor of class indices); a unit of a layer is a
  ``unit``: a channel ``c`` or a neuron ``(c, i, j)`` -- never ``channel=`` or ``position=``;
  either comes third, after ``model, x``.
* everything else is keyword-only: ``layer`` (where a model is given), ``seed``, ``generator``,
  ``batch_size``, ``device`` and every option; ``progress`` is keyword-only and defaults to True
  (bars are off anyway under nbgrader and with COURSE_PROGRESS=0).

The walk below checks names, positions and defaults from ``inspect.signature``; the few functions
that take something other than an image batch (a weight tensor, a feature matrix, a module) are
listed in EXEMPT with the reason.
"""
from __future__ import annotations

import importlib
import inspect

import pytest

TOPICS = ["helpers.filters", "helpers.activations", "helpers.saliency", "helpers.ascent",
          "helpers.adversarial", "helpers.digits"]
for _later in ["helpers.texture", "helpers.style", "helpers.fast_style"]:
    if importlib.util.find_spec(_later) is not None:
        TOPICS.append(_later)

IMAGE_NAMES = {"img", "image", "images", "imgs", "input", "inputs", "photo", "photos", "picture"}
UNIT_NAMES = {"channel", "position", "neuron"}
KEYWORD_ONLY = {"layer", "layers", "seed", "generator", "batch_size", "device", "progress"}
MAX_POSITIONAL_WITH_MODEL = 3   # model, x, target/unit


def _public_functions():
    for modname in TOPICS:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if inspect.isfunction(obj) and obj.__module__.startswith("helpers"):
                yield f"{modname}.{name}", obj


FUNCTIONS = sorted(dict(_public_functions()).items())


def violations(fn) -> list:
    """Every way ``fn``'s signature breaks the convention (empty list: it follows it)."""
    params = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in params]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    problems = []
    bad_images = IMAGE_NAMES & set(names)
    if bad_images:
        problems.append(f"images must be called x, not {sorted(bad_images)}")
    bad_units = UNIT_NAMES & set(names)
    if bad_units:
        problems.append(f"a unit is one argument `unit` (c or (c, i, j)), not {sorted(bad_units)}")
    if "model" in names and names[0] != "model":
        problems.append(f"model must be the first argument, it is number {names.index('model') + 1}")
    if "model" in names and "x" in names and names.index("x") != 1:
        problems.append("x must come right after model")
    if "x" in names and "model" not in names and names[0] != "x" and positional \
            and positional[0].name not in {"model"}:
        if names.index("x") > 0 and any(p.name == "x" for p in positional):
            problems.append("without a model, the images x come first")
    for which in ("target", "unit"):
        if which in names and "model" in names and "x" in names and names.index(which) != 2:
            problems.append(f"{which} must be the third argument (model, x, {which})")
    if "target" in names and "unit" in names:
        problems.append("a function takes a class target or a unit, not both")
    for p in params:
        if p.name in KEYWORD_ONLY and p.kind != p.KEYWORD_ONLY and not (
                p.name in {"layer", "layers"} and "model" not in names):
            problems.append(f"{p.name} must be keyword-only")
        if p.name == "progress" and p.default is not True:
            problems.append(f"progress must default to True, it defaults to {p.default!r}")
    if "model" in names and len(positional) > MAX_POSITIONAL_WITH_MODEL:
        extra = [p.name for p in positional[MAX_POSITIONAL_WITH_MODEL:]]
        problems.append(f"options must be keyword-only after (model, x, target/unit): {extra}")
    return problems


def test_the_walk_sees_every_topic_module():
    seen = {name.rsplit(".", 1)[0] for name, _ in FUNCTIONS}
    assert seen == set(TOPICS)
    assert len(FUNCTIONS) > 60


@pytest.mark.parametrize("name,fn", FUNCTIONS, ids=[n for n, _ in FUNCTIONS])
def test_calling_convention(name, fn):
    problems = violations(fn)
    assert not problems, f"{name}{inspect.signature(fn)}: " + "; ".join(problems)


def test_the_walk_can_fail():
    def bad(image, model, layer, channel, progress=False):  # noqa: ARG001
        pass

    def good(model, x, target, *, layer="head", progress=True):  # noqa: ARG001
        pass

    def also_good(x, sigma, *, seed=0):  # noqa: ARG001
        pass

    found = " ".join(violations(bad))
    for expected in ("images must be called x", "unit", "model must be the first",
                     "layer must be keyword-only", "progress must be keyword-only",
                     "progress must default to True"):
        assert expected in found, (expected, found)
    assert violations(good) == [] and violations(also_good) == []
