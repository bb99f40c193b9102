"""Plotting helpers: image grids, convolution filters, heatmap overlays.

Every function draws with matplotlib and returns the axes it drew on, so a notebook can add
titles or arrows afterwards.  Nothing here calls ``plt.show()`` or writes files: Jupyter shows the
figure at the end of the cell, and a script decides itself what to do with it.  Pass ``axes=``
(or ``ax=``) to draw into a figure you made yourself; then no new figure is created.

The one display scaling used throughout the course is :func:`rescale` (min-max to [0, 1]).
It is what turns filters, saliency maps and adversarial perturbations -- which live on any
scale, often around zero -- into something a screen can show.

Example
-------
>>> import torch
>>> from helpers.plotting import show_images, show_filters
>>> axes = show_images(torch.rand(4, 3, 32, 32), titles=["a", "b", "c", "d"])
>>> axes = show_filters(torch.nn.Conv2d(3, 16, 3).weight)
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_choice, check_positive_int

__all__ = ["rescale", "show_images", "show_filters", "show_heatmap"]

ArrayLike = Union[torch.Tensor, np.ndarray]


# ----------------------------------------------------------------------------------------------
# display scaling
# ----------------------------------------------------------------------------------------------
def rescale(x: ArrayLike, *, per_item: bool = True, eps: float = 1e-8) -> ArrayLike:
    """Min-max scale ``x`` to [0, 1] for display.

    .. math::  y = \\frac{x - \\min x}{\\max x - \\min x}

    With ``per_item=True`` (default) the min and max are taken separately for each item along
    dimension 0 (each image of a batch, each filter of a conv weight), so every item uses the full
    grey range; with ``per_item=False`` one min and max for the whole tensor keep the items
    comparable with each other.  An item with no contrast (``max - min <= eps``, e.g. a constant
    filter) becomes 0.5 everywhere: "no contrast -> mid grey".

    Works on tensors of any shape (and on NumPy arrays).  Returns a new tensor on the same
    device with the same floating dtype (integer / bool inputs give float32), detached from
    autograd; the input is not modified.  NaN or infinite values raise a ``ValueError``.

    >>> rescale(torch.tensor([[-1., 0., 3.], [2., 2., 2.]]))
    tensor([[0.0000, 0.2500, 1.0000],
            [0.5000, 0.5000, 0.5000]])
    """
    if isinstance(x, np.ndarray):
        out = rescale(torch.from_numpy(np.array(x)), per_item=per_item, eps=eps)
        return out.numpy()
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps < 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}")
    t = x.detach()
    out_dtype = t.dtype if t.is_floating_point() else torch.float32
    if t.is_complex():
        raise TypeError(f"x must be a real tensor, got {t.dtype}")
    if t.numel() == 0:
        return t.to(out_dtype).clone()
    # half / bfloat16 lose too much precision in the subtraction: work in float32 or float64
    work = t.to(torch.float64 if t.dtype == torch.float64 else torch.float32)
    if not bool(torch.isfinite(work).all()):
        raise ValueError("x contains NaN or infinite values; cannot rescale it for display")
    flat = work.reshape(work.shape[0], -1) if (per_item and work.ndim >= 1) else work.reshape(1, -1)
    lo = flat.amin(dim=1, keepdim=True)
    hi = flat.amax(dim=1, keepdim=True)
    span = hi - lo
    flat_constant = span <= eps
    y = (flat - lo) / torch.where(flat_constant, torch.ones_like(span), span)
    y = torch.where(flat_constant, torch.full_like(y, 0.5), y).clamp_(0.0, 1.0)
    return y.reshape(t.shape).to(out_dtype)


# ----------------------------------------------------------------------------------------------
# turning whatever the caller has into a list of (H, W) / (H, W, 3) arrays
# ----------------------------------------------------------------------------------------------
def _split_one(x, name: str) -> List[np.ndarray]:
    """One tensor/array -> list of channel-last float arrays (H, W) or (H, W, 3).

    Tensors are channels-first.  A NumPy array whose last dimension is 3 (and whose
    channels-first reading would not fit) is read channels-last, as skimage/PIL produce it.
    """
    channels_last = False
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got a numpy array of dtype {x.dtype}")
        if x.ndim == 3 and x.shape[-1] == 3 and x.shape[0] not in (1, 3):
            channels_last = True
        if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] not in (1, 3):
            channels_last = True
        t = torch.from_numpy(np.array(x, dtype=np.float64))
    elif isinstance(x, torch.Tensor):
        if x.is_complex():
            raise TypeError(f"{name} must be a real tensor, got {x.dtype}")
        t = x.detach().to("cpu", torch.float64)
    else:
        raise TypeError(f"{name} must be a torch.Tensor, a numpy array, or a list of them; got "
                        f"{type(x).__name__}")
    shape = tuple(x.shape)
    if channels_last:
        t = t.movedim(-1, -3)
    if t.ndim == 2:
        items = [t]
    elif t.ndim == 3:
        if t.shape[0] == 3:          # one colour image
            items = [t]
        elif t.shape[0] == 1:        # one grayscale image
            items = [t[0]]
        else:                        # a stack of grayscale images
            items = list(t)
    elif t.ndim == 4:
        if t.shape[1] not in (1, 3):
            hint = " (it looks channels-last: use x.permute(0, 3, 1, 2))" \
                if t.shape[-1] in (1, 3) else ""
            raise ValueError(f"{name} must have 1 or 3 channels in dimension 1, got shape "
                             f"{shape}{hint}")
        items = [img[0] if img.shape[0] == 1 else img for img in t]
    else:
        raise ValueError(f"{name} must be an image (H, W), (C, H, W) or a batch (N, C, H, W) "
                         f"with C = 1 or 3, got a {t.ndim}-D array of shape {shape}")
    out = []
    for item in items:
        arr = item.permute(1, 2, 0).numpy() if item.ndim == 3 else item.numpy()
        out.append(arr)
    return out


def _collect(images, name: str = "images") -> List[np.ndarray]:
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(f"{name} is empty: nothing to show")
        arrays: List[np.ndarray] = []
        for i, item in enumerate(images):
            arrays.extend(_split_one(item, f"{name}[{i}]"))
        return arrays
    arrays = _split_one(images, name)
    if not arrays:
        raise ValueError(f"{name} is empty: nothing to show")
    return arrays


def _prepare(arr: np.ndarray, mode: str, name: str) -> Tuple[np.ndarray, bool]:
    """Bring one channel-last array into [0, 1]; returns (array, was_rescaled)."""
    if arr.size == 0:
        raise ValueError(f"{name} is an empty image of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    tol = 1e-4  # the same slack as _checks.check_unit_range: rounding noise is just clipped
    in_range = arr.min() >= -tol and arr.max() <= 1 + tol
    if mode == "rescale" or (mode == "auto" and not in_range):
        return rescale(torch.from_numpy(arr[None])).numpy()[0], True
    return np.clip(arr, 0.0, 1.0), False


def _as_axes_array(axes, n: int) -> np.ndarray:
    from matplotlib.axes import Axes

    flat = np.empty(1, dtype=object)
    if isinstance(axes, Axes):
        flat[0] = axes
    else:
        try:
            flat = np.asarray(axes, dtype=object).ravel()
        except Exception:
            raise TypeError(f"axes must be a matplotlib Axes or an array/list of them, got "
                            f"{type(axes).__name__}") from None
    for a in flat:
        if not isinstance(a, Axes):
            raise TypeError(f"axes must hold matplotlib Axes, got an element of type "
                            f"{type(a).__name__}")
    if len(flat) < n:
        raise ValueError(f"axes has {len(flat)} Axes but there are {n} images to draw")
    return flat


def _grid(arrays: Sequence[np.ndarray], titles, *, ncols, axes, cmap, figsize, suptitle,
          interpolation, tile: float, mode: str, default_ncols: int) -> np.ndarray:
    import matplotlib.pyplot as plt

    n = len(arrays)
    if titles is not None:
        if isinstance(titles, str):
            titles = [titles]
        titles = list(titles)
        if len(titles) != n:
            raise ValueError(f"titles has {len(titles)} entries but there are {n} images")
    if axes is None:
        if ncols is None:
            ncols = min(n, default_ncols)
        check_positive_int(ncols, "ncols")
        ncols = min(ncols, n)
        nrows = math.ceil(n / ncols)
        if figsize is None:
            aspect = float(np.median([a.shape[0] / a.shape[1] for a in arrays]))
            extra = 0.35 if titles is not None else 0.0
            figsize = (tile * ncols, (tile * aspect + extra) * nrows + (0.4 if suptitle else 0.0))
        fig, grid = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False,
                                 layout="constrained")
        flat = grid.ravel()
    else:
        flat = _as_axes_array(axes, n)
        fig = flat[0].figure
    for i, ax in enumerate(flat):
        if i >= n:
            ax.set_axis_off()
            continue
        arr, was_rescaled = _prepare(arrays[i], mode, f"images[{i}]")
        if arr.ndim == 2:
            ax.imshow(arr, cmap=cmap or "gray", vmin=0.0, vmax=1.0, interpolation=interpolation)
        else:
            ax.imshow(arr, interpolation=interpolation)
        ax.set_xticks([])
        ax.set_yticks([])
        title = None if titles is None else str(titles[i])
        if was_rescaled and mode == "auto":
            title = "(rescaled)" if not title else f"{title} (rescaled)"
        if title:
            ax.set_title(title, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    return flat


def show_images(images, titles: Optional[Sequence[str]] = None, *, ncols: Optional[int] = None,
                axes=None, cmap: Optional[str] = None, figsize=None,
                suptitle: Optional[str] = None, scale: str = "auto",
                interpolation: Optional[str] = None) -> np.ndarray:
    """Show one or more images in a grid and return the axes (a flat NumPy array).

    ``images`` may be

    * a batch tensor ``(N, 3, H, W)`` or ``(N, 1, H, W)``;
    * one image ``(3, H, W)``, ``(1, H, W)`` or ``(H, W)``;
    * a stack of grayscale images ``(N, H, W)`` (any N except 1 and 3, which read as one image:
      use ``(3, 1, H, W)`` for three grayscale images);
    * a NumPy array with the same layouts, or channels-last ``(H, W, 3)`` / ``(N, H, W, 3)``;
    * a list of any of the above (sizes may differ).

    Values: an image whose values lie in [0, 1] is shown as it is (grayscale with black = 0 and
    white = 1, not stretched).  With the default ``scale="auto"`` an image with values outside
    [0, 1] (a perturbation, a feature map) is min-max rescaled on its own with :func:`rescale`
    and its title gets the note "(rescaled)".  ``scale="rescale"`` rescales every image,
    ``scale="clip"`` clips every image to [0, 1].

    Tiles have no ticks; ``titles`` (one string per image) go above the tiles; tiles left over in
    the last row are switched off.  ``cmap`` applies to single-channel images only
    (default "gray").  ``ncols`` defaults to ``min(N, 8)``.  Pass ``axes`` (an Axes or an
    array/list of at least N Axes) to draw into an existing figure: then no figure is created and
    ``ncols`` / ``figsize`` are ignored.  The returned array holds one Axes per tile, ``axes[i]``
    showing image ``i``.

    >>> from helpers.images import load_image
    >>> axes = show_images([load_image("chelsea"), load_image("coffee")], ["cat", "cup"])
    """
    check_choice(scale, "scale", ["auto", "rescale", "clip"])
    arrays = _collect(images, "images")
    return _grid(arrays, titles, ncols=ncols, axes=axes, cmap=cmap, figsize=figsize,
                 suptitle=suptitle, interpolation=interpolation, tile=2.0, mode=scale,
                 default_ncols=8)


def show_filters(weight, *, ncols: Optional[int] = None, per_filter: bool = True,
                 channel: Optional[int] = None, titles: Optional[Sequence[str]] = None,
                 axes=None, figsize=None, cmap: Optional[str] = None,
                 suptitle: Optional[str] = None) -> np.ndarray:
    """Show the filters of a convolution layer, one tile per output channel.

    ``weight`` has shape ``(C_out, C_in, kH, kW)`` (``conv.weight``; an ``nn.Conv2d`` itself is
    accepted too).  What a tile shows:

    * ``C_in == 3``: the filter as a small RGB picture -- the colour pattern it responds to most;
    * ``C_in == 1`` (also depthwise weights ``(C, 1, k, k)``): a grayscale picture;
    * other ``C_in``: input channel ``channel`` if given, otherwise the *average over the input
      channels* (for a gray input, which has the same value in every channel, the filter acts
      like this average times ``C_in``).  ``channel`` also works with ``C_in == 3``.

    Each tile is scaled with :func:`rescale`, per filter (``per_filter=True``: every filter uses
    the full range, good for seeing shapes) or with one min/max for all filters
    (``per_filter=False``: strengths are comparable).  Mid grey means zero only in the global
    view when the weights are balanced around zero.  Pixels are drawn as crisp squares
    (nearest-neighbour), so a 3x3 filter shows nine squares.  Returns the flat array of axes.

    >>> axes = show_filters(torch.nn.Conv2d(3, 8, kernel_size=5).weight, ncols=4)
    """
    if isinstance(weight, torch.nn.Module):
        weight = getattr(weight, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise TypeError("weight: the module has no .weight tensor")
    if isinstance(weight, np.ndarray):
        weight = torch.from_numpy(np.array(weight))
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a 4-D tensor (C_out, C_in, kH, kW), got "
                        f"{type(weight).__name__}")
    if weight.ndim != 4:
        raise ValueError(f"weight must be a 4-D tensor (C_out, C_in, kH, kW), got shape "
                         f"{tuple(weight.shape)}")
    if weight.shape[0] == 0:
        raise ValueError("weight has no filters (C_out == 0)")
    w = weight.detach().to("cpu", torch.float64)
    c_in = w.shape[1]
    if channel is not None:
        if isinstance(channel, bool) or not isinstance(channel, int):
            raise TypeError(f"channel must be an int or None, got {type(channel).__name__}")
        if not 0 <= channel < c_in:
            raise ValueError(f"channel must be in 0..{c_in - 1} (weight has {c_in} input "
                             f"channels), got {channel}")
        tiles = w[:, channel:channel + 1]
    elif c_in in (1, 3):
        tiles = w
    else:
        tiles = w.mean(dim=1, keepdim=True)
    tiles = rescale(tiles, per_item=per_filter)
    return _grid(_collect(tiles, "weight"), titles, ncols=ncols, axes=axes, cmap=cmap,
                 figsize=figsize, suptitle=suptitle, interpolation="nearest", tile=1.0,
                 mode="clip", default_ncols=8)


def show_heatmap(image, heatmap, *, alpha: float = 0.5, cmap: str = "jet", ax=None,
                 title: Optional[str] = None, colorbar: bool = False,
                 vmin: Optional[float] = None, vmax: Optional[float] = None):
    """Overlay a heatmap (saliency map, class activation map, ...) on an image.

    ``image``: ``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1] (outside [0, 1] it is rescaled, as in
    :func:`show_images`).  ``heatmap``: ``(H, W)``, ``(1, H, W)`` or ``(1, 1, h, w)``; a map of
    another size (e.g. 7x7 from the last conv layer) is resized to ``H x W`` with bilinear
    interpolation.  The map is drawn with ``cmap`` at opacity ``alpha`` over the image; colours
    span the map's own min..max unless ``vmin`` / ``vmax`` are given, and ``colorbar=True`` adds a
    bar with the map's values.  Draws into ``ax`` if given (else a new figure) and returns it.

    >>> from helpers.images import load_image
    >>> ax = show_heatmap(load_image("chelsea"), torch.rand(7, 7), title="random map")
    """
    import matplotlib.pyplot as plt

    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    imgs = _collect(image, "image")
    if len(imgs) != 1:
        raise ValueError(f"image must be a single image (1, 3, H, W) or (3, H, W), got "
                         f"{len(imgs)} images")
    img, _ = _prepare(imgs[0], "auto", "image")
    h, w = img.shape[:2]

    if isinstance(heatmap, np.ndarray):
        heatmap = torch.from_numpy(np.array(heatmap, dtype=np.float64))
    if not isinstance(heatmap, torch.Tensor):
        raise TypeError(f"heatmap must be a torch.Tensor or numpy array, got "
                        f"{type(heatmap).__name__}")
    hm = heatmap.detach().to("cpu", torch.float64)
    shape = tuple(hm.shape)
    while hm.ndim > 2 and hm.shape[0] == 1:
        hm = hm[0]
    if hm.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), (1, H, W) or (1, 1, h, w), got shape {shape}")
    if not bool(torch.isfinite(hm).all()):
        raise ValueError("heatmap contains NaN or infinite values")
    if tuple(hm.shape) != (h, w):
        shrink = hm.shape[0] > h or hm.shape[1] > w
        hm = F.interpolate(hm[None, None], size=(h, w), mode="bilinear", align_corners=False,
                           antialias=shrink)[0, 0]

    if ax is None:
        _, ax = plt.subplots(figsize=(4.0, 4.0 * h / w), layout="constrained")
    if img.ndim == 3:
        ax.imshow(img)
    else:
        ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0)
    overlay = ax.imshow(hm.numpy(), cmap=cmap, alpha=alpha, vmin=vmin, vmax=vmax)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(overlay, ax=ax, fraction=0.046, pad=0.04)
    return ax
