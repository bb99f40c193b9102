"""Read the activations of named layers with forward hooks ("feature taps").

A *forward hook* is a function PyTorch calls right after a module's ``forward`` returns, with the
module, its inputs and its output.  :func:`features` registers one hook on every layer you ask for,
runs the model once, collects the outputs and removes the hooks again -- always, even when the
forward pass raises -- so the model is left exactly as it was.

Layer names are the dotted paths of ``model.named_modules()`` (see :func:`layer_names`); for the
course's EfficientNet-Lite they read ``"stem"``, ``"stages.3"``, ``"stages.3.1.depthwise"``,
``"head"`` (the naming scheme is documented in :mod:`helpers.models`).

Example
-------
>>> import torch
>>> from helpers.models import load_model
>>> from helpers.taps import features, layer_names
>>> model = load_model("efficientnet_lite0")
>>> acts = features(model, torch.rand(1, 3, 224, 224), ["stem", "stages.3"])
>>> {k: tuple(v.shape) for k, v in acts.items()}
{'stem': (1, 32, 112, 112), 'stages.3': (1, 80, 14, 14)}
"""
from __future__ import annotations

import contextlib
import difflib
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Union

import torch
from torch import nn

from ._checks import check_tensor

__all__ = ["layer_names", "features", "frozen"]


class _StopForward(Exception):
    """Raised inside a hook to end the forward pass once every requested layer has been seen."""


def layer_names(model: nn.Module) -> List[str]:
    """Every addressable layer of ``model``: the dotted names of ``model.named_modules()``.

    The order is the order in which the submodules were defined, which for the course's models
    (EfficientNet-Lite, VGG, SqueezeNet, AlexNet, ResNet, ``nn.Sequential``) is the order of the
    forward pass.  Containers are included (``"stages.3"`` as well as
    ``"stages.3.0.depthwise.conv"``); the model itself (name ``""``) is not.

    >>> layer_names(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    ['0', '1']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [name for name, _ in model.named_modules() if name]


def _normalise_layers(layers: Union[str, Iterable[str]]) -> List[str]:
    if isinstance(layers, str):
        requested = [layers]
    else:
        try:
            requested = list(layers)
        except TypeError:
            raise TypeError(
                f"layers must be a layer name (str) or a list of names, got {type(layers).__name__}"
            ) from None
        bad = [v for v in requested if not isinstance(v, str)]
        if bad:
            raise TypeError(f"layers must contain layer names (str), got {bad[0]!r}")
    if not requested:
        raise ValueError("layers must name at least one layer, got an empty list")
    return list(dict.fromkeys(requested))  # drop duplicates, keep order


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(v) for v in value)
    return value


def features(model: nn.Module, x: torch.Tensor, layers: Union[str, Sequence[str]], *,
             detach: bool = False, stop_early: bool = True) -> Dict[str, torch.Tensor]:
    """Run ``model(x)`` once and return the outputs of the named layers.

    Args:
        model: any ``nn.Module``.
        x: the input batch handed to ``model`` (for the course models: (N, 3, H, W) in [0, 1]).
        layers: one name or a list of names from :func:`layer_names` (``"stages.3"``).
        detach: return detached tensors (no autograd graph; saves memory for pure inspection).
            By default activations stay differentiable with respect to ``x`` whenever gradients are
            enabled -- that is what feature visualisation and style losses need.
        stop_early: end the forward pass as soon as every requested layer has produced its output
            (the rest of the network is not computed).  The values are the same either way.

    Returns:
        ``{name: activation}`` in the order of ``layers``; for a convolutional layer the activation
        has shape (N, C, H', W').

    The caller's state is untouched: grad mode, ``requires_grad``, train/eval mode; the hooks are
    removed in a ``finally`` clause.  A module that runs more than once in one forward pass (e.g. a
    ReLU object shared inside a ResNet block) reports its *first* call.

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3))
    >>> acts = features(net, torch.rand(1, 3, 8, 8), ["0", "1"])
    >>> torch.equal(acts["1"], acts["0"].relu())
    True
    """
    names = layer_names(model)  # also checks that model is a Module
    check_tensor(x, "x")
    wanted = _normalise_layers(layers)
    modules = dict(model.named_modules())
    for name in wanted:
        if name not in modules or name == "":
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(
                f"layers contains {name!r}, which is not a layer of this "
                f"{type(model).__name__}.{hint} See helpers.layer_names(model) for all "
                f"{len(names)} names."
            )

    captured: Dict[str, Any] = {}

    def make_hook(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if name in captured:
                return  # a re-used module: keep its first call
            captured[name] = _detached(output) if detach else output
            if stop_early and len(captured) == len(wanted):
                raise _StopForward

        return hook

    handles = []
    try:
        for name in wanted:
            handles.append(modules[name].register_forward_hook(make_hook(name)))
        try:
            model(x)
        except _StopForward:
            pass
    finally:
        for handle in handles:
            handle.remove()

    missing = [name for name in wanted if name not in captured]
    if missing:
        raise RuntimeError(
            f"layers {missing} exist in the model but were not called during its forward pass "
            f"(e.g. a branch that only runs in training mode), so they have no activation"
        )
    return {name: captured[name] for name in wanted}


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter while the block runs; restored after.

    Methods that optimise or explain the *input* (saliency, gradient ascent, attacks) need the
    gradient with respect to the image only.  Freezing the parameters saves autograd the work for
    the weights and guarantees that their ``.grad`` cannot change; eval mode makes BatchNorm use its
    running statistics and switches dropout off.  The train flag of *each* submodule and the
    ``requires_grad`` flag of each parameter are put back in ``finally``, so the caller's model is
    left exactly as it was, also when the block raises (a model may mix modes on purpose).

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with frozen(net):
    ...     (net.training, net[0].weight.requires_grad)
    (False, False)
    >>> (net.training, net[0].weight.requires_grad)
    (True, True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)
