"""Gradient ascent on the input: images that a unit "loves", feature inversion and DeepDream.

Assignment 04 ("Generate an image that a neuron loves") is built on this module.  Every method
here freezes the network and optimises the *pixels* instead of the weights:

* **Class visualisation** (Simonyan et al., 2014): :math:`I^* = \\arg\\max_I S_c(I) - \\lambda
  \\lVert I - 0.5 \\rVert^2`, one step of which is :func:`l2_class_step`.
* **Better priors** for the image: the total-variation prior :func:`tv_loss` (Mahendran & Vedaldi,
  2015), Fleuret's multi-scale :func:`edge_energy`, and the regularisation steps of Yosinski et al.
  (2015), :func:`blur_and_clip` (periodic blur, clipping pixels of small norm and of small
  contribution).
* **Feature inversion** (Mahendran & Vedaldi, 2015): :func:`invert_features` finds an image whose
  activations at one layer match those of a photograph.
* **DeepDream** (Mordvintsev et al., 2015): :func:`deepdream_step` (one jittered, L1-normalised
  ascent step on :math:`\\tfrac12\\sum_i f_i^2`) and :func:`dream` (the multi-octave loop).
* A small **feature-visualisation toolkit** in the spirit of Lucid/Lucent (Olah et al., 2017):
  objectives that compose (:class:`Objective`: :func:`class_logit`, :func:`channel`,
  :func:`neuron`, :func:`deepdream`, :func:`diversity`, and image penalties :func:`image_l2`,
  :func:`image_tv`, :func:`image_edge_energy`), image parameterisations (:func:`pixel_image`,
  :func:`fourier_image` with decorrelated colours), random transforms (:func:`jitter`,
  :func:`random_scale`, :func:`random_rotate`, :func:`pad`, :func:`compose`,
  :func:`standard_transforms`) and one optimisation loop, :func:`visualize`.

Conventions
-----------
Images are float tensors (N, 3, H, W) with pixels in [0, 1]; the course's models normalise their
input themselves (EfficientNet-Lite: ``(x - 0.5) / 0.5``).  So the "zero image" of the classic
recipe -- zero in the network's normalised input space -- is the **uniform grey image 0.5**, and
the L2 penalty measures the distance from it: :math:`\\lVert x - 0.5 \\rVert^2`.

Objectives are *maximised*; penalties (:func:`tv_loss`, :func:`edge_energy`, :func:`image_l2`,
...) are non-negative and enter an objective with a minus sign.  Per-image quantities have shape
(N,): one value per image of the batch.

Every function leaves the caller's state as it found it: the input tensors are not modified, the
model's train/eval mode and ``requires_grad`` flags are restored and every hook is removed, also
when an exception is raised.  Nothing chooses a device: tensors are created where the model lives.

Example
-------
>>> import helpers
>>> from helpers import ascent
>>> model = helpers.load_model()
>>> img = ascent.visualize(model, ascent.class_logit(130) - 1e-3 * ascent.image_l2(),
...                        param=ascent.pixel_image(96), steps=5, progress=False)
>>> img.shape
torch.Size([1, 3, 96, 96])
"""
from __future__ import annotations

import contextlib
import difflib
import math
import numbers
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import _describe, check_image_batch, check_positive_int, check_tensor
from .filters import apply_filter, gaussian_blur, gaussian_kernel
from .runtime import progress as _progress
from .taps import features, frozen, layer_names

__all__ = [
    # penalties and the graded building blocks
    "tv_loss",
    "edge_energy",
    "l2_class_step",
    "blur_and_clip",
    "invert_features",
    "deepdream_step",
    "dream",
    # objectives
    "Objective",
    "OUTPUT",
    "INPUT",
    "class_logit",
    "channel",
    "neuron",
    "deepdream",
    "diversity",
    "image_l2",
    "image_tv",
    "image_edge_energy",
    "evaluate",
    # parameterisations
    "ImageParam",
    "pixel_image",
    "fourier_image",
    "COLOR_CORRELATION_SQRT",
    "color_correlation_sqrt",
    # transforms
    "jitter",
    "pad",
    "random_scale",
    "random_rotate",
    "compose",
    "standard_transforms",
    # the loop
    "visualize",
]

#: Key of the model's output (the logits) in the activation dictionary an objective reads.
OUTPUT = "<output>"
#: Key of the image itself (before any random transform) in the activation dictionary.
INPUT = "<input>"

#: Centre of the pixel range: the image the network sees as all zeros after its normalisation.
GREY = 0.5


# =============================================================================================
# small internal helpers
# =============================================================================================
def _number(v, name: str, *, minimum: Optional[float] = None, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_describe(v)}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v}")
    if minimum is not None and (v < minimum or (strict and v == minimum)):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {relation} {minimum:g}, got {v:g}")
    return v


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_describe(model)}")
    return model


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


@contextlib.contextmanager
def _seeded(seed: Optional[int], device: torch.device) -> Iterator[None]:
    """Seed torch's random generators inside the block only (the caller's RNG state is kept)."""
    if seed is None:
        yield
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class _Stop(Exception):
    """Raised by a capture hook once every wanted layer has produced its output."""


def _check_layers(model: nn.Module, layers: Sequence[str]) -> Dict[str, nn.Module]:
    modules = dict(model.named_modules())
    for name in layers:
        if name == "" or name not in modules:
            names = layer_names(model)
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"layer {name!r} is not a layer of this {type(model).__name__}.{hint} "
                             f"See helpers.layer_names(model) for all {len(names)} names.")
    return {name: modules[name] for name in layers}


@contextlib.contextmanager
def _capture(model: nn.Module, layers: Sequence[str]) -> Iterator[Callable]:
    """Forward hooks on ``layers`` for the duration of the block (removed in ``finally``).

    Yields ``run(x, need_output) -> {layer: activation, OUTPUT: logits}``.  Without
    ``need_output`` the forward pass stops as soon as every layer has been seen (like
    :func:`helpers.features` with ``stop_early=True``).  A module called twice keeps its first
    output.
    """
    layers = list(dict.fromkeys(layers))
    modules = _check_layers(model, layers)
    store: Dict[str, torch.Tensor] = {}
    state = {"stop": False}

    def make_hook(name):
        def hook(module, inputs, output):
            if name in store:
                return
            store[name] = output
            if state["stop"] and len(store) == len(layers):
                raise _Stop

        return hook

    handles = []
    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))

        def run(x: torch.Tensor, need_output: bool) -> Dict[str, torch.Tensor]:
            store.clear()
            state["stop"] = not need_output and bool(layers)
            out = None
            try:
                out = model(x)
            except _Stop:
                pass
            missing = [n for n in layers if n not in store]
            if missing:
                raise RuntimeError(f"layers {missing} were not called during the model's forward "
                                   f"pass, so they have no activation")
            acts = dict(store)
            if need_output:
                acts[OUTPUT] = out
            return acts

        yield run
    finally:
        for h in handles:
            h.remove()


