"""From a saliency map to an object mask with GrabCut, as in Simonyan et al. (2014), section 3.1."""
from __future__ import annotations

import numpy as np
import torch

from .._checks import check_image_batch, check_number, check_positive_int, check_tensor

__all__ = ["grabcut_seeds", "grabcut_mask", "GC_BGD", "GC_FGD", "GC_PR_BGD", "GC_PR_FGD"]

#: OpenCV's GrabCut labels (cv2.GC_BGD, cv2.GC_FGD, cv2.GC_PR_BGD, cv2.GC_PR_FGD).
GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD = 0, 1, 2, 3


def _as_maps(saliency: torch.Tensor, name: str = "saliency") -> torch.Tensor:
    check_tensor(saliency, name, ndim=(2, 3, 4), floating=True)
    s = saliency.detach()
    if s.ndim == 4:
        if s.shape[1] != 1:
            raise ValueError(f"{name} must be (N, H, W), (N, 1, H, W) or (H, W), got shape "
                             f"{tuple(s.shape)}")
        s = s[:, 0]
    elif s.ndim == 2:
        s = s[None]
    return s


def grabcut_seeds(saliency: torch.Tensor, *, fg_quantile: float = 0.95,
                  bg_quantile: float = 0.30) -> torch.Tensor:
    """Initial GrabCut labels from a saliency map, as in Simonyan et al. (2014), section 3.1.

    Per image: pixels whose saliency is at least the ``fg_quantile`` quantile of that image's map
    are *sure foreground* (``GC_FGD`` = 1), pixels at most the ``bg_quantile`` quantile *sure
    background* (``GC_BGD`` = 0); the rest is *probably background* (``GC_PR_BGD`` = 2), for
    GrabCut to decide.  (Simonyan et al. fit the colour models to the top 5 % and bottom 30 % of
    the saliency; the defaults follow them.)

    Shapes: (N, H, W), (N, 1, H, W) or (H, W) -> int64 (N, H, W) with values in {0, 1, 2}.

    >>> grabcut_seeds(torch.arange(10.).view(1, 2, 5), fg_quantile=0.9, bg_quantile=0.2)
    tensor([[[0, 0, 2, 2, 2],
             [2, 2, 2, 2, 1]]])
    """
    s = _as_maps(saliency)
    check_number(fg_quantile, "fg_quantile", minimum=0, maximum=1)
    check_number(bg_quantile, "bg_quantile", minimum=0, maximum=1)
    if bg_quantile >= fg_quantile:
        raise ValueError(f"bg_quantile ({bg_quantile}) must be smaller than fg_quantile "
                         f"({fg_quantile})")
    flat = s.flatten(1).double()
    hi = torch.quantile(flat, fg_quantile, dim=1).view(-1, 1, 1)
    lo = torch.quantile(flat, bg_quantile, dim=1).view(-1, 1, 1)
    sd = s.double()
    seeds = torch.full(s.shape, GC_PR_BGD, dtype=torch.long, device=s.device)
    seeds[sd <= lo] = GC_BGD
    seeds[sd >= hi] = GC_FGD
    return seeds


def _uint8_image(img: torch.Tensor) -> np.ndarray:
    arr = img.detach().to("cpu", torch.float32).clamp(0, 1).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(np.round(arr * 255).astype(np.uint8))


def grabcut_mask(x: torch.Tensor, saliency: torch.Tensor, *, fg_quantile: float = 0.95,
                 bg_quantile: float = 0.30, blur_sigma: float = 0.0, iterations: int = 5,
                 seed: int = 0) -> torch.Tensor:
    """Segment the object a saliency map points at, with GrabCut (Rother et al., 2004).

    Simonyan et al. (2014) turned saliency maps into object masks without any segmentation
    training: saliency is high on the object but noisy and incomplete, so it only *seeds* a
    colour-based segmentation.  Steps, per image:

    1. optionally blur the map (``blur_sigma`` pixels; :func:`helpers.filters.gaussian_blur`)
       -- gradient maps are speckled;
    2. seed labels with :func:`grabcut_seeds` (top ``1 - fg_quantile`` sure foreground, bottom
       ``bg_quantile`` sure background);
    3. run OpenCV's ``cv2.grabCut`` in ``GC_INIT_WITH_MASK`` mode for ``iterations`` rounds: it
       fits a Gaussian-mixture colour model to foreground and background and cuts the image
       graph where colours change (a min-cut that also prefers short boundaries).

    GrabCut's k-means initialisation uses OpenCV's global random generator, which is seeded with
    ``seed`` (``cv2.setRNGSeed``) so that results repeat.

    Args:
        x: images (N, 3, H, W) or one image (3, H, W), in [0, 1].
        saliency: (N, H, W), (N, 1, H, W) or (H, W) -- one map per image, same H, W.

    Returns:
        bool tensor (N, H, W) on ``x``'s device, True on the foreground.

    >>> x = torch.zeros(1, 3, 32, 32); x[..., 8:24, 8:24] = 1.0         # a white square on black
    >>> yy, xx = torch.meshgrid(torch.arange(32.), torch.arange(32.), indexing="ij")
    >>> sal = torch.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 50)[None]  # a blob at its centre
    >>> int(grabcut_mask(x, sal).sum())                                 # the whole square: 16 x 16
    256
    """
    import cv2

    check_tensor(x, "x", ndim=(3, 4), floating=True)
    images = check_image_batch(x[None] if x.ndim == 3 else x, "x")
    s = _as_maps(saliency)
    if s.shape[0] != images.shape[0] or tuple(s.shape[-2:]) != tuple(images.shape[-2:]):
        raise ValueError(f"saliency must hold one (H, W) map per image, matching x "
                         f"{tuple(images.shape)}; got shape {tuple(saliency.shape)}")
    check_positive_int(iterations, "iterations")
    check_number(blur_sigma, "blur_sigma", minimum=0)
    if blur_sigma > 0:
        from ..filters import gaussian_blur

        s = gaussian_blur(s[:, None].float(), float(blur_sigma))[:, 0]
    seeds = grabcut_seeds(s, fg_quantile=fg_quantile, bg_quantile=bg_quantile).cpu().numpy()
    out = np.zeros(seeds.shape, dtype=bool)
    for i in range(images.shape[0]):
        mask = seeds[i].astype(np.uint8)
        if not (mask == GC_FGD).any() or not ((mask == GC_BGD) | (mask == GC_PR_BGD)).any():
            raise ValueError("saliency map has no contrast: GrabCut needs both foreground and "
                             "background seeds")
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        cv2.setRNGSeed(int(seed))
        cv2.grabCut(_uint8_image(images[i]), mask, None, bgd, fgd, int(iterations),
                    cv2.GC_INIT_WITH_MASK)
        out[i] = (mask == GC_FGD) | (mask == GC_PR_FGD)
    return torch.from_numpy(out).to(x.device)
