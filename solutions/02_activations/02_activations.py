# %% [markdown]
# # 02 · What are the intermediate features looking for? (20 points)
#
# Assignment 01 showed that the weights of a deep layer are hard to read: their inputs are abstract
# channels, not pixels. This notebook looks at what the layers *compute* instead — their
# **activations** on real images — with the tools of the lectures: feature maps, maximally
# activating patches, nearest neighbours and dimensionality reduction of the last-layer features,
# and occlusion. Underneath all of them lies one geometric question: which pixels can a unit see at
# all? That is its **receptive field**, which you will compute and then measure.
#
# **Learning goals.** After this notebook you can
#
# * show the feature maps of a layer and say what early and late maps look like;
# * compute the receptive field (size, jump, start) of any unit of a CNN, padding included, and
#   check it by measuring input gradients;
# * find the maximally activating patches of a channel over a gallery of images and cut out what
#   each unit saw;
# * implement PCA and nearest-neighbour search, and compare neighbours in pixel space with
#   neighbours in feature space;
# * read (and not over-read) PCA and t-SNE pictures of a network's features;
# * measure the *actual* receptive field of a unit by occlusion (Zhou et al., 2015).
#
# **How this notebook is graded.**
#
# | | points |
# |---|---|
# | Exercise 1 · `receptive_field` | 4 |
# | Exercise 2 · `top_k_patches` | 4 |
# | Exercise 3 · `pca` | 3 |
# | Exercise 4 · `nearest_neighbors` | 3 |
# | Questions 1, 2 and 3 (written, graded by hand) | 6 |
# | **total** | **20** |
#
# * Write your code between the function's docstring and its end, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures.
# * Each exercise is followed by locked **test cells**. Run them: the *visible* tests check the
#   basics and tell you what went wrong. When your notebook is graded, the same cells also run
#   *hidden* tests with more cases and check that you wrote the computation yourself instead of
#   calling the course's reference implementation or a library function that does it.
# * Later parts of the notebook use the course's reference implementations (`helpers.activations`,
#   imported as `ref`), so a bug in one exercise does not break the rest.
# * The notebook runs in a few minutes on a laptop CPU. `COURSE_FAST=1` (set automatically while
#   grading) makes the gallery smaller; run it top to bottom before you submit
#   (*Kernel → Restart & Run All*).

# %% nbgrader="setup"
# The course setup cell: `python -m grading release` inserts grading/setup_cell.py here.

# %%
import math
import time
from collections import Counter

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from helpers import activations as ref      # reference implementations used by the demos
from helpers.digits import load_digits, trained_digits_cnn
from helpers.images import load_image
from helpers.models import imagenet_labels, load_model
from helpers.plotting import show_heatmap, show_images
from helpers.taps import features
from helpers.testing import assert_close, assert_shape, call_student, forbid

plt.rcParams["figure.dpi"] = 90
FAST = helpers.is_fast()
print("fast mode" if FAST else "full mode", "| torch threads:", torch.get_num_threads())

# %% [markdown]
# ## Part 1 · Feature maps
#
# Feed an image to the network and stop at some layer: the activation there is a tensor of shape
# $C \times H \times W$ — $C$ *feature maps*, one per channel, each an $H\times W$ grid of units
# that all apply the same filter at different places. The lectures show AlexNet's conv5
# ($128\times13\times13$) as 128 small grayscale images. We do the same for **EfficientNet-Lite0**
# (the network of assignment 01, with ImageNet weights that ship with the course).
#
# Two facts about its layers matter for what you see:
#
# * The output of every block `stages.S.B` is its *linear* `project` convolution (no activation):
#   its values are signed, and a grey picture of them is hard to read. The `stem`, the `head` and
#   the `expand` / `depthwise` units inside every block end in a ReLU6, which clips to $[0, 6]$:
#   there 0 means "off", like the ReLU maps of AlexNet in the lectures. We show those.
# * `helpers.features(model, x, layers)` returns the activations of named layers in one forward
#   pass (with hooks; assignment 01 used it too).

# %%
model = load_model("efficientnet_lite0").to(device)
labels = imagenet_labels()
cat = load_image("chelsea", size=224).to(device)              # (1, 3, 224, 224), pixels in [0, 1]
with torch.no_grad():
    probs = model(cat).softmax(dim=1)[0]
print("EfficientNet-Lite0 on 'chelsea':",
      ", ".join(f"{labels[int(i)]} ({float(p):.0%})" for p, i in zip(*probs.topk(3))),
      f"| the five domestic-cat classes together: {float(probs[281:286].sum()):.0%}")
# centres (row, column) of the cat's eyes in the photo 'chelsea' (300 x 451 pixels), read off the picture
CAT_EYES = torch.tensor([[105.0, 172.0], [130.0, 330.0]])

# the block outputs (signed) and, for display, the ReLU6 output of the last depthwise unit of every stage
LAYERS = ["stem"] + [f"stages.{s}" for s in range(len(model.stages))] + ["head"]
RELU_LAYERS = ["stem"] + [f"stages.{s}.{len(model.stages[s]) - 1}.depthwise" for s in range(len(model.stages))] + ["head"]
with torch.no_grad():
    acts = features(model, cat, LAYERS + RELU_LAYERS)
print(f"\n{'layer':22s} {'activation (C, H, W)':>21s} {'min':>7s} {'max':>7s} {'> 0':>6s}")
for name in dict.fromkeys(LAYERS + RELU_LAYERS):
    a = acts[name][0]
    print(f"{name:22s} {str(tuple(a.shape)):>21s} {float(a.min()):7.2f} {float(a.max()):7.2f} "
          f"{float((a > 0).float().mean()):6.0%}")

# %%
ref.show_feature_maps(acts["stem"], ncols=8, tile=1.5,
                      suptitle="stem: 32 feature maps of 112x112 (one grey scale for all: black = 0)")
plt.show()
ref.show_feature_maps(acts["stages.4.2.depthwise"], channels=range(128), ncols=16, tile=0.85,
                      suptitle="stages.4.2.depthwise (after ReLU6): the first 128 of its 672 feature maps of 14x14")
plt.show()

stem, deep = acts["stem"][0].cpu(), acts["stages.4.2.depthwise"][0].cpu()
print("stem maps that are 0 everywhere:", [c for c in range(len(stem)) if float(stem[c].max()) == 0])
print(f"stages.4.2.depthwise: {float((deep > 0).float().mean()):.0%} of the units are on; "
      f"{int((deep.flatten(1).max(dim=1).values == 0).sum())} of its {len(deep)} maps are 0 everywhere")
# Units near the eyes. load_image(size=224) scales the photo by 224/300 and cuts (451 * 224/300 - 224) / 2 px
# off its left; unit (i, j) of the 14x14 map covers the 16x16 pixels around (16 (i + 0.5), 16 (j + 0.5)).
eyes = CAT_EYES * 224 / 300 - torch.tensor([0.0, (451 * 224 / 300 - 224) / 2])
at = (torch.arange(deep.shape[-1]) + 0.5) * 224 / deep.shape[-1]
grid = torch.stack(torch.meshgrid(at, at, indexing="ij"), dim=-1)                       # (14, 14, 2)
near = (grid[None] - eyes[:, None, None]).norm(dim=-1).min(dim=0).values <= 32
share = (deep * near).flatten(1).sum(1) / deep.flatten(1).sum(1).clamp_min(1e-12)
typical = share[deep.flatten(1).amax(dim=1) > 0].median()
print(f"share of a channel's activation on the {int(near.sum())} units ({float(near.float().mean()):.0%}) within 32 px "
      f"of an eye: " + ", ".join(f"channel {c} {float(share[c]):.0%}" for c in (45, 64, 114))
      + f"; median channel {float(typical):.0%}")

# %% [markdown]
# The stem's maps are still pictures of the cat: each is the image seen through one $3\times3$
# filter — edges of one orientation, one colour contrast, brightness. Five are black everywhere
# (printed above): four of them (11, 16, 28, 31) are the dead filters of assignment 01, and filter
# 29 is alive but off on this whole image. Eleven blocks deeper, in `stages.4.2`, the
# $14\times14$ maps no longer look like the image. They are *sparse*: a quarter of the units are
# on (in the `head` only 6 %), and about one map in ten is 0 everywhere. Each is a coarse map of
# *where* some property is present. A few light up on the eyes: channels 45, 64 and 114 put
# roughly half or more of their activation on the units next to an eye, which are only 13 % of the
# map (a typical channel puts 9 % there). Which property do they detect? The maps of one image
# cannot tell — a channel has to be compared across many images (Part 3).
#
# The browser below shows one layer at a time: on the left one channel, upsampled and laid over
# the image; on the right the layer's first 64 channels. It starts at channel 64 of
# `stages.4.2.depthwise`, drawn as an ordinary figure that stays in the saved notebook. In a
# running Jupyter kernel a layer menu and a channel slider below the figure draw any other layer
# and channel (in fast mode and while grading there is only the figure).

