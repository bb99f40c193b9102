"""Correlation as similarity: a template slid over an image, a filter against a Gabor bank.

Every output of a convolution is a dot product between the filter and the patch under it, so a
filter is a *template*.  :func:`template_match` scores every position of an image against a
template (plain or normalised cross-correlation); :func:`filter_correlations` and
:func:`best_matching_gabor` score learned filters against a bank of hand-made kernels (which Gabor
does a filter look like?).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from .._checks import check_tensor

__all__ = ["template_match", "filter_correlations", "best_matching_gabor"]


def template_match(x: torch.Tensor, template: torch.Tensor, *, normalize: bool = True
                   ) -> torch.Tensor:
    """Slide ``template`` over the images ``x`` and score every position: convolution as matching.

    With ``normalize=True`` (default) the score is the normalised cross-correlation (Pearson
    correlation; Lewis, "Fast normalized cross-correlation", 1995) between the template ``T`` and
    the image patch ``P`` under it, both taken over all channels and pixels:

    .. math::  r(i, j) = \\frac{\\sum (P_{ij} - \\bar P_{ij})(T - \\bar T)}
                            {\\sqrt{\\sum (P_{ij} - \\bar P_{ij})^2 \\; \\sum (T - \\bar T)^2}}
               \\in [-1, 1]

    (0 where the patch or the template is constant).  It is what
    ``skimage.feature.match_template`` computes.  With ``normalize=False`` the score is the plain
    correlation :math:`\\sum P_{ij} T` -- exactly one output channel of a convolution layer whose
    filter is the template.  Plain correlation grows with the brightness of the patch, so bright
    regions win whether or not they look like the template; normalising removes that.

    Parameters
    ----------
    x : float tensor (N, C, H, W)
    template : float tensor (C, h, w) or (1, C, h, w), h <= H, w <= W
    normalize : bool

    Returns
    -------
    tensor (N, 1, H - h + 1, W - w + 1) of ``x``'s dtype; entry (i, j) scores the patch whose
    *top-left* corner is pixel (i, j).

    Example
    -------
    >>> img = torch.rand(1, 3, 40, 40)
    >>> r = template_match(img, img[0, :, 10:20, 5:15])
    >>> divmod(int(r.flatten().argmax()), r.shape[-1])
    (10, 5)
    """
    check_tensor(x, "x", ndim=4, floating=True)
    check_tensor(template, "template", ndim=(3, 4), floating=True)
    if template.ndim == 4:
        if template.shape[0] != 1:
            raise ValueError(f"template must have shape (C, h, w) or (1, C, h, w), got "
                             f"{tuple(template.shape)}")
        template = template[0]
    n, c, h, w = x.shape
    tc, th, tw = template.shape
    if tc != c:
        raise ValueError(f"template must have the {c} channel(s) of x, got template of shape "
                         f"{tuple(template.shape)} for x of shape {tuple(x.shape)}")
    if th > h or tw > w:
        raise ValueError(f"template ({th}x{tw}) must not be larger than the images x ({h}x{w})")
    # Work in float64 (the variance below is a difference of two large sums) and correlate with
    # FFTs: sliding a 60x60 template over a photo is ~1e9 multiply-adds done directly.
    x64 = x.detach().to(torch.float64)
    t = template.detach().to(device=x.device, dtype=torch.float64)
    if normalize:
        t = t - t.mean()
    out = _correlate_valid(x64, t)                        # sum over c, u, v of P * T
    if normalize:
        m = t.numel()
        t_norm = t.pow(2).sum().sqrt()
        s1 = _window_sum(x64.sum(dim=1, keepdim=True), th, tw)          # sum of P
        s2 = _window_sum((x64 * x64).sum(dim=1, keepdim=True), th, tw)  # sum of P^2
        patch_var = s2 - s1 * s1 / m                                    # sum (P - mean P)^2
        # The integral images carry rounding errors of the order eps * (their total); a patch
        # whose variance is below that is constant and scores 0 (as does a constant template).
        total2 = float((x64 * x64).sum(dim=(1, 2, 3)).max())
        total1 = float(x64.abs().sum(dim=(1, 2, 3)).max())
        tol = 64 * torch.finfo(torch.float64).eps * (total2 + total1 * total1 / m)
        valid = (patch_var > tol) & (t_norm > 0)
        denominator = torch.where(valid, patch_var, torch.ones_like(patch_var)).sqrt() * t_norm
        out = torch.where(valid, out / torch.where(valid, denominator, torch.ones_like(out)),
                          torch.zeros_like(out))
    return out.to(x.dtype)


def _correlate_valid(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """'valid' cross-correlation of x (N, C, H, W) with one template t (C, h, w), summed over C."""
    h, w = x.shape[-2:]
    _, th, tw = t.shape
    fx = torch.fft.rfft2(x, s=(h, w))
    ft = torch.fft.rfft2(t, s=(h, w))
    full = torch.fft.irfft2(fx * ft.conj(), s=(h, w)).sum(dim=1, keepdim=True)
    return full[:, :, :h - th + 1, :w - tw + 1]


def _window_sum(x: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """Sum of x over every th x tw window ('valid'), with an integral image."""
    s = F.pad(x.cumsum(dim=-2).cumsum(dim=-1), (1, 0, 1, 0))
    return s[..., th:, tw:] - s[..., :-th, tw:] - s[..., th:, :-tw] + s[..., :-th, :-tw]


def _as_2d_filters(filters: torch.Tensor, name: str = "filters") -> torch.Tensor:
    """(K, h, w) filters; (K, C, h, w) ones are averaged over their C input channels."""
    check_tensor(filters, name, ndim=(3, 4), floating=True)
    return filters.mean(dim=1) if filters.ndim == 4 else filters


def _zero_mean_unit_norm(f: torch.Tensor) -> torch.Tensor:
    """Every row of the flattened (K, ...) ``f`` centred and scaled to norm 1 (0 if constant)."""
    flat = f.reshape(f.shape[0], -1).to(torch.float64)
    flat = flat - flat.mean(dim=1, keepdim=True)
    norm = flat.norm(dim=1, keepdim=True)
    tiny = torch.finfo(torch.float64).eps * flat.shape[1]
    return torch.where(norm > tiny, flat / norm.clamp_min(tiny), torch.zeros_like(flat))


def filter_correlations(filters: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of every filter with every bank element: shape (K, M), in [-1, 1].

    .. math::  \\rho(f, g) = \\frac{\\langle f - \\bar f,\\; g - \\bar g \\rangle}
                                   {\\lVert f - \\bar f \\rVert\\, \\lVert g - \\bar g \\rVert}

    over the flattened h*w pixels.  Filters with input channels, (K, C, h, w), are first averaged
    over the channels (for an RGB first-layer filter: its response to grey images).  A constant
    filter or bank element correlates 0 with everything.  The result is float64, on the CPU.

    Parameters
    ----------
    filters : float tensor (K, h, w) or (K, C, h, w)
    bank : float tensor (M, h, w), the same h, w

    Example
    -------
    >>> f = torch.tensor([[[0.0, 1.0], [2.0, 3.0]]])
    >>> filter_correlations(f, torch.cat([2 * f + 1, -f]))
    tensor([[ 1., -1.]], dtype=torch.float64)
    """
    f2 = _as_2d_filters(filters)
    check_tensor(bank, "bank", ndim=3, floating=True)
    if tuple(bank.shape[-2:]) != tuple(f2.shape[-2:]):
        raise ValueError(
            f"bank must hold kernels of the filters' size {tuple(f2.shape[-2:])}, got bank of shape "
            f"{tuple(bank.shape)}; build it with gabor_bank({f2.shape[-1]}, ...)")
    a = _zero_mean_unit_norm(f2.detach().cpu())
    b = _zero_mean_unit_norm(bank.detach().cpu())
    return (a @ b.T).clamp(-1.0, 1.0)


