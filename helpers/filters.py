"""Filters: convolution from scratch, hand-made kernels, and tools to read learned weights.

Assignment 01 ("What do the weights look like?") is built on this module.  It holds

* :func:`conv2d_naive` -- the cross-correlation every ``nn.Conv2d`` computes, written as a short
  loop so that the equation is visible;
* hand-made kernels -- :func:`sobel_kernels` (edges), :func:`gaussian_kernel` (blur),
  :func:`gabor_kernel` / :func:`gabor_bank` (oriented stripes, the classic model of V1 simple cells
  and of the first layer of trained CNNs) -- and :func:`apply_filter` / :func:`gaussian_blur` to
  run them over an image;
* :func:`template_match` -- convolution read as template matching (normalised cross-correlation);
* tools to read learned filters: :func:`normalize_filters` (display scaling),
  :func:`filter_correlations` / :func:`best_matching_gabor` (which Gabor does a filter look like?),
  :func:`smoothness` / :func:`center_energy` (how spatially structured is a filter?), and
  :func:`stem_filters` / :func:`depthwise_filters` / :func:`fold_batchnorm` to pull the kernels
  out of the course's EfficientNet-Lite.

Conventions
-----------
*Convolution* in deep learning means cross-correlation (no kernel flip):

.. math::  y[n, o, i, j] = b[o] + \\sum_{c,u,v} w[o, c, u, v]\\, x[n, c, s i + u - p, s j + v - p]

with stride ``s``, zero padding ``p`` and out-of-range ``x`` read as 0.  Kernels here are
therefore written for correlation: the Sobel ``x`` kernel responds *positively* where the image
gets brighter to the right.  (A true, flipped convolution gives the opposite sign.)

Spatial coordinates of a kernel are centred: ``x`` is the column offset (positive to the right)
and ``y`` the row offset (positive *downwards*, as in an image).  Angles are in radians.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import _describe, check_choice, check_positive_int, check_tensor

__all__ = [
    "conv2d_naive",
    "normalize_filters",
    "gabor_kernel",
    "gabor_bank",
    "sobel_kernels",
    "gaussian_kernel",
    "apply_filter",
    "gaussian_blur",
    "template_match",
    "filter_correlations",
    "best_matching_gabor",
    "smoothness",
    "center_energy",
    "fold_batchnorm",
    "stem_filters",
    "depthwise_filters",
]

IntPair = Union[int, Tuple[int, int]]


# --------------------------------------------------------------------------------------------
# small argument helpers
# --------------------------------------------------------------------------------------------
def _pair(v, name: str, *, minimum: int) -> Tuple[int, int]:
    """Turn an int or an (h, w) pair into a pair of ints >= minimum, or raise naming ``name``."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w) of ints, got {v!r}")
        items = tuple(v)
    else:
        items = (v, v)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise TypeError(f"{name} must be an int or a pair (h, w) of ints, got {v!r}")
        if item < minimum:
            raise ValueError(f"{name} must be >= {minimum} (in each direction), got {v!r}")
    return items[0], items[1]


def _positive_number(v, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number, got {v!r}")
    return float(v)


def _number(v, name: str) -> float:
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def _odd_size(size, name: str = "size") -> int:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"{name} must be an odd int >= 1, got {_describe(size)}")
    if size < 1 or size % 2 == 0:
        raise ValueError(
            f"{name} must be an odd int >= 1 (so that the kernel has a centre pixel), got {size}"
        )
    return size


