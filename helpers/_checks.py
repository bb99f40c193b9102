"""Argument checks shared by every helper.

Every public helper validates its inputs with these functions so that a student who passes a
(3, H, W) image where a batch (N, 3, H, W) is expected, an integer tensor, or pixels in [0, 255]
gets one clear sentence naming the argument, what was expected and what came back -- instead of
a shape error from deep inside PyTorch.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

__all__ = [
    "check_tensor",
    "check_image_batch",
    "check_unit_range",
    "check_positive_int",
    "check_choice",
    "check_target",
    "TargetArg",
]

#: A class target: one index for every image, a list of indices, or an integer tensor (N,).
TargetArg = Union[int, Sequence[int], torch.Tensor]


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return f"{type(x).__name__} {x!r}"[:120]


def check_tensor(
    x,
    name: str,
    *,
    ndim: Optional[int | Sequence[int]] = None,
    floating: bool = False,
    channels: Optional[int | Sequence[int]] = None,
) -> torch.Tensor:
    """Check that ``x`` is a tensor of the expected rank / dtype kind / channel count.

    ``channels`` refers to dimension 1 for 4-D tensors and dimension 0 for 3-D tensors.
    Returns ``x`` unchanged so the call can be used inline.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_describe(x)}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be a {want} tensor, got {_describe(x)}")
    if floating and not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (e.g. torch.float32), got {_describe(x)}; "
            f"convert with .float() (and divide by 255 if it holds 0..255 pixel values)"
        )
    if channels is not None:
        allowed_c = (channels,) if isinstance(channels, int) else tuple(channels)
        axis = 1 if x.ndim == 4 else 0
        if x.ndim >= 3 and x.shape[axis] not in allowed_c:
            want = " or ".join(str(c) for c in allowed_c)
            raise ValueError(
                f"{name} must have {want} channel(s) in dimension {axis}, got {_describe(x)}"
            )
    return x


def check_unit_range(x: torch.Tensor, name: str, *, tol: float = 1e-4) -> torch.Tensor:
    """Check that every value of ``x`` lies in [0, 1] (pixel space of this course)."""
    if x.numel() == 0:
        return x
    lo, hi = float(x.detach().min()), float(x.detach().max())
    if lo < -tol or hi > 1 + tol:
        hint = " (it looks like 0..255 pixel values: divide by 255)" if hi > 2 else ""
        raise ValueError(
            f"{name} must hold pixel values in [0, 1], got values in [{lo:.4g}, {hi:.4g}]{hint}"
        )
    return x


def check_image_batch(x, name: str = "x", *, unit_range: bool = True) -> torch.Tensor:
    """Check an image batch: float tensor (N, 3, H, W), values in [0, 1] unless told otherwise."""
    check_tensor(x, name, ndim=4, floating=True)
    if x.shape[1] != 3:
        hint = ""
        if x.shape[-1] == 3:
            hint = " -- it looks channels-last: use x.permute(0, 3, 1, 2)"
        raise ValueError(f"{name} must have shape (N, 3, H, W), got {_describe(x)}{hint}")
    if unit_range:
        check_unit_range(x, name)
    return x


def check_positive_int(v, name: str, *, minimum: int = 1) -> int:
    """Check that ``v`` is an int >= ``minimum`` (bools are refused)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {_describe(v)}")
    if v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v}")
    return v


def check_choice(v, name: str, choices: Iterable[str]) -> str:
    """Check that ``v`` is one of ``choices``; the error lists them all."""
    choices = list(choices)
    if v not in choices:
        shown = ", ".join(repr(c) for c in choices[:40])
        more = f", ... ({len(choices)} in all)" if len(choices) > 40 else ""
        raise ValueError(f"{name} must be one of {shown}{more}; got {v!r}")
    return v


def check_target(target: TargetArg, n: int, device: Union[str, torch.device, None] = None
                 ) -> torch.Tensor:
    """``target`` (an int, a list of ints or an integer tensor) -> int64 tensor (N,) on ``device``.

    The calling convention of every attribution and attack method (as in Captum): one class index
    for the whole batch of ``n`` images, or one per image.  The range (0..K-1) is checked later,
    by whoever knows K.

    >>> check_target(3, 2)
    tensor([3, 3])
    """
    if isinstance(target, bool):
        raise TypeError(f"target must be a class index (int) or a (N,) tensor of class indices, "
                        f"got {target!r}")
    if isinstance(target, (int, np.integer)):
        return torch.full((n,), int(target), dtype=torch.long, device=device)
    if isinstance(target, (list, tuple)):
        if not all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in target):
            raise TypeError(f"target must hold class indices (ints), got {target!r}"[:200])
        target = torch.tensor([int(t) for t in target], dtype=torch.long)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a class index (int) or a (N,) tensor of class indices, "
                        f"got {_describe(target)}")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got {_describe(target)}")
    if target.ndim == 0:
        return torch.full((n,), int(target), dtype=torch.long, device=device)
    if target.ndim != 1 or target.shape[0] != n:
        raise ValueError(f"target must be an int or a tensor of shape ({n},) (one class per image "
                         f"of x), got {_describe(target)}")
    return target.detach().to(device=device, dtype=torch.long)
