"""Receptive fields: which input pixels can a unit of a layer see?

Analytically (:func:`receptive_field`, from the kernel/stride/padding chain that
:func:`layer_specs` reads out of a model) and empirically (:func:`empirical_receptive_field`, from
the non-zero support of input gradients, :func:`unit_gradient`).

Along one axis, a chain of layers with kernel :math:`k_l`, stride :math:`s_l`, padding
:math:`p_l` (zeros added *before* the first pixel; only that side matters) and dilation
:math:`d_l` gives

.. math::
    r_l = r_{l-1} + d_l (k_l - 1)\\, J_{l-1}, \\qquad J_l = J_{l-1}\\, s_l, \\qquad
    a_l = a_{l-1} - p_l\\, J_{l-1}, \\qquad r_0 = 1,\\; J_0 = 1,\\; a_0 = 0,

and unit :math:`i` of layer :math:`L` sees the input pixels
:math:`a_L + i J_L, \\dots, a_L + i J_L + r_L - 1` (``size`` :math:`r`, ``jump`` :math:`J`,
``start`` :math:`a`; negative indices are padding).  Araujo, Norris & Sim, "Computing Receptive
Fields of Convolutional Neural Networks", Distill 2019.

>>> from torch import nn
>>> receptive_field(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3)), layer="1")
ReceptiveField(size=5, jump=1, start=-1)
"""
from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._checks import (_describe, check_choice, check_model, check_number, check_positive_int,
                       check_tensor, model_device)
from ..taps import LayerArg, capture, eval_mode, forward_hooks, frozen, resolve_layer, unit_value

__all__ = ["ReceptiveField", "LayerSpec", "layer_specs", "receptive_field", "unit_gradient",
           "empirical_receptive_field"]


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

    >>> LayerSpec(3, 2, (0, 1)).padding[0]
    0
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


def _padding_pair(p, kernel: int, dilation: int, axis: int) -> Tuple[int, int]:
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
        return LayerSpec(k, s, _padding_pair(module.padding, k, d, axis), d, name)
    if isinstance(module, _POOLS):
        k = _axis_value(module.kernel_size, axis)
        s = _axis_value(module.stride or module.kernel_size, axis)
        d = _axis_value(getattr(module, "dilation", 1), axis)
        p = _axis_value(module.padding, axis)
        return LayerSpec(k, s, (p, p), d, name)
    if isinstance(module, nn.ZeroPad2d):
        left, right, top, bottom = module.padding
        return LayerSpec(1, 1, (top, bottom) if axis == 0 else (left, right), 1, name)
    return None


def _layer_name(model: nn.Module, layer: LayerArg) -> str:
    """The dotted name of ``layer`` (a name or a submodule), checked with taps.resolve_layer."""
    module = resolve_layer(model, layer)
    return layer if isinstance(layer, str) else next(n for n, m in model.named_modules()
                                                     if m is module)


def layer_specs(model: nn.Module, *, layer: LayerArg, axis: int = 0) -> List[LayerSpec]:
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

    Raises ``ValueError`` for an unknown ``layer`` (with "did you mean") and for layers behind
    global pooling / flatten / linear layers (their receptive field is the whole image).

    >>> from helpers.models import load_model
    >>> layer_specs(load_model(), layer="stem")[0][:3]
    (3, 2, (0, 1))
    """
    check_model(model)
    layer = _layer_name(model, layer)
    axis = check_choice(axis, "axis (0: rows, 1: columns)", [0, 1])
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
            spec = spec._replace(padding=(spec.padding[0] + pending[0],
                                          spec.padding[1] + pending[1]))
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
        where = f"layers[{index}]"
        k = check_number(item[0], f"{where}: kernel", minimum=1, integer=True)
        s = check_number(item[1], f"{where}: stride", minimum=1, integer=True)
        d = check_number(item[3], f"{where}: dilation", minimum=1, integer=True) \
            if len(item) == 4 else 1
        p = item[2]
        pair = (p[0], p[1]) if isinstance(p, (tuple, list)) and len(p) == 2 else (p, p)
        before, after = (check_number(v, f"{where}: padding", minimum=0, integer=True,
                                      hint="an int or a pair (before, after)") for v in pair)
        return LayerSpec(k, s, (before, after), d)
    raise TypeError(f"layers[{index}] must be a (kernel, stride, padding) tuple, a LayerSpec or a "
                    f"conv/pool module, got {_describe(item)}")


def receptive_field(layers, *, layer: Optional[LayerArg] = None, axis: int = 0) -> ReceptiveField:
    """Receptive field (size, jump, start) of the units after a chain of layers, analytically.

    Two ways to call it:

    * ``receptive_field(specs)`` with a list of ``(kernel, stride, padding)`` tuples (input side
      first; ``padding`` an int for the same number of zeros on both sides or a pair
      ``(before, after)``; an optional 4th entry is the dilation), :class:`LayerSpec` objects or
      conv / pool modules;
    * ``receptive_field(model, layer="stages.3")``: the chain is read with :func:`layer_specs`.

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
        specs: Sequence[LayerSpec] = layer_specs(layers, layer=layer, axis=axis)
    elif isinstance(layers, nn.Module):
        raise TypeError("receptive_field(model, layer=...): layer must name a layer of the model, "
                        "e.g. receptive_field(model, layer='stages.3')")
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


