"""Tests for helpers.saliency.

Independent references:
* Captum 0.9 (Saliency, Occlusion, GuidedBackprop, LayerGradCam, IntegratedGradients,
  NeuronGradient, NeuronGuidedBackprop) on the pretrained EfficientNet-Lite0 at 64 px and on a
  small random CNN, agreeing within 1e-5 relative (max |ours - captum| / max |captum|);
* hand-derived values (the ReLU6 guided rule on a two-layer net, occlusion windows, GrabCut seeds);
* finite differences (input gradients), brute-force loops (occlusion), scipy.stats.spearmanr.
Captum's GuidedBackprop only overrides nn.ReLU modules, so on EfficientNet (ReLU6) it is compared
on a copy whose ReLU6 modules are swapped for ReLU; the ReLU6 rule is tested against a
hand-computed case.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import captum.attr as captum_attr  # a declared dev dependency: its absence must fail loudly

from helpers.models import ProbabilitiesOnly
from helpers.saliency import (
    GC_BGD,
    GC_FGD,
    GC_PR_BGD,
    cascading_randomization,
    grabcut_mask,
    grabcut_seeds,
    grad_cam,
    guided_backprop,
    guided_relus,
    input_gradient,
    integrated_gradients,
    neuron_gradient,
    occlusion_map,
    occlusion_windows,
    randomize_layers,
    rank_correlation,
    saliency_map,
    smoothgrad,
    to_map,
)
from helpers.testing.nets import TinyCNN
from helpers.testing import saliency as aids
from helpers.testing.saliency import FailsHalfway, TopHalf, hook_count, two_layer

REL = 1e-5  # agreement with Captum: max |ours - captum| / max |captum|


def _rel(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    scale = float(theirs.detach().abs().max())
    return float((ours.detach() - theirs.detach()).abs().max()) / max(scale, 1e-30)


def _assert_rel(ours, theirs, what, tol=REL):
    assert ours.shape == theirs.shape, f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    assert float(theirs.abs().max()) > 0, f"{what}: the reference is all zeros, the test is void"
    r = _rel(ours, theirs)
    assert r <= tol, f"{what}: relative difference {r:.3g} > {tol}"


@pytest.fixture(scope="module")
def relu_model(model):
    """The pretrained net with every ReLU6 module swapped for nn.ReLU (Captum can hook those)."""
    m = copy.deepcopy(model)
    for parent in m.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, nn.ReLU())
    return m


@pytest.fixture(scope="module")
def images():
    from helpers.images import load_image

    return torch.cat([load_image("chelsea", size=64), load_image("coffee", size=64)])


TARGETS = torch.tensor([285, 967])  # Egyptian cat, espresso (not the top class at 64 px)


def _tiny_input(n=2, size=16, seed=0, dtype=torch.float32):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(autouse=True)
def _quiet_captum():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns that it sets backward hooks
        yield


# ------------------------------------------------------------------------------------------------
# agreement with Captum
# ------------------------------------------------------------------------------------------------
def test_pretrained_sees_the_cat(model, images):
    # at 64 px the cat is still recognised; the cup is not (any class can be explained anyway)
    with torch.no_grad():
        assert int(model(images[:1]).argmax()) == 285


@pytest.mark.parametrize("target", [285, TARGETS, [967, 285]])
def test_saliency_matches_captum(model, images, target):
    ours = saliency_map(model, images, target)
    t = torch.as_tensor(target)
    theirs = captum_attr.Saliency(model).attribute(images, target=t if t.ndim else int(t),
                                                   abs=True).amax(1)
    _assert_rel(ours, theirs, "saliency_map vs Captum Saliency")
    assert ours.shape == (2, 64, 64) and bool((ours >= 0).all())


def test_saliency_matches_captum_tiny_float64():
    net = TinyCNN(seed=1).double()
    x = _tiny_input(3, dtype=torch.float64)
    t = torch.tensor([0, 4, 9])
    theirs = captum_attr.Saliency(net).attribute(x, target=t, abs=True).amax(1)
    _assert_rel(saliency_map(net, x, t), theirs, "saliency_map (float64) vs Captum", tol=1e-12)


@pytest.mark.parametrize("size,stride", [(16, 8), (24, 16), (64, 64)])
def test_occlusion_matches_captum(model, images, size, stride):
    """Captum's Occlusion on probabilities gives the raw drop: ours times p_clean."""
    ours = occlusion_map(model, images, TARGETS, size=size, stride=stride, fill=0.5, batch_size=16)
    with torch.no_grad():
        p_clean = model(images).softmax(1).gather(1, TARGETS[:, None])[:, 0]
    occ = captum_attr.Occlusion(lambda z: model(z).softmax(1))
    theirs = occ.attribute(images, sliding_window_shapes=(3, size, size), strides=(3, stride, stride),
                           baselines=0.5, target=TARGETS, perturbations_per_eval=16)
    assert torch.equal(theirs[:, 0], theirs[:, 2])  # Captum's map is the same in every channel
    _assert_rel(ours * p_clean[:, None, None], theirs[:, 0], f"occlusion_map {size}/{stride} vs Captum")