# =============================================================================================
# penalties: total variation and multi-scale edge energy
# =============================================================================================
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
    beta = _number(beta, "beta", minimum=0.0, strict=True)
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


#: The 5x5 Gaussian of Fleuret's edge-energy penalty: exp(-(u^2 + v^2) / 2) for u, v in -2..2,
#: normalised to sum 1 (= helpers.filters.gaussian_kernel(5, 1.0)).
def _edge_kernel(dtype: torch.dtype) -> torch.Tensor:
    return gaussian_kernel(5, 1.0, dtype=dtype)


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
    g = _edge_kernel(x.dtype).to(x.device)
    u = x.reshape(n * c, 1, h, w)
    total = x.new_zeros(n * c)
    while min(u.shape[-2], u.shape[-1]) > 5:
        high = u - apply_filter(u, g, padding="reflect")
        total = total + high.pow(2).sum(dim=(1, 2, 3))
        u = F.avg_pool2d(u, 2)
    return total.reshape(n, c).sum(dim=1)


# =============================================================================================
# class visualisation: the L2-regularised step and Yosinski's regularisers
# =============================================================================================
def l2_class_step(model: nn.Module, img: torch.Tensor, target: int, *, lr: float,
                  l2_reg: float) -> torch.Tensor:
    """One step of gradient *ascent* on the L2-regularised class score (Simonyan et al., 2014).

    .. math::  J(I) = \\sum_n S_c(I_n) - \\lambda \\lVert I - 0.5 \\rVert_2^2, \\qquad
               I \\leftarrow I + \\eta\\, \\nabla_I J(I)

    ``S_c`` is the raw class score (the logit ``model(I)[n, c]``, *before* softmax), ``lambda`` is
    ``l2_reg`` and ``eta`` is ``lr``.  The squared norm runs over every entry of the batch; 0.5 is
    the grey image, which this model sees as all zeros.  Plain gradient step: no normalisation,
    no clamping.

    Args:
        model: classifier taking (N, 3, H, W) pixels; its mode and flags are left unchanged.
        img: float tensor (N, 3, H, W) (values may leave [0, 1] during ascent); not modified.
        target: class index c (the same for every image).
        lr: step size eta >= 0.   l2_reg: penalty weight lambda >= 0.

    Returns:
        a new tensor like ``img``, without autograd history.

    >>> from helpers.models import load_model
    >>> x = l2_class_step(load_model(), torch.full((1, 3, 64, 64), 0.5), 130, lr=1.0, l2_reg=1e-3)
    >>> x.shape
    torch.Size([1, 3, 64, 64])
    """
    _check_model(model)
    check_image_batch(img, "img", unit_range=False)
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"target must be a class index (int), got {_describe(target)}")
    lr = _number(lr, "lr", minimum=0.0)
    l2_reg = _number(l2_reg, "l2_reg", minimum=0.0)
    x = img.detach().clone().requires_grad_(True)
    with frozen(model), torch.enable_grad():
        logits = model(x)
        if not 0 <= target < logits.shape[1]:
            raise ValueError(f"target must be a class index in 0..{logits.shape[1] - 1}, got {target}")
        objective = logits[:, target].sum() - l2_reg * (x - GREY).pow(2).sum()
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
    sigma = _number(sigma, "sigma", minimum=0.0, strict=True)
    for name, v in (("norm_pct", norm_pct), ("contrib_pct", contrib_pct)):
        if not 0 <= _number(v, name) <= 100:
            raise ValueError(f"{name} must be a percentile in [0, 100], got {v}")
    with torch.no_grad():
        d = x.detach() - GREY
        if blur_every and step % blur_every == 0:
            d = gaussian_blur(d, sigma)
        if norm_pct > 0:
            d = d * _percentile_mask(d.norm(dim=1), norm_pct).unsqueeze(1)
        if contrib_pct > 0:
            d = d * _percentile_mask((d * grad.detach()).sum(dim=1).abs(), contrib_pct).unsqueeze(1)
        return d + GREY


# =============================================================================================
# feature inversion
# =============================================================================================
def invert_features(model: nn.Module, layer: str, target: torch.Tensor, init: torch.Tensor, *,
                    steps: int, lr: float, tv_weight: float, beta: float = 2.0,
                    progress: bool = False) -> Tuple[torch.Tensor, List[float]]:
    """Feature inversion (Mahendran & Vedaldi, CVPR 2015): an image whose features match ``target``.

    Minimises, with Adam on the pixels of ``x`` (started at ``init``),

    .. math::  L(x) = \\frac{\\lVert \\Phi(x) - \\Phi_0 \\rVert^2}{\\lVert \\Phi_0 \\rVert^2}
               + \\text{tv\\_weight} \\cdot \\frac{R_\\beta(x)}{H W}

    where :math:`\\Phi` is the activation of ``layer`` (:func:`helpers.features`),
    :math:`\\Phi_0` = ``target`` and :math:`R_\\beta` is :func:`tv_loss`.  Each of the ``steps``
    iterations: compute L, record it, take one Adam step (``torch.optim.Adam([x], lr=lr)``, default
    betas), then clamp ``x`` to [0, 1].  Gradients reach only ``x`` (``torch.autograd.grad``), never
    the model's parameters.

    Args:
        model: the network (eval mode, frozen: as :func:`helpers.load_model` returns it).
        layer: a name from :func:`helpers.layer_names`.
        target: the activation to match, shape of ``features(model, x, [layer])[layer]``.
        init: starting image (1, 3, H, W) in [0, 1]; not modified.
        steps, lr, tv_weight, beta: number of Adam steps, its learning rate, TV weight, TV exponent.
        progress: show a progress bar.

    Returns:
        ``(x, losses)``: the final image (1, 3, H, W) in [0, 1] (detached) and the list of the
        ``steps`` values of L, each computed before its update.

    >>> from helpers.models import load_model
    >>> from helpers.taps import features
    >>> m = load_model(); photo = torch.rand(1, 3, 64, 64)
    >>> phi0 = features(m, photo, ["stem"], detach=True)["stem"]
    >>> x, losses = invert_features(m, "stem", phi0, torch.full_like(photo, 0.5), steps=5,
    ...                             lr=0.05, tv_weight=0.0)
    >>> losses[-1] < losses[0]
    True
    """
    _check_model(model)
    _check_layers(model, [layer])
    check_tensor(target, "target", floating=True)
    check_image_batch(init, "init")
    steps = check_positive_int(steps, "steps")
    lr = _number(lr, "lr", minimum=0.0, strict=True)
    tv_weight = _number(tv_weight, "tv_weight", minimum=0.0)
    beta = _number(beta, "beta", minimum=0.0, strict=True)
    target = target.detach()
    norm0 = target.pow(2).sum()
    if float(norm0) == 0:
        raise ValueError("target is all zeros; its features carry nothing to invert (pick another "
                         "layer or image)")
    x = init.detach().clone().requires_grad_(True)
    h, w = x.shape[-2:]
    opt = torch.optim.Adam([x], lr=lr)
    losses: List[float] = []
    with frozen(model), torch.enable_grad():
        for _ in _progress(range(steps), desc=f"inverting {layer}", disable=None if progress else True):
            phi = features(model, x, [layer])[layer]
            if phi.shape != target.shape:
                raise ValueError(f"target has shape {tuple(target.shape)} but layer {layer!r} "
                                 f"gives {tuple(phi.shape)} for this image size")
            loss = (phi - target).pow(2).sum() / norm0
            if tv_weight:
                loss = loss + tv_weight * tv_loss(x, beta).sum() / (h * w)
            losses.append(float(loss.detach()))
            (g,) = torch.autograd.grad(loss, x)
            x.grad = g
            opt.step()
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
    return x.detach(), losses


