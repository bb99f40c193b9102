"""Images for the course: bundled offline pictures and your own files, as (1, 3, H, W) tensors.

Every picture in the course is a float tensor of shape ``(N, 3, H, W)`` with values in [0, 1]
(see COURSE.md).  :func:`load_image` is the one door through which pictures enter: it takes the
name of an image that ships inside an installed package (no network needed) or the path of any
file Pillow can read, and always hands back the same kind of tensor.

Bundled images come from three packages the course already depends on:

* scikit-image (``skimage.data``): photographs, textures, microscopy, astronomy;
* scikit-learn (``sklearn.datasets.load_sample_image``): ``china`` and ``flower``;
* matplotlib (``matplotlib.cbook.get_sample_data``): ``grace_hopper``.

Only images whose files are part of those packages' installations are listed; scikit-image
images that need a download (``brain``, ``cells3d``, ``eagle``, ``lily``, ...) are left out.

Example
-------
>>> from helpers.images import list_images, load_image
>>> "chelsea" in list_images()
True
>>> x = load_image("chelsea", size=224)       # shorter side -> 224, then centre crop
>>> x.shape, x.dtype
(torch.Size([1, 3, 224, 224]), torch.float32)
"""
from __future__ import annotations

import difflib
import functools
import os
import pathlib
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "list_images",
    "image_info",
    "load_image",
    "resize_image",
    "to_numpy_image",
]

# name -> (source package, loader argument, grayscale?, description)
# Descriptions are short enough for a gallery caption.
_REGISTRY: Dict[str, Tuple[str, str, bool, str]] = {
    "astronaut": ("scikit-image", "astronaut", False,
                  "Portrait of NASA astronaut Eileen Collins (public domain)"),
    "brick": ("scikit-image", "brick", True, "Close-up of a brick wall: a regular texture"),
    "camera": ("scikit-image", "camera", True,
               "The classic 'cameraman' test photograph"),
    "cell": ("scikit-image", "cell", True,
             "Phase-contrast microscope picture of a single cell"),
    "checkerboard": ("scikit-image", "checkerboard", True,
                     "Synthetic black-and-white checkerboard (sharp edges for edge filters)"),
    "chelsea": ("scikit-image", "chelsea", False,
                "Chelsea the tabby cat (EfficientNet-Lite0 says: Egyptian cat)"),
    "clock": ("scikit-image", "clock", True, "Wall clock photographed with motion blur"),
    "coffee": ("scikit-image", "coffee", False,
               "A cup of coffee on a saucer (EfficientNet-Lite0 says: espresso)"),
    "coins": ("scikit-image", "coins", True, "Ancient Greek coins from Pompeii on a dark cloth"),
    "colorwheel": ("scikit-image", "colorwheel", False,
                   "Synthetic colour wheel: every hue around a circle"),
    "grass": ("scikit-image", "grass", True, "Grass seen from above: an irregular texture"),
    "gravel": ("scikit-image", "gravel", True, "Gravel seen from above: a granular texture"),
    "hubble_deep_field": ("scikit-image", "hubble_deep_field", False,
                          "Hubble Space Telescope deep-field view of distant galaxies"),
    "immunohistochemistry": ("scikit-image", "immunohistochemistry", False,
                             "Stained tissue section under a microscope (immunohistochemistry)"),
    "microaneurysms": ("scikit-image", "microaneurysms", True,
                       "Small crop of a retina image showing microaneurysms"),
    "moon": ("scikit-image", "moon", True, "Surface of the Moon"),
    "motorcycle": ("scikit-image", "stereo_motorcycle", False,
                   "A motorcycle in a studio (left view of a stereo pair)"),
    "page": ("scikit-image", "page", True, "Scanned page of printed text, unevenly lit"),
    "retina": ("scikit-image", "retina", False,
               "Colour photograph of the back of a human eye (fundus image)"),
    "rocket": ("scikit-image", "rocket", False, "A rocket on its launch pad"),
    "text": ("scikit-image", "text", True,
             "Photograph of hand-written letters and digits (used for corner detection)"),
    "china": ("scikit-learn", "china.jpg", False, "A Chinese pagoda beside a lake"),
    "flower": ("scikit-learn", "flower.jpg", False, "Close-up of an orange flower (a dahlia)"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg", False,
                     "Portrait of computer scientist Grace Hopper in uniform"),
}

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                   ".pgm", ".pbm", ".ico"}

SizeArg = Union[None, int, Tuple[int, int]]


def list_images() -> List[str]:
    """Names of the images bundled with installed packages, sorted alphabetically.

    Every name loads offline with :func:`load_image`; :func:`image_info` says where each one comes
    from and what it shows.

    >>> list_images()[:3]
    ['astronaut', 'brick', 'camera']
    """
    return sorted(_REGISTRY)


