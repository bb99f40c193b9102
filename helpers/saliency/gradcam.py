"""Grad-CAM (Selvaraju et al., 2017): a class's evidence located in a late feature map."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import TargetArg, class_scores
from ..taps import LayerArg, frozen, resolve_layer
from ._core import check_call, need_grad, run_to_layer

__all__ = ["grad_cam"]


def grad_cam(model: nn.Module, x: torch.Tensor, target: TargetArg, *, layer: LayerArg = "head",
             upsample: bool = True) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., ICCV 2017): where in a late feature map is the class evidence?

    With :math:`A^k` (h x w) the k-th channel of ``layer``'s output and :math:`S_t` the target
    logit:

    .. math::  \\alpha_k = \\frac{1}{hw}\\sum_{i,j}\\frac{\\partial S_t}{\\partial A^k_{ij}},
               \\qquad L = \\mathrm{ReLU}\\Big(\\sum_k \\alpha_k A^k\\Big)

    :math:`\\alpha_k` (the spatially *averaged* gradient) says how much channel k matters for the
    class; the weighted sum of the maps says where those channels fire; the ReLU keeps only the
    evidence *for* the class.  The h x w map is then resized to the image with bilinear
    interpolation (``align_corners=False``), after the ReLU; ``upsample=False`` returns the
    (N, h, w) map of the layer.  No normalisation: values are in logit units per activation.

    Args:
        layer: a layer name (default ``"head"``: the last convolutional unit of the course's
            EfficientNet-Lite, 7 x 7 at 224 px) or the submodule itself.  Late layers give
            coarse, class-specific maps; earlier layers finer but less specific ones.

    Shapes: x (N, 3, H, W) -> (N, H, W) (or (N, h, w)).  Equals Captum's ``LayerGradCam`` with
    ``relu_attributions=True`` followed by ``LayerAttribution.interpolate(..., "bilinear")``.

    >>> from helpers.testing.nets import TinyCNN
    >>> grad_cam(TinyCNN(seed=0), torch.rand(1, 3, 16, 16), 1, layer="act3").shape
    torch.Size([1, 16, 16])
    """
    targets = check_call(model, x, target, module=True)
    module = resolve_layer(model, layer)
    with frozen(model), torch.enable_grad():
        out, act = run_to_layer(model, module, x.detach().clone().requires_grad_(True),
                                stop_early=False)
        score = class_scores(out, targets)
        need_grad(score, "grad_cam")
        (grad,) = torch.autograd.grad(score.sum(), act)
    alpha = grad.mean(dim=(2, 3), keepdim=True)                       # (N, C, 1, 1)
    cam = F.relu((alpha * act.detach()).sum(dim=1, keepdim=True))     # (N, 1, h, w)
    if upsample and tuple(cam.shape[-2:]) != tuple(x.shape[-2:]):
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].to(x.dtype)
