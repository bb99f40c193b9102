"""Tests for helpers.filters, cross-checked against F.conv2d, scipy.ndimage and scikit-image."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn as nn
import torch.nn.functional as F
from skimage.feature import match_template
from skimage.filters import gabor_kernel as sk_gabor_kernel

from helpers.filters import (
    apply_filter,
    best_matching_gabor,
    center_energy,
    conv2d_naive,
    depthwise_filters,
    filter_correlations,
    fold_batchnorm,
    gabor_bank,
    gabor_kernel,
    gaussian_blur,
    gaussian_kernel,
    normalize_filters,
    smoothness,
    sobel_kernels,
    stem_filters,
    template_match,
)
from helpers.testing import forbid


def _rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


# ------------------------------------------------------------------------------------------------
# conv2d_naive
# ------------------------------------------------------------------------------------------------
CONV_CASES = [
    # (N, C_in, H, W, C_out, kh, kw, stride, padding, bias)
    (1, 1, 5, 5, 1, 3, 3, 1, 0, False),
    (2, 3, 8, 8, 4, 3, 3, 1, 1, True),
    (3, 2, 9, 7, 5, 3, 3, 2, 1, True),
    (1, 4, 10, 11, 2, 5, 5, 1, 2, False),
    (2, 3, 12, 9, 6, 2, 4, (2, 3), (1, 0), True),
    (1, 1, 7, 7, 3, 7, 7, 1, 0, True),          # kernel covers the whole input: 1x1 output
    (2, 5, 6, 13, 1, 1, 1, 1, 0, True),         # 1x1 convolution = channel mixing
    (1, 2, 9, 9, 2, 3, 3, 3, 2, False),         # stride larger than 1 with padding
    (4, 3, 5, 6, 8, 3, 2, (1, 2), (2, 1), True),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_naive_matches_F_conv2d(case):
    n, c, h, w, o, kh, kw, stride, padding, use_bias = case
    x = _rand(n, c, h, w, seed=1)
    weight = _rand(o, c, kh, kw, seed=2)
    bias = _rand(o, seed=3) if use_bias else None
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    # the reference must really compute the sum itself
    with forbid("torch.nn.functional.conv2d", name="conv2d_naive"):
        got = conv2d_naive(x, weight, bias, stride=stride, padding=padding)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)


def test_conv2d_naive_float32_and_hand_example():
    # hand-computed: 3x3 input, 2x2 kernel of ones -> sums of 2x2 windows
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    w = torch.ones(1, 1, 2, 2)
    expected = torch.tensor([[[[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]]]])
    assert torch.equal(conv2d_naive(x, w), expected)
    # no flip: an asymmetric kernel picks the pixel to the right of the window's corner
    w = torch.zeros(1, 1, 2, 2)
    w[0, 0, 0, 1] = 1.0
    assert torch.equal(conv2d_naive(x, w), torch.tensor([[[[1.0, 2.0], [4.0, 5.0]]]]))
    # float32 against F.conv2d
    x = _rand(2, 3, 16, 16, seed=4, dtype=torch.float32)
    w = _rand(5, 3, 3, 3, seed=5, dtype=torch.float32)
    torch.testing.assert_close(conv2d_naive(x, w, padding=1, stride=2),
                               F.conv2d(x, w, padding=1, stride=2), atol=1e-5, rtol=1e-5)


def test_conv2d_naive_gradients_match():
    x1 = _rand(2, 3, 7, 6, seed=6).requires_grad_()
    w1 = _rand(4, 3, 3, 3, seed=7).requires_grad_()
    b1 = _rand(4, seed=8).requires_grad_()
    x2, w2, b2 = (t.detach().clone().requires_grad_() for t in (x1, w1, b1))
    g = _rand(2, 4, 4, 3, seed=9)
    (conv2d_naive(x1, w1, b1, stride=2, padding=1) * g).sum().backward()
    (F.conv2d(x2, w2, b2, stride=2, padding=1) * g).sum().backward()
    for a, b in ((x1, x2), (w1, w2), (b1, b2)):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-10, rtol=1e-10)


def test_conv2d_naive_does_not_modify_inputs():
    x = _rand(1, 2, 5, 5, seed=10)
    w = _rand(3, 2, 3, 3, seed=11)
    b = _rand(3, seed=12)
    copies = [t.clone() for t in (x, w, b)]
    conv2d_naive(x, w, b, padding=1)
    for t, c in zip((x, w, b), copies):
        assert torch.equal(t, c)


@pytest.mark.parametrize("kwargs, match", [
    (dict(x=torch.zeros(3, 5, 5), weight=torch.zeros(1, 3, 3, 3)), "x must be a 4-D"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(3, 3, 3)), "weight must be a 4-D"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(2, 4, 3, 3)), "C_in = 3"),
    (dict(x=torch.zeros(1, 3, 5, 5, dtype=torch.long), weight=torch.zeros(1, 3, 3, 3)),
     "x must be a floating-point"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(1, 3, 3, 3), stride=0),
     "stride must be an int >= 1"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(1, 3, 3, 3), padding=-1),
     "padding must be an int >= 0"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(1, 3, 3, 3), stride=(1, 0)),
     "stride must be an int >= 1"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(1, 3, 3, 3), stride=(1, 2, 3)),
     "stride must be an int or a pair"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(1, 3, 3, 3), padding=1.5),
     "padding must be an int >= 0"),
    (dict(x=torch.zeros(1, 3, 2, 2), weight=torch.zeros(1, 3, 3, 3)), "larger than the padded"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(2, 3, 3, 3), bias=torch.zeros(3)),
     r"bias must have shape \(C_out,\)"),
    (dict(x=torch.zeros(1, 3, 5, 5), weight=torch.zeros(2, 3, 3, 3, dtype=torch.float64)),
     "weight must have the dtype and device of x"),
])
def test_conv2d_naive_errors_name_the_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        conv2d_naive(**kwargs)


# ------------------------------------------------------------------------------------------------
# normalize_filters
# ------------------------------------------------------------------------------------------------
def test_normalize_filters_per_filter_min_max():
    w = _rand(6, 3, 5, 5, seed=13) * torch.arange(1, 7, dtype=torch.float64).view(6, 1, 1, 1) + 4
    before = w.clone()
    out = normalize_filters(w)
    assert out.shape == w.shape and out.dtype == w.dtype
    assert torch.equal(w, before)
    flat = out.reshape(6, -1)
    torch.testing.assert_close(flat.min(dim=1).values, torch.zeros(6, dtype=w.dtype))
    torch.testing.assert_close(flat.max(dim=1).values, torch.ones(6, dtype=w.dtype))
    # independent NumPy computation
    a = w.numpy().reshape(6, -1)
    ref = (a - a.min(1, keepdims=True)) / (a.max(1, keepdims=True) - a.min(1, keepdims=True))
    np.testing.assert_allclose(out.numpy().reshape(6, -1), ref, atol=1e-12)


def test_normalize_filters_constant_filter_is_mid_grey_and_matches_rescale():
    from helpers.plotting import rescale

    w = torch.stack([torch.full((3, 3), 7.0), torch.tensor([[0.0, 1.0, 2.0]] * 3)])
    out = normalize_filters(w)
    assert torch.equal(out[0], torch.full((3, 3), 0.5))
    torch.testing.assert_close(out[1], torch.tensor([[0.0, 0.5, 1.0]] * 3))
    w4 = _rand(5, 2, 3, 3, seed=14)
    assert torch.equal(normalize_filters(w4), rescale(w4, per_item=True))
    # global scaling would differ: per-filter is not the same as one min/max for all
    assert not torch.allclose(normalize_filters(w4), rescale(w4, per_item=False))


def test_normalize_filters_errors():
    with pytest.raises(TypeError, match="weight must be a torch.Tensor"):
        normalize_filters(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="weight must have a filter dimension"):
        normalize_filters(torch.zeros(5))


# ------------------------------------------------------------------------------------------------
# Gabor kernels
# ------------------------------------------------------------------------------------------------
def _skimage_gabor_real(size, sigma, theta, lambd, psi, gamma):
    """Our Gabor from skimage's: real part, undo the 1/(2 pi sx sy) factor, centre-crop."""
    sx, sy = sigma, sigma / gamma
    r = size // 2
    n_stds = (r + 1) / min(sx, sy)        # big enough in every direction, whatever theta
    g = sk_gabor_kernel(1.0 / lambd, theta=theta, sigma_x=sx, sigma_y=sy, n_stds=n_stds,
                        offset=psi)
    cy, cx = g.shape[0] // 2, g.shape[1] // 2
    crop = g[cy - r:cy + r + 1, cx - r:cx + r + 1]
    return crop.real * (2 * np.pi * sx * sy)


