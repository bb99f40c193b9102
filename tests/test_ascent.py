"""Tests of helpers.ascent: penalties, ascent steps, objectives, parameterisations, the loop.

Independent checks: the total variation against a hand-computed case, a NumPy loop and
gradcheck; the edge energy against SciPy's correlate and a NumPy block mean; blurring against
scipy.ndimage.gaussian_filter; percentiles against numpy.percentile; gradients against autograd
of the plain model; DeepDream's gradient at the layer against the activation (a tensor hook).
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn as nn

from helpers import ascent as A
from helpers.filters import apply_filter, gaussian_kernel
from helpers.images import load_image
from helpers.models import load_model
from helpers.taps import features


@pytest.fixture(scope="module")
def model():
    return load_model("efficientnet_lite0")


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


@pytest.fixture
def tiny():
    """A small conv net with trainable parameters, in train mode: state that must be restored."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 7))
    net.train()
    return net


# =============================================================================================
# total variation
# =============================================================================================
def _tv_numpy(x: np.ndarray, beta: float) -> np.ndarray:
    n, c, h, w = x.shape
    out = np.zeros(n)
    for a in range(n):
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    dx = x[a, k, i, j + 1] - x[a, k, i, j] if j + 1 < w else 0.0
                    dy = x[a, k, i + 1, j] - x[a, k, i, j] if i + 1 < h else 0.0
                    out[a] += (dx * dx + dy * dy) ** (beta / 2)
    return out


def test_tv_loss_hand_computed():
    x = torch.tensor([[[[0.0, 1.0, 3.0],
                        [2.0, 2.0, 2.0]]]])
    # (0,0): dx=1, dy=2 -> 5;  (0,1): dx=2, dy=1 -> 5;  (0,2): dx=0, dy=-1 -> 1
    # (1,0): dx=0 -> 0;  (1,1): 0;  (1,2): 0
    assert torch.allclose(A.tv_loss(x), torch.tensor([11.0]))
    expected_b1 = 2 * 5 ** 0.5 + 1.0
    assert torch.allclose(A.tv_loss(x, beta=1.0), torch.tensor([expected_b1]))
    assert torch.allclose(A.tv_loss(x, beta=4.0), torch.tensor([25.0 + 25.0 + 1.0]))
    # a constant image has no variation; a batch gives one value per image
    assert torch.equal(A.tv_loss(torch.full((3, 2, 5, 4), 0.3)), torch.zeros(3))


@pytest.mark.parametrize("beta", [1.0, 1.5, 2.0, 3.0])
def test_tv_loss_matches_numpy_loop(beta):
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 5, 7, generator=gen, dtype=torch.float64)
    expected = _tv_numpy(x.numpy(), beta)
    np.testing.assert_allclose(A.tv_loss(x, beta).numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("beta", [1.0, 2.0, 2.5])
def test_tv_loss_gradcheck(beta):
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: A.tv_loss(t, beta), (x,))


def test_tv_loss_gradient_finite_on_flat_regions():
    x = torch.full((1, 1, 6, 6), 0.5, requires_grad=True)
    A.tv_loss(x, beta=1.0).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.equal(x.grad, torch.zeros_like(x))


def test_tv_loss_errors():
    with pytest.raises(ValueError, match="x"):
        A.tv_loss(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="beta"):
        A.tv_loss(torch.rand(1, 3, 8, 8), beta=0)


# =============================================================================================
# edge energy
# =============================================================================================
def _edge_energy_numpy(x: np.ndarray) -> np.ndarray:
    t = np.arange(-2, 3, dtype=np.float64)
    k = np.exp(-t[:, None] ** 2 / 2 - t[None, :] ** 2 / 2)
    k /= k.sum()
    n, c = x.shape[:2]
    out = np.zeros(n)
    for a in range(n):
        for ch in range(c):
            u = x[a, ch].astype(np.float64)
            while min(u.shape) > 5:
                blurred = scipy.ndimage.correlate(u, k, mode="mirror")
                out[a] += ((u - blurred) ** 2).sum()
                h2, w2 = u.shape[0] // 2, u.shape[1] // 2
                u = u[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2).mean(axis=(1, 3))
    return out


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 45, 27), (1, 1, 6, 9)])
def test_edge_energy_matches_scipy(shape):
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(*shape, generator=gen, dtype=torch.float64)
    np.testing.assert_allclose(A.edge_energy(x).numpy(), _edge_energy_numpy(x.numpy()), rtol=1e-9)


