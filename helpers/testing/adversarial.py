"""Test aids for assignment 05 (adversarial examples), shared by its test cells and ``tests/``.

Every exercise of the assignment is an attack written by the student.  Its test cells run it the
same way, through the functions here, so that a test cell reads as the test it is:

* :func:`run_student` -- call the student's function with every shortcut forbidden (the public
  reference functions of :mod:`helpers.adversarial` and Captum's attacks, :data:`FORBIDDEN`),
  and fail with a message when it changed an input in place (values, ``requires_grad``, a model's
  weights or train/eval mode) or touched the ``.grad`` of a model's parameters;
* :func:`run_attack`, :func:`run_fooling_image`, :func:`run_success_rate`,
  :func:`run_logistic_attack` -- :func:`run_student` plus a check of what the exercise returns
  (for an attack: :func:`check_box`, an image batch like ``x`` inside the eps-ball and [0, 1]);
* :func:`ce_grad_by_hand` -- the loss gradient of :func:`helpers.testing.nets.linear_net`,
  written out, so that FGSM and PGD on a linear model can be checked without any reference;
* :class:`ConstantLogits` (every loss gradient is exactly 0: PGD returns its random start) and
  :class:`FirstPixels` (a "classifier" whose predictions are known by construction).

Every check raises ``AssertionError`` with a sentence for the student; nothing is printed.

Example
-------
>>> import torch
>>> import torch.nn.functional as F
>>> from helpers.testing.nets import random_images, tiny_cnn
>>> def fgsm(model, x, target, *, eps):            # a student's answer
...     x_ = x.detach().clone().requires_grad_(True)
...     loss = F.cross_entropy(model(x_), torch.full((len(x),), target), reduction="sum")
...     (g,) = torch.autograd.grad(loss, x_)
...     return (x + eps * g.sign()).clamp(0, 1)
>>> x = random_images(2)
>>> x_adv = run_attack(fgsm, tiny_cnn(), x, 0, eps=0.1)
>>> float((x_adv - x).abs().max()) <= 0.1
True
"""
from __future__ import annotations

import importlib.util
from typing import Any, Callable, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import check_image, run_student as _run_student

__all__ = ["FORBIDDEN", "run_student", "run_attack", "run_fooling_image", "run_success_rate",
           "run_logistic_attack", "check_box", "ce_grad_by_hand", "ConstantLogits",
           "FirstPixels"]

#: What a student's attack must not call: the public reference functions and Captum's attacks
#: (Captum only where it is installed: it is a dependency of the course's tests, not of students).
FORBIDDEN: List[str] = [f"helpers.adversarial.{name}" for name in (
    "logistic_attack", "fooling_image", "fgsm", "pgd", "eot_pgd", "attack_success_rate",
    "predict")]
if importlib.util.find_spec("captum") is not None:
    FORBIDDEN += ["captum.robust.FGSM.perturb", "captum.robust.PGD.perturb"]


def run_student(fn: Callable, *args, **kwargs) -> Any:
    """``fn(*args, **kwargs)``, the way every test cell of assignment 05 calls a student's answer:
    :func:`helpers.testing.run_student` with :data:`FORBIDDEN` blocked -- the stub or a crash is a
    failed test with a message, inputs must come back unchanged, and the parameters' ``.grad``
    untouched (an attack needs the gradient with respect to the *image*)."""
    return _run_student(fn, args, kwargs, forbidden=FORBIDDEN,
                        grad_hint="torch.autograd.grad(loss, x_adv)")


def check_box(x: torch.Tensor, x_adv: Any, eps: Optional[float], name: str) -> None:
    """``x_adv`` is an image batch like ``x`` (shape, dtype), without autograd graph, finite,
    inside [0, 1] and -- unless ``eps`` is None -- within ``eps`` of ``x`` in L-infinity."""
    check_image(x_adv, x, name, unit=True, eps=eps)


def run_attack(fn: Callable, model, x: torch.Tensor, target, **kwargs) -> torch.Tensor:
    """A student's ``fgsm`` / ``pgd``: :func:`run_student`, then :func:`check_box` with the
    ``eps`` passed to it."""
    x_adv = run_student(fn, model, x, target, **kwargs)
    check_box(x, x_adv, kwargs.get("eps"), fn.__name__)
    return x_adv


def run_fooling_image(fn: Callable, model, x: torch.Tensor, target, **kwargs
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
    """A student's ``fooling_image``: a pair (images in [0, 1] like ``x``, int64 steps (N,))."""
    out = run_student(fn, model, x, target, **kwargs)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AssertionError(f"{fn.__name__} should return a pair (x_adv, steps), got "
                             f"{type(out).__name__}")
    x_adv, steps = out
    check_box(x, x_adv, None, fn.__name__)
    n = x.shape[0]
    if not (isinstance(steps, torch.Tensor) and steps.shape == (n,) and steps.dtype == torch.int64):
        got = (f"{steps.dtype} {tuple(steps.shape)}" if isinstance(steps, torch.Tensor)
               else type(steps).__name__)
        raise AssertionError(f"steps should be an int64 tensor of shape ({n},), got {got}")
    return x_adv, steps


def run_success_rate(fn: Callable, model, x_adv: torch.Tensor, target, **kwargs) -> float:
    """A student's ``attack_success_rate``: a Python float."""
    out = run_student(fn, model, x_adv, target, **kwargs)
    if not isinstance(out, float):
        raise AssertionError(f"{fn.__name__} should return a Python float (use float(...)), got "
                             f"{type(out).__name__}")
    return out


def run_logistic_attack(fn: Callable, x: torch.Tensor, w: torch.Tensor, b: float = 0.0, **kwargs
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """A student's ``logistic_attack``: a pair (x_adv, p)."""
    out = run_student(fn, x, w, b, **kwargs)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AssertionError(f"{fn.__name__} should return a pair (x_adv, p), got "
                             f"{type(out).__name__}")
    return out


def ce_grad_by_hand(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of :math:`\\sum_n \\mathrm{CE}(W x_n + b, y_n)` with respect to ``x`` for a
    :func:`helpers.testing.nets.linear_net`, written out: :math:`(\\mathrm{softmax}(Wx + b) -
    \\mathrm{onehot}(y))\\,W`, reshaped like ``x`` (N, 3, side, side)."""
    W, b = net[1].weight.detach(), net[1].bias.detach()
    p = torch.softmax(x.flatten(1) @ W.T + b, dim=1)
    return ((p - F.one_hot(y, W.shape[0]).to(p.dtype)) @ W).reshape(x.shape)


class ConstantLogits(nn.Module):
    """Logits (N, 3) of zeros that do not depend on the image: every loss gradient is exactly 0,
    so no attack step moves (PGD returns its random start)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.zeros(x.shape[0], 3, dtype=x.dtype, device=x.device)
                + 0.0 * x.flatten(1).sum(1, keepdim=True))


class FirstPixels(nn.Module):
    """A "classifier" whose 5 logits are 10 x the first 5 values of each image: put a 1 at
    position k of a zero image and it predicts class k."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 10.0 * x.flatten(1)[:, :5]
