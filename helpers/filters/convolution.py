"""Running kernels over images: the convolution of a CNN layer written out, and filtering.

* :func:`conv2d_naive` -- the cross-correlation every ``nn.Conv2d`` computes, written as a short
  loop so that the equation is visible;
* :func:`apply_filter` / :func:`gaussian_blur` -- one 2-D kernel over every channel of an image
  batch, with the border padded so that the output keeps the input's size.

*Convolution* in deep learning means cross-correlation (no kernel flip):

.. math::  y[n, o, i, j] = b[o] + \\sum_{c,u,v} w[o, c, u, v]\\, x[n, c, s i + u - p, s j + v - p]

with stride ``s``, zero padding ``p`` and out-of-range ``x`` read as 0.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F

from .._checks import check_choice, check_number, check_positive_int, check_tensor
from .kernels import gaussian_kernel

__all__ = ["conv2d_naive", "apply_filter", "gaussian_blur"]

IntPair = Union[int, Tuple[int, int]]


def _pair(v, name: str, *, minimum: int) -> Tuple[int, int]:
    """A stride or padding: an int or an (h, w) pair of ints >= ``minimum``."""
    items = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair (h, w) of ints, got {v!r}")
    return check_positive_int(items[0], name, minimum=minimum), \
        check_positive_int(items[1], name, minimum=minimum)


def _check_like(t: torch.Tensor, name: str, x: torch.Tensor) -> None:
    if t.dtype != x.dtype or t.device != x.device:
        raise ValueError(f"{name} must have the dtype and device of x ({x.dtype} on {x.device}), "
                         f"got {t.dtype} on {t.device}")


def conv2d_naive(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, *,
                 stride: IntPair = 1, padding: IntPair = 0) -> torch.Tensor:
    """2-D convolution (cross-correlation) written out, equal to ``F.conv2d`` without groups.

    .. math::  y[n, o, i, j] = b[o] + \\sum_{c=0}^{C-1} \\sum_{u=0}^{k_h-1} \\sum_{v=0}^{k_w-1}
               w[o, c, u, v] \\; x_{pad}[n, c, s_h i + u, s_w j + v]

    where ``x_pad`` is ``x`` with ``p_h`` rows / ``p_w`` columns of zeros on each side
    (Goodfellow, Bengio & Courville, *Deep Learning*, 2016, section 9.1: what deep learning
    libraries call convolution is this cross-correlation).  The kernel is *not* flipped.  The
    output has :math:`H_{out} = \\lfloor (H + 2 p_h - k_h) / s_h \\rfloor + 1` rows (same for columns).

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
            f"got weight of shape {tuple(weight.shape)} for x of shape {tuple(x.shape)}")
    _check_like(weight, "weight", x)
    if bias is not None:
        check_tensor(bias, "bias", ndim=1, floating=True)
        if bias.shape[0] != c_out:
            raise ValueError(f"bias must have shape (C_out,) = ({c_out},), got {tuple(bias.shape)}")
        _check_like(bias, "bias", x)
    sh, sw = _pair(stride, "stride", minimum=1)
    ph, pw = _pair(padding, "padding", minimum=0)
    hp, wp = h + 2 * ph, w + 2 * pw
    if hp < kh or wp < kw:
        raise ValueError(f"the kernel ({kh}x{kw}) is larger than the padded input ({hp}x{wp}); "
                         f"increase padding or use a smaller weight")
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


_PAD_MODES = {"reflect": "reflect", "replicate": "replicate", "zeros": "constant",
              "circular": "circular"}


def apply_filter(x: torch.Tensor, kernel: torch.Tensor, *, padding: str = "reflect"
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
    x : float tensor (N, C, H, W) (any C; values are not required to lie in [0, 1])
    kernel : float tensor (k_h, k_w) with odd sizes
    padding : "reflect", "zeros", "replicate" or "circular"

    Returns
    -------
    tensor (N, C, H, W) of ``x``'s dtype, on ``x``'s device

    Example
    -------
    >>> from helpers.filters import gaussian_kernel
    >>> apply_filter(torch.rand(1, 3, 32, 32), gaussian_kernel(5, 1.0)).shape
    torch.Size([1, 3, 32, 32])
    """
    check_tensor(x, "x", ndim=4, floating=True)
    check_tensor(kernel, "kernel", ndim=2, floating=True)
    check_choice(padding, "padding", list(_PAD_MODES))
    kh, kw = kernel.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel must have odd height and width (a centre pixel), got "
                         f"{tuple(kernel.shape)}")
    n, c, h, w = x.shape
    ph, pw = kh // 2, kw // 2
    if padding == "reflect" and (ph >= h or pw >= w):
        raise ValueError(f"reflect padding needs the image x ({h}x{w}) larger than half the kernel "
                         f"({kh}x{kw}); use padding='replicate' or a smaller kernel")
    k = kernel.to(dtype=x.dtype, device=x.device)
    flat = x.reshape(n * c, 1, h, w)
    if ph or pw:
        flat = F.pad(flat, (pw, pw, ph, ph), mode=_PAD_MODES[padding])
    return F.conv2d(flat, k.view(1, 1, kh, kw)).reshape(n, c, h, w)


def gaussian_blur(x: torch.Tensor, sigma: float, *, size: Optional[int] = None,
                  padding: str = "reflect") -> torch.Tensor:
    """Blur every channel with a Gaussian of std ``sigma`` (pixels); output has the input's size.

    :func:`apply_filter` with :func:`helpers.filters.gaussian_kernel` ``(size, sigma)``.  ``size``
    defaults to the odd number ``2 * ceil(3 sigma) + 1`` (three standard deviations each side),
    capped so that reflect padding fits the image.

    Parameters
    ----------
    x : float tensor (N, C, H, W)
    sigma : float > 0
    size : None or odd int >= 1
    padding : as in :func:`apply_filter`

    Example
    -------
    >>> gaussian_blur(torch.rand(1, 3, 32, 32), 1.5).shape
    torch.Size([1, 3, 32, 32])
    """
    check_tensor(x, "x", ndim=4, floating=True)
    sigma = check_number(sigma, "sigma", minimum=0, strict=True)
    if size is None:
        size = 2 * math.ceil(3 * sigma) + 1
        if padding == "reflect":
            # half the kernel must be smaller than the image; keep the size odd
            size = min(size, 2 * (min(x.shape[-2], x.shape[-1]) - 1) + 1)
    return apply_filter(x, gaussian_kernel(size, sigma, dtype=x.dtype), padding=padding)