# %%
browser = ref.feature_map_browser(model, cat, unit=64, layers=RELU_LAYERS, layer="stages.4.2.depthwise")
browser   # the layer menu and channel slider (None when widgets cannot run: then there is only the figure)


# %% [markdown]
# ## Part 2 · Receptive fields
#
# A unit of `stages.4` is one number in a $14\times14$ grid. Which input pixels can change it? Its
# **receptive field**: for a single $k\times k$ convolution, a $k\times k$ window; stacking layers
# makes it grow. Along one axis (networks here are square, so rows and columns behave alike), for
# a chain of layers with kernel $k_l$, stride $s_l$ and $p_l$ zeros of padding added *before* the
# first pixel:
#
# $$
# r_l = r_{l-1} + (k_l - 1)\,J_{l-1},\qquad
# J_l = J_{l-1}\,s_l,\qquad
# a_l = a_{l-1} - p_l\,J_{l-1},\qquad
# r_0 = 1,\; J_0 = 1,\; a_0 = 0 .
# $$
#
# * **size** $r$: the number of input pixels one unit sees. A kernel of layer $l$ reaches $k_l - 1$
#   units further in the previous layer, and neighbouring units there are $J_{l-1}$ pixels apart.
# * **jump** $J$ (also called the effective stride): the distance in input pixels between the
#   receptive fields of two neighbouring units — the product of all strides so far.
# * **start** $a$: the input coordinate of the first pixel seen by unit 0. Padding shifts it
#   left/up, into negative coordinates where the network sees zeros.
#
# Unit $i$ then sees input pixels $a + iJ,\; \dots,\; a + iJ + r - 1$. Example: three $3\times3$
# convolutions with padding 1 (a VGG stage) see $1 + 2 + 2 + 2 = 7$ pixels, starting at $-3$ —
# as much as one $7\times7$ convolution, with fewer weights and more non-linearities (Simonyan &
# Zisserman, 2015).
#
# **Padding is not always symmetric.** EfficientNet was trained in TensorFlow, whose "SAME"
# padding of a stride-2 layer puts the odd pixel *after* the input: the stem of EfficientNet-Lite0
# pads a 224-pixel image with 0 rows on top and 1 at the bottom. Only the padding *before* the
# input moves the receptive field.
#
# ### Exercise 1 · `receptive_field` (4 points)
#
# Implement `receptive_field(layers)`. `layers` is a list of `(kernel, stride, padding)` tuples,
# input side first; `padding` is an int $p$ (the same on both sides) or a pair `(before, after)`.
# Return the tuple `(size, jump, start)` of ints. An empty list is the input itself:
# `(1, 1, 0)`. Pooling layers are layers too: a $2\times2$ max-pool with stride 2 is `(2, 2, 0)`.

# %% nbgrader="answer" id="receptive_field_answer"
def receptive_field(layers):
    """Receptive field (size, jump, start) of the units after a chain of layers, along one axis.

    layers: list of (kernel, stride, padding) tuples, input side first; padding is an int
            (same number of zeros on both sides) or a pair (before, after).
    Returns (size, jump, start), three ints:
        size  = number of input pixels one unit sees
        jump  = distance in input pixels between the fields of neighbouring units
        start = input coordinate of the first pixel seen by unit 0 (negative: padding)
    """
    ### BEGIN SOLUTION
    size, jump, start = 1, 1, 0
    for kernel, stride, padding in layers:
        before = padding[0] if isinstance(padding, (tuple, list)) else padding
        size += (kernel - 1) * jump          # the kernel reaches (k - 1) units of the previous layer
        start -= before * jump               # zeros added before the input shift unit 0 left
        jump *= stride
    return size, jump, start
    ### END SOLUTION


# %% nbgrader="tests" id="receptive_field_size_test" points=2
# Tests for Exercise 1, part 1: size and jump.
from helpers import activations as ref
from helpers.digits import DigitsCNN
from helpers.testing.activations import check_size_jump, random_chains

check_size_jump(receptive_field, [], 1, 1, "no layer: the pixel itself")
check_size_jump(receptive_field, [(3, 1, 1)], 3, 1, "one 3x3 convolution")
check_size_jump(receptive_field, [(3, 1, 1)] * 3, 7, 1, "three 3x3 convolutions, as in VGG")
check_size_jump(receptive_field, [(3, 1, 0)] * 5, 11, 1, "five 3x3 convolutions: 1 + 2L")
check_size_jump(receptive_field, [(2, 2, 0)] * 3, 8, 8, "three 2x2 poolings with stride 2")
check_size_jump(receptive_field, [(3, 2, 0), (3, 1, 0)], 7, 2, "stride 2, then a 3x3 kernel over units 2 px apart")

### BEGIN HIDDEN TESTS
_alex = [(11, 4, 2), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1), (3, 1, 1), (3, 2, 0)]
for _d, (_s, _j) in enumerate(zip([11, 19, 51, 67, 99, 131, 163, 195], [4, 8, 8, 16, 16, 16, 16, 32]), start=1):
    check_size_jump(receptive_field, _alex[:_d], _s, _j, f"AlexNet, first {_d} layers")
check_size_jump(receptive_field, [(3, 1, 0), (3, 2, 0)], 5, 2, "3x3, then a stride-2 3x3")
check_size_jump(receptive_field, [(5, 3, 0), (2, 2, 0), (3, 1, 1)], 20, 6, "strides 3 and 2")
check_size_jump(receptive_field, [(1, 1, 0)] * 4, 1, 1, "1x1 convolutions see one pixel")
_specs = [(s.kernel, s.stride, s.padding) for s in ref.layer_specs(DigitsCNN(seed=0), layer="pool2")]
check_size_jump(receptive_field, _specs, 12, 4, "DigitsCNN up to pool2")
for _chain in random_chains(seed=0, count=25):
    check_size_jump(receptive_field, _chain, *ref.receptive_field(_chain)[:2], "random chain")
### END HIDDEN TESTS
print("Exercise 1, part 1: all visible tests passed.")

# %% nbgrader="tests" id="receptive_field_start_test" points=2
# Tests for Exercise 1, part 2: start, padding, EfficientNet.
import helpers
from helpers import activations as ref
from helpers.testing.activations import check_measured_receptive_field, check_receptive_field, random_chains

check_receptive_field(receptive_field, [(3, 1, 1)], (3, 1, -1), "one 3x3 convolution, padding 1: unit 0 sees pixels -1, 0, 1")
check_receptive_field(receptive_field, [(3, 1, 1)] * 3, (7, 1, -3), "three padded 3x3 convolutions")
check_receptive_field(receptive_field, [(3, 2, (0, 1))], (3, 2, 0), "TensorFlow SAME, stride 2: 0 zeros before, 1 after")
check_receptive_field(receptive_field, [(3, 2, 1), (3, 2, 1)], (7, 4, -3), "two stride-2 3x3 convolutions, padding 1")
# EfficientNet-Lite0: the chain of layers comes from the model; the truth is measured with input gradients.
_model = helpers.load_model("efficientnet_lite0")
check_measured_receptive_field(receptive_field, _model, "stem", 32)
check_measured_receptive_field(receptive_field, _model, "stages.1", 64)

### BEGIN HIDDEN TESTS
check_receptive_field(receptive_field, [(5, 2, (1, 2)), (3, 1, 1)], (9, 2, -3), "asymmetric padding (1, 2), then padding 1")
check_receptive_field(receptive_field, [(3, 2, (1, 0)), (3, 2, (0, 1))], (7, 4, -1), "pairs (1, 0) and (0, 1)")
check_receptive_field(receptive_field, [(2, 2, 0), (3, 1, 1), (2, 2, 0), (3, 1, 1)], (16, 4, -6), "VGG-like: pool, conv, pool, conv")
check_receptive_field(receptive_field, [], (1, 1, 0), "no layer")
for _chain in [*random_chains(seed=1, count=13, pairs=True), *random_chains(seed=2, count=12)]:
    check_receptive_field(receptive_field, _chain, ref.receptive_field(_chain), "random chain")
for _layer, _side in (("stages.0", 32), ("stages.2.0", 96), ("stages.2", 160)):
    check_measured_receptive_field(receptive_field, _model, _layer, _side)
