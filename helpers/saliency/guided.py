"""Guided backpropagation (Springenberg et al., 2015): the class gradient with only positive
signals through every rectifier, for ReLU and ReLU6; and gradients of single hidden units."""
from __future__ import annotations

import contextlib
from typing import ContextManager, Iterator

import torch
import torch.nn as nn

from .._checks import TargetArg, UnitArg, check_image_batch, check_model, check_unit
from ..taps import LayerArg, forward_hooks, frozen, resolve_layer, unit_value
from ._core import check_call, logit_gradient, need_grad, run_to_layer

__all__ = ["guided_relus", "guided_backprop", "neuron_gradient", "GUIDED_ACTIVATIONS"]

#: Activation modules whose backward pass guided backpropagation modifies.
GUIDED_ACTIVATIONS = (nn.ReLU, nn.ReLU6)


class _PositiveGradient(torch.autograd.Function):
    """Identity in the forward pass; lets only positive gradients through in the backward pass."""

    @staticmethod
    def forward(ctx, y):  # noqa: D401 - autograd signature
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


def _guided_hook(module, inputs, output):
    return _PositiveGradient.apply(output)


@contextlib.contextmanager
def guided_relus(model: nn.Module) -> Iterator[int]:
    """Inside the block, backpropagation through every ReLU / ReLU6 of ``model`` is *guided*.

    Guided backpropagation (Springenberg et al., "Striving for Simplicity: The All Convolutional
    Net", ICLR workshop 2015) changes only the backward pass of the rectifiers.  For
    :math:`y = \\mathrm{ReLU}(z)` with incoming gradient :math:`\\bar y` the true gradient is
    :math:`\\bar z = \\bar y\\,[z > 0]`; the guided rule also drops the negative signals:

    .. math::  \\bar z = \\bar y\\,[z > 0]\\,[\\bar y > 0]

    EfficientNet-Lite uses :math:`\\mathrm{ReLU6}(z) = \\min(\\max(z, 0), 6)`, whose true
    gradient is :math:`\\bar y\\,[0 < z < 6]` (flat above 6 too), so the guided rule becomes

    .. math::  \\bar z = \\bar y\\,[0 < z < 6]\\,[\\bar y > 0] = \\max(\\bar y, 0)\\,[0 < z < 6].

    How: a forward hook (registered with :func:`helpers.taps.forward_hooks`) on every ``nn.ReLU`` /
    ``nn.ReLU6`` module passes the module's output through an identity function whose backward
    keeps only the positive part of the gradient; the module's own backward then applies the mask
    :math:`[0 < z < 6]` (or :math:`[z > 0]`).  The hooks are removed when the block ends, also on
    an exception.  Rectifiers called as functions (``F.relu``) are not modules and are not
    changed.  Yields the number of hooked modules.

    >>> from helpers.testing.nets import TinyCNN
    >>> with guided_relus(TinyCNN(seed=0)) as n_hooked:
    ...     n_hooked
    3
    """
    check_model(model)
    rectifiers = [m for m in model.modules() if isinstance(m, GUIDED_ACTIVATIONS)]
    with forward_hooks((m, _guided_hook) for m in rectifiers) as count:
        yield count


def _guided_or_plain(model: nn.Module, guided: bool, method: str) -> ContextManager:
    if not guided:
        return contextlib.nullcontext(0)
    if not any(isinstance(m, GUIDED_ACTIVATIONS) for m in model.modules()):
        raise ValueError(f"{method}: model has no nn.ReLU or nn.ReLU6 modules, so guided "
                         f"backpropagation would be the plain gradient (rectifiers called as "
                         f"F.relu cannot be hooked)")
    return guided_relus(model)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: TargetArg) -> torch.Tensor:
    """Guided backpropagation of the class logit to the pixels (Springenberg et al., 2015).

    The backward pass of :func:`helpers.saliency.input_gradient`, with the guided rule of
    :func:`guided_relus` at every ReLU / ReLU6: only positive signals, and only through units that
    were in their linear range (:math:`0 < z < 6` for ReLU6) in the forward pass.  The result is
    *not* the gradient of anything; it shows the image structures that excite the class through
    purely positive paths, and looks much sharper than the plain gradient.

    Shapes: x (N, 3, H, W) -> (N, 3, H, W), signed (view it with
    :func:`helpers.saliency.attribution_image` or :func:`helpers.saliency.to_map`).

    >>> from helpers.testing.nets import TinyCNN
    >>> guided_backprop(TinyCNN(seed=0), torch.rand(1, 3, 16, 16), 4).shape
    torch.Size([1, 3, 16, 16])
    """
    targets = check_call(model, x, target, module=True)
    with frozen(model), _guided_or_plain(model, True, "guided_backprop"), torch.enable_grad():
        return logit_gradient(model, x, targets, "guided_backprop")


def neuron_gradient(model: nn.Module, x: torch.Tensor, unit: UnitArg, *, layer: LayerArg,
                    guided: bool = False) -> torch.Tensor:
    """Gradient (plain or guided) of one hidden unit with respect to the image.

    ``unit`` selects a value of the activation :math:`A` (N, C, h, w) of ``layer``
    (:func:`helpers.taps.unit_value`):

    * ``(c, i, j)``: the single unit :math:`A_{n,c,i,j}` -- one neuron, which sees only its
      receptive field, so the gradient is zero outside it;
    * ``c`` (an int): the spatial mean of channel ``c``, :math:`\\frac{1}{hw}\\sum_{ij} A_{n,c,ij}`.

    .. math::  g_n = \\frac{\\partial A_{n,c,i,j}}{\\partial x_n}

    With ``guided=True`` the rectifiers use the guided rule (:func:`guided_relus`) -- the
    "intermediate features via guided backprop" pictures of the lectures.  The forward pass stops
    at ``layer``.  Shapes: x (N, 3, H, W) -> (N, 3, H, W).

    >>> from helpers.testing.nets import TinyCNN
    >>> neuron_gradient(TinyCNN(seed=0), torch.rand(1, 3, 16, 16), (2, 3, 3), layer="act2").shape
    torch.Size([1, 3, 16, 16])
    """
    check_model(model)
    check_image_batch(x, "x")
    module = resolve_layer(model, layer)
    check_unit(unit)
    with frozen(model), _guided_or_plain(model, guided, "neuron_gradient"), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        _, act = run_to_layer(model, module, xg, stop_early=True)
        value = unit_value(act, unit)
        need_grad(value, "neuron_gradient")
        (grad,) = torch.autograd.grad(value.sum(), xg)
    return grad.detach()