# --------------------------------------------------------------------------------------------
# convolution
# --------------------------------------------------------------------------------------------
def conv2d_naive(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, *,
                 stride: IntPair = 1, padding: IntPair = 0) -> torch.Tensor:
    """2-D convolution (cross-correlation) written out, equal to ``F.conv2d`` without groups.

    .. math::  y[n, o, i, j] = b[o] + \\sum_{c=0}^{C-1} \\sum_{u=0}^{k_h-1} \\sum_{v=0}^{k_w-1}
               w[o, c, u, v] \\; x_{pad}[n, c, s_h i + u, s_w j + v]

    where ``x_pad`` is ``x`` with ``p_h`` rows / ``p_w`` columns of zeros on each side.  The
    kernel is *not* flipped.  The output has
    :math:`H_{out} = \\lfloor (H + 2 p_h - k_h) / s_h \\rfloor + 1` rows (same for columns).

    How it is computed: one loop over the ``k_h * k_w`` kernel offsets ``(u, v)``.  For each offset
    the input pixels that meet ``w[:, :, u, v]`` form a strided slice of ``x_pad`` of shape
    (N, C, H_out, W_out); a sum over ``c`` (``einsum``) adds their contribution to every output
    pixel at once.  Readable, differentiable, and fast enough for teaching.

    Parameters
    ----------
    x : float tensor (N, C_in, H, W)
    weight : float tensor (C_out, C_in, k_h, k_w), same dtype and device as ``x``
    bias : None or float tensor (C_out,)
    stride : int >= 1 or pair (s_h, s_w)
    padding : int >= 0 or pair (p_h, p_w); zero padding

    Returns
    -------
    float tensor (N, C_out, H_out, W_out)

    Example
    -------
    >>> x = torch.randn(2, 3, 7, 7); w = torch.randn(4, 3, 3, 3)
    >>> torch.allclose(conv2d_naive(x, w, stride=2, padding=1),
    ...                F.conv2d(x, w, stride=2, padding=1), atol=1e-5)
    True
    """
    check_tensor(x, "x", ndim=4, floating=True)
    check_tensor(weight, "weight", ndim=4, floating=True)
    n, c_in, h, w = x.shape
    c_out, c_w, kh, kw = weight.shape
    if c_w != c_in:
        raise ValueError(
            f"weight must have shape (C_out, C_in, kH, kW) with C_in = {c_in} (the channels of x), "
            f"got weight of shape {tuple(weight.shape)} for x of shape {tuple(x.shape)}"
        )
    if weight.dtype != x.dtype or weight.device != x.device:
        raise ValueError(
            f"weight must have the dtype and device of x ({x.dtype} on {x.device}), got "
            f"{weight.dtype} on {weight.device}"
        )
    if bias is not None:
        check_tensor(bias, "bias", ndim=1, floating=True)
        if bias.shape[0] != c_out:
            raise ValueError(
                f"bias must have shape (C_out,) = ({c_out},), got {tuple(bias.shape)}"
            )
        if bias.dtype != x.dtype or bias.device != x.device:
            raise ValueError(
                f"bias must have the dtype and device of x ({x.dtype} on {x.device}), got "
                f"{bias.dtype} on {bias.device}"
            )
    sh, sw = _pair(stride, "stride", minimum=1)
    ph, pw = _pair(padding, "padding", minimum=0)
    hp, wp = h + 2 * ph, w + 2 * pw
    if hp < kh or wp < kw:
        raise ValueError(
            f"the kernel ({kh}x{kw}) is larger than the padded input ({hp}x{wp}); "
            f"increase padding or use a smaller weight"
        )
    h_out = (hp - kh) // sh + 1
    w_out = (wp - kw) // sw + 1

    x_pad = F.pad(x, (pw, pw, ph, ph))                       # zeros around (left, right, top, bottom)
    out = x.new_zeros((n, c_out, h_out, w_out))
    for u in range(kh):
        for v in range(kw):
            # every input pixel that meets w[:, :, u, v], one per output position (i, j)
            patch = x_pad[:, :, u:u + sh * (h_out - 1) + 1:sh, v:v + sw * (w_out - 1) + 1:sw]
            out = out + torch.einsum("nchw,oc->nohw", patch, weight[:, :, u, v])
    if bias is not None:
        out = out + bias.view(1, c_out, 1, 1)
    return out


