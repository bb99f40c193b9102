"""Tests for helpers.activations.

Independent checks: hand-derived receptive fields (VGG stacks, AlexNet's published 195-pixel
pool5 field, DigitsCNN), the gradient-measured receptive field of EfficientNet-Lite0, AlexNet and
small stacks, brute-force loops for the top-k search, scikit-learn's PCA, NearestNeighbors and
trustworthiness, and exact slices of the source photos for the crop gallery.
"""
from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import helpers.activations as act_module  # noqa: E402
import helpers.activations.occlusion as occlusion_module  # noqa: E402
from helpers.activations import (  # noqa: E402
    Gallery,
    LayerSpec,
    ReceptiveField,
    crop_gallery,
    empirical_receptive_field,
    extract_features,
    feature_map_browser,
    layer_specs,
    nearest_neighbors,
    occlusion_receptive_field,
    pca,
    receptive_field,
    receptive_field_patch,
    record_activations,
    record_channel,
    show_embedding,
    show_feature_maps,
    show_neighbors,
    top_k_patches,
    tsne,
    unit_gradient,
    unit_occlusion_map,
)
from helpers.digits import DigitsCNN  # noqa: E402
from helpers.taps import eval_mode, features  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _no_hooks(module: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in module.modules())


def _vgg_like():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))