def test_occlusion_matches_captum_tiny_float64():
    """Captum returns occlusion maps in float32 (it casts its sums), hence 1e-6 here."""
    net = TinyCNN(seed=2).double()
    x = _tiny_input(1, size=12, dtype=torch.float64)
    ours = occlusion_map(net, x, 3, size=(4, 3), stride=(3, 2), fill=0.2, batch_size=7)
    with torch.no_grad():
        p = net(x).softmax(1)[0, 3]
    theirs = captum_attr.Occlusion(lambda z: net(z).softmax(1)).attribute(
        x, sliding_window_shapes=(3, 4, 3), strides=(3, 3, 2), baselines=0.2, target=3)
    _assert_rel(ours * p, theirs[:, 0], "occlusion_map (float64, rectangular) vs Captum", tol=1e-6)


@pytest.mark.parametrize("layer", ["head", "stages.4", "stages.6", "stages.3.1.depthwise"])
def test_grad_cam_matches_captum(model, images, layer):
    targets = torch.tensor([285, 504])  # 504: coffee mug -- a runner-up class with mixed evidence
    ours = grad_cam(model, images, targets, layer=layer)
    cam = captum_attr.LayerGradCam(model, model.get_submodule(layer)).attribute(
        images, target=targets, relu_attributions=True)
    theirs = captum_attr.LayerAttribution.interpolate(cam, (64, 64), "bilinear")[:, 0]
    _assert_rel(ours, theirs, f"grad_cam(layer={layer!r}) vs Captum LayerGradCam")
    coarse = grad_cam(model, images, targets, layer=layer, upsample=False)
    _assert_rel(coarse, cam[:, 0], f"grad_cam(layer={layer!r}, upsample=False) vs Captum")


def test_grad_cam_matches_captum_tiny():
    net = TinyCNN(seed=3)
    x = _tiny_input(2)
    for layer in ("act3", "conv3", "act2"):
        cam = captum_attr.LayerGradCam(net, net.get_submodule(layer)).attribute(
            x, target=torch.tensor([2, 5]), relu_attributions=True)
        theirs = captum_attr.LayerAttribution.interpolate(cam, (16, 16), "bilinear")[:, 0]
        _assert_rel(grad_cam(net, x, [2, 5], layer=layer), theirs, f"grad_cam tiny {layer}")
    # a module object works as well as its name
    assert torch.equal(grad_cam(net, x, 1, layer=net.act3), grad_cam(net, x, 1, layer="act3"))


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"])
def test_integrated_gradients_matches_captum(model, images, method):
    """steps = 8: Captum computes Riemann nodes with float32 torch.linspace, and the gradient of
    a ReLU6 network jumps where a unit crosses 0 or 6, so a node 1e-8 away (1/3 in float32 vs
    float64) can change a gradient by 1 %.  With 8 steps every node k/8, (2k+1)/16 is exact."""
    ours = integrated_gradients(model, images, TARGETS, steps=8, method=method, batch_size=5)
    theirs = captum_attr.IntegratedGradients(model).attribute(
        images, baselines=0.0, target=TARGETS, n_steps=8, method=method, internal_batch_size=12)
    _assert_rel(ours, theirs, f"integrated_gradients({method}) vs Captum")


def test_integrated_gradients_trapezoid_is_the_textbook_rule():
    """Captum's 'riemann_trapezoid' weights by 1/n, the textbook rule by 1/(n-1)."""
    net = TinyCNN(seed=4).double()
    x = _tiny_input(2, dtype=torch.float64)
    base = torch.full_like(x, 0.25)
    n = 9  # nodes k/8: exact in Captum's float32 linspace
    ours = integrated_gradients(net, x, [1, 2], baseline=base, steps=n, method="riemann_trapezoid")
    theirs = captum_attr.IntegratedGradients(net).attribute(
        x, baselines=base, target=torch.tensor([1, 2]), n_steps=n, method="riemann_trapezoid")
    # (Captum multiplies by float32 step sizes, so float64 agrees to ~1e-8 only)
    _assert_rel(ours, theirs * n / (n - 1), "trapezoid IG vs Captum * n/(n-1)", tol=1e-7)
    # and by hand: (x - x') * sum_k w_k grad(x' + a_k (x - x')), a_k = k/(n-1), w = [.5, 1, ..., .5]/(n-1)
    grads = [input_gradient(net, base + k / (n - 1) * (x - base), [1, 2]) for k in range(n)]
    w = [0.5] + [1.0] * (n - 2) + [0.5]
    by_hand = (x - base) * sum(wk * g for wk, g in zip(w, grads)) / (n - 1)
    torch.testing.assert_close(ours, by_hand, atol=1e-12, rtol=1e-10)


def test_integrated_gradients_completeness():
    """sum_i IG_i = S(x) - S(baseline), up to the quadrature error."""
    net = TinyCNN(seed=5).double()
    x = _tiny_input(2, dtype=torch.float64)
    ig = integrated_gradients(net, x, [3, 7], steps=256, method="riemann_middle", batch_size=64)
    with torch.no_grad():
        gap = net(x).gather(1, torch.tensor([[3], [7]]))[:, 0] - net(torch.zeros_like(x))[:, [3, 7]].diagonal()
    torch.testing.assert_close(ig.flatten(1).sum(1), gap, rtol=2e-3, atol=1e-4)


