"""Read the activations of named layers with forward hooks ("feature taps").

This module is the only home of the plumbing every topic module shares: layer lookup
(:func:`resolve_layer`), forward hooks that are always removed (:func:`capture`,
:func:`forward_hooks`), and running a model without changing its state (:func:`eval_mode`,
:func:`frozen`).  ``register_forward_hook`` appears nowhere else in ``helpers``: the guided-ReLU
rule of :mod:`helpers.saliency` and the linearised network of :mod:`helpers.activations` register
their output-rewriting hooks through :func:`forward_hooks`.

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
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ._checks import _describe, check_tensor, check_unit

__all__ = ["layer_names", "resolve_layer", "features", "capture", "Capture", "forward_hooks",
           "eval_mode", "frozen", "unit_value", "LayerArg"]

#: A layer: its dotted name (see :func:`layer_names`) or the submodule itself.
LayerArg = Union[str, nn.Module]


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


def resolve_layer(model: nn.Module, layer: LayerArg, name: str = "layer") -> nn.Module:
    """The submodule ``layer`` names (or ``layer`` itself, checked to be part of ``model``).

    An unknown name raises a ``ValueError`` that suggests the closest names ("did you mean").

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> resolve_layer(net, "1")
    ReLU()
    """
    names = layer_names(model)  # also checks that model is a Module
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()) or layer is model:
            raise ValueError(f"{name} must be a submodule of model (or its name); the given "
                             f"{type(layer).__name__} is not a layer of this model")
        return layer
    if not isinstance(layer, str):
        raise TypeError(f"{name} must be a layer name (str, see helpers.layer_names(model)) or a "
                        f"submodule, got {_describe(layer)}")
    modules = dict(model.named_modules())
    if layer == "" or layer not in modules:
        close = difflib.get_close_matches(layer, names, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        what = f"{name} contains {layer!r}, which is" if name == "layers" else f"{name} {layer!r} is"
        raise ValueError(f"{what} not a layer of this {type(model).__name__}.{hint} "
                         f"See helpers.layer_names(model) for all {len(names)} names.")
    return modules[layer]


def _normalise_layers(layers: Union[LayerArg, Iterable[LayerArg]]) -> List[LayerArg]:
    if isinstance(layers, (str, nn.Module)):
        requested = [layers]
    else:
        try:
            requested = list(layers)
        except TypeError:
            raise TypeError(
                f"layers must be a layer name (str) or a list of names, got {type(layers).__name__}"
            ) from None
        bad = [v for v in requested if not isinstance(v, (str, nn.Module))]
        if bad:
            raise TypeError(f"layers must contain layer names (str), got {bad[0]!r}")
    if not requested:
        raise ValueError("layers must name at least one layer, got an empty list")
    unique: List[LayerArg] = []
    for v in requested:  # drop duplicates, keep order (modules compare by identity)
        if not any(v is u or (isinstance(v, str) and v == u) for u in unique):
            unique.append(v)
    return unique


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(v) for v in value)
    return value


@contextlib.contextmanager
def forward_hooks(hooks: Iterable[Tuple[nn.Module, Callable]]) -> Iterator[int]:
    """Register ``(module, hook)`` forward hooks for the duration of the block; yields their count.

    The one place that registers forward hooks: they are removed in ``finally``, so no hook
    survives the block, also when it raises.  A hook that returns a value replaces the module's
    output (PyTorch's rule), which is how activations are swapped or gradients rewritten.
    """
    handles = []
    try:
        for module, hook in hooks:
            handles.append(module.register_forward_hook(hook))
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


class Capture:
    """Hooks on some layers of a model that record their outputs on every forward pass.

    Made by :func:`capture`; :meth:`run` executes the model and returns its output and the
    recorded activations.  A module called more than once in one forward pass reports its
    *first* call.
    """

    def __init__(self, model: nn.Module, layers: Dict[str, nn.Module], detach: bool):
        self.model = model
        self.layers = layers
        self.detach = detach
        self._store: Dict[str, Any] = {}
        self._stop = False

    def _hook(self, name: str) -> Callable:
        def hook(module, inputs, output):
            if name in self._store:
                return
            self._store[name] = _detached(output) if self.detach else output
            if self._stop and len(self._store) == len(self.layers):
                raise _StopForward

        return hook

    def run(self, x: Any, *, stop_early: bool = False) -> Tuple[Any, Dict[str, Any]]:
        """``(model(x), {layer: activation})``; with ``stop_early`` the forward pass ends after the
        last requested layer and the output is ``None``."""
        self._store = {}
        self._stop = stop_early
        out = None
        try:
            out = self.model(x)
        except _StopForward:
            pass
        finally:
            self._stop = False
        missing = [name for name in self.layers if name not in self._store]
        if missing:
            raise RuntimeError(
                f"layers {missing} exist in the model but were not called during its forward "
                f"pass (e.g. a branch that only runs in training mode), so they have no activation")
        return out, {name: self._store[name] for name in self.layers}


@contextlib.contextmanager
def capture(model: nn.Module, layers: Union[LayerArg, Sequence[LayerArg]], *,
            detach: bool = False) -> Iterator[Capture]:
    """Record the outputs of ``layers`` on every forward pass inside the block.

    ``layers``: one name / submodule or a list of them; the keys of the activation dictionary are
    the names (a submodule given as such is keyed by its dotted name).  The hooks are removed when
    the block ends, also on an exception.  Use it for loops (optimisation of the input), where
    :func:`features` would register and remove hooks at every step.

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    >>> with capture(net, ["1"]) as cap:
    ...     out, acts = cap.run(torch.rand(1, 3, 8, 8))
    >>> tuple(out.shape), tuple(acts["1"].shape)
    ((1, 2), (1, 4, 6, 6))
    """
    wanted = _normalise_layers(layers)
    ids = {id(m): n for n, m in model.named_modules()} if isinstance(model, nn.Module) else {}
    resolved: Dict[str, nn.Module] = {}
    for layer in wanted:
        module = resolve_layer(model, layer, "layers" if not isinstance(layer, nn.Module) else "layer")
        resolved[layer if isinstance(layer, str) else ids[id(module)]] = module
    cap = Capture(model, resolved, detach)
    with forward_hooks((module, cap._hook(name)) for name, module in resolved.items()):
        yield cap


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
    layer_names(model)  # checks that model is a Module
    check_tensor(x, "x")
    with capture(model, layers, detach=detach) as cap:
        return cap.run(x, stop_early=stop_early)[1]


def unit_value(activation: torch.Tensor, unit, name: str = "unit") -> torch.Tensor:
    """The value of ``unit`` for every image: (N,) from an activation (N, C, h, w).

    ``unit`` is a channel ``c`` -- the spatial mean of that channel -- or a neuron ``(c, i, j)``
    (channel, row, column), the course's one spelling of a unit (:data:`helpers._checks.UnitArg`).

    >>> a = torch.arange(8.).reshape(1, 2, 2, 2)
    >>> unit_value(a, 1), unit_value(a, (1, 0, 1))
    (tensor([5.5000]), tensor([5.]))
    """
    check_tensor(activation, "activation")
    c, i, j = check_unit(unit, tuple(activation.shape), name)
    if i is None:
        return activation[:, c].mean(dim=(1, 2))
    return activation[:, c, i, j]


@contextlib.contextmanager
def eval_mode(model) -> Iterator[Any]:
    """Eval mode while the block runs; afterwards every submodule gets its *own* train flag back.

    ``model.train(was_training)`` would flatten a model that mixes modes on purpose (e.g. frozen
    batch norm in a network being fine-tuned); this restores each flag.  A plain callable that is
    not an ``nn.Module`` passes through unchanged.

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> net[0].eval()
    Linear(in_features=2, out_features=2, bias=True)
    >>> with eval_mode(net):
    ...     net[1].training
    False
    >>> (net[0].training, net[1].training)
    (False, True)
    """
    if not isinstance(model, nn.Module):
        yield model
        return
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


@contextlib.contextmanager
def frozen(model) -> Iterator[Any]:
    """Eval mode and ``requires_grad=False`` on every parameter while the block runs; restored after.

    Methods that optimise or explain the *input* (saliency, gradient ascent, attacks) need the
    gradient with respect to the image only.  Freezing the parameters saves autograd the work for
    the weights and guarantees that their ``.grad`` cannot change; eval mode makes BatchNorm use its
    running statistics and switches dropout off.  The train flag of *each* submodule and the
    ``requires_grad`` flag of each parameter are put back in ``finally``, so the caller's model is
    left exactly as it was, also when the block raises (a model may mix modes on purpose).  A plain
    callable that is not an ``nn.Module`` passes through unchanged.

    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout()).train()
    >>> with frozen(net):
    ...     (net.training, net[0].weight.requires_grad)
    (False, False)
    >>> (net.training, net[0].weight.requires_grad)
    (True, True)
    """
    if not isinstance(model, nn.Module):
        if not callable(model):
            raise TypeError(f"model must be a torch.nn.Module or a callable, got "
                            f"{type(model).__name__}")
        yield model
        return
    flags = [(p, p.requires_grad) for p in model.parameters()]
    with eval_mode(model):
        try:
            for p, _ in flags:
                p.requires_grad_(False)
            yield model
        finally:
            for p, flag in flags:
                p.requires_grad_(flag)
