"""Filters: convolution from scratch, hand-made kernels, and tools to read learned weights.

Assignment 01 ("What do the weights look like?") is built on this package, one idea per module:

* :mod:`~helpers.filters.convolution` -- :func:`conv2d_naive`, the cross-correlation every
  ``nn.Conv2d`` computes, written as a short loop so that the equation is visible; and
  :func:`apply_filter` / :func:`gaussian_blur`, one kernel over every channel of an image batch;
* :mod:`~helpers.filters.kernels` -- hand-made kernels: :func:`sobel_kernels` (edges),
  :func:`gaussian_kernel` (blur), :func:`gabor_kernel` / :func:`gabor_bank` (oriented stripes, the
  classic model of V1 simple cells and of the first layer of trained CNNs);
* :mod:`~helpers.filters.matching` -- correlation as similarity: :func:`template_match`
  (normalised cross-correlation of a template with every image patch) and
  :func:`filter_correlations` / :func:`best_matching_gabor` (which Gabor does a filter look like?);
* :mod:`~helpers.filters.learned` -- the learned filters of the course's EfficientNet-Lite:
  :func:`stem_filters` / :func:`depthwise_filters` / :func:`fold_batchnorm` to pull them out,
  :func:`normalize_filters` (display scaling), :func:`smoothness` / :func:`center_energy` (how
  spatially structured is a filter?).

Conventions
-----------
*Convolution* in deep learning means cross-correlation (no kernel flip):

.. math::  y[n, o, i, j] = b[o] + \\sum_{c,u,v} w[o, c, u, v]\\, x[n, c, s i + u - p, s j + v - p]

with stride ``s``, zero padding ``p`` and out-of-range ``x`` read as 0.  Kernels here are
therefore written for correlation: the Sobel ``x`` kernel responds *positively* where the image
gets brighter to the right.  (A true, flipped convolution gives the opposite sign.)  Images are
``x`` (N, C, H, W); spatial coordinates of a kernel are centred: ``x`` is the column offset
(positive to the right) and ``y`` the row offset (positive *downwards*, as in an image).  Angles
are in radians.

Example
-------
>>> import torch
>>> from helpers import filters
>>> x = torch.rand(1, 1, 16, 16)
>>> edges = filters.apply_filter(x, filters.sobel_kernels()[0])
>>> edges.shape
torch.Size([1, 1, 16, 16])
"""
from .convolution import apply_filter, conv2d_naive, gaussian_blur
from .kernels import gabor_bank, gabor_kernel, gaussian_kernel, sobel_kernels
from .learned import (center_energy, depthwise_filters, fold_batchnorm, normalize_filters,
                      smoothness, stem_filters)
from .matching import best_matching_gabor, filter_correlations, template_match

__all__ = [
    "conv2d_naive",
    "normalize_filters",
    "gabor_kernel",
    "gabor_bank",
    "sobel_kernels",
    "gaussian_kernel",
    "apply_filter",
    "gaussian_blur",
    "template_match",
    "filter_correlations",
    "best_matching_gabor",
    "smoothness",
    "center_energy",
    "fold_batchnorm",
    "stem_filters",
    "depthwise_filters",
]