# ------------------------------------------------------------------------------------------------
# analytic receptive field
# ------------------------------------------------------------------------------------------------
ALEXNET_LAYERS = [  # torchvision's AlexNet `features`: (kernel, stride, padding)
    (11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]
# Hand-derived (and the numbers quoted in the literature: conv1 11, pool1 19, conv2 51, pool2 67,
# conv3 99, conv4 131, conv5 163, pool5 195; jumps 4, 8, 8, 16, 16, 16, 16, 32).
ALEXNET_SIZES = [11, 19, 51, 67, 99, 131, 163, 195]
ALEXNET_JUMPS = [4, 8, 8, 16, 16, 16, 16, 32]


@pytest.mark.parametrize("layers, expected", [
    ([], (1, 1, 0)),
    ([(3, 1, 1)], (3, 1, -1)),
    ([(3, 1, 1)] * 2, (5, 1, -2)),
    ([(3, 1, 1)] * 3, (7, 1, -3)),               # VGG: three 3x3 convolutions = one 7x7
    ([(3, 1, 0)] * 5, (11, 1, 0)),               # "L 3x3 layers: receptive field 1 + 2L"
    ([(2, 2, 0)] * 3, (8, 8, 0)),                # pooling pyramid: jump is the product of strides
    ([(3, 2, 0), (3, 1, 0)], (7, 2, 0)),         # the second kernel steps over units 2 px apart
    ([(3, 1, 0), (3, 2, 0)], (5, 2, 0)),         # ... order matters
    ([(3, 2, 1), (3, 2, 1)], (7, 4, -3)),        # start moves by p * (jump before the layer)
    ([(3, 2, (0, 1))], (3, 2, 0)),               # TensorFlow SAME, stride 2: padding only after
    ([(5, 2, (1, 2)), (3, 1, 1)], (9, 2, -3)),
    ([(3, 1, 1, 2)], (5, 1, -1)),                # dilation 2: a 3x3 kernel spans 5 pixels
])
def test_receptive_field_hand_derived(layers, expected):
    rf = receptive_field(layers)
    assert rf == expected
    assert isinstance(rf, ReceptiveField) and all(isinstance(v, int) for v in rf)


def test_receptive_field_alexnet_numbers():
    for depth, (size, jump) in enumerate(zip(ALEXNET_SIZES, ALEXNET_JUMPS), start=1):
        rf = receptive_field(ALEXNET_LAYERS[:depth])
        assert (rf.size, rf.jump) == (size, jump), depth


def test_receptive_field_from_modules_and_models():
    convs = [nn.Conv2d(3, 3, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(3, 3, 5, stride=2, padding=2)]
    as_tuples = [(3, 1, 1), (2, 2, 0), (5, 2, 2)]
    assert receptive_field(convs) == receptive_field(as_tuples) == (12, 4, -5)
    seq = nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.BatchNorm2d(3), convs[2])
    assert receptive_field(seq, layer="4") == (12, 4, -5)
    assert receptive_field(seq, layer="3") == receptive_field(as_tuples[:2])
    # DigitsCNN: conv1 5x5 p2, pool 2, conv2 3x3 p1, pool 2 (derived by hand)
    digits = DigitsCNN(seed=0)
    assert receptive_field(digits, layer="conv1") == (5, 1, -2)
    assert receptive_field(digits, layer="pool1") == (6, 2, -2)
    assert receptive_field(digits, layer="conv2") == (10, 2, -4)
    assert receptive_field(digits, layer="pool2") == (12, 4, -4)


def test_receptive_field_methods():
    rf = ReceptiveField(7, 2, -3)
    assert rf.span(0) == (-3, 4) and rf.span(5) == (7, 14)
    assert rf.center(0) == 0.0 and rf.center(5) == 10.0
    size, jump, start = rf
    assert (size, jump, start) == (7, 2, -3)


@pytest.mark.parametrize("args, err, match", [
    (([(0, 1, 0)],), ValueError, r"layers\[0\]: kernel must be >= 1"),
    (([(3, 0, 0)],), ValueError, r"layers\[0\]: stride"),
    (([(3, 1, -1)],), ValueError, r"layers\[0\]: padding must be >= 0 \(an int or a pair"),
    (([(3, 1.5, 0)],), TypeError, r"layers\[0\]: stride must be an int"),
    (([(3, 1)],), TypeError, r"layers\[0\] must be a \(kernel, stride, padding\)"),
    (([nn.ReLU()],), TypeError, r"layers\[0\] is a ReLU"),
    (("abc",), TypeError, "layers must be a list"),
    ((nn.Conv2d(1, 1, 3),), TypeError, "layer must name a layer"),
])
def test_receptive_field_errors(args, err, match):
    with pytest.raises(err, match=match):
        receptive_field(*args)


def test_layer_specs_efficientnet(model):
    specs = layer_specs(model, layer="stages.2")
    assert all(isinstance(s, LayerSpec) for s in specs)
    # the stem's explicit ZeroPad2d (TensorFlow SAME) is merged into the stem convolution
    assert specs[0] == LayerSpec(3, 2, (0, 1), 1, "stem.conv")
    assert model.stem.pad.padding == (0, 1, 0, 1)
    # stride-2 5x5 depthwise at 112 px: SAME padding (1, 2)
    dw = next(s for s in specs if s.name == "stages.2.0.depthwise.conv")
    assert (dw.kernel, dw.stride, dw.padding) == (5, 2, (1, 2))
    # only convolutions appear, in forward order
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert [s.name for s in specs] == convs[:len(specs)]
    assert specs[-1].name == "stages.2.1.project.conv"
    assert layer_specs(model, layer="stem.pad") == [LayerSpec(1, 1, (0, 1), 1, "stem.pad")]
    assert layer_specs(model, layer="stages.2", axis=1) == specs  # square kernels, symmetric model


def test_layer_specs_errors(model):
    with pytest.raises(ValueError, match=r"'stages\.9' is not a layer.*Did you mean"):
        layer_specs(model, layer="stages.9")
    with pytest.raises(ValueError, match="whole image"):
        layer_specs(model, layer="classifier")
    with pytest.raises(TypeError, match="layer must be a layer name"):
        layer_specs(model, layer=3)
    with pytest.raises(ValueError, match=r"axis \(0: rows, 1: columns\) must be one of 0, 1; got 2"):
        layer_specs(model, layer="stem", axis=2)


# ------------------------------------------------------------------------------------------------
# empirical receptive field
# ------------------------------------------------------------------------------------------------
def test_unit_gradient_support_of_small_stack():
    net = _vgg_like()
    g = unit_gradient(net, torch.rand(1, 3, 15, 15), (0, 7, 7), layer="4")
    rows = torch.nonzero(g.amax(dim=1) > 0).flatten()
    cols = torch.nonzero(g.amax(dim=0) > 0).flatten()
    assert (rows.tolist(), cols.tolist()) == (list(range(4, 11)), list(range(4, 11)))  # 7x7 at 7
    # a neuron at the corner: the padding cuts its field to rows/cols 0..1
    g1 = unit_gradient(net, torch.rand(1, 3, 15, 15), (2, 0, 0), layer="0")
    assert torch.nonzero(g1 > 0).max(dim=0).values.tolist() == [1, 1]
    # a channel: its spatial mean depends on every pixel
    assert bool((unit_gradient(net, torch.rand(1, 3, 15, 15), 1, layer="4") > 0).all())


def test_unit_gradient_restores_state_and_errors():
    net = _vgg_like().train()
    flags = [p.requires_grad for p in net.parameters()]
    x = torch.rand(1, 3, 12, 12)
    unit_gradient(net, x, (1, 6, 6), layer="4")
    assert net.training and _no_hooks(net) and x.grad is None and not x.requires_grad
    assert [p.requires_grad for p in net.parameters()] == flags
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match=r"unit: position \(12, 0\) is outside the 12 x 12"):
        unit_gradient(net, x, (0, 12, 0), layer="4")
    assert net.training and _no_hooks(net)       # also after an exception
    with pytest.raises(ValueError, match="x must hold one image"):
        unit_gradient(net, torch.rand(2, 3, 12, 12), 0, layer="4")
    with pytest.raises(ValueError, match=r"unit: channel must be in \[0, 3\]"):
        unit_gradient(net, x, 4, layer="4")
    with pytest.raises(ValueError, match="'5' is not a layer"):
        unit_gradient(net, x, 0, layer="5")
    with pytest.raises(TypeError, match="unit must be a channel index c"):
        unit_gradient(net, x, (0, 1), layer="4")