@pytest.mark.parametrize("size, sigma, theta, lambd, psi, gamma", [
    (7, 2.0, 0.0, 4.0, 0.0, 0.5),
    (9, 2.5, math.pi / 4, 5.0, 0.0, 0.5),
    (11, 3.0, math.pi / 3, 6.0, math.pi / 2, 0.8),
    (15, 4.0, 2.0, 7.5, 1.0, 0.3),
    (5, 1.5, -0.7, 3.0, -2.0, 1.0),
    (3, 1.0, math.pi / 2, 2.5, math.pi, 0.5),
])
def test_gabor_kernel_matches_skimage(size, sigma, theta, lambd, psi, gamma):
    got = gabor_kernel(size, sigma=sigma, theta=theta, lambd=lambd, psi=psi, gamma=gamma,
                       dtype=torch.float64)
    assert got.shape == (size, size) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _skimage_gabor_real(size, sigma, theta, lambd, psi,
                                                                gamma), atol=1e-12)


def test_gabor_kernel_orientation_and_phase():
    g0 = gabor_kernel(9, sigma=3.0, theta=0.0, lambd=4.0)
    # theta = 0: the cosine runs along x (columns): a vertical stripe through the centre
    assert float(g0[4, 4]) == pytest.approx(1.0)
    assert float(g0[4, 6]) == pytest.approx(math.exp(-4 / 18) * math.cos(math.pi), abs=1e-6)
    assert float(g0[2, 4]) == pytest.approx(math.exp(-0.25 * 4 / 18), abs=1e-6)  # gamma=0.5 on y
    # theta = pi/2 is the same kernel turned by 90 degrees (horizontal stripes)
    g90 = gabor_kernel(9, sigma=3.0, theta=math.pi / 2, lambd=4.0)
    torch.testing.assert_close(g90, g0.T, atol=1e-6, rtol=0)
    # psi = pi/2 is odd: g(-x, -y) = -g(x, y), and its centre is 0
    g_odd = gabor_kernel(9, sigma=3.0, theta=0.3, lambd=4.0, psi=math.pi / 2)
    torch.testing.assert_close(g_odd.flip(0, 1), -g_odd, atol=1e-6, rtol=0)
    # theta and theta + pi give the same even kernel
    torch.testing.assert_close(gabor_kernel(7, sigma=2.0, theta=0.4, lambd=3.0),
                               gabor_kernel(7, sigma=2.0, theta=0.4 + math.pi, lambd=3.0),
                               atol=1e-6, rtol=0)
    # positive theta turns the grating's normal from +x towards +y (down): at theta = pi/4 the
    # kernel is constant along the anti-diagonal direction (1, -1) through the centre
    g45 = gabor_kernel(7, sigma=100.0, theta=math.pi / 4, lambd=4.0, gamma=1.0)
    assert float(g45[2, 4]) == pytest.approx(1.0, abs=1e-3)   # x=+1, y=-1 -> x' = 0
    assert float(g45[4, 4]) < 0.0                              # x=+1, y=+1 -> x' = sqrt2


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=4, sigma=1.0, theta=0.0, lambd=3.0), "size must be odd"),
    (dict(size=0, sigma=1.0, theta=0.0, lambd=3.0), r"size must be >= 1 \(an odd kernel size\)"),
    (dict(size=3.0, sigma=1.0, theta=0.0, lambd=3.0), "size must be an int"),
    (dict(size=5, sigma=0.0, theta=0.0, lambd=3.0), "sigma must be > 0"),
    (dict(size=5, sigma=1.0, theta=0.0, lambd=-3.0), "lambd must be > 0"),
    (dict(size=5, sigma=1.0, theta=0.0, lambd=3.0, gamma=0), "gamma must be > 0"),
    (dict(size=5, sigma=1.0, theta="0", lambd=3.0), "theta must be a number"),
    (dict(size=5, sigma=1.0, theta=float("nan"), lambd=3.0), "theta must be a finite"),
])
def test_gabor_kernel_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        gabor_kernel(**kwargs)


