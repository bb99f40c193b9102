"""Test aids for assignment 03 (saliency), shared by its test cells and ``tests/``.

Each exercise of the assignment is an attribution method written by the student,
``method(model, x, target, ...)``.  Its test cells check it through the functions here, so that a
test cell reads as the test it is:

* :func:`student` -- call the student's function with the shortcuts forbidden (the public
  reference functions of :mod:`helpers.saliency` and Captum's attribution classes,
  :data:`FORBIDDEN`); a crash of the student's code becomes a failed test with a message;
* :func:`check_saliency_map`, :func:`check_occlusion_map`, :func:`check_guided_backprop`,
  :func:`check_grad_cam` -- :func:`student` plus a comparison with the expected maps; when the
  answer is wrong, the maps that the usual mistakes produce (no absolute value, softmax instead of
  logit, no ReLU, ...) are computed too, and a match is named in the message ("looks like a known
  slip: ...") -- and fail when the student's function edited ``x`` or the model in place;
* :func:`check_guided_by_hand` -- guided backprop on :func:`two_layer`, a net whose answer is
  worked out by hand in the notebook;
* :func:`check_occlusion_batches` -- occluded images go through the model ``batch_size`` at a time;
* :func:`check_leaves_state` -- the caller's ``x`` (values, ``requires_grad``, ``.grad``) and the
  model (weights, mode, parameter ``.grad``, hooks) are left as they were;
* :func:`check_hooks_removed_on_error` -- no hook stays behind when the model raises;
* :func:`occlusion_by_definition` -- the occlusion map written out with loops, one patch at a time;
* :func:`hook_count`, and the toy models :class:`BatchSizes`, :class:`TopHalf`,
  :class:`FailsHalfway`.

Every check raises ``AssertionError`` with a sentence for the student; nothing is printed.  The
expected values are computed before the student's function runs (the reference functions are
forbidden while it runs).

Example
-------
>>> import torch
>>> from helpers.testing.nets import TinyCNN
>>> def saliency_map(model, x, target):            # a student's answer
...     x_ = x.detach().clone().requires_grad_(True)
...     score = model(x_)[:, target].sum()
...     (g,) = torch.autograd.grad(score, x_)
...     return g.abs().amax(dim=1)
>>> m = check_saliency_map(saliency_map, TinyCNN(seed=0), torch.rand(1, 3, 16, 16), 3, "a tiny CNN")
>>> m.shape
torch.Size([1, 16, 16])
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import saliency as ref
from ..taps import capture
from . import assert_close, assert_inputs_unchanged, assert_shape, call_student, forbid, hook_count
from .nets import TinyCNN

__all__ = ["FORBIDDEN", "student", "hook_count", "check_saliency_map", "occlusion_by_definition",
           "check_occlusion_map", "check_occlusion_batches", "two_layer", "check_guided_by_hand",
           "check_guided_backprop", "check_grad_cam", "check_leaves_state",
           "check_hooks_removed_on_error", "BatchSizes", "TopHalf", "FailsHalfway"]

_CAPTUM = importlib.util.find_spec("captum") is not None

#: Per exercise: what the student's function must not call -- the public reference functions and
#: (where Captum is installed: a dependency of the course's tests, not of students) Captum's
#: attribution classes for the same method.
FORBIDDEN: Dict[str, List] = {
    "saliency_map": [(ref, n) for n in ("saliency_map", "input_gradient", "to_map", "smoothgrad",
                                        "integrated_gradients", "guided_backprop")]
    + (["captum.attr.Saliency", "captum.attr.InputXGradient", "captum.attr.IntegratedGradients"]
       if _CAPTUM else []),
    "occlusion_map": [(ref, "occlusion_map"), (ref, "occlusion_windows")]
    + (["captum.attr.Occlusion", "captum.attr.FeatureAblation"] if _CAPTUM else []),
    "guided_backprop": [(ref, n) for n in ("guided_backprop", "guided_relus", "neuron_gradient",
                                           "input_gradient")]
    + (["captum.attr.GuidedBackprop", "captum.attr.Deconvolution", "captum.attr.GuidedGradCam"]
       if _CAPTUM else []),
    "grad_cam": [(ref, "grad_cam"), (ref, "neuron_gradient")]
    + (["captum.attr.LayerGradCam", "captum.attr.GuidedGradCam"] if _CAPTUM else []),
}


def student(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the shortcuts of its exercise forbidden (:data:`FORBIDDEN`,
    looked up by ``fn.__name__``; every one of them for a function of another name)."""
    name = getattr(fn, "__name__", "your function")
    targets = FORBIDDEN.get(name) or [t for ts in FORBIDDEN.values() for t in ts]
    with forbid(*dict.fromkeys(targets), name=name):
        return call_student(fn, *args, **kwargs)


