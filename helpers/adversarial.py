"""Adversarial examples: small, deliberate changes of an image that change a classifier's answer.

Assignment 05 ("Fool the network") is built on this module.

==============================  ==============================================  =================
function                        idea (paper)                                    returns
==============================  ==============================================  =================
:func:`logistic_attack`         the linear warm-up: x + eps sign(w) for         (x', P(y=1|x'))
                                logistic regression (Goodfellow et al. 2015)
:func:`fooling_image`           targeted gradient ascent on a raw class score   (x', steps)
                                until the network says "target" (Szegedy et
                                al. 2014; the CS231n recipe)
:func:`fgsm`                    one signed-gradient step of size eps            x'
                                (Goodfellow et al. 2015)
:func:`pgd`                     many small signed steps, each projected back    x'
                                into the eps-ball and [0, 1] (Madry et al. 2018)
:func:`eot_pgd`                 PGD on the average loss over random             x'
                                distortions (Athalye et al. 2018)
:func:`attack_success_rate`     fraction of images an attack fooled             float
:func:`adversarial_training`    train on PGD / FGSM examples (Madry et al.)     loss history
==============================  ==============================================  =================

plus the tools around them: :data:`PHOTOS` / :func:`load_photos` (the bundled photographs the
success-rate experiments use), :func:`predict`, :func:`perturbation_norms`,
:func:`perturbation_image` (a perturbation made visible), :func:`jpeg`, :func:`blur`,
:func:`resize_roundtrip` and :func:`random_distortion` (what happens to an adversarial image on
its way through a camera, a printer or a web upload).

Calling convention (the same as Captum's ``captum.robust``)
----------------------------------------------------------
``attack(model, x, target, *, eps, ..., targeted=False)``:

* ``model``: an ``nn.Module`` (or any callable) mapping images to logits (N, K);
* ``x``: float tensor (N, C, H, W) with pixels in [0, 1] (C = 3 for photos, 1 for the digits);
* ``target``: an ``int`` for every image, or a list / (N,) integer tensor with one class per
  image.  For an **untargeted** attack (``targeted=False``) it is the **true label** -- the class
  the attack moves away from; for a **targeted** attack it is the **goal class**;
* ``eps``: the largest change of any single pixel, in pixel units on [0, 1] (``eps = 8/255``
  is "8 grey levels of an 8-bit image").  Every attack guarantees
  :math:`\\lVert x' - x\\rVert_\\infty \\le \\varepsilon` and :math:`x' \\in [0, 1]`.

The loss is the cross-entropy of the logits, :math:`L(x, y) = -\\log \\mathrm{softmax}(f(x))_y`.
Untargeted attacks climb it for the true label ``y``; targeted attacks descend it for the goal
class ``t``.  (Captum writes the same two rules with its ``loss_func`` and ``targeted`` flag;
``tests/test_adversarial.py`` checks that both give identical images.)

Results live on ``x``'s device with ``x``'s dtype and carry no autograd graph.

State
-----
Every function leaves the caller's state as it found it, also when it raises: ``x`` (values,
``requires_grad``, ``.grad``), the model's parameters (values, ``requires_grad``, ``.grad``) and
the train/eval flag of every submodule.  Attacks evaluate the model in **eval mode** (dropout off,
BatchNorm on its running statistics) and work under ``torch.no_grad()`` too.

Example
-------
>>> import torch, helpers
>>> from helpers.adversarial import pgd, predict
>>> model = helpers.load_model()
>>> x = helpers.load_image("chelsea", size=224)
>>> label = predict(model, x)                                    # tensor([285]): Egyptian cat
>>> x_adv = pgd(model, x, label, eps=4 / 255, steps=20, generator=torch.Generator().manual_seed(0))
>>> bool(predict(model, x_adv) != label)                        # doctest: +SKIP
True
"""
from __future__ import annotations

import io
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import (TargetArg, _describe, check_choice, check_model, check_number,
                      check_positive_int, check_target, check_tensor, check_unit_range,
                      class_scores)
from .digits import train_classifier
from .filters import gaussian_blur
from .images import load_image, resize_image
from .runtime import progress as _progress
from .taps import frozen

