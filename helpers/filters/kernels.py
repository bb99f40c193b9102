"""Hand-made kernels: Sobel (edges), Gaussian (blur), Gabor (oriented stripes).

Spatial coordinates of a kernel are centred: ``x`` is the column offset (positive to the right)
and ``y`` the row offset (positive *downwards*, as in an image).  Angles are in radians.  Every
kernel is written for correlation (what ``nn.Conv2d`` computes, see
:func:`helpers.filters.conv2d_naive`): the Sobel ``x`` kernel responds *positively* where the image
gets brighter to the right.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .._checks import check_number, check_positive_int

__all__ = ["gabor_kernel", "gabor_bank", "sobel_kernels", "gaussian_kernel"]


def _odd_size(size, name: str = "size") -> int:
    """A kernel size: an odd int >= 1, so that the kernel has a centre pixel."""
    size = check_number(size, name, minimum=1, integer=True, hint="an odd kernel size")
    if size % 2 == 0:
        raise ValueError(f"{name} must be odd (so that the kernel has a centre pixel), got {size}")
    return size


def _centred_grid(size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """float64 coordinate grids (x, y) of a size x size kernel, centred on its middle pixel."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(coords, coords, indexing="ij")   # y: row offset (down), x: column offset
    return x, y


def gabor_kernel(size: int, *, sigma: float, theta: float, lambd: float, psi: float = 0.0,
                 gamma: float = 0.5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A real Gabor kernel: a cosine grating under a Gaussian envelope.

    The classic model of V1 simple cells (Daugman, 1985) and of the first layer of trained CNNs:

    .. math::
        g(x, y) = \\exp\\!\\Big(-\\frac{x'^2 + \\gamma^2 y'^2}{2\\sigma^2}\\Big)
                  \\cos\\!\\Big(2\\pi \\frac{x'}{\\lambda} + \\psi\\Big),\\qquad
        x' = x\\cos\\theta + y\\sin\\theta,\\quad y' = -x\\sin\\theta + y\\cos\\theta

    on centred coordinates: ``x`` = column offset from the centre (to the right), ``y`` = row
    offset (downwards).  With ``theta = 0`` the cosine varies along ``x``, so the stripes are
    vertical; ``theta = pi/2`` gives horizontal stripes.  ``psi = 0`` is an even (bar-like)
    kernel, ``psi = pi/2`` an odd (edge-like) one.  No normalisation is applied: the centre value
    is ``cos(psi)``.

    This is the real part of ``skimage.filters.gabor_kernel(frequency=1/lambd, theta=theta,
    sigma_x=sigma, sigma_y=sigma/gamma, offset=psi)`` times ``2 pi sigma_x sigma_y`` (that function
    divides by it), cropped to ``size x size`` -- the tests check exactly this.

    Parameters
    ----------
    size : odd int >= 1, the kernel is (size, size)
    sigma : float > 0, std of the Gaussian envelope along the grating direction x' (pixels)
    theta : float, orientation of the grating's normal, radians
    lambd : float > 0, wavelength of the cosine (pixels per cycle)
    psi : float, phase offset, radians
    gamma : float > 0, spatial aspect ratio (envelope std across x' is sigma / gamma)

    Returns
    -------
    tensor (size, size) of ``dtype``

    Example
    -------
    >>> g = gabor_kernel(7, sigma=2.0, theta=0.0, lambd=4.0)
    >>> g.shape, float(g[3, 3])
    (torch.Size([7, 7]), 1.0)
    """
    size = _odd_size(size)
    sigma = check_number(sigma, "sigma", minimum=0, strict=True)
    lambd = check_number(lambd, "lambd", minimum=0, strict=True)
    gamma = check_number(gamma, "gamma", minimum=0, strict=True)
    theta = check_number(theta, "theta")
    psi = check_number(psi, "psi")
    x, y = _centred_grid(size)
    xr = x * math.cos(theta) + y * math.sin(theta)
    yr = -x * math.sin(theta) + y * math.cos(theta)
    envelope = torch.exp(-(xr ** 2 + gamma ** 2 * yr ** 2) / (2 * sigma ** 2))
    carrier = torch.cos(2 * math.pi * xr / lambd + psi)
    return (envelope * carrier).to(dtype)


def gabor_bank(size: int, *, n_orientations: int = 8, wavelengths: Sequence[float] = (4.0, 8.0),
               sigma: Optional[float] = None, phases: Sequence[float] = (0.0, math.pi / 2, math.pi,
                                                                         3 * math.pi / 2),
               gamma: float = 0.5, dtype: torch.dtype = torch.float32
               ) -> Tuple[torch.Tensor, List[Dict[str, float]]]:
    """A bank of Gabor kernels (:func:`gabor_kernel`) over orientations x wavelengths x phases.

    Orientations are ``theta = k * pi / n_orientations`` for ``k = 0 .. n_orientations-1`` (the
    half circle: a grating at ``theta + pi`` is the same grating).  The default phases
    ``0, pi/2, pi, 3pi/2`` give even and odd kernels *and their negatives*, so a signed match
    (see :func:`helpers.filters.best_matching_gabor`) can tell a dark bar from a bright one.
    ``sigma=None`` ties the envelope to the wavelength, ``sigma = 0.5 * lambd`` (about one octave
    of bandwidth).

    Returns
    -------
    bank : tensor (K, size, size), K = n_orientations * len(wavelengths) * len(phases); the order
        is orientation-major: ``[(theta_0, lambda_0, psi_0), (theta_0, lambda_0, psi_1), ...]``
    params : list of K dicts with keys ``theta, lambd, psi, sigma, gamma`` (and ``theta_deg``
        for labels)

    Example
    -------
    >>> bank, params = gabor_bank(5, n_orientations=4, wavelengths=(4.0,), phases=(0.0,))
    >>> bank.shape, [round(p["theta_deg"]) for p in params]
    (torch.Size([4, 5, 5]), [0, 45, 90, 135])
    """
    size = _odd_size(size)
    check_positive_int(n_orientations, "n_orientations")
    wavelengths = [check_number(lam, "wavelengths[]", minimum=0, strict=True)
                   for lam in wavelengths]
    phases = [check_number(p, "phases[]") for p in phases]
    if not wavelengths:
        raise ValueError("wavelengths must hold at least one positive number, got an empty list")
    if not phases:
        raise ValueError("phases must hold at least one number, got an empty list")
    if sigma is not None:
        sigma = check_number(sigma, "sigma", minimum=0, strict=True)
    gamma = check_number(gamma, "gamma", minimum=0, strict=True)
    kernels, params = [], []
    for k in range(n_orientations):
        theta = k * math.pi / n_orientations
        for lam in wavelengths:
            s = 0.5 * lam if sigma is None else sigma
            for psi in phases:
                kernels.append(gabor_kernel(size, sigma=s, theta=theta, lambd=lam, psi=psi,
                                            gamma=gamma, dtype=dtype))
                params.append({"theta": theta, "theta_deg": math.degrees(theta), "lambd": lam,
                               "psi": psi, "sigma": s, "gamma": gamma})
    return torch.stack(kernels), params


def sobel_kernels(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The two 3x3 Sobel kernels, written for correlation: shape (2, 3, 3) = (d/dx, d/dy).

    ::

        x: [[-1, 0, 1],        y: [[-1, -2, -1],
            [-2, 0, 2],            [ 0,  0,  0],
            [-1, 0, 1]]            [ 1,  2,  1]]

    Correlating an image with ``x`` gives a positive response where it gets brighter to the right,
    with ``y`` where it gets brighter downwards (same as ``scipy.ndimage.sobel(img, axis=1)`` and
    ``axis=0``).  Each kernel is a derivative ``[-1, 0, 1]`` across the edge times a smoothing
    ``[1, 2, 1]`` along it (Sobel & Feldman, 1968).

    Example
    -------
    >>> sobel_kernels()[0]
    tensor([[-1.,  0.,  1.],
            [-2.,  0.,  2.],
            [-1.,  0.,  1.]])
    """
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=dtype)
    return torch.stack([kx, kx.T.contiguous()])


def gaussian_kernel(size: int, sigma: float, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A sampled 2-D Gaussian, normalised to sum to 1: shape (size, size).

    .. math::  G(x, y) = \\frac{1}{Z} \\exp\\!\\Big(-\\frac{x^2 + y^2}{2\\sigma^2}\\Big),
               \\quad Z = \\sum_{x,y} \\exp\\!\\Big(-\\frac{x^2 + y^2}{2\\sigma^2}\\Big)

    on centred integer coordinates.  Equal to the kernel ``scipy.ndimage.gaussian_filter`` uses
    with radius ``size // 2``.  Blurring with it keeps the mean brightness of an image.

    Example
    -------
    >>> k = gaussian_kernel(5, 1.0)
    >>> k.shape, round(float(k.sum()), 6)
    (torch.Size([5, 5]), 1.0)
    """
    size = _odd_size(size)
    sigma = check_number(sigma, "sigma", minimum=0, strict=True)
    x, y = _centred_grid(size)
    g = torch.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).to(dtype)