# --------------------------------------------------------------------------------------------
# displaying filters
# --------------------------------------------------------------------------------------------
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
    float tensor of the same shape with values in [0, 1].

    Example
    -------
    >>> normalize_filters(torch.tensor([[[-1.0, 1.0]], [[2.0, 2.0]]]))
    tensor([[[0.0000, 1.0000]],
    <BLANKLINE>
            [[0.5000, 0.5000]]])
    """
    from .plotting import rescale

    check_tensor(weight, "weight", floating=True)
    if weight.ndim < 2:
        raise ValueError(f"weight must have a filter dimension and at least one more, got "
                         f"{_describe(weight)}")
    return rescale(weight, per_item=True)


# --------------------------------------------------------------------------------------------
# hand-made kernels
# --------------------------------------------------------------------------------------------
def _centred_grid(size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """float64 coordinate grids (x, y) of a size x size kernel, centred on its middle pixel."""
    r = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - r
    y, x = torch.meshgrid(coords, coords, indexing="ij")   # y: row offset (down), x: column offset
    return x, y


def gabor_kernel(size: int, *, sigma: float, theta: float, lambd: float, psi: float = 0.0,
                 gamma: float = 0.5, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A real Gabor kernel: a cosine grating under a Gaussian envelope.

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
    sigma = _positive_number(sigma, "sigma")
    lambd = _positive_number(lambd, "lambd")
    gamma = _positive_number(gamma, "gamma")
    theta = _number(theta, "theta")
    psi = _number(psi, "psi")
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
    """A bank of Gabor kernels over orientations x wavelengths x phases.

    Orientations are ``theta = k * pi / n_orientations`` for ``k = 0 .. n_orientations-1`` (the
    half circle: a grating at ``theta + pi`` is the same grating).  The default phases
    ``0, pi/2, pi, 3pi/2`` give even and odd kernels *and their negatives*, so a signed match
    (see :func:`best_matching_gabor`) can tell a dark bar from a bright one.  ``sigma=None`` ties
    the envelope to the wavelength, ``sigma = 0.5 * lambd`` (about one octave of bandwidth).

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
    wavelengths = list(wavelengths)
    phases = [_number(p, "phases[]") for p in phases]
    if not wavelengths:
        raise ValueError("wavelengths must hold at least one positive number, got an empty list")
    if not phases:
        raise ValueError("phases must hold at least one number, got an empty list")
    for lam in wavelengths:
        _positive_number(lam, "wavelengths[]")
    if sigma is not None:
        _positive_number(sigma, "sigma")
    kernels, params = [], []
    for k in range(n_orientations):
        theta = k * math.pi / n_orientations
        for lam in wavelengths:
            s = 0.5 * float(lam) if sigma is None else float(sigma)
            for psi in phases:
                kernels.append(gabor_kernel(size, sigma=s, theta=theta, lambd=float(lam), psi=psi,
                                            gamma=gamma, dtype=dtype))
                params.append({"theta": theta, "theta_deg": math.degrees(theta),
                               "lambd": float(lam), "psi": psi, "sigma": s, "gamma": float(gamma)})
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
    ``[1, 2, 1]`` along it.

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
    sigma = _positive_number(sigma, "sigma")
    x, y = _centred_grid(size)
    g = torch.exp(-(x ** 2 + y ** 2) / (2 * sigma ** 2))
    return (g / g.sum()).to(dtype)


_PAD_MODES = {"reflect": "reflect", "replicate": "replicate", "zeros": "constant",
              "circular": "circular"}


