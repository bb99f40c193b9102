"""Activations: what do the intermediate features of a CNN respond to?

Assignment 02 ("What are the intermediate features looking for?") is built on this module.  The
weights of a deep layer are hard to read (assignment 01); its *activations* -- what it computes
for real images -- are not.  The module holds

* **feature maps** -- :func:`show_feature_maps` draws a layer's activation of shape (C, H, W) as C
  grayscale images, and :func:`feature_map_browser` puts a layer/channel picker (ipywidgets) on
  top, with a static figure where widgets cannot run (fast mode, grading, no ipywidgets);
* **receptive fields** -- :func:`receptive_field` computes analytically which input pixels a unit
  of a layer can see (size, jump, start), :func:`layer_specs` reads the kernel/stride/padding
  chain out of a model, and :func:`empirical_receptive_field` measures the same numbers from input
  gradients (:func:`unit_gradient`);
* **maximally activating patches** -- :func:`crop_gallery` cuts a deterministic gallery of random
  crops out of every bundled photo, :func:`record_channel` runs it through the network and keeps
  one channel, :func:`top_k_patches` finds the strongest units and cuts out their receptive fields;
* **last-layer features** -- :func:`extract_features` (e.g. the pooled 1280-d vector before
  EfficientNet's classifier), :func:`pca`, :func:`nearest_neighbors`, :func:`tsne`, and the
  plots :func:`show_neighbors` / :func:`show_embedding`;
* **going further** -- :func:`occlusion_map` / :func:`occlusion_receptive_field`, the empirical
  receptive field of a unit found by occluding small random patches (Zhou et al., "Object
  Detectors Emerge in Deep Scene CNNs", ICLR 2015).

Receptive-field conventions
---------------------------
Along one axis, a chain of layers with kernel :math:`k_l`, stride :math:`s_l`, padding
:math:`p_l` (zeros added *before* the first pixel; only that side matters) and dilation
:math:`d_l` gives

.. math::
    r_l = r_{l-1} + d_l (k_l - 1)\\, J_{l-1}, \\qquad J_l = J_{l-1}\\, s_l, \\qquad
    a_l = a_{l-1} - p_l\\, J_{l-1}, \\qquad r_0 = 1,\\; J_0 = 1,\\; a_0 = 0,

and unit :math:`i` of layer :math:`L` sees the input pixels
:math:`a_L + i J_L, \\dots, a_L + i J_L + r_L - 1` (``size`` :math:`r`, ``jump`` :math:`J`,
``start`` :math:`a`; negative indices are padding).  See Araujo, Norris & Sim, "Computing
Receptive Fields of Convolutional Neural Networks", Distill 2019.

Example
-------
>>> import torch
>>> from torch import nn
>>> from helpers.activations import receptive_field, empirical_receptive_field
>>> vgg_like = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(3)])
>>> receptive_field(vgg_like, "2")                   # three 3x3 convolutions see 7x7 pixels
ReceptiveField(size=7, jump=1, start=-3)
>>> empirical_receptive_field(vgg_like, "2", input_size=32)
ReceptiveField(size=7, jump=1, start=-3)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import _describe, check_choice, check_image_batch, check_positive_int, check_tensor
from .images import list_images, load_image, resize_image
from .plotting import rescale, show_heatmap, show_images
from .runtime import is_fast, is_grading, progress
from .taps import features, layer_names

__all__ = [
    "ReceptiveField",
    "LayerSpec",
    "layer_specs",
    "receptive_field",
    "unit_gradient",
    "empirical_receptive_field",
    "Gallery",
    "crop_gallery",
    "record_activations",
    "record_channel",
    "receptive_field_patch",
    "top_k_patches",
    "extract_features",
    "pca",
    "nearest_neighbors",
    "tsne",
    "occlusion_map",
    "occlusion_receptive_field",
    "show_feature_maps",
    "feature_map_browser",
    "show_neighbors",
    "show_embedding",
]


# ================================================================================================
# receptive fields
# ================================================================================================
class ReceptiveField(NamedTuple):
    """Receptive field of the units of one layer, along one axis, in input pixels.

    ``size``: how many input pixels one unit sees; ``jump``: how far apart (in input pixels) the
    receptive fields of two neighbouring units are (the product of all strides); ``start``: the
    input coordinate of the first pixel seen by unit 0 (negative when padding reaches outside the
    image).  Unit ``i`` sees pixels ``start + i * jump`` ... ``start + i * jump + size - 1``.

    Being a tuple, it unpacks (``size, jump, start = rf``) and compares with plain tuples.

    >>> rf = ReceptiveField(size=7, jump=2, start=-3)
    >>> rf.span(4), rf.center(4)
    ((5, 12), 8.0)
    """

    size: int
    jump: int
    start: int

    def span(self, i: int) -> Tuple[int, int]:
        """Half-open pixel range ``(first, stop)`` seen by unit ``i``: ``range(first, stop)``."""
        first = self.start + i * self.jump
        return first, first + self.size

    def center(self, i: int) -> float:
        """Input coordinate of the centre of unit ``i``'s receptive field."""
        return self.start + i * self.jump + (self.size - 1) / 2


class LayerSpec(NamedTuple):
    """Geometry of one spatial layer along one axis: what :func:`receptive_field` needs.

    ``padding`` is the pair (before, after) of zeros added on this axis; only ``before`` moves
    the receptive field.  ``name`` is the module's name in the model ("" for hand-made specs).
    """

    kernel: int
    stride: int
    padding: Tuple[int, int]
    dilation: int = 1
    name: str = ""


_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_GLOBAL = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten)
_SKIPPED_BRANCHES = ("downsample", "shortcut")   # ResNet-style side branches: not on the long path


def _axis_value(v, axis: int) -> int:
    if isinstance(v, (tuple, list)):
        return int(v[axis])
    return int(v)


def _padding_pair(p, kernel: int, dilation: int, stride: int, axis: int) -> Tuple[int, int]:
    if isinstance(p, str):  # nn.Conv2d(padding="same" / "valid")
        if p == "valid":
            return 0, 0
        total = dilation * (kernel - 1)
        return total // 2, total - total // 2
    v = _axis_value(p, axis)
    return v, v


def _module_spec(module: nn.Module, name: str, axis: int) -> Optional[LayerSpec]:
    """The LayerSpec of a spatial leaf module, or None for modules that keep geometry."""
    if isinstance(module, nn.Conv2d):
        k, s, d = (_axis_value(module.kernel_size, axis), _axis_value(module.stride, axis),
                   _axis_value(module.dilation, axis))
        return LayerSpec(k, s, _padding_pair(module.padding, k, d, s, axis), d, name)
    if isinstance(module, _POOLS):
        k, s = _axis_value(module.kernel_size, axis), _axis_value(module.stride or module.kernel_size, axis)
        d = _axis_value(getattr(module, "dilation", 1), axis)
        p = _axis_value(module.padding, axis)
        return LayerSpec(k, s, (p, p), d, name)
    if isinstance(module, nn.ZeroPad2d):
        left, right, top, bottom = module.padding
        return LayerSpec(1, 1, (top, bottom) if axis == 0 else (left, right), 1, name)
    return None


