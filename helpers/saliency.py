"""Saliency: which pixels of an image does a classifier's decision depend on?

Assignment 03 ("Which pixels matter?") is built on this module.  Every *attribution method* here
answers the question "how much does pixel (i, j) matter for class c?" in its own way:

==========================  =========================================  ===================
function                    idea (paper)                               output
==========================  =========================================  ===================
:func:`input_gradient`      gradient of the class logit                (N, 3, H, W)
:func:`saliency_map`        \\|gradient\\|, max over RGB (Simonyan 2014)  (N, H, W)
:func:`smoothgrad`          saliency averaged over noisy copies        (N, H, W)
                            (Smilkov 2017)
:func:`occlusion_map`       drop of the class probability when a       (N, H, W)
                            patch is greyed out (Zeiler & Fergus 2014)
:func:`guided_backprop`     gradient with only positive signals        (N, 3, H, W)
                            through every ReLU (Springenberg 2015)
:func:`neuron_gradient`     (guided) gradient of one hidden unit       (N, 3, H, W)
:func:`grad_cam`            channel-weighted feature map of a late     (N, H, W)
                            layer (Selvaraju 2017)
:func:`integrated_gradients` gradients averaged along a path from a     (N, 3, H, W)
                            baseline (Sundararajan 2017)
==========================  =========================================  ===================

and around them: :func:`grabcut_mask` (a foreground mask from a saliency map with OpenCV's
GrabCut, as in Simonyan et al.), :func:`randomize_layers` / :func:`cascading_randomization` /
:func:`rank_correlation` (the model-randomisation sanity check of Adebayo et al. 2018),
:class:`ProbabilitiesOnly` (a black-box API that returns probabilities only), :class:`TinyCNN`
(a small network for tests), :func:`guided_relus` and :func:`to_map`.

Calling convention
------------------
Like Captum, every method is called as ``method(model, x, target, *, options...)``:

* ``model``: an ``nn.Module`` (or, for :func:`occlusion_map`, any callable) mapping images
  (N, 3, H, W) in [0, 1] to class scores (N, K) -- logits for the course's models;
* ``x``: float tensor (N, 3, H, W) in [0, 1];
* ``target``: the class to explain, an ``int`` for every image or a (N,) integer tensor / list
  with one class per image (for :func:`neuron_gradient` the target is a unit of a layer).

Outputs live on ``x``'s device, have ``x``'s dtype and carry no autograd graph.  Two shapes, one
rule: methods that give **one number per pixel** (saliency, SmoothGrad, occlusion, Grad-CAM)
return maps ``(N, H, W)``; methods that return **a gradient-like image** (input gradient, guided
backprop, neuron gradients, integrated gradients) return ``(N, 3, H, W)`` like ``x`` -- their
colours and signs are part of the picture.  :func:`to_map` turns the latter into (N, H, W) maps
(absolute value, max over the colour channels).

State
-----
Every method leaves the caller's state as it found it, also when it raises: ``x`` (values,
``requires_grad``, ``.grad``), the parameters' ``.grad``, the global grad mode, the train/eval
mode of every submodule (methods run the model in eval mode and restore each submodule's flag
afterwards), and no hooks are left on any module.

Example
-------
>>> import helpers
>>> from helpers.saliency import saliency_map, grad_cam
>>> model = helpers.load_model()
>>> x = helpers.load_image("chelsea", size=224)
>>> saliency_map(model, x, 285).shape                     # 285: Egyptian cat
torch.Size([1, 224, 224])
>>> grad_cam(model, x, 285, layer="head").shape
torch.Size([1, 224, 224])
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import Iterator, List, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import (TargetArg, _describe, check_choice, check_image_batch, check_positive_int,
                      check_target, check_tensor)
from .runtime import progress as _progress

__all__ = [
    "input_gradient",
    "saliency_map",
    "smoothgrad",
    "occlusion_map",
    "occlusion_windows",
    "guided_relus",
    "guided_backprop",
    "neuron_gradient",
    "grad_cam",
    "integrated_gradients",
    "to_map",
    "attribution_image",
    "grabcut_seeds",
    "grabcut_mask",
    "randomize_layers",
    "cascading_randomization",
    "rank_correlation",
    "ProbabilitiesOnly",
    "TinyCNN",
]

LayerArg = Union[str, nn.Module]

#: Activation modules whose backward pass guided backpropagation modifies.
GUIDED_ACTIVATIONS = (nn.ReLU, nn.ReLU6)


# =============================================================================================
# shared plumbing: targets, model state, layers
# =============================================================================================
def _check_model(model, name: str = "model", *, module: bool = False) -> None:
    if module and not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module (this method needs its layers), got "
                        f"{type(model).__name__}")
    if not callable(model):
        raise TypeError(f"{name} must be a torch.nn.Module or a callable, got {_describe(model)}")


def _pick(scores, targets: torch.Tensor, what: str = "model(x)") -> torch.Tensor:
    """scores (N, K) -> scores[n, targets[n]] (N,), with clear errors for bad shapes / targets."""
    if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
        raise ValueError(f"{what} must return class scores of shape (N, K), got "
                         f"{_describe(scores)}")
    if scores.shape[0] != targets.shape[0]:
        raise ValueError(f"{what} returned {scores.shape[0]} rows for {targets.shape[0]} images")
    k = scores.shape[1]
    bad = (targets < 0) | (targets >= k)
    if bool(bad.any()):
        raise ValueError(f"target must be a class index in [0, {k - 1}] (the model has {k} "
                         f"classes), got {targets[bad][0].item()}")
    return scores.gather(1, targets.to(scores.device)[:, None])[:, 0]


@contextlib.contextmanager
def _eval_mode(model) -> Iterator[None]:
    """Run ``model`` in eval mode; afterwards give every submodule its own train flag back."""
    if not isinstance(model, nn.Module):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _leaf(x: torch.Tensor) -> torch.Tensor:
    """A fresh leaf copy of ``x`` that requires grad: the caller's ``x`` is never touched."""
    return x.detach().clone().requires_grad_(True)