### END HIDDEN TESTS
print("Exercise 1, part 2: all visible tests passed.")

# %% [markdown]
# ### The receptive fields of EfficientNet-Lite0
#
# `ref.layer_specs(model, layer=...)` reads the chain of spatial layers out of the model — every
# convolution, with TensorFlow's explicit padding modules merged in — and `ref.receptive_field`
# (the reference version of your function) turns it into numbers. Below: the chain up to
# `stages.1`, then the receptive field after every block, and on the right what that means on the
# $224\times224$ cat: the field of the unit nearest the image centre, for five layers.

# %%
for spec in ref.layer_specs(model, layer="stages.1"):
    print(f"  {spec.name:28s} kernel {spec.kernel}  stride {spec.stride}  padding (before, after) = {spec.padding}")

blocks = [f"stages.{s}.{b}" for s in range(len(model.stages)) for b in range(len(model.stages[s]))]
rfs = {name: ref.receptive_field(model, layer=name) for name in ["stem"] + blocks + ["head"]}
with torch.no_grad():
    grids = {name: a.shape[-1] for name, a in features(model, cat, list(rfs)).items()}
print(f"\n{'layer':11s} {'size':>5s} {'jump':>5s} {'start':>6s}   grid for a 224 input")
for name, rf in rfs.items():
    print(f"{name:11s} {rf.size:5d} {rf.jump:5d} {rf.start:6d}   {grids[name]:>4d} x {grids[name]}")

fig, axes = plt.subplots(1, 2, figsize=(15, 4.8), layout="constrained", gridspec_kw={"width_ratios": [1.3, 1]})
axes[0].plot(list(rfs), [r.size for r in rfs.values()], "o-", label="size r (pixels)")
axes[0].plot(list(rfs), [r.jump for r in rfs.values()], "s--", label="jump J (pixels)")
axes[0].axhline(224, color="gray", ls=":", label="input size 224")
axes[0].set_yscale("log")
axes[0].tick_params(axis="x", rotation=70, labelsize=8)
axes[0].set_title("Receptive field after each block of EfficientNet-Lite0")
axes[0].legend()
axes[1].add_patch(plt.Rectangle((-50, -50), 350, 350, color="0.88", zorder=0))   # outside: padding
axes[1].imshow(cat[0].permute(1, 2, 0).cpu(), zorder=1)
for name, color in zip(["stem", "stages.1", "stages.2", "stages.3", "stages.4"],
                       ["white", "yellow", "orange", "red", "magenta"]):
    rf = ref.receptive_field(model, layer=name)
    h = acts[name].shape[-1]
    i = h // 2
    top = rf.start + i * rf.jump
    axes[1].add_patch(plt.Rectangle((top - 0.5, top - 0.5), rf.size, rf.size, fill=False, color=color, lw=2, zorder=2,
                                    label=f"{name}: {rf.size} px (unit ({i}, {i}) of a {h}x{h} grid)"))
axes[1].set_xlim(-50, 300)
axes[1].set_ylim(300, -50)
axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
axes[1].set_title("Receptive field of the central unit\n(grey: outside the image, padding)", fontsize=10)
axes[1].set_axis_off()
plt.show()

# %% [markdown]
# From `stages.4.1` on (275 pixels; `stages.4.0` is still a little smaller than the image, 211),
# a single unit's field is larger than the whole $224\times224$ image: even the central unit sees
# padding beyond the border. And the field *grows* in every block, although no kernel is larger
# than $5\times5$ — the strides multiply the jump, and each kernel then steps over larger
# distances. (Only the `head`, a $1\times1$ convolution, adds nothing.)
#
# ### Measuring the receptive field with gradients
#
# The analytic numbers can be checked without any formula. If pixel $x_{p}$ lies outside the field
# of unit $u$, changing it cannot change $u$, so $\partial u / \partial x_{p} = 0$; inside, the
# gradient is almost surely non-zero. `ref.unit_gradient` computes
# $\sum_c |\partial u / \partial x_{c}|$ for the central unit, and `ref.empirical_receptive_field`
# reads size, jump and start off the non-zero rows and columns (of two neighbouring units, on a
# random image large enough that the field does not touch the border).
#
# One catch: ReLU6 has zero gradient where it is off (input $< 0$) or saturated ($> 6$). If the
# unit itself is off, its gradient is zero everywhere; if units between it and the input are off,
# every path through them is cut, and parts of the field can have exactly zero gradient although
# those pixels *are* wired to the unit. For the wiring, the helpers *linearise* the network while
# they take the gradient: every activation function acts as the identity (and max-pooling as
# average pooling), and the gradient is summed over all channels of the layer.

# %%
layer, ch = "stages.3.2.depthwise", 0                   # a ReLU6 unit inside the last block of stage 3
rf = ref.receptive_field(model, layer=layer)
h = acts["stages.3"].shape[-1]
unit = (h // 2, h // 2)
raw = ref.unit_gradient(model, cat, (ch, *unit), layer=layer, linearize=False).cpu()
lin = ref.unit_gradient(model, cat, (ch, *unit), layer=layer, linearize=True).cpu()
off = ref.unit_gradient(model, cat, (2, *unit), layer=layer, linearize=False).cpu()
top = rf.start + unit[0] * rf.jump

fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), layout="constrained")
axes[0].imshow(cat[0].permute(1, 2, 0).cpu())
axes[0].set_title(f"unit {unit} of {layer}\n({h}x{h} grid), channel {ch}", fontsize=10)
for ax, g, title in ((axes[1], raw, "real network (ReLU6)"), (axes[2], lin, "linearised network")):
    floor = float(g[g > 0].log10().quantile(0.01))
    ax.imshow(torch.where(g > 0, g.log10(), torch.full_like(g, floor - 1)), cmap="magma", vmin=floor - 1)
    ax.set_title(f"log |gradient|, {title}:\n{int((g > 0).sum()):,} non-zero pixels (black: exactly 0)", fontsize=10)
for ax in axes:
    ax.add_patch(plt.Rectangle((top - 0.5, top - 0.5), rf.size, rf.size, fill=False, color="cyan", lw=1.5))
    ax.set_axis_off()
fig.suptitle(f"Input gradient of one unit; cyan: analytic receptive field, {rf.size}x{rf.size} = {rf.size ** 2:,} px")
plt.show()
print(f"channel 2 of the same unit is {float(acts['stages.3.2.depthwise'][0, 2, unit[0], unit[1]]):.1f} (off): "
      f"its real gradient has {int((off > 0).sum())} non-zero pixels")

print(f"{'layer':10s} {'analytic (size, jump, start)':>30s} {'measured':>22s}")
for name in ["stem", "stages.0", "stages.1", "stages.2"] + ([] if FAST else ["stages.3", "stages.4"]):
    a, e = ref.receptive_field(model, layer=name), ref.empirical_receptive_field(model, layer=name)
    print(f"{name:10s} {str(tuple(a)):>30s} {str(tuple(e)):>22s}  {'ok' if a == e else 'DIFFERENT'}")

# %% [markdown]
# On the real network this unit's gradient is exactly zero over parts of its field (here a strip
# along the top and a corner): units between it and the input are off for this image and cut all
# paths from there, although every pixel in the cyan square is wired to it. Linearised, the support fills the square exactly,
# and the measured numbers agree with the analytic ones in every layer. Note also how unevenly the
# gradient is spread even then — strong in the middle, weak at the rim. Part 5 comes back to that.
#
# ## Part 3 · Maximally activating patches
#
# The lectures' recipe (Springenberg et al., 2015; Girshick et al., 2014): *pick a layer and a
# channel, run many images through the network, record the values of that channel, and show the
# image patches — the receptive fields — of the units with the largest values.* A feature map
# answers "where is channel $c$ active in this image?"; the top patches answer "what, over many
# images, makes channel $c$ most active?".
#
# We need many images. The course ships only two dozen photos (from scikit-image, scikit-learn and
# matplotlib), so `ref.crop_gallery` cuts a deterministic **gallery** of random square crops out
# of all of them: random position, a side between 25 % and 75 % of the photo's shorter side, a
# random left-right flip, resized to a fixed size. Each crop remembers its source photo. Running
# the 600 crops through the network takes about half a minute on a laptop CPU (a progress bar
# shows how far it is).