def test_edge_energy_properties():
    assert float(A.edge_energy(torch.full((1, 3, 40, 40), 0.8))) < 1e-9          # rounding only
    assert torch.equal(A.edge_energy(torch.rand(1, 3, 5, 5)), torch.zeros(1))   # no scale > 5 px
    # fine noise carries far more edge energy than a smooth ramp of the same range
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)
    noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert float(A.edge_energy(noise)) > 100 * float(A.edge_energy(ramp))
    # the coarse scales count: a pattern of period 16 has energy mainly below the finest scale
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    coarse = (torch.sin(2 * torch.pi * xx / 16) * torch.sin(2 * torch.pi * yy / 16)).expand(1, 1, 64, 64)
    only_finest = float(((coarse - apply_filter(coarse, gaussian_kernel(5, 1.0))) ** 2).sum())
    assert float(A.edge_energy(coarse)) > 2 * only_finest


def test_edge_energy_is_differentiable():
    x = torch.rand(1, 3, 24, 24, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(A.edge_energy, (x,))


# =============================================================================================
# the class-score step
# =============================================================================================
def test_l2_class_step_is_gradient_ascent_on_the_logit(model):
    gen = torch.Generator().manual_seed(4)
    img = 0.5 + 0.3 * torch.randn(2, 3, 48, 48, generator=gen)
    before = img.clone()
    lr, lam, c = 0.7, 0.05, 130
    out = A.l2_class_step(model, img, c, lr=lr, l2_reg=lam)
    assert torch.equal(img, before), "the input must not be modified"
    assert not out.requires_grad and out.shape == img.shape
    x = img.clone().requires_grad_(True)
    (g_logit,) = torch.autograd.grad(model(x)[:, c].sum(), x)
    expected = img + lr * (g_logit - 2 * lam * (img - 0.5))         # d/dx lam||x-0.5||^2 = 2 lam (x-0.5)
    assert torch.allclose(out, expected, atol=1e-5)


def test_l2_class_step_raises_the_logit(model):
    c = 130
    img = torch.full((1, 3, 64, 64), 0.5)
    scores = [float(A.evaluate(model, A.class_logit(c), img))]
    for _ in range(8):
        img = A.l2_class_step(model, img, c, lr=1.0, l2_reg=1e-3).clamp(0, 1)
        scores.append(float(A.evaluate(model, A.class_logit(c), img)))
    # plain gradient steps overshoot now and then, but the class score climbs by several logits
    assert scores[-1] - scores[0] > 3, scores


def test_l2_class_step_restores_model_state(tiny):
    flags = [p.requires_grad for p in tiny.parameters()]
    A.l2_class_step(tiny, torch.rand(1, 3, 8, 8), 2, lr=0.1, l2_reg=0.0)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    assert all(p.grad is None for p in tiny.parameters())
    with pytest.raises(ValueError, match="target"):
        A.l2_class_step(tiny, torch.rand(1, 3, 8, 8), 99, lr=0.1, l2_reg=0.0)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    with pytest.raises(ValueError, match="img"):
        A.l2_class_step(tiny, torch.rand(3, 8, 8), 2, lr=0.1, l2_reg=0.0)


# =============================================================================================
# Yosinski's regularisers
# =============================================================================================
def test_blur_and_clip_blurs_only_every_k_steps():
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(1, 3, 20, 20, generator=gen, dtype=torch.float64)
    g = torch.randn(1, 3, 20, 20, generator=gen, dtype=torch.float64)
    for step in (1, 2, 4, 5):
        assert torch.equal(A.blur_and_clip(x, g, step, blur_every=3, sigma=0.8), x)
    blurred = A.blur_and_clip(x, g, 6, blur_every=3, sigma=0.8)
    d = (x - 0.5).numpy()
    # helpers' kernel has radius ceil(3 sigma) = 3; scipy: radius = round(truncate * sigma)
    expected = 0.5 + scipy.ndimage.gaussian_filter(d, sigma=(0, 0, 0.8, 0.8), mode="mirror",
                                                   truncate=3 / 0.8)
    np.testing.assert_allclose(blurred.numpy(), expected, atol=1e-12)
    assert torch.equal(A.blur_and_clip(x, g, 6, blur_every=0), x)


def test_blur_and_clip_percentile_clipping():
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 10, 10, generator=gen, dtype=torch.float64)
    g = torch.randn(2, 3, 10, 10, generator=gen, dtype=torch.float64)
    x0, g0 = x.clone(), g.clone()
    y = A.blur_and_clip(x, g, 1, blur_every=0, norm_pct=30)
    assert torch.equal(x, x0) and torch.equal(g, g0)
    d = (x - 0.5).numpy()
    for n in range(2):
        norms = np.sqrt((d[n] ** 2).sum(axis=0))
        keep = norms >= np.percentile(norms, 30)
        np.testing.assert_allclose(y[n].numpy(), 0.5 + d[n] * keep, atol=1e-12)
        assert keep.sum() == 70
    z = A.blur_and_clip(x, g, 1, blur_every=0, contrib_pct=50)
    for n in range(2):
        contrib = np.abs((d[n] * g[n].numpy()).sum(axis=0))
        keep = contrib >= np.percentile(contrib, 50)
        np.testing.assert_allclose(z[n].numpy(), 0.5 + d[n] * keep, atol=1e-12)