def test_gabor_bank_layout_and_signs():
    bank, params = gabor_bank(7, n_orientations=6, wavelengths=(3.0, 6.0))
    assert bank.shape == (6 * 2 * 4, 7, 7) and len(params) == bank.shape[0]
    thetas = sorted({round(p["theta"], 9) for p in params})
    np.testing.assert_allclose(thetas, [k * math.pi / 6 for k in range(6)])
    for i in (0, 5, 17, 47):
        p = params[i]
        expected = gabor_kernel(7, sigma=p["sigma"], theta=p["theta"], lambd=p["lambd"],
                                psi=p["psi"], gamma=p["gamma"])
        torch.testing.assert_close(bank[i], expected)
        assert p["sigma"] == pytest.approx(0.5 * p["lambd"])
        assert p["theta_deg"] == pytest.approx(math.degrees(p["theta"]))
    # the default phases contain every kernel's negative (psi and psi + pi)
    for i, p in enumerate(params):
        j = next(j for j, q in enumerate(params) if q["theta"] == p["theta"] and
                 q["lambd"] == p["lambd"] and
                 math.isclose((q["psi"] - p["psi"]) % (2 * math.pi), math.pi))
        torch.testing.assert_close(bank[j], -bank[i], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="wavelengths must hold"):
        gabor_bank(5, wavelengths=())
    with pytest.raises(ValueError, match="wavelengths\\[\\] must be > 0"):
        gabor_bank(5, wavelengths=(4.0, 0.0))
    with pytest.raises(ValueError, match="n_orientations must be"):
        gabor_bank(5, n_orientations=0)
    with pytest.raises(ValueError, match="size must be odd"):
        gabor_bank(6)


