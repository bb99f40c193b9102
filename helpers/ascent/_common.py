"""What the sections of :mod:`helpers.ascent` share: the grey level and one-layer taps."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

from ..taps import LayerArg, capture, resolve_layer

#: Centre of the pixel range: the image the network sees as all zeros after its normalisation
#: (EfficientNet-Lite computes ``(x - 0.5) / 0.5``).  The "zero image" of the papers.
GREY = 0.5


def layer_label(layer: LayerArg) -> str:
    """A short name of ``layer`` for progress bars: the name itself, or the module's class."""
    return layer if isinstance(layer, str) else type(layer).__name__


@contextlib.contextmanager
def layer_output(model: nn.Module, layer: LayerArg) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Hooks on ``layer`` for the block; yields ``f(x)`` -> the layer's activation for ``x``.

    The forward pass stops at the layer (the rest of the network is not computed); the hook is
    registered once (:func:`helpers.taps.capture`) and removed when the block ends.
    """
    module = resolve_layer(model, layer)
    with capture(model, module) as cap:
        (name,) = cap.layers
        yield lambda x: cap.run(x, stop_early=True)[1][name]