# ------------------------------------------------------------------------------------------------
# the caller's model is left as it was
# ------------------------------------------------------------------------------------------------
def _bn_net(seed=0):
    """Conv-BN-ReLU twice, in *train* mode except the second BatchNorm (frozen on purpose)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                            nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten())
    net.train()
    net[4].eval()
    return net


def _state(net):
    return ([m.training for m in net.modules()],
            {k: v.clone() for k, v in net.state_dict().items()},
            [p.requires_grad for p in net.parameters()])


def _assert_state(net, before, what):
    modes, tensors, flags = _state(net)
    assert modes == before[0], f"{what} changed the train/eval flags: {before[0]} -> {modes}"
    for k, v in tensors.items():
        assert torch.equal(v, before[1][k]), f"{what} changed {k} (e.g. BatchNorm statistics)"
    assert flags == before[2], f"{what} changed requires_grad"
    assert all(p.grad is None for p in net.parameters()), f"{what} wrote .grad"
    assert _no_hooks(net), f"{what} left a hook"


def test_record_activations_runs_in_eval_mode_and_keeps_bn_statistics():
    """Regression (d590995): recording a model in train mode normalised with batch statistics
    and updated BatchNorm's running statistics."""
    net, x = _bn_net(), torch.rand(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    before = _state(net)
    acts = record_activations(net, x, layers=["1", "4"], batch_size=4)
    _assert_state(net, before, "record_activations")
    with eval_mode(net), torch.no_grad():
        expected = features(net, x, ["1", "4"])
    for name in ("1", "4"):
        torch.testing.assert_close(acts[name], expected[name])


def test_unit_gradient_keeps_mixed_train_eval_modes():
    """Regression (d590995): `model.train(was_training)` after the gradient put the frozen
    BatchNorm of a model in train mode back into train mode."""
    net = _bn_net()
    before = _state(net)
    unit_gradient(net, torch.rand(1, 3, 8, 8), (0, 4, 4), layer="5")
    _assert_state(net, before, "unit_gradient")
    with pytest.raises(ValueError, match="outside the 8 x 8"):      # also when it raises
        unit_gradient(net, torch.rand(1, 3, 8, 8), (0, 9, 4), layer="5")
    _assert_state(net, before, "unit_gradient (raising)")


_CALLS = {
    "record_channel": lambda net, x: record_channel(net, x, 1, layer="5"),
    "extract_features": lambda net, x: extract_features(net, x, layer="7"),
    "empirical_receptive_field": lambda net, x: empirical_receptive_field(net, layer="3"),
    "unit_occlusion_map": lambda net, x: unit_occlusion_map(net, x[:1], 1, layer="3", patch=3),
    "occlusion_receptive_field": lambda net, x: occlusion_receptive_field(
        net, x[:2], 1, layer="3", patch=3, stride=2),
    "feature_map_browser": lambda net, x: feature_map_browser(net, x[:1], layers=["2", "5"],
                                                              interactive=False),
}


@pytest.mark.parametrize("name", sorted(_CALLS))
def test_every_function_leaves_the_model_as_it_was(name):
    net, x = _bn_net(), torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    before = _state(net)
    _CALLS[name](net, x)
    _assert_state(net, before, name)


def test_hooks_and_modes_come_from_taps():
    """One home for the plumbing: no hook registration or mode switching in the package."""
    from pathlib import Path

    for path in Path(act_module.__file__).parent.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for banned in ("register_forward_hook", ".train(", "_model_device", "get_close_matches"):
            assert banned not in source, f"{path.name} contains {banned}"


@pytest.mark.parametrize("net, layer, size", [
    (_vgg_like(), "4", 32),
    (nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3),
                   nn.ReLU(), nn.Conv2d(4, 4, 5, stride=2, padding=2)), "4", 64),
    (nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 4, 3, stride=2), nn.ReLU6(),
                   nn.Conv2d(4, 4, 3, padding=2, dilation=2), nn.AvgPool2d(3, 2, 1)), "4", 64),
    (nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(3, 4, 5, stride=2), nn.Hardswish(),
                   nn.Conv2d(4, 4, 3, stride=2, padding=1)), "3", 64),
])
def test_empirical_matches_analytic_small_stacks(net, layer, size):
    for axis in (0, 1):
        assert empirical_receptive_field(net, layer=layer, input_size=size, axis=axis) == \
            receptive_field(net, layer=layer, axis=axis)


def test_empirical_matches_analytic_alexnet():
    import torchvision

    net = torchvision.models.alexnet(weights=None).eval()
    convs = [n for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]
    for name, size, jump in zip(convs, ALEXNET_SIZES, ALEXNET_JUMPS):
        analytic = receptive_field(net, layer=name)
        assert (analytic.size, analytic.jump) == (size, jump)
    for name, side in (("features.2", 96), ("features.12", 480)):   # pool1 and pool5 (195 px)
        assert empirical_receptive_field(net, layer=name, input_size=side) == receptive_field(net, layer=name)