# %%
N_CROPS, CROP = helpers.fast(full=600, fast=240), helpers.fast(full=128, fast=112)
t0 = time.perf_counter()
gallery = ref.crop_gallery(N_CROPS, CROP, seed=0)
names = gallery.names
print(f"{len(gallery)} crops of {CROP}x{CROP} from {len(names)} photos ({time.perf_counter() - t0:.1f} s): {', '.join(names)}")
for ax in show_images(gallery.images[:24], titles=gallery.labels[:24], ncols=12, figsize=(16, 3.4),
                      suptitle="The first 24 crops: one from every photo"):
    ax.title.set_fontsize(8)
plt.show()

t0 = time.perf_counter()
gallery_acts = ref.record_activations(model, gallery.images, layers=["stages.2", "flatten"])   # one pass over the gallery
print(f"recorded {', '.join(f'{k} {tuple(v.shape)}' for k, v in gallery_acts.items())} in {time.perf_counter() - t0:.1f} s")


# %% [markdown]
# ### Exercise 2 · `top_k_patches` (4 points)
#
# Implement `top_k_patches(images, activations, k, rf, fill=0.5)`:
#
# * `images`: $(N, C, H, W)$; `activations`: $(N, h, w)$, **one channel** of a layer for every
#   image; `rf`: the layer's `(size, jump, start)`.
# * Find the `k` largest activations over **all** images and **all** positions together (several
#   may come from the same image) and return them sorted **largest first**.
# * For each, cut out the receptive field of unit $(i, j)$ of image $n$: rows
#   $\text{start} + i\cdot\text{jump}, \dots, \text{start} + i\cdot\text{jump} + \text{size} - 1$, the
#   same for columns, all $C$ channels. Pixels outside the image get the value `fill` (the default
#   0.5, mid grey, is what EfficientNet's zero padding means in pixel space: it normalises pixels
#   as $(x - 0.5)/0.5$).
# * Return `(patches, values, locations)`: `patches` of shape $(k, C, \text{size}, \text{size})$,
#   `values` $(k,)$, and `locations`, an int64 tensor $(k, 3)$ whose rows are $(n, i, j)$.
#
# `torch.topk` on the flattened activations, integer division and `%` to turn a flat index back
# into $(n, i, j)$, and `F.pad` (with `value=fill`) or a `torch.full` canvas for the border help.

# %% nbgrader="answer" id="top_k_patches_answer"
def top_k_patches(images, activations, k, rf, fill=0.5):
    """The k strongest units of one channel over all images and positions, and what they saw.

    images:      float tensor (N, C, H, W)
    activations: tensor (N, h, w), one channel of a layer for every image
    k:           number of units to return
    rf:          (size, jump, start) of the layer's receptive field
    fill:        value of pixels outside the image
    Returns (patches, values, locations), sorted by activation, largest first:
        patches   (k, C, size, size)  the receptive field of each unit
        values    (k,)                its activation
        locations (k, 3) int64        rows (n, i, j): image, row and column of the unit
    """
    ### BEGIN SOLUTION
    size, jump, start = (int(v) for v in rf)
    n, h, w = activations.shape
    values, flat = activations.reshape(-1).topk(k)          # largest first, over everything
    img, pos = flat // (h * w), flat % (h * w)
    rows, cols = pos // w, pos % w
    locations = torch.stack([img, rows, cols], dim=1).to(torch.int64)
    pad = size + jump * max(h, w) + abs(start)                # enough zeros on every side
    padded = F.pad(images, (pad, pad, pad, pad), value=fill)
    patches = []
    for a, i, j in locations.tolist():
        top, left = start + i * jump + pad, start + j * jump + pad
        patches.append(padded[a, :, top:top + size, left:left + size])
    return torch.stack(patches), values, locations
    ### END SOLUTION


# %% nbgrader="tests" id="top_k_patches_locations_test" points=2
# Tests for Exercise 2, part 1: values and locations.
import torch
from helpers.testing.activations import check_top_k_locations

_acts = torch.zeros(3, 4, 4)
_acts[0, 1, 1], _acts[0, 2, 2], _acts[2, 0, 0], _acts[1, 3, 3] = 9.0, 8.0, 7.0, 1.0
_images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
check_top_k_locations(top_k_patches, _images, _acts, 3, (4, 4, 0), "9, 8, 7 at (0, 1, 1), (0, 2, 2), (2, 0, 0) and 1 at (1, 3, 3)")

### BEGIN HIDDEN TESTS
for _seed, (_shape, _k) in enumerate([((7, 5, 6), 10), ((2, 3, 3), 18), ((4, 1, 1), 2), ((5, 8, 3), 1)]):
    _acts = torch.randn(*_shape, generator=torch.Generator().manual_seed(_seed))
    _images = torch.rand(_shape[0], 3, 24, 20, generator=torch.Generator().manual_seed(10 + _seed))
    check_top_k_locations(top_k_patches, _images, _acts, _k, (5, 4, -2), f"activations of shape {_shape}, k={_k}")
### END HIDDEN TESTS
print("Exercise 2, part 1: all visible tests passed.")

# %% nbgrader="tests" id="top_k_patches_patches_test" points=2
# Tests for Exercise 2, part 2: the patches.
import torch
from helpers import activations as ref
from helpers.testing import assert_close, assert_shape
from helpers.testing.activations import check_top_k_patches, labelled_images, student_top_k_patches

_images = labelled_images(2, 3, 8)                      # image n, channel c, row y, column x: n*1000 + c*100 + y*10 + x
_acts = torch.zeros(2, 4, 4)
_acts[1, 2, 1] = 5.0                                    # unit (2, 1) of image 1
_acts[0, 0, 0] = 4.0                                    # unit (0, 0) of image 0: its field starts outside
_patches = student_top_k_patches(top_k_patches, _images, _acts, 2, (3, 2, -1))[0]   # size 3, jump 2, start -1
assert_shape(_patches, (2, 3, 3, 3), name="patches")
assert_close(_patches[0], _images[1, :, 3:6, 1:4], name="patches[0] (image 1, unit (2, 1): rows 3..5, columns 1..3)")
_expected = torch.full((3, 3, 3), 0.5)
_expected[:, 1:, 1:] = _images[0, :, 0:2, 0:2]
assert_close(_patches[1], _expected, name="patches[1] (image 0, unit (0, 0): rows and columns -1..1, -1 is outside)",
             hint="pixels outside the image get the value fill (0.5 by default)")
_patches = student_top_k_patches(top_k_patches, _images, _acts, 2, (3, 2, -1), fill=0.0)[0]
assert float(_patches[1, :, 0, :].abs().max()) == 0.0, "with fill=0.0, pixels outside the image should be 0"

### BEGIN HIDDEN TESTS
for _seed, _rf in enumerate([(7, 4, -3), (5, 2, 0), (11, 3, -5), (1, 1, 0), (9, 8, -4)]):
    _imgs = torch.rand(5, 3, 20, 18, generator=torch.Generator().manual_seed(_seed))
    _a = torch.randn(5, 4, 5, generator=torch.Generator().manual_seed(20 + _seed))
    for _fill in (0.5, 0.0):
        check_top_k_patches(top_k_patches, _imgs, _a, 12, _rf, f"rf = {_rf}, fill={_fill}", fill=_fill)
check_top_k_patches(top_k_patches, _imgs, _a, 3, ref.ReceptiveField(7, 4, -3), "rf given as a ReceptiveField")
_gray = torch.rand(4, 1, 10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
_a = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(9))
check_top_k_patches(top_k_patches, _gray, _a, 4, (4, 3, -1), "one-channel float64 images")
### END HIDDEN TESTS
print("Exercise 2, part 2: all visible tests passed.")

# %% [markdown]
# ### What do the channels of `stages.2` respond to?
#
# `stages.2` ends the third stage: 40 channels on a grid with jump 8, each unit seeing a
# $67\times67$ field. Below, the top patches of eight of its channels over the whole gallery,
# computed with the reference `ref.top_k_patches` and two display options your version does not
# need: `one_per_image=True` keeps each crop's strongest unit only (overlapping crops and
# neighbouring units otherwise fill a row with near-copies), and `inside_only=True` skips units
# whose field reaches past the crop's border (they also respond to the padding, and their patches
# are mostly grey).

# %%
layer, rf2 = "stages.2", ref.receptive_field(model, layer="stages.2")
CHANNELS = [14, 16, 17, 18, 5, 21, 31, 33]
K = 8
top_photos = {}                                                 # channel -> Counter of the source photos of its top K
for c in range(gallery_acts[layer].shape[1]):
    where = ref.top_k_patches(gallery.images, gallery_acts[layer][:, c], K, rf2, one_per_image=True,
                              inside_only=True)[2]
    top_photos[c] = Counter(names[int(gallery.source[n])] for n, _, _ in where.tolist())