def test_neuron_gradient_matches_captum(model, images):
    from helpers.taps import features

    acts = features(model, images, ["head"], detach=True)["head"]
    c, i, j = np.unravel_index(int(acts[0].argmax()), acts.shape[1:])   # an active head unit
    for layer, unit in (("stages.3", (5, 2, 1)), ("stages.2.1.expand", (17, 4, 3)),
                        ("head", (int(c), int(i), int(j)))):
        ours = neuron_gradient(model, images, unit, layer=layer)
        theirs = captum_attr.NeuronGradient(model, model.get_submodule(layer)).attribute(
            images, neuron_selector=unit)
        _assert_rel(ours, theirs, f"neuron_gradient({layer}, {unit}) vs Captum NeuronGradient")


def test_neuron_gradient_channel_mean():
    net = TinyCNN(seed=6).double()
    x = _tiny_input(2, dtype=torch.float64)
    ours = neuron_gradient(net, x, 4, layer="act2")
    theirs = captum_attr.NeuronGradient(net, net.act2).attribute(
        x, neuron_selector=lambda a: a[:, 4].mean(dim=(1, 2)))
    _assert_rel(ours, theirs, "neuron_gradient(channel) vs Captum", tol=1e-12)


def test_guided_backprop_matches_captum_tiny_relu():
    net = TinyCNN(seed=7)
    x = _tiny_input(3)
    t = torch.tensor([0, 5, 8])
    theirs = captum_attr.GuidedBackprop(net).attribute(x, target=t)
    _assert_rel(guided_backprop(net, x, t), theirs, "guided_backprop (ReLU) vs Captum GuidedBackprop")
    plain = input_gradient(net, x, t)
    assert _rel(plain, theirs) > 0.05, "the guided rule must differ from the plain gradient here"


def test_guided_backprop_matches_captum_on_relu_effnet(relu_model, images):
    theirs = captum_attr.GuidedBackprop(relu_model).attribute(images, target=TARGETS)
    _assert_rel(guided_backprop(relu_model, images, TARGETS), theirs,
                "guided_backprop on EfficientNet with ReLU vs Captum")


def test_neuron_guided_backprop_matches_captum(relu_model, images):
    net = TinyCNN(seed=8)
    x = _tiny_input(2)
    theirs = captum_attr.NeuronGuidedBackprop(net, net.conv3).attribute(x, neuron_selector=(3, 2, 5))
    _assert_rel(neuron_gradient(net, x, (3, 2, 5), layer="conv3", guided=True), theirs,
                "neuron_gradient(guided) vs Captum NeuronGuidedBackprop")
    layer = relu_model.get_submodule("stages.3")
    theirs = captum_attr.NeuronGuidedBackprop(relu_model, layer).attribute(images, neuron_selector=(7, 2, 2))
    _assert_rel(neuron_gradient(relu_model, images, (7, 2, 2), layer="stages.3", guided=True), theirs,
                "neuron_gradient(guided) on EfficientNet with ReLU vs Captum")


def test_captum_guided_backprop_ignores_relu6(model, images):
    """Why the ReLU6 rule is tested by hand: Captum leaves ReLU6 alone (plain gradient)."""
    theirs = captum_attr.GuidedBackprop(model).attribute(images[:1], target=285)
    _assert_rel(input_gradient(model, images[:1], 285), theirs, "Captum GuidedBackprop on ReLU6 net")
    assert _rel(guided_backprop(model, images[:1], 285), theirs) > 0.1


