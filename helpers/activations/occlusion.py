"""Occlusion: the *actual* receptive field of a unit (Zhou et al., ICLR 2015).

The theoretical receptive field (:func:`helpers.activations.receptive_field`) says which pixels
*can* change a unit; Zhou et al. ("Object Detectors Emerge in Deep Scene CNNs", ICLR 2015,
section 3.2) measured which pixels *do*: slide a small patch of random pixels over an image and
record how much the unit changes -- a *discrepancy map* (:func:`unit_occlusion_map`) -- then align
the maps of several images on their unit and average them (:func:`occlusion_receptive_field`).

Not to be confused with :func:`helpers.saliency.occlusion_map`, which occludes the input of a
*class score* with a grey square (Zeiler & Fergus, 2014) and returns one map per image.

>>> from torch import nn
>>> net = nn.Sequential(nn.Conv2d(3, 1, 3))
>>> dmap, unit = unit_occlusion_map(net, torch.rand(1, 3, 8, 8), (0, 2, 2), layer="0",
...                                 patch=1, stride=1)
>>> unit, tuple(torch.nonzero(dmap).amin(0).tolist()), tuple(torch.nonzero(dmap).amax(0).tolist())
((0, 2, 2), (2, 2), (4, 4))
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn

from .._checks import (_describe, check_image_batch, check_model, check_positive_int, check_unit,
                       model_device)
from ..runtime import progress as _progress
from ..taps import LayerArg, capture, eval_mode
from .patches import receptive_field_patch
from .receptive_fields import ReceptiveField, receptive_field

__all__ = ["unit_occlusion_map", "occlusion_receptive_field"]


def _rf_window(rf: ReceptiveField, i: int, j: int, H: int, W: int) -> Tuple[int, int, int, int]:
    """A crop (r0, r1, c0, c1) of the input that holds unit (i, j)'s whole receptive field.

    The crop starts at a multiple of the jump (or at the image border), so that every layer's
    grid stays aligned with the full image's; it ends with the field (or the image).
    """
    size, jump, start = rf
    top, left = start + i * jump, start + j * jump
    r0 = 0 if top <= 0 else (top // jump) * jump
    c0 = 0 if left <= 0 else (left // jump) * jump
    return r0, min(H, top + size), c0, min(W, left + size)


def unit_occlusion_map(model: nn.Module, x: torch.Tensor, unit, *, layer: LayerArg,
                       patch: int = 11, stride: int = 3, rf: Optional[ReceptiveField] = None,
                       seed: int = 0, batch_size: int = 64, progress: bool = True
                       ) -> Tuple[torch.Tensor, Tuple[int, int, int]]:
    """Discrepancy map of one unit: how much does occluding each spot change its activation?

    The procedure of Zhou et al. (ICLR 2015), for one image ``x`` (1, 3, H, W): slide a
    ``patch`` x ``patch`` square of random pixels (uniform in [0, 1], seeded) over the image with
    step ``stride``; for every placement record :math:`|a - a_{occluded}|`, the change of the
    unit's activation :math:`a`.  Each pixel of the map is the mean discrepancy of the placements
    that cover it.  Only placements that overlap the unit's theoretical receptive field ``rf``
    (computed with :func:`receptive_field` if not given) are tried: elsewhere the unit cannot
    change.

    ``unit`` is a neuron ``(c, i, j)`` of ``layer``, or a channel ``c``: then the neuron of channel
    ``c`` where it is largest in this image (the method needs one neuron -- one receptive field).

    Speed: the unit depends only on the pixels of its receptive field, so the occluded copies are
    cut down to a window around it (aligned on the layer's jump, so that the unit computes exactly
    the same value; this is checked, and the whole image is used if the check fails).  The model
    runs in eval mode without gradients; its state is left as it was.

    Returns ``(map, (c, i, j))``: an (H, W) float tensor on ``x``'s device and the neuron used.
    """
    check_model(model)
    check_image_batch(x, "x")
    if x.shape[0] != 1:
        raise ValueError(f"x must be a single image (1, 3, H, W), got {_describe(x)}")
    check_unit(unit)
    check_positive_int(patch, "patch")
    check_positive_int(stride, "stride")
    check_positive_int(batch_size, "batch_size")
    if rf is None:
        rf = receptive_field(model, layer=layer)
    rf = ReceptiveField(*(int(v) for v in rf))
    xd = x.detach().to(model_device(model, x.device))
    H, W = xd.shape[-2:]
    with eval_mode(model), torch.no_grad(), capture(model, layer, detach=True) as cap:
        def activation(batch: torch.Tensor) -> torch.Tensor:
            return next(iter(cap.run(batch, stop_early=True)[1].values()))

        full = activation(xd)
        c, i, j = check_unit(unit, tuple(full.shape))
        if i is None:
            flat = int(full[0, c].argmax())
            i, j = flat // full.shape[-1], flat % full.shape[-1]
        base = float(full[0, c, i, j])

        # a window around the receptive field, if the unit computes the same value there
        r0, r1, c0, c1 = _rf_window(rf, i, j, H, W)
        wi, wj = i - r0 // rf.jump, j - c0 // rf.jump
        window = xd[:, :, r0:r1, c0:c1]
        try:
            same = abs(float(activation(window)[0, c, wi, wj]) - base) <= 1e-4 * max(1.0, abs(base))
        except (IndexError, RuntimeError, ValueError):
            same = False
        if not same:
            r0, r1, c0, c1, wi, wj, window = 0, H, 0, W, i, j, xd
        top, left = rf.start + i * rf.jump, rf.start + j * rf.jump

        def placements(first: int, limit: int) -> List[int]:
            """Top (left) coordinates of the patches that overlap the field, in image pixels."""
            if limit <= patch:
                return [0]
            lo = max(0, first - patch + 1)
            hi = min(limit - patch, first + rf.size - 1)
            return list(range(lo, max(lo, hi) + 1, stride))

        # placements are chosen in image coordinates, so the window changes nothing but the speed
        spots = [(y, x0) for y in placements(top, H) for x0 in placements(left, W)]
        gen = torch.Generator().manual_seed(seed)
        total = torch.zeros(H, W, dtype=torch.float64)
        count = torch.zeros(H, W, dtype=torch.float64)
        starts = range(0, len(spots), batch_size)
        for s in _progress(starts, desc="occluding", total=len(starts),
                           disable=None if progress else True):
            chunk = spots[s:s + batch_size]
            batch = window.repeat(len(chunk), 1, 1, 1)
            noise = torch.rand(len(chunk), xd.shape[1], patch, patch, generator=gen).to(batch)
            for b, (y, x0) in enumerate(chunk):
                ya, yb = max(y, r0), min(y + patch, r1)          # the part inside the window
                xa, xb = max(x0, c0), min(x0 + patch, c1)
                if ya < yb and xa < xb:
                    batch[b, :, ya - r0:yb - r0, xa - c0:xb - c0] = \
                        noise[b, :, ya - y:yb - y, xa - x0:xb - x0]
            diff = (activation(batch)[:, c, wi, wj] - base).abs().double().cpu()
            for b, (y, x0) in enumerate(chunk):
                total[y:y + patch, x0:x0 + patch] += diff[b]
                count[y:y + patch, x0:x0 + patch] += 1
    out = torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))
    return out.to(device=x.device, dtype=torch.float32), (c, i, j)


def _units_per_image(unit, n: int) -> list:
    """``unit`` for every image: one unit for all, or a sequence of n neurons (one per image)."""
    if isinstance(unit, torch.Tensor):
        unit = unit.tolist()
    if isinstance(unit, (list, tuple)) and unit and all(isinstance(u, (list, tuple)) for u in unit):
        if len(unit) != n:
            raise ValueError(f"unit must be one unit for every image or one (c, i, j) per image: "
                             f"x holds {n} images, unit has {len(unit)} entries")
        for u in unit:
            check_unit(tuple(u))
        return [tuple(u) for u in unit]
    check_unit(unit)
    return [unit] * n


def occlusion_receptive_field(model: nn.Module, x: torch.Tensor, unit, *, layer: LayerArg,
                              patch: int = 11, stride: int = 3, rf: Optional[ReceptiveField] = None,
                              seed: int = 0, batch_size: int = 64, return_maps: bool = False,
                              progress: bool = True):
    """The *actual* receptive field of a unit: aligned, averaged occlusion discrepancy maps.

    Zhou et al., "Object Detectors Emerge in Deep Scene CNNs" (ICLR 2015), section 3.2: for each
    image of ``x`` (N, 3, H, W) -- typically the unit's top-activating ones -- compute
    :func:`unit_occlusion_map`, cut the map out at that unit's theoretical receptive field (so
    every map is aligned on its unit: the paper's "calibration"), normalise it to a maximum of 1
    and average.  Pixels outside an image are left out of its average.  Image ``n`` uses the
    occlusion seed ``seed + n``.

    ``unit``: a channel ``c`` (in each image, the neuron of channel ``c`` where it is largest), a
    neuron ``(c, i, j)`` (the same in every image), or a sequence of N neurons, one per image
    (e.g. the locations found by :func:`top_k_patches`).

    Returns a (size, size) tensor over the theoretical receptive field (``rf.size``), on ``x``'s
    device: values near 1 where occlusion changes the unit most.  Typically the bright region is
    much smaller than the theoretical field.  With ``return_maps=True`` returns ``(average,
    maps)``, ``maps`` being the (N, size, size) aligned and normalised map of every image (zero
    outside the image).

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 1, 3))
    >>> occlusion_receptive_field(net, torch.rand(2, 3, 8, 8), 0, layer="0", patch=1, stride=1).shape
    torch.Size([3, 3])
    """
    check_image_batch(x, "x")
    units = _units_per_image(unit, x.shape[0])
    if rf is None:
        rf = receptive_field(model, layer=layer)
    rf = ReceptiveField(*(int(v) for v in rf))
    acc = torch.zeros(rf.size, rf.size, dtype=torch.float64)
    cnt = torch.zeros(rf.size, rf.size, dtype=torch.float64)
    maps = torch.zeros(x.shape[0], rf.size, rf.size)
    for n in _progress(range(x.shape[0]), desc="occlusion maps", total=x.shape[0],
                       disable=None if progress else True):
        dmap, (_, i, j) = unit_occlusion_map(model, x[n:n + 1], units[n], layer=layer, patch=patch,
                                             stride=stride, rf=rf, seed=seed + n,
                                             batch_size=batch_size, progress=False)
        dmap = dmap.cpu()
        if float(dmap.max()) <= 0:
            continue
        dmap = dmap / dmap.max()
        maps[n] = receptive_field_patch(dmap[None, None], 0, i, j, rf, fill=0.0)[0]
        acc += maps[n].double()
        inside = receptive_field_patch(torch.ones_like(dmap)[None, None], 0, i, j, rf, fill=0.0)
        cnt += inside[0].double()
    average = torch.where(cnt > 0, acc / cnt.clamp_min(1), torch.zeros_like(acc)).to(torch.float32)
    average, maps = average.to(x.device), maps.to(x.device)
    return (average, maps) if return_maps else average