def test_blur_and_clip_errors():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="grad"):
        A.blur_and_clip(x, torch.rand(1, 3, 8, 9), 1)
    with pytest.raises(ValueError, match="norm_pct"):
        A.blur_and_clip(x, x, 1, norm_pct=150)
    with pytest.raises(ValueError, match="step"):
        A.blur_and_clip(x, x, 0)


# =============================================================================================
# feature inversion
# =============================================================================================
def test_invert_features_reduces_the_loss(model):
    photo = load_image("chelsea", size=64)
    target = features(model, photo, ["stages.1"], detach=True)["stages.1"]
    init = torch.full_like(photo, 0.5)
    x, losses = A.invert_features(model, "stages.1", target, init, steps=25, lr=0.05, tv_weight=2.0)
    assert torch.equal(init, torch.full_like(photo, 0.5))
    assert len(losses) == 25 and x.shape == photo.shape and 0 <= float(x.min()) and float(x.max()) <= 1
    assert losses[-1] < 0.5 * losses[0], losses
    # the picture moves towards the photo: its pixels correlate with the photo's
    xc, pc = x - x.mean(), photo - photo.mean()
    assert float((xc * pc).sum() / (xc.norm() * pc.norm())) > 0.5
    assert _hook_count(model) == 0


def test_invert_features_checks_and_state(tiny):
    target = features(tiny, torch.rand(1, 3, 8, 8), ["2"], detach=True)["2"]
    flags = [p.requires_grad for p in tiny.parameters()]
    A.invert_features(tiny, "2", target, torch.rand(1, 3, 8, 8), steps=2, lr=0.1, tv_weight=1.0)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    assert all(p.grad is None for p in tiny.parameters()) and _hook_count(tiny) == 0
    with pytest.raises(ValueError, match="target has shape"):
        A.invert_features(tiny, "2", target, torch.rand(1, 3, 16, 16), steps=1, lr=0.1, tv_weight=0)
    assert tiny.training and _hook_count(tiny) == 0
    with pytest.raises(ValueError, match="not a layer"):
        A.invert_features(tiny, "conv9", target, torch.rand(1, 3, 8, 8), steps=1, lr=0.1, tv_weight=0)


# =============================================================================================
# DeepDream
# =============================================================================================
def test_deepdream_gradient_at_layer_equals_activation(model):
    """Backward from 1/2 sum a^2 hands the layer a gradient equal to its activation."""
    layer = model.get_submodule("stages.2")
    seen = {}

    def keep_grad(module, inputs, output):
        seen["act"] = output.detach().clone()
        output.register_hook(lambda grad: seen.setdefault("grad", grad.detach().clone()))

    handle = layer.register_forward_hook(keep_grad)
    try:
        A.deepdream_step(model, torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(7)),
                         "stages.2", lr=0.01)
    finally:
        handle.remove()
    assert torch.allclose(seen["grad"], seen["act"])


def test_deepdream_step_is_l1_normalised_and_jitter_equivariant(model):
    gen = torch.Generator().manual_seed(8)
    x = 0.25 + 0.5 * torch.rand(1, 3, 48, 48, generator=gen)        # far from the clip limits
    lr = 1e-3
    y = A.deepdream_step(model, x, "stages.2", lr=lr)
    xs = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(0.5 * features(model, xs, ["stages.2"])["stages.2"].pow(2).sum(), xs)
    assert torch.allclose(y, x + lr * g / g.abs().mean(), atol=1e-6)
    assert abs(float((y - x).abs().mean()) - lr) < 1e-6
    shifted = A.deepdream_step(model, x, "stages.2", lr=lr, shift=(5, -3))
    rolled = torch.roll(A.deepdream_step(model, torch.roll(x, (5, -3), (2, 3)), "stages.2", lr=lr),
                        (-5, 3), (2, 3))
    assert torch.allclose(shifted, rolled, atol=1e-6)
    assert not torch.allclose(shifted, y, atol=1e-4)
    big = A.deepdream_step(model, x, "stages.2", lr=1.0)
    assert float(big.min()) == 0.0 and float(big.max()) == 1.0       # pixel clipping