# ------------------------------------------------------------------------------------------------
# the guided rule for ReLU6, by hand
# ------------------------------------------------------------------------------------------------
def test_guided_relu6_rule_by_hand():
    net = two_layer(nn.ReLU6)   # Linear(3, 4) -> ReLU6 -> Linear(4, 2), hand-picked weights
    x = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)
    # z = W1 x + b1 = (0.5 - 1, 1 + 1, 2 + 6, 1.5 + 1) = (-0.5, 2, 8, 2.5); upstream gradient of logit 0: (3, -2, 5, 1).
    # plain:  (3, -2, 5, 1) * [0 < z < 6] = (0, -2, 0, 1)          -> dx = W1^T (0, -2, 0, 1)
    # guided: max(g, 0) * [0 < z < 6]      = (0, 0, 0, 1)           -> dx = (1, 1, 1)
    # wrong, no upper bound (z > 0):         (0, 0, 5, 1)           -> dx = (1, 1, 21)
    torch.testing.assert_close(input_gradient(net, x, 0).flatten(), torch.tensor([1.0, -3.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(guided_backprop(net, x, 0).flatten(), torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))
    # class 1: upstream (1, 1, 1, 1): guided = plain = W1^T (0, 1, 0, 1) = (1, 3, 1)
    torch.testing.assert_close(guided_backprop(net, x, 1).flatten(), torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64))
    # boundaries: z exactly 0 or 6 lets nothing through (ReLU6's derivative is 0 there in PyTorch)
    with torch.no_grad():
        net[1].bias.copy_(torch.tensor([-0.5, 5.0, 0.0, 1.0], dtype=torch.float64))  # z = (0, 6, 2, 2.5)
    torch.testing.assert_close(guided_backprop(net, x, 0).flatten(),
                               torch.tensor([1.0, 1.0, 21.0], dtype=torch.float64))


def test_guided_relu_rule_by_hand():
    """Same net with ReLU: z = 8 now passes (no upper bound)."""
    net = two_layer(nn.ReLU)
    x = torch.full((1, 3, 1, 1), 0.5, dtype=torch.float64)
    torch.testing.assert_close(guided_backprop(net, x, 0).flatten(), torch.tensor([1.0, 1.0, 21.0], dtype=torch.float64))


def test_guided_relus_context():
    net = TinyCNN(seed=0, activation="relu6")
    x = _tiny_input(1)
    with guided_relus(net) as n:
        assert n == 3
        assert all(len(m._forward_hooks) == 1 for m in (net.act1, net.act2, net.act3))
        with torch.no_grad():
            torch.testing.assert_close(net(x), TinyCNN(seed=0, activation="relu6")(x))  # forward unchanged
    assert all(len(m._forward_hooks) == 0 for m in net.modules())

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return F.relu(self.conv(x)).mean(dim=(2, 3))

    with pytest.raises(ValueError, match="no nn.ReLU"):
        guided_backprop(Functional(), x, 0)


# ------------------------------------------------------------------------------------------------
# vanilla gradients, SmoothGrad
# ------------------------------------------------------------------------------------------------
def test_input_gradient_finite_differences():
    net = TinyCNN(seed=9).double()
    x = _tiny_input(1, size=6, dtype=torch.float64)
    g = input_gradient(net, x, 2)
    eps = 1e-6
    for idx in [(0, 0, 1, 2), (0, 2, 5, 5), (0, 1, 3, 0)]:
        xp, xm = x.clone(), x.clone()
        xp[idx] += eps
        xm[idx] -= eps
        with torch.no_grad():
            fd = (net(xp)[0, 2] - net(xm)[0, 2]) / (2 * eps)
        assert abs(float(fd) - float(g[idx])) < 1e-6


def test_saliency_is_abs_max_over_channels_of_the_logit_gradient():
    net = TinyCNN(seed=10).double()
    x = _tiny_input(2, dtype=torch.float64)
    g = input_gradient(net, x, [1, 6])
    torch.testing.assert_close(saliency_map(net, x, [1, 6]), g.abs().amax(1))
    torch.testing.assert_close(to_map(g), g.abs().amax(1))
    # the softmax probability gives a different map (so "logit, not softmax" is testable)
    xg = x.clone().requires_grad_(True)
    net(xg).softmax(1)[:, [1, 6]].diagonal().sum().backward()
    assert not torch.allclose(xg.grad.abs().amax(1), saliency_map(net, x, [1, 6]))


def test_smoothgrad():
    net = TinyCNN(seed=11).double()
    x = _tiny_input(2, dtype=torch.float64)
    torch.testing.assert_close(smoothgrad(net, x, [0, 1], noise=0.0, samples=3), saliency_map(net, x, [0, 1]))
    a = smoothgrad(net, x, 4, samples=5, batch_size=2, seed=3)
    torch.testing.assert_close(a, smoothgrad(net, x, 4, samples=5, batch_size=5, seed=3))
    assert not torch.allclose(a, smoothgrad(net, x, 4, samples=5, seed=4))
    # one sample, by hand: |grad at x + eps| with eps drawn from the same generator
    gen = torch.Generator().manual_seed(7)
    span = (x.flatten(1).amax(1) - x.flatten(1).amin(1)).view(2, 1, 1, 1)
    eps = torch.randn((2, 1, 3, 16, 16), generator=gen, dtype=torch.float64)[:, 0] * 0.2 * span
    xg = (x + eps).requires_grad_(True)
    net(xg)[:, 4].sum().backward()
    torch.testing.assert_close(smoothgrad(net, x, 4, samples=1, noise=0.2, seed=7), xg.grad.abs().amax(1))
    # a linear model has a constant gradient: SmoothGrad = saliency for any noise
    lin = nn.Sequential(nn.Flatten(1), nn.Linear(3 * 16 * 16, 5)).double()
    torch.testing.assert_close(smoothgrad(lin, x, 2, samples=4, noise=0.5), saliency_map(lin, x, 2))
    state = torch.random.get_rng_state()
    smoothgrad(net, x, 1, samples=2)
    assert torch.equal(state, torch.random.get_rng_state()), "smoothgrad must not use the global RNG"


# ------------------------------------------------------------------------------------------------
# occlusion
# ------------------------------------------------------------------------------------------------
def test_occlusion_windows_layout():
    assert occlusion_windows(10, 10, 4, 4) == [(t, l, min(4, 10 - t), min(4, 10 - l))
                                               for t in (0, 4, 8) for l in (0, 4, 8)]
    assert occlusion_windows(8, 8, 4, 2) == [(t, l, 4, 4) for t in (0, 2, 4) for l in (0, 2, 4)]
    assert occlusion_windows(5, 7, (5, 3), (1, 2)) == [(0, 0, 5, 3), (0, 2, 5, 3), (0, 4, 5, 3)]
    with pytest.raises(ValueError, match="stride"):
        occlusion_windows(10, 10, 2, 3)
    with pytest.raises(ValueError, match="size"):
        occlusion_windows(10, 10, 11, 2)


def _occlusion_brute(f, x, t, size, stride, fill):
    """One window at a time, with Python loops: the definition, written out."""
    n, _, h, w = x.shape
    out = torch.zeros(n, h, w, dtype=torch.float64)
    with torch.no_grad():
        for i in range(n):
            p0 = float(f(x[i:i + 1]).softmax(1)[0, t])
            total = torch.zeros(h, w, dtype=torch.float64)
            count = torch.zeros(h, w, dtype=torch.float64)
            top = 0
            while True:
                left = 0
                while True:
                    xo = x[i:i + 1].clone()
                    xo[..., top:top + size, left:left + size] = fill
                    p = float(f(xo).softmax(1)[0, t])
                    total[top:top + size, left:left + size] += (p0 - p) / p0
                    count[top:top + size, left:left + size] += 1
                    if left + size >= w:
                        break
                    left += stride
                if top + size >= h:
                    break
                top += stride
            out[i] = total / count
    return out


def test_occlusion_brute_force():
    net = TinyCNN(seed=12).double()
    x = _tiny_input(2, size=13, dtype=torch.float64)
    for size, stride, fill in ((4, 3, 0.5), (5, 5, 0.0), (13, 13, 1.0), (3, 1, 0.25)):
        ours = occlusion_map(net, x, 6, size=size, stride=stride, fill=fill, batch_size=5)
        torch.testing.assert_close(ours, _occlusion_brute(net, x, 6, size, stride, fill), atol=1e-12, rtol=1e-9)


def test_occlusion_batches_and_black_box():
    net = TinyCNN(seed=13)
    x = _tiny_input(2, size=12)
    calls = []

    def counted(z):
        calls.append(z.shape[0])
        return net(z)

    ours = occlusion_map(counted, x, [1, 2], size=4, stride=2, batch_size=10)
    n_windows = len(occlusion_windows(12, 12, 4, 2))  # 25
    assert calls == [2] + [10, 10, 5] * 2, calls      # one clean pass, then batches of <= 10
    api = ProbabilitiesOnly(net)
    from_probs = occlusion_map(api, x, [1, 2], size=4, stride=2, batch_size=10, output="probs")
    torch.testing.assert_close(from_probs, ours)
    assert api.queries == 2 + 2 * n_windows
    # fill as a per-channel tensor
    fill = torch.tensor([0.1, 0.5, 0.9]).view(3, 1, 1)
    xo = x[:1].clone()
    xo[..., :4, :4] = fill
    with torch.no_grad():
        p0, p1 = net(x[:1]).softmax(1)[0, 1], net(xo).softmax(1)[0, 1]
    m = occlusion_map(net, x[:1], 1, size=4, stride=4, fill=fill)
    torch.testing.assert_close(m[0, 0, 0], (p0 - p1) / p0)


def test_occlusion_normalised_to_the_clean_probability():
    """A toy model with known probabilities: logit_0 = 10 * mean of the top half, logit_1 = 0."""
    x = torch.ones(1, 3, 4, 4, dtype=torch.float64)
    m = occlusion_map(TopHalf(), x, 0, size=2, stride=2, fill=0.0)
    p0 = torch.sigmoid(torch.tensor(10.0, dtype=torch.float64))      # clean: mean 1
    p_occ = torch.sigmoid(torch.tensor(5.0, dtype=torch.float64))    # half the top half hidden
    expected = torch.zeros(1, 4, 4, dtype=torch.float64)
    expected[:, :2] = (p0 - p_occ) / p0
    torch.testing.assert_close(m, expected)


# ------------------------------------------------------------------------------------------------
# the caller's state is left alone, hooks are always removed
# ------------------------------------------------------------------------------------------------
METHODS = {
    "input_gradient": lambda m, x, t: input_gradient(m, x, t),
    "saliency_map": lambda m, x, t: saliency_map(m, x, t),
    "smoothgrad": lambda m, x, t: smoothgrad(m, x, t, samples=2),
    "occlusion_map": lambda m, x, t: occlusion_map(m, x, t, size=8, stride=8),
    "guided_backprop": lambda m, x, t: guided_backprop(m, x, t),
    "neuron_gradient": lambda m, x, t: neuron_gradient(m, x, (1, 1, 1), layer="act3", guided=True),
    "neuron_gradient_plain": lambda m, x, t: neuron_gradient(m, x, 2, layer="conv3"),
    "grad_cam": lambda m, x, t: grad_cam(m, x, t, layer="act3"),
    "integrated_gradients": lambda m, x, t: integrated_gradients(m, x, t, steps=3),
}


def _global_hooks():
    from torch.nn.modules import module as mm

    return tuple(len(getattr(mm, name, {})) for name in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
        "_global_backward_pre_hooks"))


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("x_requires_grad", [False, True])
def test_state_left_as_found(name, x_requires_grad):
    net = TinyCNN(seed=14, activation="relu6", gain=2.0)
    net.train()
    net.act2.eval()                       # a mixed state must come back exactly
    x = _tiny_input(2)
    x.requires_grad_(x_requires_grad)
    if x_requires_grad:
        x.grad = torch.full_like(x, 7.0)
    x_before = x.detach().clone()
    params = {k: p.detach().clone() for k, p in net.named_parameters()}
    net.conv2.bias.requires_grad_(False)   # mixed requires_grad flags must come back exactly too
    hooks_before = _global_hooks()
    with torch.no_grad():                  # the caller's grad mode is off: methods still work ...
        out = METHODS[name](net, x, [3, 4])
        assert not torch.is_grad_enabled()  # ... and it is still off afterwards
    assert out.device == x.device and not out.requires_grad
    assert torch.equal(x.detach(), x_before) and x.requires_grad == x_requires_grad
    if x_requires_grad:
        assert torch.equal(x.grad, torch.full_like(x, 7.0))
    else:
        assert x.grad is None
    assert all(p.grad is None for p in net.parameters()), "parameter .grad must stay None"
    assert all(torch.equal(p, params[k]) for k, p in net.named_parameters())
    assert [k for k, p in net.named_parameters() if not p.requires_grad] == ["conv2.bias"]
    assert net.training and not net.act2.training and net.act1.training
    assert hook_count(net) == 0 and _global_hooks() == hooks_before


