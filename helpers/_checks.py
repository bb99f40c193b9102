"""Argument checks shared by every helper.

Every public helper validates its inputs with these functions so that a student who passes a
(3, H, W) image where a batch (N, 3, H, W) is expected, an integer tensor, or pixels in [0, 255]
gets one clear sentence naming the argument, what was expected and what came back -- instead of
a shape error from deep inside PyTorch.
"""
from __future__ import annotations

import math
import numbers
from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

__all__ = [
    "check_model",
    "model_device",
    "check_number",
    "check_unit",
    "class_scores",
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

#: A unit of a layer with activation (N, C, h, w): a channel ``c`` (its spatial mean) or one
#: neuron ``(c, i, j)`` (channel, row, column).  The one spelling used by every topic module.
UnitArg = Union[int, Tuple[int, int, int]]


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


def check_model(model, name: str = "model", *, module: bool = True):
    """Check ``model``: an ``nn.Module`` (``module=True``, for methods that need its layers or
    parameters) or any callable from images to scores (``module=False``: black-box methods).

    Returns ``model`` unchanged.
    """
    if module and not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {_describe(model)}")
    if not callable(model):
        raise TypeError(f"{name} must be a torch.nn.Module or a callable returning class scores, "
                        f"got {_describe(model)}")
    return model


def model_device(model, fallback: Union[str, torch.device, None] = "cpu") -> torch.device:
    """The device of ``model``'s first parameter (or buffer); ``fallback`` for a model without
    any (a parameter-free module or a plain callable)."""
    if isinstance(model, nn.Module):
        for t in model.parameters():
            return t.device
        for t in model.buffers():
            return t.device
    return torch.device(fallback if fallback is not None else "cpu")


def check_number(v, name: str, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
                 strict: bool = False, integer: bool = False, hint: str = "") -> float:
    """Check a finite real number (bools refused) in [minimum, maximum]; return it as a float.

    ``strict=True`` excludes ``minimum`` itself (``minimum=0, strict=True``: a positive number);
    ``integer=True`` asks for an int and returns it unchanged.  ``hint`` is appended to range
    errors (e.g. "pixel units on [0, 1], e.g. 8/255").

    >>> check_number(0.5, "alpha", minimum=0, maximum=1)
    0.5
    """
    kind = "an int" if integer else "a number"
    ok_type = isinstance(v, (int, np.integer)) if integer else isinstance(v, numbers.Real)
    if isinstance(v, bool) or not ok_type:
        raise TypeError(f"{name} must be {kind}, got {_describe(v)}")
    value = int(v) if integer else float(v)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    extra = f" ({hint})" if hint else ""
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum:g}{extra}, got {v!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum:g}{extra}, got {v!r}")
    return value


def check_unit(unit, shape: Optional[Sequence[int]] = None, name: str = "unit"
               ) -> Tuple[int, Optional[int], Optional[int]]:
    """Parse a unit (:data:`UnitArg`) into ``(c, i, j)``; ``i = j = None`` for a whole channel.

    With the activation's ``shape`` (N, C, h, w) the indices are range-checked too.

    >>> check_unit(3), check_unit((3, 1, 2))
    ((3, None, None), (3, 1, 2))
    """
    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if is_int(unit):
        c, i, j = int(unit), None, None
    elif isinstance(unit, (tuple, list)) and len(unit) == 3 and all(is_int(u) for u in unit):
        c, i, j = (int(u) for u in unit)
    else:
        raise TypeError(f"{name} must be a channel index c (int) or a neuron (c, i, j) -- channel, "
                        f"row, column -- got {unit!r}"[:200])
    if shape is not None:
        if len(shape) != 4:
            raise ValueError(f"{name} needs a 4-D activation (N, C, h, w), the layer gave shape "
                             f"{tuple(shape)}")
        _, C, h, w = shape
        if not 0 <= c < C:
            raise ValueError(f"{name}: channel must be in [0, {C - 1}] (the layer has {C} "
                             f"channels), got {c}")
        if i is not None and not (0 <= i < h and 0 <= j < w):
            raise ValueError(f"{name}: position ({i}, {j}) is outside the {h} x {w} activation "
                             f"of this layer")
    return c, i, j


def class_scores(scores, targets: Optional[torch.Tensor] = None, what: str = "model(x)"
                 ) -> torch.Tensor:
    """Check that ``scores`` are class scores (N, K) for ``targets`` (N,) of valid classes.

    Returns ``scores[n, targets[n]]`` (N,) when ``targets`` is given, else ``scores`` itself.
    The class range 0..K-1 is checked here, where K is known.
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
        raise ValueError(f"{what} must return class scores of shape (N, K), got {_describe(scores)}")
    if targets is None:
        return scores
    if scores.shape[0] != targets.shape[0]:
        raise ValueError(f"{what} returned {scores.shape[0]} rows of scores for "
                         f"{targets.shape[0]} images")
    k = scores.shape[1]
    bad = (targets < 0) | (targets >= k)
    if bool(bad.any()):
        raise ValueError(f"target must be a class index in [0, {k - 1}] (the model has {k} "
                         f"classes), got {int(targets[bad][0])}")
    return scores.gather(1, targets.to(scores.device)[:, None])[:, 0]
