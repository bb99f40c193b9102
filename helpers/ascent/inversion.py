"""Feature inversion (Mahendran & Vedaldi, 2015): an image whose features match a photo's."""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import nn

from .._checks import check_image_batch, check_model, check_number, check_positive_int
from ..runtime import progress as progress_bar
from ..taps import LayerArg, frozen
from ._common import GREY, layer_label, layer_output
from .penalties import tv_loss

__all__ = ["invert_features"]


def invert_features(model: nn.Module, x: torch.Tensor, *, layer: LayerArg,
                    init: Optional[torch.Tensor] = None, steps: int, lr: float, tv_weight: float,
                    beta: float = 2.0, progress: bool = True) -> Tuple[torch.Tensor, List[float]]:
    """Feature inversion (Mahendran & Vedaldi, CVPR 2015): an image whose features match ``x``'s.

    With :math:`\\Phi` the activation of ``layer`` and :math:`\\Phi_0 = \\Phi(x)` the features
    of the photo(s) ``x``, minimises with Adam on the pixels of ``y`` (started at ``init``)

    .. math::  L(y) = \\frac{\\lVert \\Phi(y) - \\Phi_0 \\rVert^2}{\\lVert \\Phi_0 \\rVert^2}
               + \\text{tv\\_weight} \\cdot \\frac{R_\\beta(y)}{H W}

    where :math:`R_\\beta` is :func:`tv_loss` summed over the batch.  Each of the ``steps``
    iterations: compute L, record it, take one Adam step (``torch.optim.Adam([y], lr=lr)``,
    default betas), then clamp ``y`` to [0, 1].  Gradients reach only ``y``
    (``torch.autograd.grad``), never the model's parameters.

    Args:
        model: the network; eval mode with frozen parameters while it runs, then restored.
        x: the photo(s) to invert, (N, 3, H, W) in [0, 1]; not modified.
        layer: a name from :func:`helpers.layer_names` (or the submodule).
        init: starting image, the shape of ``x``, in [0, 1] (default: grey 0.5); not modified.
        steps, lr, tv_weight, beta: number of Adam steps, its learning rate, TV weight, TV exponent.
        progress: show a progress bar.

    Returns:
        ``(y, losses)``: the final image (N, 3, H, W) in [0, 1] (detached) and the list of the
        ``steps`` values of L, each computed before its update.

    >>> from helpers.models import load_model
    >>> photo = torch.rand(1, 3, 64, 64)
    >>> y, losses = invert_features(load_model(), photo, layer="stem", steps=5, lr=0.05,
    ...                             tv_weight=0.0, progress=False)
    >>> losses[-1] < losses[0]
    True
    """
    check_model(model)
    check_image_batch(x, "x")
    if init is None:
        init = torch.full_like(x, GREY)
    check_image_batch(init, "init")
    if init.shape != x.shape:
        raise ValueError(f"init must have the shape of x {tuple(x.shape)}, got {tuple(init.shape)}")
    steps = check_positive_int(steps, "steps")
    lr = check_number(lr, "lr", minimum=0.0, strict=True)
    tv_weight = check_number(tv_weight, "tv_weight", minimum=0.0)
    beta = check_number(beta, "beta", minimum=0.0, strict=True)
    h, w = x.shape[-2:]
    y = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    losses: List[float] = []
    with frozen(model), layer_output(model, layer) as phi:
        with torch.no_grad():
            target = phi(x.detach())
        norm0 = target.pow(2).sum()
        if float(norm0) == 0:
            raise ValueError(f"the features of x at layer {layer_label(layer)!r} are all zeros: "
                             f"there is nothing to invert (pick another layer or image)")
        with torch.enable_grad():
            for _ in progress_bar(range(steps), desc=f"inverting {layer_label(layer)}",
                                  disable=None if progress else True):
                loss = (phi(y) - target).pow(2).sum() / norm0
                if tv_weight:
                    loss = loss + tv_weight * tv_loss(y, beta).sum() / (h * w)
                losses.append(float(loss.detach()))
                (y.grad,) = torch.autograd.grad(loss, y)
                opt.step()
                with torch.no_grad():
                    y.clamp_(0.0, 1.0)
    return y.detach(), losses
