"""What the attribution methods of :mod:`helpers.saliency` share: a checked call, the gradient of
the class scores with respect to the pixels, and the activation of one layer.

Everything else (layer lookup, hooks, eval mode, frozen parameters, argument checks) comes from the
course's base, :mod:`helpers.taps` and :mod:`helpers._checks`.
"""
from __future__ import annotations

from typing import Tuple, Union

import torch
import torch.nn as nn

from .._checks import (TargetArg, check_image_batch, check_model, check_tensor, check_target,
                       class_scores)
from ..taps import capture


def check_call(model, x: torch.Tensor, target: TargetArg, *, module: bool) -> torch.Tensor:
    """Check ``method(model, x, target)``; return the targets as an int64 tensor (N,).

    ``module=True`` for methods that need the model's layers, ``False`` for methods that only call
    it (a black box is then accepted and fails later, with a clear error, if gradients are needed).
    """
    check_model(model, module=module)
    check_image_batch(x, "x")
    return check_target(target, x.shape[0], x.device)


def need_grad(value: torch.Tensor, method: str) -> None:
    """Fail with an explanation when ``value`` carries no autograd graph back to the pixels."""
    if not value.requires_grad:
        raise RuntimeError(
            f"{method} needs gradients, but the model's output does not depend differentiably on "
            f"x (a black box that returns detached probabilities, or a model run under "
            f"torch.no_grad / with .detach() inside?). Perturbation methods such as "
            f"occlusion_map work without gradients.")


def logit_gradient(model, x: torch.Tensor, targets: torch.Tensor, method: str) -> torch.Tensor:
    """:math:`\\partial S_{t_n}(x_n) / \\partial x_n` for every image: (B, 3, H, W) -> (B, 3, H, W).

    The gradient is taken on a fresh copy of ``x`` (the caller's tensor is never touched) with
    ``torch.autograd.grad`` (no ``.grad`` is written anywhere).  Call it inside
    ``helpers.taps.frozen(model)`` and ``torch.enable_grad()``.
    """
    xg = x.detach().clone().requires_grad_(True)
    score = class_scores(model(xg), targets)
    need_grad(score, method)
    (grad,) = torch.autograd.grad(score.sum(), xg)
    return grad.detach()


def run_to_layer(model: nn.Module, module: nn.Module, x: torch.Tensor, *, stop_early: bool
                 ) -> Tuple[Union[torch.Tensor, None], torch.Tensor]:
    """``(model(x), activation of module)``; the activation must be 4-D (N, C, h, w).

    With ``stop_early`` the forward pass ends at ``module`` and the output is ``None``.
    """
    with capture(model, module) as cap:
        out, acts = cap.run(x, stop_early=stop_early)
    (act,) = acts.values()
    check_tensor(act, "the output of layer", ndim=4)
    return out, act


def broadcast_value(value, shape: Tuple[int, ...], like: torch.Tensor, name: str) -> torch.Tensor:
    """A number or tensor ``value`` broadcast to ``shape``, with ``like``'s dtype and device."""
    t = torch.as_tensor(value.detach() if isinstance(value, torch.Tensor) else value,
                        dtype=like.dtype, device=like.device)
    try:
        return torch.broadcast_to(t, shape)
    except RuntimeError:
        raise ValueError(f"{name} must be a number or a tensor broadcastable to {tuple(shape)}, "
                         f"got a tensor of shape {tuple(t.shape)}") from None