fig, axes = plt.subplots(len(CHANNELS), K, figsize=(K * 1.15, len(CHANNELS) * 1.25), layout="constrained")
for row, ch in zip(axes, CHANNELS):
    patches, values, where = ref.top_k_patches(gallery.images, gallery_acts[layer][:, ch], K, rf2,
                                               one_per_image=True, inside_only=True)
    show_images(patches, axes=row, scale="clip",
                titles=[f"{names[int(gallery.source[n])][:9]} {float(v):.0f}" for (n, _, _), v in zip(where.tolist(), values)])
    for ax in row:
        ax.title.set_fontsize(7)
    row[0].set_ylabel(f"channel {ch}", fontsize=9)
fig.suptitle(f"Maximally activating patches of {layer} ({rf2.size}x{rf2.size} px receptive fields): "
             f"one row per channel, source photo and activation above each patch", fontsize=10)
plt.show()
for ch in CHANNELS:
    print(f"channel {ch:2d}: top {K} from " + ", ".join(f"{p} {k}" for p, k in top_photos[ch].most_common()))
majority = Counter(p for counts in top_photos.values() for p, k in counts.items() if k >= K / 2)
print(f"photos that supply at least half of the top {K} of a channel, over all {len(top_photos)} channels: "
      + ", ".join(f"{p} {k}" for p, k in majority.most_common()))

# %% [markdown]
# Read the photo names above the patches (counted under the figure) before naming a channel. In
# full mode, channels 14 and 18 take all 8 patches from a single photo — the printed letters of
# `page`, the squares of the checkerboard — so "text" or "grid" is so far the theme of one photo,
# not something the channel finds everywhere. Channels 16 and 17 find a pattern across photos:
# round bright blobs (6 coins, plus a dahlia's petals and a motorcycle's lamp) and regular grids of
# straight edges (the checkerboard and the brick wall, 7 of 8). Channel 5 mixes the astronaut's
# orange suit (5 of 8 from that photo) with parts of the motorcycle. Channels 21 and 31 share a local shape across
# photos, bright curves or a V on a dark background: the red mudguard, stars and Grace Hopper's
# white tie (21); her collar and the cameraman's coat (31). Channel 33 draws on five photos with
# no common theme we can see. Keep the lectures' warnings in mind: the patches show *where* a unit
# fired, not *what in the patch* made it fire; the gallery is small and biased (the one
# checkerboard supplies at least half of the top 8 of eight of the 40 channels); and a channel may
# respond to things the gallery does not contain.
#
# ### Deeper: the 1280 units before the classifier
#
# At the `head` the receptive fields cover the whole crop, and global average pooling turns each
# channel into one number per image: the 1280-dimensional vector the classifier reads (`flatten`).
# For such units the "patch" is the whole crop. The top crops of six of them:

# %%
UNITS = [1255, 15, 426, 419, 898, 939]
feats = gallery_acts["flatten"]                                 # (N, 1280)
fig, axes = plt.subplots(len(UNITS), K, figsize=(K * 1.15, len(UNITS) * 1.25), layout="constrained")
for row, unit in zip(axes, UNITS):
    values, idx = feats[:, unit].topk(K)
    show_images(gallery.images[idx], axes=row,
                titles=[f"{names[int(gallery.source[i])][:9]} {float(v):.1f}" for i, v in zip(idx, values)])
    for ax in row:
        ax.title.set_fontsize(7)
    row[0].set_ylabel(f"unit {unit}", fontsize=9)
fig.suptitle("Top crops of six of the 1280 pooled head features", fontsize=10)
plt.show()


# %% [markdown]
# ## Part 4 · Last-layer features: neighbours, PCA, t-SNE
#
# The 1280-d feature vector is what the classifier reads, so crops that the network considers
# similar should have nearby vectors. Two tools of the lectures make this visible:
#
# * **nearest neighbours** in feature space — compared with nearest neighbours in pixel space
#   (the lectures' elephant example);
# * **dimensionality reduction** to 2-D: principal component analysis (linear) and t-SNE
#   (non-linear).
#
# ### Exercise 3 · `pca` (3 points)
#
# Implement `pca(X, n_components)` for a data matrix $X$ of shape $(N, D)$ (one sample per row):
#
# 1. centre the data: $\tilde X = X - \bar x$, where $\bar x$ is the mean row;
# 2. take the singular value decomposition $\tilde X = U S V^\top$ (`torch.linalg.svd(...,
#    full_matrices=False)`; singular values come sorted, largest first);
# 3. the principal components are the first $k$ = `n_components` **rows** of $V^\top$ — the
#    directions of largest variance;
# 4. singular vectors are only defined up to sign: flip each component so that its entry of
#    **largest absolute value is positive** (scikit-learn's convention);
# 5. the projections are $Z = \tilde X\, C^\top$ with $C$ the $(k, D)$ matrix of components, and
#    the explained variances are $S_{:k}^2 / (N - 1)$ (the eigenvalues of the covariance matrix).
#
# Return `(Z, components, explained_variance)` with shapes $(N, k)$, $(k, D)$, $(k,)$.
# Not allowed: scikit-learn's `PCA`, `torch.pca_lowrank`, the course's `ref.pca`.

# %% nbgrader="answer" id="pca_answer"
def pca(X, n_components):
    """Principal component analysis of the rows of X.

    X: float tensor (N, D), N >= 2; n_components: k <= min(N, D).
    Returns (Z, components, explained_variance):
        Z                  (N, k)  projections of the centred data on the components
        components         (k, D)  orthonormal rows; each row's largest |entry| is positive
        explained_variance (k,)    S^2 / (N - 1), largest first
    """
    ### BEGIN SOLUTION
    centred = X - X.mean(dim=0, keepdim=True)
    _, S, Vh = torch.linalg.svd(centred, full_matrices=False)
    components = Vh[:n_components]
    biggest = components.abs().argmax(dim=1)
    signs = torch.sign(components[torch.arange(n_components), biggest])
    components = components * signs[:, None]
    Z = centred @ components.T
    explained_variance = S[:n_components] ** 2 / (X.shape[0] - 1)
    return Z, components, explained_variance
    ### END SOLUTION


# %% nbgrader="tests" id="pca_test" points=2
# Tests for Exercise 3, part 1: against scikit-learn (up to sign).
from helpers import activations as ref
from helpers.testing import assert_close
from helpers.testing.activations import check_pca_against_sklearn, pca_data, student_pca

check_pca_against_sklearn(pca, pca_data(50, 6, seed=0), 3, "a (50, 6) matrix")

### BEGIN HIDDEN TESTS
check_pca_against_sklearn(pca, pca_data(40, 5, seed=1, offset=100.0), 2, "data far from the origin (mean 100)")
check_pca_against_sklearn(pca, pca_data(12, 30, seed=2), 5, "a wide (12, 30) matrix, fewer samples than dimensions")
check_pca_against_sklearn(pca, pca_data(30, 4, seed=3), 4, "all components")
check_pca_against_sklearn(pca, pca_data(60, 8, seed=4), 1, "one component")
_X32 = pca_data(80, 10, seed=5).float()
_eZ, _eC, _evar = ref.pca(_X32, 3)
_Z, _C, _var = student_pca(pca, _X32, 3)
assert_close(_C.abs(), _eC.abs(), name="components on float32 data (absolute values)", atol=1e-4)
assert_close(_var, _evar, name="explained_variance on float32 data", rtol=1e-4, atol=1e-4)
### END HIDDEN TESTS
print("Exercise 3, part 1: all visible tests passed.")

# %% nbgrader="tests" id="pca_sign_test" points=1
# Tests for Exercise 3, part 2: sign convention and consistency.
from helpers.testing.activations import check_pca_convention, check_pca_like_reference, pca_data

check_pca_convention(pca, pca_data(50, 6, seed=0), 3, "a (50, 6) matrix")

### BEGIN HIDDEN TESTS
for _seed in range(1, 6):
    _X = pca_data(30 + 7 * _seed, 4 + _seed, seed=10 + _seed, offset=-2.0 * _seed)
    check_pca_convention(pca, _X, 3, f"random data #{_seed}")
    check_pca_like_reference(pca, _X, 3, f"random data #{_seed}")
### END HIDDEN TESTS
print("Exercise 3, part 2: all visible tests passed.")


