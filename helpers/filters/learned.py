"""Reading learned filters: pull them out of the course's EfficientNet-Lite, display, measure.

* :func:`stem_filters` / :func:`depthwise_filters` / :func:`fold_batchnorm` -- the kernels of the
  network, optionally with the following BatchNorm folded in;
* :func:`normalize_filters` -- per-filter display scaling;
* :func:`smoothness` / :func:`center_energy` -- how spatially structured is a filter?
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn

from .._checks import _describe, check_model, check_number, check_tensor
from ..taps import resolve_layer
from .matching import _as_2d_filters

__all__ = ["normalize_filters", "smoothness", "center_energy", "fold_batchnorm", "stem_filters",
           "depthwise_filters"]


def normalize_filters(weight: torch.Tensor) -> torch.Tensor:
    """Scale every filter on its own to [0, 1] for display (min-max per filter).

    .. math::  \\hat w_k = \\frac{w_k - \\min w_k}{\\max w_k - \\min w_k}

    where the min and max run over all entries of filter ``k`` (all its input channels and
    positions).  A constant filter (max = min) becomes 0.5 everywhere.  The input is not changed.
    Same contract as ``helpers.plotting.rescale(weight, per_item=True)``, which does the work.

    Parameters
    ----------
    weight : float tensor (K, ...), e.g. (C_out, C_in, k, k) or (K, k, k); dimension 0 indexes
        the filters.

    Returns
    -------
    float tensor of the same shape and dtype with values in [0, 1].

    Example
    -------
    >>> normalize_filters(torch.tensor([[[-1.0, 1.0]], [[2.0, 2.0]]]))
    tensor([[[0.0000, 1.0000]],
    <BLANKLINE>
            [[0.5000, 0.5000]]])
    """
    from ..plotting import rescale

    check_tensor(weight, "weight", floating=True)
    if weight.ndim < 2:
        raise ValueError(f"weight must have a filter dimension and at least one more, got "
                         f"{_describe(weight)}")
    return rescale(weight, per_item=True)


def smoothness(filters: torch.Tensor) -> torch.Tensor:
    """How spatially smooth each filter is: 1 for slow ramps, about 0 for noise, < 0 for checkers.

    .. math::  s(f) = 1 - \\frac{\\operatorname{mean}_{p \\sim q} (z_p - z_q)^2}
                               {2\\, \\operatorname{mean}_p z_p^2},\\qquad z = f - \\bar f

    where ``p ~ q`` runs over horizontally and vertically adjacent pixel pairs (one minus the
    normalised variogram at lag 1, a cousin of Geary's C).  For independent random pixels
    neighbours differ as much as any two pixels, the ratio is about 1 and ``s`` about 0 (a little
    below 0 for tiny filters, whose mean is estimated from few pixels); smooth structure such as a
    ramp or a wide blob gives ``s`` near 1, while a centre-surround or checkerboard pattern scores
    below 0 -- structured, but not smooth.  It is a crude but honest "is there spatial structure
    here?" number; compare it with random filters of the same size.  Filters with channels are
    averaged over them first; a constant filter scores 0.

    Parameters
    ----------
    filters : float tensor (K, h, w) or (K, C, h, w), h * w >= 2

    Returns
    -------
    float32 tensor (K,)

    Example
    -------
    >>> ramp = torch.arange(9.0).reshape(1, 3, 3)
    >>> round(float(smoothness(ramp)), 4)
    0.625
    """
    f2 = _as_2d_filters(filters).detach().to(torch.float64)
    k, h, w = f2.shape
    if h * w < 2:
        raise ValueError(f"filters must have at least 2 pixels, got {h}x{w}")
    z = f2 - f2.mean(dim=(1, 2), keepdim=True)
    diffs = []
    if w > 1:
        diffs.append((z[:, :, 1:] - z[:, :, :-1]).reshape(k, -1))
    if h > 1:
        diffs.append((z[:, 1:, :] - z[:, :-1, :]).reshape(k, -1))
    d2 = torch.cat(diffs, dim=1).pow(2).mean(dim=1)
    v = z.reshape(k, -1).pow(2).mean(dim=1)
    tiny = torch.finfo(torch.float64).tiny * 1e6
    s = torch.where(v > tiny, 1.0 - d2 / (2.0 * v.clamp_min(tiny)), torch.zeros_like(v))
    return s.to(torch.float32)


def center_energy(filters: torch.Tensor) -> torch.Tensor:
    """Fraction of each filter's energy in its centre pixel: 1 for a pure "pass-through" filter.

    .. math::  c(f) = \\frac{f[r, r]^2}{\\sum_{u,v} f[u, v]^2},\\qquad r = k // 2

    A filter with all its weight at the centre (a scaled delta) copies its input channel, up to a
    factor: it does no spatial processing at all.  For random filters with independent entries
    the expected value is ``1 / (h * w)`` (0.11 for 3x3, 0.04 for 5x5).  Filters with channels are
    averaged over them first; an all-zero (dead) filter scores 0.

    Parameters
    ----------
    filters : float tensor (K, h, w) or (K, C, h, w) with odd h and w

    Returns
    -------
    float32 tensor (K,) in [0, 1]

    Example
    -------
    >>> center_energy(torch.tensor([[[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.0]]]))
    tensor([0.8000])
    """
    f2 = _as_2d_filters(filters).detach().to(torch.float64)
    k, h, w = f2.shape
    if h % 2 == 0 or w % 2 == 0:
        raise ValueError(f"filters must have odd height and width (a centre pixel), got {h}x{w}")
    total = f2.pow(2).sum(dim=(1, 2))
    centre = f2[:, h // 2, w // 2].pow(2)
    tiny = torch.finfo(torch.float64).tiny
    out = torch.where(total > tiny, centre / total.clamp_min(tiny), torch.zeros_like(total))
    return out.to(torch.float32)


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of one convolution that equals ``bn(conv(x))`` in eval mode.

    BatchNorm (Ioffe & Szegedy, 2015) in eval mode is a per-channel affine map
    :math:`\\mathrm{bn}(z)_o = \\gamma_o (z_o - \\mu_o) / \\sqrt{\\sigma_o^2 + \\epsilon} + \\beta_o`,
    so it can be folded into the preceding convolution:

    .. math::  w'_o = \\frac{\\gamma_o}{\\sqrt{\\sigma_o^2 + \\epsilon}}\\, w_o,\\qquad
               b'_o = \\beta_o + \\frac{\\gamma_o}{\\sqrt{\\sigma_o^2 + \\epsilon}}(b_o - \\mu_o)

    Each filter is rescaled by its own factor -- which is why the *relative* size of raw filters in
    a BN network says little, and why per-filter display scaling is the fair way to look at them.

    Returns
    -------
    detached copies ``(weight (C_out, C_in/groups, k, k), bias (C_out,))``

    Example
    -------
    >>> conv, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4).eval()
    >>> w, b = fold_batchnorm(conv, bn)
    >>> x = torch.rand(1, 3, 5, 5)
    >>> torch.allclose(torch.nn.functional.conv2d(x, w, b), bn(conv(x)), atol=1e-5)
    True
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"bn must be an nn.BatchNorm2d, got {type(bn).__name__}")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"bn must have num_features = conv.out_channels = {conv.out_channels}, "
                         f"got {bn.num_features}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("bn must track running statistics (track_running_stats=True) to be folded")
    with torch.no_grad():
        scale = bn.running_var.add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        shift = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
        w = conv.weight * scale.view(-1, 1, 1, 1)
        b = shift + scale * (bias - bn.running_mean)
    return w.detach().clone(), b.detach().clone()


def _conv_bn(model: nn.Module, path: str) -> Tuple[nn.Conv2d, nn.BatchNorm2d]:
    """The ``.conv`` and ``.bn`` of the unit ``path`` of a course EfficientNet-Lite."""
    check_model(model)
    try:
        unit = resolve_layer(model, path)
    except ValueError:
        unit = None
    conv, bn = getattr(unit, "conv", None), getattr(unit, "bn", None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(
            f"model must be a course EfficientNet-Lite (helpers.load_model('efficientnet_lite0')) "
            f"with a unit '{path}' holding .conv and .bn; got {type(model).__name__} without it")
    return conv, bn


def _kernels(conv: nn.Conv2d, bn: nn.BatchNorm2d, fold_bn: bool) -> torch.Tensor:
    return fold_batchnorm(conv, bn)[0] if fold_bn else conv.weight.detach().clone()


def stem_filters(model: nn.Module, *, fold_bn: bool = False) -> torch.Tensor:
    """The first-layer (stem) filters of a course EfficientNet-Lite: (32, 3, 3, 3), RGB, detached.

    The stem is a 3x3 convolution with stride 2 from the 3 colour channels to 32 channels -- the
    only layer whose filters live in pixel space and can be shown as small colour images.  (The
    model first maps pixels to ``(x - 0.5) / 0.5``, which multiplies every filter by the same
    factor 2 and does not change how it looks.)  With ``fold_bn=True`` the following BatchNorm's
    per-channel scale is folded in (see :func:`fold_batchnorm`).

    Example
    -------
    >>> from helpers.models import load_model
    >>> stem_filters(load_model()).shape
    torch.Size([32, 3, 3, 3])
    """
    return _kernels(*_conv_bn(model, "stem"), fold_bn)


def depthwise_filters(model: nn.Module, stage: int, block: int = 0, *, fold_bn: bool = False
                      ) -> torch.Tensor:
    """The depthwise filters of block ``block`` of stage ``stage``: (C, 1, k, k), detached.

    In an MBConv block (Sandler et al., 2018; see ``helpers.models``) the depthwise convolution is
    the only *spatial* one: each of its C channels gets its own k x k filter (k = 3 or 5), acting
    on one channel of the expanded representation -- not on pixels.  ``stage`` is 0..6 for
    EfficientNet-Lite (the index in ``model.stages``), ``block`` the block inside it.

    Example
    -------
    >>> from helpers.models import load_model
    >>> depthwise_filters(load_model(), stage=2).shape      # stage 2: 5x5 kernels, 144 channels
    torch.Size([144, 1, 5, 5])
    """
    check_model(model)
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.Sequential):
        raise TypeError(f"model must be a course EfficientNet-Lite with .stages, got "
                        f"{type(model).__name__}")
    check_number(stage, "stage", minimum=0, maximum=len(stages) - 1, integer=True,
                 hint=f"the index of one of the model's {len(stages)} stages")
    n_blocks = len(stages[stage])
    check_number(block, "block", minimum=0, maximum=n_blocks - 1, integer=True,
                 hint=f"stage {stage} has {n_blocks} block(s)")
    return _kernels(*_conv_bn(model, f"stages.{stage}.{block}.depthwise"), fold_bn)