def _run(fn: Callable, model, x: torch.Tensor, *args, **kwargs):
    """:func:`student` on ``(model, x, ...)``, failing when it edits ``x`` or the model in place."""
    inputs = {"x": x, **({"model": model} if isinstance(model, nn.Module) else {})}
    with assert_inputs_unchanged(**inputs):
        return student(fn, model, x, *args, **kwargs)


def _targets(target, n: int) -> torch.Tensor:
    return torch.as_tensor(target).long().reshape(-1).expand(n)


def _close(got: torch.Tensor, value: torch.Tensor, atol: float, rtol: float = 1e-4) -> bool:
    return tuple(got.shape) == tuple(value.shape) and torch.allclose(
        got.detach().cpu().double(), value.detach().cpu().double(), atol=atol, rtol=rtol)


def _compare(got, expected: torch.Tensor, name: str, *, atol: float,
             slips: Callable[[], Dict[str, torch.Tensor]]) -> None:
    """Shape, then (if the values are off) the known slips by name, then the values."""
    assert_shape(got, tuple(expected.shape), name=name)
    if not _close(got, expected, atol):
        for slip, value in slips().items():
            if _close(got, value, atol):
                raise AssertionError(f"{name} looks like a known slip: {slip}.")
    assert_close(got.detach().cpu().double(), expected.detach().cpu().double(), name=name,
                 atol=atol, rtol=1e-4)


def _fn_name(fn: Callable) -> str:
    return getattr(fn, "__name__", "your function")


# ----------------------------------------------------------------------------------------------
# Exercise 1: saliency_map
# ----------------------------------------------------------------------------------------------
def _saliency_slips(model, x: torch.Tensor, target) -> Dict[str, torch.Tensor]:
    t = _targets(target, x.shape[0])
    grads = {}
    for kind in ("logit", "prob", "logprob"):
        xg = x.detach().clone().requires_grad_(True)
        out = model(xg)
        out = {"logit": out, "prob": out.softmax(1), "logprob": out.log_softmax(1)}[kind]
        (grads[kind],) = torch.autograd.grad(out.gather(1, t[:, None]).sum(), xg)
    g = grads["logit"]
    return {
        "no absolute value (take |gradient| before the max over the channels)": g.amax(1),
        "the absolute value is taken after the max over the channels, it must come first":
            g.amax(1).abs(),
        "the mean over the colour channels instead of the max": g.abs().mean(1),
        "the sum over the colour channels instead of the max": g.abs().sum(1),
        "the gradient of the softmax probability instead of the raw class score (logit)":
            grads["prob"].abs().amax(1),
        "the gradient of the log-probability (log-softmax) instead of the raw class score (logit)":
            grads["logprob"].abs().amax(1),
        "the class of the first image for every image: pick logits[n, target[n]] for each n":
            ref.saliency_map(model, x, int(t[0])),
    }


def check_saliency_map(fn: Callable, model, x: torch.Tensor, target, what: str) -> torch.Tensor:
    """``fn(model, x, target)`` equals :func:`helpers.saliency.saliency_map` (to 1e-5 of its
    largest value); returns the student's map."""
    expected = ref.saliency_map(model, x, target)
    got = _run(fn, model, x, target)
    _compare(got, expected, f"saliency_map on {what}", atol=1e-5 * float(expected.abs().max()),
             slips=lambda: _saliency_slips(model, x, target))
    return got


