"""Image parameterisations: how the optimised image is made from the tensors that change.

* :func:`pixel_image` -- every pixel is a parameter (clamped to [0, 1] after each step);
* :func:`fourier_image` -- the image's Fourier spectrum, scaled by 1/f, in decorrelated colours
  (Olah et al., "Feature Visualization", Distill 2017).
"""
from __future__ import annotations

import copy
from typing import List, Sequence, Union

import torch

from .._checks import check_image_batch, check_number, check_positive_int
from ._common import GREY

__all__ = ["ImageParam", "pixel_image", "fourier_image", "COLOR_CORRELATION_SQRT",
           "color_correlation_sqrt"]


class ImageParam:
    """How an image is made from tensors that the optimiser changes.

    A parameterisation is a *recipe*: :meth:`build` creates fresh tensors on a device and returns a
    new object with

    * ``parameters()`` -- the leaf tensors to optimise,
    * ``__call__()``   -- the current image (N, 3, H, W), differentiable,
    * ``project()``    -- called after every optimiser step (e.g. clamp pixels to [0, 1]),
    * ``image()``      -- the final image, detached and in [0, 1].

    :func:`visualize` calls :meth:`build` itself, so one recipe can be reused for many runs.
    """

    def __init__(self, size, batch: int = 1):
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if (not isinstance(size, (tuple, list)) or len(size) != 2
                or any(isinstance(s, bool) or not isinstance(s, int) or s < 8 for s in size)):
            raise ValueError(f"size must be an int >= 8 or a pair (H, W) of such ints, got {size!r}")
        self.size = (int(size[0]), int(size[1]))
        self.batch = check_positive_int(batch, "batch")
        self._built = False

    def build(self, device: Union[str, torch.device] = "cpu") -> "ImageParam":
        """A fresh copy of the recipe whose tensors live on ``device``, ready to optimise."""
        new = copy.copy(self)
        new._leaf = new._make(device).requires_grad_(True)
        new._built = True
        return new

    def _make(self, device) -> torch.Tensor:
        """The starting value of the tensor to optimise (may set other tensors of ``self``)."""
        raise NotImplementedError

    def _render(self) -> torch.Tensor:
        """The image (N, 3, H, W) made from ``self._leaf``."""
        raise NotImplementedError

    def _need_built(self):
        if not self._built:
            raise RuntimeError("call .build(device) first: an ImageParam is a recipe until built")

    def parameters(self) -> List[torch.Tensor]:
        self._need_built()
        return [self._leaf]

    def __call__(self) -> torch.Tensor:
        self._need_built()
        return self._render()

    def project(self) -> None:
        """Hook called after every optimiser step (default: nothing)."""

    def image(self) -> torch.Tensor:
        with torch.no_grad():
            return self().detach().clamp(0.0, 1.0)


class _PixelImage(ImageParam):
    """Pixels are the parameters; clamped to [0, 1] after every step."""

    def __init__(self, size, batch: int = 1, init=GREY, sd: float = 0.0, clamp: bool = True):
        super().__init__(size, batch)
        if isinstance(init, torch.Tensor):
            check_image_batch(init, "init")
            if init.shape[0] != 1 and init.shape[0] != self.batch:
                raise ValueError(f"init must hold 1 or batch={self.batch} images, got "
                                 f"{init.shape[0]}")
            self.size = tuple(init.shape[-2:])
        else:
            init = check_number(init, "init")
        self.init = init
        self.sd = check_number(sd, "sd", minimum=0.0)
        self.clamp = bool(clamp)

    @property
    def x(self) -> torch.Tensor:
        """The pixels being optimised (N, 3, H, W)."""
        self._need_built()
        return self._leaf

    def _make(self, device) -> torch.Tensor:
        shape = (self.batch, 3, *self.size)
        if isinstance(self.init, torch.Tensor):
            x = self.init.detach().to(device=device, dtype=torch.float32).expand(shape).clone()
        else:
            x = torch.full(shape, self.init, device=device)
        if self.sd:
            x = x + self.sd * torch.randn(shape, device=device)
        if self.clamp:
            x = x.clamp(0.0, 1.0)
        return x

    def _render(self) -> torch.Tensor:
        return self._leaf

    def project(self):
        if self.clamp:
            with torch.no_grad():
                self.x.clamp_(0.0, 1.0)

    def __repr__(self):
        init = "tensor" if isinstance(self.init, torch.Tensor) else f"{self.init:g}"
        return f"pixel_image({self.size}, batch={self.batch}, init={init}, sd={self.sd:g})"


def pixel_image(size, *, batch: int = 1, init: Union[float, torch.Tensor] = GREY, sd: float = 0.0,
                clamp: bool = True) -> ImageParam:
    """The plain parameterisation: every pixel is a free parameter.

    Args:
        size: side length, or (H, W).  Ignored when ``init`` is an image.
        batch: number of images optimised together.
        init: starting value: a grey level (default 0.5, the model's "zero" image) or an image
            (1 or ``batch``, 3, H, W) in [0, 1].
        sd: standard deviation of Gaussian noise added to the start.
        clamp: clamp the pixels to [0, 1] after every step (the valid range; "pixel clipping").

    >>> pixel_image(16, batch=2).build("cpu")().shape
    torch.Size([2, 3, 16, 16])
    """
    return _PixelImage(size, batch, init, sd, clamp)