def _identity(module, inputs, output):
    return inputs[0]


def _avg_instead_of_max(module, inputs, output):
    if _axis_value(module.dilation, 0) != 1 or _axis_value(module.dilation, 1) != 1:
        raise ValueError("linearize=True cannot replace a dilated max-pool; use linearize=False")
    return F.avg_pool2d(inputs[0], module.kernel_size, module.stride, module.padding,
                        ceil_mode=module.ceil_mode)


def _linearizing_hooks(model: nn.Module) -> list:
    """``(module, hook)`` pairs (for :func:`helpers.taps.forward_hooks`) that make activations the
    identity and max-pools average pools.

    A hook that returns a value replaces the module's output, so the network becomes a chain of
    linear maps with the same geometry: the gradient of a unit is then non-zero on its *whole*
    receptive field (a ReLU6 that is off -- or saturated -- would zero parts of it).
    """
    hooks = []
    for m in model.modules():
        if isinstance(m, _PIECEWISE_LINEAR):
            hooks.append((m, _identity))
        elif isinstance(m, nn.MaxPool2d):
            hooks.append((m, _avg_instead_of_max))
    return hooks


def _abs_input_gradient(model: nn.Module, x: torch.Tensor, layer: LayerArg,
                        pick: Callable[[torch.Tensor], torch.Tensor], linearize: bool
                        ) -> torch.Tensor:
    """:math:`\\sum_c |\\partial\\, pick(A) / \\partial x_c|` (H, W) for one image ``x`` (1, C, H, W),
    ``A`` the activation of ``layer``; frozen eval mode, hooks removed, state restored."""
    hooks = _linearizing_hooks(model) if linearize else []
    with frozen(model), forward_hooks(hooks), capture(model, layer) as cap, torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        act = next(iter(cap.run(xg, stop_early=True)[1].values()))
        if not isinstance(act, torch.Tensor) or act.ndim != 4:
            raise ValueError(f"layer must give a (1, C, h, w) activation, got {_describe(act)}")
        (grad,) = torch.autograd.grad(pick(act), xg)
    return grad[0].abs().sum(dim=0).detach()


def unit_gradient(model: nn.Module, x: torch.Tensor, unit, *, layer: LayerArg,
                  linearize: bool = True) -> torch.Tensor:
    """Absolute input gradient of one unit: where in the image can it be influenced?

    Computes :math:`g = \\sum_c |\\partial u / \\partial x_{c}|` (summed over the input colour
    channels), where :math:`u` is the ``unit`` of ``layer``: a neuron ``(c, i, j)`` (channel, row,
    column) or a channel ``c`` (its spatial mean, whose field is the union of its neurons').
    The non-zero support of :math:`g` for a neuron is its receptive field.

    With ``linearize=True`` (default) every activation function acts as the identity and every
    max-pool as an average pool while the gradient is taken (forward hooks, removed afterwards):
    ReLU6 units that are off or saturated would otherwise cut parts of the field away.  The model
    runs in eval mode with frozen parameters (batch norm in train mode would mix all positions);
    the mode of every submodule, ``requires_grad`` and ``.grad`` are restored afterwards.

    Args:
        model: the network; ``x`` must be a valid input for it, shape (1, C, H, W).
        x: one image (1, C, H, W), float.
        unit: ``(c, i, j)`` or ``c`` (:func:`helpers._checks.check_unit`).
        layer: a name from :func:`helpers.layer_names` (or the submodule).

    Returns:
        (H, W) float tensor on ``x``'s device, detached.

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3))
    >>> g = unit_gradient(net, torch.rand(1, 1, 9, 9), (0, 2, 2), layer="2")
    >>> (g > 0).sum().item()                           # two 3x3 convolutions: 5x5 pixels
    25
    """
    check_model(model)
    check_tensor(x, "x", ndim=4, floating=True)
    if x.shape[0] != 1:
        raise ValueError(f"x must hold one image (1, C, H, W), got {_describe(x)}")
    resolve_layer(model, layer)
    return _abs_input_gradient(model, x, layer, lambda act: unit_value(act, unit)[0], linearize)