@pytest.mark.parametrize("layer, side", [("stem", 32), ("stages.0", 32), ("stages.1.0", 64),
                                         ("stages.2.0", 96), ("stages.2", 160), ("stages.3.0", 224)])
def test_empirical_matches_analytic_efficientnet(model, layer, side):
    """The asymmetric TensorFlow SAME padding shows up in `start`; gradients agree."""
    assert empirical_receptive_field(model, layer=layer, input_size=side) == receptive_field(model, layer=layer)
    assert _no_hooks(model) and not model.training


def test_empirical_grows_the_input_and_rejects_small_ones(model):
    assert empirical_receptive_field(model, layer="stages.2") == (67, 8, -26)
    with pytest.raises(ValueError, match="input_size: the receptive field reaches the border"):
        empirical_receptive_field(model, layer="stages.2", input_size=64)


def test_linearize_recovers_the_field_where_relus_are_off():
    # every ReLU output is 0 (large negative bias): the real gradient is 0 everywhere
    net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.Conv2d(2, 1, 3))
    with torch.no_grad():
        net[0].bias.fill_(-100.0)
    with pytest.raises(ValueError, match="zero everywhere"):
        empirical_receptive_field(net, layer="2", input_size=16, linearize=False)
    assert empirical_receptive_field(net, layer="2", input_size=16) == (5, 1, 0)


# ------------------------------------------------------------------------------------------------
# gallery, recording, top-k patches
# ------------------------------------------------------------------------------------------------
def test_crop_gallery_deterministic_and_balanced():
    a = crop_gallery(50, 32, seed=3)
    b = crop_gallery(50, 32, seed=3)
    c = crop_gallery(50, 32, seed=4)
    assert isinstance(a, Gallery) and len(a) == 50
    assert a.images.shape == (50, 3, 32, 32) and a.images.dtype == torch.float32
    assert float(a.images.min()) >= 0 and float(a.images.max()) <= 1
    assert torch.equal(a.images, b.images) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.images, c.images)
    from helpers.images import list_images

    assert a.names == list_images()
    assert a.source.tolist() == [m % len(a.names) for m in range(50)]
    assert a.labels[:3] == a.names[:3]
    assert 0.3 < float(a.flipped.float().mean()) < 0.7


def test_crop_gallery_crops_are_slices_of_the_photo():
    from helpers.images import load_image

    photo = load_image("chelsea")                       # 300 x 451
    g = crop_gallery(12, 150, names=["chelsea"], scale=(0.5, 0.5), seed=1)
    for m in range(12):
        top, left, side = g.boxes[m].tolist()
        assert side == 150 and 0 <= top <= 300 - side and 0 <= left <= 451 - side
        expected = photo[0, :, top:top + side, left:left + side]
        if g.flipped[m]:
            expected = expected.flip(-1)
        assert torch.equal(g.images[m], expected)
    assert g.flipped.any() and not g.flipped.all()
    assert not crop_gallery(6, 64, names=["chelsea"], flip=False).flipped.any()


def test_crop_gallery_errors():
    with pytest.raises(ValueError, match="scale must be a pair"):
        crop_gallery(4, 32, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="names must hold"):
        crop_gallery(4, 32, names=[])
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        crop_gallery(0)


