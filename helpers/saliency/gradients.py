"""Gradient attributions: the input gradient, Simonyan's saliency map, SmoothGrad, integrated
gradients, and two ways to look at a gradient-like image (:func:`to_map`,
:func:`attribution_image`)."""
from __future__ import annotations

from typing import List, Tuple, Union

import numpy as np
import torch

from .._checks import TargetArg, check_choice, check_number, check_positive_int, check_tensor
from ..runtime import progress as _progress
from ..taps import frozen
from ._core import broadcast_value, check_call, logit_gradient

__all__ = ["input_gradient", "saliency_map", "smoothgrad", "integrated_gradients", "to_map",
           "attribution_image", "IG_METHODS"]

#: The quadrature rules of :func:`integrated_gradients` (Captum's names).
IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
              "riemann_trapezoid")


def _input_gradient(model, x: torch.Tensor, target: TargetArg, method: str) -> torch.Tensor:
    targets = check_call(model, x, target, module=False)
    with frozen(model), torch.enable_grad():
        return logit_gradient(model, x, targets, method)


def input_gradient(model, x: torch.Tensor, target: TargetArg) -> torch.Tensor:
    """Gradient of the unnormalised class score (the logit) with respect to the pixels.

    .. math::  g_n = \\frac{\\partial S_{t_n}(x_n)}{\\partial x_n}

    where :math:`S_c` is the score (logit) of class :math:`c`, *before* the softmax.  It is the
    weight of the first-order Taylor approximation :math:`S_c(x') \\approx S_c(x) + g^\\top (x'
    - x)`: how much the score moves per unit change of each pixel value.

    Args:
        model: classifier, (N, 3, H, W) -> logits (N, K).
        x: images (N, 3, H, W) in [0, 1].
        target: class index (int) or one per image ((N,) tensor / list).

    Returns:
        (N, 3, H, W) tensor, signed, on ``x``'s device, without autograd graph.

    >>> from helpers.testing.nets import TinyCNN
    >>> input_gradient(TinyCNN(seed=0), torch.rand(2, 3, 16, 16), [1, 3]).shape
    torch.Size([2, 3, 16, 16])
    """
    return _input_gradient(model, x, target, "input_gradient")


def to_map(attributions: torch.Tensor) -> torch.Tensor:
    """Collapse attributions (N, 3, H, W) to one value per pixel: ``|a|`` maximised over RGB.

    .. math::  M_{ij} = \\max_{c} |a_{c,ij}|

    This is Simonyan et al.'s rule for turning a gradient into a saliency map; it also serves
    guided backprop, integrated gradients, etc. when one map per image is wanted.

    >>> to_map(torch.tensor([[[[1.]], [[-3.]], [[2.]]]]))
    tensor([[[3.]]])
    """
    check_tensor(attributions, "attributions", ndim=4, floating=True)
    return attributions.detach().abs().amax(dim=1)


def attribution_image(attributions: torch.Tensor, *, percentile: float = 99.5) -> torch.Tensor:
    """Signed attributions (N, C, H, W) -> images in [0, 1] for display, grey = 0.

    .. math::  y = \\mathrm{clip}\\Big(\\tfrac12 + \\frac{a}{2\\,q}, 0, 1\\Big)

    with :math:`q` the ``percentile``-th percentile of :math:`|a|` per image.  Unlike a min-max
    :func:`helpers.plotting.rescale`, zero stays mid grey and a few extreme pixels do not wash out
    the rest (they are clipped).  Gradients and guided backprop are usually shown this way.

    >>> attribution_image(torch.tensor([[[[-2.0, 0.0, 1.0, 2.0]]]]), percentile=100)
    tensor([[[[0.0000, 0.5000, 0.7500, 1.0000]]]])
    """
    check_tensor(attributions, "attributions", ndim=4, floating=True)
    check_number(percentile, "percentile", minimum=0, strict=True, maximum=100)
    a = attributions.detach()
    q = torch.quantile(a.abs().flatten(1).double(), percentile / 100, dim=1).to(a.dtype)
    q = q.clamp_min(torch.finfo(a.dtype).tiny).view(-1, 1, 1, 1)
    return (0.5 + a / (2 * q)).clamp(0, 1)


