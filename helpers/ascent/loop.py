"""The one optimisation loop of feature visualisation: :func:`visualize`."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, List, Optional

import torch
from torch import nn

from .._checks import _describe, check_model, check_number, check_positive_int, model_device
from ..runtime import progress as progress_bar
from ..taps import frozen
from .objectives import Objective, check_objective, reading
from .parameterisations import ImageParam, _PixelImage, pixel_image

__all__ = ["visualize"]


@contextlib.contextmanager
def _seeded(seed: Optional[int], device: torch.device) -> Iterator[None]:
    """Seed torch's random generators inside the block only (the caller's RNG state is kept)."""
    if seed is None:
        yield
        return
    seed = check_positive_int(seed, "seed", minimum=0)
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


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
       after the step, e.g. :func:`~helpers.ascent.blur_and_clip`; ``grad`` is the ascent gradient of step 4 and
       ``step`` counts from 1.

    Args:
        model: any ``nn.Module``; put in eval mode with frozen parameters while the loop runs,
            then restored.  The image lives on the model's device.
        objective: an :class:`Objective` (``class_logit(c) - 1e-3 * image_l2()``, ...).
        param: an :class:`ImageParam` recipe (default ``pixel_image(128)``).
        transforms: a callable on image batches (e.g. :func:`~helpers.ascent.standard_transforms`).
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
    >>> from helpers.ascent import channel
    >>> img, hist = visualize(load_model(), channel("stages.2", 3), param=pixel_image(64),
    ...                       steps=4, progress=False, history=True)
    >>> img.shape, len(hist)
    (torch.Size([1, 3, 64, 64]), 4)
    """
    check_model(model)
    check_objective(objective)
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
    lr = check_number(lr, "lr", minimum=0.0, strict=True)
    device = model_device(model)
    values: List[float] = []
    with _seeded(seed, device), frozen(model), torch.enable_grad(), \
            reading(model, objective) as run:
        live = param.build(device)
        opt = _make_optimizer(optimizer, live.parameters(), lr)
        for step in progress_bar(range(steps), desc=desc or f"visualize {objective.name}"[:60],
                                 disable=None if progress else True):
            opt.zero_grad(set_to_none=True)
            img = live()
            if img.shape[0] == 0:
                raise ValueError("param produced an empty batch")
            x = transforms(img) if transforms is not None else img
            score = objective(run(x, img))
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