def _need_grad(score: torch.Tensor, method: str) -> None:
    if not score.requires_grad:
        raise RuntimeError(
            f"{method} needs gradients, but the model's output does not depend differentiably on "
            f"x (a black box that returns detached probabilities, or a model run under "
            f"torch.no_grad / with .detach() inside?). Perturbation methods such as "
            f"occlusion_map work without gradients.")


def _get_layer(model: nn.Module, layer: LayerArg, name: str = "layer") -> nn.Module:
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"{name} must be a submodule of model (or its name); the given "
                             f"{type(layer).__name__} is not part of this model")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"{name} must be a layer name (str, see helpers.layer_names(model)) or a "
                        f"submodule, got {_describe(layer)}")
    modules = dict(model.named_modules())
    if layer == "" or layer not in modules:
        import difflib

        names = [n for n in modules if n]
        close = difflib.get_close_matches(layer, names, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"{name} {layer!r} is not a layer of this {type(model).__name__}.{hint} "
                         f"See helpers.layer_names(model) for all {len(names)} names.")
    return modules[layer]


class _Capture:
    """Forward hook that keeps the first output of a module (and may stop the forward pass)."""

    class Stop(Exception):
        pass

    def __init__(self, stop: bool = False):
        self.output = None
        self.stop = stop

    def __call__(self, module, inputs, output):
        if self.output is None:
            self.output = output
            if self.stop:
                raise _Capture.Stop


def _run_with_capture(model: nn.Module, layer: nn.Module, x: torch.Tensor, *, stop: bool):
    """Run model(x) with a capturing hook on ``layer``; return (model output or None, activation)."""
    cap = _Capture(stop=stop)
    handle = layer.register_forward_hook(cap)
    out = None
    try:
        try:
            out = model(x)
        except _Capture.Stop:
            pass
    finally:
        handle.remove()
    if cap.output is None:
        raise RuntimeError("layer was not called during the model's forward pass, so it has no "
                           "activation to explain")
    if not isinstance(cap.output, torch.Tensor):
        raise TypeError(f"layer must output a tensor, got {type(cap.output).__name__}")
    return out, cap.output


# =============================================================================================
# vanilla gradients
# =============================================================================================
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

    >>> net = TinyCNN(seed=0)
    >>> input_gradient(net, torch.rand(2, 3, 16, 16), [1, 3]).shape
    torch.Size([2, 3, 16, 16])
    """
    return _input_gradient(model, x, target, "input_gradient")


def _input_gradient(model, x: torch.Tensor, target: TargetArg, method: str) -> torch.Tensor:
    _check_model(model)
    check_image_batch(x, "x")
    targets = check_target(target, x.shape[0], x.device)
    with _eval_mode(model), torch.enable_grad():
        xg = _leaf(x)
        score = _pick(model(xg), targets)
        _need_grad(score, method)
        (grad,) = torch.autograd.grad(score.sum(), xg)
    return grad.detach()


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
    if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 < percentile <= 100:
        raise ValueError(f"percentile must be a number in (0, 100], got {percentile!r}")
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

    >>> net = TinyCNN(seed=0)
    >>> m = saliency_map(net, torch.rand(1, 3, 16, 16), 2)
    >>> m.shape, bool((m >= 0).all())
    (torch.Size([1, 16, 16]), True)
    """
    return to_map(_input_gradient(model, x, target, "saliency_map"))


