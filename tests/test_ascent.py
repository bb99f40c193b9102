"""Tests of helpers.ascent: penalties, ascent steps, objectives, parameterisations, the loop.

Independent checks: the total variation against a hand-computed case, a NumPy loop and
gradcheck; the edge energy against SciPy's correlate and a NumPy block mean; blurring against
scipy.ndimage.gaussian_filter; percentiles against numpy.percentile; gradients against autograd
of the plain model; DeepDream's gradient at the layer against the activation (a tensor hook).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn as nn

from helpers import ascent as A
from helpers.filters import apply_filter, gaussian_kernel
from helpers.images import load_image
from helpers.taps import features, unit_value
from helpers.testing import ascent as T
from helpers.testing.nets import TinyCNN, linear_net, random_images


from helpers.testing import hook_count as _hook_count  # noqa: E402


@pytest.fixture
def tiny():
    """A small conv net with trainable parameters, in train mode: state that must be restored."""
    return TinyCNN(seed=0).train()


# =============================================================================================
# total variation
# =============================================================================================
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
    np.testing.assert_allclose(A.tv_loss(x, beta).numpy(), T.tv_by_loops(x, beta).numpy(), rtol=1e-10)


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
@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 45, 27), (1, 1, 6, 9)])
def test_edge_energy_matches_scipy(shape):
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(*shape, generator=gen, dtype=torch.float64)
    np.testing.assert_allclose(A.edge_energy(x).numpy(), T.edge_energy_by_scipy(x).numpy(), rtol=1e-9)


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
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64, requires_grad=True)   # two scales: 12 and 6
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
    scores = [float(A.evaluate(model, img, A.class_logit(c)))]
    for _ in range(8):
        img = A.l2_class_step(model, img, c, lr=1.0, l2_reg=1e-3).clamp(0, 1)
        scores.append(float(A.evaluate(model, img, A.class_logit(c))))
    # plain gradient steps overshoot now and then, but the class score climbs by several logits
    assert scores[-1] - scores[0] > 3, scores


def test_l2_class_step_one_target_per_image():
    """target: one class for the batch or one per image (the course's convention)."""
    net, x = linear_net(seed=0), random_images(2, side=4, seed=1)
    w = net[1].weight.detach().reshape(-1, 3, 4, 4)
    out = A.l2_class_step(net, x, [1, 3], lr=0.5, l2_reg=0.0)
    assert torch.allclose(out, x + 0.5 * torch.stack([w[1], w[3]]), atol=1e-12)
    same = A.l2_class_step(net, x, torch.tensor([2, 2]), lr=0.5, l2_reg=0.0)
    assert torch.equal(same, A.l2_class_step(net, x, 2, lr=0.5, l2_reg=0.0))


def test_l2_class_step_restores_model_state(tiny):
    flags = [p.requires_grad for p in tiny.parameters()]
    A.l2_class_step(tiny, torch.rand(1, 3, 8, 8), 2, lr=0.1, l2_reg=0.0)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    assert all(p.grad is None for p in tiny.parameters())
    with pytest.raises(ValueError, match="target"):
        A.l2_class_step(tiny, torch.rand(1, 3, 8, 8), 99, lr=0.1, l2_reg=0.0)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    with pytest.raises(ValueError, match="x must"):
        A.l2_class_step(tiny, torch.rand(3, 8, 8), 2, lr=0.1, l2_reg=0.0)
    with pytest.raises(ValueError, match="lr"):
        A.l2_class_step(tiny, torch.rand(1, 3, 8, 8), 2, lr=-1.0, l2_reg=0.0)


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
    init = torch.full_like(photo, 0.5)
    x, losses = A.invert_features(model, photo, layer="stages.1", init=init, steps=25, lr=0.05,
                                  tv_weight=2.0, progress=False)
    assert torch.equal(init, torch.full_like(photo, 0.5))
    assert len(losses) == 25 and x.shape == photo.shape and 0 <= float(x.min()) and float(x.max()) <= 1
    assert losses[-1] < 0.5 * losses[0], losses
    # the picture moves towards the photo: its pixels correlate with the photo's
    xc, pc = x - x.mean(), photo - photo.mean()
    assert float((xc * pc).sum() / (xc.norm() * pc.norm())) > 0.5
    assert _hook_count(model) == 0


def test_invert_features_matches_a_hand_written_adam_loop(tiny):
    """The loss of every step and the final image, against the algorithm written out here."""
    photo, init = random_images(1, seed=1, dtype=torch.float32), random_images(1, seed=2, dtype=torch.float32)
    y, losses = A.invert_features(tiny, photo, layer=tiny.conv2, init=init, steps=4, lr=0.1,
                                  tv_weight=0.5, beta=1.5, progress=False)
    net = TinyCNN(seed=0).eval().requires_grad_(False)
    phi = lambda t: net.conv2(net.act1(net.conv1(t)))                       # noqa: E731
    target, z, expected = phi(photo), init.clone().requires_grad_(True), []
    opt = torch.optim.Adam([z], lr=0.1)
    for _ in range(4):
        loss = (phi(z) - target).pow(2).sum() / target.pow(2).sum() + 0.5 * A.tv_loss(z, 1.5).sum() / 64
        expected.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            z.clamp_(0, 1)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    assert torch.allclose(y, z.detach(), atol=1e-6)


def test_invert_features_checks_and_state(tiny):
    photo = torch.rand(1, 3, 8, 8)
    flags = [p.requires_grad for p in tiny.parameters()]
    A.invert_features(tiny, photo, layer="conv2", init=torch.rand(1, 3, 8, 8), steps=2, lr=0.1,
                      tv_weight=1.0, progress=False)
    assert tiny.training and [p.requires_grad for p in tiny.parameters()] == flags
    assert all(p.grad is None for p in tiny.parameters()) and _hook_count(tiny) == 0
    grey = A.invert_features(tiny, photo, layer="conv2", init=torch.full_like(photo, 0.5), steps=2,
                             lr=0.1, tv_weight=0.0, progress=False)
    default = A.invert_features(tiny, photo, layer="conv2", steps=2, lr=0.1, tv_weight=0.0,
                                progress=False)
    assert torch.equal(grey[0], default[0]) and grey[1] == default[1], "init defaults to grey"
    with pytest.raises(ValueError, match="init must have the shape of x"):
        A.invert_features(tiny, photo, layer="conv2", init=torch.rand(1, 3, 16, 16), steps=1,
                          lr=0.1, tv_weight=0)
    assert tiny.training and _hook_count(tiny) == 0
    with pytest.raises(ValueError, match="layer 'conv9' is not a layer.*Did you mean 'conv3'"):
        A.invert_features(tiny, photo, layer="conv9", steps=1, lr=0.1, tv_weight=0)
    dead = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)                                   # the ReLU is never active
    with pytest.raises(ValueError, match="all zeros"):
        A.invert_features(dead, photo, layer="1", steps=1, lr=0.1, tv_weight=0)
    assert _hook_count(dead) == 0


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
                         layer="stages.2", lr=0.01)
    finally:
        handle.remove()
    assert torch.allclose(seen["grad"], seen["act"])