def saliency_map(model, x: torch.Tensor, target: TargetArg) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan, Vedaldi & Zisserman, ICLR workshop 2014).

    .. math::  M_{n,ij} = \\max_{c \\in \\{R,G,B\\}} \\left|\\frac{\\partial S_{t_n}}
               {\\partial x_{n,c,ij}}\\right|

    with :math:`S_t` the **unnormalised** class score (logit).  Why these three choices:

    * the *logit*, not the softmax probability: :math:`\\partial p_t / \\partial x = p_t(\\nabla
      S_t - \\sum_k p_k \\nabla S_k)` mixes in the other classes and vanishes when the network is
      sure (:math:`p_t \\to 1`);
    * the *absolute value*: a pixel matters whether brightening or darkening it raises the score;
    * the *max over channels*: a pixel matters if any of its colours does.

    Shapes: x (N, 3, H, W) -> maps (N, H, W), non-negative.

    >>> from helpers.testing.nets import TinyCNN
    >>> m = saliency_map(TinyCNN(seed=0), torch.rand(1, 3, 16, 16), 2)
    >>> m.shape, bool((m >= 0).all())
    (torch.Size([1, 16, 16]), True)
    """
    return to_map(_input_gradient(model, x, target, "saliency_map"))


def smoothgrad(model, x: torch.Tensor, target: TargetArg, *, samples: int = 25,
               noise: float = 0.15, batch_size: int = 16, seed: int = 0,
               progress: bool = True) -> torch.Tensor:
    """SmoothGrad (Smilkov et al., 2017): average gradients over noisy copies of the image.

    .. math::  \\hat g = \\frac{1}{S}\\sum_{s=1}^{S} \\left|\\nabla_x S_t(x + \\varepsilon_s)\\right|,
               \\quad \\varepsilon_s \\sim \\mathcal N(0, \\sigma^2),\\quad
               \\sigma = \\text{noise}\\cdot(\\max x_n - \\min x_n)

    then the map is :math:`\\max_c \\hat g_c` as in :func:`saliency_map`.  The gradient of a ReLU
    network jumps from pixel to pixel; averaging over a small neighbourhood of the image removes
    much of that noise.  ``noise`` is relative to each image's value range (10-20 % is typical).
    The noise comes from a private generator seeded with ``seed``: results repeat, and the global
    random state is not touched.  Noisy copies are processed ``batch_size`` at a time (the noise is
    drawn sample by sample, so the result does not depend on ``batch_size``).

    Shapes: x (N, 3, H, W) -> maps (N, H, W).  ``noise=0`` gives :func:`saliency_map`.

    >>> from helpers.testing.nets import TinyCNN
    >>> smoothgrad(TinyCNN(seed=0), torch.rand(1, 3, 16, 16), 0, samples=4).shape
    torch.Size([1, 16, 16])
    """
    targets = check_call(model, x, target, module=False)
    check_positive_int(samples, "samples")
    check_positive_int(batch_size, "batch_size")
    check_number(noise, "noise", minimum=0, hint="a fraction of the image's value range")
    n, shape = x.shape[0], tuple(x.shape[1:])
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    xd = x.detach()
    span = (xd.flatten(1).amax(1) - xd.flatten(1).amin(1)).view(n, 1, 1, 1, 1)
    total = torch.zeros_like(xd)
    with frozen(model), torch.enable_grad():
        for start in _progress(range(0, samples, batch_size), desc="SmoothGrad",
                               disable=None if progress else True):
            s = min(batch_size, samples - start)
            eps = torch.randn((s, n) + shape, generator=gen, device=x.device,
                              dtype=x.dtype).transpose(0, 1) * (noise * span)   # (N, s, 3, H, W)
            noisy = (xd[:, None] + eps).reshape((n * s,) + shape)
            grad = logit_gradient(model, noisy, targets.repeat_interleave(s), "smoothgrad")
            total += grad.abs().view((n, s) + shape).sum(1)
    return (total / samples).amax(dim=1)


def _ig_nodes(method: str, steps: int) -> Tuple[List[float], List[float]]:
    """Quadrature nodes alpha_k in [0, 1] and weights w_k (summing to 1) for integral_0^1 f."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)      # on [-1, 1]
        return list(0.5 * (nodes + 1)), list(0.5 * weights)
    if method == "riemann_trapezoid":
        if steps < 2:
            raise ValueError("steps must be >= 2 for method='riemann_trapezoid'")
        alphas = [k / (steps - 1) for k in range(steps)]
        weights = [1.0 / (steps - 1)] * steps
        weights[0] = weights[-1] = 0.5 / (steps - 1)
        return alphas, weights
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
    return [(k + offset) / steps for k in range(steps)], [1.0 / steps] * steps