def smoothgrad(model, x: torch.Tensor, target: TargetArg, *, samples: int = 25,
               noise: float = 0.15, batch_size: int = 16, seed: int = 0,
               progress: bool = False) -> torch.Tensor:
    """SmoothGrad (Smilkov et al., 2017): average gradients over noisy copies of the image.

    .. math::  \\hat g = \\frac{1}{S}\\sum_{s=1}^{S} \\left|\\nabla_x S_t(x + \\varepsilon_s)\\right|,
               \\quad \\varepsilon_s \\sim \\mathcal N(0, \\sigma^2),\\quad
               \\sigma = \\text{noise}\\cdot(\\max x_n - \\min x_n)

    then the map is :math:`\\max_c \\hat g_c` as in :func:`saliency_map`.  The gradient of a ReLU
    network jumps from pixel to pixel; averaging over a small neighbourhood of the image removes
    much of that noise.  ``noise`` is relative to each image's value range (10-20 % is typical).
    The noise comes from a private generator seeded with ``seed``: results repeat, and the global
    random state is not touched.  Noisy copies are processed ``batch_size`` at a time.

    Shapes: x (N, 3, H, W) -> maps (N, H, W).  ``noise=0`` gives :func:`saliency_map`.

    >>> net = TinyCNN(seed=0)
    >>> smoothgrad(net, torch.rand(1, 3, 16, 16), 0, samples=4).shape
    torch.Size([1, 16, 16])
    """
    _check_model(model)
    check_image_batch(x, "x")
    check_positive_int(samples, "samples")
    check_positive_int(batch_size, "batch_size")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"noise must be a number >= 0 (a fraction of the image's value range), "
                         f"got {noise!r}")
    n = x.shape[0]
    targets = check_target(target, n, x.device)
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    xd = x.detach()
    span = (xd.flatten(1).amax(1) - xd.flatten(1).amin(1)).view(n, 1, 1, 1, 1)
    total = torch.zeros_like(xd)
    chunks = range(0, samples, batch_size)
    with _eval_mode(model), torch.enable_grad():
        for start in _progress(chunks, desc="SmoothGrad", disable=not progress):
            s = min(batch_size, samples - start)
            # drawn sample by sample (sample-major), so the result does not depend on batch_size
            eps = torch.randn((s, n) + tuple(x.shape[1:]), generator=gen, device=x.device,
                              dtype=x.dtype).transpose(0, 1) * (noise * span)
            noisy = (xd[:, None] + eps).reshape((n * s,) + tuple(x.shape[1:]))
            xg = noisy.requires_grad_(True)
            score = _pick(model(xg), targets.repeat_interleave(s))
            _need_grad(score, "smoothgrad")
            (grad,) = torch.autograd.grad(score.sum(), xg)
            total += grad.abs().view((n, s) + tuple(x.shape[1:])).sum(1)
    return (total / samples).amax(dim=1)


# =============================================================================================
# occlusion
# =============================================================================================
def _pair(v, name: str) -> Tuple[int, int]:
    items = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair (h, w) of ints, got {v!r}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)) or item < 1:
            raise ValueError(f"{name} must be a positive int or a pair (h, w) of positive ints, "
                             f"got {v!r}")
    return int(items[0]), int(items[1])


def occlusion_windows(height: int, width: int, size, stride) -> List[Tuple[int, int, int, int]]:
    """The patches :func:`occlusion_map` greys out, as (top, left, h, w), row by row.

    Top-left corners run over ``range(0, H - size + stride, stride)`` in each direction: from the
    top-left corner in steps of ``stride`` up to the first patch that reaches the bottom (right)
    border.  A patch that sticks out past the border is cut off there (``h``, ``w`` are the
    clipped sizes), so every pixel is covered at least once when ``stride <= size``.  This is the
    window layout of Captum's ``Occlusion``.

    >>> occlusion_windows(10, 10, 4, 4)[:4]
    [(0, 0, 4, 4), (0, 4, 4, 4), (0, 8, 4, 2), (4, 0, 4, 4)]
    """
    kh, kw = _pair(size, "size")
    sh, sw = _pair(stride, "stride")
    if kh > height or kw > width:
        raise ValueError(f"size {size!r} is larger than the image ({height} x {width})")
    if sh > kh or sw > kw:
        raise ValueError(f"stride {stride!r} must not exceed size {size!r}, otherwise some "
                         f"pixels are never occluded")
    tops = range(0, height - kh + sh, sh)
    lefts = range(0, width - kw + sw, sw)
    return [(t, l, min(kh, height - t), min(kw, width - l)) for t in tops for l in lefts]