def layer_specs(model: nn.Module, layer: str, *, axis: int = 0) -> List[LayerSpec]:
    """The chain of spatial layers (convolutions, pools, paddings) from the input up to ``layer``.

    Walks ``model.named_modules()`` in definition order -- the forward order for the course's
    models (EfficientNet-Lite, DigitsCNN, ``nn.Sequential`` stacks, VGG, AlexNet) -- and keeps
    every leaf module up to the last one inside ``layer``.  ``nn.Conv2d``, ``nn.MaxPool2d`` and
    ``nn.AvgPool2d`` become a :class:`LayerSpec`; an ``nn.ZeroPad2d`` (EfficientNet's asymmetric
    TensorFlow "SAME" padding) is merged into the layer that follows it, so EfficientNet's
    stride-2 stem reads ``LayerSpec(kernel=3, stride=2, padding=(0, 1))``.  Batch norm,
    activations and other per-pixel modules do not change the geometry and are left out.
    Skip connections do not enlarge the receptive field (the long path has the larger one);
    ResNet ``downsample`` / ``shortcut`` branches are skipped.  ``axis`` 0 reads rows, 1 columns.

    Raises ``ValueError`` for an unknown ``layer`` and for layers behind global pooling /
    flatten / linear layers (their receptive field is the whole image).

    >>> from helpers.models import load_model
    >>> layer_specs(load_model(), "stem")[0][:3]
    (3, 2, (0, 1))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_describe(model)}")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name (str), got {_describe(layer)}")
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (rows) or 1 (columns), got {axis!r}")
    names = layer_names(model)
    if layer not in names:
        import difflib

        close = difflib.get_close_matches(layer, names, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"layer {layer!r} is not a layer of this {type(model).__name__}.{hint} "
                         f"See helpers.layer_names(model).")
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]
    inside = [i for i, (n, _) in enumerate(leaves) if n == layer or n.startswith(layer + ".")]
    last = inside[-1]
    specs: List[LayerSpec] = []
    pending: Optional[Tuple[int, int]] = None
    for n, m in leaves[:last + 1]:
        if any(part in _SKIPPED_BRANCHES for part in n.split(".")):
            continue
        if isinstance(m, _GLOBAL):
            raise ValueError(f"layer {layer!r} comes after {n!r} ({type(m).__name__}), which mixes "
                             f"all positions: every unit there sees the whole image")
        spec = _module_spec(m, n, axis)
        if spec is None:
            continue
        if isinstance(m, nn.ZeroPad2d):
            pending = spec.padding if pending is None else (pending[0] + spec.padding[0],
                                                            pending[1] + spec.padding[1])
            continue
        if pending is not None:
            spec = spec._replace(padding=(spec.padding[0] + pending[0], spec.padding[1] + pending[1]))
            pending = None
        specs.append(spec)
    if pending is not None:  # the chain ends with a padding module
        specs.append(LayerSpec(1, 1, pending, 1, leaves[last][0]))
    return specs


def _as_spec(item, index: int) -> LayerSpec:
    if isinstance(item, LayerSpec):
        return item
    if isinstance(item, nn.Module):
        spec = _module_spec(item, "", 0)
        if spec is None:
            raise TypeError(f"layers[{index}] is a {type(item).__name__}, which has no kernel/stride/"
                            f"padding; pass Conv2d, MaxPool2d, AvgPool2d or ZeroPad2d modules")
        return spec
    if isinstance(item, (tuple, list)) and len(item) in (3, 4):
        k, s, p = item[0], item[1], item[2]
        d = item[3] if len(item) == 4 else 1
        for v, what in ((k, "kernel"), (s, "stride"), (d, "dilation")):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"layers[{index}]: {what} must be an int >= 1, got {v!r}")
        if isinstance(p, (tuple, list)) and len(p) == 2:
            pair = (p[0], p[1])
        else:
            pair = (p, p)
        for v in pair:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"layers[{index}]: padding must be an int >= 0 or a pair "
                                 f"(before, after) of them, got {p!r}")
        return LayerSpec(int(k), int(s), (int(pair[0]), int(pair[1])), int(d))
    raise TypeError(f"layers[{index}] must be a (kernel, stride, padding) tuple, a LayerSpec or a "
                    f"conv/pool module, got {_describe(item)}")


def receptive_field(layers, layer: Optional[str] = None, *, axis: int = 0) -> ReceptiveField:
    """Receptive field (size, jump, start) of the units after a chain of layers, analytically.

    Two ways to call it:

    * ``receptive_field(specs)`` with a list of ``(kernel, stride, padding)`` tuples (input side
      first; ``padding`` an int for the same number of zeros on both sides or a pair
      ``(before, after)``; an optional 4th entry is the dilation), :class:`LayerSpec` objects or
      conv / pool modules;
    * ``receptive_field(model, "stages.3")``: the chain is read with :func:`layer_specs`.

    The recurrences, starting from one pixel (:math:`r_0 = 1, J_0 = 1, a_0 = 0`):

    .. math::
        r_l = r_{l-1} + d_l (k_l - 1) J_{l-1}, \\quad J_l = J_{l-1} s_l, \\quad
        a_l = a_{l-1} - p^{before}_l J_{l-1}.

    Every quantity is updated with the jump *before* layer :math:`l` (its kernel steps over
    units of the previous layer).  Returns a :class:`ReceptiveField` of ints; unit ``i`` sees
    input pixels ``start + i*jump`` ... ``start + i*jump + size - 1``.

    >>> receptive_field([(3, 1, 1)] * 3)                    # VGG: three 3x3 convs see 7x7
    ReceptiveField(size=7, jump=1, start=-3)
    >>> receptive_field([(11, 4, 2), (3, 2, 0)])             # AlexNet conv1 + max-pool
    ReceptiveField(size=19, jump=8, start=-2)
    """
    if isinstance(layers, nn.Module) and layer is not None:
        specs: Sequence[LayerSpec] = layer_specs(layers, layer, axis=axis)
    elif isinstance(layers, nn.Module):
        raise TypeError("receptive_field(model, layer): layer must name a layer of the model, "
                        "e.g. receptive_field(model, 'stages.3')")
    else:
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a list of (kernel, stride, padding) tuples or a model, "
                            f"got {_describe(layers)}")
        specs = [_as_spec(item, i) for i, item in enumerate(layers)]
    size, jump, start = 1, 1, 0
    for spec in specs:
        size += spec.dilation * (spec.kernel - 1) * jump
        start -= spec.padding[0] * jump
        jump *= spec.stride
    return ReceptiveField(size, jump, start)


# ---------------------------------------------------------------------------------------------
# empirical receptive field from input gradients
# ---------------------------------------------------------------------------------------------
_PIECEWISE_LINEAR = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.PReLU, nn.RReLU, nn.ELU,
                     nn.CELU, nn.SELU, nn.Threshold, nn.Hardswish, nn.Hardsigmoid, nn.Hardshrink,
                     nn.Softshrink, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh)


def _linearizing_hooks(model: nn.Module) -> list:
    """Forward hooks that make activations the identity and max-pools average pools.

    A hook that returns a value replaces the module's output, so the network becomes a chain of
    linear maps with the same geometry: the gradient of a unit is then non-zero on its *whole*
    receptive field (a ReLU6 that is off -- or saturated -- would zero parts of it).
    """
    handles = []

    def identity(module, inputs, output):
        return inputs[0]

    def avg_instead_of_max(module, inputs, output):
        if _axis_value(module.dilation, 0) != 1 or _axis_value(module.dilation, 1) != 1:
            raise ValueError("empirical_receptive_field(linearize=True) cannot replace a dilated "
                             "max-pool; use linearize=False")
        return F.avg_pool2d(inputs[0], module.kernel_size, module.stride, module.padding,
                            ceil_mode=module.ceil_mode)

    for m in model.modules():
        if isinstance(m, _PIECEWISE_LINEAR):
            handles.append(m.register_forward_hook(identity))
        elif isinstance(m, nn.MaxPool2d):
            handles.append(m.register_forward_hook(avg_instead_of_max))
    return handles


def unit_gradient(model: nn.Module, layer: str, x: torch.Tensor,
                  position: Optional[Tuple[int, int]] = None, *, channel: Optional[int] = None,
                  linearize: bool = True) -> torch.Tensor:
    """Absolute input gradient of one unit: where in the image can it be influenced?

    Computes :math:`g = \\sum_c |\\partial u / \\partial x_{c}|` (summed over the input colour
    channels), where :math:`u` is the activation of ``layer`` at spatial ``position`` (row,
    column; default: the centre) -- of one ``channel``, or summed over all channels
    (``channel=None``; every channel of a layer has the same receptive field).  The non-zero
    support of :math:`g` is the receptive field of the unit.

    With ``linearize=True`` (default) every activation function acts as the identity and every
    max-pool as an average pool while the gradient is taken (forward hooks, removed afterwards):
    ReLU6 units that are off or saturated would otherwise cut parts of the field away.  Batch norm
    runs in eval mode (the model is switched to eval and back): in train mode it mixes all
    positions.

    Args:
        model: the network; ``x`` must be a valid input for it, shape (1, C, H, W).
        layer: a name from :func:`helpers.layer_names`.
        position: (row, col) in the layer's output grid; default ``(h // 2, w // 2)``.

    Returns:
        (H, W) float tensor on ``x``'s device, detached.

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3))
    >>> g = unit_gradient(net, "2", torch.rand(1, 1, 9, 9))
    >>> (g > 0).sum().item()                           # two 3x3 convolutions: 5x5 pixels
    25
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {_describe(model)}")
    check_tensor(x, "x", ndim=4, floating=True)
    if x.shape[0] != 1:
        raise ValueError(f"x must hold one image (1, C, H, W), got {_describe(x)}")
    was_training = model.training
    handles = _linearizing_hooks(model) if linearize else []
    try:
        model.eval()
        with torch.enable_grad():
            xg = x.detach().clone().requires_grad_(True)
            act = features(model, xg, [layer])[layer]
            if not isinstance(act, torch.Tensor) or act.ndim != 4:
                raise ValueError(f"layer {layer!r} must give a (1, C, h, w) activation, got "
                                 f"{_describe(act)}")
            h, w = act.shape[-2:]
            i, j = position if position is not None else (h // 2, w // 2)
            if not (0 <= i < h and 0 <= j < w):
                raise ValueError(f"position must lie in the {h}x{w} grid of layer {layer!r}, "
                                 f"got {(i, j)}")
            if channel is None:
                unit = act[0, :, i, j].sum()
            else:
                if not 0 <= channel < act.shape[1]:
                    raise ValueError(f"channel must be in 0..{act.shape[1] - 1}, got {channel}")
                unit = act[0, channel, i, j]
            (grad,) = torch.autograd.grad(unit, xg)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return grad[0].abs().sum(dim=0).detach()


def _support(mask_1d: torch.Tensor) -> Tuple[int, int]:
    nz = torch.nonzero(mask_1d).flatten()
    if nz.numel() == 0:
        return -1, -1
    return int(nz[0]), int(nz[-1])


def empirical_receptive_field(model: nn.Module, layer: str, *, input_size: Optional[int] = None,
                              in_channels: int = 3, axis: int = 0, linearize: bool = True,
                              seed: int = 0, max_input_size: int = 1024) -> ReceptiveField:
    """Measure (size, jump, start) of ``layer`` from input gradients, without any formula.

    1. Feed a random image (seeded) of side ``input_size`` and take :func:`unit_gradient` of the
       central unit (i, j) and of its diagonal neighbour (i + 1, j + 1).
    2. The rows (``axis=0``) or columns (``axis=1``) where a gradient is non-zero are the unit's
       receptive field: ``size`` = their count, ``jump`` = how far the neighbour's field is
       shifted, ``start`` = first row of unit i minus ``i * jump``.

    A field cut off by the image border would be measured too small, so with
    ``input_size=None`` the side starts at 32 and doubles (up to ``max_input_size``) until
    neither field touches the border; an explicit ``input_size`` that is too small raises a
    ``ValueError``.  ``linearize`` as in :func:`unit_gradient` (keep it on: with real ReLU6
    units, parts of the field can have exactly zero gradient).

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
    >>> empirical_receptive_field(net, "2", input_size=32) == receptive_field(net, "2")
    True
    """
    if axis not in (0, 1):
        raise ValueError(f"axis must be 0 (rows) or 1 (columns), got {axis!r}")
    check_positive_int(in_channels, "in_channels")
    if input_size is not None:
        check_positive_int(input_size, "input_size")
    sizes = [input_size] if input_size is not None else []
    if input_size is None:
        s = 32
        while s <= max_input_size:
            sizes.append(s)
            s *= 2
    param = next(model.parameters(), None)
    device = _model_device(model, torch.device("cpu"))
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(seed)
    problem = ""
    for size in sizes:
        x = torch.rand(1, in_channels, size, size, generator=gen).to(device=device, dtype=dtype)
        with torch.no_grad():
            h, w = features(model, x, [layer], detach=True)[layer].shape[-2:]
        if min(h, w) < 2:
            problem = f"the layer's output is only {h}x{w} for a {size}x{size} input"
            continue
        i, j = min(h // 2, h - 2), min(w // 2, w - 2)
        g0 = unit_gradient(model, layer, x, (i, j), linearize=linearize)
        g1 = unit_gradient(model, layer, x, (i + 1, j + 1), linearize=linearize)
        reduce_dim = 1 if axis == 0 else 0
        first0, last0 = _support(g0.amax(dim=reduce_dim) > 0)
        first1, _ = _support(g1.amax(dim=reduce_dim) > 0)
        if first0 < 0 or first1 < 0:
            raise ValueError(f"the gradient of a unit of {layer!r} is zero everywhere; is the layer "
                             f"connected to the input?")
        n = size
        _, last1 = _support(g1.amax(dim=reduce_dim) > 0)
        if min(first0, first1) == 0 or max(last0, last1) == n - 1:
            problem = (f"the receptive field reaches the border of the {size}x{size} input "
                       f"(it could be cut off)")
            continue
        unit = i if axis == 0 else j
        jump = first1 - first0
        return ReceptiveField(last0 - first0 + 1, jump, first0 - unit * jump)
    raise ValueError(f"input_size: {problem}; use a larger input_size" if input_size is not None
                     else f"max_input_size: {problem} even at {sizes[-1]} pixels; raise "
                          f"max_input_size")


# ================================================================================================
# the crop gallery and maximally activating patches
# ================================================================================================
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


def _batches(n: int, batch_size: int, desc: str):
    starts = range(0, n, batch_size)
    return progress(starts, desc=desc, total=len(starts))


def _model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return fallback


def record_activations(model: nn.Module, images: torch.Tensor, layers: Union[str, Sequence[str]], *,
                       batch_size: int = 64) -> Dict[str, torch.Tensor]:
    """Run ``images`` through ``model`` once and keep the activations of ``layers``.

    Batches of ``batch_size`` images are sent to the model's device (the images may stay on the
    CPU), without gradients; the forward pass stops after the last requested layer
    (:func:`helpers.features`).  Recording several layers in one call costs one pass.

    Returns ``{layer: tensor (N, ...)}`` on the CPU, e.g. (N, C, h, w) for a convolutional layer.

    >>> from helpers.models import load_model
    >>> acts = record_activations(load_model(), torch.rand(4, 3, 64, 64), ["stages.2", "flatten"])
    >>> {k: tuple(v.shape) for k, v in acts.items()}
    {'stages.2': (4, 40, 8, 8), 'flatten': (4, 1280)}
    """
    check_tensor(images, "images", ndim=4, floating=True)
    check_positive_int(batch_size, "batch_size")
    wanted = [layers] if isinstance(layers, str) else list(layers)
    device = _model_device(model, images.device)
    chunks: Dict[str, List[torch.Tensor]] = {name: [] for name in wanted}
    with torch.no_grad():
        for s in _batches(images.shape[0], batch_size, "recording activations"):
            acts = features(model, images[s:s + batch_size].to(device), wanted, detach=True)
            for name in wanted:
                chunks[name].append(acts[name].cpu())
    return {name: torch.cat(parts) for name, parts in chunks.items()}


def record_channel(model: nn.Module, images: torch.Tensor, layer: str,
                   channel: Optional[int] = None, *, batch_size: int = 64) -> torch.Tensor:
    """The activation of one layer -- one channel of it -- for every image.

    The lectures' recipe for maximally activating patches starts here: "pick a layer and a
    channel, run many images through the network, record the values of the chosen channel".
    Returns (N, h, w) for one ``channel``, (N, C, h, w) for ``channel=None``, on the CPU
    (see :func:`record_activations`).

    >>> from helpers.models import load_model
    >>> record_channel(load_model(), torch.rand(4, 3, 64, 64), "stages.2", channel=7).shape
    torch.Size([4, 8, 8])
    """
    act = record_activations(model, images, [layer], batch_size=batch_size)[layer]
    if channel is None:
        return act
    if act.ndim < 2 or not 0 <= channel < act.shape[1]:
        raise ValueError(f"channel must be in 0..{act.shape[1] - 1} (layer {layer!r} has "
                         f"{act.shape[1]} channels), got {channel}")
    return act[:, channel].contiguous()


def receptive_field_patch(images: torch.Tensor, n: int, i: int, j: int, rf, *,
                          fill: float = 0.5) -> torch.Tensor:
    """Cut out the receptive field of unit (i, j) of image ``n``: a (C, size, size) tensor.

    Rows ``start + i*jump`` ... ``+ size - 1`` and the same for columns (``rf`` is a
    :class:`ReceptiveField` or a ``(size, jump, start)`` tuple).  Pixels outside the image are
    ``fill``; the default 0.5 (mid grey) is what EfficientNet's zero padding means in pixel
    space, since the network normalises pixels with :math:`(x - 0.5) / 0.5`.
    """
    size, jump, start = (int(v) for v in rf)
    _, c, h, w = images.shape
    top, left = start + i * jump, start + j * jump
    patch = images.new_full((c, size, size), float(fill))
    r0, r1 = max(top, 0), min(top + size, h)
    c0, c1 = max(left, 0), min(left + size, w)
    if r0 < r1 and c0 < c1:
        patch[:, r0 - top:r1 - top, c0 - left:c1 - left] = images[n, :, r0:r1, c0:c1]
    return patch


def top_k_patches(images: torch.Tensor, activations: torch.Tensor, k: int, rf, *,
                  fill: float = 0.5, one_per_image: bool = False, inside_only: bool = False
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` strongest units of one channel over a whole gallery, and what they saw.

    The lectures' "maximally activating patches" (Springenberg et al., 2015; Girshick et al.,
    2014): among *all* images and *all* positions, find the ``k`` largest activations and cut out
    each unit's receptive field (:func:`receptive_field_patch`).

    Args:
        images: (N, C, H, W), the images the activations were computed from.
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
        ``(n, i, j)``, sorted by activation, largest first (ties: smaller flat index first).

    >>> acts = torch.zeros(2, 3, 3); acts[1, 2, 0] = 5.0
    >>> patches, values, where = top_k_patches(torch.rand(2, 3, 12, 12), acts, 1, (4, 4, 0))
    >>> values.tolist(), where.tolist(), tuple(patches.shape)
    ([5.0], [[1, 2, 0]], (1, 3, 4, 4))
    """
    check_tensor(images, "images", ndim=4, floating=True)
    check_tensor(activations, "activations", ndim=3)
    if activations.shape[0] != images.shape[0]:
        raise ValueError(f"activations must have one map per image: images has {images.shape[0]}, "
                         f"activations has shape {tuple(activations.shape)}")
    n, h, w = activations.shape
    acts = activations.detach()
    if inside_only:
        size, jump, start = (int(v) for v in rf)
        H, W = images.shape[-2:]
        rows_ok = [start + i * jump >= 0 and start + i * jump + size <= H for i in range(h)]
        cols_ok = [start + j * jump >= 0 and start + j * jump + size <= W for j in range(w)]
        ok = torch.tensor(rows_ok)[:, None] & torch.tensor(cols_ok)[None, :]
        if not bool(ok.any()):
            raise ValueError(f"inside_only: no unit of this {h}x{w} grid has its {size}-pixel "
                             f"receptive field inside the {H}x{W} images")
        acts = torch.where(ok.to(acts.device), acts, torch.full_like(acts, -math.inf))
        limit_inside = int(ok.sum()) * n
    flat = acts.reshape(n, h * w)
    if one_per_image:
        best, pos = flat.max(dim=1)
        limit = n
        order = torch.sort(best, descending=True, stable=True).indices
        img_idx, flat_pos, values = order, pos[order], best[order]
    else:
        limit = n * h * w
        everything = flat.reshape(-1)
        order = torch.sort(everything, descending=True, stable=True).indices
        img_idx, flat_pos, values = order // (h * w), order % (h * w), everything[order]
    check_positive_int(k, "k")
    if inside_only:
        limit = min(limit, limit_inside)
    if k > limit:
        raise ValueError(f"k must be at most {limit} here, got {k}")
    img_idx, flat_pos, values = img_idx[:k], flat_pos[:k], values[:k]
    rows, cols = flat_pos // w, flat_pos % w
    locations = torch.stack([img_idx, rows, cols], dim=1).to(torch.int64).cpu()
    patches = torch.stack([receptive_field_patch(images, int(a), int(b), int(c), rf, fill=fill)
                           for a, b, c in locations.tolist()])
    return patches, values.clone(), locations


# ================================================================================================
# last-layer features: PCA, nearest neighbours, t-SNE
# ================================================================================================
def extract_features(model: nn.Module, images: torch.Tensor, layer: str = "flatten", *,
                     batch_size: int = 64) -> torch.Tensor:
    """The activation of ``layer`` for every image, flattened to one vector per image: (N, D).

    The default ``"flatten"`` is, for EfficientNet-Lite, the 1280-d globally pooled feature just
    before the classifier (the lectures' "layer immediately before the classifier"), and for
    :class:`helpers.digits.DigitsCNN` the 64-d input of its linear layer.  No gradients; the
    result is on the CPU.

    >>> from helpers.models import load_model
    >>> extract_features(load_model(), torch.rand(2, 3, 96, 96)).shape
    torch.Size([2, 1280])
    """
    act = record_activations(model, images, [layer], batch_size=batch_size)[layer]
    return act.reshape(act.shape[0], -1)


def _check_matrix(X, name: str) -> torch.Tensor:
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    check_tensor(X, name, ndim=2, floating=True)
    return X


def pca(X: torch.Tensor, n_components: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Principal component analysis of the rows of ``X``.

    With the centred data :math:`\\tilde X = X - \\bar x` and its singular value decomposition
    :math:`\\tilde X = U S V^\\top`, the principal components are the first ``n_components``
    rows of :math:`V^\\top` (the eigenvectors of the covariance
    :math:`\\tilde X^\\top \\tilde X / (N - 1)` with the largest eigenvalues), the projections
    are :math:`Z = \\tilde X V_{:, :k}` and the explained variances are :math:`S^2 / (N - 1)`.

    Singular vectors are defined up to sign; here each component is flipped so that its entry
    of largest absolute value is positive (scikit-learn's convention since version 1.5).

    Args:
        X: (N, D) float tensor (or array), N >= 2.
        n_components: k, at most min(N, D).

    Returns:
        ``(Z, components, explained_variance)``: (N, k) projections, (k, D) components with
        orthonormal rows, (k,) variances in decreasing order -- all in ``X``'s dtype.

    >>> Z, comps, var = pca(torch.randn(100, 5), 2)
    >>> Z.shape, comps.shape, var.shape
    (torch.Size([100, 2]), torch.Size([2, 5]), torch.Size([2]))
    """
    X = _check_matrix(X, "X")
    n, d = X.shape
    if n < 2:
        raise ValueError(f"X must have at least 2 rows (samples), got {_describe(X)}")
    check_positive_int(n_components, "n_components")
    if n_components > min(n, d):
        raise ValueError(f"n_components must be at most min(N, D) = {min(n, d)}, got {n_components}")
    work = X.detach().to(torch.float64)
    centred = work - work.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    comps = vh[:n_components]
    biggest = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(n_components), biggest])
    signs[signs == 0] = 1
    comps = comps * signs[:, None]
    Z = centred @ comps.T
    var = s[:n_components] ** 2 / (n - 1)
    return Z.to(X.dtype), comps.to(X.dtype), var.to(X.dtype)


def nearest_neighbors(X: torch.Tensor, queries, k: int, *, metric: str = "euclidean",
                      exclude_self: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` rows of ``X`` closest to each query row, nearest first.

    Distances:

    * ``"euclidean"``: :math:`d(a, b) = \\lVert a - b \\rVert_2`;
    * ``"cosine"``: :math:`d(a, b) = 1 - \\frac{a \\cdot b}{\\lVert a\\rVert \\lVert b\\rVert}`
      (a zero vector has cosine 0 with everything).

    ``queries`` are row *indices* of ``X`` (an int, a list or an int tensor).  With
    ``exclude_self=True`` the query's own row is never among its neighbours (an exact duplicate
    at another index still is, at distance 0).  Ties go to the smaller index.  Computed in
    float64.

    Returns:
        ``(indices, distances)``: int64 (Q, k) and (Q, k) in ``X``'s dtype, distances ascending.

    >>> X = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
    >>> idx, dist = nearest_neighbors(X, [2], k=2)
    >>> idx.tolist(), dist.tolist()
    ([[3, 1]], [[0.5, 2.0]])
    """
    X = _check_matrix(X, "X")
    check_choice(metric, "metric", ["euclidean", "cosine"])
    if isinstance(queries, int) and not isinstance(queries, bool):
        queries = [queries]
    q = torch.as_tensor(queries)
    if q.ndim != 1 or q.is_floating_point() or q.dtype == torch.bool:
        raise ValueError(f"queries must be a 1-D list/tensor of row indices of X, got {_describe(queries)}")
    n = X.shape[0]
    if q.numel() and (int(q.min()) < 0 or int(q.max()) >= n):
        raise ValueError(f"queries must be row indices in 0..{n - 1}, got values in "
                         f"[{int(q.min())}, {int(q.max())}]")
    check_positive_int(k, "k")
    available = n - 1 if exclude_self else n
    if k > available:
        raise ValueError(f"k must be at most {available} (X has {n} rows"
                         f"{', minus the query itself' if exclude_self else ''}), got {k}")
    work = X.detach().to(torch.float64)
    q = q.to(torch.int64).cpu()
    Q = work[q.to(work.device)]
    if metric == "euclidean":
        dist = torch.cdist(Q, work, compute_mode="donot_use_mm_for_euclid_dist")
    else:
        a = Q / Q.norm(dim=1, keepdim=True).clamp_min(1e-300)
        b = work / work.norm(dim=1, keepdim=True).clamp_min(1e-300)
        dist = 1.0 - a @ b.T
    if exclude_self:
        dist[torch.arange(q.numel()), q.to(dist.device)] = float("inf")
    order = torch.sort(dist, dim=1, stable=True).indices[:, :k]
    return order.cpu(), dist.gather(1, order).to(X.dtype).cpu()


def tsne(X: torch.Tensor, *, perplexity: float = 30.0, seed: int = 0,
         pca_components: Optional[int] = 50, num_threads: Optional[int] = 1) -> torch.Tensor:
    """2-D t-SNE embedding of the rows of ``X`` (scikit-learn's ``TSNE``), as an (N, 2) tensor.

    t-SNE (van der Maaten & Hinton, JMLR 2008) places points in 2-D so that each point's
    neighbours in the high-dimensional space stay its neighbours: it matches the distributions
    :math:`p_{j|i} \\propto \\exp(-\\lVert x_i - x_j\\rVert^2 / 2\\sigma_i^2)` (the bandwidths
    set by ``perplexity``, roughly the number of neighbours that count) with Student-t
    similarities in the plane.  Clusters and neighbourhoods are meaningful; distances *between*
    clusters and cluster sizes are not.

    As usual, the data are first reduced to ``pca_components`` dimensions with :func:`pca`
    (``None`` skips that); initialisation is PCA and ``seed`` fixes the rest, so the result is
    deterministic on a given machine.  ``perplexity`` is capped at (N - 1) / 3.

    ``num_threads`` limits scikit-learn's OpenMP / BLAS threads while t-SNE runs (restored
    afterwards; ``None`` leaves them alone).  The default 1 is deliberate: for the few hundred
    points of the course one thread is as fast on an idle machine, and on a busy 2-core machine
    it was measured 4x faster than two (0.65 s against 2.6 s for 240 points; same result).

    >>> tsne(torch.randn(40, 10), perplexity=5).shape
    torch.Size([40, 2])
    """
    from sklearn.manifold import TSNE

    X = _check_matrix(X, "X")
    n = X.shape[0]
    if n < 4:
        raise ValueError(f"X must have at least 4 rows for t-SNE, got {_describe(X)}")
    data = X.detach().to(torch.float64)
    if pca_components is not None and pca_components < min(data.shape):
        data = pca(data, pca_components)[0]
    perplexity = float(min(perplexity, (n - 1) / 3))
    if num_threads is not None:
        check_positive_int(num_threads, "num_threads")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=num_threads):
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                   random_state=seed).fit_transform(data.cpu().numpy())
    return torch.from_numpy(np.ascontiguousarray(emb)).to(torch.float32)


# ================================================================================================
# occlusion: the actual receptive field (Zhou et al., ICLR 2015)
# ================================================================================================
def _unit_value(model, x, layer, channel, i, j) -> torch.Tensor:
    return features(model, x, [layer], detach=True)[layer][:, channel, i, j]


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


def occlusion_map(model: nn.Module, layer: str, channel: int, image: torch.Tensor,
                  position: Optional[Tuple[int, int]] = None, *, patch: int = 11, stride: int = 3,
                  rf: Optional[ReceptiveField] = None, seed: int = 0, batch_size: int = 64,
                  show_progress: bool = True) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Discrepancy map of one unit: how much does occluding each spot change its activation?

    The procedure of Zhou et al. (ICLR 2015), for one image: slide a ``patch`` x ``patch``
    square of random pixels (uniform in [0, 1], seeded) over the image with step ``stride``; for
    every placement record :math:`|a - a_{occluded}|`, the change of the unit's activation
    ``a`` (``channel`` of ``layer`` at ``position`` -- by default where that channel is largest
    in this image).  Each pixel of the map is the mean discrepancy of the placements that cover
    it.  Only placements that overlap the unit's theoretical receptive field ``rf`` (computed with
    :func:`receptive_field` if not given) are tried: elsewhere the unit cannot change.

    Speed: the unit depends only on the pixels of its receptive field, so the occluded copies are
    cut down to a window around it (aligned on the layer's jump, so that the unit computes exactly
    the same value; this is checked, and the whole image is used if the check fails).

    Returns ``(map, position)``: an (H, W) float tensor on the CPU and the unit's (row, col).
    """
    check_image_batch(image, "image")
    if image.shape[0] != 1:
        raise ValueError(f"image must be a single image (1, 3, H, W), got {_describe(image)}")
    check_positive_int(patch, "patch")
    check_positive_int(stride, "stride")
    device = _model_device(model, image.device)
    x = image.to(device)
    with torch.no_grad():
        full = features(model, x, [layer], detach=True)[layer][0]
    if not 0 <= channel < full.shape[0]:
        raise ValueError(f"channel must be in 0..{full.shape[0] - 1}, got {channel}")
    act = full[channel]
    if position is None:
        flat = int(act.argmax())
        position = (flat // act.shape[1], flat % act.shape[1])
    i, j = int(position[0]), int(position[1])
    if not (0 <= i < act.shape[0] and 0 <= j < act.shape[1]):
        raise ValueError(f"position must lie in the {act.shape[0]}x{act.shape[1]} grid, got {position}")
    if rf is None:
        rf = receptive_field(model, layer)
    rf = ReceptiveField(*(int(v) for v in rf))
    H, W = x.shape[-2:]
    base = float(act[i, j])

    # a window around the receptive field, if the unit computes the same value there
    r0, r1, c0, c1 = _rf_window(rf, i, j, H, W)
    wi, wj = i - r0 // rf.jump, j - c0 // rf.jump
    window = x[:, :, r0:r1, c0:c1]
    try:
        with torch.no_grad():
            same = abs(float(_unit_value(model, window, layer, channel, wi, wj)[0]) - base) <= \
                1e-4 * max(1.0, abs(base))
    except (IndexError, RuntimeError, ValueError):
        same = False
    if not same:
        r0, r1, c0, c1, wi, wj, window = 0, H, 0, W, i, j, x
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
    loop = progress(starts, desc="occluding", total=len(starts)) if show_progress else starts
    with torch.no_grad():
        for s in loop:
            chunk = spots[s:s + batch_size]
            batch = window.repeat(len(chunk), 1, 1, 1)
            noise = torch.rand(len(chunk), x.shape[1], patch, patch, generator=gen).to(batch)
            for b, (y, x0) in enumerate(chunk):
                ya, yb = max(y, r0), min(y + patch, r1)          # the part inside the window
                xa, xb = max(x0, c0), min(x0 + patch, c1)
                if ya < yb and xa < xb:
                    batch[b, :, ya - r0:yb - r0, xa - c0:xb - c0] = noise[b, :, ya - y:yb - y, xa - x0:xb - x0]
            diff = (_unit_value(model, batch, layer, channel, wi, wj) - base).abs().double().cpu()
            for b, (y, x0) in enumerate(chunk):
                total[y:y + patch, x0:x0 + patch] += diff[b]
                count[y:y + patch, x0:x0 + patch] += 1
    out = torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))
    return out.to(torch.float32), (i, j)


def occlusion_receptive_field(model: nn.Module, layer: str, channel: int, images: torch.Tensor,
                              positions: Optional[Sequence[Tuple[int, int]]] = None, *,
                              patch: int = 11, stride: int = 3, rf: Optional[ReceptiveField] = None,
                              seed: int = 0, batch_size: int = 64, return_maps: bool = False):
    """The *actual* receptive field of a unit: aligned, averaged occlusion discrepancy maps.

    Zhou et al., "Object Detectors Emerge in Deep Scene CNNs" (ICLR 2015), section 3.2: for each
    image (typically the unit's top-activating ones) compute :func:`occlusion_map` for the unit
    at ``positions[n]`` (default: where the channel peaks in image n), cut the map out at that
    unit's theoretical receptive field (so every map is aligned on its unit -- the paper's
    "calibration"), normalise it to a maximum of 1 and average.  Pixels outside an image are left
    out of its average.

    Returns a (size, size) tensor over the theoretical receptive field (``rf.size``): values near
    1 where occlusion changes the unit most.  Typically the bright region is much smaller than
    the theoretical field.  With ``return_maps=True`` returns ``(average, maps)``, ``maps`` being
    the (N, size, size) aligned and normalised map of every image (zero outside the image).
    """
    check_image_batch(images, "images")
    if positions is not None and len(positions) != images.shape[0]:
        raise ValueError(f"positions must hold one (row, col) per image: {images.shape[0]} images, "
                         f"{len(positions)} positions")
    if rf is None:
        rf = receptive_field(model, layer)
    rf = ReceptiveField(*(int(v) for v in rf))
    acc = torch.zeros(rf.size, rf.size, dtype=torch.float64)
    cnt = torch.zeros(rf.size, rf.size, dtype=torch.float64)
    maps = torch.zeros(images.shape[0], rf.size, rf.size)
    for n in progress(range(images.shape[0]), desc="occlusion maps", total=images.shape[0]):
        dmap, (i, j) = occlusion_map(model, layer, channel, images[n:n + 1],
                                     None if positions is None else tuple(positions[n]),
                                     patch=patch, stride=stride, rf=rf, seed=seed + n,
                                     batch_size=batch_size, show_progress=False)
        if float(dmap.max()) <= 0:
            continue
        dmap = dmap / dmap.max()
        maps[n] = receptive_field_patch(dmap[None, None], 0, i, j, rf, fill=0.0)[0]
        acc += maps[n].double()
        cnt += receptive_field_patch(torch.ones_like(dmap)[None, None], 0, i, j, rf, fill=0.0)[0].double()
    average = torch.where(cnt > 0, acc / cnt.clamp_min(1), torch.zeros_like(acc)).to(torch.float32)
    return (average, maps) if return_maps else average


# ================================================================================================
# pictures
# ================================================================================================
def _single_activation(acts, name: str = "acts") -> torch.Tensor:
    check_tensor(acts, name, ndim=(3, 4))
    if acts.ndim == 4:
        if acts.shape[0] != 1:
            raise ValueError(f"{name} must be the activation of one image, (1, C, H, W) or "
                             f"(C, H, W), got {_describe(acts)}")
        acts = acts[0]
    return acts.detach().to("cpu", torch.float32)


def show_feature_maps(acts: torch.Tensor, *, channels: Optional[Sequence[int]] = None,
                      ncols: int = 16, scale: str = "shared", cmap: str = "gray",
                      highlight: Optional[int] = None, labels: bool = True, axes=None,
                      figsize=None, suptitle: Optional[str] = None, tile: float = 0.8) -> np.ndarray:
    """Show a layer's activation for one image as a grid of grayscale images, one per channel.

    The lectures' picture: "conv5 is 128x13x13: show it as 128 13x13 grayscale images".  ``acts``
    is (1, C, H, W) or (C, H, W) (e.g. ``helpers.features(model, x, "stages.3")["stages.3"]``);
    ``channels`` picks which ones (default: all).

    ``scale="shared"`` (default) maps one range -- 0 to the largest activation shown (or min..max
    when there are negative values) -- to black..white for every tile, so that weak and dead
    channels look dark; ``scale="per_map"`` stretches every map to its own min..max (shapes of
    weak maps become visible, strengths do not).  A constant map is mid grey in that view.
    Each tile is labelled with its channel number; ``highlight`` draws a red frame around one
    channel.  Returns the flat array of axes.

    >>> axes = show_feature_maps(torch.rand(1, 32, 14, 14), ncols=8)
    """
    check_choice(scale, "scale", ["shared", "per_map"])
    a = _single_activation(acts)
    chans = list(range(a.shape[0])) if channels is None else [int(c) for c in channels]
    if not chans:
        raise ValueError("channels must name at least one channel")
    bad = [c for c in chans if not 0 <= c < a.shape[0]]
    if bad:
        raise ValueError(f"channels must be in 0..{a.shape[0] - 1}, got {bad[:5]}")
    maps = a[chans]
    if scale == "per_map":
        shown = rescale(maps, per_item=True)
    else:
        lo = min(0.0, float(maps.min()))
        hi = float(maps.max())
        shown = ((maps - lo) / (hi - lo)).clamp(0, 1) if hi > lo else torch.full_like(maps, 0.5)
    n = len(chans)
    ncols = min(check_positive_int(ncols, "ncols"), n)
    if axes is None and figsize is None:
        nrows = math.ceil(n / ncols)
        aspect = maps.shape[-2] / maps.shape[-1]
        figsize = (tile * ncols, tile * aspect * nrows + (0.45 if suptitle else 0.1))
    flat = show_images(shown.unsqueeze(1), ncols=ncols, axes=axes, cmap=cmap, figsize=figsize,
                       suptitle=suptitle, scale="clip", interpolation="nearest")
    for ax, c in zip(flat, chans):
        for spine in ax.spines.values():
            spine.set_visible(c == highlight)
            spine.set_color("red")
            spine.set_linewidth(2.5)
        if labels:
            ax.text(0.03, 0.97, str(c), transform=ax.transAxes, fontsize=6, va="top", ha="left",
                    color="yellow", bbox=dict(boxstyle="square,pad=0.1", fc="black", alpha=0.5, lw=0))
    return flat


def _widgets_usable() -> bool:
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def feature_map_browser(model: nn.Module, image: torch.Tensor, layers: Sequence[str], *,
                        layer: Optional[str] = None, channel: int = 0, max_channels: int = 64,
                        interactive: Optional[bool] = None):
    """Browse the feature maps of several layers for one image: pick a layer and a channel.

    Left: the chosen channel upsampled and laid over the image (:func:`helpers.show_heatmap`),
    with its size and value range; right: the first ``max_channels`` maps of the chosen layer
    (:func:`show_feature_maps`, shared scale) with the chosen channel framed in red.  The
    activations of all ``layers`` are computed once, so moving the sliders only redraws.

    ``interactive=None`` (default) uses ipywidgets (a layer drop-down and a channel slider) when
    they can work -- ipywidgets installed, running in a Jupyter kernel, not in fast mode
    (``COURSE_FAST=1``) and not under nbgrader -- and otherwise draws one static figure for
    ``layer`` (default: the first) and ``channel``.  ``interactive=True`` / ``False`` forces a
    path.  Returns the widget (display it: make it the cell's last expression) or ``None`` after
    drawing the static figure.
    """
    check_image_batch(image, "image")
    if image.shape[0] != 1:
        raise ValueError(f"image must be a single image (1, 3, H, W), got {_describe(image)}")
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer")
    layer = layers[0] if layer is None else layer
    check_choice(layer, "layer", layers)
    check_positive_int(max_channels, "max_channels")
    with torch.no_grad():
        acts = features(model, image, layers, detach=True)
    acts = {k: v[0].cpu() for k, v in acts.items()}
    picture = image.detach().cpu()

    def draw(layer_name: str, ch: int, note: str = ""):
        import matplotlib.pyplot as plt

        a = acts[layer_name]
        ch = int(min(max(ch, 0), a.shape[0] - 1))
        shown = list(range(min(a.shape[0], max_channels)))
        if ch not in shown:
            shown[-1] = ch
        ncols = 8 if len(shown) <= 64 else 16
        fig = plt.figure(figsize=(14, 6.4), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[1, 1.25], wspace=0.02)
        ax = left.subplots()
        m = a[ch]
        show_heatmap(picture, m, ax=ax, alpha=0.6, cmap="inferno", colorbar=True,
                     title=f"{layer_name}, channel {ch}\n{m.shape[0]}x{m.shape[1]} map, values "
                           f"{float(m.min()):.2f} .. {float(m.max()):.2f}")
        nrows = math.ceil(len(shown) / ncols)
        show_feature_maps(a, channels=shown, highlight=ch, axes=right.subplots(nrows, ncols))
        right.suptitle(f"{layer_name}: {len(shown)} of {a.shape[0]} channels "
                       f"({a.shape[1]}x{a.shape[2]} each, one shared grey scale); red: channel {ch}"
                       + note, fontsize=10)
        return fig

    use_widgets = interactive
    if use_widgets is None:
        use_widgets = _widgets_usable() and not is_fast() and not is_grading()
    if not use_widgets:
        draw(layer, channel, "\n(static view; in Jupyter with COURSE_FAST unset the browser is interactive)")
        return None

    import ipywidgets as widgets

    pick_layer = widgets.Dropdown(options=layers, value=layer, description="layer")
    pick_channel = widgets.IntSlider(value=channel, min=0, max=acts[layer].shape[0] - 1,
                                     description="channel", continuous_update=False)

    def on_layer(change):
        pick_channel.max = acts[change["new"]].shape[0] - 1

    pick_layer.observe(on_layer, names="value")

    def render(layer_name, ch):
        draw(layer_name, ch)

    out = widgets.interactive_output(render, {"layer_name": pick_layer, "ch": pick_channel})
    return widgets.VBox([widgets.HBox([pick_layer, pick_channel]), out])


def show_neighbors(images: torch.Tensor, queries: Sequence[int], neighbors: torch.Tensor, *,
                   labels: Optional[Sequence[Any]] = None, distances: Optional[torch.Tensor] = None,
                   axes=None, row_titles: Optional[Sequence[str]] = None, tile: float = 1.25):
    """One row per query: the query image, then its neighbours in order.

    ``neighbors`` is the (Q, k) index tensor of :func:`nearest_neighbors`.  With ``labels`` (one
    per image: the source photo, the digit class, ...) a neighbour's frame is green when its
    label equals the query's and red otherwise, and the query's label is its title.  Returns the
    (Q, k + 1) array of axes.
    """
    import matplotlib.pyplot as plt

    neighbors = torch.as_tensor(neighbors)
    queries = [int(q) for q in queries]
    if neighbors.ndim != 2 or neighbors.shape[0] != len(queries):
        raise ValueError(f"neighbors must have shape (Q, k) with Q = {len(queries)} queries, got "
                         f"{tuple(neighbors.shape)}")
    q, k = neighbors.shape
    if axes is None:
        _, axes = plt.subplots(q, k + 1, figsize=(tile * (k + 1), tile * 1.12 * q), squeeze=False,
                               layout="constrained")
    axes = np.asarray(axes).reshape(q, k + 1)
    for r, query in enumerate(queries):
        row = [query] + [int(v) for v in neighbors[r]]
        show_images([images[v] for v in row], axes=axes[r], scale="clip")
        for c, (ax, v) in enumerate(zip(axes[r], row)):
            if c == 0:
                title = row_titles[r] if row_titles is not None else \
                    (f"query: {labels[v]}" if labels is not None else f"query {v}")
                ax.set_title(title, fontsize=8, fontweight="bold")
                color, width = "black", 2.5
            else:
                same = labels is not None and labels[v] == labels[query]
                color = ("tab:green" if same else "tab:red") if labels is not None else "gray"
                width = 2.5
                if distances is not None:
                    ax.set_title(f"d = {float(distances[r, c - 1]):.3g}", fontsize=7)
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color(color)
                spine.set_linewidth(width)
    return axes


def show_embedding(Y: torch.Tensor, labels: Sequence[int], *, names: Optional[Sequence[str]] = None,
                   ax=None, title: Optional[str] = None, annotate: bool = False, s: float = 9.0,
                   legend: bool = True):
    """Scatter plot of a 2-D embedding (PCA, t-SNE), one colour per label.

    ``labels`` are ints 0..L-1 (the source photo, the digit class); ``names`` their names for the
    legend.  Up to 10 labels use ``tab10``, up to 20 ``tab20``, more ``tab20`` then ``tab20b``
    with a second marker shape, so 24 photos stay distinguishable.  ``annotate`` writes each
    label's name at the median of its points.  Returns the axes.
    """
    import matplotlib.pyplot as plt

    Y = torch.as_tensor(Y).detach().cpu()
    lab = torch.as_tensor(labels).cpu().to(torch.int64)
    if Y.ndim != 2 or Y.shape[1] != 2 or lab.shape != (Y.shape[0],):
        raise ValueError(f"Y must be (N, 2) and labels (N,), got {tuple(Y.shape)} and {tuple(lab.shape)}")
    n_labels = int(lab.max()) + 1 if lab.numel() else 0
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    if n_labels <= 10:
        colors = [plt.get_cmap("tab10")(c) for c in range(10)]
    else:
        colors = [plt.get_cmap("tab20")(c) for c in range(20)] + \
                 [plt.get_cmap("tab20b")(c) for c in range(0, 20, 4)] * 4
    markers = ["o", "^", "s", "D"]
    for c in range(n_labels):
        sel = lab == c
        if not bool(sel.any()):
            continue
        name = names[c] if names is not None else str(c)
        ax.scatter(Y[sel, 0], Y[sel, 1], s=s, color=colors[c % len(colors)],
                   marker=markers[(c // 20) % len(markers)] if n_labels > 20 else "o", label=name,
                   alpha=0.85, linewidths=0)
        if annotate:
            med = Y[sel].median(dim=0).values
            ax.text(float(med[0]), float(med[1]), name, fontsize=8, fontweight="bold",
                    ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", alpha=0.7, lw=0))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if legend and not annotate:
        ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  ncol=1 if n_labels <= 12 else 2, frameon=False)
    return ax