def integrated_gradients(model, x: torch.Tensor, target: TargetArg, *,
                         baseline: Union[float, torch.Tensor] = 0.0, steps: int = 32,
                         method: str = "gausslegendre", batch_size: int = 16,
                         progress: bool = True) -> torch.Tensor:
    """Integrated gradients (Sundararajan, Taly & Yan, ICML 2017).

    Average the gradient of the target logit along the straight path from a ``baseline`` image
    :math:`x'` (default black, 0) to :math:`x`, and multiply by the difference:

    .. math::  \\mathrm{IG}_i(x) = (x_i - x'_i)\\int_0^1
               \\frac{\\partial S_t(x' + \\alpha (x - x'))}{\\partial x_i}\\,d\\alpha
               \\approx (x_i - x'_i)\\sum_{k} w_k\\,
               \\frac{\\partial S_t(x' + \\alpha_k (x - x'))}{\\partial x_i}

    By the fundamental theorem of calculus the attributions add up to the change of the score,
    :math:`\\sum_i \\mathrm{IG}_i = S_t(x) - S_t(x')` ("completeness"), up to the quadrature
    error.  ``method`` picks the nodes :math:`\\alpha_k` and weights :math:`w_k`:
    ``"gausslegendre"`` (default, most accurate for a given ``steps``), ``"riemann_left"``,
    ``"riemann_right"``, ``"riemann_middle"`` (weights 1/steps) and ``"riemann_trapezoid"``
    (nodes k/(steps-1), the textbook trapezoid rule; Captum's variant of that name weights by
    1/steps instead of 1/(steps-1) and so comes out (steps-1)/steps times smaller).

    Args:
        baseline: a number or a tensor broadcastable to ``x`` (e.g. a blurred copy of x).
        steps: number of gradient evaluations along the path.
        batch_size: path points per forward/backward pass.

    Shapes: x (N, 3, H, W) -> (N, 3, H, W), signed; ``.sum(1)`` gives a (N, H, W) map that still
    adds up to :math:`S_t(x) - S_t(x')`.

    >>> from helpers.testing.nets import TinyCNN
    >>> integrated_gradients(TinyCNN(seed=0), torch.rand(1, 3, 16, 16), 0, steps=8).shape
    torch.Size([1, 3, 16, 16])
    """
    targets = check_call(model, x, target, module=False)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    check_choice(method, "method", IG_METHODS)
    n, shape = x.shape[0], tuple(x.shape[1:])
    xd = x.detach()
    base = broadcast_value(baseline, xd.shape, xd, "baseline")
    alphas, weights = (torch.tensor(v, dtype=x.dtype, device=x.device)
                       for v in _ig_nodes(method, steps))
    delta = xd - base
    total = torch.zeros_like(xd)
    with frozen(model), torch.enable_grad():
        for s in _progress(range(0, steps, batch_size), desc="integrated gradients",
                           disable=None if progress else True):
            a = alphas[s:s + batch_size]                                          # (B,)
            k = a.shape[0]
            path = base[:, None] + a.view(1, k, 1, 1, 1) * delta[:, None]         # (N, B, 3, H, W)
            grad = logit_gradient(model, path.reshape((n * k,) + shape),
                                  targets.repeat_interleave(k), "integrated_gradients")
            total += (grad.view((n, k) + shape) * weights[s:s + batch_size].view(1, k, 1, 1, 1)).sum(1)
    return delta * total