# ------------------------------------------------------------------------------------------------
# matching filters against a Gabor bank
# ------------------------------------------------------------------------------------------------
def test_best_matching_gabor_recovers_planted_matches():
    bank, _ = gabor_bank(7, n_orientations=8, wavelengths=(4.0, 8.0))
    g = torch.Generator().manual_seed(15)
    planted = torch.randint(0, bank.shape[0], (40,), generator=g)
    scales = torch.rand(40, 1, 1, generator=g) * 3 + 0.5          # positive gains
    offsets = torch.randn(40, 1, 1, generator=g)                   # and offsets: Pearson ignores both
    noise = 0.05 * torch.randn(40, 7, 7, generator=g)
    filters = bank[planted] * scales + offsets + noise * bank[planted].std()
    idx, r = best_matching_gabor(filters, bank)
    assert idx.dtype == torch.int64 and idx.shape == (40,) and r.shape == (40,)
    assert torch.equal(idx, planted)
    assert bool((r > 0.95).all()) and bool((r <= 1.0).all())
    # exact copies correlate exactly 1
    idx2, r2 = best_matching_gabor(bank[:5] * 2 - 1, bank)
    assert torch.equal(idx2, torch.arange(5))
    torch.testing.assert_close(r2, torch.ones(5))


def test_best_matching_gabor_sign_convention():
    bank, params = gabor_bank(5, n_orientations=4, wavelengths=(4.0,))
    corr = filter_correlations(-bank[[2]], bank)
    assert corr[0, 2] == pytest.approx(-1.0)        # the negative anti-correlates ...
    idx, r = best_matching_gabor(-bank[[2]], bank)
    p, q = params[2], params[int(idx[0])]
    assert int(idx[0]) != 2                          # ... so it matches another element:
    assert q["theta"] == p["theta"] and q["lambd"] == p["lambd"]
    assert math.isclose((q["psi"] - p["psi"]) % (2 * math.pi), math.pi)   # the opposite phase
    assert float(r[0]) == pytest.approx(1.0)


def test_filter_correlations_against_numpy_and_channel_average():
    bank, _ = gabor_bank(5, n_orientations=3, wavelengths=(4.0,), phases=(0.0, 1.0))
    filters = _rand(4, 3, 5, 5, seed=16, dtype=torch.float32)
    corr = filter_correlations(filters, bank)
    assert corr.shape == (4, 6)
    grey = filters.mean(dim=1).reshape(4, -1).numpy().astype(np.float64)
    b = bank.reshape(6, -1).numpy().astype(np.float64)
    ref = np.array([[np.corrcoef(f, e)[0, 1] for e in b] for f in grey])
    np.testing.assert_allclose(corr.numpy(), ref, atol=1e-6)
    # a constant filter correlates 0 with everything
    assert torch.equal(filter_correlations(torch.ones(1, 5, 5), bank), torch.zeros(1, 6,
                                                                                    dtype=torch.float64))


def test_best_matching_gabor_errors():
    bank, _ = gabor_bank(5)
    with pytest.raises(ValueError, match=r"bank must hold kernels of the filters' size \(3, 3\)"):
        best_matching_gabor(torch.zeros(2, 3, 3), bank)
    with pytest.raises(ValueError, match="filters must be a 3-D or 4-D"):
        best_matching_gabor(torch.zeros(5, 5), bank)
    with pytest.raises(ValueError, match="bank must be a 3-D"):
        best_matching_gabor(torch.zeros(2, 5, 5), bank[0])


# ------------------------------------------------------------------------------------------------
# Sobel, Gaussian, apply_filter
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("padding, scipy_mode", [
    ("reflect", "mirror"), ("zeros", "constant"), ("replicate", "nearest"), ("circular", "wrap")])
def test_apply_filter_matches_scipy_correlate(padding, scipy_mode):
    img = _rand(2, 3, 11, 9, seed=17)
    kernel = _rand(5, 3, seed=18)
    got = apply_filter(img, kernel, padding=padding)
    assert got.shape == img.shape
    ref = np.stack([np.stack([ndi.correlate(img[n, c].numpy(), kernel.numpy(), mode=scipy_mode)
                              for c in range(3)]) for n in range(2)])
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10)


def test_sobel_is_correlation_not_convolution():
    img = _rand(1, 1, 12, 10, seed=19)
    kx, ky = sobel_kernels(dtype=torch.float64)
    a = img[0, 0].numpy()
    gx = apply_filter(img, kx)[0, 0].numpy()
    gy = apply_filter(img, ky)[0, 0].numpy()
    np.testing.assert_allclose(gx, ndi.sobel(a, axis=1, mode="mirror"), atol=1e-10)
    np.testing.assert_allclose(gy, ndi.sobel(a, axis=0, mode="mirror"), atol=1e-10)
    # true convolution flips the kernel, and flipping a Sobel kernel flips its sign
    np.testing.assert_allclose(ndi.convolve(a, kx.numpy(), mode="mirror"), -gx, atol=1e-10)
    # a ramp getting brighter to the right gives a positive x response, zero y response
    ramp = torch.arange(8.0).repeat(8, 1).view(1, 1, 8, 8)
    assert bool((apply_filter(ramp, sobel_kernels()[0], padding="replicate")[..., 1:-1] == 8).all())
    assert bool((apply_filter(ramp, sobel_kernels()[1], padding="replicate") == 0).all())