# =============================================================================================
# DeepDream
# =============================================================================================
def deepdream_step(model: nn.Module, x: torch.Tensor, layer: str, *, lr: float,
                   shift: Tuple[int, int] = (0, 0)) -> torch.Tensor:
    """One DeepDream step (Mordvintsev, Olah & Tyka, 2015): amplify what ``layer`` already sees.

    1. jitter: ``xs = torch.roll(x, shifts=shift, dims=(2, 3))`` (``shift = (dy, dx)`` pixels);
    2. forward ``xs`` to ``layer``: activation ``a`` (:func:`helpers.features`);
    3. objective :math:`J = \\tfrac12 \\sum_i a_i^2`, whose gradient with respect to ``a`` is
       ``a`` itself ("set the gradient of the layer equal to its activation"); backward to
       ``g = dJ/dxs``;
    4. undo the jitter: ``g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))``;
    5. L1-normalised ascent step and pixel clipping, per image ``n``:
       :math:`x_n \\leftarrow \\mathrm{clamp}\\big(x_n + \\eta\\, g_n / (\\operatorname{mean}
       \\lvert g_n \\rvert + 10^{-8}),\\ 0,\\ 1\\big)`, the mean over the image's C*H*W entries.

    The normalisation makes every step move a pixel by about ``lr`` on average, whatever the
    layer's scale.  Returns a new tensor; ``x`` is not modified.

    >>> from helpers.models import load_model
    >>> y = deepdream_step(load_model(), torch.rand(1, 3, 64, 64), "stages.2", lr=0.01, shift=(3, -2))
    >>> y.shape
    torch.Size([1, 3, 64, 64])
    """
    _check_model(model)
    check_image_batch(x, "x")
    _check_layers(model, [layer])
    lr = _number(lr, "lr", minimum=0.0)
    if (not isinstance(shift, (tuple, list)) or len(shift) != 2
            or any(isinstance(s, bool) or not isinstance(s, int) for s in shift)):
        raise TypeError(f"shift must be a pair of ints (dy, dx), got {_describe(shift)}")
    dy, dx = int(shift[0]), int(shift[1])
    xs = torch.roll(x.detach(), shifts=(dy, dx), dims=(2, 3)).requires_grad_(True)
    with frozen(model), torch.enable_grad():
        a = features(model, xs, [layer])[layer]
        objective = 0.5 * a.pow(2).sum()
        (g,) = torch.autograd.grad(objective, xs)
    g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))
    scale = g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8
    return (x.detach() + lr * g / scale).clamp(0.0, 1.0)


def dream(model: nn.Module, image: torch.Tensor, layer: str, *, octaves: int = 4,
          octave_scale: float = 1.4, steps: int = 10, lr: float = 0.01, max_jitter: int = 16,
          seed: Optional[int] = 0, progress: bool = True) -> torch.Tensor:
    """DeepDream with octaves: :func:`deepdream_step` from the coarsest scale to the finest.

    The image is shrunk ``octaves - 1`` times by ``octave_scale``.  Starting from the smallest
    version, ``steps`` jittered steps (random shifts in ``-max_jitter..max_jitter``, from a
    generator seeded with ``seed``) are taken; the *detail* they added (result minus the shrunk
    original) is enlarged to the next scale and added to that scale's original, and so on up to
    the full size.  Dreaming at coarse scales first grows large patterns that the fine scales then
    decorate.

    Args:
        image: (1, 3, H, W) in [0, 1]; not modified.   layer: the layer to amplify.
        octaves: number of scales (>= 1).  octave_scale: size ratio between scales (> 1).
        steps: steps per octave.  lr: step size of :func:`deepdream_step`.
        max_jitter: largest random shift in pixels.   seed: random shifts' seed (None: fresh).
    Returns:
        the dreamed image, (1, 3, H, W) in [0, 1].
    """
    _check_model(model)
    check_image_batch(image, "image")
    octaves = check_positive_int(octaves, "octaves")
    steps = check_positive_int(steps, "steps")
    octave_scale = _number(octave_scale, "octave_scale", minimum=1.0, strict=True)
    max_jitter = check_positive_int(max_jitter, "max_jitter", minimum=0)
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    h, w = image.shape[-2:]
    sizes = [(max(8, round(h / octave_scale ** k)), max(8, round(w / octave_scale ** k)))
             for k in range(octaves)][::-1]
    base = image.detach()
    detail = None
    bar = _progress(range(len(sizes) * steps), desc=f"dreaming {layer}", disable=None if progress else True)
    it = iter(bar)
    for size in sizes:
        original = F.interpolate(base, size=size, mode="bilinear", align_corners=False,
                                 antialias=True) if size != (h, w) else base
        if detail is None:
            x = original.clone()
        else:
            up = F.interpolate(detail, size=size, mode="bilinear", align_corners=False)
            x = (original + up).clamp(0.0, 1.0)
        for _ in range(steps):
            next(it, None)
            j = max_jitter
            s = torch.randint(-j, j + 1, (2,), generator=gen).tolist() if j else [0, 0]
            x = deepdream_step(model, x, layer, lr=lr, shift=(int(s[0]), int(s[1])))
        detail = x - original
    if hasattr(bar, "close"):
        bar.close()
    return x