def test_record_activations_equal_one_forward_pass(model):
    x = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    acts = record_activations(model, x, layers=["stages.2", "flatten"], batch_size=2)
    direct = features(model, x, ["stages.2", "flatten"])
    for name in ("stages.2", "flatten"):
        torch.testing.assert_close(acts[name], direct[name], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(record_channel(model, x, 7, layer="stages.2"), direct["stages.2"][:, 7],
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(record_channel(model, x, (7, 2, 3), layer=model.stages[2]),
                               direct["stages.2"][:, 7, 2, 3], atol=1e-4, rtol=1e-4)
    assert list(record_activations(model, x[:1], layers=model.stages[2])) == ["stages.2"]
    torch.testing.assert_close(extract_features(model, x), direct["flatten"], atol=1e-4, rtol=1e-4)
    assert extract_features(model, x, layer="stages.6").shape == (5, 320 * 2 * 2)
    with pytest.raises(ValueError, match=r"unit: channel must be in \[0, 39\]"):
        record_channel(model, x, 40, layer="stages.2")
    with pytest.raises(ValueError, match="x must hold at least one image"):
        record_activations(model, x[:0], layers="stem")


def _brute_force_top_k(acts, k):
    items = sorted(((float(acts[n, i, j]), n * acts.shape[1] * acts.shape[2] + i * acts.shape[2] + j,
                     n, i, j) for n, i, j in itertools.product(*map(range, acts.shape))),
                   key=lambda t: (-t[0], t[1]))
    return items[:k]


def test_top_k_patches_matches_brute_force():
    acts = _rand(6, 5, 4, seed=1)
    images = torch.rand(6, 3, 20, 16, generator=torch.Generator().manual_seed(2))
    rf = ReceptiveField(7, 4, -3)
    patches, values, where = top_k_patches(images, acts, 9, rf, fill=0.25)
    expected = _brute_force_top_k(acts, 9)
    assert where.dtype == torch.int64 and where.shape == (9, 3)
    assert where.tolist() == [[n, i, j] for _, _, n, i, j in expected]
    assert values.tolist() == pytest.approx([v for v, *_ in expected])
    # each patch is the unit's receptive field, cut from a padded copy of the image
    padded = F.pad(images, (10, 10, 10, 10), value=0.25)
    for p, (n, i, j) in zip(patches, where.tolist()):
        top, left = -3 + 4 * i + 10, -3 + 4 * j + 10
        assert torch.equal(p, padded[n, :, top:top + 7, left:left + 7])


def test_top_k_patches_options():
    acts = torch.zeros(3, 4, 4)
    acts[0, 1, 1], acts[0, 2, 2], acts[2, 0, 0], acts[1, 3, 3] = 9.0, 8.0, 7.0, 1.0
    images = torch.rand(3, 3, 16, 16)
    rf = (4, 4, 0)
    _, values, where = top_k_patches(images, acts, 3, rf)
    assert where.tolist() == [[0, 1, 1], [0, 2, 2], [2, 0, 0]]      # global: image 0 twice
    _, values, where = top_k_patches(images, acts, 3, rf, one_per_image=True)
    assert where.tolist() == [[0, 1, 1], [2, 0, 0], [1, 3, 3]] and values.tolist() == [9, 7, 1]
    # a 6-px field with jump 4 from -1: only units 1 and 2 (pixels 3..8, 7..12) lie inside 16 px
    _, _, where = top_k_patches(images, acts, 4, (6, 4, -1), inside_only=True)
    assert where[:, 1:].min() >= 1 and where[:, 1:].max() <= 2
    assert where[0].tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="inside_only: no unit"):
        top_k_patches(images, acts, 1, (20, 4, 0), inside_only=True)
    with pytest.raises(ValueError, match="k must be at most 48"):
        top_k_patches(images, acts, 49, rf)
    with pytest.raises(ValueError, match="one map per image"):
        top_k_patches(images[:2], acts, 1, rf)


def test_receptive_field_patch_at_the_border():
    img = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6)
    p = receptive_field_patch(img, 0, 0, 0, (4, 2, -2), fill=-1.0)
    assert p.shape == (2, 4, 4)
    assert torch.equal(p[:, :2, :], torch.full((2, 2, 4), -1.0))
    assert torch.equal(p[:, 2:, 2:], img[0, :, :2, :2])


# ------------------------------------------------------------------------------------------------
# PCA, nearest neighbours, t-SNE
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n, d, k", [(60, 8, 3), (20, 50, 5), (200, 30, 30)])
def test_pca_matches_scikit_learn(n, d, k):
    from sklearn.decomposition import PCA

    X = _rand(n, d, seed=n, dtype=torch.float64) @ _rand(d, d, seed=d, dtype=torch.float64) + 5.0
    Z, comps, var = pca(X, k)
    sk = PCA(n_components=k, svd_solver="full").fit(X.numpy())
    sk_Z = sk.transform(X.numpy())
    signs = np.sign((comps.numpy() * sk.components_).sum(axis=1))      # up to sign
    np.testing.assert_allclose(comps.numpy(), sk.components_ * signs[:, None], atol=1e-8)
    np.testing.assert_allclose(Z.numpy(), sk_Z * signs[None, :], atol=1e-8)
    np.testing.assert_allclose(var.numpy(), sk.explained_variance_, rtol=1e-8)
    # our convention: the largest |entry| of each component is positive
    rows = torch.arange(k)
    assert bool((comps[rows, comps.abs().argmax(dim=1)] > 0).all())
    torch.testing.assert_close(comps @ comps.T, torch.eye(k, dtype=torch.float64))
    torch.testing.assert_close(Z, (X - X.mean(0)) @ comps.T)