def apply_filter(image: torch.Tensor, kernel: torch.Tensor, *, padding: str = "reflect"
                 ) -> torch.Tensor:
    """Correlate every channel of an image batch with one 2-D kernel; output has the input's size.

    .. math::  y[n, c, i, j] = \\sum_{u,v} k[u, v]\\; x_{pad}[n, c, i + u, j + v]

    Channels are filtered independently (a depthwise convolution with the same kernel for all).
    The border is padded by ``padding`` so that the output is (N, C, H, W):

    * ``"reflect"`` (default) mirrors the image without repeating the edge pixel
      (``d c b | a b c d``; scipy calls this mode ``"mirror"``), so edges do not light up;
    * ``"zeros"`` pads with 0 (what ``nn.Conv2d`` does); ``"replicate"`` repeats the edge pixel;
      ``"circular"`` wraps around.

    Parameters
    ----------
    image : float tensor (N, C, H, W) (any C; values are not required to lie in [0, 1])
    kernel : float tensor (k_h, k_w) with odd sizes
    padding : "reflect", "zeros", "replicate" or "circular"

    Example
    -------
    >>> img = torch.rand(1, 3, 32, 32)
    >>> apply_filter(img, gaussian_kernel(5, 1.0)).shape
    torch.Size([1, 3, 32, 32])
    """
    check_tensor(image, "image", ndim=4, floating=True)
    check_tensor(kernel, "kernel", ndim=2, floating=True)
    check_choice(padding, "padding", list(_PAD_MODES))
    kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel must have odd height and width (a centre pixel), got "
                         f"{tuple(kernel.shape)}")
    n, c, h, w = image.shape
    ph, pw = kh // 2, kw // 2
    if padding == "reflect" and (ph >= h or pw >= w):
        raise ValueError(f"reflect padding needs the image ({h}x{w}) larger than half the kernel "
                         f"({kh}x{kw}); use padding='replicate' or a smaller kernel")
    k = kernel.to(dtype=image.dtype, device=image.device)
    x = image.reshape(n * c, 1, h, w)
    mode = _PAD_MODES[padding]
    x = F.pad(x, (pw, pw, ph, ph), mode=mode) if (ph or pw) else x
    y = F.conv2d(x, k.view(1, 1, kh, kw))
    return y.reshape(n, c, h, w)


def gaussian_blur(image: torch.Tensor, sigma: float, *, size: Optional[int] = None,
                  padding: str = "reflect") -> torch.Tensor:
    """Blur every channel with a Gaussian of std ``sigma`` (pixels); output has the input's size.

    ``size`` defaults to the odd number ``2 * ceil(3 sigma) + 1`` (three standard deviations each
    side), capped so that reflect padding fits the image.  See :func:`gaussian_kernel` and
    :func:`apply_filter`.

    Example
    -------
    >>> gaussian_blur(torch.rand(1, 3, 32, 32), 1.5).shape
    torch.Size([1, 3, 32, 32])
    """
    check_tensor(image, "image", ndim=4, floating=True)
    sigma = _positive_number(sigma, "sigma")
    if size is None:
        size = 2 * math.ceil(3 * sigma) + 1
        limit = min(image.shape[-2], image.shape[-1])
        if padding == "reflect":
            # half the kernel must be smaller than the image; keep the size odd
            size = min(size, 2 * (limit - 1) + 1)
    return apply_filter(image, gaussian_kernel(size, sigma, dtype=image.dtype), padding=padding)


