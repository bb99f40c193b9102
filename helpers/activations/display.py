"""Pictures of activations: feature-map grids, a layer/channel browser, neighbours, embeddings.

:func:`show_feature_maps` draws a layer's activation (C, H, W) as C grayscale images (the
lectures' "conv5 is 128x13x13: show it as 128 13x13 grayscale images"), :func:`feature_map_browser`
puts a layer/channel picker (ipywidgets) on top, always with a static figure of the starting view
(what a saved notebook keeps, and all there is where widgets cannot run);
:func:`show_neighbors` and :func:`show_embedding` draw the results of
:func:`helpers.activations.nearest_neighbors` and of PCA / t-SNE.

>>> axes = show_feature_maps(torch.rand(8, 5, 5), ncols=4)
>>> len(axes)
8
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .._checks import (_describe, check_choice, check_image_batch, check_positive_int,
                       check_tensor, check_unit)
from ..plotting import rescale, show_heatmap, show_images
from ..runtime import is_fast, is_grading
from ..taps import LayerArg
from .patches import record_activations
from .receptive_fields import _layer_name

__all__ = ["show_feature_maps", "feature_map_browser", "show_neighbors", "show_embedding"]


def _single_activation(acts, name: str = "acts") -> torch.Tensor:
    check_tensor(acts, name, ndim=(3, 4))
    if acts.ndim == 4:
        if acts.shape[0] != 1:
            raise ValueError(f"{name} must be the activation of one image, (1, C, H, W) or "
                             f"(C, H, W), got {_describe(acts)}")
        acts = acts[0]
    return acts.detach().to("cpu", torch.float32)


def show_feature_maps(acts: torch.Tensor, *, channels: Optional[Sequence[int]] = None,
                      ncols: int = 16, scale: str = "shared", cmap: str = "gray",
                      highlight: Optional[int] = None, labels: bool = True, axes=None,
                      figsize=None, suptitle: Optional[str] = None, tile: float = 0.8) -> np.ndarray:
    """Show a layer's activation for one image as a grid of grayscale images, one per channel.

    The lectures' picture: "conv5 is 128x13x13: show it as 128 13x13 grayscale images".  ``acts``
    is (1, C, H, W) or (C, H, W) (e.g. ``helpers.features(model, x, "stages.3")["stages.3"]``);
    ``channels`` picks which ones (default: all).

    ``scale="shared"`` (default) maps one range -- 0 to the largest activation shown (or min..max
    when there are negative values) -- to black..white for every tile, so that weak and dead
    channels look dark; ``scale="per_map"`` stretches every map to its own min..max (shapes of
    weak maps become visible, strengths do not).  A constant map is mid grey in that view.
    Each tile is labelled with its channel number; ``highlight`` draws a red frame around one
    channel.  Returns the flat array of axes.

    >>> axes = show_feature_maps(torch.rand(1, 32, 14, 14), ncols=8)
    """
    check_choice(scale, "scale", ["shared", "per_map"])
    a = _single_activation(acts)
    chans = list(range(a.shape[0])) if channels is None else [int(c) for c in channels]
    if not chans:
        raise ValueError("channels must name at least one channel")
    bad = [c for c in chans if not 0 <= c < a.shape[0]]
    if bad:
        raise ValueError(f"channels must be in 0..{a.shape[0] - 1}, got {bad[:5]}")
    maps = a[chans]
    if scale == "per_map":
        shown = rescale(maps, per_item=True)
    else:
        lo = min(0.0, float(maps.min()))
        hi = float(maps.max())
        shown = ((maps - lo) / (hi - lo)).clamp(0, 1) if hi > lo else torch.full_like(maps, 0.5)
    n = len(chans)
    ncols = min(check_positive_int(ncols, "ncols"), n)
    if axes is None and figsize is None:
        nrows = math.ceil(n / ncols)
        aspect = maps.shape[-2] / maps.shape[-1]
        figsize = (tile * ncols, tile * aspect * nrows + (0.45 if suptitle else 0.1))
    flat = show_images(shown.unsqueeze(1), ncols=ncols, axes=axes, cmap=cmap, figsize=figsize,
                       suptitle=suptitle, scale="clip", interpolation="nearest")
    for ax, c in zip(flat, chans):
        for spine in ax.spines.values():
            spine.set_visible(c == highlight)
            spine.set_color("red")
            spine.set_linewidth(2.5)
        if labels:
            ax.text(0.03, 0.97, str(c), transform=ax.transAxes, fontsize=6, va="top", ha="left",
                    color="yellow", bbox=dict(boxstyle="square,pad=0.1", fc="black", alpha=0.5, lw=0))
    return flat


def _widgets_usable() -> bool:
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def feature_map_browser(model: nn.Module, x: torch.Tensor, *, unit: int = 0,
                        layers: Sequence[LayerArg], layer: Optional[LayerArg] = None,
                        max_channels: int = 64, interactive: Optional[bool] = None):
    """Browse the feature maps of several layers for one image ``x``: pick a layer and a channel.

    Left: the chosen channel upsampled and laid over the image (:func:`helpers.show_heatmap`),
    with its size and value range; right: the first ``max_channels`` maps of the chosen layer
    (:func:`show_feature_maps`, shared scale) with the chosen channel framed in red.  The
    activations of all ``layers`` are computed once (:func:`record_activations`: eval mode, no
    gradients), so moving the sliders only redraws.

    ``unit`` is the channel ``c`` shown first, of ``layer`` (default: the first of ``layers``).
    ``interactive=None`` (default) uses ipywidgets (a layer drop-down and a channel slider) when
    they can work -- ipywidgets installed, running in a Jupyter kernel, not in fast mode
    (``COURSE_FAST=1``) and not under nbgrader -- and otherwise draws one static figure for
    ``layer`` and ``unit``.  ``interactive=True`` / ``False`` forces a path.  Returns the widget
    (display it: make it the cell's last expression) or ``None`` after drawing the static figure.

    The widget path also shows the starting view (``layer``, ``unit``) at once as an ordinary
    figure (``IPython.display.display``), above the controls: a widget's picture lives only in a
    running kernel, so a saved notebook, ``nbconvert`` or GitHub would otherwise show nothing.
    The widget's own picture area stays empty until a control is moved (no second copy of the
    starting view).

    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    >>> feature_map_browser(net, torch.rand(1, 3, 16, 16), unit=2, layers=["0", "1"],
    ...                     interactive=False) is None
    True
    """
    check_image_batch(x, "x")
    if x.shape[0] != 1:
        raise ValueError(f"x must be a single image (1, 3, H, W), got {_describe(x)}")
    channel, i, _ = check_unit(unit)
    if i is not None:
        raise ValueError(f"unit must be a channel c here (the map shown first), got {unit!r}")
    layers = [layers] if isinstance(layers, (str, nn.Module)) else list(layers)
    if not layers:
        raise ValueError("layers must name at least one layer")
    names = list(dict.fromkeys(_layer_name(model, name) for name in layers))
    layer = names[0] if layer is None else _layer_name(model, layer)
    check_choice(layer, "layer", names)
    check_positive_int(max_channels, "max_channels")
    acts = {k: v[0].cpu() for k, v in record_activations(model, x, layers=names,
                                                         progress=False).items()}
    picture = x.detach().cpu()

    def draw(layer_name: str, ch: int, note: str = ""):
        import matplotlib.pyplot as plt

        a = acts[layer_name]
        ch = int(min(max(ch, 0), a.shape[0] - 1))
        shown = list(range(min(a.shape[0], max_channels)))
        if ch not in shown:
            shown[-1] = ch
        ncols = 8 if len(shown) <= 64 else 16
        fig = plt.figure(figsize=(14, 6.4), layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[1, 1.25], wspace=0.02)
        ax = left.subplots()
        m = a[ch]
        show_heatmap(picture, m, ax=ax, alpha=0.6, cmap="inferno", colorbar=True,
                     title=f"{layer_name}, channel {ch}\n{m.shape[0]}x{m.shape[1]} map, values "
                           f"{float(m.min()):.2f} .. {float(m.max()):.2f}")
        nrows = math.ceil(len(shown) / ncols)
        show_feature_maps(a, channels=shown, highlight=ch, axes=right.subplots(nrows, ncols))
        right.suptitle(f"{layer_name}: {len(shown)} of {a.shape[0]} channels "
                       f"({a.shape[1]}x{a.shape[2]} each, one shared grey scale); red: channel {ch}"
                       + note, fontsize=10)
        return fig

    use_widgets = interactive
    if use_widgets is None:
        use_widgets = _widgets_usable() and not is_fast() and not is_grading()
    if not use_widgets:
        draw(layer, channel,
             "\n(static view; in Jupyter with COURSE_FAST unset the browser is interactive)")
        return None

    import ipywidgets as widgets

    pick_layer = widgets.Dropdown(options=names, value=layer, description="layer")
    pick_channel = widgets.IntSlider(value=channel, min=0, max=acts[layer].shape[0] - 1,
                                     description="channel", continuous_update=False)

    def on_layer(change):
        pick_channel.max = acts[change["new"]].shape[0] - 1

    pick_layer.observe(on_layer, names="value")

    # The starting view as an ordinary output: it survives saving and conversion, widgets do not.
    _display_now(draw(layer, channel, "\n(starting view, kept in the saved notebook; "
                                      "the controls below draw other layers and channels)"))
    started = []

    def render(layer_name, ch):
        if not started:              # interactive_output's first call: the figure above shows it
            started.append(True)
            return
        draw(layer_name, ch)

    out = widgets.interactive_output(render, {"layer_name": pick_layer, "ch": pick_channel})
    return widgets.VBox([widgets.HBox([pick_layer, pick_channel]), out])


def _display_now(fig) -> None:
    """Show ``fig`` as an ordinary output of the running cell now, then close it.

    Closing keeps the inline backend from showing it a second time at the end of the cell.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