def test_deepdream_step_is_l1_normalised_and_jitter_equivariant(model):
    gen = torch.Generator().manual_seed(8)
    x = 0.25 + 0.5 * torch.rand(1, 3, 48, 48, generator=gen)        # far from the clip limits
    lr = 1e-3
    y = A.deepdream_step(model, x, layer="stages.2", lr=lr)
    xs = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(0.5 * features(model, xs, ["stages.2"])["stages.2"].pow(2).sum(), xs)
    assert torch.allclose(y, x + lr * g / g.abs().mean(), atol=1e-6)
    assert abs(float((y - x).abs().mean()) - lr) < 1e-6
    shifted = A.deepdream_step(model, x, layer="stages.2", lr=lr, shift=(5, -3))
    rolled = torch.roll(A.deepdream_step(model, torch.roll(x, (5, -3), (2, 3)), layer="stages.2", lr=lr),
                        (-5, 3), (2, 3))
    assert torch.allclose(shifted, rolled, atol=1e-6)
    assert not torch.allclose(shifted, y, atol=1e-4)
    big = A.deepdream_step(model, x, layer="stages.2", lr=1.0)
    assert float(big.min()) == 0.0 and float(big.max()) == 1.0       # pixel clipping


def test_dream_octaves(model):
    img = load_image("coffee", size=64)
    out = A.dream(model, img, layer="stages.2", octaves=2, steps=2, lr=0.02, progress=False)
    again = A.dream(model, img, layer="stages.2", octaves=2, steps=2, lr=0.02, progress=False)
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
    assert torch.allclose(A.evaluate(model, x, A.class_logit(7)), logits[:, 7])
    assert torch.allclose(A.evaluate(model, x, A.channel("stages.3", 5)), a[:, 5].mean(dim=(1, 2)))
    h, w = a.shape[-2:]
    assert torch.allclose(A.evaluate(model, x, A.neuron("stages.3", 5)), a[:, 5, h // 2, w // 2])
    assert torch.allclose(A.evaluate(model, x, A.neuron("stages.3", (5, 0, 1))), a[:, 5, 0, 1])
    assert torch.equal(A.evaluate(model, x, A.neuron("stages.3", (5, 0, 1))),
                       unit_value(a, (5, 0, 1))), "a neuron is the course's unit (c, i, j)"
    assert torch.allclose(A.evaluate(model, x, A.deepdream("stages.3")), 0.5 * a.pow(2).sum(dim=(1, 2, 3)),
                          rtol=1e-5)
    div = A.evaluate(model, torch.cat([x[:1], x[:1]]), A.diversity("stages.3"))
    assert torch.allclose(div, torch.tensor([-1.0, -1.0]), atol=1e-5)
    assert float(A.evaluate(model, x[:1], A.diversity("stages.3"))) == 0.0
    assert -1.0 < float(A.evaluate(model, x, A.diversity("stages.3"))[0]) < 0.0
    assert torch.allclose(A.evaluate(model, x, A.image_tv()), A.tv_loss(x))
    with pytest.raises(ValueError, match=r"channel\('stages.3', c\): channel must be in \[0, 79\]"):
        A.evaluate(model, x, A.channel("stages.3", 500))
    with pytest.raises(ValueError, match="not a layer"):
        A.evaluate(model, x, A.channel("stages.33", 0))
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
    assert float(A.evaluate(model, img, obj)) > hist[0] + 3


def test_visualize_class_logit_in_a_few_steps(model):
    c = 130
    shift = A.compose([A.pad(4), A.jitter(8)])                       # keeps the 64 x 64 size
    img, hist = A.visualize(model, A.class_logit(c), param=A.fourier_image(64),
                            transforms=shift, steps=10, lr=0.05, progress=False, history=True)
    end = float(A.evaluate(model, img, A.class_logit(c)))
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
        A.visualize(tiny, A.Objective(broken, ["conv2"]), param=A.pixel_image(8), steps=2, progress=False)
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
    img = A.visualize(model, A.neuron("stages.1", (0, 1, 1)), param=A.fourier_image(32), steps=1, progress=False)
    assert img.device == next(model.parameters()).device
    partial = functools.partial(A.deepdream_step, model, torch.rand(1, 3, 32, 32), layer="stem")
    assert partial(lr=0.01).device.type == "cpu"


def test_units_are_spelled_as_in_the_rest_of_the_course():
    """channel(layer, c) and neuron(layer, (c, i, j)) parse with check_unit: clear errors."""
    acts = {"a": torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5), "flat": torch.tensor([[1.0, 2.0]])}
    assert torch.equal(A.neuron("a", (2, 3, 4))(acts), acts["a"][:, 2, 3, 4])
    assert torch.equal(A.neuron("a", 1)(acts), acts["a"][:, 1, 2, 2])             # the centre
    assert torch.equal(A.channel("flat", 1)(acts), torch.tensor([2.0]))           # (N, C) as is
    with pytest.raises(TypeError, match="unit must be a channel index c"):
        A.neuron("a", (1, 2))
    with pytest.raises(TypeError, match="c must be an int"):
        A.channel("a", (1, 2, 3))
    with pytest.raises(ValueError, match=r"position \(4, 0\) is outside the 4 x 5"):
        A.neuron("a", (0, 4, 0))(acts)
    with pytest.raises(ValueError, match="target must be >= 0"):
        A.class_logit(-1)
    with pytest.raises(TypeError, match="layer must be a layer name"):
        A.deepdream(3)


def test_an_objective_of_the_image_alone_does_not_run_the_model():
    class Refuses(nn.Module):
        def forward(self, x):
            raise RuntimeError("the model was run")

    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(A.evaluate(Refuses(), x, -A.image_tv()), -A.tv_loss(x))


# =============================================================================================
# the notebook's test aids (helpers.testing.ascent)
# =============================================================================================
def test_student_runs_the_answer_and_names_what_went_wrong():
    net, x = linear_net(seed=0), random_images(1, side=4)

    def l2_class_step(model, x, target, *, lr, l2_reg):
        return A.l2_class_step(model, x, target, lr=lr, l2_reg=l2_reg)

    with pytest.raises(AssertionError, match="l2_class_step must be implemented without calling "
                                             "helpers.ascent.l2_class_step"):
        T.student(l2_class_step, net, x, 1, lr=0.1, l2_reg=0.0)

    def fills_grads(model, x, target, *, lr, l2_reg):
        x = x.clone().requires_grad_(True)
        model(x)[:, target].sum().backward()
        return (x + lr * x.grad).detach()

    with pytest.raises(AssertionError, match="changed the .grad of the model's parameters"):
        T.student(fills_grads, net, x, 1, lr=0.1, l2_reg=0.0)
    for p in net.parameters():
        p.grad = None

    def edits(x, grad, step):
        x += 1
        return x

    with pytest.raises(AssertionError, match="the input x was modified in place"):
        T.student(edits, x.clone(), x, 1)

    def uses_tv(x):
        return A.tv_loss(x)

    assert torch.equal(T.student(uses_tv, x, allow=["tv_loss"]), A.tv_loss(x))
    with pytest.raises(AssertionError, match="without calling helpers.testing.ascent.tv_by_loops"):
        T.student(lambda x: T.tv_by_loops(x, 2.0), x)


def test_output_checks_fail_with_a_sentence():
    x = random_images(2)
    assert T.check_image(x.clone(), x, "f") is not None
    for out, message in [([1], "should return a tensor"), (x.float(), "dtype torch.float64"),
                         (x.clone().requires_grad_(True), "without autograd graph"),
                         (x / 0 - x / 0, "NaN"), (x[:1], r"shape \(2, 3, 8, 8\)")]:
        with pytest.raises(AssertionError, match=message):
            T.check_image(out, x, "f")
    with pytest.raises(AssertionError, match=r"clamp the result to \[0, 1\]"):
        T.check_image(x + 1, x, "f", unit=True)
    with pytest.raises(AssertionError, match="one value per image"):
        T.check_per_image(torch.tensor(3.0), x, "tv_loss")
    with pytest.raises(AssertionError, match="a list of 3 floats"):
        T.check_inversion((x[:1], [1.0, 2.0]), x[:1], 3)
    with pytest.raises(AssertionError, match="a pair"):
        T.check_inversion(x, x, 3)