def test_batchnorm_statistics_untouched(model):
    """A model in train mode would update BatchNorm running stats; methods run it in eval mode."""
    m = copy.deepcopy(model).train()
    stats = {k: v.clone() for k, v in m.state_dict().items() if "running" in k}
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    saliency_map(m, x, 1)
    grad_cam(m, x, 1)
    occlusion_map(m, x, 1, size=16, stride=16)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in stats.items())
    assert all(mod.training for mod in m.modules())


@pytest.mark.parametrize("name", list(METHODS))
def test_hooks_removed_when_forward_raises(name):
    net = FailsHalfway(seed=0)             # raises after act1 and act2 ran
    net.train()
    before = _global_hooks()
    with pytest.raises(RuntimeError, match="half-way"):
        METHODS[name](net, _tiny_input(1), 0)
    assert hook_count(net) == 0 and _global_hooks() == before
    assert all(m.training for m in net.modules())
    assert torch.is_grad_enabled()


@pytest.mark.parametrize("name", [n for n in METHODS if not n.startswith("neuron")])
def test_hooks_removed_on_bad_target(name):
    net = TinyCNN(seed=0)
    with pytest.raises(ValueError, match="target"):
        METHODS[name](net, _tiny_input(1), 10)  # 10 classes: 0..9
    assert hook_count(net) == 0