def template_match(image: torch.Tensor, template: torch.Tensor, *, normalize: bool = True
                   ) -> torch.Tensor:
    """Slide ``template`` over ``image`` and score every position: convolution as matching.

    With ``normalize=True`` (default) the score is the normalised cross-correlation (Pearson
    correlation) between the template ``T`` and the image patch ``P`` under it, both taken over
    all channels and pixels:

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
    image : float tensor (N, C, H, W)
    template : float tensor (C, h, w) or (1, C, h, w), h <= H, w <= W
    normalize : bool

    Returns
    -------
    tensor (N, 1, H - h + 1, W - w + 1); entry (i, j) scores the patch whose *top-left* corner is
    pixel (i, j).

    Example
    -------
    >>> img = torch.rand(1, 3, 40, 40)
    >>> r = template_match(img, img[0, :, 10:20, 5:15])
    >>> divmod(int(r.flatten().argmax()), r.shape[-1])
    (10, 5)
    """
    check_tensor(image, "image", ndim=4, floating=True)
    check_tensor(template, "template", ndim=(3, 4), floating=True)
    if template.ndim == 4:
        if template.shape[0] != 1:
            raise ValueError(f"template must have shape (C, h, w) or (1, C, h, w), got "
                             f"{tuple(template.shape)}")
        template = template[0]
    n, c, h, w = image.shape
    tc, th, tw = template.shape
    if tc != c:
        raise ValueError(f"template must have the {c} channel(s) of image, got template of shape "
                         f"{tuple(template.shape)} for image of shape {tuple(image.shape)}")
    if th > h or tw > w:
        raise ValueError(f"template ({th}x{tw}) must not be larger than image ({h}x{w})")
    # Work in float64 (the variance below is a difference of two large sums) and correlate with
    # FFTs: sliding a 60x60 template over a photo is ~1e9 multiply-adds done directly.
    x = image.detach().to(torch.float64)
    t = template.detach().to(device=image.device, dtype=torch.float64)
    if normalize:
        t = t - t.mean()
    out = _correlate_valid(x, t)                          # sum over c, u, v of P * T
    if normalize:
        m = t.numel()
        t_norm = t.pow(2).sum().sqrt()
        s1 = _window_sum(x.sum(dim=1, keepdim=True), th, tw)        # sum of P
        s2 = _window_sum((x * x).sum(dim=1, keepdim=True), th, tw)  # sum of P^2
        patch_var = s2 - s1 * s1 / m                                # sum (P - mean P)^2
        # The integral images carry rounding errors of the order eps * (their total); a patch
        # whose variance is below that is constant and scores 0 (as does a constant template).
        total2 = float((x * x).sum(dim=(1, 2, 3)).max())
        total1 = float(x.abs().sum(dim=(1, 2, 3)).max())
        tol = 64 * torch.finfo(torch.float64).eps * (total2 + total1 * total1 / m)
        valid = (patch_var > tol) & (t_norm > 0)
        denominator = torch.where(valid, patch_var, torch.ones_like(patch_var)).sqrt() * t_norm
        out = torch.where(valid, out / torch.where(valid, denominator, torch.ones_like(out)),
                          torch.zeros_like(out))
    return out.to(image.dtype)


