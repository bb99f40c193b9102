"""Gradient ascent on the input: images that a unit "loves", feature inversion and DeepDream.

Assignment 04 ("Generate an image that a neuron loves") is built on this package.  Every method
here freezes the network and optimises the *pixels* instead of the weights.  One module a section:

* :mod:`~helpers.ascent.classvis` -- **class visualisation** (Simonyan et al., 2014):
  :math:`x^* = \\arg\\max_x S_t(x) - \\lambda \\lVert x - 0.5 \\rVert^2`, one step of which is
  :func:`l2_class_step`; the regularisation steps of Yosinski et al. (2015),
  :func:`blur_and_clip` (periodic blur, clipping pixels of small norm and of small contribution).
* :mod:`~helpers.ascent.penalties` -- **image priors**: the total-variation prior
  :func:`tv_loss` (Mahendran & Vedaldi, 2015) and Fleuret's multi-scale :func:`edge_energy`.
* :mod:`~helpers.ascent.inversion` -- **feature inversion** (Mahendran & Vedaldi, 2015):
  :func:`invert_features` finds an image whose activations at one layer match those of a photo.
* :mod:`~helpers.ascent.dreaming` -- **DeepDream** (Mordvintsev et al., 2015):
  :func:`deepdream_step` (one jittered, L1-normalised ascent step on
  :math:`\\tfrac12\\sum_i a_i^2`) and :func:`dream` (the multi-octave loop).
* A small **feature-visualisation toolkit** in the spirit of Lucid/Lucent (Olah et al., 2017):
  objectives that compose (:mod:`~helpers.ascent.objectives`: :class:`Objective`,
  :func:`class_logit`, :func:`channel`, :func:`neuron`, :func:`deepdream`, :func:`diversity`,
  and image penalties :func:`image_l2`, :func:`image_tv`, :func:`image_edge_energy`), image
  parameterisations (:mod:`~helpers.ascent.parameterisations`: :func:`pixel_image`,
  :func:`fourier_image` with decorrelated colours), random transforms
  (:mod:`~helpers.ascent.transforms`: :func:`jitter`, :func:`random_scale`,
  :func:`random_rotate`, :func:`pad`, :func:`compose`, :func:`standard_transforms`) and one
  optimisation loop, :func:`visualize` (:mod:`~helpers.ascent.loop`).

Conventions
-----------
The course's calling convention: ``fn(model, x, target_or_unit, *, layer=..., <options>)``.
Images ``x`` are float tensors (N, 3, H, W) with pixels in [0, 1]; the course's models normalise
their input themselves (EfficientNet-Lite: ``(x - 0.5) / 0.5``).  So the "zero image" of the
classic recipe -- zero in the network's normalised input space -- is the **uniform grey image
0.5**, and the L2 penalty measures the distance from it: :math:`\\lVert x - 0.5 \\rVert^2`.  A
class is a ``target``; a unit of a layer is a channel ``c`` or a neuron ``(c, i, j)``.

Objectives are *maximised*; penalties (:func:`tv_loss`, :func:`edge_energy`, :func:`image_l2`,
...) are non-negative and enter an objective with a minus sign.  Per-image quantities have shape
(N,): one value per image of the batch.

Every function leaves the caller's state as it found it: the input tensors are not modified, the
model's train/eval mode and ``requires_grad`` flags are restored and every hook is removed, also
when an exception is raised (the hooks, the layer lookup and the argument checks are
:mod:`helpers.taps`' and :mod:`helpers._checks`').  Nothing chooses a device: tensors are created
where the model lives.

Example
-------
>>> import helpers
>>> from helpers import ascent
>>> model = helpers.load_model()
>>> img = ascent.visualize(model, ascent.class_logit(130) - 1e-3 * ascent.image_l2(),
...                        param=ascent.pixel_image(96), steps=5, progress=False)
>>> img.shape
torch.Size([1, 3, 96, 96])
"""
from __future__ import annotations

from ._common import GREY
from .classvis import blur_and_clip, l2_class_step
from .dreaming import deepdream_step, dream
from .inversion import invert_features
from .loop import visualize
from .objectives import (INPUT, OUTPUT, Objective, channel, class_logit, deepdream, diversity,
                         evaluate, image_edge_energy, image_l2, image_tv, neuron)
from .parameterisations import (COLOR_CORRELATION_SQRT, ImageParam, color_correlation_sqrt,
                                fourier_image, pixel_image)
from .penalties import edge_energy, tv_loss
from .transforms import compose, jitter, pad, random_rotate, random_scale, standard_transforms

__all__ = [
    # penalties and the graded building blocks
    "tv_loss",
    "edge_energy",
    "l2_class_step",
    "blur_and_clip",
    "invert_features",
    "deepdream_step",
    "dream",
    # objectives
    "Objective",
    "OUTPUT",
    "INPUT",
    "class_logit",
    "channel",
    "neuron",
    "deepdream",
    "diversity",
    "image_l2",
    "image_tv",
    "image_edge_energy",
    "evaluate",
    # parameterisations
    "ImageParam",
    "pixel_image",
    "fourier_image",
    "COLOR_CORRELATION_SQRT",
    "color_correlation_sqrt",
    # transforms
    "jitter",
    "pad",
    "random_scale",
    "random_rotate",
    "compose",
    "standard_transforms",
    # the loop
    "visualize",
    # the grey level 0.5 (the image the network sees as zero)
    "GREY",
]