def test_gaussian_kernel_matches_scipy_and_blur():
    for size, sigma in [(3, 0.8), (5, 1.0), (9, 2.0), (7, 5.0)]:
        k = gaussian_kernel(size, sigma, dtype=torch.float64)
        assert k.shape == (size, size)
        assert float(k.sum()) == pytest.approx(1.0, abs=1e-12)
        torch.testing.assert_close(k, k.T)
        torch.testing.assert_close(k, k.flip(0))
        delta = np.zeros((size, size))
        delta[size // 2, size // 2] = 1.0
        r = size // 2
        ref = ndi.gaussian_filter(delta, sigma, mode="constant", truncate=(r + 0.25) / sigma)
        np.testing.assert_allclose(k.numpy(), ref, atol=1e-12)
    img = _rand(1, 2, 20, 16, seed=20)
    got = gaussian_blur(img, 1.5)                    # size 2 * ceil(4.5) + 1 = 11, radius 5
    ref = np.stack([ndi.gaussian_filter(img[0, c].numpy(), 1.5, mode="mirror",
                                        truncate=5.25 / 1.5) for c in range(2)])
    np.testing.assert_allclose(got[0].numpy(), ref, atol=1e-10)
    # blurring keeps a constant image constant
    const = torch.full((1, 3, 10, 10), 0.3)
    torch.testing.assert_close(gaussian_blur(const, 2.0), const)


def test_filter_errors():
    with pytest.raises(ValueError, match="size must be odd"):
        gaussian_kernel(4, 1.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gaussian_kernel(5, 0.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gaussian_blur(torch.zeros(1, 1, 5, 5), -1.0)
    with pytest.raises(ValueError, match="kernel must have odd height and width"):
        apply_filter(torch.zeros(1, 1, 5, 5), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="padding must be one of"):
        apply_filter(torch.zeros(1, 1, 5, 5), torch.zeros(3, 3), padding="mirror")
    with pytest.raises(ValueError, match="x must be a 4-D"):
        apply_filter(torch.zeros(5, 5), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="kernel must be a 2-D"):
        apply_filter(torch.zeros(1, 1, 5, 5), torch.zeros(1, 3, 3))


# ------------------------------------------------------------------------------------------------
# template matching
# ------------------------------------------------------------------------------------------------
def test_template_match_matches_skimage_grey_and_colour():
    g = torch.Generator().manual_seed(21)
    grey = torch.rand(1, 1, 30, 25, generator=g, dtype=torch.float64)
    tmpl = grey[0, :, 8:15, 3:12] + 0.1 * torch.rand(1, 7, 9, generator=g, dtype=torch.float64)
    got = template_match(grey, tmpl)
    assert got.shape == (1, 1, 24, 17)
    ref = match_template(grey[0, 0].numpy(), tmpl[0].numpy())
    np.testing.assert_allclose(got[0, 0].numpy(), ref, atol=1e-9)

    colour = torch.rand(2, 3, 20, 22, generator=g, dtype=torch.float64)
    tmpl = colour[1, :, 5:10, 7:13].clone()
    got = template_match(colour, tmpl)
    for n in range(2):
        ref = match_template(colour[n].permute(1, 2, 0).numpy(), tmpl.permute(1, 2, 0).numpy())
        np.testing.assert_allclose(got[n, 0].numpy(), ref[..., 0], atol=1e-9)
    # the exact copy scores 1 at its top-left corner
    assert float(got[1, 0, 5, 7]) == pytest.approx(1.0)
    assert divmod(int(got[1, 0].argmax()), got.shape[-1]) == (5, 7)


def test_template_match_plain_is_a_convolution_and_prefers_bright_regions():
    img = torch.zeros(1, 1, 20, 20)
    img[0, 0, 2:5, 2:5] = torch.tensor([[0.0, 0.2, 0.0], [0.2, 0.4, 0.2], [0.0, 0.2, 0.0]])
    img[0, 0, 12:18, 12:18] = 1.0                              # a bright, featureless square
    tmpl = img[0, :, 2:5, 2:5].clone()
    plain = template_match(img, tmpl, normalize=False)
    torch.testing.assert_close(plain, F.conv2d(img, tmpl.unsqueeze(0)))
    ncc = template_match(img, tmpl)
    assert divmod(int(plain.argmax()), plain.shape[-1]) != (2, 2)   # the bright square wins
    assert divmod(int(ncc.argmax()), ncc.shape[-1]) == (2, 2)       # normalised finds the blob
    # constant patches score 0, not NaN; so does a constant template
    assert bool(torch.isfinite(ncc).all()) and float(ncc[0, 0, 14, 14]) == 0.0
    assert bool((template_match(img, torch.ones(1, 3, 3)) == 0).all())


def test_template_match_on_a_photo_finds_the_other_eye():
    from helpers.images import load_image

    cat = load_image("chelsea")                        # (1, 3, 300, 451)
    eye = cat[0, :, 95:140, 145:200]                   # the cat's left eye (viewer's left)
    ncc = template_match(cat, eye)
    ref = match_template(cat[0].permute(1, 2, 0).numpy().astype(np.float64),
                         eye.permute(1, 2, 0).numpy().astype(np.float64))[..., 0]
    np.testing.assert_allclose(ncc[0, 0].numpy(), ref, atol=1e-5)
    assert divmod(int(ncc.argmax()), ncc.shape[-1]) == (95, 145)
    # hide the eye itself: the best remaining match is the other eye, around (135, 310)
    masked = ncc[0, 0].clone()
    masked[95 - 45:95 + 45, 145 - 55:145 + 55] = -1
    i, j = divmod(int(masked.argmax()), masked.shape[-1])
    assert abs(i + 22 - 135) < 15 and abs(j + 27 - 310) < 20


def test_template_match_errors():
    with pytest.raises(ValueError, match="template must have the 3 channel"):
        template_match(torch.zeros(1, 3, 10, 10), torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="must not be larger than the images x"):
        template_match(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5, 5))
    with pytest.raises(ValueError, match="template must be a 3-D or 4-D"):
        template_match(torch.zeros(1, 1, 4, 4), torch.zeros(3, 3))


# ------------------------------------------------------------------------------------------------
# structure measures
# ------------------------------------------------------------------------------------------------
def test_smoothness_hand_values():
    ramp = torch.arange(9.0).reshape(1, 3, 3)
    # horizontal steps 1, vertical steps 3: mean squared step (6*1 + 6*9)/12 = 5; variance 60/9
    assert float(smoothness(ramp)[0]) == pytest.approx(1 - 5 / (2 * 60 / 9), abs=1e-6)
    checker = torch.tensor([[1.0, -1, 1], [-1, 1, -1], [1, -1, 1]]).unsqueeze(0)
    # every step is 2; the mean is 1/9, so the variance is 1 - 1/81
    assert float(smoothness(checker)[0]) == pytest.approx(1 - 4 / (2 * 80 / 81), abs=1e-6)
    assert float(smoothness(torch.ones(1, 3, 3))[0]) == 0.0
    blob = gaussian_kernel(9, 3.0).unsqueeze(0)
    g = torch.Generator().manual_seed(22)
    noise = torch.randn(2000, 9, 9, generator=g)
    assert float(smoothness(blob)[0]) > 0.8
    assert abs(float(smoothness(noise).mean())) < 0.05
    # channels are averaged first
    two = torch.stack([ramp[0], ramp[0]]).unsqueeze(0)
    assert float(smoothness(two)[0]) == pytest.approx(float(smoothness(ramp)[0]))


def test_center_energy_hand_values_and_random_baseline():
    f = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.0]]])
    assert float(center_energy(f)[0]) == pytest.approx(4 / 5)
    assert float(center_energy(torch.zeros(1, 5, 5))[0]) == 0.0
    g = torch.Generator().manual_seed(23)
    noise = torch.randn(20000, 5, 5, generator=g)
    assert float(center_energy(noise).mean()) == pytest.approx(1 / 25, abs=0.003)
    with pytest.raises(ValueError, match="odd height and width"):
        center_energy(torch.zeros(1, 4, 4))


