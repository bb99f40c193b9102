"""Tests for helpers.images: bundled offline images, file decoding, resizing, errors."""
import matplotlib

matplotlib.use("Agg")

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import images as images_mod
from helpers.images import image_info, list_images, load_image, resize_image, to_numpy_image

SKIMAGE_FUNCS = {  # bundled name -> skimage.data function (independent reference decode)
    "astronaut": "astronaut", "brick": "brick", "camera": "camera", "cell": "cell",
    "checkerboard": "checkerboard", "chelsea": "chelsea", "clock": "clock", "coffee": "coffee",
    "coins": "coins", "colorwheel": "colorwheel", "grass": "grass", "gravel": "gravel",
    "hubble_deep_field": "hubble_deep_field", "immunohistochemistry": "immunohistochemistry",
    "microaneurysms": "microaneurysms", "moon": "moon", "page": "page", "retina": "retina",
    "rocket": "rocket", "text": "text",
}


def _reference_decode(name):
    """Decode a bundled image without helpers.images: HxWx3 float64 in [0, 1]."""
    if name in SKIMAGE_FUNCS:
        import skimage.data

        arr = getattr(skimage.data, SKIMAGE_FUNCS[name])()
    elif name == "motorcycle":
        import skimage.data

        arr = skimage.data.stereo_motorcycle()[0]
    elif name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        arr = load_sample_image(name + ".jpg")
    elif name == "grace_hopper":
        import matplotlib.pyplot as plt
        from matplotlib import cbook

        arr = plt.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    else:
        raise KeyError(name)
    assert arr.dtype == np.uint8, (name, arr.dtype)
    arr = arr.astype(np.float64) / 255.0
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    return arr


def _pil_float_resize(arr_hwc, size_wh):
    """Independent antialiased bilinear resize: Pillow, float mode, channel by channel."""
    chans = [np.asarray(Image.fromarray(arr_hwc[..., c].astype(np.float32), mode="F")
                        .resize(size_wh, Image.BILINEAR)) for c in range(arr_hwc.shape[-1])]
    return np.stack(chans, axis=-1)


# ---------------------------------------------------------------------------------------------
# bundled images
# ---------------------------------------------------------------------------------------------
def test_list_images_is_sorted_and_covers_the_three_packages():
    names = list_images()
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    expected = set(SKIMAGE_FUNCS) | {"motorcycle", "china", "flower", "grace_hopper"}
    assert set(names) == expected
    # images that need a download from the internet must not be listed
    for needs_download in ("brain", "cells3d", "eagle", "lily", "kidney", "skin"):
        assert needs_download not in names
    for n in names:
        assert "." not in n


def test_every_bundled_image_loads_offline_and_matches_an_independent_decode(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("load_image tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    images_mod._decode_bundled.cache_clear()
    for name in list_images():
        x = load_image(name)
        assert x.dtype == torch.float32 and x.ndim == 4 and x.shape[:2] == (1, 3), name
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0, name
        ref = _reference_decode(name)
        got = x[0].permute(1, 2, 0).numpy()
        assert got.shape == ref.shape, name
        np.testing.assert_allclose(got, ref, atol=1e-6, err_msg=name)


def test_image_info_matches_the_pixels():
    info = image_info()
    assert list(info) == list_images()
    for name, entry in info.items():
        assert entry["name"] == name
        assert entry["source"] in {"scikit-image", "scikit-learn", "matplotlib"}
        assert isinstance(entry["description"], str) and len(entry["description"]) > 10
        x = load_image(name)
        gray = bool(torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2]))
        assert entry["grayscale"] == gray, name
    assert image_info("Coffee")["name"] == "coffee"
    with pytest.raises(ValueError, match="name must be one of"):
        image_info("no_such_picture")


def test_bundled_names_are_case_insensitive_and_accept_an_extension():
    ref = load_image("china")
    assert torch.equal(load_image("China"), ref)
    assert torch.equal(load_image("china.jpg"), ref)
    assert torch.equal(load_image(" grace_hopper.JPG "), load_image("grace_hopper"))


def test_each_call_returns_a_fresh_tensor_and_decoding_is_cached(monkeypatch):
    import skimage.data

    images_mod._decode_bundled.cache_clear()
    a = load_image("chelsea")
    original = a.clone()
    a.zero_()  # the caller edits its copy
    # a second load must not decode again (the cache holds the array) ...
    monkeypatch.setattr(skimage.data, "chelsea", lambda: (_ for _ in ()).throw(
        AssertionError("decoded twice")))
    b = load_image("chelsea")
    # ... and must not see the caller's edit
    assert torch.equal(b, original)
    assert b.data_ptr() != a.data_ptr()
    b.add_(0)  # writable (no read-only numpy memory underneath)