__all__ = [
    "PHOTOS",
    "load_photos",
    "logistic_attack",
    "fooling_image",
    "fgsm",
    "pgd",
    "eot_pgd",
    "attack_success_rate",
    "predict",
    "perturbation_norms",
    "perturbation_image",
    "jpeg",
    "blur",
    "resize_roundtrip",
    "random_distortion",
    "adversarial_training",
]


#: The bundled images that count as *photographs* for the success-rate experiments: pictures of
#: everyday objects, people and scenes taken with an ordinary camera -- the kind of picture an
#: ImageNet classifier was trained on.  Eight are in colour (astronaut, chelsea, china, coffee,
#: flower, grace_hopper, motorcycle, rocket) and three are greyscale photographs of objects
#: (camera, clock, coins; the network sees three equal channels).  Left out: synthetic patterns
#: (checkerboard, colorwheel), textures (brick, grass, gravel), scientific and medical images
#: (cell, hubble_deep_field, immunohistochemistry, microaneurysms, moon, retina) and documents
#: (page, text).
PHOTOS: Tuple[str, ...] = ("astronaut", "camera", "chelsea", "china", "clock", "coffee", "coins",
                           "flower", "grace_hopper", "motorcycle", "rocket")


def load_photos(size: int = 224, names: Sequence[str] = PHOTOS) -> torch.Tensor:
    """The photographs :data:`PHOTOS` (or ``names``) as one batch (N, 3, size, size) in [0, 1].

    Each image is resized so that its shorter side is ``size`` and centre-cropped
    (:func:`helpers.images.load_image`).

    >>> load_photos(64).shape
    torch.Size([11, 3, 64, 64])
    """
    check_positive_int(size, "size")
    if isinstance(names, str) or not len(names):
        raise ValueError(f"names must be a non-empty list of image names, got {names!r}")
    return torch.cat([load_image(name, size=size) for name in names])


# =============================================================================================
# plumbing: arguments (the shared checks live in helpers._checks, the state in helpers.taps)
# =============================================================================================
_EPS_HINT = "pixel units on [0, 1], e.g. 8/255"


def _check_images(x, name: str = "x") -> torch.Tensor:
    """A non-empty float batch (N, C, H, W) in [0, 1]; C is free (3 for photos, 1 for digits)."""
    check_tensor(x, name, ndim=4, floating=True)
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got {_describe(x)}")
    check_unit_range(x, name, tol=1e-6)
    return x


def _check_attack(model, x, target: TargetArg, eps: float) -> Tuple[float, torch.Tensor]:
    """The checks every attack starts with: model, images, ``eps``; returns (eps, targets (N,))."""
    check_model(model, module=False)
    _check_images(x)
    eps = check_number(eps, "eps", minimum=0, maximum=1, hint=_EPS_HINT)
    return eps, check_target(target, x.shape[0], x.device)


def _pgd_alpha(alpha: Optional[float], eps: float, steps: int) -> float:
    """PGD's step size: ``alpha`` checked, or the default ``2.5 * eps / steps``."""
    check_positive_int(steps, "steps")
    return 2.5 * eps / steps if alpha is None else check_number(alpha, "alpha", minimum=0,
                                                                strict=True)