# %% [markdown]
# ### Exercise 4 · `nearest_neighbors` (3 points)
#
# Implement `nearest_neighbors(X, queries, k, metric="euclidean", exclude_self=True)`:
#
# * `X` $(N, D)$ holds one feature vector per row; `queries` is a list (or 1-D int tensor) of
#   **row indices** of `X`.
# * For every query row $q$, return the indices of the `k` rows of `X` closest to it, nearest
#   first, and their distances:
#   * `metric="euclidean"`: $d(a, b) = \lVert a - b\rVert_2$;
#   * `metric="cosine"`: $d(a, b) = 1 - \dfrac{a\cdot b}{\lVert a\rVert\,\lVert b\rVert}$ (the angle
#     matters, the length does not).
# * With `exclude_self=True` the query's **own row** is never returned (another row that happens
#   to be identical to it is a genuine neighbour and is returned, at distance 0).
# * Return `(indices, distances)`: int64 $(Q, k)$ and float $(Q, k)$, distances ascending.
#
# `torch.cdist`, `torch.topk(..., largest=False)` or `torch.sort` are allowed; scikit-learn's
# `NearestNeighbors` and the course's `ref.nearest_neighbors` are not.

# %% nbgrader="answer" id="nearest_neighbors_answer"
def nearest_neighbors(X, queries, k, metric="euclidean", exclude_self=True):
    """The k rows of X nearest to each query row, nearest first.

    X:            float tensor (N, D)
    queries:      list or 1-D int tensor of row indices of X (Q of them)
    k:            number of neighbours
    metric:       "euclidean" (||a - b||) or "cosine" (1 - cos(a, b))
    exclude_self: if True, a query's own row is never among its neighbours
    Returns (indices, distances): int64 (Q, k) and float (Q, k), distances ascending.
    """
    ### BEGIN SOLUTION
    queries = torch.as_tensor(queries, dtype=torch.int64).reshape(-1)
    Q = X[queries]
    if metric == "euclidean":
        dist = torch.cdist(Q, X)
    elif metric == "cosine":
        a = Q / Q.norm(dim=1, keepdim=True).clamp_min(1e-12)
        b = X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)
        dist = 1 - a @ b.T
    else:
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if exclude_self:
        dist = dist.clone()
        dist[torch.arange(len(queries)), queries] = float("inf")
    distances, indices = dist.topk(k, dim=1, largest=False)     # sorted, nearest first
    return indices, distances
    ### END SOLUTION


# %% nbgrader="tests" id="nearest_neighbors_test" points=2
# Tests for Exercise 4, part 1: Euclidean distance and the query itself.
import torch
from helpers.testing import assert_close
from helpers.testing.activations import check_neighbors, check_neighbors_against_sklearn, student_nearest_neighbors

_X = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
_, _dist = check_neighbors(nearest_neighbors, _X, [2], 2, [[3, 1]], "X = [0, 1, 3, 3.5], query row 2")
assert_close(_dist, torch.tensor([[0.5, 2.0]]), name="distances for X = [0, 1, 3, 3.5], query row 2")
check_neighbors(nearest_neighbors, _X, [2], 2, [[2, 3]], "exclude_self=False: the query is its own nearest neighbour",
                exclude_self=False)
check_neighbors(nearest_neighbors, torch.tensor([[1.0, 0.0], [10.0, 0.0], [0.0, 1.2]]), [0], 1, [[2]],
                "row 0 = (1, 0) is 1.56 from row 2 = (0, 1.2) and 9 from row 1 = (10, 0); a dot product or cosine picks row 1")
_Xs = torch.randn(30, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
check_neighbors_against_sklearn(nearest_neighbors, _Xs, [0, 7, 29], 4, "euclidean", "random (30, 5) data")

### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(1)
_Xr = torch.randn(80, 12, generator=_g, dtype=torch.float64) * torch.linspace(0.1, 3, 80, dtype=torch.float64)[:, None]
check_neighbors_against_sklearn(nearest_neighbors, _Xr, [0, 5, 17, 79, 40], 6, "euclidean", "random (80, 12) data of varied lengths")
check_neighbors_against_sklearn(nearest_neighbors, _Xr, list(range(80)), 3, "euclidean", "every row as a query")
# A duplicate of the query is a genuine neighbour: exclude the query by its index, not by its distance.
_Xd = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [-2.0, 0.0], [5.0, 5.0]], dtype=torch.float64)
check_neighbors(nearest_neighbors, _Xd, [0], 2, [[2, 1]], "row 2 is identical to the query row 0, at distance 0")
_idx, _dist = student_nearest_neighbors(nearest_neighbors, _Xd, torch.tensor([3, 4]), 4)       # rows 0 and 2 tie: either order
_rows = _idx.tolist()
assert set(_rows[0][:2]) == {0, 2} and _rows[0][2:] == [1, 4] and _rows[1][0] == 1 and \
    set(_rows[1][1:3]) == {0, 2} and _rows[1][3] == 3, f"queries given as a tensor [3, 4]: got {_rows}"
assert_close(_dist.double(), torch.tensor([[2.0, 2.0, 3.0, 74 ** 0.5], [41 ** 0.5, 50 ** 0.5, 50 ** 0.5, 74 ** 0.5]],
                                          dtype=torch.float64), name="distances for queries [3, 4]", atol=1e-6)
_idx, _dist = student_nearest_neighbors(nearest_neighbors, _Xr.float(), [3], 79)
assert sorted(_idx[0].tolist()) == [i for i in range(80) if i != 3], "k = N - 1 with exclude_self: every other row exactly once"
assert bool((_dist[0, 1:] >= _dist[0, :-1]).all()), "distances must be sorted ascending"
### END HIDDEN TESTS
print("Exercise 4, part 1: all visible tests passed.")

# %% nbgrader="tests" id="nearest_neighbors_cosine_test" points=1
# Tests for Exercise 4, part 2: cosine distance.
import torch
from helpers.testing import assert_close
from helpers.testing.activations import check_neighbors, check_neighbors_against_sklearn, student_nearest_neighbors

_X = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
_, _dist = check_neighbors(nearest_neighbors, _X, [0], 2, [[1, 2]], "cosine neighbours of (1, 0) among (10, 1), (0, 1), "
                           "(-1, 0): angles 5.7 and 90 degrees; the cosine distance ignores the length", metric="cosine")
assert_close(_dist, torch.tensor([[1 - 10 / 101 ** 0.5, 1.0]]), name="cosine distances from (1, 0)", atol=1e-5,
             hint="1 - a.b / (|a| |b|)")

### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(2)
_Xr = torch.randn(60, 9, generator=_g, dtype=torch.float64) * torch.linspace(0.2, 5, 60, dtype=torch.float64)[:, None]
check_neighbors_against_sklearn(nearest_neighbors, _Xr, [0, 11, 30, 59], 5, "cosine", "random (60, 9) data of varied lengths, cosine")
_idx_e, _ = student_nearest_neighbors(nearest_neighbors, _Xr, [0, 11, 30, 59], 5, metric="euclidean")
_idx_c, _ = student_nearest_neighbors(nearest_neighbors, _Xr, [0, 11, 30, 59], 5, metric="cosine")
assert _idx_e.tolist() != _idx_c.tolist(), "metric='cosine' and metric='euclidean' should give different neighbours here"
_idx, _dist = student_nearest_neighbors(nearest_neighbors, _Xr, [5], 3, metric="cosine", exclude_self=False)
assert int(_idx[0, 0]) == 5 and abs(float(_dist[0, 0])) < 1e-6, "cosine, exclude_self=False: the query first, at distance 0"
### END HIDDEN TESTS
print("Exercise 4, part 2: all visible tests passed.")

# %% [markdown]
# ### Neighbours in feature space and in pixel space
#
# For five query crops (an eye of the cat `chelsea`, the coffee cup, the motorcycle, the
# cameraman, the pagoda of `china`), the six nearest neighbours among all crops, computed with the reference `ref.nearest_neighbors` in two spaces:
#
# * **feature space**: the 1280-d pooled head features, cosine distance;
# * **pixel space**: the crops shrunk to $32\times32$ (3,072 numbers each), Euclidean distance.
#
# A green frame marks a neighbour cut from the same photo as the query, a red frame one from
# another photo. With 24 photos, a neighbour picked at random comes from the query's photo about
# 4 % of the time.

# %%
pixels = F.interpolate(gallery.images, size=(32, 32), mode="bilinear", antialias=True).flatten(1)   # (N, 3072)
QUERY_PHOTOS = [("chelsea", 1), ("coffee", 0), ("motorcycle", 0), ("camera", 1), ("china", 0)]   # (photo, which crop)
queries = [int((gallery.source == names.index(p)).nonzero()[n]) for p, n in QUERY_PHOTOS]
source = gallery.source.tolist()


