"""Saliency: which pixels of an image does a classifier's decision depend on?

Assignment 03 ("Which pixels matter?") is built on this package.  Every *attribution method* here
answers the question "how much does pixel (i, j) matter for class c?" in its own way:

===========================  =========================================  ===================
function                     idea (paper)                               output
===========================  =========================================  ===================
:func:`input_gradient`       gradient of the class logit                (N, 3, H, W)
:func:`saliency_map`         \\|gradient\\|, max over RGB (Simonyan 2014)  (N, H, W)
:func:`smoothgrad`           saliency averaged over noisy copies        (N, H, W)
                             (Smilkov 2017)
:func:`occlusion_map`        drop of the class probability when a       (N, H, W)
                             patch is greyed out (Zeiler & Fergus 2014)
:func:`guided_backprop`      gradient with only positive signals        (N, 3, H, W)
                             through every ReLU (Springenberg 2015)
:func:`neuron_gradient`      (guided) gradient of one hidden unit       (N, 3, H, W)
:func:`grad_cam`             channel-weighted feature map of a late     (N, H, W)
                             layer (Selvaraju 2017)
:func:`integrated_gradients` gradients averaged along a path from a     (N, 3, H, W)
                             baseline (Sundararajan 2017)
===========================  =========================================  ===================

and around them: :func:`grabcut_mask` (a foreground mask from a saliency map with OpenCV's
GrabCut, as in Simonyan et al.), :func:`randomize_layers` / :func:`cascading_randomization` /
:func:`rank_correlation` (the model-randomisation sanity check of Adebayo et al. 2018),
:func:`guided_relus`, :func:`to_map` and :func:`attribution_image`.  A black box that returns
probabilities only is :class:`helpers.models.ProbabilitiesOnly`; the small test network of the
examples is :class:`helpers.testing.nets.TinyCNN`.

One module per section: :mod:`~helpers.saliency.gradients` (input gradient, saliency map,
SmoothGrad, integrated gradients), :mod:`~helpers.saliency.occlusion`,
:mod:`~helpers.saliency.guided` (guided backprop, unit gradients), :mod:`~helpers.saliency.gradcam`,
:mod:`~helpers.saliency.grabcut` and :mod:`~helpers.saliency.sanity`; every public name is
re-exported here (``from helpers import saliency as ref; ref.grad_cam(...)``).

Calling convention
------------------
The course's convention (README, "For maintainers"), which is also Captum's:
``method(model, x, target, *, options...)``:

* ``model``: an ``nn.Module`` (or, for :func:`occlusion_map` and the pure gradient methods, any
  callable) mapping images (N, 3, H, W) in [0, 1] to class scores (N, K) -- logits for the
  course's models;
* ``x``: float tensor (N, 3, H, W) in [0, 1];
* ``target``: the class to explain, an ``int`` for every image or a (N,) integer tensor / list
  with one class per image (for :func:`neuron_gradient` the third argument is a ``unit`` of a
  layer: a channel ``c`` or a neuron ``(c, i, j)``);
* everything else is keyword-only (``layer=``, ``seed=``, ``batch_size=``, ``progress=True``).

Outputs live on ``x``'s device, have ``x``'s dtype and carry no autograd graph.  Two shapes, one
rule: methods that give **one number per pixel** (saliency, SmoothGrad, occlusion, Grad-CAM)
return maps ``(N, H, W)``; methods that return **a gradient-like image** (input gradient, guided
backprop, neuron gradients, integrated gradients) return ``(N, 3, H, W)`` like ``x`` -- their
colours and signs are part of the picture.  :func:`to_map` turns the latter into (N, H, W) maps
(absolute value, max over the colour channels).

State
-----
Every method leaves the caller's state as it found it, also when it raises: ``x`` (values,
``requires_grad``, ``.grad``), the parameters' ``.grad`` and ``requires_grad``, the global grad
mode, the train/eval mode of every submodule (methods run the model in eval mode with frozen
parameters, :func:`helpers.taps.frozen`), and no hooks are left on any module.

Example
-------
>>> import helpers
>>> from helpers.saliency import saliency_map, grad_cam
>>> model = helpers.load_model()
>>> x = helpers.load_image("chelsea", size=224)
>>> saliency_map(model, x, 285).shape                     # 285: Egyptian cat
torch.Size([1, 224, 224])
>>> grad_cam(model, x, 285, layer="head").shape
torch.Size([1, 224, 224])
"""
from __future__ import annotations

from .grabcut import GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD, grabcut_mask, grabcut_seeds
from .gradcam import grad_cam
from .gradients import (IG_METHODS, attribution_image, input_gradient, integrated_gradients,
                        saliency_map, smoothgrad, to_map)
from .guided import GUIDED_ACTIVATIONS, guided_backprop, guided_relus, neuron_gradient
from .occlusion import occlusion_map, occlusion_windows
from .sanity import cascading_randomization, randomize_layers, rank_correlation

__all__ = [
    "input_gradient",
    "saliency_map",
    "smoothgrad",
    "occlusion_map",
    "occlusion_windows",
    "guided_relus",
    "guided_backprop",
    "neuron_gradient",
    "grad_cam",
    "integrated_gradients",
    "to_map",
    "attribution_image",
    "grabcut_seeds",
    "grabcut_mask",
    "randomize_layers",
    "cascading_randomization",
    "rank_correlation",
]