def test_dream_octaves(model):
    img = load_image("coffee", size=64)
    out = A.dream(model, img, "stages.2", octaves=2, steps=2, lr=0.02, progress=False)
    again = A.dream(model, img, "stages.2", octaves=2, steps=2, lr=0.02, progress=False)
    assert out.shape == img.shape and torch.equal(out, again)
    assert 0.005 < float((out - img).abs().mean()) < 0.2
    assert _hook_count(model) == 0


# =============================================================================================
# objectives
# =============================================================================================
def test_objectives_compose():
    acts = {"a": torch.tensor([[[[1.0, 3.0]]], [[[2.0, 2.0]]]]), A.OUTPUT: torch.tensor([[1.0, 5.0], [2.0, -1.0]]),
            A.INPUT: torch.full((2, 3, 2, 2), 0.75)}
    ch = A.channel("a", 0)
    cl = A.class_logit(1)
    assert torch.equal(ch(acts), torch.tensor([2.0, 2.0]))
    assert torch.equal(cl(acts), torch.tensor([5.0, -1.0]))
    combo = cl + 0.5 * ch - A.image_l2() / 4
    l2 = torch.full((2,), 12 * 0.0625)
    assert torch.allclose(combo(acts), cl(acts) + 0.5 * ch(acts) - l2 / 4)
    assert torch.allclose((-cl)(acts), -cl(acts))
    assert torch.allclose((1 - cl)(acts), 1 - cl(acts))
    assert torch.allclose(sum([cl, ch, cl])(acts), 2 * cl(acts) + ch(acts))
    assert set(combo.layers) == {"a", A.OUTPUT, A.INPUT}
    assert repr(cl - 1e-3 * A.image_l2()) == "class_logit(1) - 0.001 * image_l2()"
    assert torch.equal(A.class_logit(1, batch=1)(acts), torch.tensor([0.0, -1.0]))
    with pytest.raises(TypeError):
        cl * cl
    with pytest.raises(TypeError):
        cl + "x"