def test_guided_relus_removes_hooks_on_exception():
    net = TinyCNN(seed=0)
    with pytest.raises(KeyError):
        with guided_relus(net):
            raise KeyError("inside")
    assert hook_count(net) == 0


# ------------------------------------------------------------------------------------------------
# errors name the argument
# ------------------------------------------------------------------------------------------------
def test_errors():
    net = TinyCNN(seed=0)
    x = _tiny_input(2)
    with pytest.raises(ValueError, match="x must have shape"):
        saliency_map(net, x[:, :1], 0)
    with pytest.raises(ValueError, match="x must hold pixel values"):
        saliency_map(net, x * 255, 0)
    with pytest.raises(ValueError, match=r"target must be an int or a tensor of shape \(2,\)"):
        saliency_map(net, x, torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="target must hold integer"):
        saliency_map(net, x, torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="target"):
        saliency_map(net, x, True)
    with pytest.raises(ValueError, match="layer 'act9' is not a layer.*Did you mean"):
        grad_cam(net, x, 0, layer="act9")
    with pytest.raises(ValueError, match="unit: channel"):
        neuron_gradient(net, x, (99, 0, 0), layer="act2")
    with pytest.raises(ValueError, match="unit: position"):
        neuron_gradient(net, x, (1, 20, 0), layer="act2")
    with pytest.raises(TypeError, match="unit must be"):
        neuron_gradient(net, x, (1, 2), layer="act2")
    with pytest.raises(ValueError, match="method must be one of"):
        integrated_gradients(net, x, 0, method="simpson")
    with pytest.raises(ValueError, match="baseline must be"):
        integrated_gradients(net, x, 0, baseline=torch.zeros(5))
    with pytest.raises(ValueError, match="fill must be"):
        occlusion_map(net, x, 0, size=4, stride=4, fill=torch.zeros(5))
    with pytest.raises(ValueError, match="output must be one of"):
        occlusion_map(net, x, 0, size=4, stride=4, output="softmax")
    with pytest.raises(ValueError, match="noise must be"):
        smoothgrad(net, x, 0, noise=-1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        grad_cam(lambda z: z, x, 0)


def test_black_box_has_no_gradients():
    net = TinyCNN(seed=0)
    api = ProbabilitiesOnly(net)
    x = _tiny_input(2)
    p = api(x)
    torch.testing.assert_close(p.sum(1), torch.ones(2))
    assert not p.requires_grad and api.queries == 2 and "hidden" in repr(api)
    for method in (saliency_map, integrated_gradients, smoothgrad):
        with pytest.raises(RuntimeError, match="needs gradients"):
            method(api, x, 0)
    with pytest.raises(TypeError, match="nn.Module"):
        guided_backprop(api, x, 0)


def test_dtype_follows_input():
    net = TinyCNN(seed=0).double()
    x = _tiny_input(1, dtype=torch.float64)
    for name, fn in METHODS.items():
        assert fn(net, x, 1).dtype == torch.float64, name


# ------------------------------------------------------------------------------------------------
# GrabCut, randomisation, rank correlation, TinyCNN
# ------------------------------------------------------------------------------------------------
def test_grabcut_seeds_by_hand():
    s = torch.arange(20.0).view(1, 4, 5)
    seeds = grabcut_seeds(s, fg_quantile=0.9, bg_quantile=0.25)
    # quantiles of 0..19 (linear interpolation): 0.9 -> 17.1, 0.25 -> 4.75
    expected = torch.full((1, 4, 5), GC_PR_BGD)
    expected.view(-1)[:5] = GC_BGD
    expected.view(-1)[18:] = GC_FGD
    assert torch.equal(seeds, expected)
    assert torch.equal(grabcut_seeds(s[0]), grabcut_seeds(s[:, None]))  # (H, W) and (N, 1, H, W)
    with pytest.raises(ValueError, match="bg_quantile"):
        grabcut_seeds(s, fg_quantile=0.3, bg_quantile=0.5)
    with pytest.raises(ValueError, match="fg_quantile"):
        grabcut_seeds(s, fg_quantile=1.5)


def _square_scene(seed=0):
    """A red disc on a noisy blue-green background, and a speckled saliency map inside the disc."""
    g = torch.Generator().manual_seed(seed)
    h = w = 48
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    disc = ((yy - 22) ** 2 + (xx - 26) ** 2) < 14 ** 2
    img = torch.stack([torch.full((h, w), 0.1), torch.full((h, w), 0.5), torch.full((h, w), 0.7)])
    img[:, disc] = torch.tensor([0.85, 0.15, 0.1])[:, None]
    img = (img + 0.05 * torch.randn(3, h, w, generator=g)).clamp(0, 1)
    sal = torch.rand(h, w, generator=g) * 0.3
    sal[disc] += torch.rand(int(disc.sum()), generator=g)        # high but speckled on the disc
    return img[None], sal[None], disc


def test_grabcut_recovers_the_object():
    img, sal, disc = _square_scene()
    seeds = grabcut_seeds(sal)
    assert (seeds == GC_FGD).sum() < 0.2 * disc.sum()      # the seeds alone cover little of it
    mask = grabcut_mask(img, sal, blur_sigma=1.0)
    assert mask.dtype == torch.bool and mask.shape == (1, 48, 48)
    iou = float((mask[0] & disc).sum() / (mask[0] | disc).sum())
    assert iou > 0.95, iou
    assert torch.equal(mask, grabcut_mask(img, sal, blur_sigma=1.0)), "repeatable"
    with pytest.raises(ValueError, match="saliency must hold one"):
        grabcut_mask(img, sal[:, :10])
    with pytest.raises(ValueError, match="no contrast"):
        grabcut_mask(img, torch.ones(1, 48, 48))


def test_randomize_layers():
    net = TinyCNN(seed=0)
    before = copy.deepcopy(net.state_dict())
    rnd = randomize_layers(net, layers=["conv3", "classifier"], seed=1)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items()), "original untouched"
    for k, v in rnd.state_dict().items():
        same = torch.equal(v, before[k])
        assert same == (not k.startswith(("conv3", "classifier"))), k
    w0, w1 = before["conv3.weight"], rnd.conv3.weight.detach()
    assert abs(float(w1.std()) / float(w0.std()) - 1) < 0.15
    assert abs(float(torch.corrcoef(torch.stack([w0.flatten(), w1.flatten()]))[0, 1])) < 0.2
    assert torch.equal(randomize_layers(net, layers="conv3", seed=1).conv3.weight, rnd.conv3.weight)
    assert torch.equal(randomize_layers(net, layers=[net.conv3], seed=1).conv3.weight,
                       rnd.conv3.weight), "a submodule works as well as its name"
    with pytest.raises(ValueError, match="layers contains 'conv9'.*Did you mean"):
        randomize_layers(net, layers=["conv9"])
    with pytest.raises(ValueError, match="at least one layer"):
        randomize_layers(net, layers=[])
    same = randomize_layers(net, layers="conv1", inplace=True)
    assert same is net and not torch.equal(net.conv1.weight, before["conv1.weight"])