# ----------------------------------------------------------------------------------------------
# Exercise 2: occlusion_map
# ----------------------------------------------------------------------------------------------
def occlusion_by_definition(model, x: torch.Tensor, target, *, size: int, stride: int,
                            fill: float = 0.5, score: str = "prob", normalise: bool = True,
                            mean: bool = True, clip: bool = True) -> torch.Tensor:
    """The occlusion map written out with loops, one patch at a time, in float64: (N, H, W).

    The flags make the usual slips: ``score="logit"`` (no softmax), ``normalise=False`` (the raw
    drop), ``mean=False`` (the sum over the patches covering a pixel), ``clip=False`` (corners
    stop before the border).
    """
    n, _, h, w = x.shape
    t = _targets(target, n)
    out = torch.zeros(n, h, w, dtype=torch.float64)
    stop_h, stop_w = (h - size + stride, w - size + stride) if clip else (h - size + 1, w - size + 1)
    with torch.no_grad():
        for i in range(n):
            ti = int(t[i])

            def f(z):
                s = model(z)
                return float((s.softmax(1) if score == "prob" else s)[0, ti])

            s0 = f(x[i:i + 1])
            total = torch.zeros(h, w, dtype=torch.float64)
            count = torch.zeros(h, w, dtype=torch.float64)
            for top in range(0, stop_h, stride):
                for left in range(0, stop_w, stride):
                    xo = x[i:i + 1].clone()
                    xo[..., top:top + size, left:left + size] = fill
                    d = s0 - f(xo)
                    total[top:top + size, left:left + size] += d / s0 if normalise else d
                    count[top:top + size, left:left + size] += 1
            out[i] = total / count.clamp(min=1) if mean else total
    return out


_OCCLUSION_SLIPS = {
    "not normalised: the map holds the raw drop p_clean - p_occluded; divide it by p_clean":
        dict(normalise=False),
    "the logit (raw score) instead of the softmax probability": dict(score="logit"),
    "the sum over the patches covering a pixel instead of their mean": dict(mean=False),
    "the last patches stop before the border; corners run over range(0, H - size + stride, "
    "stride) and a patch that sticks out is cut off": dict(clip=False),
}


def check_occlusion_map(fn: Callable, model, x: torch.Tensor, target, what: str, *, size: int,
                        stride: int, fill: float = 0.5, batch_size: int = 64,
                        expected: Optional[torch.Tensor] = None, atol: float = 1e-6
                        ) -> torch.Tensor:
    """``fn(model, x, target, size=, stride=, fill=, batch_size=)`` equals ``expected`` (default:
    :func:`occlusion_by_definition`); returns the student's map."""
    kw = dict(size=size, stride=stride, fill=fill)
    if expected is None:
        expected = occlusion_by_definition(model, x, target, **kw)
    got = _run(fn, model, x, target, batch_size=batch_size, **kw)

    def slips():
        found = {"the sign is flipped: d = (p_clean - p_occluded) / p_clean is positive when "
                 "hiding the patch lowers the probability": -expected}
        found.update({slip: occlusion_by_definition(model, x, target, **kw, **flags)
                      for slip, flags in _OCCLUSION_SLIPS.items()})
        return found

    _compare(got, expected, f"occlusion_map(..., size={size}, stride={stride}, fill={fill}) on "
             f"{what}", atol=atol * max(1.0, float(expected.abs().max())), slips=slips)
    return got


class BatchSizes(nn.Module):
    """Wraps a model and records the batch size of every forward pass in ``sizes``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.sizes: List[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return self.net(x)


class TopHalf(nn.Module):
    """Two classes: logit 0 = 10 x (mean of the top half of the image), logit 1 = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 10 * x[:, :, : x.shape[2] // 2].mean(dim=(1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def check_occlusion_batches(fn: Callable, model: nn.Module, x: torch.Tensor, target, *,
                            size: int, stride: int, batch_size: int) -> None:
    """At most ``batch_size`` images per forward pass, and no more passes than needed:
    ``ceil(patches / batch_size)`` per image, plus one clean pass per image."""
    counted = BatchSizes(model)
    student(fn, counted, x, target, size=size, stride=stride, batch_size=batch_size)
    n, _, h, w = x.shape
    patches = len(ref.occlusion_windows(h, w, size, stride))
    most = n * math.ceil(patches / batch_size) + n
    call = f"occlusion_map(..., size={size}, stride={stride}, batch_size={batch_size})"
    assert counted.sizes and max(counted.sizes) <= batch_size, (
        f"{call} sent {max(counted.sizes, default=0)} images through the model in one pass; at "
        f"most batch_size per pass")
    assert len(counted.sizes) <= most, (
        f"{call} with {n} image(s) of {patches} patches each made {len(counted.sizes)} forward "
        f"passes with batch sizes {counted.sizes}; put up to batch_size occluded images into each "
        f"pass (at most {n} x ceil({patches} / {batch_size}) + {n} = {most} passes)")