def occlusion_map(model, x: torch.Tensor, target: TargetArg, *, size=32, stride=16,
                  fill: Union[float, torch.Tensor] = 0.5, batch_size: int = 64,
                  output: str = "logits", progress: bool = False) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus, ECCV 2014), normalised to the clean probability.

    A ``size x size`` patch filled with ``fill`` slides over the image with step ``stride``
    (windows as in :func:`occlusion_windows`).  For every window :math:`w` the network sees the
    occluded image :math:`x^{(w)}` and we record the *relative drop* of the target probability

    .. math::  d_w = \\frac{p_t(x) - p_t(x^{(w)})}{p_t(x)}

    (1: hiding the patch removes all the evidence; 0: no effect; negative: the class became
    *more* likely).  A pixel's value is the mean of :math:`d_w` over all windows that cover it:

    .. math::  M_{ij} = \\frac{\\sum_{w \\ni (i,j)} d_w}{\\#\\{w \\ni (i,j)\\}}

    Dividing by :math:`p_t(x)` makes maps of images with different confidences comparable.
    Without it (Captum's ``Occlusion`` on probabilities) a map is the raw drop, i.e. ours times
    :math:`p_t(x)`.

    Args:
        model: any callable mapping (B, 3, H, W) to class scores (B, K): logits
            (``output="logits"``, softmax applied here) or probabilities (``output="probs"``,
            e.g. a :class:`ProbabilitiesOnly` black box).  No gradients are used.
        x: images (N, 3, H, W) in [0, 1].
        target: class index (int) or one per image.
        size, stride: patch size and step in pixels (int or (h, w)); ``stride <= size``.
        fill: value of the occluded pixels; 0.5 (mid grey) is the zero of the course models'
            normalised input.  A float or a tensor broadcastable to (3, H, W).
        batch_size: occluded images per forward pass (speed vs memory).
        progress: show a progress bar over the batches.

    Returns:
        maps (N, H, W) on ``x``'s device.  Cost: ``len(occlusion_windows(...)) + 1`` images
        through the network per input image.

    >>> net = TinyCNN(seed=0)
    >>> occlusion_map(net, torch.rand(1, 3, 16, 16), 0, size=4, stride=2).shape
    torch.Size([1, 16, 16])
    """
    _check_model(model)
    check_image_batch(x, "x")
    check_positive_int(batch_size, "batch_size")
    check_choice(output, "output", ["logits", "probs"])
    n, _, h, w = x.shape
    windows = occlusion_windows(h, w, size, stride)
    targets = check_target(target, n, x.device)
    xd = x.detach()
    fill_t = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    try:
        fill_t = torch.broadcast_to(fill_t, xd.shape[1:])
    except RuntimeError:
        raise ValueError(f"fill must be a number or a tensor broadcastable to {tuple(xd.shape[1:])}, "
                         f"got {_describe(fill)}") from None

    def probs(batch: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scores = model(batch)
        if output == "logits":
            if not isinstance(scores, torch.Tensor) or scores.ndim != 2:
                raise ValueError(f"model(x) must return class scores of shape (N, K), got "
                                 f"{_describe(scores)}")
            scores = scores.softmax(dim=1)
        return _pick(scores, t)

    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    tops = torch.tensor([win[0] for win in windows], device=x.device)
    lefts = torch.tensor([win[1] for win in windows], device=x.device)
    kh, kw = _pair(size, "size")
    row_in = (rows[None, :] >= tops[:, None]) & (rows[None, :] < tops[:, None] + kh)   # (W_n, H)
    col_in = (cols[None, :] >= lefts[:, None]) & (cols[None, :] < lefts[:, None] + kw)
    count = (row_in[:, :, None] & col_in[:, None, :]).sum(0).to(x.dtype)                 # (H, W)
    total = torch.zeros((n, h, w), dtype=x.dtype, device=x.device)
    jobs = [(i, s) for i in range(n) for s in range(0, len(windows), batch_size)]
    with _eval_mode(model), torch.no_grad():
        clean = probs(xd, targets).to(x.dtype).clamp_min(torch.finfo(x.dtype).tiny)       # (N,)
        for i, s in _progress(jobs, desc="occlusion", disable=not progress):
            masks = (row_in[s:s + batch_size, :, None] & col_in[s:s + batch_size, None, :])[:, None]
            batch = torch.where(masks, fill_t, xd[i:i + 1])                               # (B,3,H,W)
            p = probs(batch, targets[i:i + 1].expand(batch.shape[0])).to(x.dtype)
            drop = (clean[i] - p) / clean[i]                                              # (B,)
            total[i] += (drop[:, None, None] * masks[:, 0]).sum(0)
    return total / count


# =============================================================================================
# guided backpropagation
# =============================================================================================
class _PositiveGradient(torch.autograd.Function):
    """Identity in the forward pass; lets only positive gradients through in the backward pass."""

    @staticmethod
    def forward(ctx, y):  # noqa: D401 - autograd signature
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


def _guided_hook(module, inputs, output):
    return _PositiveGradient.apply(output)


@contextlib.contextmanager
def guided_relus(model: nn.Module) -> Iterator[int]:
    """Inside the block, backpropagation through every ReLU / ReLU6 of ``model`` is *guided*.

    Guided backpropagation (Springenberg et al., "Striving for Simplicity: The All Convolutional
    Net", ICLR workshop 2015) changes only the backward pass of the rectifiers.  For
    :math:`y = \\mathrm{ReLU}(z)` with incoming gradient :math:`\\bar y` the true gradient is
    :math:`\\bar z = \\bar y\\,[z > 0]`; the guided rule also drops the negative signals:

    .. math::  \\bar z = \\bar y\\,[z > 0]\\,[\\bar y > 0]

    EfficientNet-Lite uses :math:`\\mathrm{ReLU6}(z) = \\min(\\max(z, 0), 6)`, whose true
    gradient is :math:`\\bar y\\,[0 < z < 6]` (flat above 6 too), so the guided rule becomes

    .. math::  \\bar z = \\bar y\\,[0 < z < 6]\\,[\\bar y > 0] = \\max(\\bar y, 0)\\,[0 < z < 6].

    How: a forward hook on every ``nn.ReLU`` / ``nn.ReLU6`` module passes the module's output
    through an identity function whose backward keeps only the positive part of the gradient;
    the module's own backward then applies the mask :math:`[0 < z < 6]` (or :math:`[z > 0]`).
    The hooks are removed when the block ends, also on an exception.  Rectifiers called as
    functions (``F.relu``) are not modules and are not changed.  Yields the number of hooked
    modules.

    >>> net = TinyCNN(seed=0)
    >>> with guided_relus(net) as n_hooked:
    ...     n_hooked
    3
    """
    _check_model(model, module=True)
    handles = []
    try:
        for m in model.modules():
            if isinstance(m, GUIDED_ACTIVATIONS):
                handles.append(m.register_forward_hook(_guided_hook))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


def _guided_or_plain(model: nn.Module, guided: bool, method: str):
    if not guided:
        return contextlib.nullcontext(0)
    if not any(isinstance(m, GUIDED_ACTIVATIONS) for m in model.modules()):
        raise ValueError(f"{method}: model has no nn.ReLU or nn.ReLU6 modules, so guided "
                         f"backpropagation would be the plain gradient (rectifiers called as "
                         f"F.relu cannot be hooked)")
    return guided_relus(model)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: TargetArg) -> torch.Tensor:
    """Guided backpropagation of the class logit to the pixels (Springenberg et al., 2015).

    The backward pass of :func:`input_gradient`, with the guided rule of :func:`guided_relus` at
    every ReLU / ReLU6: only positive signals, and only through units that were in their
    linear range (:math:`0 < z < 6` for ReLU6) in the forward pass.  The result is *not* the
    gradient of anything; it shows the image structures that excite the class through purely
    positive paths, and looks much sharper than the plain gradient.

    Shapes: x (N, 3, H, W) -> (N, 3, H, W), signed (view it with
    :func:`helpers.plotting.rescale` or :func:`to_map`).

    >>> net = TinyCNN(seed=0)
    >>> guided_backprop(net, torch.rand(1, 3, 16, 16), 4).shape
    torch.Size([1, 3, 16, 16])
    """
    _check_model(model, module=True)
    check_image_batch(x, "x")
    targets = check_target(target, x.shape[0], x.device)
    with _eval_mode(model), _guided_or_plain(model, True, "guided_backprop"), torch.enable_grad():
        xg = _leaf(x)
        score = _pick(model(xg), targets)
        _need_grad(score, "guided_backprop")
        (grad,) = torch.autograd.grad(score.sum(), xg)
    return grad.detach()


def neuron_gradient(model: nn.Module, x: torch.Tensor, unit, *, layer: LayerArg,
                    guided: bool = False) -> torch.Tensor:
    """Gradient (plain or guided) of one hidden unit with respect to the image.

    ``unit`` selects a value of the activation :math:`A` (N, C, h, w) of ``layer``:

    * ``(c, i, j)``: the single unit :math:`A_{n,c,i,j}` -- one neuron, which sees only its
      receptive field, so the gradient is zero outside it;
    * ``c`` (an int): the spatial mean of channel ``c``, :math:`\\frac{1}{hw}\\sum_{ij} A_{n,c,ij}`.

    .. math::  g_n = \\frac{\\partial A_{n,c,i,j}}{\\partial x_n}

    With ``guided=True`` the rectifiers use the guided rule (:func:`guided_relus`) -- the
    "intermediate features via guided backprop" pictures of the lectures.  The forward pass stops
    at ``layer``.  Shapes: x (N, 3, H, W) -> (N, 3, H, W).

    >>> net = TinyCNN(seed=0)
    >>> neuron_gradient(net, torch.rand(1, 3, 16, 16), (2, 3, 3), layer="act2").shape
    torch.Size([1, 3, 16, 16])
    """
    _check_model(model, module=True)
    check_image_batch(x, "x")
    module = _get_layer(model, layer)
    if isinstance(unit, bool) or not (isinstance(unit, (int, np.integer)) or (
            isinstance(unit, (tuple, list)) and len(unit) == 3
            and all(isinstance(u, (int, np.integer)) and not isinstance(u, bool) for u in unit))):
        raise TypeError(f"unit must be a channel index (int) or a (channel, row, column) triple "
                        f"of ints, got {unit!r}")
    with _eval_mode(model), _guided_or_plain(model, guided, "neuron_gradient"), \
            torch.enable_grad():
        xg = _leaf(x)
        _, act = _run_with_capture(model, module, xg, stop=True)
        if act.ndim != 4:
            raise ValueError(f"layer must output a 4-D activation (N, C, h, w), got shape "
                             f"{tuple(act.shape)}")
        c_max, h_max, w_max = act.shape[1:]
        c = int(unit) if not isinstance(unit, (tuple, list)) else int(unit[0])
        if not 0 <= c < c_max:
            raise ValueError(f"unit: channel must be in [0, {c_max - 1}], got {c}")
        if isinstance(unit, (tuple, list)):
            i, j = int(unit[1]), int(unit[2])
            if not (0 <= i < h_max and 0 <= j < w_max):
                raise ValueError(f"unit: position ({i}, {j}) is outside the {h_max} x {w_max} "
                                 f"activation of this layer")
            value = act[:, c, i, j]
        else:
            value = act[:, c].mean(dim=(1, 2))
        _need_grad(value, "neuron_gradient")
        (grad,) = torch.autograd.grad(value.sum(), xg)
    return grad.detach()


# =============================================================================================
# Grad-CAM
# =============================================================================================
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

    >>> net = TinyCNN(seed=0)
    >>> grad_cam(net, torch.rand(1, 3, 16, 16), 1, layer="act3").shape
    torch.Size([1, 16, 16])
    """
    _check_model(model, module=True)
    check_image_batch(x, "x")
    module = _get_layer(model, layer)
    targets = check_target(target, x.shape[0], x.device)
    with _eval_mode(model), torch.enable_grad():
        xg = _leaf(x)
        out, act = _run_with_capture(model, module, xg, stop=False)
        if act.ndim != 4:
            raise ValueError(f"layer must output a 4-D activation (N, C, h, w), got shape "
                             f"{tuple(act.shape)}")
        score = _pick(out, targets)
        _need_grad(score, "grad_cam")
        (grad,) = torch.autograd.grad(score.sum(), act)
    alpha = grad.mean(dim=(2, 3), keepdim=True)                       # (N, C, 1, 1)
    cam = F.relu((alpha * act.detach()).sum(dim=1, keepdim=True))     # (N, 1, h, w)
    if upsample and tuple(cam.shape[-2:]) != tuple(x.shape[-2:]):
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].to(x.dtype)


# =============================================================================================
# integrated gradients
# =============================================================================================
IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
              "riemann_trapezoid")


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
                         progress: bool = False) -> torch.Tensor:
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

    >>> net = TinyCNN(seed=0)
    >>> integrated_gradients(net, torch.rand(1, 3, 16, 16), 0, steps=8).shape
    torch.Size([1, 3, 16, 16])
    """
    _check_model(model)
    check_image_batch(x, "x")
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    check_choice(method, "method", IG_METHODS)
    n = x.shape[0]
    targets = check_target(target, n, x.device)
    xd = x.detach()
    base = torch.as_tensor(baseline.detach() if isinstance(baseline, torch.Tensor) else baseline,
                           dtype=x.dtype, device=x.device)
    try:
        base = torch.broadcast_to(base, xd.shape)
    except RuntimeError:
        raise ValueError(f"baseline must be a number or a tensor broadcastable to "
                         f"{tuple(xd.shape)}, got {_describe(baseline)}") from None
    alphas, weights = _ig_nodes(method, steps)
    alphas_t = torch.tensor(alphas, dtype=x.dtype, device=x.device)
    weights_t = torch.tensor(weights, dtype=x.dtype, device=x.device)
    delta = xd - base
    total = torch.zeros_like(xd)
    with _eval_mode(model), torch.enable_grad():
        for s in _progress(range(0, steps, batch_size), desc="integrated gradients",
                           disable=not progress):
            a = alphas_t[s:s + batch_size]                                       # (B,)
            k = a.shape[0]
            path = base[:, None] + a.view(1, k, 1, 1, 1) * delta[:, None]        # (N, B, 3, H, W)
            xg = path.reshape((n * k,) + tuple(x.shape[1:])).requires_grad_(True)
            score = _pick(model(xg), targets.repeat_interleave(k))
            _need_grad(score, "integrated_gradients")
            (grad,) = torch.autograd.grad(score.sum(), xg)
            grad = grad.view((n, k) + tuple(x.shape[1:]))
            total += (grad * weights_t[s:s + batch_size].view(1, k, 1, 1, 1)).sum(1)
    return (delta * total).detach()


# =============================================================================================
# segmentation from saliency (GrabCut)
# =============================================================================================
#: OpenCV's GrabCut labels (cv2.GC_BGD, cv2.GC_FGD, cv2.GC_PR_BGD, cv2.GC_PR_FGD).
GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD = 0, 1, 2, 3


def _as_maps(saliency: torch.Tensor, name: str = "saliency") -> torch.Tensor:
    check_tensor(saliency, name, ndim=(2, 3, 4), floating=True)
    s = saliency.detach()
    if s.ndim == 4:
        if s.shape[1] != 1:
            raise ValueError(f"{name} must be (N, H, W), (N, 1, H, W) or (H, W), got shape "
                             f"{tuple(s.shape)}")
        s = s[:, 0]
    elif s.ndim == 2:
        s = s[None]
    return s


def grabcut_seeds(saliency: torch.Tensor, *, fg_quantile: float = 0.95,
                  bg_quantile: float = 0.30) -> torch.Tensor:
    """Initial GrabCut labels from a saliency map, as in Simonyan et al. (2014), section 3.1.

    Per image: pixels whose saliency is at least the ``fg_quantile`` quantile of that image's map
    are *sure foreground* (``GC_FGD`` = 1), pixels at most the ``bg_quantile`` quantile *sure
    background* (``GC_BGD`` = 0); the rest is *probably background* (``GC_PR_BGD`` = 2), for
    GrabCut to decide.  (Simonyan et al. fit the colour models to the top 5 % and bottom 30 % of
    the saliency; the defaults follow them.)

    Shapes: (N, H, W), (N, 1, H, W) or (H, W) -> int64 (N, H, W) with values in {0, 1, 2}.

    >>> grabcut_seeds(torch.arange(10.).view(1, 2, 5), fg_quantile=0.9, bg_quantile=0.2)
    tensor([[[0, 0, 2, 2, 2],
             [2, 2, 2, 2, 1]]])
    """
    s = _as_maps(saliency)
    for q, name in ((fg_quantile, "fg_quantile"), (bg_quantile, "bg_quantile")):
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise ValueError(f"{name} must be a number in [0, 1], got {q!r}")
    if bg_quantile >= fg_quantile:
        raise ValueError(f"bg_quantile ({bg_quantile}) must be smaller than fg_quantile "
                         f"({fg_quantile})")
    flat = s.flatten(1).double()
    hi = torch.quantile(flat, fg_quantile, dim=1).view(-1, 1, 1)
    lo = torch.quantile(flat, bg_quantile, dim=1).view(-1, 1, 1)
    sd = s.double()
    seeds = torch.full(s.shape, GC_PR_BGD, dtype=torch.long, device=s.device)
    seeds[sd <= lo] = GC_BGD
    seeds[sd >= hi] = GC_FGD
    return seeds


def _uint8_image(img: torch.Tensor) -> np.ndarray:
    arr = img.detach().to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(np.round(arr * 255).astype(np.uint8))


def grabcut_mask(image: torch.Tensor, saliency: torch.Tensor, *, fg_quantile: float = 0.95,
                 bg_quantile: float = 0.30, blur_sigma: float = 0.0, iterations: int = 5,
                 seed: int = 0) -> torch.Tensor:
    """Segment the object a saliency map points at, with GrabCut (Rother et al., 2004).

    Simonyan et al. (2014) turned saliency maps into object masks without any segmentation
    training: saliency is high on the object but noisy and incomplete, so it only *seeds* a
    colour-based segmentation.  Steps, per image:

    1. optionally blur the map (``blur_sigma`` pixels; :func:`helpers.filters.gaussian_blur`)
       -- gradient maps are speckled;
    2. seed labels with :func:`grabcut_seeds` (top ``1 - fg_quantile`` sure foreground, bottom
       ``bg_quantile`` sure background);
    3. run OpenCV's ``cv2.grabCut`` in ``GC_INIT_WITH_MASK`` mode for ``iterations`` rounds: it
       fits a Gaussian-mixture colour model to foreground and background and cuts the image
       graph where colours change (a min-cut that also prefers short boundaries).

    GrabCut's k-means initialisation uses OpenCV's global random generator, which is seeded with
    ``seed`` (``cv2.setRNGSeed``) so that results repeat.

    Args:
        image: (N, 3, H, W) or (3, H, W) in [0, 1].
        saliency: (N, H, W), (N, 1, H, W) or (H, W) -- one map per image, same H, W.

    Returns:
        bool tensor (N, H, W) on ``image``'s device, True on the foreground.

    >>> img = torch.zeros(1, 3, 32, 32); img[..., 8:24, 8:24] = 1.0     # a white square on black
    >>> yy, xx = torch.meshgrid(torch.arange(32.), torch.arange(32.), indexing="ij")
    >>> sal = torch.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 50)[None]  # a blob at its centre
    >>> int(grabcut_mask(img, sal).sum())                               # the whole square: 16 x 16
    256
    """
    import cv2

    check_tensor(image, "image", ndim=(3, 4), floating=True)
    images = image[None] if image.ndim == 3 else image
    check_image_batch(images, "image")
    s = _as_maps(saliency)
    if s.shape[0] != images.shape[0] or tuple(s.shape[-2:]) != tuple(images.shape[-2:]):
        raise ValueError(f"saliency must hold one (H, W) map per image, matching image "
                         f"{tuple(images.shape)}; got shape {tuple(saliency.shape)}")
    check_positive_int(iterations, "iterations")
    if isinstance(blur_sigma, bool) or not isinstance(blur_sigma, (int, float)) or blur_sigma < 0:
        raise ValueError(f"blur_sigma must be a number >= 0, got {blur_sigma!r}")
    if blur_sigma > 0:
        from .filters import gaussian_blur

        s = gaussian_blur(s[:, None].float(), float(blur_sigma))[:, 0]
    seeds = grabcut_seeds(s, fg_quantile=fg_quantile, bg_quantile=bg_quantile).cpu().numpy()
    out = np.zeros(seeds.shape, dtype=bool)
    for i in range(images.shape[0]):
        mask = seeds[i].astype(np.uint8)
        if not (mask == GC_FGD).any() or not ((mask == GC_BGD) | (mask == GC_PR_BGD)).any():
            raise ValueError("saliency map has no contrast: GrabCut needs both foreground and "
                             "background seeds")
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(int(seed))
        cv2.grabCut(_uint8_image(images[i]), mask, None, bgd, fgd, int(iterations),
                    cv2.GC_INIT_WITH_MASK)
        out[i] = (mask == GC_FGD) | (mask == GC_PR_FGD)
    return torch.from_numpy(out).to(image.device)


# =============================================================================================
# sanity checks (Adebayo et al. 2018)
# =============================================================================================
def randomize_layers(model: nn.Module, layers: Union[str, Sequence[str]], *, seed: int = 0,
                     inplace: bool = False) -> nn.Module:
    """Replace the learned parameters of some layers by random ones (model randomisation test).

    Every parameter tensor inside the named layers (weights, biases, BatchNorm scales and shifts)
    is redrawn from a Gaussian with that tensor's own mean and standard deviation: the learned
    *structure* is destroyed, the *scale* of the activations is kept (so nothing explodes).
    Buffers (BatchNorm running statistics) are kept.  Returns a randomised deep copy (the
    original is untouched) unless ``inplace=True``.  Random numbers come from a private generator
    seeded with ``seed``.

    Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018: a saliency method that
    explains the *model* must change when the model's weights are randomised.

    >>> net = TinyCNN(seed=0)
    >>> rnd = randomize_layers(net, ["classifier"])
    >>> torch.equal(rnd.conv1.weight, net.conv1.weight), torch.equal(rnd.classifier.weight, net.classifier.weight)
    (True, False)
    """
    _check_model(model, module=True)
    names = [layers] if isinstance(layers, str) else list(layers)
    target = model if inplace else copy.deepcopy(model)
    modules = [_get_layer(target, name, "layers") for name in names]
    gen = torch.Generator().manual_seed(int(seed))
    seen = set()
    with torch.no_grad():
        for module in modules:
            for p in module.parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                ref = p.detach().to("cpu", torch.float64)
                mean = float(ref.mean())
                std = float(ref.std()) if ref.numel() > 1 else abs(mean) + 1e-3
                new = torch.randn(p.shape, generator=gen, dtype=torch.float64) * std + mean
                p.copy_(new.to(p.dtype))
    return target


def cascading_randomization(model: nn.Module, layers: Sequence[str], *, seed: int = 0
                            ) -> Iterator[Tuple[str, nn.Module]]:
    """Randomise ``layers`` one after the other, cumulatively; yield (layer name, model) each time.

    Give the layers from the output down (e.g. ``["classifier", "head", "stages.6", ...]``):
    after step k, layers 0..k are all random -- the *cascading* randomisation of Adebayo et al.
    (2018).  One deep copy of the model is made and randomised further at every step, so use
    each yielded model before asking for the next.  The original model is not changed.

    >>> net = TinyCNN(seed=0)
    >>> [name for name, _ in cascading_randomization(net, ["classifier", "conv3"])]
    ['classifier', 'conv3']
    """
    work = copy.deepcopy(model)
    for k, name in enumerate(layers):
        randomize_layers(work, [name], seed=int(seed) + k, inplace=True)
        yield name, work


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between two maps per item (``scipy.stats.spearmanr``).

    ``a`` and ``b`` have the same shape (N, ...); each item is flattened and the correlation of
    the *ranks* of its values is computed: 1 when both maps order the pixels the same way, about
    0 for unrelated maps.  Rank correlation ignores any monotone rescaling, so maps on different
    scales can be compared.  Returns a float64 tensor (N,) on the CPU.

    >>> rank_correlation(torch.tensor([[1., 2., 3.]]), torch.tensor([[10., 20., 300.]]))
    tensor([1.], dtype=torch.float64)
    """
    from scipy.stats import spearmanr

    check_tensor(a, "a", floating=True)
    check_tensor(b, "b", floating=True)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must have the same shape (N, ...), got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    fa = a.detach().to("cpu", torch.float64).flatten(1).numpy()
    fb = b.detach().to("cpu", torch.float64).flatten(1).numpy()
    vals = [spearmanr(u, v).statistic for u, v in zip(fa, fb)]
    return torch.tensor(vals, dtype=torch.float64)