def image_info(name: Optional[str] = None):
    """Describe one bundled image, or all of them.

    Returns a dict ``{"name", "source", "grayscale", "description"}`` for ``name``; with no
    argument, a dict mapping every bundled name to such a dict (handy for captions in a gallery).
    ``source`` is the package the picture ships with; ``grayscale`` says whether the original has
    a single channel (:func:`load_image` still returns three identical channels for it).

    >>> image_info("coffee")["source"]
    'scikit-image'
    """
    if name is None:
        return {n: image_info(n) for n in list_images()}
    key = _bundled_key(name)
    if key is None:
        raise ValueError(f"name must be one of the bundled images ({', '.join(list_images())}); "
                         f"got {name!r}")
    source, _, gray, description = _REGISTRY[key]
    return {"name": key, "source": source, "grayscale": gray, "description": description}


# ----------------------------------------------------------------------------------------------
# decoding: anything -> float32 array (H, W, 3) in [0, 1]
# ----------------------------------------------------------------------------------------------
def _composite_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend an RGB image over a white background: out = a * rgb + (1 - a) * 1."""
    alpha = alpha[..., None]
    return rgb * alpha + (1.0 - alpha)


def _array_to_unit_rgb(arr: np.ndarray) -> np.ndarray:
    """Turn a decoded pixel array into float32 (H, W, 3) in [0, 1].

    Integer arrays are divided by the largest value of their dtype (uint8 -> 255, uint16 ->
    65535); booleans become 0/1; floats are clipped to [0, 1].  One channel is copied to three;
    two (gray + alpha) or four (RGB + alpha) channels are composited over white.
    """
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    else:
        arr = arr.astype(np.float32)
    arr = np.clip(arr, 0.0, 1.0)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"cannot interpret a pixel array of shape {arr.shape} as an image")
    c = arr.shape[-1]
    if c == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif c == 2:
        arr = _composite_on_white(np.repeat(arr[..., :1], 3, axis=-1), arr[..., 1])
    elif c == 4:
        arr = _composite_on_white(arr[..., :3], arr[..., 3])
    return np.ascontiguousarray(arr, dtype=np.float32)


def _pil_to_unit_rgb(img) -> np.ndarray:
    """Decode an opened PIL image (any mode) into float32 (H, W, 3) in [0, 1].

    * EXIF orientation (phone photos) is applied first.
    * 16-bit modes (``I;16*``) are divided by 65535.  Mode ``I`` (32-bit ints, what some Pillow
      versions use for 16-bit PNGs) is also read as 0..65535.  Mode ``F`` (floats) is taken as
      [0, 1] if its maximum is <= 1, otherwise as 0..255 when the maximum is <= 255, else 0..65535.
    * Transparent images (RGBA, LA, PA, palette with transparency, ...) are composited on white.
    * Everything else (CMYK, YCbCr, palette, 1-bit, ...) goes through Pillow's RGB conversion.
    """
    from PIL import Image, ImageOps

    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not stop us from showing the pixels
        pass
    mode = img.mode
    if mode.startswith("I;16"):
        return _array_to_unit_rgb(np.asarray(img).astype(np.uint16))
    if mode == "I":
        arr = np.asarray(img).astype(np.float64) / 65535.0
        return _array_to_unit_rgb(arr)
    if mode == "F":
        arr = np.asarray(img).astype(np.float64)
        top = float(np.nanmax(arr)) if arr.size else 1.0
        scale = 1.0 if top <= 1.0 else (255.0 if top <= 255.0 else 65535.0)
        return _array_to_unit_rgb(arr / scale)
    if mode == "La":
        img, mode = img.convert("LA"), "LA"
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa") or (
        mode == "P" and "transparency" in img.info)
    if has_alpha:
        return _array_to_unit_rgb(np.asarray(img.convert("RGBA")))
    if mode == "L":
        return _array_to_unit_rgb(np.asarray(img))
    if mode != "RGB":
        img = img.convert("RGB")
    return _array_to_unit_rgb(np.asarray(img))


def _bundled_key(name) -> Optional[str]:
    """The registry key for ``name`` ('Chelsea', 'china.jpg' ...), or None."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    if key in _REGISTRY:
        return key
    stem, suffix = os.path.splitext(key)
    if suffix in _IMAGE_SUFFIXES and stem in _REGISTRY:
        return stem
    return None