def _logits(model, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``model(x)``, checked to be class scores (N, K) in which every target is a class."""
    out = model(x)
    class_scores(out, targets)
    return out


def _check_pair(x, x_adv) -> None:
    """``x`` and ``x_adv``: float batches (N, C, H, W) of the same shape."""
    check_tensor(x, "x", ndim=4, floating=True)
    check_tensor(x_adv, "x_adv", ndim=4, floating=True)
    if x.shape != x_adv.shape:
        raise ValueError(f"x_adv must have x's shape {tuple(x.shape)}, got {_describe(x_adv)}")


def _loss_gradient(model, x: torch.Tensor, targets: torch.Tensor,
                   transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                   samples: int = 1) -> torch.Tensor:
    """Gradient of the summed cross-entropy ``sum_n L(f(x_n), y_n)`` with respect to ``x``.

    The sum (not the mean) keeps every image's gradient independent of the batch size.  With a
    ``transform`` the loss is averaged over ``samples`` random distortions of ``x``.
    """
    x_ = x.detach().requires_grad_(True)
    with torch.enable_grad():
        if transform is None:
            loss = F.cross_entropy(_logits(model, x_, targets), targets, reduction="sum")
        else:
            loss = sum(F.cross_entropy(_logits(model, transform(x_), targets), targets,
                                       reduction="sum") for _ in range(samples)) / samples
        (grad,) = torch.autograd.grad(loss, x_)
    return grad


# =============================================================================================
# the linear warm-up
# =============================================================================================
def logistic_attack(x: torch.Tensor, w: torch.Tensor, b: float = 0.0, *, eps: float,
                    target: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fool a logistic-regression classifier with one signed step (the FGSM of a linear model).

    The classifier says :math:`P(y=1 \\mid x) = \\sigma(w^\\top x + b)`.  The gradient of
    :math:`\\log P(y=1 \\mid x)` with respect to ``x`` is :math:`(1 - \\sigma)\\,w`, whose sign is
    :math:`\\mathrm{sign}(w)`, so the step that raises :math:`P(y=1)` most under
    :math:`\\lVert x' - x\\rVert_\\infty \\le \\varepsilon` is

    .. math::  x' = x + \\varepsilon\\,\\mathrm{sign}(w)   \\quad(\\text{target}=1), \\qquad
               x' = x - \\varepsilon\\,\\mathrm{sign}(w)   \\quad(\\text{target}=0),

    and it moves the logit by :math:`\\pm\\varepsilon\\lVert w\\rVert_1`: a change that grows with
    the dimension while no coordinate moves by more than :math:`\\varepsilon`.  (Goodfellow et al.,
    "Explaining and Harnessing Adversarial Examples", ICLR 2015.)  No clamping: ``x`` is not an
    image here.

    Parameters
    ----------
    x : float tensor (D,) or a batch (N, D)
    w : float tensor (D,), the weights; b : float, the bias
    eps : float >= 0, the step per coordinate
    target : 1 (push towards class 1) or 0 (towards class 0)

    Returns
    -------
    (x_adv, p) : x_adv like ``x``; p = :math:`\\sigma(w^\\top x' + b)`, the probability of class
    **1** after the attack, shape () for one x, (N,) for a batch.

    Example (the lecture's numbers)
    -------------------------------
    >>> x = torch.tensor([1., -2, -2, 3, -1, 2, -2, -3]); w = torch.tensor([2., -1, -1, -1, 2, -1, -1, 1])
    >>> round(float(torch.sigmoid(w @ x)), 4), round(float(logistic_attack(x, w, eps=0.1)[1]), 4)
    (0.1192, 0.2689)
    """
    check_tensor(x, "x", ndim=(1, 2), floating=True)
    check_tensor(w, "w", ndim=1, floating=True)
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"x must have w's length {w.shape[0]} in its last dimension, got "
                         f"{_describe(x)}")
    b = check_number(float(b) if isinstance(b, torch.Tensor) else b, "b")
    eps = check_number(eps, "eps", minimum=0)
    if target not in (0, 1) or isinstance(target, bool):
        raise ValueError(f"target must be 0 or 1 (the class to push x towards), got {target!r}")
    direction = 1.0 if target == 1 else -1.0
    w = w.to(dtype=x.dtype, device=x.device)
    x_adv = x.detach() + direction * eps * torch.sign(w)
    p = torch.sigmoid(x_adv @ w + b)
    return x_adv, p