def test_pca_full_rank_reconstructs_and_keeps_dtype():
    X = _rand(40, 6, seed=5)
    Z, comps, var = pca(X, 6)
    assert Z.dtype == comps.dtype == var.dtype == torch.float32
    torch.testing.assert_close(Z @ comps + X.mean(0), X, atol=1e-5, rtol=1e-5)
    assert bool((var[:-1] >= var[1:]).all())
    torch.testing.assert_close(var.sum(), X.var(dim=0).sum(), atol=1e-4, rtol=1e-4)
    for bad, match in ((lambda: pca(X, 7), "n_components must be at most min"),
                       (lambda: pca(X[:1], 1), "at least 2 rows"),
                       (lambda: pca(X[0], 1), "X must be a 2-D"),
                       (lambda: pca(X, 0), "n_components must be an int >= 1")):
        with pytest.raises((ValueError, TypeError), match=match):
            bad()


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_nearest_neighbors_matches_scikit_learn(metric):
    from sklearn.neighbors import NearestNeighbors

    X = _rand(80, 12, seed=7, dtype=torch.float64) * torch.linspace(0.1, 3, 80, dtype=torch.float64)[:, None]
    queries = [0, 5, 17, 79]
    idx, dist = nearest_neighbors(X, queries, 6, metric=metric)
    nn_ = NearestNeighbors(n_neighbors=7, metric=metric, algorithm="brute").fit(X.numpy())
    sk_dist, sk_idx = nn_.kneighbors(X[queries].numpy())
    # scikit-learn returns the query itself first (distance 0): drop it
    assert (sk_idx[:, 0] == np.array(queries)).all()
    assert idx.tolist() == sk_idx[:, 1:].tolist()
    np.testing.assert_allclose(dist.numpy(), sk_dist[:, 1:], atol=1e-10)
    idx_all, dist_all = nearest_neighbors(X, queries, 7, metric=metric, exclude_self=False)
    assert idx_all.tolist() == sk_idx.tolist()
    assert dist_all[:, 0].abs().max() < 1e-7


def test_nearest_neighbors_duplicates_ties_and_errors():
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [5.0, 5.0]])
    idx, dist = nearest_neighbors(X, torch.tensor([0]), 3)
    assert idx.tolist() == [[2, 1, 3]]                     # the duplicate stays; tie -> lower index
    assert dist.tolist() == [[0.0, 1.0, 1.0]]
    idx, _ = nearest_neighbors(X, 0, 2, exclude_self=False)
    assert idx.tolist() == [[0, 2]]
    # cosine ignores length: [5, 5] is closer in angle to [1, 0] than [-1, 0] is
    idx, dist = nearest_neighbors(X, [1], 2, metric="cosine")
    assert idx[0, 0].item() == 4 and dist[0, 0].item() == pytest.approx(1 - 2 ** -0.5)
    with pytest.raises(ValueError, match="metric must be one of 'euclidean', 'cosine'"):
        nearest_neighbors(X, [0], 1, metric="dot")
    with pytest.raises(ValueError, match="k must be at most 4"):
        nearest_neighbors(X, [0], 5)
    with pytest.raises(ValueError, match=r"queries must be row indices in 0..4"):
        nearest_neighbors(X, [5], 1)
    with pytest.raises(ValueError, match="queries must be a 1-D"):
        nearest_neighbors(X, [0.5], 1)


def test_tsne_is_deterministic_and_keeps_neighbourhoods():
    from sklearn.manifold import trustworthiness

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 30, generator=g) * 10
    X = torch.cat([c + torch.randn(25, 30, generator=g) for c in centres])
    Y1, Y2 = tsne(X, perplexity=10), tsne(X, perplexity=10)
    assert Y1.shape == (100, 2) and torch.equal(Y1, Y2)
    assert trustworthiness(X.numpy(), Y1.numpy(), n_neighbors=5) > 0.9
    # each blob stays together: its points are closer to their own centre than to any other
    labels = torch.arange(4).repeat_interleave(25)
    means = torch.stack([Y1[labels == c].mean(0) for c in range(4)])
    assert (torch.cdist(Y1, means).argmin(dim=1) == labels).all()
    with pytest.raises(ValueError, match="at least 4 rows"):
        tsne(X[:3])


# ------------------------------------------------------------------------------------------------
# occlusion (Zhou et al.)
# ------------------------------------------------------------------------------------------------
def test_occlusion_map_window_equals_full_image(model, monkeypatch):
    img = crop_gallery(1, 96, names=["chelsea"], seed=0).images
    rf = receptive_field(model, layer="stages.2")
    fast_map, unit = unit_occlusion_map(model, img, (16, 6, 5), layer="stages.2", patch=9, stride=8)
    monkeypatch.setattr(occlusion_module, "_rf_window", lambda rf, i, j, H, W: (0, H, 0, W))
    full_map, unit2 = unit_occlusion_map(model, img, (16, 6, 5), layer="stages.2", patch=9, stride=8)
    assert unit == unit2 == (16, 6, 5)
    torch.testing.assert_close(fast_map, full_map, atol=1e-4, rtol=1e-4)
    # occluders that miss the theoretical receptive field cannot change the unit: the map is
    # zero farther than patch - 1 pixels from the field
    (r0, r1), (c0, c1) = rf.span(6), rf.span(5)
    outside = torch.ones_like(full_map, dtype=torch.bool)
    outside[max(r0 - 8, 0):r1 + 8, max(c0 - 8, 0):c1 + 8] = False
    assert float(full_map[outside].abs().max()) == 0.0
    assert float(full_map.max()) > 0