# =============================================================================================
# objectives that compose
# =============================================================================================
class Objective:
    """A differentiable score of a batch of images, one value per image, to be **maximised**.

    An objective reads a dictionary of activations -- ``{layer name: tensor, OUTPUT: logits,
    INPUT: the image}`` -- and returns a tensor (N,).  ``layers`` lists the layer names it needs
    (plus :data:`OUTPUT` if it needs the logits); :func:`visualize` and :func:`evaluate` capture
    exactly those.  Objectives compose like numbers::

        class_logit(130) - 1e-3 * image_l2()          # a class score with an L2 penalty
        channel("stages.3", 7) + 0.5 * diversity("stages.3")

    ``+`` and ``-`` combine objectives (or add a constant), ``*`` and ``/`` scale by a number,
    unary ``-`` flips the sign, and ``sum([...])`` works.

    >>> obj = class_logit(1) - 0.1 * image_l2()
    >>> obj
    class_logit(1) - 0.1 * image_l2()
    >>> sorted(obj.layers)
    ['<input>', '<output>']
    """

    def __init__(self, fn: Callable[[Dict[str, torch.Tensor]], torch.Tensor],
                 layers: Sequence[str] = (), name: str = "objective"):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {_describe(fn)}")
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name

    def __call__(self, acts: Dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.fn(acts)
        if not isinstance(out, torch.Tensor) or out.ndim != 1:
            raise ValueError(f"objective {self.name} must return a tensor (N,), got "
                             f"{_describe(out)}")
        return out

    def __repr__(self) -> str:
        return self.name

    @staticmethod
    def _coerce(other, op: str) -> "Objective":
        if isinstance(other, Objective):
            return other
        if isinstance(other, numbers.Real) and not isinstance(other, bool):
            value = float(other)
            return Objective(lambda acts: _batch_constant(acts, value), (), f"{value:g}")
        raise TypeError(f"cannot {op} an Objective and {_describe(other)}")

    def __add__(self, other) -> "Objective":
        o = self._coerce(other, "add")
        if o.name == "0":
            return self
        return Objective(lambda acts: self(acts) + o(acts), self.layers + o.layers,
                         f"{self.name} + {o.name}")

    def __radd__(self, other) -> "Objective":
        o = self._coerce(other, "add")
        if o.name == "0":                        # sum([...]) starts at 0
            return self
        return o + self

    def __neg__(self) -> "Objective":
        return Objective(lambda acts: -self(acts), self.layers, f"-({self.name})")

    def __sub__(self, other) -> "Objective":
        o = self._coerce(other, "subtract")
        name = o.name if " + " not in o.name and " - " not in o.name else f"({o.name})"
        return Objective(lambda acts: self(acts) - o(acts), self.layers + o.layers,
                         f"{self.name} - {name}")

    def __rsub__(self, other) -> "Objective":
        return self._coerce(other, "subtract") - self

    def __mul__(self, factor) -> "Objective":
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
            raise TypeError(f"an Objective can be multiplied by a number only, got {_describe(factor)}")
        f = float(factor)
        name = self.name if " + " not in self.name and " - " not in self.name else f"({self.name})"
        return Objective(lambda acts: f * self(acts), self.layers, f"{f:g} * {name}")

    __rmul__ = __mul__

    def __truediv__(self, divisor) -> "Objective":
        if isinstance(divisor, bool) or not isinstance(divisor, numbers.Real) or divisor == 0:
            raise TypeError(f"an Objective can be divided by a non-zero number only, got "
                            f"{_describe(divisor)}")
        return self * (1.0 / float(divisor))


def _batch_constant(acts: Dict[str, torch.Tensor], value: float) -> torch.Tensor:
    ref = next(iter(acts.values()))
    return ref.new_full((ref.shape[0],), value)


def _batch_mask(n: int, batch: Optional[int], like: torch.Tensor) -> torch.Tensor:
    if batch is None:
        return like.new_ones(n)
    if not 0 <= batch < n:
        raise ValueError(f"batch index {batch} is out of range for a batch of {n} images")
    mask = like.new_zeros(n)
    mask[batch] = 1.0
    return mask


def _check_batch(batch) -> Optional[int]:
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 0):
        raise ValueError(f"batch must be None (every image) or an image index >= 0, got {batch!r}")
    return batch


def _layer_name(layer) -> str:
    if not isinstance(layer, str) or not layer:
        raise TypeError(f"layer must be a layer name (str, see helpers.layer_names(model)), got "
                        f"{_describe(layer)}")
    return layer


def _channel_index(a: torch.Tensor, k: int, layer: str) -> None:
    if a.ndim < 2 or not 0 <= k < a.shape[1]:
        raise ValueError(f"channel {k} does not exist in layer {layer!r}, whose activation has "
                         f"shape {tuple(a.shape)}")


def class_logit(c: int, *, batch: Optional[int] = None) -> Objective:
    """The raw class score ``S_c`` = logit ``c`` of the model's output (not the softmax).

    ``batch`` restricts it to one image of the batch (the others get 0), to optimise several
    images for different targets in one run.
    """
    if isinstance(c, bool) or not isinstance(c, int) or c < 0:
        raise ValueError(f"c must be a class index (int >= 0), got {c!r}")
    _check_batch(batch)

    def fn(acts):
        logits = acts[OUTPUT]
        if logits.ndim != 2 or c >= logits.shape[1]:
            raise ValueError(f"class {c} does not exist: the model's output has shape "
                             f"{tuple(logits.shape)}")
        return logits[:, c] * _batch_mask(logits.shape[0], batch, logits)

    return Objective(fn, (OUTPUT,), f"class_logit({c})" if batch is None else f"class_logit({c}, batch={batch})")