# =============================================================================================
# fooling images (Szegedy et al. 2014, the CS231n recipe)
# =============================================================================================
def fooling_image(model, x: torch.Tensor, target: TargetArg, *, step_size: float = 0.5,
                  max_steps: int = 100) -> Tuple[torch.Tensor, torch.Tensor]:
    """Targeted gradient ascent on the raw class score until the network predicts ``target``.

    The recipe of Szegedy et al. ("Intriguing properties of neural networks", ICLR 2014) as taught
    in CS231n: start from a real image, pick a class, and repeat

    .. math::  g = \\nabla_x\\, s_t(x), \\qquad
               x \\leftarrow \\mathrm{clip}_{[0,1]}\\Big(x + \\eta\\,\\frac{g}{\\lVert g\\rVert_2}\\Big)

    where :math:`s_t` is the **raw score (logit)** of the target class ``t`` -- not its softmax
    probability -- and :math:`\\lVert g\\rVert_2` is the L2 norm of each image's own gradient
    (so every step moves an image by :math:`\\eta` in L2, less where the clip bites).  Before every
    step each image is checked: once ``argmax f(x) == t`` it is fooled and stops changing.  The
    other images of the batch go on, for at most ``max_steps`` steps.  No eps-ball: the attack
    simply stops as soon as it succeeds, which keeps the change small.

    Parameters
    ----------
    model : callable, (N, C, H, W) in [0, 1] -> logits (N, K)
    x : float tensor (N, C, H, W) in [0, 1]
    target : int or (N,) class indices, the class to reach
    step_size : float > 0, :math:`\\eta`, the L2 length of one step in pixel units
    max_steps : int >= 1

    Returns
    -------
    (x_adv, steps) : x_adv (N, C, H, W) in [0, 1]; steps, an int64 tensor (N,) with the number of
    updates each image received (0 if the network already predicted ``target``; ``max_steps``
    for an image that may not have reached it -- check with the model).

    Example
    -------
    >>> x_adv, steps = fooling_image(model, x, 1, step_size=0.5)     # doctest: +SKIP
    """
    check_model(model, module=False)
    _check_images(x)
    step_size = check_number(step_size, "step_size", minimum=0, strict=True)
    check_positive_int(max_steps, "max_steps")
    targets = check_target(target, x.shape[0], x.device)
    x_adv = x.detach().clone()
    steps = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    with frozen(model):
        for _ in range(max_steps):
            x_ = x_adv.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = _logits(model, x_, targets)
                active = logits.detach().argmax(dim=1) != targets
                if not bool(active.any()):
                    break
                score = logits.gather(1, targets[:, None]).sum()
                (grad,) = torch.autograd.grad(score, x_)
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
            stepped = (x_adv + step_size * grad / norm).clamp(0.0, 1.0)
            mask = active.view(-1, *([1] * (x.ndim - 1)))
            x_adv = torch.where(mask, stepped, x_adv)
            steps += active.long()
    return x_adv.detach(), steps


# =============================================================================================
# FGSM and PGD
# =============================================================================================
def fgsm(model, x: torch.Tensor, target: TargetArg, *, eps: float, targeted: bool = False
         ) -> torch.Tensor:
    """Fast gradient sign method: one step of size ``eps`` along the sign of the loss gradient.

    Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015:

    .. math::  x' = \\mathrm{clip}_{[0,1]}\\big(x + \\varepsilon\\,\\mathrm{sign}\\,\\nabla_x L(x, y)\\big)
               \\quad\\text{(untargeted, } y \\text{ the true label)},

    .. math::  x' = \\mathrm{clip}_{[0,1]}\\big(x - \\varepsilon\\,\\mathrm{sign}\\,\\nabla_x L(x, t)\\big)
               \\quad\\text{(targeted, } t \\text{ the goal class)},

    with :math:`L` the cross-entropy of the logits.  The sign step is the best first-order move
    under :math:`\\lVert x' - x\\rVert_\\infty \\le \\varepsilon`: every pixel moves by exactly
    :math:`\\pm\\varepsilon` (0 where the gradient is exactly 0), before the clip to [0, 1].

    Parameters
    ----------
    model : callable, (N, C, H, W) in [0, 1] -> logits (N, K)
    x : float tensor (N, C, H, W) in [0, 1]
    target : int or (N,) class indices (true labels if untargeted, goal classes if targeted)
    eps : float in [0, 1], pixel units
    targeted : bool

    Returns: x_adv, (N, C, H, W) in [0, 1], no autograd graph.

    >>> x_adv = fgsm(model, x, label, eps=2 / 255)      # doctest: +SKIP
    """
    eps, targets = _check_attack(model, x, target, eps)
    x0 = x.detach()
    with frozen(model):
        grad = _loss_gradient(model, x0, targets)
    direction = -1.0 if targeted else 1.0
    return (x0 + direction * eps * grad.sign()).clamp(0.0, 1.0).detach()