def show_neighbors(x: torch.Tensor, queries: Sequence[int], neighbors: torch.Tensor, *,
                   labels: Optional[Sequence[Any]] = None, distances: Optional[torch.Tensor] = None,
                   axes=None, row_titles: Optional[Sequence[str]] = None, tile: float = 1.25):
    """One row per query: the query image, then its neighbours in order.

    ``x`` holds the images (N, C, H, W) whose rows ``queries`` and ``neighbors`` index;
    ``neighbors`` is the (Q, k) index tensor of :func:`nearest_neighbors`.  With ``labels`` (one
    per image: the source photo, the digit class, ...) a neighbour's frame is green when its
    label equals the query's and red otherwise, and the query's label is its title.  Returns the
    (Q, k + 1) array of axes.

    >>> show_neighbors(torch.rand(4, 3, 8, 8), [0], torch.tensor([[1, 2]])).shape
    (1, 3)
    """
    import matplotlib.pyplot as plt

    check_tensor(x, "x", ndim=4)
    neighbors = torch.as_tensor(neighbors).cpu()
    queries = [int(q) for q in queries]
    if neighbors.ndim != 2 or neighbors.shape[0] != len(queries):
        raise ValueError(f"neighbors must have shape (Q, k) with Q = {len(queries)} queries, got "
                         f"{tuple(neighbors.shape)}")
    q, k = neighbors.shape
    if axes is None:
        _, axes = plt.subplots(q, k + 1, figsize=(tile * (k + 1), tile * 1.12 * q), squeeze=False,
                               layout="constrained")
    axes = np.asarray(axes).reshape(q, k + 1)
    for r, query in enumerate(queries):
        row = [query] + [int(v) for v in neighbors[r]]
        show_images([x[v] for v in row], axes=axes[r], scale="clip")
        for c, (ax, v) in enumerate(zip(axes[r], row)):
            if c == 0:
                title = row_titles[r] if row_titles is not None else \
                    (f"query: {labels[v]}" if labels is not None else f"query {v}")
                ax.set_title(title, fontsize=8, fontweight="bold")
                color, width = "black", 2.5
            else:
                same = labels is not None and labels[v] == labels[query]
                color = ("tab:green" if same else "tab:red") if labels is not None else "gray"
                width = 2.5
                if distances is not None:
                    ax.set_title(f"d = {float(distances[r, c - 1]):.3g}", fontsize=7)
            for spine in ax.spines.values():
                spine.set_visible(True)
                spine.set_color(color)
                spine.set_linewidth(width)
    return axes


