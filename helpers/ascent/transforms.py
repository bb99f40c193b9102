"""Random transforms for "transformation robustness" (Mordvintsev et al., 2015; Olah et al., 2017).

Each constructor returns a function from an image batch (N, 3, H, W) to a transformed batch,
differentiable with respect to its input; the random draws use torch's global generator (which
:func:`helpers.ascent.visualize` seeds inside the call only).

>>> t = compose([pad(4), jitter(8)])
>>> t(torch.rand(2, 3, 32, 32)).shape
torch.Size([2, 3, 32, 32])
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .._checks import _describe, check_choice, check_number, check_positive_int
from ._common import GREY

__all__ = ["jitter", "pad", "random_scale", "random_rotate", "compose", "standard_transforms"]

Transform = Callable[[torch.Tensor], torch.Tensor]


def jitter(d: int) -> Transform:
    """Random translation: crop a random (H - d) x (W - d) window (one offset per call)."""
    d = check_positive_int(d, "d", minimum=0)

    def transform(x: torch.Tensor) -> torch.Tensor:
        if d == 0:
            return x
        h, w = x.shape[-2:]
        if d >= min(h, w):
            raise ValueError(f"jitter({d}) needs images larger than {d} pixels, got {h}x{w}")
        dy, dx = (int(v) for v in torch.randint(0, d + 1, (2,)))
        return x[..., dy:dy + h - d, dx:dx + w - d]

    transform.__name__ = f"jitter({d})"
    return transform


def pad(p: int, *, value: float = GREY, mode: str = "constant") -> Transform:
    """Pad every side by ``p`` pixels: grey (``value``) or ``mode="reflect"``/``"replicate"``."""
    p = check_positive_int(p, "p", minimum=0)
    check_choice(mode, "mode", ["constant", "reflect", "replicate"])
    value = check_number(value, "value")

    def transform(x: torch.Tensor) -> torch.Tensor:
        if p == 0:
            return x
        if mode == "constant":
            return F.pad(x, (p, p, p, p), mode="constant", value=value)
        return F.pad(x, (p, p, p, p), mode=mode)

    transform.__name__ = f"pad({p})"
    return transform


def random_scale(scales: Sequence[float]) -> Transform:
    """Resize by a factor drawn uniformly from ``scales`` (bilinear)."""
    scales = [check_number(s, "scales", minimum=0.0, strict=True) for s in scales]
    if not scales:
        raise ValueError("scales must hold at least one factor")

    def transform(x: torch.Tensor) -> torch.Tensor:
        s = scales[int(torch.randint(len(scales), (1,)))]
        if s == 1.0:
            return x
        h, w = x.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    transform.__name__ = "random_scale"
    return transform


def random_rotate(degrees: Sequence[float]) -> Transform:
    """Rotate about the centre by an angle (degrees) drawn uniformly from ``degrees``."""
    angles = [check_number(a, "degrees") for a in degrees]
    if not angles:
        raise ValueError("degrees must hold at least one angle")

    def transform(x: torch.Tensor) -> torch.Tensor:
        a = math.radians(angles[int(torch.randint(len(angles), (1,)))])
        if a == 0.0:
            return x
        n = x.shape[0]
        cos, sin = math.cos(a), math.sin(a)
        theta = x.new_tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(n, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    transform.__name__ = "random_rotate"
    return transform


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` one after the other (left to right)."""
    transforms = list(transforms)
    for t in transforms:
        if not callable(t):
            raise TypeError(f"compose: every transform must be callable, got {_describe(t)}")

    def transform(x: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            x = t(x)
        return x

    transform.__name__ = "compose"
    return transform


def standard_transforms() -> Transform:
    """The usual robustness recipe of feature visualisation (as in Lucid/Lucent).

    Pad 12 grey pixels, jitter by 8, scale by 0.9 ... 1.1, rotate by -10 ... 10 degrees, jitter
    by 4: the visualisation must excite the unit whatever small shift, zoom or tilt it gets, which
    removes the high-frequency patterns that only work at one exact position.
    """
    return compose([pad(12), jitter(8), random_scale([1 + (i - 5) / 50 for i in range(11)]),
                    random_rotate(list(range(-10, 11))), jitter(4)])