def channel(layer: str, k: int, *, batch: Optional[int] = None) -> Objective:
    """Mean activation of channel ``k`` of ``layer`` over all spatial positions.

    .. math::  \\frac{1}{H' W'} \\sum_{i,j} a_{k,i,j}

    For a convolutional activation (N, C, H', W'); a flat (N, C) activation is read as is.
    """
    layer = _layer_name(layer)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a channel index (int >= 0), got {k!r}")
    _check_batch(batch)

    def fn(acts):
        a = acts[layer]
        _channel_index(a, k, layer)
        v = a[:, k]
        v = v.flatten(1).mean(dim=1) if v.ndim > 1 else v
        return v * _batch_mask(a.shape[0], batch, v)

    suffix = "" if batch is None else f", batch={batch}"
    return Objective(fn, (layer,), f"channel({layer!r}, {k}{suffix})")


def neuron(layer: str, k: int, y: Optional[int] = None, x: Optional[int] = None, *,
           batch: Optional[int] = None) -> Objective:
    """One spatial unit: activation ``a[k, y, x]`` of ``layer`` (default: the centre position).

    With ``y``/``x`` left out the centre ``(H' // 2, W' // 2)`` of the activation map is used, so
    the objective follows the image size and survives random crops.
    """
    layer = _layer_name(layer)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a channel index (int >= 0), got {k!r}")
    _check_batch(batch)

    def fn(acts):
        a = acts[layer]
        _channel_index(a, k, layer)
        if a.ndim != 4:
            raise ValueError(f"neuron needs a convolutional activation (N, C, H, W); layer "
                             f"{layer!r} gives shape {tuple(a.shape)}: use channel() instead")
        h, w = a.shape[-2:]
        i = h // 2 if y is None else y
        j = w // 2 if x is None else x
        if not (0 <= i < h and 0 <= j < w):
            raise ValueError(f"position ({i}, {j}) is outside the {h}x{w} activation map of "
                             f"{layer!r}")
        v = a[:, k, i, j]
        return v * _batch_mask(a.shape[0], batch, v)

    where = "" if y is None and x is None else f", {y}, {x}"
    suffix = "" if batch is None else f", batch={batch}"
    return Objective(fn, (layer,), f"neuron({layer!r}, {k}{where}{suffix})")


def deepdream(layer: str) -> Objective:
    """DeepDream's objective: :math:`\\tfrac12 \\sum_i a_i^2` over every entry of ``layer``'s
    activation of one image; its gradient with respect to the activation is the activation."""
    layer = _layer_name(layer)

    def fn(acts):
        a = acts[layer]
        return 0.5 * a.pow(2).flatten(1).sum(dim=1)

    return Objective(fn, (layer,), f"deepdream({layer!r})")


def diversity(layer: str) -> Objective:
    """Diversity term for multifaceted visualisation (Olah et al., 2017; Nguyen et al., 2016).

    For every image ``n`` of the batch, the Gram matrix of its activation at ``layer``,
    :math:`G_n = A_n A_n^\\top` with :math:`A_n` the (C, H'W') matrix of channel responses, is
    flattened and normalised to unit length; the objective of image ``n`` is minus its mean cosine
    similarity with the other images' Gram matrices:

    .. math::  D_n = -\\frac{1}{N - 1} \\sum_{m \\neq n} \\langle \\hat G_n, \\hat G_m \\rangle

    Maximising it pushes the images of a batch towards *different styles* of activating the same
    unit.  A batch of one image gets 0.
    """
    layer = _layer_name(layer)

    def fn(acts):
        a = acts[layer]
        n = a.shape[0]
        if n < 2:
            return a.new_zeros(n)
        flat = a.flatten(2)                                   # (N, C, HW)
        gram = (flat @ flat.transpose(1, 2)).flatten(1)       # (N, C*C)
        gram = F.normalize(gram, dim=1)
        sim = gram @ gram.T                                   # (N, N)
        off = sim.sum(dim=1) - sim.diagonal()
        return -off / (n - 1)

    return Objective(fn, (layer,), f"diversity({layer!r})")


def image_l2(center: float = GREY) -> Objective:
    """L2 penalty of the image, :math:`\\lVert x - \\text{center} \\rVert^2` per image (subtract it)."""
    center = _number(center, "center")
    return Objective(lambda acts: (acts[INPUT] - center).pow(2).flatten(1).sum(dim=1), (INPUT,),
                     "image_l2()" if center == GREY else f"image_l2({center:g})")


def image_tv(beta: float = 2.0) -> Objective:
    """Total-variation penalty :func:`tv_loss` of the image (subtract it)."""
    beta = _number(beta, "beta", minimum=0.0, strict=True)
    return Objective(lambda acts: tv_loss(acts[INPUT], beta), (INPUT,),
                     "image_tv()" if beta == 2.0 else f"image_tv({beta:g})")


def image_edge_energy() -> Objective:
    """Multi-scale edge energy :func:`edge_energy` of the image (subtract it)."""
    return Objective(lambda acts: edge_energy(acts[INPUT]), (INPUT,), "image_edge_energy()")


def _split_layers(objective: Objective) -> Tuple[List[str], bool]:
    layers = [n for n in objective.layers if n not in (OUTPUT, INPUT)]
    return layers, OUTPUT in objective.layers


def evaluate(model: nn.Module, objective: Objective, x: torch.Tensor) -> torch.Tensor:
    """The value of ``objective`` on the images ``x`` (N, 3, H, W): a detached tensor (N,).

    >>> from helpers.models import load_model
    >>> evaluate(load_model(), class_logit(285), torch.full((2, 3, 64, 64), 0.5)).shape
    torch.Size([2])
    """
    _check_model(model)
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be an Objective (class_logit, channel, ...), got "
                        f"{_describe(objective)}")
    check_image_batch(x, "x", unit_range=False)
    layers, need_output = _split_layers(objective)
    with frozen(model), torch.no_grad(), _capture(model, layers) as run:
        acts = run(x, need_output or not layers)
        acts[INPUT] = x
        return objective(acts).detach()