def best_matching_gabor(filters: torch.Tensor, bank: torch.Tensor
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """For every filter, the bank element it correlates with most, and that correlation.

    The score is the *signed* Pearson correlation of :func:`filter_correlations` (zero mean, unit
    norm, flattened): a filter equal to minus a bank element correlates -1 with it, so it matches
    the element of opposite phase instead (the default :func:`helpers.filters.gabor_bank` contains
    both).  Filters with input channels, (K, C, h, w), are averaged over the channels first.

    Parameters
    ----------
    filters : float tensor (K, h, w) or (K, C, h, w)
    bank : float tensor (M, h, w), same h, w as the filters (no resizing is done)

    Returns
    -------
    indices : int64 tensor (K,), the index of the best bank element for each filter
    correlations : float32 tensor (K,), that element's correlation, in [-1, 1]

    Example
    -------
    >>> from helpers.filters import gabor_bank
    >>> bank, params = gabor_bank(5)
    >>> idx, r = best_matching_gabor(bank[[3, 17]] * 2.0 + 1.0, bank)
    >>> idx.tolist(), [round(float(v), 6) for v in r]
    ([3, 17], [1.0, 1.0])
    """
    best, idx = filter_correlations(filters, bank).max(dim=1)
    return idx, best.to(torch.float32)
