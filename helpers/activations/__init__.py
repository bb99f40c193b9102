"""Activations: what do the intermediate features of a CNN respond to?

Assignment 02 ("What are the intermediate features looking for?") is built on this package.  The
weights of a deep layer are hard to read (assignment 01); its *activations* -- what it computes
for real images -- are not.  One module per part of the assignment:

* :mod:`.receptive_fields` -- :func:`receptive_field` computes analytically which input pixels a
  unit of a layer can see (size, jump, start), :func:`layer_specs` reads the kernel/stride/padding
  chain out of a model, and :func:`empirical_receptive_field` measures the same numbers from input
  gradients (:func:`unit_gradient`);
* :mod:`.patches` -- maximally activating patches: :func:`crop_gallery` cuts a deterministic
  gallery of random crops out of every bundled photo, :func:`record_activations` /
  :func:`record_channel` run it through the network (eval mode, state restored),
  :func:`top_k_patches` finds the strongest units and cuts out their receptive fields;
  :func:`extract_features` gives one vector per image (e.g. the pooled 1280-d head);
* :mod:`.embeddings` -- :func:`pca`, :func:`nearest_neighbors`, :func:`tsne` of feature vectors;
* :mod:`.occlusion` -- going further: :func:`unit_occlusion_map` / :func:`occlusion_receptive_field`,
  the actual receptive field of a unit found by occluding small random patches (Zhou et al.,
  "Object Detectors Emerge in Deep Scene CNNs", ICLR 2015);
* :mod:`.display` -- :func:`show_feature_maps`, :func:`feature_map_browser` (ipywidgets, with a
  static fallback), :func:`show_neighbors`, :func:`show_embedding`.

Every function follows the course's calling convention (README, "For maintainers"):
``fn(model, x, unit, *, layer=..., <options>, progress=True)`` with a unit ``c`` or ``(c, i, j)``;
layer lookup, hooks and eval mode come from :mod:`helpers.taps`, argument checks from
:mod:`helpers._checks`.

The receptive-field recurrences (size, jump, start; Araujo, Norris & Sim, Distill 2019) are
written out in :mod:`helpers.activations.receptive_fields`.

Example
-------
>>> import torch
>>> from torch import nn
>>> from helpers.activations import receptive_field, empirical_receptive_field
>>> vgg_like = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(3)])
>>> receptive_field(vgg_like, layer="2")             # three 3x3 convolutions see 7x7 pixels
ReceptiveField(size=7, jump=1, start=-3)
>>> empirical_receptive_field(vgg_like, layer="2", input_size=32)
ReceptiveField(size=7, jump=1, start=-3)
"""
from __future__ import annotations

from .display import feature_map_browser, show_embedding, show_feature_maps, show_neighbors
from .embeddings import nearest_neighbors, pca, tsne
from .occlusion import occlusion_receptive_field, unit_occlusion_map
from .patches import (Gallery, crop_gallery, extract_features, receptive_field_patch,
                      record_activations, record_channel, top_k_patches)
from .receptive_fields import (LayerSpec, ReceptiveField, empirical_receptive_field, layer_specs,
                               receptive_field, unit_gradient)

__all__ = [
    "ReceptiveField",
    "LayerSpec",
    "layer_specs",
    "receptive_field",
    "unit_gradient",
    "empirical_receptive_field",
    "Gallery",
    "crop_gallery",
    "record_activations",
    "record_channel",
    "receptive_field_patch",
    "top_k_patches",
    "extract_features",
    "pca",
    "nearest_neighbors",
    "tsne",
    "unit_occlusion_map",
    "occlusion_receptive_field",
    "show_feature_maps",
    "feature_map_browser",
    "show_neighbors",
    "show_embedding",
]

#: The name before :func:`unit_occlusion_map` (kept for one release; not in ``__all__``, so that
#: it cannot be confused with :func:`helpers.saliency.occlusion_map`).
occlusion_map = unit_occlusion_map