# ---------------------------------------------------------------------------------------------
# sizes
# ---------------------------------------------------------------------------------------------
def test_int_size_resizes_the_shorter_side_then_centre_crops():
    # chelsea is 300 x 451: shorter side 300 -> 100, longer 451 -> round(150.33) = 150,
    # then the central 100 columns: 25 .. 124.
    x = load_image("chelsea", size=100)
    assert x.shape == (1, 3, 100, 100)
    ref = _pil_float_resize(_reference_decode("chelsea"), (150, 100))[:, 25:125]
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)


def test_int_size_on_a_tall_image_crops_rows():
    x = torch.rand(1, 3, 90, 30)
    y = resize_image(x, 10)
    assert y.shape == (1, 3, 10, 10)
    ref = _pil_float_resize(x[0].permute(1, 2, 0).numpy(), (10, 30))[10:20]
    np.testing.assert_allclose(y[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)


def test_tuple_size_is_exact_height_width():
    x = load_image("coffee", size=(50, 120))
    assert x.shape == (1, 3, 50, 120)
    ref = _pil_float_resize(_reference_decode("coffee"), (120, 50))
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)
    up = load_image("microaneurysms", size=[204, 204])  # enlarging works too
    assert up.shape == (1, 3, 204, 204)
    assert float(up.min()) >= 0 and float(up.max()) <= 1


def test_size_equal_to_the_original_changes_nothing():
    assert torch.equal(load_image("chelsea", size=(300, 451)), load_image("chelsea"))
    assert torch.equal(load_image("camera", size=512), load_image("camera"))


def test_shrinking_is_antialiased():
    # one-pixel stripes shrunk 3x: plain bilinear sampling lands exactly on pixel centres and
    # returns whole stripes (0, 1, 0, 1, ...); an antialiasing (triangle, width 3) filter mixes
    # them: 4/9 or 5/9 (weights 1/3, 2/3, 1, 2/3, 1/3 over five neighbouring pixels)
    stripes = torch.zeros(1, 3, 63, 63)
    stripes[..., ::2] = 1.0
    small = resize_image(stripes, (21, 21))
    assert float(small.min()) > 4 / 9 - 1e-4 and float(small.max()) < 5 / 9 + 1e-4


def test_resize_image_none_is_identity():
    x = torch.rand(1, 3, 5, 7)
    assert resize_image(x, None) is x


@pytest.mark.parametrize("bad", [0, -3, 1.5, "big", (10,), (10, 0), (10, 2.0), True, (1, 2, 3)])
def test_bad_size_is_refused_naming_size(bad):
    with pytest.raises((TypeError, ValueError), match="size"):
        load_image("chelsea", size=bad)


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def test_rgb_png_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(13, 17, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(arr).save(path)
    for p in (path, str(path)):
        x = load_image(p)
        assert x.shape == (1, 3, 13, 17) and x.dtype == torch.float32
        np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), arr / 255.0, atol=1e-7)


def test_jpeg_loads(tmp_path):
    yy, xx = np.mgrid[0:40, 0:60]
    arr = np.stack([xx * 4, yy * 6, np.full_like(xx, 128)], -1).astype(np.uint8)
    path = tmp_path / "smooth.jpg"
    Image.fromarray(arr).save(path, quality=95)
    x = load_image(path)
    assert x.shape == (1, 3, 40, 60)
    assert np.abs(x[0].permute(1, 2, 0).numpy() - arr / 255.0).max() < 0.05


def test_grayscale_is_copied_to_three_channels(tmp_path):
    arr = np.arange(0, 240, dtype=np.uint8).reshape(12, 20)
    Image.fromarray(arr, mode="L").save(tmp_path / "g.png")
    Image.fromarray(arr > 100).save(tmp_path / "bw.png")  # mode "1"
    x = load_image(tmp_path / "g.png")
    for c in range(3):
        np.testing.assert_allclose(x[0, c].numpy(), arr / 255.0, atol=1e-7)
    bw = load_image(tmp_path / "bw.png")
    np.testing.assert_array_equal(bw[0, 1].numpy(), (arr > 100).astype(np.float32))


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0] = 200                     # red channel 200
    rgba[0, :, 3] = [0, 128, 255]          # alpha across the first row
    rgba[1, :, 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")[0]
    a = np.array([0, 128, 255]) / 255.0
    # out = alpha * colour + (1 - alpha) * white
    np.testing.assert_allclose(x[0, 0].numpy(), a * 200 / 255 + (1 - a), atol=1e-6)
    np.testing.assert_allclose(x[1, 0].numpy(), 1 - a, atol=1e-6)       # green = 0
    np.testing.assert_allclose(x[:, 1].numpy(), [[200 / 255] * 3, [0] * 3, [0] * 3], atol=1e-6)

    la = np.zeros((1, 2, 2), dtype=np.uint8)
    la[0, :, 0] = 50
    la[0, :, 1] = [0, 255]
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    y = load_image(tmp_path / "la.png")[0]
    np.testing.assert_allclose(y[:, 0, :].numpy(), [[1.0, 50 / 255]] * 3, atol=1e-6)

    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.putpixel((1, 0), 1)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "p.png", transparency=0)
    z = load_image(tmp_path / "p.png")[0]
    np.testing.assert_allclose(z[:, 0, 0].numpy(), [1, 1, 1], atol=1e-6)  # transparent -> white
    np.testing.assert_allclose(z[:, 0, 1].numpy(), [0, 0, 1], atol=1e-6)  # opaque blue