# ------------------------------------------------------------------------------------------------
# EfficientNet-Lite filters
# ------------------------------------------------------------------------------------------------
def test_fold_batchnorm_equals_conv_then_bn():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=True).double()
    bn = nn.BatchNorm2d(4).double()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    x = _rand(2, 3, 6, 6, seed=24)
    w, b = fold_batchnorm(conv, bn)
    torch.testing.assert_close(F.conv2d(x, w, b, padding=1), bn(conv(x)))
    with pytest.raises(TypeError, match="bn must be an nn.BatchNorm2d"):
        fold_batchnorm(conv, conv)
    with pytest.raises(ValueError, match="num_features"):
        fold_batchnorm(conv, nn.BatchNorm2d(5))


def test_stem_and_depthwise_filters(model):
    stem = stem_filters(model)
    assert stem.shape == (32, 3, 3, 3) and not stem.requires_grad
    assert torch.equal(stem, model.stem.conv.weight)
    stem.zero_()                                        # a copy: the model is untouched
    assert model.stem.conv.weight.abs().sum() > 0
    folded = stem_filters(model, fold_bn=True)
    bn = model.stem.bn
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(folded, model.stem.conv.weight * scale.view(-1, 1, 1, 1))

    expected_shapes = {(0, 0): (32, 1, 3, 3), (2, 0): (144, 1, 5, 5), (4, 1): (672, 1, 5, 5),
                       (6, 0): (1152, 1, 3, 3)}
    for (s, b), shape in expected_shapes.items():
        dw = depthwise_filters(model, s, b)
        assert dw.shape == shape
        assert torch.equal(dw, model.stages[s][b].depthwise.conv.weight)
    with pytest.raises(ValueError, match=r"stage must be <= 6 \(the index of one of the model's 7"):
        depthwise_filters(model, 7)
    with pytest.raises(ValueError, match=r"block must be <= 0 \(stage 0 has 1 block"):
        depthwise_filters(model, 0, 1)
    with pytest.raises(TypeError, match="stage must be an int"):
        depthwise_filters(model, 1.0)
    with pytest.raises(TypeError, match="model must be a course EfficientNet-Lite"):
        stem_filters(nn.Sequential(nn.Conv2d(3, 8, 3)))