def _support(mask_1d: torch.Tensor) -> Tuple[int, int]:
    nz = torch.nonzero(mask_1d).flatten()
    if nz.numel() == 0:
        return -1, -1
    return int(nz[0]), int(nz[-1])


def empirical_receptive_field(model: nn.Module, *, layer: LayerArg,
                              input_size: Optional[int] = None, in_channels: int = 3,
                              axis: int = 0, linearize: bool = True, seed: int = 0,
                              max_input_size: int = 1024) -> ReceptiveField:
    """Measure (size, jump, start) of ``layer`` from input gradients, without any formula.

    1. Feed a random image (seeded) of side ``input_size`` and take the input gradient of the
       central position (i, j) of ``layer`` -- summed over all channels, so that a dead channel
       cannot hide the field -- and of its diagonal neighbour (i + 1, j + 1), as in
       :func:`unit_gradient`.
    2. The rows (``axis=0``) or columns (``axis=1``) where a gradient is non-zero are the unit's
       receptive field: ``size`` = their count, ``jump`` = how far the neighbour's field is
       shifted, ``start`` = first row of unit i minus ``i * jump``.

    A field cut off by the image border would be measured too small, so with
    ``input_size=None`` the side starts at 32 and doubles (up to ``max_input_size``) until
    neither field touches the border; an explicit ``input_size`` that is too small raises a
    ``ValueError``.  ``linearize`` as in :func:`unit_gradient` (keep it on: with real ReLU6
    units, parts of the field can have exactly zero gradient).

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
    >>> empirical_receptive_field(net, layer="2", input_size=32) == receptive_field(net, layer="2")
    True
    """
    check_model(model)
    resolve_layer(model, layer)
    axis = check_choice(axis, "axis (0: rows, 1: columns)", [0, 1])
    check_positive_int(in_channels, "in_channels")
    check_positive_int(max_input_size, "max_input_size", minimum=32)
    if input_size is not None:
        sizes = [check_positive_int(input_size, "input_size")]
    else:
        sizes = [32 * 2 ** e for e in range(32) if 32 * 2 ** e <= max_input_size]
    param = next(model.parameters(), None)
    device = model_device(model)
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(seed)
    reduce_dim = 1 if axis == 0 else 0
    problem = ""
    for size in sizes:
        x = torch.rand(1, in_channels, size, size, generator=gen).to(device=device, dtype=dtype)
        with eval_mode(model), torch.no_grad(), capture(model, layer, detach=True) as cap:
            h, w = next(iter(cap.run(x, stop_early=True)[1].values())).shape[-2:]
        if min(h, w) < 2:
            problem = f"the layer's output is only {h}x{w} for a {size}x{size} input"
            continue
        i, j = min(h // 2, h - 2), min(w // 2, w - 2)
        first, last = [], []
        for di in (0, 1):
            g = _abs_input_gradient(model, x, layer, lambda a: a[0, :, i + di, j + di].sum(),
                                    linearize)
            lo, hi = _support(g.amax(dim=reduce_dim) > 0)
            if lo < 0:
                raise ValueError(f"the gradient of a unit of {layer!r} is zero everywhere; is the "
                                 f"layer connected to the input?")
            first.append(lo)
            last.append(hi)
        if min(first) == 0 or max(last) == size - 1:
            problem = (f"the receptive field reaches the border of the {size}x{size} input "
                       f"(it could be cut off)")
            continue
        unit = i if axis == 0 else j
        jump = first[1] - first[0]
        return ReceptiveField(last[0] - first[0] + 1, jump, first[0] - unit * jump)
    raise ValueError(f"input_size: {problem}; use a larger input_size" if input_size is not None
                     else f"max_input_size: {problem} even at {sizes[-1]} pixels; raise "
                          f"max_input_size")