def test_occlusion_map_of_one_linear_convolution():
    """A single 5x5 conv: occluding pixel (y, x) changes unit (i, j) by |w . (noise - x)|, so the
    discrepancy map is non-zero exactly on the 5x5 field (with 1x1 patches)."""
    conv = nn.Conv2d(3, 1, 5, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.rand(1, 3, 5, 5) + 0.1)
    net = nn.Sequential(conv)
    img = torch.rand(1, 3, 12, 12)
    dmap, unit = unit_occlusion_map(net, img, (0, 3, 4), layer="0", patch=1, stride=1,
                                    progress=False)
    assert unit == (0, 3, 4)
    support = torch.nonzero(dmap > 0)
    assert support[:, 0].min() == 3 and support[:, 0].max() == 7
    assert support[:, 1].min() == 4 and support[:, 1].max() == 8
    noise = torch.rand(1, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    expected = (conv.weight.detach()[0, :, 0, 0] * (noise[0, :, 0, 0] - img[0, :, 3, 4])).sum().abs()
    assert float(dmap[3, 4]) == pytest.approx(float(expected), rel=1e-4)
    # a channel: the neuron where it peaks in this image
    peak = int(net(img)[0, 0].argmax())
    assert unit_occlusion_map(net, img, 0, layer="0", patch=3)[1] == (0, peak // 8, peak % 8)


def test_unit_occlusion_map_is_not_saliency_occlusion_map():
    """The old name stays for one release, outside __all__ (saliency.occlusion_map is another
    method with another signature)."""
    import helpers.saliency

    assert act_module.occlusion_map is unit_occlusion_map
    assert "occlusion_map" not in act_module.__all__ and "unit_occlusion_map" in act_module.__all__
    assert helpers.saliency.occlusion_map is not unit_occlusion_map


def test_occlusion_receptive_field_is_centred_and_normalised(model):
    imgs = crop_gallery(2, 96, names=["coins", "chelsea"], seed=0).images
    orf = occlusion_receptive_field(model, imgs, 3, layer="stages.1", patch=5, stride=3)
    assert orf.shape == (19, 19)
    assert float(orf.min()) >= 0 and float(orf.max()) <= 1 + 1e-6
    # the centre of the field matters more than its rim
    assert float(orf[6:13, 6:13].mean()) > float(orf[[0, -1]].mean())
    # one neuron per image (fields inside the images): the average is the mean of the aligned maps
    avg, maps = occlusion_receptive_field(model, imgs, torch.tensor([[3, 5, 5], [3, 6, 4]]),
                                          layer="stages.1", patch=5, stride=3, return_maps=True)
    assert maps.shape == (2, 19, 19)
    torch.testing.assert_close(maps.amax(dim=(1, 2)), torch.ones(2))
    torch.testing.assert_close(avg, maps.mean(dim=0))
    one, unit = unit_occlusion_map(model, imgs[1:], (3, 6, 4), layer="stages.1", patch=5, stride=3,
                                   seed=1)
    rf = receptive_field(model, layer="stages.1")
    (r0, r1), (c0, c1) = rf.span(6), rf.span(4)
    torch.testing.assert_close(maps[1], one[r0:r1, c0:c1] / one.max())
    with pytest.raises(ValueError, match=r"one \(c, i, j\) per image: x holds 2 images, unit has 1"):
        occlusion_receptive_field(model, imgs, [(3, 5, 5)], layer="stages.1")
    with pytest.raises(ValueError, match="x must be a single image"):
        unit_occlusion_map(model, imgs, 3, layer="stages.1")


# ------------------------------------------------------------------------------------------------
# pictures
# ------------------------------------------------------------------------------------------------
def test_show_feature_maps_grid_and_scaling():
    a = torch.zeros(1, 20, 6, 6)
    a[0, 3] = 2.0
    a[0, 5, 1, 1] = 4.0
    axes = show_feature_maps(a, ncols=8, highlight=5)
    assert len(axes) == 24 and sum(ax.get_visible() and ax.has_data() for ax in axes) == 20
    shown = axes[3].images[0].get_array()
    assert float(shown.max()) == pytest.approx(0.5)          # shared scale: 2 of 4
    assert axes[5].spines["left"].get_visible() and not axes[4].spines["left"].get_visible()
    per = show_feature_maps(a[0], channels=[3, 5], scale="per_map")
    assert float(per[0].images[0].get_array().max()) == pytest.approx(0.5)  # constant map
    assert float(per[1].images[0].get_array().max()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="channels must be in 0..19"):
        show_feature_maps(a, channels=[25])
    with pytest.raises(ValueError, match="acts must be the activation of one image"):
        show_feature_maps(torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="scale must be one of"):
        show_feature_maps(a, scale="global")


def test_feature_map_browser_static_and_widget(model, monkeypatch):
    img = torch.rand(1, 3, 64, 64)
    n_before = len(plt.get_fignums())
    assert feature_map_browser(model, img, unit=3, layers=["stem", "stages.2"],
                               interactive=False) is None
    assert len(plt.get_fignums()) == n_before + 1
    # the default path is static in fast mode (COURSE_FAST=1 in the tests) and outside a kernel
    assert feature_map_browser(model, img, layers=["stem"]) is None
    import IPython.display
    import ipywidgets

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.extend(objs))
    n_before = len(plt.get_fignums())
    widget = feature_map_browser(model, img, unit=5, layers=["stem", model.stages[2]], interactive=True)
    assert isinstance(widget, ipywidgets.VBox)
    # the starting view is displayed at once as an ordinary figure (what a saved notebook keeps),
    # then closed so that the inline backend does not show it twice; the widget adds no copy
    assert len(shown) == 1 and isinstance(shown[0], matplotlib.figure.Figure), shown
    texts = " ".join(t.get_text() for t in shown[0].findobj(matplotlib.text.Text))
    assert "stem, channel 5" in texts and "starting view" in texts, texts
    assert shown[0].number not in plt.get_fignums()
    assert len(plt.get_fignums()) == n_before
    dropdown, slider = widget.children[0].children
    assert slider.max == 31
    dropdown.value = "stages.2"
    assert slider.max == 39
    assert len(plt.get_fignums()) == n_before + 1          # moving a control draws the new view
    assert len(shown) == 1
    with pytest.raises(ValueError, match="layer must be one of"):
        feature_map_browser(model, img, layers=["stem"], layer="head")
    with pytest.raises(ValueError, match="unit must be a channel c here"):
        feature_map_browser(model, img, unit=(0, 1, 1), layers=["stem"])
    assert _no_hooks(model)


def test_show_neighbors_and_embedding():
    imgs = torch.rand(10, 3, 8, 8)
    idx = torch.tensor([[1, 2, 3], [4, 5, 6]])
    labels = [0, 0, 1, 0, 1, 1, 1, 0, 0, 0]
    axes = show_neighbors(imgs, [0, 9], idx, labels=labels, distances=torch.ones(2, 3))
    assert axes.shape == (2, 4)
    assert matplotlib.colors.same_color(axes[0, 1].spines["left"].get_edgecolor(), "tab:green")
    assert matplotlib.colors.same_color(axes[0, 2].spines["left"].get_edgecolor(), "tab:red")
    with pytest.raises(ValueError, match="neighbors must have shape"):
        show_neighbors(imgs, [0], idx)
    ax = show_embedding(torch.randn(30, 2), torch.arange(30) % 24, names=[f"n{i}" for i in range(24)])
    assert len(ax.get_legend().get_texts()) == 24
    ax = show_embedding(torch.randn(30, 2), torch.arange(30) % 10, annotate=True)
    assert len(ax.texts) == 10
    with pytest.raises(ValueError, match="Y must be"):
        show_embedding(torch.randn(30, 3), torch.zeros(30, dtype=torch.long))


# ------------------------------------------------------------------------------------------------
# helpers.testing.activations: the checks behind the notebook's test cells
# ------------------------------------------------------------------------------------------------
def test_notebook_checks_pass_a_right_answer_and_name_the_slips():
    from helpers.testing import activations as checks

    def right(layers):
        size, jump, start = 1, 1, 0
        for k, s, p in layers:
            size, start, jump = size + (k - 1) * jump, start - (p[0] if isinstance(p, tuple) else p) * jump, jump * s
        return size, jump, start

    checks.check_receptive_field(right, [(3, 2, (0, 1)), (3, 1, 1)], (7, 2, -2), "a chain")
    with pytest.raises(AssertionError, match="The start is 0: padding must move it"):
        checks.check_receptive_field(lambda layers: right(layers)[:2] + (0,), [(3, 1, 1)], (3, 1, -1), "x")
    with pytest.raises(AssertionError, match="Off by one"):
        checks.check_size_jump(lambda layers: (right(layers)[0] - 1,) + right(layers)[1:], [(3, 1, 1)], 3, 1, "x")
    with pytest.raises(AssertionError, match="without calling helpers.activations.receptive_field"):
        checks.check_size_jump(lambda layers: tuple(act_module.receptive_field(layers)), [], 1, 1, "x")
    with pytest.raises(AssertionError, match="receptive_field should return three numbers"):
        checks.student_receptive_field(lambda layers: 7, [])

    def farthest_first(X, queries, k, metric="euclidean", exclude_self=True):
        d = torch.cdist(X[queries], X)
        return d.topk(k, dim=1).indices, d.topk(k, dim=1).values

    X = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
    with pytest.raises(AssertionError, match="sorted farthest first"):
        checks.check_neighbors(farthest_first, X, [2], 2, [[3, 1]], "x")
    with pytest.raises(AssertionError, match=r"indices should be an int64 tensor"):
        checks.student_nearest_neighbors(lambda X, q, k: (torch.zeros(1, k), torch.zeros(1, k)), X, [0], 2)
    with pytest.raises(AssertionError, match="pca should return a tuple"):
        checks.student_pca(lambda X, k: X, checks.pca_data(5, 3, seed=0), 2)
    assert checks.labelled_images(2, 3, 8)[1, 2, 3, 4] == 1234
