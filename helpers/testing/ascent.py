"""Test aids for assignment 04 (gradient ascent), shared by its test cells and ``tests/``.

The exercises are the building blocks of :mod:`helpers.ascent`, written by the student:
``l2_class_step``, ``tv_loss``, ``edge_energy``, ``blur_and_clip``, ``invert_features`` and
``deepdream_step``.  Their test cells check them through the functions here, so that a test cell
reads as the test it is:

* :func:`student` -- call the student's function with the reference forbidden (:data:`FORBIDDEN`:
  the public functions of :mod:`helpers.ascent` that compute an exercise's answer, and this
  module's independent implementations); fail if it edits a tensor argument or the model
  (weights, train/eval mode, ``requires_grad``) or fills the ``.grad`` of the model's parameters;
  a crash of the student's code becomes a failed test with a message;
* :func:`check_image` -- a returned image batch: type, shape, dtype, no autograd graph, finite,
  optionally in [0, 1];
* :func:`check_per_image` -- a returned penalty: a tensor (N,), one value per image;
* :func:`check_inversion` -- the pair ``(image, losses)`` of ``invert_features``;
* :func:`tv_by_loops`, :func:`edge_energy_by_scipy` -- the two image priors written
  independently (plain loops; SciPy's correlate and NumPy block means).

Every check raises ``AssertionError`` with a sentence for the student; nothing is printed.
Expected values are computed before the student's function runs.

Example
-------
>>> import torch
>>> def tv_loss(x, beta=2.0):                     # a student's answer (beta = 2 only)
...     dx = torch.nn.functional.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
...     dy = torch.nn.functional.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
...     return (dx ** 2 + dy ** 2).sum(dim=(1, 2, 3))
>>> x = torch.rand(2, 3, 5, 4, dtype=torch.float64)
>>> out = check_per_image(student(tv_loss, x), x, "tv_loss")
>>> bool(torch.allclose(out, tv_by_loops(x, 2.0)))
True
"""
from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from . import check_image, run_student

__all__ = ["FORBIDDEN", "student", "check_image", "check_per_image", "check_inversion",
           "tv_by_loops", "edge_energy_by_scipy"]

#: What an exercise must not call: the public functions of :mod:`helpers.ascent` that compute an
#: answer (directly or through an objective), and this module's independent implementations.
FORBIDDEN: Tuple[str, ...] = tuple(
    [f"helpers.ascent.{n}" for n in ("tv_loss", "edge_energy", "l2_class_step", "blur_and_clip",
                                     "invert_features", "deepdream_step", "dream", "visualize",
                                     "evaluate", "image_tv", "image_edge_energy", "image_l2")]
    + [f"helpers.testing.ascent.{n}" for n in ("tv_by_loops", "edge_energy_by_scipy")])


def student(fn: Callable, *args, allow: Sequence[str] = (), **kwargs):
    """``fn(*args, **kwargs)`` as a test cell runs it; returns the result.

    :func:`helpers.testing.run_student` with the functions of :data:`FORBIDDEN` blocked (except
    the names in ``allow``, e.g. ``allow=["tv_loss"]``): afterwards every tensor argument must have
    its values and ``requires_grad`` flag, every model its weights, modes and flags, and the
    ``.grad`` of every parameter must be the same object as before (``torch.autograd.grad``
    computes the gradient for the image only; ``.backward()`` would fill those).
    """
    targets = [t for t in FORBIDDEN if t.rsplit(".", 1)[-1] not in set(allow)]
    return run_student(fn, args, kwargs, forbidden=targets,
                       grad_hint="torch.autograd.grad(objective, x)")


def check_per_image(out, x: torch.Tensor, name: str) -> torch.Tensor:
    """``out`` must be a tensor (N,): one value for each image of ``x``.  Returns ``out``."""
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{name} should return a tensor, got {type(out).__name__}")
    if tuple(out.shape) != (x.shape[0],):
        raise AssertionError(f"{name} should return one value per image, shape ({x.shape[0]},), "
                             f"got {tuple(out.shape)}: sum over channels and pixels but not over "
                             f"the batch")
    return out


def check_inversion(out, init: torch.Tensor, steps: int) -> Tuple[torch.Tensor, List[float]]:
    """``out`` must be ``invert_features``' pair ``(image like init in [0, 1], steps floats)``."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AssertionError(f"invert_features should return a pair (x, losses), got "
                             f"{type(out).__name__}")
    y, losses = out
    check_image(y, init, "invert_features", unit=True)
    if not (isinstance(losses, list) and len(losses) == steps
            and all(isinstance(v, float) for v in losses)):
        raise AssertionError(f"losses should be a list of {steps} floats (float(loss.detach()) at "
                             f"every step)")
    return y, losses


def tv_by_loops(x: torch.Tensor, beta: float) -> torch.Tensor:
    """The total variation R_beta of every image, written as plain loops: float64 tensor (N,)."""
    a = np.asarray(x.detach().cpu(), dtype=np.float64)
    n, c, h, w = a.shape
    out = np.zeros(n)
    for m in range(n):
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    dx = a[m, k, i, j + 1] - a[m, k, i, j] if j + 1 < w else 0.0
                    dy = a[m, k, i + 1, j] - a[m, k, i, j] if i + 1 < h else 0.0
                    out[m] += (dx * dx + dy * dy) ** (beta / 2)
    return torch.tensor(out)


def edge_energy_by_scipy(x: torch.Tensor) -> torch.Tensor:
    """The multi-scale edge energy with SciPy's correlate ('mirror' = PyTorch's reflect padding)
    and NumPy 2x2 block means: float64 tensor (N,)."""
    import scipy.ndimage

    a = np.asarray(x.detach().cpu(), dtype=np.float64)
    u1 = np.arange(-2, 3)
    g = np.exp(-(u1[:, None] ** 2 + u1[None, :] ** 2) / 2.0)
    g /= g.sum()
    out = np.zeros(a.shape[0])
    for m in range(a.shape[0]):
        for k in range(a.shape[1]):
            u = a[m, k]
            while min(u.shape) > 5:
                out[m] += ((u - scipy.ndimage.correlate(u, g, mode="mirror")) ** 2).sum()
                h2, w2 = u.shape[0] // 2 * 2, u.shape[1] // 2 * 2
                u = u[:h2, :w2].reshape(h2 // 2, 2, w2 // 2, 2).mean(axis=(1, 3))
    return torch.tensor(out)