# ----------------------------------------------------------------------------------------------
# Exercise 3: guided_backprop
# ----------------------------------------------------------------------------------------------
def two_layer(act: type) -> nn.Sequential:
    """x (1, 3, 1, 1) -> Linear(3, 4) -> act -> Linear(4, 2), float64, hand-picked weights.

    For x = (0.5, 0.5, 0.5) the pre-activations are z = (-0.5, 2, 8, 2.5), and the gradient of
    logit 0 arriving at the rectifier is (3, -2, 5, 1).
    """
    net = nn.Sequential(nn.Flatten(1), nn.Linear(3, 4), act(), nn.Linear(4, 2)).double()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0, 0, 0], [0, 2, 0], [0, 0, 4], [1, 1, 1]]))
        net[1].bias.copy_(torch.tensor([-1.0, 1, 6, 1]))
        net[3].weight.copy_(torch.tensor([[3.0, -2, 5, 1], [1, 1, 1, 1]]))
        net[3].bias.zero_()
    return net


#: What the usual mistakes return on :func:`two_layer` (logit 0, x = 0.5 everywhere).
_BY_HAND_SLIPS = {
    nn.ReLU: {
        "that is the plain gradient W1^T (0, -2, 5, 1): negative gradients were let through the "
        "ReLU": [1.0, -3.0, 21.0],
        "that is the 'deconvnet' rule (3, 0, 5, 1): the forward mask [z > 0] is missing":
            [4.0, 1.0, 21.0],
    },
    nn.ReLU6: {
        "the ReLU6 upper bound was ignored: a unit with z >= 6 is flat and passes no gradient "
        "back": [1.0, 1.0, 21.0],
        "that is the plain gradient: negative gradients were let through the ReLU6":
            [1.0, -3.0, 1.0],
        "that is the 'deconvnet' rule: the forward mask [0 < z < 6] is missing": [4.0, 1.0, 21.0],
    },
}


def check_guided_by_hand(fn: Callable, act: type, expected: Sequence[float]) -> None:
    """``fn(two_layer(act), 0.5 everywhere, 0)`` flattened equals ``expected`` (worked out by
    hand); a known wrong rule is named."""
    got = student(fn, two_layer(act), torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64), 0)
    name = f"guided_backprop on a two-layer {act.__name__} net (by hand)"
    assert_shape(got, (1, 3, 1, 1), name=name)
    flat = got.detach().cpu().double().flatten()
    for slip, value in _BY_HAND_SLIPS.get(act, {}).items():
        if torch.allclose(flat, torch.tensor(value, dtype=torch.float64), atol=1e-9):
            raise AssertionError(f"{name} returned {flat.tolist()}: {slip}.")
    assert_close(flat, torch.tensor(expected, dtype=torch.float64), name=name, atol=1e-9)


def check_guided_backprop(fn: Callable, model: nn.Module, x: torch.Tensor, target, what: str, *,
                          rtol: float = 1e-5) -> torch.Tensor:
    """``fn(model, x, target)`` equals :func:`helpers.saliency.guided_backprop` (to ``rtol`` of
    its largest value), is not the plain gradient, and leaves no hook; returns the student's
    result."""
    expected = ref.guided_backprop(model, x, target)
    plain = ref.input_gradient(model, x, target)
    got = _run(fn, model, x, target)
    name = f"guided_backprop on {what}"
    _compare(got, expected, name, atol=rtol * float(expected.abs().max()), slips=lambda: {
        "it equals the plain gradient, the guided rule is not applied (are the hooks registered "
        "on every nn.ReLU and nn.ReLU6, and do they return a replacement?)": plain})
    _assert_no_hooks(fn, model, "remove them (handle.remove()) when done")
    return got