# ------------------------------------------------------------------------------------------------
# the package: one idea per module, the same public names as before
# ------------------------------------------------------------------------------------------------
def test_package_reexports_every_public_name_from_its_module():
    import helpers.filters as pkg
    from helpers.filters import convolution, kernels, learned, matching

    parts = [convolution, kernels, learned, matching]
    names = [n for m in parts for n in m.__all__]
    assert sorted(names) == sorted(pkg.__all__) and len(set(names)) == len(names)
    for m in parts:
        for n in m.__all__:
            assert getattr(pkg, n) is getattr(m, n)


# ------------------------------------------------------------------------------------------------
# helpers.testing.filters: the checks of the notebook's test cells
# ------------------------------------------------------------------------------------------------
def _unfold_conv(x, weight, bias=None, *, stride=1, padding=0):
    """An independent convolution (unfold + matrix product), as a student might write it."""
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))      # (N, C*kh*kw, L)
    out = (weight.reshape(c_out, -1) @ cols).reshape(
        n, c_out, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def _formula_gabor(size, *, sigma, theta, lambd, psi=0.0, gamma=0.5, trig=torch.cos):
    r = size // 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    xr = x * np.cos(theta) + y * np.sin(theta)
    yr = -x * np.sin(theta) + y * np.cos(theta)
    env = np.exp(-(xr ** 2 + gamma ** 2 * yr ** 2) / (2 * sigma ** 2))
    return (torch.from_numpy(env) * trig(torch.from_numpy(2 * np.pi * xr / lambd + psi))).float()


def _corrcoef_match(filters, bank):
    f = filters.mean(dim=1) if filters.ndim == 4 else filters
    if f.shape[-2:] != bank.shape[-2:]:
        raise ValueError("sizes differ")
    k = f.shape[0]
    corr = torch.corrcoef(torch.cat([f.reshape(k, -1), bank.reshape(len(bank), -1)]).double())
    corr = corr[:k, k:].nan_to_num(0.0)
    best, idx = corr.max(dim=1)
    return idx, best.float()


def test_check_conv2d_passes_a_correct_answer_and_names_the_slips():
    from helpers.testing.filters import check_conv2d, check_conv2d_gradients

    x, w, b = _rand(2, 3, 9, 8, seed=30), _rand(4, 3, 3, 3, seed=31), _rand(4, seed=32)
    out = check_conv2d(_unfold_conv, x, w, b, stride=(2, 1), padding=(1, 2))
    assert out.shape == (2, 4, 5, 10)
    check_conv2d_gradients(_unfold_conv, x, w, b, stride=2, padding=1)
    def in_place(x, w, b=None, **options):
        x.add_(1.0)                         # edits the caller's tensor
        return _unfold_conv(x - 1.0, w, b, **options)

    slips = {
        "kernel is flipped": lambda x, w, b=None, **o: _unfold_conv(x, w.flip(-1, -2), b, **o),
        "bias is missing": lambda x, w, b=None, **o: _unfold_conv(x, w, None, **o),
        "without calling torch.nn.functional.conv2d": lambda x, w, b=None, **o: F.conv2d(x, w, b,
                                                                                          **o),
        "the input x was modified in place": in_place,
        "bottom and right": lambda x, w, b=None, *, stride=1, padding=0: _unfold_conv(
            F.pad(x, (0, 2 * padding, 0, 2 * padding)), w, b, stride=stride),
        "expected shape": lambda x, w, b=None, **o: _unfold_conv(x, w, b, **o)[..., 1:],
    }
    for expected_words, wrong in slips.items():
        with pytest.raises(AssertionError, match=expected_words):
            check_conv2d(wrong, x.clone(), w, b, padding=1)
    with pytest.raises(AssertionError, match="autograd cannot differentiate"):
        check_conv2d_gradients(lambda x, w, b=None, **o: _unfold_conv(x, w, b, **o).detach(), x, w)


def test_check_gabor_passes_a_correct_answer_and_names_the_slips():
    from helpers.testing.filters import check_gabor

    params = dict(sigma=2.5, theta=0.6, lambd=5.0, psi=0.4, gamma=0.7)
    assert check_gabor(_formula_gabor, 9, **params).shape == (9, 9)
    with pytest.raises(AssertionError, match="sin instead of cos"):
        check_gabor(lambda s, **p: _formula_gabor(s, **p, trig=torch.sin), 9, **params)
    with pytest.raises(AssertionError, match="theta is used as degrees"):
        check_gabor(lambda s, **p: _formula_gabor(s, **{**p, "theta": math.radians(p["theta"])}),
                    9, **params)
    with pytest.raises(AssertionError, match="should return a float32 tensor"):
        check_gabor(lambda s, **p: _formula_gabor(s, **p).double(), 9, **params)
    import helpers.filters as pkg

    with pytest.raises(AssertionError, match="must be implemented without calling"):
        check_gabor(lambda s, **p: pkg.gabor_kernel(s, **p), 9, **params)
    with pytest.raises(AssertionError, match="is not close"):          # no known slip: the values
        check_gabor(lambda s, **p: _formula_gabor(s, **p) * 1.1, 9, **params)


def test_check_best_matching_gabor_passes_a_correct_answer_and_names_the_slips():
    from helpers.testing.filters import assert_raises, check_best_matching_gabor

    bank, _ = gabor_bank(5)
    filters = torch.cat([torch.full((1, 5, 5), 2.0), bank[[5]], -bank[[0]],
                         _rand(3, 5, 5, seed=33, dtype=torch.float32)])
    idx, r = check_best_matching_gabor(_corrcoef_match, filters, bank, what="mixed filters")
    assert idx.shape == (6,) and r.shape == (6,)
    check_best_matching_gabor(lambda f, b: (torch.full((1,), 7), torch.zeros(1)),  # a tie: any
                              torch.ones(1, 5, 5), bank, what="a constant filter")  # index is fine

    def absolute(f, b):
        corr = torch.corrcoef(torch.cat([f.reshape(1, -1), b.reshape(len(b), -1)]).double())
        best, i = corr[:1, 1:].abs().max(dim=1)
        return i, best.float()

    with pytest.raises(AssertionError, match="absolute value of the correlation"):
        check_best_matching_gabor(absolute, -bank[[0]], bank, what="-bank[0]")
    with pytest.raises(AssertionError, match="should return a pair"):
        check_best_matching_gabor(lambda f, b: _corrcoef_match(f, b)[0], filters, bank, what="x")
    with pytest.raises(AssertionError, match="should be an int64 tensor"):
        check_best_matching_gabor(lambda f, b: (_corrcoef_match(f, b)[0].int(),
                                                _corrcoef_match(f, b)[1]), filters, bank, what="x")
    assert_raises(ValueError, _corrcoef_match, torch.zeros(2, 3, 3), bank, why="sizes differ")


def test_check_normalize_filters_and_assert_raises_messages():
    from helpers.testing.filters import assert_raises, check_normalize_filters

    def numpy_normalize(w):
        a = w.numpy().reshape(len(w), -1)
        lo, hi = a.min(1, keepdims=True), a.max(1, keepdims=True)
        span = np.where(hi - lo > 1e-8, hi - lo, 1.0)
        out = np.where(hi - lo > 1e-8, (a - lo) / span, 0.5)
        return torch.from_numpy(out.reshape(w.shape)).to(w.dtype)

    w = _rand(5, 3, 3, 3, seed=34)
    w[2] = 1.5
    check_normalize_filters(numpy_normalize, w)
    with pytest.raises(AssertionError, match="over the whole tensor, not per filter"):
        check_normalize_filters(lambda w: (w - w.min()) / (w.max() - w.min()), w)
    with pytest.raises(AssertionError, match="filter 2 is constant"):
        check_normalize_filters(lambda w: numpy_normalize(w).nan_to_num(0.0) * (w != 1.5), w)
    with pytest.raises(AssertionError, match=r"normalize_filters is not implemented yet"):
        def normalize_filters(w):
            raise NotImplementedError()
        check_normalize_filters(normalize_filters, w)
    with pytest.raises(AssertionError, match=r"int\('7'\) should raise a ValueError \(why\), but "
                                             r"it returned 7"):
        assert_raises(ValueError, int, "7", why="why")
    with pytest.raises(AssertionError, match="should raise a ValueError .*, got TypeError"):
        assert_raises(ValueError, int, None, why="why")
    with pytest.raises(AssertionError, match="gabor_kernel is not implemented yet"):
        def gabor_kernel(size):
            raise NotImplementedError()
        assert_raises(ValueError, gabor_kernel, 4, why="even size")
