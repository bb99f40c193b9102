"""Small, deterministic networks and inputs for tests and test cells.

Nothing here is part of a topic's API: these are the fixtures that the notebooks' test cells and
``tests/`` share, so that a test cell reads as the test it is instead of re-defining a network.
Every constructor draws its weights from a private generator (same seed, same weights; the global
random state is left alone) and returns the model in eval mode.

>>> tiny_cnn(seed=0)(random_images(2)).shape
torch.Size([2, 5])
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .._checks import check_choice

__all__ = ["TinyCNN", "tiny_cnn", "with_dropout", "linear_net", "random_images"]


class TinyCNN(nn.Module):
    """A small random CNN for tests and quick experiments (no training, ~3,000 parameters).

    ::

        conv1  3 -> 8, 3x3, padding 1            act1  ReLU or ReLU6
        conv2  8 -> 16, 3x3, stride 2, padding 1 act2
        conv3  16 -> 16, 3x3, padding 1          act3
        pool   global average                    flatten, classifier  16 -> num_classes

    ``activation`` is ``"relu"`` or ``"relu6"``; ``gain`` scales the random weights (with
    ``gain=3`` and ``relu6`` many units exceed 6, so the upper bound of ReLU6 matters).  The
    weights are drawn from a private generator seeded with ``seed``; the global random state is
    not touched.  Input (N, 3, H, W) with H, W >= 2 -> logits (N, num_classes).  Eval mode, and
    its parameters require grad (unlike ``load_model``), so tests can check that helpers leave
    their ``.grad`` alone.

    >>> TinyCNN(seed=0)(torch.rand(2, 3, 16, 16)).shape
    torch.Size([2, 10])
    """

    def __init__(self, *, activation: str = "relu", num_classes: int = 10, seed: int = 0,
                 gain: float = 1.0):
        super().__init__()
        check_choice(activation, "activation", ["relu", "relu6"])
        act = nn.ReLU if activation == "relu" else nn.ReLU6
        with torch.random.fork_rng(devices=[]):   # layer constructors draw from the global RNG
            self.conv1, self.act1 = nn.Conv2d(3, 8, 3, padding=1), act()
            self.conv2, self.act2 = nn.Conv2d(8, 16, 3, stride=2, padding=1), act()
            self.conv3, self.act3 = nn.Conv2d(16, 16, 3, padding=1), act()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten(1)
            self.classifier = nn.Linear(16, num_classes)
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for p in self.parameters():
                fan_in = p[0].numel() if p.ndim > 1 else 4.0
                p.copy_(torch.randn(p.shape, generator=gen) * gain * math.sqrt(2.0 / fan_in))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        x = self.act3(self.conv3(x))
        return self.classifier(self.flatten(self.pool(x)))


def tiny_cnn(seed: int = 0, classes: int = 5, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """A small random CNN for (N, 3, 8, 8) images, as an ``nn.Sequential``; same seed, same weights.

    ``0`` conv 3->8, ``1`` ReLU, ``2`` conv 8->8 stride 2, ``3`` ReLU, ``4`` flatten, ``5`` linear.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
                            nn.Flatten(), nn.Linear(8 * 4 * 4, classes))
    return net.to(dtype).eval()


def with_dropout(seed: int = 1) -> nn.Sequential:
    """:func:`tiny_cnn` with dropout before its last layer, in *train* mode: a method that must run
    the model in eval mode gives different results when it forgets to."""
    net = tiny_cnn(seed=seed)
    return nn.Sequential(*list(net)[:-1], nn.Dropout(0.5), net[-1]).train()


def linear_net(seed: int = 0, classes: int = 4, side: int = 4,
               dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``logits = W x_flat + b`` for (N, 3, side, side) images: gradients one can write by hand
    (``net[1].weight`` is W)."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * side * side, classes)).to(dtype)
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(classes, 3 * side * side, generator=g, dtype=dtype))
        net[1].bias.copy_(torch.randn(classes, generator=g, dtype=dtype))
    return net.eval()


def random_images(n: int, side: int = 8, seed: int = 0, dtype: torch.dtype = torch.float64,
                  edges: bool = False) -> torch.Tensor:
    """Random images (n, 3, side, side) in [0, 1]; with ``edges=True`` about half of the pixels sit
    exactly at 0 or 1 (to test clamping)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, side, side, generator=g, dtype=dtype)
    if edges:
        x = torch.where(x < 0.25, torch.zeros_like(x), torch.where(x > 0.75, torch.ones_like(x), x))
    return x