def test_objectives_read_the_right_activations(model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    a = features(model, x, ["stages.3"], detach=True)["stages.3"]
    logits = model(x).detach()
    assert torch.allclose(A.evaluate(model, A.class_logit(7), x), logits[:, 7])
    assert torch.allclose(A.evaluate(model, A.channel("stages.3", 5), x), a[:, 5].mean(dim=(1, 2)))
    h, w = a.shape[-2:]
    assert torch.allclose(A.evaluate(model, A.neuron("stages.3", 5), x), a[:, 5, h // 2, w // 2])
    assert torch.allclose(A.evaluate(model, A.neuron("stages.3", 5, 0, 1), x), a[:, 5, 0, 1])
    assert torch.allclose(A.evaluate(model, A.deepdream("stages.3"), x), 0.5 * a.pow(2).sum(dim=(1, 2, 3)),
                          rtol=1e-5)
    div = A.evaluate(model, A.diversity("stages.3"), torch.cat([x[:1], x[:1]]))
    assert torch.allclose(div, torch.tensor([-1.0, -1.0]), atol=1e-5)
    assert float(A.evaluate(model, A.diversity("stages.3"), x[:1])) == 0.0
    assert -1.0 < float(A.evaluate(model, A.diversity("stages.3"), x)[0]) < 0.0
    assert torch.allclose(A.evaluate(model, A.image_tv(), x), A.tv_loss(x))
    with pytest.raises(ValueError, match="channel 500"):
        A.evaluate(model, A.channel("stages.3", 500), x)
    with pytest.raises(ValueError, match="not a layer"):
        A.evaluate(model, A.channel("stages.33", 0), x)
    assert _hook_count(model) == 0


# =============================================================================================
# parameterisations and transforms
# =============================================================================================
def test_color_correlation_constant_is_reproducible():
    root = A.color_correlation_sqrt()
    assert torch.allclose(root, A.COLOR_CORRELATION_SQRT, atol=1e-3)
    photos = torch.cat([load_image(n, size=64).permute(1, 0, 2, 3).reshape(3, -1)
                        for n in ("chelsea", "coffee", "astronaut")], dim=1).double()
    cov = np.cov(photos.numpy())
    m = A.color_correlation_sqrt([load_image(n, size=64) for n in ("chelsea", "coffee", "astronaut")]).double()
    mm = (m @ m.T).numpy()
    np.testing.assert_allclose(mm / mm[0, 0], cov / cov[0, 0], rtol=1e-4)


def test_parameterisations():
    p = A.pixel_image(16, batch=2, init=0.3).build("cpu")
    assert p().shape == (2, 3, 16, 16) and float(p().detach().mean()) == pytest.approx(0.3)
    assert p.parameters()[0] is p() and p().requires_grad
    init = torch.rand(1, 3, 12, 10)
    q = A.pixel_image(99, init=init).build("cpu")
    assert torch.equal(q(), init) and q().data_ptr() != init.data_ptr()
    f = A.fourier_image((20, 24), batch=3).build("cpu")
    img = f()
    assert img.shape == (3, 3, 20, 24) and 0 < float(img.detach().min()) and float(img.detach().max()) < 1
    img.sum().backward()
    assert f.parameters()[0].grad.shape == (3, 3, 20, 13, 2)
    with pytest.raises(RuntimeError, match="build"):
        A.fourier_image(16)()
    with pytest.raises(ValueError, match="size"):
        A.pixel_image(4)


def test_transforms():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    assert A.jitter(6)(x).shape == (2, 3, 26, 26)
    assert A.pad(4)(x).shape == (2, 3, 40, 40) and float(A.pad(4)(x)[0, 0, 0, 0]) == 0.5
    assert A.random_scale([0.5])(x).shape == (2, 3, 16, 16)
    assert torch.allclose(A.random_rotate([0])(x), x)
    rot = A.random_rotate([90])(x)
    assert torch.allclose(rot[..., 2:-2, 2:-2], torch.rot90(x, 1, (2, 3))[..., 2:-2, 2:-2], atol=1e-5) or \
        torch.allclose(rot[..., 2:-2, 2:-2], torch.rot90(x, -1, (2, 3))[..., 2:-2, 2:-2], atol=1e-5)
    both = A.compose([A.pad(2), A.jitter(4)])
    assert both(x).shape == (2, 3, 32, 32)
    assert A.standard_transforms()(x).ndim == 4
    with pytest.raises(ValueError, match="jitter"):
        A.jitter(40)(x)


# =============================================================================================
# the loop
# =============================================================================================
def test_visualize_with_sgd_equals_repeated_l2_class_steps(model):
    c, lam, lr = 1, 1e-3, 1.0
    img = A.visualize(model, A.class_logit(c) - lam * A.image_l2(), param=A.pixel_image(64),
                      optimizer="sgd", lr=lr, steps=4, progress=False)
    x = torch.full((1, 3, 64, 64), 0.5)
    for _ in range(4):
        x = A.l2_class_step(model, x, c, lr=lr, l2_reg=lam).clamp(0, 1)
    assert float((x - 0.5).abs().max()) > 0.01, "the steps should have changed the image"
    assert torch.allclose(img, x, atol=1e-5)


def test_visualize_raises_the_objective_and_is_deterministic(model):
    obj = A.channel("stages.2", 3)
    state = torch.random.get_rng_state()
    img, hist = A.visualize(model, obj, param=A.pixel_image(64, sd=0.05), transforms=A.jitter(4),
                            steps=12, lr=0.05, progress=False, history=True, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state), "the global RNG must be left alone"
    again = A.visualize(model, obj, param=A.pixel_image(64, sd=0.05), transforms=A.jitter(4),
                        steps=12, lr=0.05, progress=False, seed=3)
    assert torch.equal(img, again)
    assert img.shape == (1, 3, 64, 64) and 0 <= float(img.min()) and float(img.max()) <= 1
    # measured: about 0.3 -> 10 in 12 Adam steps
    assert hist[-1] > hist[0] + 3, hist
    assert float(A.evaluate(model, obj, img)) > hist[0] + 3


def test_visualize_class_logit_in_a_few_steps(model):
    c = 130
    shift = A.compose([A.pad(4), A.jitter(8)])                       # keeps the 64 x 64 size
    img, hist = A.visualize(model, A.class_logit(c), param=A.fourier_image(64),
                            transforms=shift, steps=10, lr=0.05, progress=False, history=True)
    end = float(A.evaluate(model, A.class_logit(c), img))
    assert end - hist[0] > 5, (hist[0], end)
    assert int(model(img).argmax()) == c


def test_visualize_explains_a_zero_gradient():
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU())
    with torch.no_grad():
        net[0].bias.fill_(-100.0)                                    # the units are never active
    with pytest.raises(RuntimeError, match="exactly 0"):
        A.visualize(net, A.channel("1", 0), param=A.pixel_image(16), steps=3, progress=False)


def test_visualize_post_step_and_diversity(model):
    calls = []

    def post(x, grad, step):
        calls.append(step)
        assert grad.shape == x.shape
        return A.blur_and_clip(x, grad, step, blur_every=2, norm_pct=10)

    img = A.visualize(model, A.class_logit(1) - 1e-3 * A.image_l2(), param=A.pixel_image(64),
                      optimizer="sgd", lr=1.0, steps=3, post_step=post, progress=False)
    assert calls == [1, 2, 3] and img.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="post_step"):
        A.visualize(model, A.class_logit(1), param=A.fourier_image(32), steps=1, post_step=post,
                    progress=False)
    imgs = A.visualize(model, A.channel("stages.2", 3) + 2.0 * A.diversity("stages.2"),
                       param=A.fourier_image(64, batch=3), steps=3, progress=False)
    assert imgs.shape == (3, 3, 64, 64)


def test_visualize_restores_state_also_on_error(tiny):
    flags = [p.requires_grad for p in tiny.parameters()]

    def broken(acts):
        raise RuntimeError("objective exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        A.visualize(tiny, A.Objective(broken, ["2"]), param=A.pixel_image(8), steps=2, progress=False)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    assert _hook_count(tiny) == 0
    img = A.visualize(tiny, A.class_logit(3), param=A.pixel_image(8), steps=2, progress=False)
    assert img.shape == (1, 3, 8, 8)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    assert all(p.grad is None for p in tiny.parameters()) and _hook_count(tiny) == 0


def test_visualize_argument_errors(tiny):
    with pytest.raises(TypeError, match="objective"):
        A.visualize(tiny, lambda acts: acts, steps=1, progress=False)
    with pytest.raises(TypeError, match="param"):
        A.visualize(tiny, A.class_logit(0), param=torch.rand(1, 3, 8, 8), steps=1, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        A.visualize(tiny, A.class_logit(0), param=A.pixel_image(8), optimizer="lbfgs", steps=1,
                    progress=False)
    with pytest.raises(ValueError, match="steps"):
        A.visualize(tiny, A.class_logit(0), param=A.pixel_image(8), steps=0, progress=False)
    assert _hook_count(tiny) == 0


def test_functions_follow_the_model_device(model):
    """Everything stays on the model's device (here: the CPU; no device is chosen by the helper)."""
    img = A.visualize(model, A.neuron("stages.1", 0), param=A.fourier_image(32), steps=1, progress=False)
    assert img.device == next(model.parameters()).device
    partial = functools.partial(A.deepdream_step, model, torch.rand(1, 3, 32, 32), "stem")
    assert partial(lr=0.01).device.type == "cpu"


# ------------------------------------------------------------------------------------------------
# the notebook's tests catch the plausible wrong answers
# ------------------------------------------------------------------------------------------------
# Each test cell of solutions/04_gradient_ascent is self-contained, so it can run here, in-process,
# on a student function built from the solution with one deliberate mistake.  Every mistake must
# make the test cell of its exercise fail; the unmodified solution must pass them all.
NOTEBOOK = (Path(__file__).resolve().parent.parent / "solutions" / "04_gradient_ascent"
            / "04_gradient_ascent.ipynb")

EXERCISES = {  # function -> (answer cell grade_id, test cell grade_ids)
    "l2_class_step": ("l2_class_step_answer", ["l2_class_step_test"]),
    "tv_loss": ("tv_loss_answer", ["tv_loss_test"]),
    "edge_energy": ("edge_energy_answer", ["edge_energy_test"]),
    "blur_and_clip": ("blur_and_clip_answer", ["blur_and_clip_test"]),
    "invert_features": ("invert_features_answer", ["invert_features_test"]),
    "deepdream_step": ("deepdream_step_answer", ["deepdream_step_test"]),
}

_STEP = "return (x + lr * grad).detach()"
_LOSS = "loss = ((phi - target) ** 2).sum() / norm0 + tv_weight * tv_loss(x, beta).sum() / (h * w)"
_DD_ROLLBACK = "g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))"
_DD_NORM = "g = g / (g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)"

# (function, what is wrong, [(text in the solution, replacement), ...])
MUTANTS = [
    ("l2_class_step", "score after softmax", [("score = model(x)[:, target].sum()",
                                               "score = model(x).softmax(dim=1)[:, target].sum()")]),
    ("l2_class_step", "log-probability instead of the raw score",
     [("score = model(x)[:, target].sum()", "score = model(x).log_softmax(dim=1)[:, target].sum()")]),
    ("l2_class_step", "descends instead of ascending", [(_STEP, "return (x - lr * grad).detach()")]),
    ("l2_class_step", "penalty adds instead of subtracting",
     [("score - l2_reg * ((x - 0.5) ** 2).sum()", "score + l2_reg * ((x - 0.5) ** 2).sum()")]),
    ("l2_class_step", "penalty around 0 instead of grey",
     [("((x - 0.5) ** 2).sum()", "(x ** 2).sum()")]),
    ("l2_class_step", "penalty not squared", [("((x - 0.5) ** 2).sum()", "(x - 0.5).abs().sum()")]),
    ("l2_class_step", "mean score over the batch", [("model(x)[:, target].sum()", "model(x)[:, target].mean()")]),
    ("l2_class_step", "normalised gradient step", [(_STEP, "return (x + lr * grad / grad.norm()).detach()")]),
    ("l2_class_step", "clamps inside the step", [(_STEP, "return (x + lr * grad).clamp(0, 1).detach()")]),
    ("l2_class_step", "backward() fills parameter grads",
     [("(grad,) = torch.autograd.grad(objective, x)", "objective.backward()\n    grad = x.grad")]),
    ("tv_loss", "exponent beta instead of beta / 2", [("safe ** (beta / 2)", "safe ** beta")]),
    ("tv_loss", "horizontal direction missing", [("sq = dx ** 2 + dy ** 2", "sq = dy ** 2")]),
    ("tv_loss", "vertical direction missing", [("sq = dx ** 2 + dy ** 2", "sq = dx ** 2")]),
    ("tv_loss", "wraps around the border",
     [("dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))", "dx = torch.roll(x, -1, dims=3) - x"),
      ("dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))", "dy = torch.roll(x, -1, dims=2) - x")]),
    ("tv_loss", "anisotropic: |dx|^beta + |dy|^beta",
     [("terms = torch.where(positive, safe ** (beta / 2), torch.zeros_like(sq))",
       "terms = dx.abs() ** beta + dy.abs() ** beta")]),
    ("tv_loss", "NaN gradient at flat pixels",
     [("terms = torch.where(positive, safe ** (beta / 2), torch.zeros_like(sq))", "terms = sq ** (beta / 2)")]),
    ("tv_loss", "mean instead of sum", [("return terms.sum(dim=(1, 2, 3))", "return terms.mean(dim=(1, 2, 3))")]),
    ("tv_loss", "sums over the batch too", [("return terms.sum(dim=(1, 2, 3))", "return terms.sum()")]),
    ("edge_energy", "one scale only", [("while min(u.shape[-2], u.shape[-1]) > 5:", "if min(u.shape[-2], u.shape[-1]) > 5:")]),
    ("edge_energy", "stops one scale late", [("while min(u.shape[-2], u.shape[-1]) > 5:",
                                              "while min(u.shape[-2], u.shape[-1]) >= 5:")]),
    ("edge_energy", "zero padding", [('apply_filter(u, g, padding="reflect")', 'apply_filter(u, g, padding="zeros")')]),
    ("edge_energy", "max pooling", [("u = F.avg_pool2d(u, 2)", "u = F.max_pool2d(u, 2)")]),
    ("edge_energy", "subsampling without averaging", [("u = F.avg_pool2d(u, 2)", "u = u[..., ::2, ::2]")]),
    ("edge_energy", "channels mixed into grey",
     [("u = x.reshape(n * c, 1, h, w)", "u = x.mean(dim=1, keepdim=True).repeat(1, c, 1, 1).reshape(n * c, 1, h, w)")]),
    ("edge_energy", "wrong Gaussian width", [("gaussian_kernel(5, 1.0", "gaussian_kernel(5, 2.0")]),
    ("blur_and_clip", "blurs every step", [("if blur_every > 0 and step % blur_every == 0:", "if blur_every > 0:")]),
    ("blur_and_clip", "step counted from 0", [("step % blur_every == 0", "(step - 1) % blur_every == 0")]),
    ("blur_and_clip", "norm of x instead of x - 0.5", [("norms = d.norm(dim=1)", "norms = x.norm(dim=1)")]),
    ("blur_and_clip", "one percentile for the whole batch",
     [("q = torch.quantile(norms.flatten(1), norm_pct / 100, dim=1)",
       "q = torch.quantile(norms.flatten(), norm_pct / 100).expand(norms.shape[0])")]),
    ("blur_and_clip", "contribution without absolute value",
     [("contrib = (d * grad).sum(dim=1).abs()", "contrib = (d * grad).sum(dim=1)")]),
    ("blur_and_clip", "contribution summed as absolute values per channel",
     [("contrib = (d * grad).sum(dim=1).abs()", "contrib = (d * grad).abs().sum(dim=1)")]),
    ("blur_and_clip", "contribution from the gradient alone",
     [("contrib = (d * grad).sum(dim=1).abs()", "contrib = grad.norm(dim=1)")]),
    ("blur_and_clip", "contribution from the image before the clipping",
     [("d = x.detach() - 0.5", "d = x.detach() - 0.5\n    d0 = d"),
      ("contrib = (d * grad).sum(dim=1).abs()", "contrib = (d0 * grad).sum(dim=1).abs()")]),
    ("invert_features", "feature loss not normalised", [("((phi - target) ** 2).sum() / norm0", "((phi - target) ** 2).sum()")]),
    ("invert_features", "TV not divided by the number of pixels",
     [("tv_weight * tv_loss(x, beta).sum() / (h * w)", "tv_weight * tv_loss(x, beta).sum()")]),
    ("invert_features", "TV exponent ignored", [("tv_loss(x, beta)", "tv_loss(x)")]),
    ("invert_features", "no clamp", [("            x.clamp_(0.0, 1.0)\n", "            pass\n")]),
    ("invert_features", "SGD instead of Adam", [("torch.optim.Adam([x], lr=lr)", "torch.optim.SGD([x], lr=lr)")]),
    ("invert_features", "mean squared error", [("((phi - target) ** 2).sum() / norm0", "((phi - target) ** 2).mean() / norm0")]),
    ("invert_features", "modifies init", [("x = init.detach().clone().requires_grad_(True)", "x = init.requires_grad_(True)")]),
    ("invert_features", "backward() fills parameter grads",
     [("(g,) = torch.autograd.grad(loss, x)\n        x.grad = g", "opt.zero_grad()\n        loss.backward()")]),
    ("deepdream_step", "jitter not undone", [(_DD_ROLLBACK, "pass")]),
    ("deepdream_step", "jitter undone in the wrong direction",
     [(_DD_ROLLBACK, "g = torch.roll(g, shifts=(dy, dx), dims=(2, 3))")]),
    ("deepdream_step", "L2 instead of L1 normalisation",
     [(_DD_NORM, "g = g / (g.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-8)")]),
    ("deepdream_step", "one mean for the whole batch", [(_DD_NORM, "g = g / (g.abs().mean() + 1e-8)")]),
    ("deepdream_step", "objective sum(a) instead of sum(a^2) / 2", [("0.5 * (a ** 2).sum()", "a.sum()")]),
    ("deepdream_step", "no clamp", [("return (x.detach() + lr * g).clamp(0.0, 1.0)", "return x.detach() + lr * g")]),
    ("deepdream_step", "descends", [("return (x.detach() + lr * g).clamp(0.0, 1.0)",
                                     "return (x.detach() - lr * g).clamp(0.0, 1.0)")]),
    ("deepdream_step", "not normalised", [(_DD_NORM, "pass")]),
]


def _notebook_cells():
    import nbformat

    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if "nbgrader" in c.metadata}


def _student_namespace():
    """What the notebook's import cell gives the student's code."""
    from helpers.filters import apply_filter, gaussian_blur, gaussian_kernel
    from helpers.taps import features as feats

    return {"torch": torch, "nn": nn, "F": torch.nn.functional, "np": np, "features": feats,
            "apply_filter": apply_filter, "gaussian_blur": gaussian_blur,
            "gaussian_kernel": gaussian_kernel, "ref": A, "tv_loss": A.tv_loss}


def _run_tests(function, source):
    """Define ``function`` from ``source``, run its test cells; return the first failure or None."""
    cells = _notebook_cells()
    _, test_ids = EXERCISES[function]
    for test_id in test_ids:
        ns = _student_namespace()
        if function == "invert_features":          # it uses the student's own tv_loss: the solution's
            exec(compile(cells["tv_loss_answer"], "<tv_loss>", "exec"), ns)
        exec(compile(source, f"<{function}>", "exec"), ns)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(compile(cells[test_id], f"<{test_id}>", "exec"), ns)
        except Exception as err:  # noqa: BLE001 - any failure counts, as it does under nbgrader
            return f"{test_id}: {type(err).__name__}: {err}"
    return None


@pytest.mark.parametrize("function", list(EXERCISES))
def test_notebook_solution_passes_its_tests(function):
    source = _notebook_cells()[EXERCISES[function][0]]
    assert _run_tests(function, source) is None


@pytest.mark.parametrize("function,what,edits", MUTANTS, ids=[f"{m[0]}: {m[1]}" for m in MUTANTS])
def test_notebook_tests_catch_wrong_answer(function, what, edits):
    source = _notebook_cells()[EXERCISES[function][0]]
    for old, new in edits:
        assert old in source, f"the solution no longer contains {old!r}: update this mutant"
        source = source.replace(old, new)
    failure = _run_tests(function, source)
    assert failure is not None, f"no test cell of {function} fails when the answer has this mistake: {what}"


def test_notebook_test_cells_delegate_nothing_to_the_reference():
    """A 'solution' that calls the reference helper must fail (forbid)."""
    source = ("from helpers import ascent as _r\n"
              "def tv_loss(x, beta=2.0):\n"
              "    return _r.tv_loss(x, beta)\n")
    assert "must be implemented without calling" in (_run_tests("tv_loss", source) or "")
    source = ("def deepdream_step(model, x, layer, *, lr, shift=(0, 0)):\n"
              "    return ref.deepdream_step(model, x, layer, lr=lr, shift=shift)\n")
    assert "must be implemented without calling" in (_run_tests("deepdream_step", source) or "")