@functools.lru_cache(maxsize=None)
def _decode_bundled(key: str) -> np.ndarray:
    """Decode a bundled image once; the cached array is read-only (callers get copies)."""
    source, arg, _, _ = _REGISTRY[key]
    if source == "scikit-image":
        import skimage.data

        data = getattr(skimage.data, arg)()
        if arg == "stereo_motorcycle":
            data = data[0]  # (left view, right view, disparity)
        arr = _array_to_unit_rgb(np.asarray(data))
    elif source == "scikit-learn":
        from sklearn.datasets import load_sample_image

        arr = _array_to_unit_rgb(np.asarray(load_sample_image(arg)))
    elif source == "matplotlib":
        from matplotlib import cbook
        from PIL import Image

        path = cbook.get_sample_data(arg, asfileobj=False)
        with Image.open(path) as img:
            img.load()
            arr = _pil_to_unit_rgb(img)
    else:  # pragma: no cover - registry is static
        raise AssertionError(source)
    arr.setflags(write=False)
    return arr


def _decode_file(path: pathlib.Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return _pil_to_unit_rgb(img)
    except PermissionError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(
            f"name_or_path: the file {str(path)!r} is not a readable image ({err}). "
            f"Bundled images: {', '.join(list_images())}"
        ) from err


# ----------------------------------------------------------------------------------------------
# resizing
# ----------------------------------------------------------------------------------------------
def _check_size(size) -> SizeArg:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)) and not isinstance(size, (bool, np.bool_)):
        if size < 1:
            raise ValueError(f"size must be a positive int or an (H, W) tuple, got {size}")
        return int(size)
    if isinstance(size, (tuple, list, torch.Size)):
        ok = len(size) == 2 and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in size)
        if not ok:
            raise TypeError(f"size must be None, an int or an (H, W) tuple of two ints, "
                            f"got {size!r}")
        if min(size) < 1:
            raise ValueError(f"size must hold positive sizes, got {tuple(size)}")
        return (int(size[0]), int(size[1]))
    raise TypeError(f"size must be None, an int or an (H, W) tuple of two ints, "
                    f"got {type(size).__name__} {size!r}"[:160])


def resize_image(x: torch.Tensor, size: SizeArg) -> torch.Tensor:
    """Resize a batch ``x`` of shape (N, C, H, W) the way :func:`load_image` does.

    * ``size=None``: return ``x`` unchanged (no copy).
    * ``size=(h, w)``: resize to exactly h x w (the aspect ratio may change).
    * ``size=s`` (an int): scale so that the *shorter* side becomes ``s`` (aspect ratio kept),
      then cut the central ``s x s`` square out of it.  This is the usual ImageNet-style
      "resize + centre crop".

    Shrinking uses bilinear interpolation *with antialiasing* (a triangle filter as wide as the
    shrink factor, like Pillow's BILINEAR), so fine textures do not turn into aliasing patterns;
    enlarging is plain bilinear.  The result is clamped to [0, 1].

    >>> resize_image(torch.rand(1, 3, 300, 451), 224).shape
    torch.Size([1, 3, 224, 224])
    """
    size = _check_size(size)
    if size is None:
        return x
    h, w = x.shape[-2:]
    if isinstance(size, int):
        scale = size / min(h, w)
        target = (max(size, int(round(h * scale))), max(size, int(round(w * scale))))
    else:
        target = size
    if tuple(target) != (h, w):
        x = F.interpolate(x, size=target, mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0.0, 1.0)
    if isinstance(size, int):
        th, tw = x.shape[-2:]
        top, left = (th - size) // 2, (tw - size) // 2
        x = x[..., top:top + size, left:left + size]
    return x.contiguous()


# ----------------------------------------------------------------------------------------------
# public loader
# ----------------------------------------------------------------------------------------------
def _unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name.strip().lower(), list_images(), n=3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return (f"name_or_path {name!r} is neither a bundled image nor an existing file.{hint} "
            f"Bundled images: {', '.join(list_images())}")


def _check_crop(crop, h: int, w: int):
    if crop is None:
        return None
    ok = (isinstance(crop, (tuple, list)) and len(crop) == 4 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in crop))
    if not ok:
        raise TypeError(f"crop must be None or (top, left, height, width), four ints, got {crop!r}"[:200])
    top, left, ch, cw = (int(v) for v in crop)
    if top < 0 or left < 0 or ch < 1 or cw < 1 or top + ch > h or left + cw > w:
        raise ValueError(f"crop (top, left, height, width) = {tuple(crop)} does not fit inside the "
                         f"image of {h} x {w} pixels (H x W)")
    return top, left, ch, cw