def _random_start(x: torch.Tensor, eps: float, generator: Optional[torch.Generator]) -> torch.Tensor:
    """x + U(-eps, eps) noise, drawn from ``generator`` (on its own device), clamped to [0, 1]."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {_describe(generator)}")
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)
    return (x + (u * eps * 2 - eps)).clamp(0.0, 1.0)


def _pgd_loop(model, x: torch.Tensor, targets: torch.Tensor, *, eps: float, alpha: float,
              steps: int, targeted: bool, random_start: bool, generator: Optional[torch.Generator],
              transform=None, samples: int = 1, desc: Optional[str] = None) -> torch.Tensor:
    x0 = x.detach()
    x_adv = _random_start(x0, eps, generator) if random_start else x0.clone()
    direction = -1.0 if targeted else 1.0
    loop = range(steps) if desc is None else _progress(range(steps), desc=desc)
    with frozen(model):
        for _ in loop:
            grad = _loss_gradient(model, x_adv, targets, transform, samples)
            x_adv = x_adv + direction * alpha * grad.sign()
            # projection onto S: the eps-ball around the ORIGINAL x, then [0, 1] (the two boxes
            # intersect, so clamping to one and then the other lands on their intersection)
            x_adv = (x0 + (x_adv - x0).clamp(-eps, eps)).clamp(0.0, 1.0).detach()
    return x_adv


def pgd(model, x: torch.Tensor, target: TargetArg, *, eps: float, alpha: Optional[float] = None,
        steps: int = 10, targeted: bool = False, random_start: bool = True,
        generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Projected gradient descent in the L-infinity ball (Madry et al., ICLR 2018).

    Many small FGSM steps, each followed by a projection back onto the allowed set
    :math:`S = \\{x' : \\lVert x' - x\\rVert_\\infty \\le \\varepsilon,\\; 0 \\le x' \\le 1\\}`:

    .. math::  x^{(0)} = \\mathrm{clip}_{[0,1]}(x + \\delta_0), \\quad
               \\delta_0 \\sim \\mathcal{U}[-\\varepsilon, \\varepsilon]^{d}
               \\quad(\\text{or } x^{(0)} = x \\text{ with } \\texttt{random\\_start=False}),

    .. math::  x^{(k+1)} = \\Pi_S\\big(x^{(k)} \\pm \\alpha\\,\\mathrm{sign}\\,\\nabla_x L(x^{(k)}, y)\\big),
               \\qquad \\Pi_S(z) = \\min\\big(\\max(z,\\, \\max(x - \\varepsilon, 0)),\\, \\min(x + \\varepsilon, 1)\\big),

    with ``+`` for untargeted attacks (climb the loss of the true label) and ``-`` for targeted
    ones (descend the loss of the goal class).  The projection is applied after **every** step;
    ``steps`` steps are always taken (no early stop), as in Madry et al. and Captum.

    Parameters
    ----------
    model : callable, (N, C, H, W) in [0, 1] -> logits (N, K)
    x : float tensor (N, C, H, W) in [0, 1]
    target : int or (N,) class indices (true labels if untargeted, goal classes if targeted)
    eps : float in [0, 1], radius of the ball in pixel units
    alpha : float > 0, step size; default ``2.5 * eps / steps`` (a common choice: the steps can
        cross the ball more than twice)
    steps : int >= 1
    targeted : bool
    random_start : bool, start from a uniform random point of the ball (Madry et al.)
    generator : torch.Generator or None, the source of the random start (None: PyTorch's global
        generator).  ``torch.Generator().manual_seed(0)`` makes the attack repeatable; the
        numbers are drawn on the generator's device, then moved to ``x``'s device.

    Returns: x_adv, (N, C, H, W), inside the ball and [0, 1], no autograd graph.

    >>> x_adv = pgd(model, x, label, eps=4 / 255, steps=20,
    ...             generator=torch.Generator().manual_seed(0))      # doctest: +SKIP
    """
    eps, targets = _check_attack(model, x, target, eps)
    alpha = _pgd_alpha(alpha, eps, steps)
    return _pgd_loop(model, x, targets, eps=eps, alpha=alpha, steps=steps, targeted=targeted,
                     random_start=random_start, generator=generator)