def _correlate_valid(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """'valid' cross-correlation of x (N, C, H, W) with one template t (C, h, w), summed over C."""
    n, c, h, w = x.shape
    _, th, tw = t.shape
    fx = torch.fft.rfft2(x, s=(h, w))
    ft = torch.fft.rfft2(t, s=(h, w))
    full = torch.fft.irfft2(fx * ft.conj(), s=(h, w)).sum(dim=1, keepdim=True)
    return full[:, :, :h - th + 1, :w - tw + 1]


def _window_sum(x: torch.Tensor, th: int, tw: int) -> torch.Tensor:
    """Sum of x over every th x tw window ('valid'), with an integral image."""
    s = F.pad(x.cumsum(dim=-2).cumsum(dim=-1), (1, 0, 1, 0))
    return s[..., th:, tw:] - s[..., :-th, tw:] - s[..., th:, :-tw] + s[..., :-th, :-tw]


# --------------------------------------------------------------------------------------------
# reading learned filters
# --------------------------------------------------------------------------------------------
def _as_2d_filters(filters: torch.Tensor, name: str) -> torch.Tensor:
    check_tensor(filters, name, ndim=(3, 4), floating=True)
    return filters.mean(dim=1) if filters.ndim == 4 else filters


def _zero_mean_unit_norm(f: torch.Tensor) -> torch.Tensor:
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
    filter or bank element correlates 0 with everything.  The result is float64.

    Parameters
    ----------
    filters : float tensor (K, h, w) or (K, C, h, w)
    bank : float tensor (M, h, w), the same h, w
    """
    f2 = _as_2d_filters(filters, "filters")
    check_tensor(bank, "bank", ndim=3, floating=True)
    if tuple(bank.shape[-2:]) != tuple(f2.shape[-2:]):
        raise ValueError(
            f"bank must hold kernels of the filters' size {tuple(f2.shape[-2:])}, got bank of shape "
            f"{tuple(bank.shape)}; build it with gabor_bank({f2.shape[-1]}, ...)"
        )
    a = _zero_mean_unit_norm(f2.detach().cpu())
    b = _zero_mean_unit_norm(bank.detach().cpu())
    return (a @ b.T).clamp(-1.0, 1.0)


def best_matching_gabor(filters: torch.Tensor, bank: torch.Tensor
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """For every filter, the bank element it correlates with most, and that correlation.

    The score is the *signed* Pearson correlation of :func:`filter_correlations` (zero mean, unit
    norm, flattened): a filter equal to minus a bank element correlates -1 with it, so it matches
    the element of opposite phase instead (the default :func:`gabor_bank` contains both).

    Filters with input channels, (K, C, h, w), are averaged over the channels first.

    Parameters
    ----------
    filters : float tensor (K, h, w) or (K, C, h, w)
    bank : float tensor (M, h, w), same h, w as the filters (no resizing is done)

    Returns
    -------
    indices : int64 tensor (K,), the index of the best bank element for each filter
    correlations : float tensor (K,), that element's correlation, in [-1, 1]

    Example
    -------
    >>> bank, params = gabor_bank(5)
    >>> idx, r = best_matching_gabor(bank[[3, 17]] * 2.0 + 1.0, bank)
    >>> idx.tolist(), [round(float(v), 6) for v in r]
    ([3, 17], [1.0, 1.0])
    """
    corr = filter_correlations(filters, bank)
    best, idx = corr.max(dim=1)
    return idx, best.to(torch.float32)


def smoothness(filters: torch.Tensor) -> torch.Tensor:
    """How spatially smooth each filter is: 1 for slow ramps, about 0 for noise, < 0 for checkers.

    .. math::  s(f) = 1 - \\frac{\\operatorname{mean}_{p \\sim q} (z_p - z_q)^2}
                               {2\\, \\operatorname{mean}_p z_p^2},\\qquad z = f - \\bar f

    where ``p ~ q`` runs over horizontally and vertically adjacent pixel pairs.  For independent
    random pixels neighbours differ as much as any two pixels, the ratio is about 1 and ``s`` about
    0 (a little below 0 for tiny filters, whose mean is estimated from few pixels); smooth
    structure such as a ramp or a wide blob gives ``s`` near 1, while a centre-surround or
    checkerboard pattern scores below 0 -- structured, but not smooth.  It is a crude but honest "is there spatial structure
    here?" number; compare it with random filters of the same size.  Filters with channels are
    averaged over them first; a constant filter scores 0.

    Parameters
    ----------
    filters : float tensor (K, h, w) or (K, C, h, w), h * w >= 2

    Returns
    -------
    float tensor (K,)

    Example
    -------
    >>> ramp = torch.arange(9.0).reshape(1, 3, 3)
    >>> round(float(smoothness(ramp)), 4)
    0.625
    """
    f2 = _as_2d_filters(filters, "filters").detach().to(torch.float64)
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
    float tensor (K,) in [0, 1]

    Example
    -------
    >>> center_energy(torch.tensor([[[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.0]]]))
    tensor([0.8000])
    """
    f2 = _as_2d_filters(filters, "filters").detach().to(torch.float64)
    k, h, w = f2.shape
    if h % 2 == 0 or w % 2 == 0:
        raise ValueError(f"filters must have odd height and width (a centre pixel), got {h}x{w}")
    total = f2.pow(2).sum(dim=(1, 2))
    centre = f2[:, h // 2, w // 2].pow(2)
    tiny = torch.finfo(torch.float64).tiny
    out = torch.where(total > tiny, centre / total.clamp_min(tiny), torch.zeros_like(total))
    return out.to(torch.float32)


# --------------------------------------------------------------------------------------------
# pulling kernels out of the course's EfficientNet-Lite
# --------------------------------------------------------------------------------------------
def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of one convolution that equals ``bn(conv(x))`` in eval mode.

    BatchNorm in eval mode is a per-channel affine map
    :math:`\\mathrm{bn}(z)_o = \\gamma_o (z_o - \\mu_o) / \\sqrt{\\sigma_o^2 + \\epsilon} + \\beta_o`,
    so it can be folded into the preceding convolution:

    .. math::  w'_o = \\frac{\\gamma_o}{\\sqrt{\\sigma_o^2 + \\epsilon}}\\, w_o,\\qquad
               b'_o = \\beta_o + \\frac{\\gamma_o}{\\sqrt{\\sigma_o^2 + \\epsilon}}(b_o - \\mu_o)

    Each filter is rescaled by its own factor -- which is why the *relative* size of raw filters in
    a BN network says little, and why per-filter display scaling is the fair way to look at them.

    Returns detached copies ``(weight (C_out, C_in/groups, k, k), bias (C_out,))``.
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
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
        shift = bn.bias.detach() if bn.bias is not None else torch.zeros_like(bn.running_mean)
        w = conv.weight.detach() * scale.view(-1, 1, 1, 1)
        b = shift + scale * (bias - bn.running_mean)
    return w.clone(), b.clone()


def _conv_unit(model: nn.Module, path: str, name: str) -> Tuple[nn.Conv2d, nn.BatchNorm2d]:
    try:
        unit = model.get_submodule(path)
    except AttributeError:
        unit = None
    conv = getattr(unit, "conv", None) if unit is not None else None
    bn = getattr(unit, "bn", None) if unit is not None else None
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(
            f"{name} must be a course EfficientNet-Lite (helpers.load_model('efficientnet_lite0')) "
            f"with a unit '{path}' holding .conv and .bn; got {type(model).__name__} without it"
        )
    return conv, bn


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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    conv, bn = _conv_unit(model, "stem", "model")
    if fold_bn:
        return fold_batchnorm(conv, bn)[0]
    return conv.weight.detach().clone()


def depthwise_filters(model: nn.Module, stage: int, block: int = 0, *, fold_bn: bool = False
                      ) -> torch.Tensor:
    """The depthwise filters of block ``block`` of stage ``stage``: (C, 1, k, k), detached.

    In an MBConv block (see ``helpers.models``) the depthwise convolution is the only *spatial*
    one: each of its C channels gets its own k x k filter (k = 3 or 5), acting on one channel of
    the expanded representation -- not on pixels.  ``stage`` is 0..6 for EfficientNet-Lite (the
    index in ``model.stages``), ``block`` the block inside it.

    Example
    -------
    >>> from helpers.models import load_model
    >>> depthwise_filters(load_model(), stage=2).shape      # stage 2: 5x5 kernels, 144 channels
    torch.Size([144, 1, 5, 5])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.Sequential):
        raise TypeError(f"model must be a course EfficientNet-Lite with .stages, got "
                        f"{type(model).__name__}")
    if isinstance(stage, bool) or not isinstance(stage, int) or not 0 <= stage < len(stages):
        raise ValueError(f"stage must be an int in 0..{len(stages) - 1}, got {stage!r}")
    n_blocks = len(stages[stage])
    if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block < n_blocks:
        raise ValueError(f"block must be an int in 0..{n_blocks - 1} (stage {stage} has "
                         f"{n_blocks} block(s)), got {block!r}")
    conv, bn = _conv_unit(model, f"stages.{stage}.{block}.depthwise", "model")
    if fold_bn:
        return fold_batchnorm(conv, bn)[0]
    return conv.weight.detach().clone()