def show_embedding(Y: torch.Tensor, labels: Sequence[int], *, names: Optional[Sequence[str]] = None,
                   ax=None, title: Optional[str] = None, annotate: bool = False, s: float = 9.0,
                   legend: bool = True):
    """Scatter plot of a 2-D embedding (PCA, t-SNE), one colour per label.

    ``labels`` are ints 0..L-1 (the source photo, the digit class); ``names`` their names for the
    legend.  Up to 10 labels use ``tab10``, up to 20 ``tab20``, more ``tab20`` then ``tab20b``
    with a second marker shape, so 24 photos stay distinguishable.  ``annotate`` writes each
    label's name at the median of its points.  Returns the axes.

    >>> len(show_embedding(torch.randn(10, 2), [0, 1] * 5, names=["a", "b"]).collections)
    2
    """
    import matplotlib.pyplot as plt

    Y = torch.as_tensor(Y).detach().cpu()
    lab = torch.as_tensor(labels).cpu().to(torch.int64)
    if Y.ndim != 2 or Y.shape[1] != 2 or lab.shape != (Y.shape[0],):
        raise ValueError(f"Y must be (N, 2) and labels (N,), got {tuple(Y.shape)} and {tuple(lab.shape)}")
    n_labels = int(lab.max()) + 1 if lab.numel() else 0
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    if n_labels <= 10:
        colors = [plt.get_cmap("tab10")(c) for c in range(10)]
    else:
        colors = [plt.get_cmap("tab20")(c) for c in range(20)] + \
                 [plt.get_cmap("tab20b")(c) for c in range(0, 20, 4)] * 4
    markers = ["o", "^", "s", "D"]
    for c in range(n_labels):
        sel = lab == c
        if not bool(sel.any()):
            continue
        name = names[c] if names is not None else str(c)
        ax.scatter(Y[sel, 0], Y[sel, 1], s=s, color=colors[c % len(colors)],
                   marker=markers[(c // 20) % len(markers)] if n_labels > 20 else "o", label=name,
                   alpha=0.85, linewidths=0)
        if annotate:
            med = Y[sel].median(dim=0).values
            ax.text(float(med[0]), float(med[1]), name, fontsize=8, fontweight="bold",
                    ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", alpha=0.7, lw=0))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if legend and not annotate:
        ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5),
                  ncol=1 if n_labels <= 12 else 2, frameon=False)
    return ax