# =============================================================================================
# image parameterisations
# =============================================================================================
class ImageParam:
    """How an image is made from tensors that the optimiser changes.

    A parameterisation is a *recipe*: :meth:`build` creates fresh tensors on a device and returns a
    new object with

    * ``parameters()`` -- the leaf tensors to optimise,
    * ``__call__()``   -- the current image (N, 3, H, W), differentiable,
    * ``project()``    -- called after every optimiser step (e.g. clamp pixels to [0, 1]),
    * ``image()``      -- the final image, detached and in [0, 1].

    :func:`visualize` calls :meth:`build` itself, so one recipe can be reused for many runs.
    """

    def __init__(self, size, batch: int = 1):
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 8 for s in size)):
            raise ValueError(f"size must be an int >= 8 or a pair (H, W) of such ints, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.batch = check_positive_int(batch, "batch")
        self._built = False

    def build(self, device: Union[str, torch.device] = "cpu") -> "ImageParam":
        raise NotImplementedError

    def _need_built(self):
        if not self._built:
            raise RuntimeError("call .build(device) first: an ImageParam is a recipe until built")

    def parameters(self) -> List[torch.Tensor]:
        raise NotImplementedError

    def __call__(self) -> torch.Tensor:
        raise NotImplementedError

    def project(self) -> None:
        """Hook called after every optimiser step (default: nothing)."""

    def image(self) -> torch.Tensor:
        with torch.no_grad():
            return self().detach().clamp(0.0, 1.0)


class _PixelImage(ImageParam):
    """Pixels are the parameters; clamped to [0, 1] after every step."""

    def __init__(self, size, batch: int = 1, init=GREY, sd: float = 0.0, clamp: bool = True):
        super().__init__(size, batch)
        if isinstance(init, torch.Tensor):
            check_image_batch(init, "init")
            if init.shape[0] != 1 and init.shape[0] != self.batch:
                raise ValueError(f"init must hold 1 or batch={self.batch} images, got "
                                 f"{init.shape[0]}")
            self.size = tuple(init.shape[-2:])
        else:
            init = _number(init, "init")
        self.init = init
        self.sd = _number(sd, "sd", minimum=0.0)
        self.clamp = bool(clamp)
        self.x: Optional[torch.Tensor] = None

    def build(self, device="cpu") -> "_PixelImage":
        new = _PixelImage.__new__(_PixelImage)
        new.__dict__.update(self.__dict__)
        shape = (self.batch, 3, *self.size)
        if isinstance(self.init, torch.Tensor):
            x = self.init.detach().to(device=device, dtype=torch.float32).expand(shape).clone()
        else:
            x = torch.full(shape, self.init, device=device)
        if self.sd:
            x = x + self.sd * torch.randn(shape, device=device)
        if self.clamp:
            x = x.clamp(0.0, 1.0)
        new.x = x.requires_grad_(True)
        new._built = True
        return new

    def parameters(self):
        self._need_built()
        return [self.x]

    def __call__(self):
        self._need_built()
        return self.x

    def project(self):
        if self.clamp:
            with torch.no_grad():
                self.x.clamp_(0.0, 1.0)

    def __repr__(self):
        init = "tensor" if isinstance(self.init, torch.Tensor) else f"{self.init:g}"
        return f"pixel_image({self.size}, batch={self.batch}, init={init}, sd={self.sd:g})"


def pixel_image(size, *, batch: int = 1, init: Union[float, torch.Tensor] = GREY, sd: float = 0.0,
                clamp: bool = True) -> ImageParam:
    """The plain parameterisation: every pixel is a free parameter.

    Args:
        size: side length, or (H, W).  Ignored when ``init`` is an image.
        batch: number of images optimised together.
        init: starting value: a grey level (default 0.5, the model's "zero" image) or an image
            (1 or ``batch``, 3, H, W) in [0, 1].
        sd: standard deviation of Gaussian noise added to the start.
        clamp: clamp the pixels to [0, 1] after every step (the valid range; "pixel clipping").
    """
    return _PixelImage(size, batch, init, sd, clamp)


#: Square root of the colour covariance of natural photos (see :func:`color_correlation_sqrt`):
#: column k is the RGB colour that one unit of "decorrelated channel" k adds -- column 0 is
#: brightness (almost grey), columns 1 and 2 are the weaker colour-opponent directions
#: (orange-blue, green-magenta).  Computed from the
#: bundled photographs chelsea, coffee, astronaut, rocket, motorcycle, china, flower, grace_hopper
#: and scaled so that its largest column has norm 1.
COLOR_CORRELATION_SQRT = torch.tensor([
    [0.6299, 0.3153, 0.0317],
    [0.5720, -0.0809, -0.0894],
    [0.5254, -0.2901, 0.0594],
])

_COLOR_IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower",
                 "grace_hopper")


