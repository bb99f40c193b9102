"""DeepDream (Mordvintsev, Olah & Tyka, 2015): amplify what a layer already sees in a photo."""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import _describe, check_image_batch, check_model, check_number, check_positive_int
from ..runtime import progress as progress_bar
from ..taps import LayerArg, frozen, resolve_layer
from ._common import layer_label, layer_output

__all__ = ["deepdream_step", "dream"]


def deepdream_step(model: nn.Module, x: torch.Tensor, *, layer: LayerArg, lr: float,
                   shift: Tuple[int, int] = (0, 0)) -> torch.Tensor:
    """One DeepDream step (Mordvintsev, Olah & Tyka, 2015): amplify what ``layer`` already sees.

    1. jitter: ``xs = torch.roll(x, shifts=shift, dims=(2, 3))`` (``shift = (dy, dx)`` pixels);
    2. forward ``xs`` to ``layer``: activation ``a``;
    3. objective :math:`J = \\tfrac12 \\sum_i a_i^2`, whose gradient with respect to ``a`` is
       ``a`` itself ("set the gradient of the layer equal to its activation"); backward to
       ``g = dJ/dxs``;
    4. undo the jitter: ``g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))``;
    5. L1-normalised ascent step and pixel clipping, per image ``n``:
       :math:`x_n \\leftarrow \\mathrm{clamp}\\big(x_n + \\eta\\, g_n / (\\operatorname{mean}
       \\lvert g_n \\rvert + 10^{-8}),\\ 0,\\ 1\\big)`, the mean over the image's C*H*W entries.

    The normalisation makes every step move a pixel by about ``lr`` on average, whatever the
    layer's scale.

    Args:
        model: the network; eval mode with frozen parameters while it runs, then restored.
        x: images (N, 3, H, W) in [0, 1]; not modified.
        layer: a name from :func:`helpers.layer_names` (or the submodule).
        lr: step size eta >= 0.   shift: the jitter (dy, dx) in pixels.

    Returns:
        a new tensor (N, 3, H, W) in [0, 1], without autograd history.

    >>> from helpers.models import load_model
    >>> y = deepdream_step(load_model(), torch.rand(1, 3, 64, 64), layer="stages.2", lr=0.01,
    ...                    shift=(3, -2))
    >>> y.shape
    torch.Size([1, 3, 64, 64])
    """
    check_model(model)
    check_image_batch(x, "x")
    lr = check_number(lr, "lr", minimum=0.0)
    if (not isinstance(shift, (tuple, list)) or len(shift) != 2
            or any(isinstance(s, bool) or not isinstance(s, int) for s in shift)):
        raise TypeError(f"shift must be a pair of ints (dy, dx), got {_describe(shift)}")
    dy, dx = int(shift[0]), int(shift[1])
    xs = torch.roll(x.detach(), shifts=(dy, dx), dims=(2, 3)).requires_grad_(True)
    with frozen(model), layer_output(model, layer) as activation, torch.enable_grad():
        (g,) = torch.autograd.grad(0.5 * activation(xs).pow(2).sum(), xs)
    g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))
    scale = g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8
    return (x.detach() + lr * g / scale).clamp(0.0, 1.0)


def dream(model: nn.Module, x: torch.Tensor, *, layer: LayerArg, octaves: int = 4,
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
        model: the network (left as it was).
        x: images (N, 3, H, W) in [0, 1]; not modified.   layer: the layer to amplify.
        octaves: number of scales (>= 1).  octave_scale: size ratio between scales (> 1).
        steps: steps per octave.  lr: step size of :func:`deepdream_step`.
        max_jitter: largest random shift in pixels.   seed: random shifts' seed (None: fresh).
        progress: show a progress bar.

    Returns:
        the dreamed images, (N, 3, H, W) in [0, 1].

    >>> from helpers.models import load_model
    >>> dream(load_model(), torch.rand(1, 3, 64, 64), layer="stages.2", octaves=2, steps=1,
    ...       progress=False).shape
    torch.Size([1, 3, 64, 64])
    """
    check_model(model)
    check_image_batch(x, "x")
    resolve_layer(model, layer)
    octaves = check_positive_int(octaves, "octaves")
    steps = check_positive_int(steps, "steps")
    octave_scale = check_number(octave_scale, "octave_scale", minimum=1.0, strict=True)
    max_jitter = check_positive_int(max_jitter, "max_jitter", minimum=0)
    gen = torch.Generator()
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(check_positive_int(seed, "seed", minimum=0))
    h, w = x.shape[-2:]
    sizes = [(max(8, round(h / octave_scale ** k)), max(8, round(w / octave_scale ** k)))
             for k in range(octaves)][::-1]
    base = x.detach()
    detail = None
    for k in progress_bar(range(octaves * steps), desc=f"dreaming {layer_label(layer)}",
                          disable=None if progress else True):
        octave, step = divmod(k, steps)
        if step == 0:                      # a new octave: its shrunk original plus the detail so far
            size = sizes[octave]
            original = F.interpolate(base, size=size, mode="bilinear", align_corners=False,
                                     antialias=True) if size != (h, w) else base
            y = original.clone() if detail is None else (original + F.interpolate(
                detail, size=size, mode="bilinear", align_corners=False)).clamp(0.0, 1.0)
        s = torch.randint(-max_jitter, max_jitter + 1, (2,), generator=gen).tolist() \
            if max_jitter else [0, 0]
        y = deepdream_step(model, y, layer=layer, lr=lr, shift=(int(s[0]), int(s[1])))
        if step == steps - 1:
            detail = y - original
    return y