def eot_pgd(model, x: torch.Tensor, target: TargetArg, *, eps: float, alpha: Optional[float] = None,
            steps: int = 10, samples: int = 4, transform: Optional[Callable] = None,
            targeted: bool = False, random_start: bool = True,
            generator: Optional[torch.Generator] = None, progress: bool = True) -> torch.Tensor:
    """PGD with *expectation over transformation* (EOT; Athalye, Engstrom, Ilyas & Kwok, ICML 2018).

    An adversarial image that must survive a camera, a printer or a JPEG encoder should fool the
    network not just as it is, but after any of those distortions :math:`T`.  EOT replaces the
    loss by its average over random distortions,

    .. math::  \\mathbb{E}_{T}\\big[L(f(T(x')), y)\\big] \\approx \\frac{1}{S}\\sum_{s=1}^{S} L(f(T_s(x')), y),

    and runs :func:`pgd` on it (same steps, projection and random start).  ``transform`` must be
    differentiable and random: a callable ``T(x) -> x`` that draws a new distortion per call.  The
    default is :func:`random_distortion` (random blur, down-and-up scaling and noise) with a
    generator seeded from ``generator``.  Costs ``samples`` forward/backward passes per step.

    Parameters as in :func:`pgd`, plus ``samples`` (int >= 1), ``transform`` and ``progress``
    (show a progress bar over the steps).

    >>> x_adv = eot_pgd(model, x, label, eps=8 / 255, steps=10, samples=4)   # doctest: +SKIP
    """
    eps, targets = _check_attack(model, x, target, eps)
    alpha = _pgd_alpha(alpha, eps, steps)
    check_positive_int(samples, "samples")
    if transform is None:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator)) if generator is not None else None
        gen = torch.Generator().manual_seed(seed) if seed is not None else None

        def transform(z):
            return random_distortion(z, generator=gen)
    elif not callable(transform):
        raise TypeError(f"transform must be a callable T(x) -> x or None, got {_describe(transform)}")
    return _pgd_loop(model, x, targets, eps=eps, alpha=alpha, steps=steps, targeted=targeted,
                     random_start=random_start, generator=generator, transform=transform,
                     samples=samples, desc="EOT-PGD" if progress else None)


