"""Tests for helpers.plotting: rescale, show_images, show_filters, show_heatmap."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.axes import Axes

from helpers.plotting import rescale, show_filters, show_heatmap, show_images


@pytest.fixture(autouse=True)
def _close_figures(monkeypatch):
    def no_show(*args, **kwargs):
        raise AssertionError("library code must not call plt.show()")

    monkeypatch.setattr(plt, "show", no_show)
    plt.close("all")
    yield
    plt.close("all")


def _numpy_minmax(a, per_item=True):
    """Independent reference for rescale, written with NumPy."""
    a = np.asarray(a, dtype=np.float64)
    items = a.reshape(a.shape[0], -1) if per_item else a.reshape(1, -1)
    out = np.empty_like(items)
    for i, row in enumerate(items):
        span = row.max() - row.min()
        out[i] = 0.5 if span <= 1e-8 else (row - row.min()) / span
    return out.reshape(a.shape)


def _drawn(ax):
    """The pixel array drawn on an axes (the first image)."""
    ims = ax.get_images()
    assert ims, "no image drawn on this axes"
    return np.asarray(ims[0].get_array())


# ---------------------------------------------------------------------------------------------
# rescale
# ---------------------------------------------------------------------------------------------
def test_rescale_hand_computed_values():
    x = torch.tensor([[-1.0, 0.0, 3.0], [2.0, 2.0, 2.0]])
    expected = torch.tensor([[0.0, 0.25, 1.0], [0.5, 0.5, 0.5]])
    assert torch.allclose(rescale(x), expected)
    # one min/max for everything: (v - (-1)) / 4
    assert torch.allclose(rescale(x, per_item=False),
                          torch.tensor([[0.0, 0.25, 1.0], [0.75, 0.75, 0.75]]))
    assert torch.equal(rescale(torch.full((2, 3), 7.0), per_item=False), torch.full((2, 3), 0.5))


def test_rescale_matches_numpy_reference_per_item_and_global():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 4, 4, generator=g) * torch.arange(1, 6).view(5, 1, 1, 1)
    x[2] = 1.234  # a constant item -> mid grey
    np.testing.assert_allclose(rescale(x).numpy(), _numpy_minmax(x.numpy()), atol=1e-6)
    np.testing.assert_allclose(rescale(x, per_item=False).numpy(),
                               _numpy_minmax(x.numpy(), per_item=False), atol=1e-6)
    assert torch.equal(rescale(x)[2], torch.full((3, 4, 4), 0.5))
    for i in range(5):
        if i != 2:
            assert float(rescale(x)[i].min()) == 0.0 and float(rescale(x)[i].max()) == 1.0


def test_rescale_keeps_dtype_device_and_leaves_input_alone():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    before = x.detach().clone()
    y = rescale(x)
    assert y.dtype == torch.float64 and y.device == x.device
    assert not y.requires_grad and y.grad_fn is None
    assert torch.equal(x.detach(), before) and x.grad is None
    assert x.requires_grad
    h = rescale(torch.randn(2, 5).half())
    assert h.dtype == torch.float16 and float(h.min()) == 0.0 and float(h.max()) == 1.0
    i = rescale(torch.tensor([[0, 5, 10]]))
    assert i.dtype == torch.float32 and torch.allclose(i, torch.tensor([[0.0, 0.5, 1.0]]))


def test_rescale_eps_and_near_constant_items():
    x = torch.tensor([[1.0, 1.0 + 1e-10], [0.0, 1e-3]])
    y = rescale(x)
    assert torch.equal(y[0], torch.tensor([0.5, 0.5]))  # span below eps: no contrast
    assert torch.allclose(y[1], torch.tensor([0.0, 1.0]))
    assert torch.equal(rescale(x, eps=1e-2)[1], torch.tensor([0.5, 0.5]))


def test_rescale_numpy_zero_dim_and_empty():
    a = np.array([[0.0, 2.0], [4.0, 8.0]])
    out = rescale(a)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [[0, 1], [0, 1]])
    assert float(rescale(torch.tensor(3.0))) == 0.5
    assert rescale(torch.zeros(0, 3)).shape == (0, 3)


def test_rescale_errors():
    with pytest.raises(ValueError, match="NaN"):
        rescale(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(TypeError, match="x must be"):
        rescale([1.0, 2.0])
    with pytest.raises(ValueError, match="eps"):
        rescale(torch.zeros(2), eps=-1)


# ---------------------------------------------------------------------------------------------
# show_images
# ---------------------------------------------------------------------------------------------
def test_show_images_draws_each_image_as_is():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 8, 6, generator=g)
    n_before = len(plt.get_fignums())
    axes = show_images(x, titles=["a", "b", "c", "d"])
    assert len(plt.get_fignums()) == n_before + 1  # exactly one new figure
    assert isinstance(axes, np.ndarray) and axes.shape == (4,)
    for i, ax in enumerate(axes):
        np.testing.assert_allclose(_drawn(ax), x[i].permute(1, 2, 0).numpy(), atol=1e-7)
        assert ax.get_title() == "abcd"[i]
        assert len(ax.get_xticks()) == 0 and len(ax.get_yticks()) == 0
    assert x.shape == (4, 3, 8, 6)  # input untouched


def test_show_images_grid_and_unused_tiles():
    axes = show_images(torch.rand(5, 1, 4, 4), ncols=3)
    assert len(axes) == 6
    assert [len(ax.get_images()) for ax in axes] == [1, 1, 1, 1, 1, 0]
    assert [ax.axison for ax in axes] == [True] * 5 + [False]
    fig = axes[0].figure
    assert len(fig.axes) == 6
    assert show_images(torch.rand(20, 3, 4, 4)).shape == (24,)  # 8 columns by default


def test_show_images_grayscale_layouts_use_fixed_grey_range():
    g = torch.Generator().manual_seed(2)
    stack = torch.rand(5, 7, 9, generator=g) * 0.5  # dark images must stay dark
    axes = show_images(stack)
    for i, ax in enumerate(axes):
        im = ax.get_images()[0]
        assert im.get_clim() == (0.0, 1.0)
        assert im.get_cmap().name == "gray"
        np.testing.assert_allclose(_drawn(ax), stack[i].numpy(), atol=1e-7)
    one = show_images(torch.rand(1, 7, 9), cmap="viridis")
    assert len([a for a in one if a.get_images()]) == 1
    assert one[0].get_images()[0].get_cmap().name == "viridis"
    rgb = show_images(torch.rand(3, 7, 9))  # (3, H, W) is one colour image
    assert len(rgb) == 1 and _drawn(rgb[0]).shape == (7, 9, 3)


def test_show_images_numpy_and_mixed_list():
    hwc = np.random.default_rng(0).random((10, 12, 3))
    gray = np.random.default_rng(1).random((5, 5))
    axes = show_images([torch.rand(2, 3, 8, 8), hwc, gray, torch.rand(3, 4, 6)])
    drawn = [ax for ax in axes if ax.get_images()]
    assert len(drawn) == 5
    np.testing.assert_allclose(_drawn(drawn[2]), hwc, atol=1e-7)
    np.testing.assert_allclose(_drawn(drawn[3]), gray, atol=1e-7)
    assert _drawn(drawn[4]).shape == (4, 6, 3)
    nhwc = show_images(np.random.default_rng(2).random((2, 6, 5, 3)))
    assert [_drawn(a).shape for a in nhwc] == [(6, 5, 3), (6, 5, 3)]


def test_out_of_range_images_are_rescaled_with_a_note():
    g = torch.Generator().manual_seed(3)
    pert = torch.randn(1, 3, 6, 6, generator=g) * 0.03  # a perturbation around 0
    ok = torch.rand(1, 3, 6, 6, generator=g)
    axes = show_images(torch.cat([ok, pert]), titles=["image", "perturbation"])
    np.testing.assert_allclose(_drawn(axes[0]), ok[0].permute(1, 2, 0).numpy(), atol=1e-7)
    np.testing.assert_allclose(_drawn(axes[1]), _numpy_minmax(pert.numpy())[0].transpose(1, 2, 0),
                               atol=1e-6)
    assert axes[0].get_title() == "image"
    assert axes[1].get_title() == "perturbation (rescaled)"

    clipped = show_images(pert, scale="clip")
    np.testing.assert_allclose(_drawn(clipped[0]),
                               pert[0].clamp(0, 1).permute(1, 2, 0).numpy(), atol=1e-7)
    assert clipped[0].get_title() == ""
    forced = show_images(ok, scale="rescale")
    np.testing.assert_allclose(_drawn(forced[0]),
                               _numpy_minmax(ok.numpy())[0].transpose(1, 2, 0), atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        show_images(ok, scale="stretch")
    # rounding noise just outside [0, 1] is clipped, not a reason to stretch the image
    noisy = ok.clone()
    noisy[0, 0, 0, 0] = 1.00005
    noisy[0, 1, 0, 0] = -0.00005
    tile = show_images(noisy)[0]
    np.testing.assert_allclose(_drawn(tile), noisy[0].clamp(0, 1).permute(1, 2, 0).numpy(),
                               atol=1e-7)
    assert tile.get_title() == ""


def test_show_images_into_given_axes_creates_no_figure():
    fig, grid = plt.subplots(2, 2)
    n_before = len(plt.get_fignums())
    x = torch.rand(3, 3, 5, 5, requires_grad=True)
    out = show_images(x, axes=grid, suptitle="mine")
    assert len(plt.get_fignums()) == n_before
    assert list(out) == list(grid.ravel())
    assert [len(a.get_images()) for a in grid.ravel()] == [1, 1, 1, 0]
    assert not grid.ravel()[3].axison
    assert fig.get_suptitle() == "mine"
    single_fig, single_ax = plt.subplots()
    show_images(torch.rand(1, 3, 4, 4), axes=single_ax, titles="only")
    assert single_ax.get_title() == "only"
    assert x.requires_grad and x.grad is None


def test_show_images_errors_name_the_argument():
    with pytest.raises(ValueError, match="titles"):
        show_images(torch.rand(2, 3, 4, 4), titles=["one"])
    with pytest.raises(ValueError, match="images"):
        show_images(torch.rand(1, 1, 3, 4, 4))
    with pytest.raises(ValueError, match="images.*channels.*channels-last"):
        show_images(torch.rand(2, 4, 4, 3))
    with pytest.raises(TypeError, match="images"):
        show_images("chelsea")
    with pytest.raises(TypeError, match=r"images\[1\]"):
        show_images([torch.rand(3, 4, 4), "x"])
    with pytest.raises(ValueError, match="empty"):
        show_images([])
    with pytest.raises(ValueError, match="NaN"):
        show_images(torch.full((1, 3, 2, 2), float("nan")))
    _, two = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="axes"):
        show_images(torch.rand(3, 3, 4, 4), axes=two)
    with pytest.raises(TypeError, match="axes"):
        show_images(torch.rand(1, 3, 4, 4), axes=["not an axes"])
    with pytest.raises((TypeError, ValueError), match="ncols"):
        show_images(torch.rand(2, 3, 4, 4), ncols=0)


def test_figure_count_only_grows_when_a_figure_is_made():
    n0 = len(plt.get_fignums())
    show_images(torch.rand(2, 3, 4, 4))
    show_filters(torch.rand(4, 3, 3, 3))
    show_heatmap(torch.rand(1, 3, 8, 8), torch.rand(8, 8))
    assert len(plt.get_fignums()) == n0 + 3
    _, ax = plt.subplots()
    _, grid = plt.subplots(1, 4)
    n1 = len(plt.get_fignums())
    show_heatmap(torch.rand(1, 3, 8, 8), torch.rand(8, 8), ax=ax)
    show_filters(torch.rand(4, 3, 3, 3), axes=grid)
    assert len(plt.get_fignums()) == n1


# ---------------------------------------------------------------------------------------------
# show_filters
# ---------------------------------------------------------------------------------------------
def test_show_filters_rgb_tiles_are_rescaled_per_filter():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 10, 3)
    w = conv.weight
    axes = show_filters(conv)  # a module is accepted too
    drawn = [a for a in axes if a.get_images()]
    assert len(drawn) == 10
    ref = _numpy_minmax(w.detach().numpy())
    for i, ax in enumerate(drawn):
        im = ax.get_images()[0]
        assert im.get_interpolation() == "nearest"
        np.testing.assert_allclose(_drawn(ax), ref[i].transpose(1, 2, 0), atol=1e-6)
    assert w.requires_grad and w.grad is None
    glob = show_filters(w, per_filter=False)
    ref_g = _numpy_minmax(w.detach().numpy(), per_item=False)
    np.testing.assert_allclose(_drawn(glob[3]), ref_g[3].transpose(1, 2, 0), atol=1e-6)


def test_show_filters_gray_depthwise_mean_and_channel():
    g = torch.Generator().manual_seed(5)
    dw = torch.randn(6, 1, 5, 5, generator=g)
    axes = show_filters(dw, ncols=3)
    assert len(axes) == 6
    np.testing.assert_allclose(_drawn(axes[4]), _numpy_minmax(dw.numpy())[4, 0], atol=1e-6)
    assert axes[4].get_images()[0].get_cmap().name == "gray"

    w = torch.randn(4, 16, 3, 3, generator=g)
    mean_axes = show_filters(w)
    ref = _numpy_minmax(w.numpy().mean(axis=1))
    np.testing.assert_allclose(_drawn(mean_axes[1]), ref[1], atol=1e-6)
    ch_axes = show_filters(w, channel=7, titles=["f0", "f1", "f2", "f3"])
    np.testing.assert_allclose(_drawn(ch_axes[2]), _numpy_minmax(w[:, 7].numpy())[2], atol=1e-6)
    assert [a.get_title() for a in ch_axes] == ["f0", "f1", "f2", "f3"]
    rgb_one = show_filters(torch.randn(2, 3, 3, 3, generator=g), channel=0)
    assert _drawn(rgb_one[0]).shape == (3, 3)


def test_show_filters_errors_name_the_argument():
    with pytest.raises(ValueError, match="weight"):
        show_filters(torch.rand(3, 3, 3))
    with pytest.raises(TypeError, match="weight"):
        show_filters([[1.0]])
    with pytest.raises(ValueError, match="channel"):
        show_filters(torch.rand(4, 16, 3, 3), channel=16)
    with pytest.raises(TypeError, match="channel"):
        show_filters(torch.rand(4, 16, 3, 3), channel=1.0)
    with pytest.raises(ValueError, match="titles"):
        show_filters(torch.rand(4, 3, 3, 3), titles=["a"])


# ---------------------------------------------------------------------------------------------
# show_heatmap
# ---------------------------------------------------------------------------------------------
def test_show_heatmap_overlays_a_bilinearly_resized_map():
    image = torch.rand(1, 3, 4, 4)
    heat = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    ax = show_heatmap(image, heat, alpha=0.3, title="map")
    assert isinstance(ax, Axes)
    base, overlay = ax.get_images()
    np.testing.assert_allclose(np.asarray(base.get_array()), image[0].permute(1, 2, 0).numpy(),
                               atol=1e-7)
    # bilinear 2 -> 4 with pixel-centre alignment: source positions -0.25, 0.25, 0.75, 1.25
    # (clamped at the border) give 0, 1/4, 3/4, 1 along each row
    row = np.array([0.0, 0.25, 0.75, 1.0])
    np.testing.assert_allclose(np.asarray(overlay.get_array()), np.stack([row] * 4), atol=1e-6)
    assert overlay.get_alpha() == 0.3
    assert overlay.get_cmap().name == "jet"
    assert ax.get_title() == "map"


def test_show_heatmap_shapes_colorbar_and_given_ax():
    img = torch.rand(3, 6, 8)
    for heat in (torch.rand(6, 8), torch.rand(1, 6, 8), torch.rand(1, 1, 3, 4),
                 np.random.default_rng(0).random((12, 16))):
        ax = show_heatmap(img, heat)
        assert np.asarray(ax.get_images()[1].get_array()).shape == (6, 8)
    fig, ax = plt.subplots()
    n = len(plt.get_fignums())
    heat = torch.rand(6, 8)
    out = show_heatmap(img, heat, ax=ax, colorbar=True, cmap="magma", vmin=0.0, vmax=2.0)
    assert out is ax and len(plt.get_fignums()) == n
    assert len(fig.axes) == 2  # the colour bar
    assert ax.get_images()[1].get_clim() == (0.0, 2.0)
    np.testing.assert_allclose(np.asarray(ax.get_images()[1].get_array()), heat.numpy())


def test_show_heatmap_errors_name_the_argument():
    img = torch.rand(1, 3, 6, 8)
    with pytest.raises(ValueError, match="heatmap"):
        show_heatmap(img, torch.rand(2, 6, 8))
    with pytest.raises(TypeError, match="heatmap"):
        show_heatmap(img, [[0.0]])
    with pytest.raises(ValueError, match="heatmap.*NaN"):
        show_heatmap(img, torch.full((6, 8), float("nan")))
    with pytest.raises(ValueError, match="image"):
        show_heatmap(torch.rand(2, 3, 6, 8), torch.rand(6, 8))
    with pytest.raises(ValueError, match="alpha"):
        show_heatmap(img, torch.rand(6, 8), alpha=1.5)