#: Square root of the colour covariance of natural photos (see :func:`color_correlation_sqrt`):
#: column k is the RGB colour that one unit of "decorrelated channel" k adds -- column 0 is
#: brightness (almost grey), columns 1 and 2 are the weaker colour-opponent directions
#: (orange-blue, green-magenta).  Computed from the
#: bundled photographs chelsea, coffee, astronaut, rocket, motorcycle, china, flower, grace_hopper
#: and scaled so that its largest column has norm 1.
COLOR_CORRELATION_SQRT = torch.tensor([
    [0.6299, 0.3153, 0.0317],
    [0.5720, -0.0809, -0.0894],
    [0.5254, -0.2901, 0.0594],
])

_COLOR_IMAGES = ("chelsea", "coffee", "astronaut", "rocket", "motorcycle", "china", "flower",
                 "grace_hopper")


def color_correlation_sqrt(x: Union[torch.Tensor, Sequence[torch.Tensor], None] = None
                           ) -> torch.Tensor:
    """A square root of the 3x3 RGB covariance of the images ``x``: the decorrelated-colour basis.

    With :math:`\\Sigma = U \\Lambda U^\\top` the covariance of all pixels' (r, g, b)
    (eigenvalues in decreasing order), returns :math:`M = U \\Lambda^{1/2}` (so :math:`M M^\\top
    \\propto \\Sigma`), each column's sign chosen so that its red entry is positive and the whole
    matrix scaled so that its largest column has norm 1.  Mapping independent noise ``z`` through
    it, ``M z``, gives colours correlated like those of photos -- mostly shades of grey, a little
    colour: the *decorrelated colour space* of Olah et al. (2017).

    Args:
        x: an image batch (N, 3, H, W) in [0, 1] or a list of batches (of any sizes); ``None``:
            the bundled photos listed in :data:`COLOR_CORRELATION_SQRT` (that constant is this
            function's result, rounded to 4 decimals).

    Returns:
        M, a float32 tensor (3, 3).

    >>> M = color_correlation_sqrt()
    >>> bool(torch.allclose(M, COLOR_CORRELATION_SQRT, atol=1e-3))
    True
    """
    from ..images import load_image

    if x is None:
        x = [load_image(name, size=128) for name in _COLOR_IMAGES]
    batches = [x] if isinstance(x, torch.Tensor) else list(x)
    pixels = torch.cat([check_image_batch(b, "x").permute(1, 0, 2, 3).reshape(3, -1)
                        for b in batches], dim=1).double()
    cov = torch.cov(pixels)
    vals, vecs = torch.linalg.eigh(cov)                  # ascending eigenvalues
    vals, vecs = vals.flip(0).clamp_min(0), vecs.flip(1)  # largest first: luminance
    vecs = vecs * torch.where(vecs[0] < 0, -1.0, 1.0).to(vecs)   # sign: red entry positive
    root = vecs * vals.sqrt()
    root = root / root.norm(dim=0).max()
    return root.float()


class _FourierImage(ImageParam):
    """Image = sigmoid(colour mix of an inverse FFT of a 1/f-scaled spectrum)."""

    def __init__(self, size, batch: int = 1, sd: float = 0.01, decay_power: float = 1.0,
                 decorrelate: bool = True):
        super().__init__(size, batch)
        self.sd = check_number(sd, "sd", minimum=0.0, strict=True)
        self.decay_power = check_number(decay_power, "decay_power", minimum=0.0)
        self.decorrelate = bool(decorrelate)

    def _make(self, device) -> torch.Tensor:
        h, w = self.size
        fy = torch.fft.fftfreq(h, device=device).view(-1, 1)
        fx = torch.fft.rfftfreq(w, device=device).view(1, -1)
        freq = (fx * fx + fy * fy).sqrt().clamp_min(1.0 / max(h, w))
        # amplitude ~ 1/f^decay_power (natural images' spectrum); the factor makes a unit
        # spectrum give pixels of about unit variance before the sigmoid
        scale = freq.pow(-self.decay_power)
        self.scale = (scale / scale.pow(2).mean().sqrt()).to(device)
        self.mix = COLOR_CORRELATION_SQRT.to(device)
        return self.sd * torch.randn(self.batch, 3, h, w // 2 + 1, 2, device=device)

    def _render(self) -> torch.Tensor:
        h, w = self.size
        spec = torch.view_as_complex(self._leaf) * self.scale
        lin = torch.fft.irfft2(spec, s=(h, w), norm="ortho")            # (N, 3, H, W)
        if self.decorrelate:
            lin = torch.einsum("ij,njhw->nihw", self.mix, lin)
        return torch.sigmoid(lin)

    def __repr__(self):
        return (f"fourier_image({self.size}, batch={self.batch}, sd={self.sd:g}, "
                f"decay_power={self.decay_power:g}, decorrelate={self.decorrelate})")


def fourier_image(size, *, batch: int = 1, sd: float = 0.01, decay_power: float = 1.0,
                  decorrelate: bool = True) -> ImageParam:
    """Optimise the image's Fourier spectrum instead of its pixels (Olah et al., 2017).

    ``image = sigmoid(M . irfft2(s * S))``: ``S`` is the learned complex spectrum
    (N, 3, H, W//2 + 1), started as Gaussian noise of std ``sd``; ``s = 1 / f^decay_power``
    scales frequency ``f`` (cycles per pixel, at least 1/max(H, W)) so that a step changes all
    frequencies by similar *visible* amounts -- in pixel space, gradient steps are dominated by
    high frequencies; ``M`` is :data:`COLOR_CORRELATION_SQRT` (``decorrelate=True``), so the
    optimiser works in decorrelated colour space; the sigmoid keeps pixels in (0, 1) without
    clamping.  Both changes precondition the optimisation: same objective, better-behaved steps.

    >>> fourier_image((20, 24), batch=3).build("cpu")().shape
    torch.Size([3, 3, 20, 24])
    """
    return _FourierImage(size, batch, sd, decay_power, decorrelate)
