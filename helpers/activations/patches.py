"""Recording activations over many images, and the maximally activating patches of a channel.

The lectures' recipe (Springenberg et al., 2015; Girshick et al., 2014): "pick a layer and a
channel, run many images through the network, record the values of the chosen channel, and show
the image patches -- the receptive fields -- of the units with the largest values".
:func:`crop_gallery` cuts a deterministic gallery of random crops out of every bundled photo,
:func:`record_activations` / :func:`record_channel` run it through the network in eval mode,
:func:`top_k_patches` finds the strongest units and cuts out their receptive fields
(:func:`receptive_field_patch`); :func:`extract_features` flattens a layer to one vector per image.

>>> acts = torch.zeros(1, 2, 2); acts[0, 1, 0] = 3.0
>>> top_k_patches(torch.rand(1, 3, 8, 8), acts, 1, (4, 4, 0))[2].tolist()
[[0, 1, 0]]
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from .._checks import (check_model, check_number, check_positive_int, check_tensor, check_unit,
                       model_device)
from ..images import list_images, load_image, resize_image
from ..runtime import progress as _progress
from ..taps import LayerArg, capture, eval_mode

__all__ = ["Gallery", "crop_gallery", "record_activations", "record_channel", "extract_features",
           "receptive_field_patch", "top_k_patches"]


@dataclass
class Gallery:
    """Random crops of the bundled photos, with where they came from.

    Attributes:
        images: float tensor (N, 3, size, size) in [0, 1].
        source: int64 tensor (N,), index into ``names`` of each crop's photo.
        names: the photo names (``helpers.list_images()`` by default).
        boxes: int64 tensor (N, 3): (top, left, side) of the crop in its photo, in pixels of the
            photo as :func:`crop_gallery` used it (shorter side at most ``max_side``).
        flipped: bool tensor (N,): mirrored left-right.
    """

    images: torch.Tensor
    source: torch.Tensor
    names: List[str]
    boxes: torch.Tensor
    flipped: torch.Tensor

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labels(self) -> List[str]:
        """The photo name of every crop."""
        return [self.names[int(s)] for s in self.source]


def crop_gallery(n: int = 600, size: int = 128, *, names: Optional[Sequence[str]] = None,
                 seed: int = 0, scale: Tuple[float, float] = (0.25, 0.75), flip: bool = True,
                 max_side: int = 512) -> Gallery:
    """A deterministic gallery of ``n`` random square crops of the bundled photos.

    Crop ``m`` comes from photo ``names[m % len(names)]`` (every photo gets the same share, and
    the first ``len(names)`` crops show each photo once).  Its side is a fraction of the photo's
    shorter side drawn uniformly from ``scale``, its position uniformly at random, it is mirrored
    left-right with probability 1/2 (``flip=True``) and resized to ``size x size`` with
    antialiasing (:func:`helpers.images.resize_image`).  Photos are first shrunk so that their
    shorter side is at most ``max_side`` (large photos such as ``retina`` would otherwise give
    crops of tiny details).  Everything is drawn from ``numpy.random.default_rng(seed)``: the
    same arguments give the same gallery on every machine.

    Returns a :class:`Gallery` (``.images`` (n, 3, size, size), ``.source``, ``.names``, ...).

    >>> g = crop_gallery(48, 64, seed=0)
    >>> g.images.shape, g.labels[:2]
    (torch.Size([48, 3, 64, 64]), ['astronaut', 'brick'])
    """
    check_positive_int(n, "n")
    check_positive_int(size, "size", minimum=8)
    check_positive_int(max_side, "max_side", minimum=8)
    names = list(list_images() if names is None else names)
    if not names:
        raise ValueError("names must hold at least one image name")
    if (not isinstance(scale, (tuple, list)) or len(scale) != 2
            or not 0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"scale must be a pair (low, high) with 0 < low <= high <= 1, got {scale!r}")
    photos = []
    for name in names:
        img = load_image(name)
        if min(img.shape[-2:]) > max_side:
            img = resize_image(img, (round(img.shape[-2] * max_side / min(img.shape[-2:])),
                                     round(img.shape[-1] * max_side / min(img.shape[-2:]))))
        photos.append(img)
    rng = np.random.default_rng(seed)
    out = torch.empty(n, 3, size, size)
    source = torch.empty(n, dtype=torch.int64)
    boxes = torch.empty(n, 3, dtype=torch.int64)
    flipped = torch.zeros(n, dtype=torch.bool)
    for m in range(n):
        k = m % len(names)
        photo = photos[k]
        h, w = photo.shape[-2:]
        side = max(1, int(round(rng.uniform(scale[0], scale[1]) * min(h, w))))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        mirror = bool(rng.random() < 0.5) if flip else False
        crop = photo[:, :, top:top + side, left:left + side]
        crop = resize_image(crop, (size, size))
        if mirror:
            crop = crop.flip(-1)
        out[m] = crop[0]
        source[m], boxes[m], flipped[m] = k, torch.tensor([top, left, side]), mirror
    return Gallery(out, source, names, boxes, flipped)



def record_activations(model: nn.Module, x: torch.Tensor, *,
                       layers: Union[LayerArg, Sequence[LayerArg]], batch_size: int = 64,
                       progress: bool = True) -> Dict[str, torch.Tensor]:
    """Run the images ``x`` through ``model`` once and keep the activations of ``layers``.

    Batches of ``batch_size`` images are sent to the model's device (a large gallery may stay on
    the CPU), without gradients, in eval mode (:func:`helpers.taps.eval_mode`: batch norm uses and
    keeps its running statistics, dropout is off; every submodule gets its own train/eval flag
    back afterwards); the forward pass stops after the last requested layer.  Recording several
    layers in one call costs one pass.

    Args:
        model: any ``nn.Module``.
        x: images (N, C, H, W), float (C = 3 for the ImageNet models, 1 for the digits).
        layers: one name (or submodule) or a list of them.
        batch_size: images per forward pass.
        progress: a progress bar over the batches (off under nbgrader and with COURSE_PROGRESS=0).

    Returns:
        ``{layer name: tensor (N, ...)}`` on ``x``'s device, e.g. (N, C, h, w) for a
        convolutional layer.

    >>> from helpers.models import load_model
    >>> acts = record_activations(load_model(), torch.rand(4, 3, 64, 64), layers=["stages.2", "flatten"])
    >>> {k: tuple(v.shape) for k, v in acts.items()}
    {'stages.2': (4, 40, 8, 8), 'flatten': (4, 1280)}
    """
    check_model(model)
    check_tensor(x, "x", ndim=4, floating=True)
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one image, got shape {tuple(x.shape)}")
    check_positive_int(batch_size, "batch_size")
    device = model_device(model, x.device)
    starts = range(0, x.shape[0], batch_size)
    chunks: Dict[str, List[torch.Tensor]] = {}
    with eval_mode(model), torch.no_grad(), capture(model, layers, detach=True) as cap:
        for s in _progress(starts, desc="recording activations", total=len(starts),
                           disable=None if progress else True):
            for name, a in cap.run(x[s:s + batch_size].to(device), stop_early=True)[1].items():
                chunks.setdefault(name, []).append(a.to(x.device))
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def record_channel(model: nn.Module, x: torch.Tensor, unit, *, layer: LayerArg,
                   batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """The activation of one channel (or one neuron) of ``layer`` for every image.

    The first step of the maximally-activating-patches recipe: "pick a layer and a channel, run
    many images through the network, record the values of the chosen channel".  ``unit`` is a
    channel ``c`` -- its whole feature map, (N, h, w) -- or a neuron ``(c, i, j)`` -- its value,
    (N,).  Eval mode, no gradients, on ``x``'s device (see :func:`record_activations`).

    >>> from helpers.models import load_model
    >>> record_channel(load_model(), torch.rand(4, 3, 64, 64), 7, layer="stages.2").shape
    torch.Size([4, 8, 8])
    """
    check_unit(unit)
    acts = record_activations(model, x, layers=layer, batch_size=batch_size, progress=progress)
    act = next(iter(acts.values()))
    c, i, j = check_unit(unit, tuple(act.shape))
    return (act[:, c] if i is None else act[:, c, i, j]).contiguous()


def extract_features(model: nn.Module, x: torch.Tensor, *, layer: LayerArg = "flatten",
                     batch_size: int = 64, progress: bool = True) -> torch.Tensor:
    """The activation of ``layer`` for every image, flattened to one vector per image: (N, D).

    The default ``"flatten"`` is, for EfficientNet-Lite, the 1280-d globally pooled feature just
    before the classifier (the lectures' "layer immediately before the classifier"), and for
    :class:`helpers.digits.DigitsCNN` the 64-d input of its linear layer.  Eval mode, no
    gradients, on ``x``'s device (:func:`record_activations`).

    >>> from helpers.models import load_model
    >>> extract_features(load_model(), torch.rand(2, 3, 96, 96)).shape
    torch.Size([2, 1280])
    """
    acts = record_activations(model, x, layers=layer, batch_size=batch_size, progress=progress)
    act = next(iter(acts.values()))
    return act.reshape(act.shape[0], -1)


def receptive_field_patch(x: torch.Tensor, n: int, i: int, j: int, rf, *,
                          fill: float = 0.5) -> torch.Tensor:
    """Cut out the receptive field of unit (i, j) of image ``n`` of ``x``: a (C, size, size) tensor.

    Rows ``start + i*jump`` ... ``+ size - 1`` and the same for columns (``rf`` is a
    :class:`ReceptiveField` or a ``(size, jump, start)`` tuple).  Pixels outside the image are
    ``fill``; the default 0.5 (mid grey) is what EfficientNet's zero padding means in pixel
    space, since the network normalises pixels with :math:`(x - 0.5) / 0.5`.

    >>> receptive_field_patch(torch.ones(1, 1, 4, 4), 0, 0, 0, (3, 2, -1), fill=0.0)[0]
    tensor([[0., 0., 0.],
            [0., 1., 1.],
            [0., 1., 1.]])
    """
    check_tensor(x, "x", ndim=4)
    size, jump, start = (int(v) for v in rf)
    _, c, h, w = x.shape
    top, left = start + i * jump, start + j * jump
    patch = x.new_full((c, size, size), float(fill))
    r0, r1 = max(top, 0), min(top + size, h)
    c0, c1 = max(left, 0), min(left + size, w)
    if r0 < r1 and c0 < c1:
        patch[:, r0 - top:r1 - top, c0 - left:c1 - left] = x[n, :, r0:r1, c0:c1]
    return patch


def top_k_patches(x: torch.Tensor, activations: torch.Tensor, k: int, rf, *,
                  fill: float = 0.5, one_per_image: bool = False, inside_only: bool = False
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` strongest units of one channel over a whole gallery, and what they saw.

    The lectures' "maximally activating patches" (Springenberg et al., 2015; Girshick et al.,
    2014): among *all* images and *all* positions, find the ``k`` largest activations and cut out
    each unit's receptive field (:func:`receptive_field_patch`).

    Args:
        x: (N, C, H, W), the images the activations were computed from.
        activations: (N, h, w), one channel (:func:`record_channel`).
        k: how many units (at most N * h * w; with ``one_per_image``, at most N).
        rf: the layer's :class:`ReceptiveField` or ``(size, jump, start)``.
        fill: value of pixels outside the image.
        one_per_image: take only each image's strongest unit (for display: overlapping crops and
            neighbouring units otherwise give many near-identical patches).
        inside_only: consider only units whose receptive field lies entirely inside the image
            (units at the border also respond to the padding, and their patches are mostly
            ``fill``).  Raises ``ValueError`` if no unit qualifies.

    Returns:
        ``(patches, values, locations)``: (k, C, size, size), (k,), and int64 (k, 3) holding
        ``(n, i, j)`` (on the CPU), sorted by activation, largest first (ties: smaller flat index
        first).

    >>> acts = torch.zeros(2, 3, 3); acts[1, 2, 0] = 5.0
    >>> patches, values, where = top_k_patches(torch.rand(2, 3, 12, 12), acts, 1, (4, 4, 0))
    >>> values.tolist(), where.tolist(), tuple(patches.shape)
    ([5.0], [[1, 2, 0]], (1, 3, 4, 4))
    """
    check_tensor(x, "x", ndim=4, floating=True)
    check_tensor(activations, "activations", ndim=3)
    if activations.shape[0] != x.shape[0]:
        raise ValueError(f"activations must have one map per image: x has {x.shape[0]}, "
                         f"activations has shape {tuple(activations.shape)}")
    check_number(fill, "fill")
    n, h, w = activations.shape
    acts = activations.detach()
    limit = n if one_per_image else n * h * w
    if inside_only:
        size, jump, start = (int(v) for v in rf)
        H, W = x.shape[-2:]
        rows_ok = [start + i * jump >= 0 and start + i * jump + size <= H for i in range(h)]
        cols_ok = [start + j * jump >= 0 and start + j * jump + size <= W for j in range(w)]
        ok = torch.tensor(rows_ok)[:, None] & torch.tensor(cols_ok)[None, :]
        if not bool(ok.any()):
            raise ValueError(f"inside_only: no unit of this {h}x{w} grid has its {size}-pixel "
                             f"receptive field inside the {H}x{W} images")
        acts = torch.where(ok.to(acts.device), acts, torch.full_like(acts, -math.inf))
        limit = min(limit, int(ok.sum()) * n)
    check_positive_int(k, "k")
    if k > limit:
        raise ValueError(f"k must be at most {limit} here, got {k}")
    flat = acts.reshape(n, h * w)
    if one_per_image:
        best, pos = flat.max(dim=1)
        order = torch.sort(best, descending=True, stable=True).indices
        img_idx, flat_pos, values = order, pos[order], best[order]
    else:
        everything = flat.reshape(-1)
        order = torch.sort(everything, descending=True, stable=True).indices
        img_idx, flat_pos, values = order // (h * w), order % (h * w), everything[order]
    img_idx, flat_pos, values = img_idx[:k], flat_pos[:k], values[:k]
    locations = torch.stack([img_idx, flat_pos // w, flat_pos % w], dim=1).to(torch.int64).cpu()
    patches = torch.stack([receptive_field_patch(x, a, b, c, rf, fill=fill)
                           for a, b, c in locations.tolist()])
    return patches, values.clone(), locations