def test_sixteen_bit_png_is_scaled_by_65535(tmp_path):
    arr = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1300 + 7).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "deep.png")
    x = load_image(tmp_path / "deep.png")
    for c in range(3):
        np.testing.assert_allclose(x[0, c].numpy(), arr / 65535.0, atol=1e-6)
    assert float(x.max()) > 0.9  # not divided by 255 and clipped


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((10, 30, 3), dtype=np.uint8)  # wide picture ...
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # ... stored sideways: "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "phone.jpg").shape == (1, 3, 30, 10)


def test_a_file_beats_a_bundled_name_with_the_same_file_name(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(tmp_path / "china.jpg")
    monkeypatch.chdir(tmp_path)
    assert load_image("china.jpg").shape == (1, 3, 4, 5)
    assert load_image("china").shape == (1, 3, 427, 640)  # the plain name is the bundled one


def test_tilde_is_expanded(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((4, 5, 3), dtype=np.uint8)).save(tmp_path / "mine.png")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_image("~/mine.png").shape == (1, 3, 4, 5)


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_unknown_name_lists_the_bundled_images():
    with pytest.raises(ValueError, match="neither a bundled image nor an existing file") as err:
        load_image("no_such_picture")
    for name in list_images():
        assert name in str(err.value)
    with pytest.raises(ValueError, match="Did you mean 'chelsea'"):
        load_image("chelsae")


def test_missing_path_raises_file_not_found(tmp_path):
    missing = tmp_path / "nope.png"
    for arg in (missing, str(missing), "nope.png", "photos/cat"):
        with pytest.raises(FileNotFoundError) as err:
            load_image(arg)
        assert "nope.png" in str(err.value) or "photos" in str(err.value)
        assert "chelsea" in str(err.value)


def test_corrupt_files_raise_value_error_naming_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image at all")
    with pytest.raises(ValueError, match="not a readable image") as err:
        load_image(bad)
    assert "bad.png" in str(err.value) and "chelsea" in str(err.value)

    good = tmp_path / "full.jpg"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    with pytest.raises(ValueError, match="truncated.jpg.*not a readable image"):
        load_image(truncated)

    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        load_image(empty)


def test_folder_and_wrong_type_are_refused(tmp_path):
    with pytest.raises(ValueError, match="folder"):
        load_image(tmp_path)
    for bad in (3, None, torch.zeros(3), ["chelsea"]):
        with pytest.raises(TypeError, match="name_or_path"):
            load_image(bad)


# ---------------------------------------------------------------------------------------------
# to_numpy_image
# ---------------------------------------------------------------------------------------------
def test_to_numpy_image_layouts():
    x = torch.rand(1, 3, 4, 5, requires_grad=True)
    out = to_numpy_image(x)
    assert out.shape == (4, 5, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1, 2], x.detach()[0, :, 1, 2].numpy())
    out[:] = 0  # a copy: the tensor is untouched
    assert float(x.detach().abs().sum()) > 0
    assert to_numpy_image(x[0]).shape == (4, 5, 3)
    assert to_numpy_image(torch.rand(1, 1, 4, 5)).shape == (4, 5)
    assert to_numpy_image(torch.rand(1, 4, 5)).shape == (4, 5)
    assert to_numpy_image(np.zeros((4, 5))).shape == (4, 5)
    with pytest.raises(ValueError, match="single image"):
        to_numpy_image(torch.rand(2, 3, 4, 5))
    with pytest.raises(ValueError, match="channels"):
        to_numpy_image(torch.rand(5, 4, 5))
    with pytest.raises(TypeError, match="x must be"):
        to_numpy_image([1, 2])


def test_crop_cuts_the_box_before_resizing():
    full = load_image("chelsea")
    box = load_image("chelsea", crop=(10, 20, 100, 150))
    assert box.shape == (1, 3, 100, 150)
    assert torch.equal(box, full[..., 10:110, 20:170])
    small = load_image("chelsea", size=50, crop=(0, 0, 300, 300))
    assert small.shape == (1, 3, 50, 50)
    assert torch.allclose(small, resize_image(full[..., :300, :300], 50))


@pytest.mark.parametrize("crop, err, words", [
    ((0, 0, 301, 10), ValueError, "does not fit"),
    ((-1, 0, 10, 10), ValueError, "does not fit"),
    ((0, 0, 10), TypeError, "four ints"),
    ((0, 0, 10.0, 10), TypeError, "four ints"),
])
def test_bad_crop_names_the_argument(crop, err, words):
    with pytest.raises(err, match=words) as info:
        load_image("chelsea", crop=crop)
    assert "crop" in str(info.value)