def test_cascading_randomization():
    net = TinyCNN(seed=0)
    before = copy.deepcopy(net.state_dict())
    order = ["classifier", "conv3", "conv2", "conv1"]
    for k, (name, m) in enumerate(cascading_randomization(net, layers=order)):
        assert name == order[k]
        sd = m.state_dict()
        for j, layer in enumerate(order):
            changed = not torch.equal(sd[f"{layer}.weight"], before[f"{layer}.weight"])
            assert changed == (j <= k), (name, layer)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="layers contains 'conv4'"):   # checked before any step
        cascading_randomization(net, layers=["classifier", "conv4"])


def test_rank_correlation():
    from scipy.stats import spearmanr

    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 5, 5, generator=g)
    b = torch.rand(3, 5, 5, generator=g)
    r = rank_correlation(a, b)
    expected = [spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic for i in range(3)]
    np.testing.assert_allclose(r.numpy(), expected)
    torch.testing.assert_close(rank_correlation(a, a.exp() * 3), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(rank_correlation(a, -a), -torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(a, b[:2])


def test_tiny_cnn_is_deterministic_and_leaves_global_rng():
    state = torch.random.get_rng_state()
    a, b = TinyCNN(seed=3), TinyCNN(seed=3)
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.conv1.weight, TinyCNN(seed=4).conv1.weight)
    assert isinstance(TinyCNN(activation="relu6").act1, nn.ReLU6)
    assert not a.training and all(p.requires_grad for p in a.parameters())


# ------------------------------------------------------------------------------------------------
# helpers.testing.saliency: the notebook's checks pass a right answer and name a wrong one
# ------------------------------------------------------------------------------------------------
def _answer_saliency(model, x, target, *, absolute=True):
    x_ = x.detach().clone().requires_grad_(True)
    t = torch.as_tensor(target).reshape(-1).expand(x.shape[0])
    (g,) = torch.autograd.grad(model(x_).gather(1, t[:, None]).sum(), x_)
    return (g.abs() if absolute else g).amax(dim=1)


def test_check_saliency_map_passes_and_names_slips():
    net, x = TinyCNN(seed=0), _tiny_input(2)

    def saliency_map(model, x, target):  # noqa: F811 - the student's function, by its name
        return _answer_saliency(model, x, target)

    aids.check_saliency_map(saliency_map, net, x, [1, 2], "two images")
    aids.check_leaves_state(saliency_map, net, x, 3)

    def no_abs(model, x, target):
        return _answer_saliency(model, x, target, absolute=False)

    with pytest.raises(AssertionError, match="known slip: no absolute value"):
        aids.check_saliency_map(no_abs, net, x, [1, 2], "two images")

    def backward(model, x, target):
        x_ = x.detach().clone().requires_grad_(True)
        model(x_)[:, target].sum().backward()
        return x_.grad.abs().amax(dim=1)

    with pytest.raises(AssertionError, match="filled the .grad of the model's parameters"):
        aids.check_leaves_state(backward, TinyCNN(seed=0), x, 3)


def test_student_forbids_the_reference():
    import helpers.saliency as ref   # (forbid patches modules; this test's own imports escape it)

    def saliency_map(model, x, target):  # noqa: F811
        return ref.to_map(ref.input_gradient(model, x, target))

    with pytest.raises(AssertionError, match="without calling"):
        aids.student(saliency_map, TinyCNN(seed=0), _tiny_input(1), 0)
    with pytest.raises(AssertionError, match="not implemented yet"):
        aids.student(lambda *a: (_ for _ in ()).throw(NotImplementedError()), None)


def test_occlusion_by_definition_and_batches():
    net, x = TinyCNN(seed=12).double(), _tiny_input(2, size=13, dtype=torch.float64)
    torch.testing.assert_close(aids.occlusion_by_definition(net, x, 6, size=4, stride=3),
                               occlusion_map(net, x, 6, size=4, stride=3))

    def one_at_a_time(model, x, target, *, size, stride, fill=0.5, batch_size=64):
        return aids.occlusion_by_definition(model, x, target, size=size, stride=stride, fill=fill)

    with pytest.raises(AssertionError, match="forward passes"):
        aids.check_occlusion_batches(one_at_a_time, net, x, 6, size=4, stride=3, batch_size=8)


def test_guided_checks():
    def guided_backprop(model, x, target):  # noqa: F811 - the plain gradient: the rule is missing
        x_ = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(x_)[:, target].sum(), x_)
        return g

    with pytest.raises(AssertionError, match="plain gradient"):
        aids.check_guided_by_hand(guided_backprop, nn.ReLU6, [1.0, 1.0, 1.0])
    with pytest.raises(AssertionError, match="plain gradient"):
        aids.check_guided_backprop(guided_backprop, TinyCNN(seed=5), _tiny_input(1), 3, "a tiny CNN")

    def leaky(model, x, target):
        for m in model.modules():
            if isinstance(m, nn.ReLU6):
                m.register_forward_hook(lambda *a: None)
        return model(x)

    with pytest.raises(AssertionError, match="left 3 hook"):
        aids.check_hooks_removed_on_error(leaky)

