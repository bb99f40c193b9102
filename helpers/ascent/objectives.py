"""Objectives that compose (in the spirit of Lucid/Lucent, Olah et al., 2017).

An objective reads a dictionary of activations -- ``{layer name: tensor, OUTPUT: logits, INPUT:
the image}`` -- and returns one value per image (N,), to be **maximised**.  The keys
:data:`OUTPUT` and :data:`INPUT` are this module's own: the hooks themselves are
:func:`helpers.taps.capture`'s.
"""
from __future__ import annotations

import contextlib
import numbers
from typing import Callable, Dict, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import UnitArg, _describe, check_image_batch, check_model, check_number, check_unit
from ..taps import capture, frozen, unit_value
from ._common import GREY
from .penalties import edge_energy, tv_loss

__all__ = ["Objective", "OUTPUT", "INPUT", "class_logit", "channel", "neuron", "deepdream",
           "diversity", "image_l2", "image_tv", "image_edge_energy", "evaluate"]

#: Key of the model's output (the logits) in the activation dictionary an objective reads.
OUTPUT = "<output>"
#: Key of the image itself (before any random transform) in the activation dictionary.
INPUT = "<input>"

Activations = Dict[str, torch.Tensor]


class Objective:
    """A differentiable score of a batch of images, one value per image, to be **maximised**.

    An objective reads a dictionary of activations -- ``{layer name: tensor, OUTPUT: logits,
    INPUT: the image}`` -- and returns a tensor (N,).  ``layers`` lists the layer names it needs
    (plus :data:`OUTPUT` if it needs the logits); :func:`helpers.ascent.visualize` and
    :func:`evaluate` capture exactly those.  Objectives compose like numbers::

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

    def __init__(self, fn: Callable[[Activations], torch.Tensor], layers: Sequence[str] = (),
                 name: str = "objective"):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {_describe(fn)}")
        self.fn = fn
        self.layers = tuple(dict.fromkeys(layers))
        self.name = name

    def __call__(self, acts: Activations) -> torch.Tensor:
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


def _batch_constant(acts: Activations, value: float) -> torch.Tensor:
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
    return None if batch is None else check_number(batch, "batch", minimum=0, integer=True,
                                                   hint="an image index, or None for every image")


def _suffix(batch: Optional[int]) -> str:
    return "" if batch is None else f", batch={batch}"


def _layer_name(layer) -> str:
    if not isinstance(layer, str) or not layer:
        raise TypeError(f"layer must be a layer name (str, see helpers.layer_names(model)), got "
                        f"{_describe(layer)}")
    return layer


def _map(acts: Activations, layer: str) -> torch.Tensor:
    """The activation of ``layer`` as (N, C, h, w); a flat (N, C) one as (N, C, 1, 1)."""
    a = acts[layer]
    return a[:, :, None, None] if a.ndim == 2 else a


def class_logit(target: int, *, batch: Optional[int] = None) -> Objective:
    """The raw class score ``S_target`` = logit ``target`` of the model's output (not the softmax).

    ``batch`` restricts it to one image of the batch (the others get 0), to optimise several
    images for different classes in one run.

    >>> class_logit(130, batch=1)
    class_logit(130, batch=1)
    """
    target = check_number(target, "target", minimum=0, integer=True, hint="a class index")
    batch = _check_batch(batch)

    def fn(acts):
        logits = acts[OUTPUT]
        if logits.ndim != 2 or target >= logits.shape[1]:
            raise ValueError(f"target {target} does not exist: the model's output has shape "
                             f"{tuple(logits.shape)}")
        return logits[:, target] * _batch_mask(logits.shape[0], batch, logits)

    return Objective(fn, (OUTPUT,), f"class_logit({target}{_suffix(batch)})")


def channel(layer: str, c: int, *, batch: Optional[int] = None) -> Objective:
    """The unit ``c`` of ``layer``: the mean activation of channel ``c`` over all positions.

    .. math::  \\frac{1}{h w} \\sum_{i,j} a_{c,i,j}

    (:func:`helpers.taps.unit_value` with ``unit = c``).  For a convolutional activation
    (N, C, h, w); a flat (N, C) activation is read as is.  ``batch``: see :func:`class_logit`.

    >>> channel("stages.3", 7)
    channel('stages.3', 7)
    """
    layer = _layer_name(layer)
    c = check_number(c, "c", minimum=0, integer=True,
                     hint="a channel index; one neuron is neuron(layer, (c, i, j))")
    batch = _check_batch(batch)

    def fn(acts):
        v = unit_value(_map(acts, layer), c, name=f"channel({layer!r}, c)")
        return v * _batch_mask(v.shape[0], batch, v)

    return Objective(fn, (layer,), f"channel({layer!r}, {c}{_suffix(batch)})")


def neuron(layer: str, unit: UnitArg, *, batch: Optional[int] = None) -> Objective:
    """One neuron of ``layer``: the activation ``a[c, i, j]`` (:func:`helpers.taps.unit_value`).

    ``unit`` is ``(c, i, j)`` -- channel, row, column, the course's spelling of a neuron -- or a
    channel ``c`` alone, which here means the neuron at the *centre* ``(h // 2, w // 2)`` of
    that channel's map: the position follows the size of the image the network sees, so the
    objective survives random crops and rescaling (a whole channel is :func:`channel`).
    ``batch``: see :func:`class_logit`.

    >>> neuron("stages.3", (5, 0, 1)), neuron("stages.3", 5)
    (neuron('stages.3', (5, 0, 1)), neuron('stages.3', 5))
    """
    layer = _layer_name(layer)
    c, i, j = check_unit(unit)
    batch = _check_batch(batch)

    def fn(acts):
        a = acts[layer]
        if a.ndim != 4:
            raise ValueError(f"neuron needs a convolutional activation (N, C, h, w); layer "
                             f"{layer!r} gives shape {tuple(a.shape)}: use channel() instead")
        where = (c, a.shape[2] // 2, a.shape[3] // 2) if i is None else (c, i, j)
        v = unit_value(a, where, name=f"neuron({layer!r}, unit)")
        return v * _batch_mask(v.shape[0], batch, v)

    where = c if i is None else (c, i, j)
    return Objective(fn, (layer,), f"neuron({layer!r}, {where!r}{_suffix(batch)})")


def deepdream(layer: str) -> Objective:
    """DeepDream's objective: :math:`\\tfrac12 \\sum_i a_i^2` over every entry of ``layer``'s
    activation of one image; its gradient with respect to the activation is the activation.

    >>> deepdream("stages.2").layers
    ('stages.2',)
    """
    layer = _layer_name(layer)
    return Objective(lambda acts: 0.5 * acts[layer].pow(2).flatten(1).sum(dim=1), (layer,),
                     f"deepdream({layer!r})")


def diversity(layer: str) -> Objective:
    """Diversity term for multifaceted visualisation (Olah et al., 2017; Nguyen et al., 2016).

    For every image ``n`` of the batch, the Gram matrix of its activation at ``layer``,
    :math:`G_n = A_n A_n^\\top` with :math:`A_n` the (C, h w) matrix of channel responses, is
    flattened and normalised to unit length; the objective of image ``n`` is minus its mean cosine
    similarity with the other images' Gram matrices:

    .. math::  D_n = -\\frac{1}{N - 1} \\sum_{m \\neq n} \\langle \\hat G_n, \\hat G_m \\rangle

    Maximising it pushes the images of a batch towards *different styles* of activating the same
    unit.  A batch of one image gets 0.

    >>> diversity("stages.3")({"stages.3": torch.rand(1, 4, 3, 3)})
    tensor([0.])
    """
    layer = _layer_name(layer)

    def fn(acts):
        a = acts[layer]
        n = a.shape[0]
        if n < 2:
            return a.new_zeros(n)
        flat = a.flatten(2)                                   # (N, C, hw)
        gram = F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)   # (N, C*C)
        sim = gram @ gram.T                                   # (N, N)
        return -(sim.sum(dim=1) - sim.diagonal()) / (n - 1)

    return Objective(fn, (layer,), f"diversity({layer!r})")


def image_l2(center: float = GREY) -> Objective:
    """L2 penalty of the image, :math:`\\lVert x - \\text{center} \\rVert^2` per image (subtract it).

    >>> image_l2()({INPUT: torch.ones(2, 3, 4, 4)})
    tensor([12., 12.])
    """
    center = check_number(center, "center")
    return Objective(lambda acts: (acts[INPUT] - center).pow(2).flatten(1).sum(dim=1), (INPUT,),
                     "image_l2()" if center == GREY else f"image_l2({center:g})")


def image_tv(beta: float = 2.0) -> Objective:
    """Total-variation penalty :func:`~helpers.ascent.tv_loss` of the image (subtract it).

    >>> image_tv()({INPUT: torch.zeros(1, 3, 8, 8)})
    tensor([0.])
    """
    beta = check_number(beta, "beta", minimum=0.0, strict=True)
    return Objective(lambda acts: tv_loss(acts[INPUT], beta), (INPUT,),
                     "image_tv()" if beta == 2.0 else f"image_tv({beta:g})")


def image_edge_energy() -> Objective:
    """Multi-scale edge energy :func:`~helpers.ascent.edge_energy` of the image (subtract it).

    >>> image_edge_energy().layers
    ('<input>',)
    """
    return Objective(lambda acts: edge_energy(acts[INPUT]), (INPUT,), "image_edge_energy()")


def check_objective(objective) -> Objective:
    if not isinstance(objective, Objective):
        raise TypeError(f"objective must be an Objective (class_logit, channel, neuron, ...), got "
                        f"{_describe(objective)}")
    return objective


@contextlib.contextmanager
def reading(model: nn.Module, objective: Objective
            ) -> Iterator[Callable[[torch.Tensor, torch.Tensor], Activations]]:
    """Hooks on the layers ``objective`` reads, for the block; yields ``run(x, image) -> acts``.

    ``run`` feeds ``x`` (what the network sees, e.g. a randomly transformed image) to the model
    and returns ``{layer: activation, OUTPUT: logits (if the objective reads them), INPUT:
    image}``; without the logits the forward pass stops after the last layer needed, and an
    objective of the image alone does not run the model at all.
    """
    layers = [n for n in objective.layers if n not in (OUTPUT, INPUT)]
    need_output = OUTPUT in objective.layers
    with (capture(model, layers) if layers else contextlib.nullcontext()) as cap:
        def run(x: torch.Tensor, image: torch.Tensor) -> Activations:
            if cap is not None:
                out, acts = cap.run(x, stop_early=not need_output)
            else:
                out, acts = (model(x) if need_output else None), {}
            if need_output:
                acts[OUTPUT] = out
            acts[INPUT] = image
            return acts

        yield run


def evaluate(model: nn.Module, x: torch.Tensor, objective: Objective) -> torch.Tensor:
    """The value of ``objective`` on the images ``x`` (N, 3, H, W): a detached tensor (N,).

    The model runs in eval mode with frozen parameters (restored afterwards), without gradients.

    >>> from helpers.models import load_model
    >>> evaluate(load_model(), torch.full((2, 3, 64, 64), 0.5), class_logit(285)).shape
    torch.Size([2])
    """
    check_model(model)
    check_image_batch(x, "x", unit_range=False)
    check_objective(objective)
    with frozen(model), torch.no_grad(), reading(model, objective) as run:
        return objective(run(x, x)).detach()