# =============================================================================================
# measuring
# =============================================================================================
@torch.no_grad()
def predict(model, x: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """The predicted class of every image, ``argmax f(x)``: an int64 tensor (N,) on x's device.

    Runs in eval mode without gradients, ``batch_size`` images at a time; the model's mode is
    restored afterwards.

    >>> predict(model, helpers.load_image("chelsea", size=224))    # doctest: +SKIP
    tensor([285])
    """
    check_model(model, module=False)
    check_tensor(x, "x", ndim=4, floating=True)
    check_positive_int(batch_size, "batch_size")
    with frozen(model):
        return torch.cat([class_scores(model(x[i:i + batch_size])).argmax(dim=1)
                          for i in range(0, x.shape[0], batch_size)])


def attack_success_rate(model, x_adv: torch.Tensor, target: TargetArg, *, targeted: bool = False,
                        batch_size: int = 64) -> float:
    """Fraction of adversarial images on which the attack reached its goal, a float in [0, 1].

    * untargeted (``target`` = the true labels): success when the prediction is **not** the true
      label, :math:`\\arg\\max f(x') \\ne y`;
    * targeted (``target`` = the goal classes): success when the prediction **is** the goal,
      :math:`\\arg\\max f(x') = t`.

    Without ground-truth labels (our photos), pass the model's prediction on the clean images as
    the "true" label: success then means "the attack changed the answer".  Predictions are made
    in eval mode (the model's mode is restored), ``batch_size`` images at a time.

    >>> attack_success_rate(model, x_adv, predict(model, x))       # doctest: +SKIP
    1.0
    """
    check_model(model, module=False)
    check_tensor(x_adv, "x_adv", ndim=4, floating=True)
    targets = check_target(target, x_adv.shape[0], x_adv.device)
    pred = predict(model, x_adv, batch_size=batch_size)
    hits = (pred == targets) if targeted else (pred != targets)
    return float(hits.double().mean())


def perturbation_norms(x: torch.Tensor, x_adv: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Size of each image's perturbation :math:`\\delta = x' - x`: (L-inf, L2), two tensors (N,).

    :math:`\\lVert\\delta\\rVert_\\infty = \\max_i |\\delta_i|` (the largest change of one pixel
    value, what eps bounds) and :math:`\\lVert\\delta\\rVert_2 = \\sqrt{\\sum_i \\delta_i^2}`, both in
    pixel units on [0, 1] (multiply by 255 for grey levels).  The root-mean-square change per
    pixel value is :math:`\\lVert\\delta\\rVert_2 / \\sqrt{d}`.

    >>> perturbation_norms(torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5))
    (tensor([0.5000]), tensor([1.7321]))
    """
    _check_pair(x, x_adv)
    delta = (x_adv.detach() - x.detach()).flatten(1)
    return delta.abs().amax(dim=1), delta.norm(dim=1)


def perturbation_image(x: torch.Tensor, x_adv: torch.Tensor, *, factor: float = 10.0) -> torch.Tensor:
    """Make a perturbation visible: :math:`0.5 + \\text{factor}\\cdot(x' - x)`, clipped to [0, 1].

    Mid grey means "unchanged"; brighter / darker means the attack raised / lowered that colour
    value, amplified ``factor`` times (the "x10" pictures of Szegedy et al.).  Unlike a min-max
    rescale this keeps the scale the same for every image, so two perturbations can be compared.

    >>> perturbation_image(torch.zeros(1, 3, 1, 1), torch.full((1, 3, 1, 1), 0.02)).flatten()
    tensor([0.7000, 0.7000, 0.7000])
    """
    _check_pair(x, x_adv)
    factor = check_number(factor, "factor", minimum=0, strict=True)
    return (0.5 + factor * (x_adv.detach() - x.detach())).clamp(0.0, 1.0)


# =============================================================================================
# the physical world: JPEG, blur, resizing, random distortions
# =============================================================================================
def jpeg(x: torch.Tensor, quality: int = 75) -> torch.Tensor:
    """Encode every image as a JPEG (Pillow, in memory) and decode it again.

    What a web upload or a camera's encoder does to a picture: 8-bit quantisation, 4:2:0 chroma
    subsampling and coarse quantisation of the 8x8 DCT coefficients, controlled by ``quality``
    (1..95; 75 is Pillow's default).  Not differentiable.  Returns (N, 3, H, W) in [0, 1] on x's
    device and dtype.

    >>> jpeg(torch.rand(1, 3, 32, 32), quality=50).shape
    torch.Size([1, 3, 32, 32])
    """
    from PIL import Image

    check_tensor(x, "x", ndim=4, floating=True, channels=3)
    check_number(quality, "quality", minimum=1, maximum=95, integer=True)
    arrays = (x.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    out = []
    for arr in arrays:
        buffer = io.BytesIO()
        Image.fromarray(arr).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        out.append(np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype)


def blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (an out-of-focus camera).

    :func:`helpers.filters.gaussian_blur` (assignment 01) with reflect padding; differentiable.

    >>> blur(torch.rand(1, 3, 32, 32), 1.0).shape
    torch.Size([1, 3, 32, 32])
    """
    return gaussian_blur(x, sigma)


def resize_roundtrip(x: torch.Tensor, factor: float = 0.5) -> torch.Tensor:
    """Shrink every image by ``factor`` (antialiased bilinear), then enlarge it back to its size.

    A thumbnail, a low-resolution camera, or a printout seen from further away: the fine detail
    an adversarial perturbation lives in is averaged away.  Uses
    :func:`helpers.images.resize_image` both ways; differentiable.

    >>> resize_roundtrip(torch.rand(1, 3, 32, 32), 0.5).shape
    torch.Size([1, 3, 32, 32])
    """
    check_tensor(x, "x", ndim=4, floating=True)
    factor = check_number(factor, "factor", minimum=0, maximum=1, strict=True,
                          hint="a shrink factor in (0, 1]")
    h, w = x.shape[-2:]
    small = resize_image(x, (max(1, round(h * factor)), max(1, round(w * factor))))
    return resize_image(small, (h, w))


def random_distortion(x: torch.Tensor, *, generator: Optional[torch.Generator] = None,
                      max_sigma: float = 1.5, min_scale: float = 0.5, noise: float = 4 / 255
                      ) -> torch.Tensor:
    """One random, differentiable distortion per image: the default transformation of :func:`eot_pgd`.

    For every image independently: a Gaussian blur with :math:`\\sigma \\sim \\mathcal{U}[0,`
    ``max_sigma`` :math:`]` (none below 0.1), a shrink-and-enlarge round trip with factor
    :math:`s \\sim \\mathcal{U}[` ``min_scale`` :math:`, 1]`, then Gaussian pixel noise of
    standard deviation ``noise``, clipped to [0, 1].  Gradients flow through all three, which is
    what EOT needs.  The random numbers come from ``generator`` (CPU) or PyTorch's global one.

    >>> random_distortion(torch.rand(2, 3, 32, 32), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([2, 3, 32, 32])
    """
    check_tensor(x, "x", ndim=4, floating=True)
    params = torch.rand(x.shape[0], 2, generator=generator, dtype=torch.float64)
    out = []
    for i in range(x.shape[0]):
        xi = x[i:i + 1]
        sigma = float(params[i, 0]) * max_sigma
        if sigma >= 0.1:
            xi = gaussian_blur(xi, sigma)
        scale = min_scale + float(params[i, 1]) * (1 - min_scale)
        if scale < 0.99:
            xi = resize_roundtrip(xi, scale)
        out.append(xi)
    y = torch.cat(out)
    if noise > 0:
        y = y + noise * torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
    return y.clamp(0.0, 1.0)


# =============================================================================================
# adversarial training (Goodfellow et al. 2015; Madry et al. 2018)
# =============================================================================================
def adversarial_training(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, eps: float,
                         attack: str = "pgd", steps: int = 5, alpha: Optional[float] = None,
                         epochs: int = 30, lr: float = 1e-2, batch_size: int = 64,
                         clean_weight: float = 0.0, seed: int = 0, progress: bool = True,
                         num_threads: Optional[int] = 1) -> List[float]:
    """Train ``model`` on adversarial examples of its own making; return the loss of every epoch.

    Madry et al. (2018) train on the worst case inside the eps-ball,

    .. math::  \\min_\\theta\\; \\mathbb{E}_{(x, y)}\\Big[\\max_{\\lVert\\delta\\rVert_\\infty \\le \\varepsilon} L(f_\\theta(x + \\delta), y)\\Big],

    approximating the inner max with PGD on every mini-batch (``attack="pgd"``, ``steps`` steps,
    random start).  ``attack="fgsm"`` uses one FGSM step from a random start instead, with step
    ``1.25 eps`` (Wong, Rice & Kolter, "Fast is better than free", ICLR 2020), much cheaper.
    ``clean_weight`` mixes in the clean loss, :math:`(1-c)\\,L_{adv} + c\\,L_{clean}`
    (Goodfellow et al. 2015 used c = 0.5).  The training loop is
    :func:`helpers.digits.train_classifier` (Adam with learning rate ``lr``, mini-batch order from
    ``seed``) with this loss per mini-batch; the random starts come from ``seed + 1``, so a run
    repeats exactly on the CPU.  Every submodule's train/eval flag, PyTorch's thread setting and
    the parameters' ``.grad`` are restored at the end (the weights, of course, change).

    Parameters
    ----------
    model : nn.Module with trainable parameters; X : float (N, C, H, W) in [0, 1]; y : int64 (N,)
    eps : float, radius in pixel units; attack : "pgd" or "fgsm"; steps, alpha : for PGD
        (alpha defaults to 2.5 eps / steps)
    epochs, lr, batch_size, clean_weight (in [0, 1]), seed, progress : training settings
    num_threads : CPU threads while training on the CPU (default 1, see
        :func:`helpers.digits.train_classifier`); ``None`` leaves PyTorch's setting alone

    >>> from helpers.digits import DigitsCNN, load_digits
    >>> X, y = load_digits(split="train")
    >>> history = adversarial_training(DigitsCNN(seed=0), X, y, eps=0.1, epochs=1, progress=False)
    """
    check_model(model)
    _check_images(X, "X")
    eps = check_number(eps, "eps", minimum=0, maximum=1, hint=_EPS_HINT)
    check_choice(attack, "attack", ["pgd", "fgsm"])
    alpha = _pgd_alpha(alpha, eps, steps) if attack == "pgd" else 1.25 * eps
    n_steps = steps if attack == "pgd" else 1
    clean_weight = check_number(clean_weight, "clean_weight", minimum=0, maximum=1)
    seed = check_number(seed, "seed", minimum=0, integer=True)
    noise_gen = torch.Generator().manual_seed(seed + 1)

    def adversarial_loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        """The loss of one mini-batch: attack it (eval mode, frozen), then the loss in train mode."""
        x_adv = _pgd_loop(model, xb, yb, eps=eps, alpha=alpha, steps=n_steps, targeted=False,
                          random_start=True, generator=noise_gen)
        loss = F.cross_entropy(model(x_adv), yb)
        if clean_weight > 0:
            loss = (1 - clean_weight) * loss + clean_weight * F.cross_entropy(model(xb), yb)
        return loss

    return train_classifier(model, X, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                            batch_loss=adversarial_loss, progress=progress,
                            num_threads=num_threads)