class FailsHalfway(TinyCNN):
    """A :class:`~helpers.testing.nets.TinyCNN` whose forward pass raises after ``act2`` ran."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.act2(self.conv2(self.act1(self.conv1(x))))
        raise RuntimeError("forward pass failed half-way")


def check_hooks_removed_on_error(fn: Callable, *args, **kwargs) -> None:
    """Run ``fn(FailsHalfway(...), x, 0, *args, **kwargs)``: whatever it raises, no hook may stay
    on the model afterwards."""
    boom = FailsHalfway(seed=0, activation="relu6")
    with contextlib.suppress(Exception):
        fn(boom, torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)), 0,
           *args, **kwargs)
    assert hook_count(boom) == 0, (
        f"when the model raised an error, {_fn_name(fn)} left {hook_count(boom)} hook(s) behind: "
        f"remove them in a finally: block")


# ----------------------------------------------------------------------------------------------
# Exercise 4: grad_cam
# ----------------------------------------------------------------------------------------------
def _grad_cam_slips(model, x: torch.Tensor, target, layer: str) -> Dict[str, torch.Tensor]:
    with capture(model, layer) as cap:
        out, acts = cap.run(x.detach().clone().requires_grad_(True))
    A = acts[layer]
    t = _targets(target, x.shape[0])
    (G,) = torch.autograd.grad(out.gather(1, t[:, None]).sum(), A, retain_graph=True)
    (Gp,) = torch.autograd.grad(out.softmax(1).gather(1, t[:, None]).sum(), A)
    A, G, Gp = A.detach(), G.detach(), Gp.detach()

    def up(m, mode="bilinear"):
        kw = dict(align_corners=False) if mode == "bilinear" else {}
        return F.interpolate(m, size=x.shape[-2:], mode=mode, **kw)[:, 0]

    def cam(weights):
        return F.relu((weights * A).sum(1, keepdim=True))

    alpha = G.mean(dim=(2, 3), keepdim=True)
    raw = (alpha * A).sum(1, keepdim=True)
    slips = {
        "no ReLU: keep only the positive part of sum_k alpha_k A^k": up(raw),
        "the ReLU comes after the resize; apply it to the small map, then resize": F.relu(up(raw)),
        "the weights are not averaged over the positions: alpha_k = mean of dS/dA^k over (i, j), "
        "one number per channel": up(cam(G)),
        "absolute values of the weights alpha_k": up(cam(alpha.abs())),
        "nearest-neighbour resizing; use mode='bilinear', align_corners=False":
            up(F.relu(raw), "nearest"),
        "no resize: the map has the layer's size, resize it to the image's H x W": F.relu(raw)[:, 0],
        "the gradient of the softmax probability instead of the logit":
            up(cam(Gp.mean(dim=(2, 3), keepdim=True))),
    }
    if layer != "head" and "head" in dict(model.named_modules()):
        slips[f"the map comes from the layer 'head', not from layer={layer!r}"] = ref.grad_cam(
            model, x, target, layer="head")
    return slips


def check_grad_cam(fn: Callable, model: nn.Module, x: torch.Tensor, target, layer: str,
                   what: str) -> torch.Tensor:
    """``fn(model, x, target, layer=layer)`` equals :func:`helpers.saliency.grad_cam` (to 1e-5 of
    its largest value) and leaves no hook; returns the student's map."""
    expected = ref.grad_cam(model, x, target, layer=layer)
    got = _run(fn, model, x, target, layer=layer)
    _compare(got, expected, f"grad_cam(..., layer={layer!r}) on {what}",
             atol=1e-5 * float(expected.abs().max()),
             slips=lambda: _grad_cam_slips(model, x, target, layer))
    _assert_no_hooks(fn, model, "remove the forward hook")
    return got


# ----------------------------------------------------------------------------------------------
# every exercise: the caller's state
# ----------------------------------------------------------------------------------------------
def _assert_no_hooks(fn: Callable, model: nn.Module, fix: str) -> None:
    n = hook_count(model)
    assert n == 0, f"{_fn_name(fn)} left {n} hook(s) on the model: {fix}"


def check_leaves_state(fn: Callable, model: nn.Module, x: torch.Tensor, *args, **kwargs) -> None:
    """Run ``fn(model, x, *args, **kwargs)`` on a copy of ``x`` without and with
    ``requires_grad`` (and a ``.grad``): ``x``, its flag and ``.grad``, the model's weights and
    mode stay as they were; no parameter gets a ``.grad``; no hook stays on the model."""
    name = _fn_name(fn)
    for with_grad in (False, True):
        xi = x.detach().clone().requires_grad_(with_grad)
        if with_grad:
            xi.grad = torch.ones_like(xi)
        with assert_inputs_unchanged(x=xi, model=model):
            student(fn, model, xi, *args, **kwargs)
        assert (xi.grad is None) if not with_grad else torch.equal(xi.grad, torch.ones_like(xi)), (
            f"{name} changed x.grad: work on a copy, x_ = x.detach().clone().requires_grad_(True)")
        assert all(p.grad is None for p in model.parameters()), (
            f"{name} filled the .grad of the model's parameters: use torch.autograd.grad(score, x_) "
            f"instead of score.backward()")
    _assert_no_hooks(fn, model, "remove every hook (handle.remove()) when done")
