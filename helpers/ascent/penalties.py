"""Image priors: total variation (Mahendran & Vedaldi) and multi-scale edge energy (Fleuret).

Both are non-negative penalties, one value per image (N,); an objective subtracts them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_number, check_tensor
from ..filters import apply_filter, gaussian_kernel

__all__ = ["tv_loss", "edge_energy"]


def tv_loss(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Total-variation prior of Mahendran & Vedaldi (CVPR 2015), one value per image.

    .. math::  R_\\beta(x) = \\sum_{c, i, j} \\big( (x_{c,i,j+1} - x_{c,i,j})^2
               + (x_{c,i+1,j} - x_{c,i,j})^2 \\big)^{\\beta / 2}

    summed over every channel ``c`` and every pixel ``(i, j)`` (no mean).  A difference that would
    leave the image (last column for the horizontal one, last row for the vertical one) counts as
    0, as if the last column/row were repeated.  ``beta = 2`` gives the sum of all squared
    neighbour differences (the "TV loss" of style transfer); ``beta = 1`` the classic isotropic
    total variation, which tolerates a few sharp edges more than many small wiggles.

    Args:
        x: float tensor (N, C, H, W) (any C, any value range).
        beta: exponent, > 0.

    Returns:
        tensor (N,).  Differentiable; at a pixel where both differences are 0 the gradient is
        taken as 0 (the power is not differentiable there for ``beta < 2``).

    >>> x = torch.tensor([[[[0., 1.], [0., 3.]]]])     # (1, 1, 2, 2)
    >>> tv_loss(x)                                      # (1+0) + (0+4) + (9+0) + 0
    tensor([14.])
    """
    check_tensor(x, "x", ndim=4, floating=True)
    beta = check_number(beta, "beta", minimum=0.0, strict=True)
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    sq = dx * dx + dy * dy
    if beta == 2.0:
        v = sq
    else:
        positive = sq > 0
        safe = torch.where(positive, sq, torch.ones_like(sq))
        v = torch.where(positive, safe.pow(beta / 2), torch.zeros_like(sq))
    return v.sum(dim=(1, 2, 3))


def edge_energy(x: torch.Tensor) -> torch.Tensor:
    """Multi-scale edge energy (Fleuret, *Deep learning* course, 9.4), one value per image.

    .. math::  h(x) = \\sum_{s \\ge 0} \\big\\lVert \\delta^s(x) - g \\circledast \\delta^s(x)
               \\big\\rVert^2

    * every channel is treated as a separate grey image and the energies are summed over channels;
    * ``g`` is the 5x5 Gaussian :math:`\\propto \\exp(-(u^2 + v^2)/2)`, :math:`u, v \\in
      \\{-2, \\dots, 2\\}`, normalised to sum 1 (``helpers.filters.gaussian_kernel(5, 1.0)``),
      applied with reflect padding (``helpers.filters.apply_filter``), so the output keeps the
      size and a constant image has no energy;
    * ``delta`` downscales by two: 2x2 average pooling with stride 2 (an odd last row or column
      is dropped, as ``F.avg_pool2d(u, 2)`` does);
    * scales ``s = 0, 1, 2, ...`` are added while the current image is larger than 5 pixels on
      its shorter side (a 128x128 image contributes the scales 128, 64, 32, 16 and 8).

    ``x - g * x`` is a high-pass filter, so ``h`` is the energy of the fine detail at every scale:
    penalising it pushes an optimised image towards smooth, large structures.

    Args:
        x: float tensor (N, C, H, W).
    Returns:
        tensor (N,), differentiable.

    >>> edge_energy(torch.full((2, 3, 32, 32), 0.5)).abs().max() < 1e-6   # a constant: no edges
    tensor(True)
    """
    check_tensor(x, "x", ndim=4, floating=True)
    n, c, h, w = x.shape
    g = gaussian_kernel(5, 1.0, dtype=x.dtype).to(x.device)
    u = x.reshape(n * c, 1, h, w)
    total = x.new_zeros(n * c)
    while min(u.shape[-2], u.shape[-1]) > 5:
        high = u - apply_filter(u, g, padding="reflect")
        total = total + high.pow(2).sum(dim=(1, 2, 3))
        u = F.avg_pool2d(u, 2)
    return total.reshape(n, c).sum(dim=1)
