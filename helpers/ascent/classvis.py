"""Class visualisation: Simonyan's L2-regularised ascent step and Yosinski's image regularisers."""
from __future__ import annotations

import torch
from torch import nn

from .._checks import (TargetArg, check_image_batch, check_model, check_number, check_positive_int,
                       check_target, check_tensor, class_scores)
from ..filters import gaussian_blur
from ..taps import frozen
from ._common import GREY

__all__ = ["l2_class_step", "blur_and_clip"]


def l2_class_step(model: nn.Module, x: torch.Tensor, target: TargetArg, *, lr: float,
                  l2_reg: float) -> torch.Tensor:
    """One step of gradient *ascent* on the L2-regularised class score (Simonyan et al., 2014).

    .. math::  J(x) = \\sum_n S_{t_n}(x_n) - \\lambda \\lVert x - 0.5 \\rVert_2^2, \\qquad
               x \\leftarrow x + \\eta\\, \\nabla_x J(x)

    ``S_t`` is the raw class score (the logit ``model(x)[n, t]``, *before* softmax), ``lambda`` is
    ``l2_reg`` and ``eta`` is ``lr``.  The squared norm runs over every entry of the batch; 0.5 is
    the grey image, which this model sees as all zeros.  Each image's score depends only on its
    own pixels, so one gradient gives every image its own step.  Plain gradient step: no
    normalisation, no clamping.

    Args:
        model: classifier taking (N, 3, H, W) pixels; its mode and flags are left unchanged.
        x: float tensor (N, 3, H, W) (values may leave [0, 1] during ascent); not modified.
        target: class index ``t`` for every image, or one per image (list or (N,) tensor).
        lr: step size eta >= 0.   l2_reg: penalty weight lambda >= 0.

    Returns:
        a new tensor like ``x``, without autograd history.

    >>> from helpers.models import load_model
    >>> x = l2_class_step(load_model(), torch.full((1, 3, 64, 64), 0.5), 130, lr=1.0, l2_reg=1e-3)
    >>> x.shape
    torch.Size([1, 3, 64, 64])
    """
    check_model(model)
    check_image_batch(x, "x", unit_range=False)
    targets = check_target(target, x.shape[0], x.device)
    lr = check_number(lr, "lr", minimum=0.0)
    l2_reg = check_number(l2_reg, "l2_reg", minimum=0.0)
    x = x.detach().clone().requires_grad_(True)
    with frozen(model), torch.enable_grad():
        objective = class_scores(model(x), targets).sum() - l2_reg * (x - GREY).pow(2).sum()
        (grad,) = torch.autograd.grad(objective, x)
    return (x + lr * grad).detach()


def _percentile_mask(values: torch.Tensor, pct: float) -> torch.Tensor:
    """values (N, H, W) -> bool mask, True where a value is >= the pct-th percentile of its image."""
    q = torch.quantile(values.flatten(1).to(torch.float64), pct / 100.0, dim=1)
    return values >= q.to(values.dtype).view(-1, 1, 1)


def blur_and_clip(x: torch.Tensor, grad: torch.Tensor, step: int, *, blur_every: int = 4,
                  sigma: float = 0.5, norm_pct: float = 0.0, contrib_pct: float = 0.0
                  ) -> torch.Tensor:
    """The image regularisers of Yosinski et al. (ICML DL workshop 2015), applied after a step.

    Work on the centred image ``d = x - 0.5`` (0 = grey = what the model sees as zero), then:

    1. **periodic blur**: if ``blur_every > 0`` and ``step % blur_every == 0`` (``step`` counts
       the ascent steps from 1), blur every channel with a Gaussian of std ``sigma``
       (:func:`helpers.filters.gaussian_blur`, reflect padding);
    2. **clip pixels of small norm**: per image, the norm of each pixel over the channels,
       :math:`n_{ij} = \\lVert d_{:, i, j} \\rVert_2`; pixels with :math:`n_{ij}` below the
       ``norm_pct``-th percentile of that image's n (``torch.quantile``, linear interpolation)
       are set to grey (all channels);
    3. **clip pixels of small contribution**: :math:`c_{ij} = \\lvert \\sum_k d_{k,i,j}\\,
       g_{k,i,j} \\rvert` with ``g = grad`` (the ascent gradient of the objective, a first-order
       estimate of how much the pixel adds to it); pixels below the ``contrib_pct``-th percentile
       of their image are set to grey.  Uses ``d`` after steps 1 and 2.

    A percentile of 0 switches a clipping off.  Returns ``0.5 + d`` as a new tensor (not clamped);
    ``x`` and ``grad`` are not modified.

    Args:
        x, grad: float tensors (N, 3, H, W) of the same shape.
        step: the number (from 1) of the ascent step just taken.
        blur_every: blur period in steps (0: never).   sigma: blur std in pixels (> 0).
        norm_pct, contrib_pct: percentiles in [0, 100].

    >>> x = torch.rand(1, 3, 16, 16)
    >>> y = blur_and_clip(x, torch.randn_like(x), 1, blur_every=4, norm_pct=50)
    >>> float(((y - 0.5).norm(dim=1) == 0).float().mean())     # half of the pixels are grey now
    0.5
    """
    check_tensor(x, "x", ndim=4, floating=True)
    check_tensor(grad, "grad", ndim=4, floating=True)
    if grad.shape != x.shape:
        raise ValueError(f"grad must have the shape of x {tuple(x.shape)}, got {tuple(grad.shape)}")
    step = check_positive_int(step, "step")
    blur_every = check_positive_int(blur_every, "blur_every", minimum=0)
    sigma = check_number(sigma, "sigma", minimum=0.0, strict=True)
    norm_pct, contrib_pct = (check_number(v, name, minimum=0, maximum=100, hint="a percentile")
                             for name, v in (("norm_pct", norm_pct), ("contrib_pct", contrib_pct)))
    with torch.no_grad():
        d = x.detach() - GREY
        if blur_every and step % blur_every == 0:
            d = gaussian_blur(d, sigma)
        if norm_pct > 0:
            d = d * _percentile_mask(d.norm(dim=1), norm_pct).unsqueeze(1)
        if contrib_pct > 0:
            d = d * _percentile_mask((d * grad.detach()).sum(dim=1).abs(), contrib_pct).unsqueeze(1)
        return d + GREY