def has_eye(n):
    """Does crop n contain the centre of one of the cat's eyes (CAT_EYES, Part 1)?"""
    top, left, side = gallery.boxes[n].tolist()
    return names[source[n]] == "chelsea" and any(top <= r < top + side and left <= c < left + side
                                                 for r, c in CAT_EYES.tolist())


for space, X, metric in (("feature space (1280-d head features, cosine)", feats, "cosine"),
                         ("pixel space (32x32 thumbnails, Euclidean)", pixels, "euclidean")):
    idx, dist = ref.nearest_neighbors(X, queries, 6, metric=metric)
    ref.show_neighbors(gallery.images, queries, idx, labels=source, tile=1.2,
                       row_titles=[f"query: {p}" for p, _ in QUERY_PHOTOS])
    plt.gcf().suptitle(f"Nearest neighbours in {space}; green: same photo as the query", fontsize=10)
    plt.show()
    print(space)
    for (photo, _), q, row in zip(QUERY_PHOTOS, queries, idx.tolist()):
        others = Counter(names[source[n]] for n in row if source[n] != source[q])
        print(f"  {photo:10s}: same photo {len(row) - sum(others.values())} of {len(row)}"
              + (" | others: " + ", ".join(f"{p} {k}" for p, k in others.most_common()) if others else ""))
    cat_row = idx[0].tolist()
    print(f"  the cat's eye: {sum(map(has_eye, cat_row))} of {len(cat_row)} neighbours contain the centre of an eye, "
          f"{sum(bool(gallery.flipped[n]) for n in cat_row)} are mirrored")

k = 5
for space, X, metric in (("feature space", feats, "cosine"), ("pixel space", pixels, "euclidean")):
    idx, _ = ref.nearest_neighbors(X, list(range(len(gallery))), k, metric=metric)
    same = (gallery.source[idx] == gallery.source[:, None]).float().mean()
    print(f"{space:13s}: {float(same):5.1%} of the {k} nearest neighbours of a crop come from its own photo "
          f"(chance: {(len(gallery) / len(names) - 1) / (len(gallery) - 1):.1%})")

# %% [markdown]
# **Question 1** (2 points). Look at the neighbours of the five queries in both spaces, and at the
# counts printed under each figure (the numbers below are those of full mode).
# (a) In pixel space, 5 of the 6 neighbours of the cat's eye (`chelsea`) come from the cat photo
# too, yet only one of them contains an eye, and the remaining one is a crop of `coffee`. What do
# these neighbours have in common with the query instead? For the motorcycle, the camera and the
# pagoda (`china`), 5 of the 6 pixel neighbours come from other photos: what kind of crops are
# they? Why does the Euclidean distance between pixels favour exactly such neighbours?
# (b) In feature space, all six neighbours of the cat's eye are crops of the cat, shifted,
# rescaled or mirrored, and 5 of them contain an eye. What does that say about the 1280-d
# features, and why is it this property that the network's training asked for? (This is the
# lectures' elephant example with the photos we have.)

# %% [markdown] nbgrader="manual" id="question_1" points=2
# ### BEGIN SOLUTION
# Model answer (1 point per part):
#
# (a) The pixel-space neighbours share the query's **average colour and brightness and its
# smooth layout**, not its content. The cat's eye finds brown-orange fur and whiskers, mostly
# without an eye (1 of 6 contains one), and the brown wooden table of `coffee`: they come from the
# cat photo because that photo has this colour almost everywhere, not because they show an eye.
# For the motorcycle, the camera and the pagoda, the neighbours from other photos are grey crops
# of grey photos, most of them smooth and low in contrast (`microaneurysms`, `moon`, `clock`,
# `page`, `text`) — even for the red motorcycle. The Euclidean distance sums squared differences
# pixel by pixel at *fixed positions*: it is dominated by the mean intensity and colour and by the
# large smooth regions, and a flat crop of about the right brightness is close to *any* image of
# that brightness (it is near the middle of everything). It is not invariant to anything: the same
# eye shifted by a few pixels, zoomed or lit differently differs in almost every pixel and is far
# away. (Accept: brightness/colour or low-contrast images dominate, sensitivity to
# shifts/flips/scale, "the pixel distance knows nothing about objects".)
#
# (b) The 1280-d features are largely **invariant** to position, scale, flips and small changes of
# appearance (global average pooling removes position altogether), while they keep *what* is in the
# crop: an eye in fur (5 of the cat's 6 neighbours contain an eye, 3 of them mirrored), a cup rim.
# The network was trained to give the same label to an object wherever it is, at any size, under
# data augmentation with random crops and flips; the last layer before the classifier must
# therefore map all such variants close together (the classifier is linear on these features),
# whereas nothing in training made the pixels themselves similar.
# ### END SOLUTION

# %% [markdown]
# ### PCA and t-SNE of the gallery
#
# Two 2-D pictures of the same 1280-d features, each point a crop coloured by its source photo:
#
# * **PCA** (the reference `ref.pca`): the linear projection with the largest variance. The curve
#   shows how much of the total variance the first components keep.
# * **t-SNE** (van der Maaten & Hinton, 2008; `ref.tsne` wraps scikit-learn): places points so that
#   each point's *neighbours* stay its neighbours. Clusters and neighbourhoods are meaningful;
#   distances between clusters and cluster sizes are not.

# %%
t0 = time.perf_counter()
Z, comps, var = ref.pca(feats, 50)
Y = ref.tsne(feats, seed=0)
print(f"PCA and t-SNE of {tuple(feats.shape)} features in {time.perf_counter() - t0:.1f} s")
ratio = var / feats.var(dim=0).sum()
print(f"explained variance: {float(ratio[:2].sum()):.0%} in the first 2 components, "
      f"{float(ratio[:10].sum()):.0%} in 10, {float(ratio.sum()):.0%} in 50")

fig = plt.figure(figsize=(16, 5.6), layout="constrained")
ax_var, ax_pca, ax_tsne = fig.subplots(1, 3, width_ratios=[0.7, 1.1, 1.4])
ax_var.plot(range(1, 51), ratio.cumsum(0) * 100, "o-", ms=3)
ax_var.set_xlabel("number of principal components")
ax_var.set_ylabel("cumulative explained variance (%)")
ax_var.set_ylim(0, 100)
ax_var.grid(alpha=0.3)
ax_var.set_title("PCA: variance kept")
ref.show_embedding(Z[:, :2], gallery.source, names=names, ax=ax_pca, legend=False, s=14,
                   title=f"PCA: first two components ({float(ratio[:2].sum()):.0%} of the variance)")
ref.show_embedding(Y, gallery.source, names=names, ax=ax_tsne, annotate=True, s=14,
                   title="t-SNE of the 1280-d features (names at the median of each photo's crops)")
plt.show()

# %% [markdown]
# ### The same for a network we trained ourselves: digits
#
# The crops above have no labels except their source photo. For a cleaner test, take the small
# CNN of assignment 01 (`helpers.digits`), trained in a few seconds on scikit-learn's $8\times8$
# handwritten digits, and embed the 450 **test** digits — which it never saw during training —
# three times: by their 64 raw pixels, by the 64 features before the linear classifier (`flatten`)
# of the *untrained* network (random weights), and by the same features after training. Two
# numbers per space:
#
# * the **silhouette** (scikit-learn's `silhouette_score`, in $[-1, 1]$): for each digit, how much
#   closer it is on average to its own class than to the nearest other class, averaged — high when
#   classes form compact, separated groups;
# * the leave-one-out accuracy of a **1-nearest-neighbour** classifier (Euclidean, with
#   `ref.nearest_neighbors`): how often a digit's nearest other digit has the same label.

# %%
from sklearn.metrics import silhouette_score

t0 = time.perf_counter()
digits_net = trained_digits_cnn(seed=0, epochs=helpers.fast(full=30, fast=15)).to(device)
untrained = type(digits_net)(seed=0).to(device).eval()
X_test, y_test = load_digits(split="test")
spaces = {"raw pixels": X_test.flatten(1),                                          # (450, 64)
          "untrained CNN features": ref.extract_features(untrained, X_test, layer="flatten"),
          "trained CNN features": ref.extract_features(digits_net, X_test, layer="flatten")}
print(f"trained and embedded in {time.perf_counter() - t0:.1f} s")