def load_image(name_or_path: Union[str, os.PathLike], size: SizeArg = None, *,
               crop: Optional[Tuple[int, int, int, int]] = None) -> torch.Tensor:
    """Load a picture as a float32 tensor of shape (1, 3, H, W) with values in [0, 1].

    Parameters
    ----------
    name_or_path
        A bundled image name (see :func:`list_images`; case does not matter and an extension
        such as ``"china.jpg"`` is accepted), or a ``str`` / ``pathlib.Path`` to any file Pillow
        can read (PNG, JPEG, BMP, GIF, TIFF, WebP, ...).  A bundled name wins over a file of
        the same name without extension; ``~`` is expanded.
    size
        ``None`` keeps the original size; an int ``s`` scales the shorter side to ``s`` and then
        centre-crops to ``s x s``; a tuple ``(H, W)`` resizes to exactly that (see
        :func:`resize_image`; shrinking is antialiased).
    crop
        ``(top, left, height, width)`` in the original image's pixels: cut this box out *before*
        resizing (e.g. to frame the subject of a photo).  ``None`` keeps the whole picture.

    Pixel conversion: grayscale is copied to three channels; transparent images (RGBA, LA,
    palette with transparency) are composited on a white background; 16-bit images are divided
    by 65535 and 8-bit ones by 255.  Bundled images are decoded once and cached, but every call
    returns a new tensor, so editing the result in place is safe.

    Raises
    ------
    ValueError
        unknown name, or a file that is not a readable image (the message lists the bundled
        names); a bad ``size``.
    FileNotFoundError
        a path (a ``Path``, or a string with a folder separator or an image extension) that does
        not exist.
    TypeError, ValueError
        a ``crop`` that is not four ints or does not fit inside the image.

    Example
    -------
    >>> x = load_image("coffee", size=(224, 336))
    >>> x.shape, float(x.min()) >= 0.0, float(x.max()) <= 1.0
    (torch.Size([1, 3, 224, 336]), True, True)
    """
    size = _check_size(size)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a bundled image name (str) or a file path, got "
                        f"{type(name_or_path).__name__} {name_or_path!r}"[:200])
    key = None
    if isinstance(name_or_path, str) and name_or_path.strip().lower() in _REGISTRY:
        key = name_or_path.strip().lower()
    path = pathlib.Path(os.fspath(name_or_path)).expanduser()
    if key is None and not path.exists():
        key = _bundled_key(name_or_path)
        if key is None:
            text = os.fspath(name_or_path)
            looks_like_path = (not isinstance(name_or_path, str) or os.sep in text or "/" in text
                               or path.suffix.lower() in _IMAGE_SUFFIXES)
            if looks_like_path:
                raise FileNotFoundError(
                    f"name_or_path: no such file {str(path)!r}. Bundled images "
                    f"(use the name without a path): {', '.join(list_images())}")
            raise ValueError(_unknown_name_message(text))
    if key is not None:
        arr = _decode_bundled(key)
    elif path.is_dir():
        raise ValueError(f"name_or_path {str(path)!r} is a folder, not an image file")
    else:
        arr = _decode_file(path)
    box = _check_crop(crop, arr.shape[0], arr.shape[1])
    if box is not None:
        top, left, ch, cw = box
        arr = arr[top:top + ch, left:left + cw]
    x = torch.from_numpy(arr.transpose(2, 0, 1).copy()).unsqueeze(0)
    return resize_image(x, size)


def to_numpy_image(x) -> np.ndarray:
    """Convert one image tensor to a NumPy array ready for ``plt.imshow``.

    ``(1, 3, H, W)`` or ``(3, H, W)`` -> ``(H, W, 3)``; a single channel ``(1, 1, H, W)``,
    ``(1, H, W)`` or ``(H, W)`` -> ``(H, W)``.  The result is a float32 copy on the CPU, detached
    from autograd; values are not changed (no clipping, no rescaling).  NumPy arrays are accepted
    too and go through the same rules (channels first).

    >>> to_numpy_image(torch.zeros(1, 3, 4, 5)).shape
    (4, 5, 3)
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.array(x, dtype=np.float32))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor or numpy array, got {type(x).__name__}")
    t = x.detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"x must hold a single image, got a batch of shape {tuple(t.shape)}")
        t = t[0]
    if t.ndim == 3:
        if t.shape[0] == 1:
            t = t[0]
        elif t.shape[0] == 3:
            t = t.permute(1, 2, 0)
        else:
            raise ValueError(f"x must have 1 or 3 channels in front, got shape {tuple(x.shape)}")
    elif t.ndim != 2:
        raise ValueError(f"x must be (1, 3, H, W), (3, H, W), (1, H, W) or (H, W), "
                         f"got shape {tuple(x.shape)}")
    return t.to("cpu", torch.float32).numpy().copy()