# =============================================================================================
# black box and a small test network
# =============================================================================================
class ProbabilitiesOnly:
    """A black-box classifier API: images in, class probabilities out -- nothing else.

    Wraps a model so that callers get only what a web API would give them: ``api(x)`` returns
    softmax probabilities (N, K) as a plain tensor without autograd graph (computed under
    ``torch.no_grad`` in eval mode).  No parameters, no layers, no gradients.  ``api.queries``
    counts the images sent so far (what such an API would bill).

    Perturbation methods still work (``occlusion_map(api, x, t, output="probs")``); gradient
    methods fail with a clear error.

    >>> api = ProbabilitiesOnly(TinyCNN(seed=0))
    >>> p = api(torch.rand(2, 3, 16, 16))
    >>> p.shape, p.requires_grad, api.queries
    (torch.Size([2, 10]), False, 2)
    """

    def __init__(self, model: nn.Module):
        _check_model(model)
        self._model = model
        self.queries = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, "x", unit_range=False)
        with _eval_mode(self._model), torch.no_grad():
            p = self._model(x.detach()).softmax(dim=1)
        self.queries += int(x.shape[0])
        return p.detach().clone()

    def __repr__(self) -> str:
        return f"ProbabilitiesOnly(<hidden model>, queries={self.queries})"


# Moved to helpers.testing.nets (a test network, not part of this topic's API); this alias
# keeps old notebooks working for one release.
from .testing.nets import TinyCNN  # noqa: E402,F401
