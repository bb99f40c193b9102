"""Occlusion sensitivity (Zeiler & Fergus, 2014): grey out a patch, watch the probability drop.

A perturbation method: it only calls the model, so it also explains a black box that returns
probabilities (:class:`helpers.models.ProbabilitiesOnly`)."""
from __future__ import annotations

from typing import List, Tuple, Union

import numpy as np
import torch

from .._checks import TargetArg, check_choice, check_positive_int, class_scores
from ..runtime import progress as _progress
from ..taps import eval_mode
from ._core import broadcast_value, check_call

__all__ = ["occlusion_windows", "occlusion_map"]


def _pair(v, name: str) -> Tuple[int, int]:
    items = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair (h, w) of ints, got {v!r}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)) or item < 1:
            raise ValueError(f"{name} must be a positive int or a pair (h, w) of positive ints, "
                             f"got {v!r}")
    return int(items[0]), int(items[1])


def occlusion_windows(height: int, width: int, size, stride) -> List[Tuple[int, int, int, int]]:
    """The patches :func:`occlusion_map` greys out, as (top, left, h, w), row by row.

    Top-left corners run over ``range(0, H - size + stride, stride)`` in each direction: from the
    top-left corner in steps of ``stride`` up to the first patch that reaches the bottom (right)
    border.  A patch that sticks out past the border is cut off there (``h``, ``w`` are the
    clipped sizes), so every pixel is covered at least once when ``stride <= size``.  This is the
    window layout of Captum's ``Occlusion``.

    >>> occlusion_windows(10, 10, 4, 4)[:4]
    [(0, 0, 4, 4), (0, 4, 4, 4), (0, 8, 4, 2), (4, 0, 4, 4)]
    """
    kh, kw = _pair(size, "size")
    sh, sw = _pair(stride, "stride")
    if kh > height or kw > width:
        raise ValueError(f"size {size!r} is larger than the image ({height} x {width})")
    if sh > kh or sw > kw:
        raise ValueError(f"stride {stride!r} must not exceed size {size!r}, otherwise some "
                         f"pixels are never occluded")
    tops = range(0, height - kh + sh, sh)
    lefts = range(0, width - kw + sw, sw)
    return [(t, l, min(kh, height - t), min(kw, width - l)) for t in tops for l in lefts]


def occlusion_map(model, x: torch.Tensor, target: TargetArg, *, size=32, stride=16,
                  fill: Union[float, torch.Tensor] = 0.5, batch_size: int = 64,
                  output: str = "logits", progress: bool = True) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus, ECCV 2014), normalised to the clean probability.

    A ``size x size`` patch filled with ``fill`` slides over the image with step ``stride``
    (windows as in :func:`occlusion_windows`).  For every window :math:`w` the network sees the
    occluded image :math:`x^{(w)}` and we record the *relative drop* of the target probability

    .. math::  d_w = \\frac{p_t(x) - p_t(x^{(w)})}{p_t(x)}

    (1: hiding the patch removes all the evidence; 0: no effect; negative: the class became
    *more* likely).  A pixel's value is the mean of :math:`d_w` over all windows that cover it:

    .. math::  M_{ij} = \\frac{\\sum_{w \\ni (i,j)} d_w}{\\#\\{w \\ni (i,j)\\}}

    Dividing by :math:`p_t(x)` makes maps of images with different confidences comparable.
    Without it (Captum's ``Occlusion`` on probabilities) a map is the raw drop, i.e. ours times
    :math:`p_t(x)`.

    Args:
        model: any callable mapping (B, 3, H, W) to class scores (B, K): logits
            (``output="logits"``, softmax applied here) or probabilities (``output="probs"``,
            e.g. a :class:`helpers.models.ProbabilitiesOnly` black box).  No gradients are used.
        x: images (N, 3, H, W) in [0, 1].
        target: class index (int) or one per image.
        size, stride: patch size and step in pixels (int or (h, w)); ``stride <= size``.
        fill: value of the occluded pixels; 0.5 (mid grey) is the zero of the course models'
            normalised input.  A float or a tensor broadcastable to (3, H, W).
        batch_size: occluded images per forward pass (speed vs memory).
        progress: show a progress bar over the batches.

    Returns:
        maps (N, H, W) on ``x``'s device.  Cost: ``len(occlusion_windows(...)) + 1`` images
        through the network per input image.

    >>> from helpers.testing.nets import TinyCNN
    >>> occlusion_map(TinyCNN(seed=0), torch.rand(1, 3, 16, 16), 0, size=4, stride=2).shape
    torch.Size([1, 16, 16])
    """
    targets = check_call(model, x, target, module=False)
    check_positive_int(batch_size, "batch_size")
    check_choice(output, "output", ["logits", "probs"])
    n, _, h, w = x.shape
    windows = occlusion_windows(h, w, size, stride)
    xd = x.detach()
    fill_t = broadcast_value(fill, xd.shape[1:], xd, "fill")

    def probs(batch: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scores = class_scores(model(batch))
        return class_scores(scores.softmax(dim=1) if output == "logits" else scores, t)

    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    tops = torch.tensor([win[0] for win in windows], device=x.device)
    lefts = torch.tensor([win[1] for win in windows], device=x.device)
    kh, kw = _pair(size, "size")
    row_in = (rows[None, :] >= tops[:, None]) & (rows[None, :] < tops[:, None] + kh)   # (W_n, H)
    col_in = (cols[None, :] >= lefts[:, None]) & (cols[None, :] < lefts[:, None] + kw)
    count = (row_in[:, :, None] & col_in[:, None, :]).sum(0).to(x.dtype)                 # (H, W)
    total = torch.zeros((n, h, w), dtype=x.dtype, device=x.device)
    jobs = [(i, s) for i in range(n) for s in range(0, len(windows), batch_size)]
    with eval_mode(model), torch.no_grad():
        clean = probs(xd, targets).to(x.dtype).clamp_min(torch.finfo(x.dtype).tiny)       # (N,)
        for i, s in _progress(jobs, desc="occlusion", disable=None if progress else True):
            masks = (row_in[s:s + batch_size, :, None] & col_in[s:s + batch_size, None, :])[:, None]
            batch = torch.where(masks, fill_t, xd[i:i + 1])                               # (B,3,H,W)
            p = probs(batch, targets[i:i + 1].expand(batch.shape[0])).to(x.dtype)
            drop = (clean[i] - p) / clean[i]                                              # (B,)
            total[i] += (drop[:, None, None] * masks[:, 0]).sum(0)
    return total / count