fig, axes = plt.subplots(1, 3, figsize=(16, 5.6), layout="constrained")
for ax, (space, X) in zip(axes, spaces.items()):
    nn_idx, _ = ref.nearest_neighbors(X, list(range(len(X))), 1)
    acc = float((y_test[nn_idx[:, 0]] == y_test).float().mean())
    sil = silhouette_score(X.numpy(), y_test.numpy())
    ref.show_embedding(ref.tsne(X, seed=0), y_test, ax=ax, annotate=True, s=10,
                       title=f"t-SNE of the test digits, {space} (64-d)\nsilhouette {sil:.2f}, 1-NN accuracy {acc:.1%}")
    print(f"{space:23s} silhouette {sil:5.2f}   1-NN accuracy {acc:6.1%}")
plt.show()

# %% [markdown]
# **Question 2** (2 points). (a) In which of the three digit spaces do the classes separate
# best, and what do the two numbers say? Why is the *untrained* network worse than the raw pixels,
# although it has the same architecture as the trained one? (b) A classmate reads the gallery
# t-SNE and concludes: "the `chelsea` cluster is far from the `grace_hopper` cluster, so the network
# finds cats and people very different". What is wrong with reading a t-SNE plot this way, and how
# would you compare such distances instead?

# %% [markdown] nbgrader="manual" id="question_2" points=2
# ### BEGIN SOLUTION
# Model answer (1 point per part):
#
# (a) The trained CNN features: most classes form compact, separate clusters (here 4, 1 and 8
# still touch) and the silhouette is clearly higher than for raw pixels (about 0.27 against 0.16),
# with the best 1-NN accuracy (about 97 %). The 1-NN accuracy of raw pixels is almost as high:
# these $8\times8$ digits are easy for a nearest neighbour search, since a digit usually has a
# near-copy of the same class; the silhouette, which looks at whole classes, shows the difference
# (pixel classes are spread out and touch each other, e.g. 1 with 8, 9 with 3 or 5). The untrained network is worse than pixels (silhouette about
# 0.11, 1-NN about 90 %): random filters, ReLU and max-pooling keep a random, partly destroyed
# summary of the image (pooling throws away positions, ReLU half of the values); nothing made
# same-class digits similar. It is training that shapes the features so that classes separate.
#
# (b) t-SNE preserves *neighbourhoods*, not distances: it matches each point's near neighbours with
# heavy-tailed similarities in 2-D and spends almost no effort on large distances, so the gaps
# between clusters (and cluster sizes and densities) depend on perplexity, initialisation and the
# seed, and carry little meaning. "Far apart in t-SNE" only says "not neighbours". To compare, use
# distances in the 1280-d space itself (e.g. between the mean features of the two photos, or the
# nearest neighbours of one photo's crops), or a linear projection such as PCA, whose distances are
# faithful to the extent of the variance it keeps (only 13 % in two components in full mode, as
# printed above the PCA figure, so with care).
# ### END SOLUTION

# %% [markdown]
# ## Part 5 · Going further: the *actual* receptive field
#
# The theoretical receptive field says which pixels *can* influence a unit. Zhou et al. ("Object
# Detectors Emerge in Deep Scene CNNs", ICLR 2015) measured which pixels *do*: for each of a unit's
# top images, they slide a small patch of random pixels over the image, record how much the unit's
# activation changes at each position — a *discrepancy map* — then centre every map on its unit
# (they call it calibration) and average. The bright region is the actual receptive field. They
# found it much smaller than the theoretical one, and growing with depth more slowly.
#
# `ref.unit_occlusion_map` does this for one image (an $11\times11$ random patch, moved in steps of a
# few pixels over the unit's field) and `ref.occlusion_receptive_field` aligns and averages the
# maps, each normalised to a maximum of 1. Below: channel 16 of `stages.2`, on its top crops
# (about half a minute on a laptop CPU, with a progress bar).

# %%
CH, N_OCC, STEP = 16, helpers.fast(full=6, fast=3), helpers.fast(full=4, fast=5)
patches, values, where = ref.top_k_patches(gallery.images, gallery_acts["stages.2"][:, CH], N_OCC, rf2,
                                           one_per_image=True, inside_only=True)
top_images = gallery.images[where[:, 0]]
t0 = time.perf_counter()
units = [(CH, i, j) for _, i, j in where.tolist()]              # the unit at its top location in each crop
actual, maps = ref.occlusion_receptive_field(model, top_images.to(device), units, layer="stages.2",
                                             stride=STEP, rf=rf2, return_maps=True)
actual, maps = actual.cpu(), maps.cpu()
print(f"{N_OCC} images, {time.perf_counter() - t0:.1f} s")

half = actual >= 0.5 * float(actual.max())
side = math.sqrt(int(half.sum()))
print(f"half-maximum region: {int(half.sum())} px, {int(half.sum()) / rf2.size ** 2:.0%} of the theoretical "
      f"{rf2.size}x{rf2.size} field")
fig = plt.figure(figsize=(15, 4.6), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[2.2, 1])
show_n = min(N_OCC, 4)
ax = left.subplots(2, show_n, squeeze=False)
for c in range(show_n):
    show_images(patches[c], axes=ax[0, c], titles=f"top patch {c + 1}")
    show_heatmap(patches[c], maps[c], ax=ax[1, c], alpha=0.6, cmap="inferno")
left.suptitle(f"Channel {CH} of stages.2: top patches ({rf2.size}x{rf2.size}) and their discrepancy maps")
ax = right.subplots()
im = ax.imshow(actual, cmap="inferno", extent=(-0.5, rf2.size - 0.5, rf2.size - 0.5, -0.5))
ax.contour(actual.numpy(), levels=[0.5 * float(actual.max())], colors="cyan", linewidths=1.5)
ax.set_title(f"average of {N_OCC} aligned maps\ncyan: half maximum, area = ({side:.0f} px)^2; "
             f"theoretical: {rf2.size} px", fontsize=10)
ax.set_xlabel("column in the receptive field (px)")
ax.set_ylabel("row (px)")
fig.colorbar(im, ax=ax, shrink=0.8)
plt.show()

# %% [markdown]
# **Question 3** (2 points). The theoretical receptive field of `stages.2` is $67\times67$
# pixels; the region where occlusion changes the unit by at least half its maximum is much smaller.
# (a) Give two reasons why a unit depends mostly on the centre of its theoretical field. (Think
# of how many paths through the network connect an input pixel to the unit, and of what the
# gradient pictures of Part 2 showed.) (b) What does this mean for reading the maximally activating
# patches of Part 3?

# %% [markdown] nbgrader="manual" id="question_3" points=2
# ### BEGIN SOLUTION
# Model answer (1 point per part; any two sound reasons for (a)):
#
# (a) 1. **Number of paths**: a pixel in the centre of the field is connected to the unit through
# many more paths (every kernel position of every layer) than a pixel at the rim, which is reached
# only through the outermost tap of every kernel. Summed over layers this makes the influence
# roughly Gaussian, concentrated in the centre (Luo et al., 2016, "effective receptive field": it
# covers only a fraction of the theoretical one and grows like the square root of depth).
# 2. **Learned weights**: trained kernels concentrate their weight in the centre (assignment 01:
# deep depthwise kernels put several times the random share of their energy in the centre pixel),
# so outer taps contribute little. 3. **Non-linearities and the image**: ReLU6 units that are off
# or saturated cut paths (the patchy real gradient of Part 2), and on the unit's top images the
# discriminative part sits where the unit looks hardest. 4. The occluder is an $11\times11$ patch:
# small changes near the rim get averaged out; the threshold (half max) also shrinks the region.
#
# (b) The patches shown at the *theoretical* size contain a lot of context the unit hardly uses:
# what makes it fire is in the centre of each patch. One should look at the centre (or crop the
# patches to the actual field, or overlay the discrepancy / gradient map) before naming what a unit
# detects — otherwise one reads into the unit properties of the surroundings (e.g. "face" for a
# unit that responds to an eye). The patches show where a unit fired, not what in the patch caused
# it.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# * A layer's activation is a stack of feature maps; early maps are filtered images, deep maps
#   coarse and sparse maps of abstract properties — readable only by comparing many images.
# * The receptive field of a unit follows from three recurrences over the layers (size, jump,
#   start); padding moves the start, and asymmetric "SAME" padding only by its part before the
#   input. Input gradients of a linearised network measure the same numbers.
# * Maximally activating patches over a gallery show what drives a channel, at the price of a
#   biased gallery and a field that is larger than what the unit really uses.
# * Last-layer features put crops of the same content close together, shifted, scaled or mirrored,
#   unlike pixels; PCA and t-SNE make this visible, t-SNE only for neighbourhoods.
# * Next: instead of asking which images a unit likes, ask which *pixels* of one image a decision
#   depends on — **03 · Saliency**.