def color_correlation_sqrt(images: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
    """A square root of the 3x3 RGB covariance of ``images``: the decorrelated-colour basis.

    With :math:`\\Sigma = U \\Lambda U^\\top` the covariance of all pixels' (r, g, b)
    (eigenvalues in decreasing order), returns :math:`M = U \\Lambda^{1/2}` (so :math:`M M^\\top \\propto
    \\Sigma`), each column's sign chosen so that its red entry is positive and the whole matrix
    scaled so that its largest column has norm 1.  Mapping independent noise ``z`` through it,
    ``M z``, gives colours correlated like those of photos -- mostly shades of grey, a little
    colour: the *decorrelated colour space* of Olah et al. (2017).  With ``images=None`` the
    bundled photos listed in :data:`COLOR_CORRELATION_SQRT` are used (that constant is this
    function's result, rounded to 4 decimals).

    >>> M = color_correlation_sqrt()
    >>> bool(torch.allclose(M, COLOR_CORRELATION_SQRT, atol=1e-3))
    True
    """
    from .images import load_image

    if images is None:
        images = [load_image(name, size=128) for name in _COLOR_IMAGES]
    pixels = torch.cat([check_image_batch(im, "images").permute(1, 0, 2, 3).reshape(3, -1)
                        for im in images], dim=1).double()
    cov = torch.cov(pixels)
    vals, vecs = torch.linalg.eigh(cov)                  # ascending eigenvalues
    vals, vecs = vals.flip(0).clamp_min(0), vecs.flip(1)  # largest first: luminance
    vecs = vecs * torch.where(vecs[0] < 0, -1.0, 1.0).to(vecs)   # sign: red entry positive
    root = vecs * vals.sqrt()
    root = root / root.norm(dim=0).max()
    return root.float()


class _FourierImage(ImageParam):
    """Image = sigmoid(colour mix of an inverse FFT of a 1/f-scaled spectrum)."""

    def __init__(self, size, batch: int = 1, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate: bool = True):
        super().__init__(size, batch)
        self.sd = _number(sd, "sd", minimum=0.0, strict=True)
        self.decay_power = _number(decay_power, "decay_power", minimum=0.0)
        self.decorrelate = bool(decorrelate)
        self.spectrum: Optional[torch.Tensor] = None

    def build(self, device="cpu") -> "_FourierImage":
        new = _FourierImage.__new__(_FourierImage)
        new.__dict__.update(self.__dict__)
        h, w = self.size
        fy = torch.fft.fftfreq(h, device=device).view(-1, 1)
        fx = torch.fft.rfftfreq(w, device=device).view(1, -1)
        freq = (fx * fx + fy * fy).sqrt().clamp_min(1.0 / max(h, w))
        # amplitude ~ 1/f^decay_power (natural images' spectrum); the factor makes a unit
        # spectrum give pixels of about unit variance before the sigmoid
        scale = freq.pow(-self.decay_power)
        new.scale = (scale / scale.pow(2).mean().sqrt()).to(device)
        new.spectrum = (self.sd * torch.randn(self.batch, 3, h, w // 2 + 1, 2, device=device)
                        ).requires_grad_(True)
        new.mix = COLOR_CORRELATION_SQRT.to(device)
        new._built = True
        return new

    def parameters(self):
        self._need_built()
        return [self.spectrum]

    def __call__(self):
        self._need_built()
        h, w = self.size
        spec = torch.view_as_complex(self.spectrum) * self.scale
        lin = torch.fft.irfft2(spec, s=(h, w), norm="ortho")            # (N, 3, H, W)
        if self.decorrelate:
            lin = torch.einsum("ij,njhw->nihw", self.mix, lin)
        return torch.sigmoid(lin)

    def __repr__(self):
        return (f"fourier_image({self.size}, batch={self.batch}, sd={self.sd:g}, "
                f"decay_power={self.decay_power:g}, decorrelate={self.decorrelate})")


def fourier_image(size, *, batch: int = 1, sd: float = 0.01, decay_power: float = 1.0,
                  decorrelate: bool = True) -> ImageParam:
    """Optimise the image's Fourier spectrum instead of its pixels (Olah et al., 2017).

    ``image = sigmoid(M . irfft2(s * S))``: ``S`` is the learned complex spectrum
    (N, 3, H, W//2 + 1), started as Gaussian noise of std ``sd``; ``s = 1 / f^decay_power``
    scales frequency ``f`` (cycles per pixel, at least 1/max(H, W)) so that a step changes all
    frequencies by similar *visible* amounts -- in pixel space, gradient steps are dominated by
    high frequencies; ``M`` is :data:`COLOR_CORRELATION_SQRT` (``decorrelate=True``), so the
    optimiser works in decorrelated colour space; the sigmoid keeps pixels in (0, 1) without
    clamping.  Both changes precondition the optimisation: same objective, better-behaved steps.
    """
    return _FourierImage(size, batch, sd, decay_power, decorrelate)


# =============================================================================================
# random transforms ("transformation robustness")
# =============================================================================================
def _int_arg(v, name: str, minimum: int = 0) -> int:
    return check_positive_int(v, name, minimum=minimum)


def jitter(d: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random translation: crop a random (H - d) x (W - d) window (one offset per call)."""
    d = _int_arg(d, "d")

    def transform(x: torch.Tensor) -> torch.Tensor:
        if d == 0:
            return x
        h, w = x.shape[-2:]
        if d >= min(h, w):
            raise ValueError(f"jitter({d}) needs images larger than {d} pixels, got {h}x{w}")
        dy, dx = (int(v) for v in torch.randint(0, d + 1, (2,)))
        return x[..., dy:dy + h - d, dx:dx + w - d]

    transform.__name__ = f"jitter({d})"
    return transform


def pad(p: int, *, value: float = GREY, mode: str = "constant") -> Callable[[torch.Tensor], torch.Tensor]:
    """Pad every side by ``p`` pixels: grey (``value``) or ``mode="reflect"``/``"replicate"``."""
    p = _int_arg(p, "p")
    if mode not in ("constant", "reflect", "replicate"):
        raise ValueError(f"mode must be 'constant', 'reflect' or 'replicate', got {mode!r}")
    value = _number(value, "value")

    def transform(x: torch.Tensor) -> torch.Tensor:
        if p == 0:
            return x
        if mode == "constant":
            return F.pad(x, (p, p, p, p), mode="constant", value=value)
        return F.pad(x, (p, p, p, p), mode=mode)

    transform.__name__ = f"pad({p})"
    return transform


def random_scale(scales: Sequence[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize by a factor drawn uniformly from ``scales`` (bilinear)."""
    scales = [_number(s, "scales", minimum=0.0, strict=True) for s in scales]
    if not scales:
        raise ValueError("scales must hold at least one factor")

    def transform(x: torch.Tensor) -> torch.Tensor:
        s = scales[int(torch.randint(len(scales), (1,)))]
        if s == 1.0:
            return x
        h, w = x.shape[-2:]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    transform.__name__ = "random_scale"
    return transform


def random_rotate(degrees: Sequence[float]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Rotate about the centre by an angle (degrees) drawn uniformly from ``degrees``."""
    angles = [_number(a, "degrees") for a in degrees]
    if not angles:
        raise ValueError("degrees must hold at least one angle")

    def transform(x: torch.Tensor) -> torch.Tensor:
        a = math.radians(angles[int(torch.randint(len(angles), (1,)))])
        if a == 0.0:
            return x
        n = x.shape[0]
        cos, sin = math.cos(a), math.sin(a)
        theta = x.new_tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).expand(n, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    transform.__name__ = "random_rotate"
    return transform


def compose(transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]]
            ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Apply ``transforms`` one after the other (left to right)."""
    transforms = list(transforms)
    for t in transforms:
        if not callable(t):
            raise TypeError(f"compose: every transform must be callable, got {_describe(t)}")

    def transform(x: torch.Tensor) -> torch.Tensor:
        for t in transforms:
            x = t(x)
        return x

    transform.__name__ = "compose"
    return transform


def standard_transforms() -> Callable[[torch.Tensor], torch.Tensor]:
    """The usual robustness recipe of feature visualisation (as in Lucid/Lucent).

    Pad 12 grey pixels, jitter by 8, scale by 0.9 ... 1.1, rotate by -10 ... 10 degrees, jitter
    by 4: the visualisation must excite the unit whatever small shift, zoom or tilt it gets, which
    removes the high-frequency patterns that only work at one exact position.
    """
    return compose([pad(12), jitter(8), random_scale([1 + (i - 5) / 50 for i in range(11)]),
                    random_rotate(list(range(-10, 11))), jitter(4)])


# =============================================================================================
# the optimisation loop
# =============================================================================================
def _make_optimizer(optimizer, params, lr: float) -> torch.optim.Optimizer:
    if isinstance(optimizer, str):
        name = optimizer.lower()
        if name == "adam":
            return torch.optim.Adam(params, lr=lr)
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr)
        raise ValueError(f"optimizer must be 'adam', 'sgd' or a torch.optim class, got {optimizer!r}")
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr)
    if callable(optimizer):
        opt = optimizer(params, lr)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer(params, lr) must return a torch.optim.Optimizer, got "
                            f"{_describe(opt)}")
        return opt
    raise TypeError(f"optimizer must be 'adam', 'sgd', a torch.optim class or a factory, got "
                    f"{_describe(optimizer)}")


def visualize(model: nn.Module, objective: Objective, *, param: Optional[ImageParam] = None,
              transforms: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
              steps: int = 128, lr: float = 0.05, optimizer="adam",
              post_step: Optional[Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = None,
              seed: Optional[int] = 0, progress: bool = True, history: bool = False,
              desc: Optional[str] = None):
    """Optimise an image to maximise ``objective``: the loop behind every picture of assignment 04.

    Each of the ``steps`` iterations:

    1. ``img = param()`` -- the current image(s) (N, 3, H, W);
    2. ``x = transforms(img)`` -- random jitter / scale / rotation, if given;
    3. run the model on ``x`` with forward hooks on the layers the objective needs (registered
       once, removed in ``finally``; the forward pass stops early when the logits are not needed);
    4. ``score = objective(acts)`` with ``acts[INPUT] = img``; ascend: minimise ``-score.sum()``
       with the optimiser;
    5. ``param.project()`` (pixel images: clamp to [0, 1]);
    6. ``post_step(img, grad, step)`` if given (pixel images only): an image operation applied
       after the step, e.g. :func:`blur_and_clip`; ``grad`` is the ascent gradient of step 4 and
       ``step`` counts from 1.

    Args:
        model: any ``nn.Module``; put in eval mode with frozen parameters while the loop runs,
            then restored.  The image lives on the model's device.
        objective: an :class:`Objective` (``class_logit(c) - 1e-3 * image_l2()``, ...).
        param: an :class:`ImageParam` recipe (default ``pixel_image(128)``).
        transforms: a callable on image batches (e.g. :func:`standard_transforms`).
        steps, lr: number of steps and learning rate.
        optimizer: ``"adam"`` (default), ``"sgd"`` (plain gradient ascent ``x += lr * grad``), a
            ``torch.optim`` class or a factory ``f(params, lr)``.
        post_step: optional image operation after every step (pixel parameterisation only).
        seed: seeds the random start and transforms inside the call only (None: use the global RNG).
        progress: show a progress bar (:func:`helpers.progress`).
        history: also return the objective (summed over the batch) at every step.

    Returns:
        the image batch (N, 3, H, W) in [0, 1], detached; with ``history=True`` a pair
        ``(image, values)`` where ``values`` is a list of ``steps`` floats.

    >>> from helpers.models import load_model
    >>> img, hist = visualize(load_model(), channel("stages.2", 3), param=pixel_image(64),
    ...                       steps=4, progress=False, history=True)
    >>> img.shape, len(hist)
    (torch.Size([1, 3, 64, 64]), 4)
    """
    _check_model(model)
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be an Objective (class_logit, channel, neuron, ...), got "
                        f"{_describe(objective)}")
    param = pixel_image(128) if param is None else param
    if not isinstance(param, ImageParam):
        raise TypeError(f"param must be an ImageParam (pixel_image(...), fourier_image(...)), got "
                        f"{_describe(param)}")
    if transforms is not None and not callable(transforms):
        raise TypeError(f"transforms must be callable (e.g. compose([...])), got {_describe(transforms)}")
    if post_step is not None and not callable(post_step):
        raise TypeError(f"post_step must be callable (img, grad, step) -> img, got {_describe(post_step)}")
    if post_step is not None and not isinstance(param, _PixelImage):
        raise ValueError("post_step edits pixels, so it needs param=pixel_image(...)")
    steps = check_positive_int(steps, "steps")
    lr = _number(lr, "lr", minimum=0.0, strict=True)
    layers, need_output = _split_layers(objective)
    _check_layers(model, layers)
    device = _model_device(model)
    values: List[float] = []
    with _seeded(seed, device), frozen(model), torch.enable_grad(), \
            _capture(model, layers) as run:
        live = param.build(device)
        opt = _make_optimizer(optimizer, live.parameters(), lr)
        bar = _progress(range(steps), desc=desc or f"visualize {objective.name}"[:60],
                        disable=None if progress else True)
        for step in bar:
            opt.zero_grad(set_to_none=True)
            img = live()
            if img.shape[0] == 0:
                raise ValueError("param produced an empty batch")
            x = transforms(img) if transforms is not None else img
            acts = run(x, need_output or not layers)
            acts[INPUT] = img
            score = objective(acts)
            if score.shape != (img.shape[0],):
                raise ValueError(f"objective {objective.name} returned shape {tuple(score.shape)}, "
                                 f"expected ({img.shape[0]},)")
            total = score.sum()
            if not total.requires_grad:
                raise RuntimeError(f"objective {objective.name} does not depend on the image")
            values.append(float(total.detach()))
            (-total).backward()
            if step == 0 and not any(bool(p.grad is not None and p.grad.any())
                                     for p in live.parameters()):
                raise RuntimeError(
                    f"the gradient of {objective.name} with respect to the image is exactly 0, so "
                    f"no step can change it: the unit is inactive for this start image.  Start from "
                    f"noise (pixel_image(..., sd=0.05)) or a photo, or use a larger image (the "
                    f"network sees a {tuple(x.shape[-2:])} input; EfficientNet-Lite works best at "
                    f"sizes that are multiples of 32)")
            grad = None
            if post_step is not None:
                grad = -live.x.grad.detach().clone()
            opt.step()
            live.project()
            if post_step is not None:
                with torch.no_grad():
                    new = post_step(live.x.detach().clone(), grad, step + 1)
                    if not isinstance(new, torch.Tensor) or new.shape != live.x.shape:
                        raise ValueError(f"post_step must return an image of shape "
                                         f"{tuple(live.x.shape)}, got {_describe(new)}")
                    live.x.copy_(new)
                    live.project()
        image = live.image()
    return (image, values) if history else image
