# %% [markdown]
# # 03 · Which pixels matter? (21 points)
#
# A classifier says "Egyptian cat". *Why?* Did it look at the cat's face, at its fur, at the
# background? This notebook builds the classic tools that answer "which pixels did the decision
# depend on?" for the pretrained EfficientNet-Lite0 — each asks the question differently, and each
# can mislead in its own way. You will implement four of them, check them against each other, use a
# saliency map to cut the object out of the picture, and then put the methods themselves to the
# test: do they explain the *model*, or just the image?
#
# **Learning goals.** After this notebook you can
#
# * compute a gradient **saliency map** and explain its three ingredients (raw class score,
#   absolute value, max over colours);
# * compute an **occlusion map** by batching perturbed images, and say what it costs;
# * write **guided backpropagation** with module hooks — for ReLU *and* ReLU6 — and remove the hooks
#   reliably;
# * compute **Grad-CAM** from a layer's activations and gradients, and explain why it is
#   class-discriminative while the others are not;
# * turn a saliency map into an object mask with **GrabCut**;
# * run the **model-randomisation sanity check** (Adebayo et al., 2018) and judge a method by it;
# * say which methods survive when a model is a **black box** that only returns probabilities.
#
# **How this notebook is graded.**
#
# | | points |
# |---|---|
# | Exercise 1 · `saliency_map` | 3 |
# | Exercise 2 · `occlusion_map` | 4 |
# | Exercise 3 · `guided_backprop` | 4 |
# | Exercise 4 · `grad_cam` | 4 |
# | Questions 1–3 (written, graded by hand) | 6 |
# | **total** | **21** |
#
# * Write your code between the function's docstring and its end, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures.
# * Each exercise is followed by locked **test cells**. The *visible* tests check the basics and
#   tell you what went wrong; when your notebook is graded the same cells run *hidden* tests with
#   more cases (the pretrained network, batches, other layers, edge cases), check that your
#   function leaves its inputs and the model as it found them, and check that you wrote the method
#   yourself instead of calling the course's reference (`helpers.saliency`) or Captum.
# * Every function follows one calling convention, the one of the Captum library:
#   `method(model, x, target, ...)` with `x` a batch of images (N, 3, H, W) in $[0, 1]$ and
#   `target` a class index (`int`) or a tensor of N class indices, one per image.
# * The demos use the reference implementations (`helpers.saliency`, imported as `ref`), so a bug in
#   one exercise does not break the rest of the notebook.
# * The notebook runs in two to three minutes on a laptop CPU (fast mode, `COURSE_FAST=1`, set
#   while grading: about a minute). Run it top to bottom before you submit
#   (*Kernel → Restart & Run All*).

# %% nbgrader="setup"
# The course setup cell: `python -m grading release` inserts grading/setup_cell.py here.

# %%
import importlib.util
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers import saliency as ref        # reference implementations used by the demos
from helpers.filters import gaussian_blur
from helpers.images import load_image
from helpers.models import ProbabilitiesOnly, imagenet_labels, load_model
from helpers.plotting import show_heatmap, show_images
from helpers.taps import features

plt.rcParams["figure.dpi"] = 90
SIZE = helpers.fast(full=224, fast=128)    # image side in pixels (224: the network's native size)

# %% [markdown]
# ## Part 0 · The patient and two pictures
#
# The network is the one from assignment 01: **EfficientNet-Lite0**, pretrained on ImageNet, bundled
# with the course. It takes pixels in $[0, 1]$ and returns 1000 **logits** $S_c(x)$ — unnormalised
# class scores; the softmax turns them into probabilities
# $p_c = e^{S_c} / \sum_k e^{S_k}$. Its parameters are frozen: we only ever differentiate with
# respect to *images*.
#
# The two pictures are ones the network classifies with confidence (top-3 printed below). For
# the cat we take the left square of the photo (one eye, the nose, the cheek): on the usual
# centre crop the network hesitates between "Egyptian cat" and "tiger cat" (39 % vs 32 %), a
# poor patient for methods that explain *one* class.

# %%
model = load_model("efficientnet_lite0").to(device)
labels = imagenet_labels()
CAT, ESPRESSO = 285, 967                   # ImageNet classes 'Egyptian cat' and 'espresso'

names = ["chelsea", "coffee"]
CAT_CROP = (0, 0, 300, 300)                # (top, left, h, w): the left square of the photo, the cat's face
x = torch.cat([load_image("chelsea", size=SIZE, crop=CAT_CROP),
               load_image("coffee", size=SIZE)]).to(device)             # (2, 3, SIZE, SIZE)
with torch.no_grad():
    probs = model(x).softmax(dim=1)
targets = probs.argmax(dim=1)                                           # the predicted classes
def top3(p):
    """The three most probable classes of a probability vector p (K,), as text."""
    top = p.topk(3)
    return ", ".join(f"{labels[int(i)]} {float(v):.0%}" for v, i in zip(top.values, top.indices))


for name, p in zip(names, probs):
    print(f"{name:8s}", top3(p))
show_images(x, titles=[f"{n}: {labels[int(t)]}" for n, t in zip(names, targets)], figsize=(6, 3.3))
plt.show()


# %% [markdown]
# ## Part 1 · Gradient saliency
#
# Simonyan, Vedaldi & Zisserman ("Deep Inside Convolutional Networks", ICLR workshop 2014) start
# from a linear model: if $S_c(x) = w^\top x + b$, the weight $w_i$ says how much pixel value $x_i$
# matters for class $c$. A CNN is not linear, but close to a given image $x_0$ it is, to first
# order (Taylor):
#
# $$
# S_c(x) \approx S_c(x_0) + w^\top (x - x_0), \qquad w = \left.\frac{\partial S_c}{\partial x}\right|_{x_0}.
# $$
#
# The gradient $w$ has the shape of the image, $(3, H, W)$. The **saliency map** keeps one number
# per pixel:
#
# $$
# M_{ij} = \max_{c \in \{R, G, B\}} \left| w_{c,ij} \right| .
# $$
#
# Three choices hide in this formula, and each matters:
#
# * **the raw score $S_c$ (the logit), not the probability $p_c$.** The gradient of the softmax,
#   $\frac{\partial p_c}{\partial x} = p_c\big(\nabla S_c - \sum_k p_k \nabla S_k\big)$, mixes in
#   every other class: a pixel can raise $p_c$ just by lowering a competitor, and when the network
#   is sure ($p_c \to 1$) the whole gradient shrinks towards zero.
# * **the absolute value.** A pixel matters whether brightening it *or* darkening it changes the
#   score.
# * **the max over colour channels.** A pixel matters if any of its three colours does.
#
# One gradient, one backward pass: saliency is the cheapest method of this notebook.
#
# ### Exercise 1 · `saliency_map` (3 points)
#
# Implement `saliency_map(model, x, target)`:
#
# * `model` returns logits $(N, K)$; `x` is $(N, 3, H, W)$; `target` is an `int` (the same class for
#   every image) or an integer tensor of shape $(N,)$ (one class per image).
# * Return the maps $(N, H, W)$ as a tensor without autograd graph, on `x`'s device.
# * Work on a copy of the input that requires gradients, `x_ = x.detach().clone().requires_grad_(True)`,
#   so the caller's `x` is left exactly as it was (its `requires_grad` flag and its `.grad`).
# * Pick every image's own class score, $S_{t_n}(x_n)$ (`logits.gather(1, ...)` or indexing), and
#   add them up: each image's score depends only on its own pixels, so the gradient of the sum gives
#   every image its own gradient in one backward pass.
# * Get the gradient with `torch.autograd.grad(score, x_)`. Do **not** call `score.backward()`:
#   it would also fill the `.grad` of every model parameter that requires gradients, a side effect
#   the hidden tests check for.
# * Not allowed: the course's `ref.saliency_map` / `ref.input_gradient` or Captum.

# %% nbgrader="answer" id="saliency_map_answer"
def saliency_map(model, x, target):
    """Vanilla gradient saliency (Simonyan et al., 2014).

    model:  classifier, images (N, 3, H, W) -> logits (N, K)
    x:      images (N, 3, H, W)
    target: int, or int64 tensor (N,) with one class per image
    Returns (N, H, W): max over the colour channels of |d logit[n, target[n]] / d x[n]|.
    The caller's x (values, requires_grad, .grad) and the model's parameters stay untouched.
    """
    ### BEGIN SOLUTION
    x_ = x.detach().clone().requires_grad_(True)
    logits = model(x_)
    t = torch.as_tensor(target, device=logits.device).long().reshape(-1).expand(x.shape[0])
    score = logits.gather(1, t[:, None]).sum()
    (grad,) = torch.autograd.grad(score, x_)
    return grad.abs().amax(dim=1)
    ### END SOLUTION


# %% nbgrader="tests" id="saliency_map_test" points=2
# Tests for Exercise 1, part 1: one image, one class.
import torch
from helpers.images import load_image
from helpers.models import load_model
from helpers.testing.nets import TinyCNN
from helpers.testing.saliency import check_saliency_map

_x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
_m = check_saliency_map(saliency_map, TinyCNN(seed=0), _x, 3, "a small random CNN (one 16x16 image, class 3)")
assert bool((_m >= 0).all()), "a saliency map holds absolute values: it cannot be negative"
assert not _m.requires_grad, "return the map without autograd graph (it comes from torch.autograd.grad, so it has none)"

### BEGIN HIDDEN TESTS
_model, _cat = load_model(), load_image("chelsea", size=64)
check_saliency_map(saliency_map, _model, _cat, 285, "EfficientNet-Lite0, the cat at 64x64 px, class 285 (Egyptian cat)")
check_saliency_map(saliency_map, _model, _cat, 282, "EfficientNet-Lite0, the cat at 64x64 px, class 282 (tiger cat)")
_x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
check_saliency_map(saliency_map, TinyCNN(seed=1, activation="relu6", gain=2.0).double(), _x, 7, "a float64 CNN with ReLU6")
### END HIDDEN TESTS
print("Exercise 1, part 1: all visible tests passed.")

# %% nbgrader="tests" id="saliency_map_batch_test" points=1
# Tests for Exercise 1, part 2: a batch with one class per image; the caller's state.
import torch
from helpers.images import load_image
from helpers.models import load_model
from helpers.testing.nets import TinyCNN
from helpers.testing.saliency import check_leaves_state, check_saliency_map

_net = TinyCNN(seed=2)
_x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
check_saliency_map(saliency_map, _net, _x, torch.tensor([0, 4, 9]), "3 images, target = tensor([0, 4, 9])")
check_saliency_map(saliency_map, _net, _x, 5, "3 images and one int target (class 5 for all of them)")

### BEGIN HIDDEN TESTS
# the caller's x (values, requires_grad, .grad) and the model's parameters are left as they were
check_leaves_state(saliency_map, _net, _x[:2], torch.tensor([1, 2]))
_imgs = torch.cat([load_image("chelsea", size=64), load_image("coffee", size=64)])
check_saliency_map(saliency_map, load_model(), _imgs, torch.tensor([285, 967]),
                   "EfficientNet-Lite0, cat and coffee at 64 px, targets [285, 967]")
### END HIDDEN TESTS
print("Exercise 1, part 2: all visible tests passed.")


# %% [markdown]
# ### What the saliency maps show
#
# The reference `ref.saliency_map` computes the same maps. Bright pixels are those whose small
# changes move the class score most. Do the maps point at the object? To put a number on it, the
# cell measures the share of each map's total inside a box drawn around a part of the object
# (green in the overlays) and compares it with the box's share of the image: a map that
# concentrates on the part gives a ratio well above 1, a map spread evenly gives 1.

# %%
def box_share(m, box):
    """Share of the map m (H, W) inside box = (top, left, bottom, right), given as fractions of
    the image side, and the box's share of the image's area."""
    h, w = m.shape[-2:]
    t, l, b, r = round(box[0] * h), round(box[1] * w), round(box[2] * h), round(box[3] * w)
    return float(m[t:b, l:r].sum() / m.sum()), (b - t) * (r - l) / (h * w)


PARTS = [{"eye": (0.27, 0.38, 0.56, 0.69), "nose": (0.67, 0.74, 0.92, 1.0)},     # the cat
         {"cup": (0.04, 0.16, 0.67, 0.83), "spoon": (0.56, 0.54, 0.83, 0.78)}]  # the espresso
sal = ref.saliency_map(model, x, targets)                       # (2, SIZE, SIZE)
fig, axes = plt.subplots(2, 3, figsize=(10, 6.8), layout="constrained")
for i, name in enumerate(names):
    axes[i, 0].imshow(x[i].permute(1, 2, 0).cpu())
    axes[i, 0].set_title(f"{name}: {labels[int(targets[i])]}")
    top = float(sal[i].quantile(0.99))                          # clip the brightest 1 % for display
    axes[i, 1].imshow(sal[i].cpu(), cmap="gray", vmin=0, vmax=top)
    axes[i, 1].set_title("saliency map (clipped at its 99th percentile)", fontsize=9)
    show_heatmap(x[i:i + 1].cpu(), sal[i].clamp(max=top).cpu(), ax=axes[i, 2], cmap="inferno", alpha=0.6)
    axes[i, 2].set_title("overlay, with the parts' boxes", fontsize=9)
    for t, l, b, r in PARTS[i].values():
        axes[i, 2].add_patch(plt.Rectangle((l * SIZE, t * SIZE), (r - l) * SIZE, (b - t) * SIZE,
                                           fill=False, ec="lime", lw=1.5))
for ax in axes.flat:
    ax.set_axis_off()
plt.show()
for i, name in enumerate(names):
    for part, box in PARTS[i].items():
        mass, area = box_share(sal[i], box)
        print(f"{name:8s} {part:6s} box: {mass:4.0%} of the saliency on {area:4.0%} of the image "
              f"({mass / area:.1f} x its share)")

# %% [markdown]
# The maps are speckled — neighbouring pixels can have very different gradients — and they do
# **not** single out the parts a person would name. The cat's eye box holds a little *less* than
# its share of the saliency (the eye's sharp outline is even a dark ring), the nose box a little
# more; the rest is spread over fur, whiskers and the blurred background in the top-left corner.
# The espresso's map is somewhat more focused — the crema inside the cup and the saucer below it
# are brightest — but the cup's box still holds only about 1.2 times its share, and the spoon
# less than its share. One gradient says which pixels the score is *locally sensitive* to, which
# is not the same as "where the object is"; the next parts ask the question in other ways.

# %% [markdown]
# **Why the three ingredients?** The next figure takes them apart for the espresso (the network
# is 94 % sure of it). The signed gradient (summed over RGB; red: brightening the pixel
# raises the score, blue: lowers it) flips sign from pixel to pixel — a max without the absolute
# value would keep only the red half of the evidence. Mean and max over the channels look alike
# here; the max is the paper's choice ("a pixel matters if any colour does"). The gradient of the
# softmax probability is about twenty times *weaker* (printed below), as the formula above
# predicts for a confident prediction. Its map looks similar here (rank correlation below), but
# it answers a different question — it mixes in the gradients of the competing classes, and for a
# confident prediction it fades away.

# %%
cup = x[1:2]
g = ref.input_gradient(model, cup, ESPRESSO)                    # (1, 3, H, W) signed gradient of the logit
xg = cup.detach().clone().requires_grad_(True)
(g_prob,) = torch.autograd.grad(model(xg).softmax(1)[0, ESPRESSO], xg)
p_cup = float(probs[1, ESPRESSO])

fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), layout="constrained")
signed = g[0].sum(0)                                            # summed over RGB, keeps the sign
lim = float(signed.abs().quantile(0.99))
axes[0].imshow(signed.cpu(), cmap="RdBu_r", vmin=-lim, vmax=lim)
axes[0].set_title("signed gradient (sum over RGB)")
ratio = float(g_prob.abs().sum() / g.abs().sum())
maps = {"max |g| over RGB (saliency)": g.abs().amax(1)[0], "mean |g| over RGB": g.abs().mean(1)[0],
        f"softmax gradient, max |.| over RGB\n(own scale: {ratio:.0%} of the logit's)": g_prob.abs().amax(1)[0]}
for ax, (title, m) in zip(axes[1:], maps.items()):
    ax.imshow(m.cpu(), cmap="gray", vmin=0, vmax=float(m.quantile(0.99)))
    ax.set_title(title, fontsize=10)
for ax in axes:
    ax.set_axis_off()
plt.show()
print(f"|softmax gradient| / |logit gradient| = {ratio:.3f} (summed over all pixels); p(espresso) = {p_cup:.3f}")
print(f"rank correlation of the two maps: {float(ref.rank_correlation(maps['max |g| over RGB (saliency)'][None], g_prob.abs().amax(1))[0]):.2f}")


# %% [markdown]
# ## Part 2 · Occlusion: hide a patch, watch the probability
#
# Zeiler & Fergus ("Visualizing and Understanding Convolutional Networks", ECCV 2014) asked the
# question directly: cover part of the image with a grey square — does the network still see the
# class? Slide the square over the image and record, for every position, how much the class
# probability drops. No gradients are needed, only forward passes: occlusion works on *any*
# classifier. The price is one forward pass per patch position.
#
# Precisely, for patch size $k$ and stride $s$: the patches have their top-left corners at rows
# (and likewise columns) $0, s, 2s, \dots$ up to the first patch that reaches the bottom (right)
# border — in Python, `range(0, H - k + s, s)` — and a patch that sticks out past the border is
# cut off there. For each patch $w$, $x^{(w)}$ is the image with the patch's pixels (all three
# channels) set to the `fill` value, and
#
# $$
# d_w = \frac{p_t(x) - p_t(x^{(w)})}{p_t(x)}
# $$
#
# is the drop of the target probability **relative to the unoccluded probability** $p_t(x)$:
# $d_w = 1$ means the patch held all the evidence, $0$ no effect, negative values that hiding it
# makes the class *more* likely. Dividing by $p_t(x)$ puts maps of confident and unsure
# predictions on one scale. Patches overlap when $s < k$; a pixel's value is the **mean** of $d_w$
# over all patches that cover it:
#
# $$
# M_{ij} = \frac{1}{\#\{w \ni (i,j)\}} \sum_{w \ni (i, j)} d_w .
# $$
#
# The fill value 0.5 (mid grey) is what the network sees as 0 after its input normalisation
# $(x - 0.5)/0.5$: "no information".
#
# ### Exercise 2 · `occlusion_map` (4 points)
#
# Implement `occlusion_map(model, x, target, *, size, stride, fill=0.5, batch_size=64)` following the
# definition above, for square patches (`size`, `stride` are ints, `stride <= size`).
#
# * Return $(N, H, W)$ on `x`'s device. `target` is an int or a tensor of N classes.
# * **Batch**: put up to `batch_size` occluded copies of an image into one forward pass (one pass
#   per image and patch is far too slow). The tests count the passes: with $P$ patches and
#   $B$ = `batch_size`, at most $\lceil P / B \rceil$ passes per image, plus the pass(es) over
#   the clean images.
#   Copy, never write into `x` itself: `batch = x[n:n+1].repeat(B, 1, 1, 1)`, then set the patches.
# * Probabilities are `model(...).softmax(dim=1)`. Run everything under `torch.no_grad()`.
# * Suggested bookkeeping: a `total` map to which every patch adds its $d_w$ on its pixels, and a
#   `count` map that counts the patches per pixel; the answer is `total / count`.
# * Not allowed: `ref.occlusion_map` or Captum's `Occlusion`.

# %% nbgrader="answer" id="occlusion_map_answer"
def occlusion_map(model, x, target, *, size, stride, fill=0.5, batch_size=64):
    """Occlusion sensitivity (Zeiler & Fergus, 2014), normalised to the clean probability.

    model: classifier returning logits (N, K); x: images (N, 3, H, W); target: int or (N,) tensor.
    size, stride: square patch side and step in pixels (stride <= size); fill: value of hidden pixels.
    Patch corners at range(0, H - size + stride, stride) in both directions, cut off at the border.
    Returns (N, H, W): per pixel, the mean over the patches covering it of
        (p_t(x) - p_t(x with the patch filled)) / p_t(x),   p = softmax(model(.)).
    At most batch_size occluded images per forward pass; x is not modified.
    """
    ### BEGIN SOLUTION
    n, _, h, w = x.shape
    t = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(n)
    windows = [(top, left) for top in range(0, h - size + stride, stride)
               for left in range(0, w - size + stride, stride)]
    count = torch.zeros(h, w, dtype=x.dtype, device=x.device)
    for top, left in windows:
        count[top:top + size, left:left + size] += 1
    out = torch.zeros(n, h, w, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        p_clean = model(x).softmax(dim=1).gather(1, t[:, None])[:, 0]
        for i in range(n):
            for start in range(0, len(windows), batch_size):
                chunk = windows[start:start + batch_size]
                batch = x[i:i + 1].repeat(len(chunk), 1, 1, 1)
                for k, (top, left) in enumerate(chunk):
                    batch[k, :, top:top + size, left:left + size] = fill
                p = model(batch).softmax(dim=1)[:, t[i]]
                drop = (p_clean[i] - p) / p_clean[i]
                for k, (top, left) in enumerate(chunk):
                    out[i, top:top + size, left:left + size] += drop[k]
    return out / count
    ### END SOLUTION


# %% nbgrader="tests" id="occlusion_map_test" points=2
# Tests for Exercise 2, part 1: the definition.
import torch
from helpers.testing.nets import TinyCNN
from helpers.testing.saliency import TopHalf, check_occlusion_map

# By hand: a white 4x4 image, 2x2 patches of zeros that do not overlap. TopHalf's logit 0 is 10 x the
# mean of the top half (logit 1 = 0): hiding a patch there halves it (10 -> 5), so p drops from
# sigmoid(10) to sigmoid(5). Patches in the bottom half change nothing.
_p0, _p = torch.sigmoid(torch.tensor([10.0, 5.0], dtype=torch.float64))
_expected = torch.zeros(1, 4, 4, dtype=torch.float64)
_expected[:, :2] = (_p0 - _p) / _p0
check_occlusion_map(occlusion_map, TopHalf(), torch.ones(1, 3, 4, 4, dtype=torch.float64), 0,
                    "a white 4x4 image and a toy model (by hand)", size=2, stride=2, fill=0.0, expected=_expected)
# Overlapping patches on a small random CNN, compared with the definition written as loops.
_net = TinyCNN(seed=3)
check_occlusion_map(occlusion_map, _net, torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(3)), 2,
                    "a small random CNN (12x12 image)", size=4, stride=2)

### BEGIN HIDDEN TESTS
_x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(4))
for _t, _size, _stride, _fill, _what in [(6, 5, 3, 0.0, "patches cut off at the border"), (1, 4, 4, 0.8, "stride = size"),
                                         (9, 12, 12, 0.5, "one patch = the whole image"), (3, 3, 1, 0.25, "stride 1")]:
    check_occlusion_map(occlusion_map, _net, _x, _t, f"a 12x12 image, {_what}", size=_size, stride=_stride, fill=_fill)
check_occlusion_map(occlusion_map, _net, torch.rand(1, 3, 13, 13, generator=torch.Generator().manual_seed(5)), 4,
                    "a 13x13 image", size=4, stride=3)
### END HIDDEN TESTS
print("Exercise 2, part 1: all visible tests passed.")

# %% nbgrader="tests" id="occlusion_map_batch_test" points=2
# Tests for Exercise 2, part 2: batches of images and of patches.
import torch
from helpers import saliency as ref
from helpers.images import load_image
from helpers.models import load_model
from helpers.testing.nets import TinyCNN
from helpers.testing.saliency import check_occlusion_batches, check_occlusion_map

_net = TinyCNN(seed=4)
_x = torch.rand(2, 3, 12, 12, generator=torch.Generator().manual_seed(6))
# 12x12 images, size 4, stride 2: corners 0, 2, 4, 6, 8 -> 25 patches per image, at most 8 per pass
check_occlusion_map(occlusion_map, _net, _x, torch.tensor([1, 7]), "2 images with targets [1, 7]", size=4, stride=2,
                    batch_size=8)
check_occlusion_batches(occlusion_map, _net, _x, torch.tensor([1, 7]), size=4, stride=2, batch_size=8)

### BEGIN HIDDEN TESTS
check_occlusion_batches(occlusion_map, _net, _x[:1], 3, size=3, stride=1, batch_size=50)   # 100 patches
_model = load_model()
_imgs, _t = torch.cat([load_image("chelsea", size=64), load_image("coffee", size=64)]), torch.tensor([285, 967])
_expected = ref.occlusion_map(_model, _imgs, _t, size=16, stride=8, batch_size=49, progress=False)
check_occlusion_map(occlusion_map, _model, _imgs, _t, "EfficientNet-Lite0, cat and coffee at 64 px", size=16, stride=8,
                    batch_size=20, expected=_expected, atol=1e-4)
_expected = ref.occlusion_map(_model, _imgs[:1], 282, size=24, stride=16, fill=0.0, progress=False)
check_occlusion_map(occlusion_map, _model, _imgs[:1], 282, "EfficientNet-Lite0, the cat at 64 px, class 282", size=24,
                    stride=16, fill=0.0, expected=_expected, atol=1e-4)
### END HIDDEN TESTS
print("Exercise 2, part 2: all visible tests passed.")

# %% [markdown]
# ### Occlusion maps of the two pictures
#
# The reference `ref.occlusion_map` computes the same maps, batched (`progress=True` shows a bar).
# A patch of 32 pixels with stride 16 at 224 px means 13 × 13 = 169 patch positions: 169 forward
# passes per image, against one backward pass for a gradient. Red: hiding the patch lowers the
# probability of the class; blue: hiding it *raises* it.

# %%
OCC_SIZE, OCC_STRIDE = helpers.fast(full=(32, 16), fast=(32, 16))
t0 = time.perf_counter()
occ = ref.occlusion_map(model, x, targets, size=OCC_SIZE, stride=OCC_STRIDE, batch_size=64, progress=True)
n_patches = len(ref.occlusion_windows(SIZE, SIZE, OCC_SIZE, OCC_STRIDE))
print(f"{n_patches} patches per image, {time.perf_counter() - t0:.1f} s for both images")

fig, axes = plt.subplots(1, 4, figsize=(14, 3.9), layout="constrained")
for i, name in enumerate(names):
    lim = float(occ[i].abs().max())
    im = axes[2 * i].imshow(occ[i].cpu(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=axes[2 * i], shrink=0.8, label="relative drop d")
    axes[2 * i].set_title(f"{name}: occlusion map\n(red: hiding hurts '{labels[int(targets[i])]}')", fontsize=9)
    show_heatmap(x[i:i + 1].cpu(), occ[i].clamp(min=0).cpu(), ax=axes[2 * i + 1], cmap="inferno", alpha=0.55)
    axes[2 * i + 1].set_title("positive part over the image", fontsize=9)
for ax in axes:
    ax.set_axis_off()
plt.show()

# What do the strongest patches do? Hide the patch where each map is highest (reddest) and lowest (bluest).
windows = ref.occlusion_windows(SIZE, SIZE, OCC_SIZE, OCC_STRIDE)        # (top, left, h, w) per patch
for i, name in enumerate(names):
    means = torch.stack([occ[i, t:t + h, l:l + w].mean() for t, l, h, w in windows])
    extremes = {"reddest": windows[int(means.argmax())], "bluest": windows[int(means.argmin())]}
    hidden = x[i:i + 1].repeat(2, 1, 1, 1)
    for k, (t, l, h, w) in enumerate(extremes.values()):
        hidden[k, :, t:t + h, l:l + w] = 0.5
    with torch.no_grad():
        p_hidden = model(hidden).softmax(dim=1)
    print(f"{name}: map from {float(occ[i].min()):+.2f} to {float(occ[i].max()):+.2f}")
    print(f"  clean image:           {top3(probs[i])}")
    for k, (what, (t, l, h, w)) in enumerate(extremes.items()):
        print(f"  {what + ' patch hidden:':22s} {top3(p_hidden[k])}   (rows {t}-{t + h}, columns {l}-{l + w})")

# %% [markdown]
# Two things to notice. **No single patch matters much.** A 32-pixel patch hides 2 % of the image,
# and a network that sees the whole object has evidence to spare. For the espresso the red patches
# lie on the crema, and hiding the reddest one lowers p(espresso) only from 94 % to 79 %
# (printed); elsewhere the map is close to zero. **For the cat the map is as much blue as red.**
# Hiding the striped fur left of the eye lowers "Egyptian cat" (65 % → 58 %), but hiding the eye
# and the fur between eye and nose *raises* it (→ 81 %), and in both cases the probability moves
# to or from "tiger cat" and "tabby". The three classes are near-synonyms that share most of their
# evidence (stripes, fur, eyes); here the eye region speaks more for "tiger cat" and "tabby" than
# for "Egyptian cat". Occlusion measures exactly what it says, the change of *one* class
# probability: between competing classes it shows which parts make the cat an *Egyptian* cat
# rather than a tiger cat, which is not the same as "where is the cat".
#
# The patch size sets what the map can see: small patches give fine maps but each hides too
# little to matter when the evidence is redundant; large patches hide whole parts but give coarse
# maps. The cost grows with the number of positions. Below: three patch sizes on the cat, each on
# its own symmetric colour scale (the range of $d$ is in each title; stride = patch size: no
# overlap, to keep it quick). Even a 112-pixel patch, a quarter of the image, moves
# p(Egyptian cat) by no more than about 10 %: the evidence is spread over the whole face.

# %%
cat = x[:1]
patch_sizes = [SIZE // 8, SIZE // 4, SIZE // 2]                # 28, 56, 112 px at 224
fig, axes = plt.subplots(1, len(patch_sizes) + 1, figsize=(13, 3.5), layout="constrained")
axes[0].imshow(cat[0].permute(1, 2, 0).cpu())
axes[0].set_title(f"cat at {SIZE} px")
for ax, k in zip(axes[1:], patch_sizes):
    stride = k
    n_pos = len(ref.occlusion_windows(SIZE, SIZE, k, stride))
    m = ref.occlusion_map(model, cat, CAT, size=k, stride=stride, batch_size=64, progress=True)[0]
    lim = float(m.abs().max())
    ax.imshow(m.cpu(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(f"patch {k} px, stride {stride}: {n_pos} forward passes\n"
                 f"d from {float(m.min()):+.2f} to {float(m.max()):+.2f}", fontsize=9)
for ax in axes:
    ax.set_axis_off()
plt.show()


# %% [markdown]
# ## Part 3 · Guided backpropagation
#
# Gradient maps are noisy partly because of *cancellation*: the gradient reaching a pixel is a sum
# over many paths through the network, some positive, some negative. Springenberg et al.
# ("Striving for Simplicity: The All Convolutional Net", ICLR workshop 2015) changed the backward
# pass of every rectifier so that only *positive* signals flow back. For $y = \mathrm{ReLU}(z)$ with
# incoming gradient $\bar y = \partial S / \partial y$:
#
# | rule | $\bar z$ = what flows back to $z$ |
# |---|---|
# | backpropagation (the true gradient) | $\bar y \, [z > 0]$ |
# | "deconvnet" (Zeiler & Fergus, 2014) | $\bar y \, [\bar y > 0]$ |
# | **guided backpropagation** | $\bar y \, [z > 0] \, [\bar y > 0]$ |
#
# Guided backprop is not the gradient of anything — it is a visualisation rule (a "total hack" in
# the lecture's words) that keeps only the paths along which the image *excites* the class.
#
# **ReLU6.** EfficientNet-Lite does not use ReLU but $\mathrm{ReLU6}(z) = \min(\max(z, 0), 6)$,
# which is flat above 6 as well as below 0. Its true gradient is $\bar y\,[0 < z < 6]$, so the
# guided rule becomes
#
# $$
# \bar z = \bar y \;[0 < z < 6]\; [\bar y > 0] = \max(\bar y, 0)\,[0 < z < 6].
# $$
#
# (A unit saturated at 6 passes nothing back, exactly as a unit below 0.)
#
# **How to change a backward pass: hooks.** PyTorch lets you attach functions to a module.
# `module.register_full_backward_hook(hook)` calls `hook(module, grad_input, grad_output)` during
# the backward pass, where `grad_output` holds $\bar y$ and `grad_input` holds $\bar z$ *as autograd
# computed it*, i.e. already multiplied by the mask ($[z > 0]$ for ReLU, $[0 < z < 6]$ for ReLU6). If
# the hook returns a tuple, it replaces `grad_input`. Registering returns a handle;
# `handle.remove()` takes the hook off again. **Hooks must always be removed** — also when the
# forward or backward pass raises an error — or the model stays modified for everyone who uses it
# afterwards. That is what `try: ... finally: ...` is for.
#
# ### Exercise 3 · `guided_backprop` (4 points)
#
# Implement `guided_backprop(model, x, target)`: the guided gradient of the target logit with
# respect to the image, shape $(N, 3, H, W)$ (signed, like the gradient — no absolute value, no max).
#
# * Register a full backward hook on every `nn.ReLU` and `nn.ReLU6` module of the model
#   (`model.modules()`) that applies the guided rule above.
# * Then compute the gradient as in Exercise 1 (fresh copy of `x`, `torch.autograd.grad`).
# * Remove every hook in a `finally:` block, so that none survives, even when the model raises.
# * Not allowed: `ref.guided_backprop`, `ref.guided_relus`, `ref.neuron_gradient` or Captum.

# %% nbgrader="answer" id="guided_backprop_answer"
def guided_backprop(model, x, target):
    """Guided backpropagation (Springenberg et al., 2015) of the target logit to the pixels.

    At every nn.ReLU / nn.ReLU6 module the backward pass lets through only positive gradients,
    and only where the forward input z was in the linear range (z > 0 for ReLU, 0 < z < 6 for ReLU6).
    model: classifier returning logits (N, K); x: (N, 3, H, W); target: int or (N,) tensor.
    Returns (N, 3, H, W). No hook is left on the model afterwards, even if the model raises.
    """
    ### BEGIN SOLUTION
    def hook(module, grad_input, grad_output):
        # grad_input[0] = grad_output[0] * (mask of the linear range): keep its positive part
        return (grad_input[0].clamp(min=0),)

    handles = []
    try:
        for module in model.modules():
            if isinstance(module, (nn.ReLU, nn.ReLU6)):
                handles.append(module.register_full_backward_hook(hook))
        x_ = x.detach().clone().requires_grad_(True)
        logits = model(x_)
        t = torch.as_tensor(target, device=logits.device).long().reshape(-1).expand(x.shape[0])
        (grad,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), x_)
    finally:
        for handle in handles:
            handle.remove()
    return grad
    ### END SOLUTION


# %% nbgrader="tests" id="guided_backprop_test" points=2
# Tests for Exercise 3, part 1: the guided rule at ReLUs.
import torch
from helpers.testing.nets import TinyCNN
from helpers.testing.saliency import check_guided_backprop, check_guided_by_hand, check_leaves_state

# By hand: x = (0.5, 0.5, 0.5) -> Linear(3, 4) -> ReLU -> Linear(4, 2) (helpers.testing.saliency.two_layer):
# pre-activations z = (-0.5, 2, 8, 2.5), gradient of logit 0 arriving at the ReLU g = (3, -2, 5, 1):
#   guided: g * [z > 0] * [g > 0] = (0, 0, 5, 1) -> dx = W1^T (0, 0, 5, 1) = (1, 1, 21)
check_guided_by_hand(guided_backprop, torch.nn.ReLU, [1.0, 1.0, 21.0])
_net = TinyCNN(seed=5)
check_guided_backprop(guided_backprop, _net, torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5)),
                      torch.tensor([3, 8]), "a small random ReLU CNN, 2 images, targets [3, 8]")

### BEGIN HIDDEN TESTS
check_guided_backprop(guided_backprop, TinyCNN(seed=6), torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(6)),
                      0, "a small random ReLU CNN, 20x20")
check_leaves_state(guided_backprop, _net, torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(7)), 4)
### END HIDDEN TESTS
print("Exercise 3, part 1: all visible tests passed.")

# %% nbgrader="tests" id="guided_backprop_relu6_test" points=2
# Tests for Exercise 3, part 2: ReLU6, the pretrained network, hooks always removed.
import torch
from helpers.images import load_image
from helpers.models import load_model
from helpers.testing.nets import TinyCNN
from helpers.testing.saliency import check_guided_backprop, check_guided_by_hand, check_hooks_removed_on_error

# By hand, ReLU6 (same net): the unit with z = 8 is saturated (flat), so it passes nothing back either:
#   guided: g * [0 < z < 6] * [g > 0] = (0, 0, 0, 1) -> dx = (1, 1, 1)
check_guided_by_hand(guided_backprop, torch.nn.ReLU6, [1.0, 1.0, 1.0])
check_guided_backprop(guided_backprop, TinyCNN(seed=7, activation="relu6", gain=2.0),
                      torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(8)), 5,
                      "a small random ReLU6 CNN (many units above 6)")

### BEGIN HIDDEN TESTS
_imgs = torch.cat([load_image("chelsea", size=64), load_image("coffee", size=64)])
check_guided_backprop(guided_backprop, load_model(), _imgs, torch.tensor([285, 967]),
                      "EfficientNet-Lite0 (ReLU6), cat and coffee at 64 px", rtol=1e-4)
check_hooks_removed_on_error(guided_backprop)   # a model whose forward pass fails half-way
### END HIDDEN TESTS
print("Exercise 3, part 2: all visible tests passed.")

# %% [markdown]
# ### Gradient vs. guided backprop
#
# Signed gradient images are shown with grey = 0 (`ref.attribution_image`: $\frac12 + a/(2q)$,
# $q$ = 99.5th percentile of $|a|$, clipped). Below the figure, three numbers per picture: how
# much of the display is plain grey, how much stronger the map is on the pixels at even rows and
# even columns than on those at odd rows and odd columns (1 for a map without a grid pattern), and
# the share of the map in the boxes of the object's parts from the saliency figure.

# %%
grad = ref.input_gradient(model, x, targets)
guided = ref.guided_backprop(model, x, targets)
fig, axes = plt.subplots(2, 4, figsize=(13, 6.8), layout="constrained")
for i, name in enumerate(names):
    panels = [(x[i].permute(1, 2, 0), f"{name}: {labels[int(targets[i])]}"),
              (ref.attribution_image(grad[i:i + 1])[0].permute(1, 2, 0), "gradient"),
              (ref.attribution_image(guided[i:i + 1])[0].permute(1, 2, 0), "guided backprop"),
              (ref.to_map(guided[i:i + 1])[0], "guided backprop: max |.| over RGB")]
    for ax, (img, title) in zip(axes[i], panels):
        kw = dict(cmap="gray", vmax=float(img.quantile(0.995))) if img.ndim == 2 else {}
        ax.imshow(img.cpu(), **kw)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
plt.show()

for i, name in enumerate(names):
    for method, a in (("gradient", grad[i:i + 1]), ("guided backprop", guided[i:i + 1])):
        grey = float(((ref.attribution_image(a) - 0.5).abs().amax(1) < 0.1).float().mean())
        m = ref.to_map(a)[0]
        grid = float(m[0::2, 0::2].mean() / m[1::2, 1::2].mean())
        parts = ", ".join(f"{part} {box_share(m, b)[0] / box_share(m, b)[1]:.1f} x" for part, b in PARTS[i].items())
        print(f"{name:8s} {method:16s}: {grey:.0%} of the pixels within 10 % of grey; even/odd pixels "
              f"{grid:.1f} : 1; share in the boxes: {parts}")

# %% [markdown]
# The plain gradient looks like coloured noise with only a faint trace of the object. Guided
# backprop is cleaner, but it is no photograph either: most of its picture is flat grey, and what
# stands out are thin, faint outlines — the eye's iris and pupil and the nose of the cat; the rim,
# handle, spoon and saucer of the espresso — laid over a fine checkerboard. The pixels at even rows
# and columns get about twice the magnitude of those at odd ones (printed): a trace of the
# network's stride-2 convolutions, whose backward pass reaches neighbouring pixels unequally.
# What guided backprop does well is *concentrate*: it puts about 2.3 times its share into the
# cat's eye box, where the gradient puts 0.8 times. Whether those outlines say anything about the
# *class* is the question of Part 6.

# %% [markdown]
# ### Intermediate neurons: what does one unit respond to?
#
# The same tools work for any unit inside the network, not only for class scores.
# `ref.neuron_gradient(model, x, (c, i, j), layer=..., guided=...)` differentiates one activation
# $A_{c,i,j}$ of a layer with respect to the image. A unit sees only its **receptive field** — its
# gradient is exactly zero outside it — and in practice most of the gradient sits in a much smaller
# central part, the *effective* receptive field. For five layers we take the unit over the cat's
# eye in the channel that responds most strongly there, and show the square around it that
# holds 90 % of the gradient's magnitude: the image, the plain gradient and the guided one. Early
# units see a few pixels of edge and colour; the deeper the layer, the larger the region (the 90 %
# square grows from about 13 to about 200 pixels, see the titles), and from `stages.3` on the
# guided picture shows a whole part, the eye's iris and pupil — even at `stages.5`, whose field
# covers the whole image.

# %%
unit_layers = ["stages.1", "stages.2", "stages.3", "stages.4", "stages.5"]
EYE = (0.41, 0.53)                                              # the cat's eye, as fractions of (H, W)
acts = features(model, cat, unit_layers, detach=True)
yy, xx = torch.meshgrid(torch.arange(SIZE, device=device), torch.arange(SIZE, device=device), indexing="ij")
fig, axes = plt.subplots(3, len(unit_layers), figsize=(14, 8.6), layout="constrained")
for col, layer in enumerate(unit_layers):
    a = acts[layer][0]                                          # (C, h, w)
    i, j = int(EYE[0] * a.shape[1]), int(EYE[1] * a.shape[2])
    c = int(a[:, i, j].argmax())                                # the channel that fires most over the eye
    plain = ref.neuron_gradient(model, cat, (c, i, j), layer=layer)
    guided_u = ref.neuron_gradient(model, cat, (c, i, j), layer=layer, guided=True)
    mass = plain[0].abs().sum(0)                                # (H, W)
    rows, cols = torch.nonzero(mass > 0, as_tuple=True)
    rf = (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1)
    cy, cx = int((mass * yy).sum() / mass.sum()), int((mass * xx).sum() / mass.sum())
    for r in range(1, SIZE):                                    # grow a square until it holds 90 %
        r0, r1, c0, c1 = max(0, cy - r), min(SIZE, cy + r + 1), max(0, cx - r), min(SIZE, cx + r + 1)
        if float(mass[r0:r1, c0:c1].sum()) >= 0.9 * float(mass.sum()):
            break
    crops = [cat[0, :, r0:r1, c0:c1], ref.attribution_image(plain[:, :, r0:r1, c0:c1])[0],
             ref.attribution_image(guided_u[:, :, r0:r1, c0:c1])[0]]
    for row, (img, title) in enumerate(zip(crops, ("image", "gradient", "guided backprop"))):
        axes[row, col].imshow(img.permute(1, 2, 0).cpu())
        axes[row, col].set_title(title, fontsize=9)
        axes[row, col].set_axis_off()
    axes[0, col].set_title(f"{layer}, unit ({c}, {i}, {j})\nfield {rf[0]}x{rf[1]} px, 90 % in {r1 - r0}x{c1 - c0}",
                           fontsize=9)
plt.show()


# %% [markdown]
# ## Part 4 · Grad-CAM: where is the class evidence in the last feature map?
#
# Pixel-level methods answer "which pixels", but they are poor at "which *object*": ask the
# gradient about "cat" and about "espresso" in a picture holding both, and you get similar edge
# maps. Selvaraju et al. ("Grad-CAM", ICCV 2017) look at a late convolutional layer instead, whose
# channels $A^k$ ($h \times w$ maps) detect object parts and still know *where* they are. Each
# channel gets a weight — the spatial **average** of the gradient of the class logit with respect
# to it — and the map is the weighted sum of the channels, keeping only the positive part:
#
# $$
# \alpha_k = \frac{1}{hw} \sum_{i,j} \frac{\partial S_t}{\partial A^k_{ij}}, \qquad
# L = \mathrm{ReLU}\Big(\sum_k \alpha_k A^k\Big) \in \mathbb{R}^{h \times w}.
# $$
#
# $\alpha_k$ says how much channel $k$ matters for class $t$; $A^k$ says where channel $k$ fires;
# the ReLU keeps the regions that speak *for* the class (negative values mostly belong to other
# classes). The $h \times w$ map (7 × 7 for the `head` of EfficientNet-Lite0 at 224 px) is finally
# resized to the image with bilinear interpolation. Grad-CAM is class-discriminative but coarse;
# multiplying it with guided backprop ("Guided Grad-CAM") gives maps that are both.
#
# ### Exercise 4 · `grad_cam` (4 points)
#
# Implement `grad_cam(model, x, target, *, layer="head")`:
#
# 1. `module = model.get_submodule(layer)` (`layer` is a name such as `"head"` or `"stages.4"`);
#    register a **forward hook** on it that stores the module's output $A$ $(N, K, h, w)$; run the
#    model on a copy of `x` that requires gradients; remove the hook (in a `finally:` block).
#    Why must the copy require gradients? The model's parameters are frozen, so without it nothing
#    in the forward pass requires gradients, $A$ included.
# 2. $G = \partial \big(\sum_n S_{t_n}\big) / \partial A$ with `torch.autograd.grad` (with respect to
#    $A$, not the image).
# 3. $\alpha$ = mean of $G$ over the two spatial dimensions, $L = \mathrm{ReLU}(\sum_k \alpha_k A^k)$.
# 4. Resize $L$ to the image size with
#    `F.interpolate(L[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)` — *after*
#    the ReLU — and return it as $(N, H, W)$ without autograd graph. No other normalisation.
#
# Not allowed: `ref.grad_cam` or Captum's `LayerGradCam` / `GuidedGradCam`.

# %% nbgrader="answer" id="grad_cam_answer"
def grad_cam(model, x, target, *, layer="head"):
    """Grad-CAM (Selvaraju et al., 2017) at the named layer, resized to the image.

    alpha_k = mean over (i, j) of d logit[n, target[n]] / d A[n, k, i, j]
    L = ReLU(sum_k alpha_k A[n, k]),  then bilinear resize (align_corners=False) to x's H x W.
    model: classifier returning logits; x: (N, 3, H, W); target: int or (N,) tensor; layer: a name.
    Returns (N, H, W). No hook is left on the model afterwards.
    """
    ### BEGIN SOLUTION
    module = model.get_submodule(layer)
    stored = {}

    def hook(mod, inputs, output):
        stored["A"] = output

    handle = module.register_forward_hook(hook)
    try:
        x_ = x.detach().clone().requires_grad_(True)
        logits = model(x_)
    finally:
        handle.remove()
    A = stored["A"]
    t = torch.as_tensor(target, device=logits.device).long().reshape(-1).expand(x.shape[0])
    (G,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), A)
    alpha = G.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * A).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].detach()
    ### END SOLUTION


# %% nbgrader="tests" id="grad_cam_test" points=2
# Tests for Exercise 4, part 1: the last layer.
import torch
from helpers.images import load_image
from helpers.models import load_model
from helpers.testing.nets import TinyCNN
from helpers.testing.saliency import check_grad_cam

_x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(9))
# TinyCNN's layers: conv1 act1 conv2 act2 conv3 act3 pool flatten classifier
check_grad_cam(grad_cam, TinyCNN(seed=9), _x, 2, "act3", "a small random CNN (act3 is 8x8)")
_model, _cat = load_model(), load_image("chelsea", size=96)
check_grad_cam(grad_cam, _model, _cat, 285, "head", "EfficientNet-Lite0, the cat at 96 px, class 285 (head is 3x3 here)")

### BEGIN HIDDEN TESTS
for _t, _name in [(504, "coffee mug"), (967, "espresso")]:
    check_grad_cam(grad_cam, _model, _cat, _t, "head", f"EfficientNet-Lite0, the cat at 96 px, class {_t} ({_name})")
_x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
check_grad_cam(grad_cam, TinyCNN(seed=10).double(), _x, 6, "conv3", "a float64 CNN, before its last ReLU (conv3)")
### END HIDDEN TESTS
print("Exercise 4, part 1: all visible tests passed.")

# %% nbgrader="tests" id="grad_cam_layers_test" points=2
# Tests for Exercise 4, part 2: other layers, batches, the caller's state.
import torch
from helpers.images import load_image
from helpers.models import load_model
from helpers.testing.nets import TinyCNN
from helpers.testing.saliency import check_grad_cam, check_leaves_state

_net = TinyCNN(seed=11)
_x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(11))
check_grad_cam(grad_cam, _net, _x, torch.tensor([1, 4]), "act2", "2 images, targets [1, 4], layer act2")
_model, _cat = load_model(), load_image("chelsea", size=96)
check_grad_cam(grad_cam, _model, _cat, 285, "stages.4", "EfficientNet-Lite0, the cat at 96 px (stages.4 is 6x6 here)")

### BEGIN HIDDEN TESTS
_imgs = torch.cat([_cat, load_image("coffee", size=96)])
for _t, _layer in [([285, 967], "stages.6"), ([282, 504], "stages.3.1.depthwise")]:
    check_grad_cam(grad_cam, _model, _imgs, torch.tensor(_t), _layer, "EfficientNet-Lite0, cat and coffee at 96 px")
check_leaves_state(grad_cam, _net, _x, 3, layer="conv2")
### END HIDDEN TESTS
print("Exercise 4, part 2: all visible tests passed.")

# %% [markdown]
# ### Grad-CAM on the two pictures, and on both at once
#
# Top row: Grad-CAM at the `head` for the predicted classes. Bottom rows: the cat and the coffee
# side by side in one image, explained once for "Egyptian cat" and once for "espresso" — by the
# gradient, by guided backprop, by Grad-CAM, and by their product (Guided Grad-CAM).

# %%
cams = ref.grad_cam(model, x, targets, layer="head")
fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6), layout="constrained")
for i, name in enumerate(names):
    show_heatmap(x[i:i + 1].cpu(), cams[i].cpu(), ax=axes[i], alpha=0.5,
                 title=f"Grad-CAM: {labels[int(targets[i])]}")
plt.show()

pair = torch.cat([x[0:1], x[1:2]], dim=3)                       # (1, 3, SIZE, 2 * SIZE)
with torch.no_grad():
    p_pair = model(pair).softmax(1)[0]
fig, axes = plt.subplots(2, 4, figsize=(15, 4.4), layout="constrained")
for row, cls in enumerate((CAT, ESPRESSO)):
    s = ref.saliency_map(model, pair, cls)[0]
    gb = ref.guided_backprop(model, pair, cls)
    cam = ref.grad_cam(model, pair, cls, layer="head")
    ggc = ref.to_map(gb * cam[:, None])[0]                      # Guided Grad-CAM
    axes[row, 0].imshow(s.cpu(), cmap="gray", vmax=float(s.quantile(0.99)))
    axes[row, 1].imshow(ref.attribution_image(gb)[0].permute(1, 2, 0).cpu())
    show_heatmap(pair.cpu(), cam[0].cpu(), ax=axes[row, 2], alpha=0.5)
    axes[row, 3].imshow(ggc.cpu(), cmap="gray", vmax=float(ggc.quantile(0.995)))
    for ax, title in zip(axes[row], ("saliency", "guided backprop", "Grad-CAM", "Guided Grad-CAM")):
        ax.set_title(f"{title}: '{labels[cls]}' (p = {float(p_pair[cls]):.2f})", fontsize=9)
        ax.set_axis_off()
    shares = {"saliency": s, "guided backprop": ref.to_map(gb)[0], "Grad-CAM": cam[0], "Guided Grad-CAM": ggc}
    print(f"asked about '{labels[cls]}', share of the map on the cat's half:",
          ", ".join(f"{k} {float(m[:, :SIZE].sum() / m.sum()):.0%}" for k, m in shares.items()))
plt.show()
print("the pair's top-3:", top3(p_pair))

# %% [markdown]
# Grad-CAM moves from one object to the other when the class changes: 96 % of its map lies on
# the cat's half when we ask about "Egyptian cat", 5 % when we ask about "espresso" (printed).
# Saliency and guided backprop shift some of their weight (from 60 % and 70 % on the cat's half to
# 37 % and 43 %), but both keep drawing both objects: the cat's eye stays the brightest spot of the
# guided map even when we ask about the espresso — a first hint of what the sanity check in Part 6
# will show. (The pair is a strange picture for the network — neither class gets more than 7 % —
# but each method is asked about one class's logit all the same.)
#
# **Which layer?** Grad-CAM needs a layer with spatial resolution *and* class-specific channels.
# Earlier layers give finer maps that are less specific to the class: at `stages.3` and `stages.4`
# small spots on the eye, the nose and the fur. `stages.5` is a *linear* bottleneck (no ReLU6
# after it, signed activations): after the final ReLU most of its map is zero (the title counts the
# positive cells), and what is left sits in two corners. `stages.6` and the `head` give one blob
# over the face. A comparison on the cat:

# %%
cam_layers = ["stages.3", "stages.4", "stages.5", "stages.6", "head"]
fig, axes = plt.subplots(1, len(cam_layers), figsize=(15, 3.3), layout="constrained")
for ax, layer in zip(axes, cam_layers):
    small = ref.grad_cam(model, cat, CAT, layer=layer, upsample=False)
    big = ref.grad_cam(model, cat, CAT, layer=layer)
    show_heatmap(cat.cpu(), big[0].cpu(), ax=ax, alpha=0.5)
    positive = int((small > 0).sum())
    ax.set_title(f"{layer}: {small.shape[-2]}x{small.shape[-1]}, {positive} of {small[0].numel()} cells > 0",
                 fontsize=9)
plt.show()

# %% [markdown]
# **Question 1** (2 points). Compare the four methods of Parts 1–4 on the figures above.
# (a) Which of them are *class-discriminative* (the map changes with the class asked about), and
# why does Grad-CAM have this property while guided backprop does not? (b) Fill in, for one
# 224 × 224 image: how many forward and backward passes does each method need (occlusion with
# 32-pixel patches and stride 16), and at what resolution is its map really computed? (c) You
# suspect a classifier relies on a copyright watermark in the bottom-right corner of its training
# photos. Which method would you use to check, and why?

# %% [markdown] nbgrader="manual" id="question_1" points=2
# ### BEGIN SOLUTION
# Model answer (2 points: (a) 1, (b)+(c) 1; accept other sound arguments):
#
# (a) Grad-CAM (and Guided Grad-CAM, which inherits it) and occlusion are class-discriminative:
# in the cat+coffee image Grad-CAM for "Egyptian cat" covers the cat and for "espresso" the cup.
# Occlusion measures the change of *that class's* probability, so it is class-specific by
# construction. Vanilla saliency and guided backprop shift some weight (on the cat's half: 60 % →
# 37 % and 70 % → 43 %; Grad-CAM: 96 % → 5 %), but both keep drawing both objects — the cat's eye
# stays the brightest spot of guided backprop when we ask about "espresso". Grad-CAM weights
# whole channels of a late layer by their average importance for the class and then uses *where*
# those channels fire: channels that detect the other object get small or negative weights and
# are removed by the ReLU. Guided backprop zeroes every negative signal at every ReLU on the way
# back, so the class-specific (signed) information of the last layers is mostly discarded; what
# remains is dominated by the forward masks, i.e. by image edges the network is active on —
# almost the same picture for any class.
#
# (b) Saliency: 1 forward + 1 backward, pixel resolution (224 × 224). Guided backprop: the same.
# Occlusion: 13 × 13 = 169 patch positions + 1 clean image = 170 forward passes, no backward;
# resolution set by the patch and stride (a 16-pixel grid, blurred by the 32-pixel patches).
# Grad-CAM: 1 forward + 1 (partial) backward; resolution of the layer, 7 × 7 at the head, upsampled.
#
# (c) Occlusion (or Grad-CAM as a quick look): hide the corner and watch the probability. A large
# drop when only the watermark is covered is direct, causal evidence that the decision depends on
# it; gradients only say the score is locally *sensitive* to those pixels, which can be true of
# irrelevant pixels too. (One could also paste the watermark into other images and see whether it
# raises the class — the same perturbation logic.)
# ### END SOLUTION

# %% [markdown]
# ## Part 5 · From saliency to segmentation
#
# Simonyan et al. noticed that saliency maps, trained only with image-level labels, locate the
# object well enough to *segment* it — "weakly supervised" segmentation. The map is too speckled
# to threshold directly, so they used it only to *seed* GrabCut (Rother et al., 2004), a classic
# colour-based segmentation: pixels with saliency above the 95th percentile of the image's map are
# taken as sure foreground, those below the 30th percentile as sure background; GrabCut fits a
# colour model (a Gaussian mixture) to each and cuts the image where the colours change, preferring
# short boundaries. `ref.grabcut_mask` runs OpenCV's `cv2.grabCut` this way.
#
# The vanilla saliency map is speckled, and even blurred it puts its top 5 % in scattered spots,
# some of them on the background. **SmoothGrad** (Smilkov et al., 2017: the saliency averaged over
# copies of the image with a little Gaussian noise added, `ref.smoothgrad`) averages much of the
# speckle away. Two pictures, both kinds of seeds:

# %%
seg_names = ["coffee", "motorcycle"]
seg_x = torch.cat([load_image(n, size=SIZE) for n in seg_names]).to(device)
with torch.no_grad():
    seg_t = model(seg_x).argmax(1)
samples = helpers.fast(full=16, fast=8)
maps = {"saliency": ref.saliency_map(model, seg_x, seg_t),
        f"SmoothGrad ({samples} samples)": ref.smoothgrad(model, seg_x, seg_t, samples=samples, progress=True)}

fig, axes = plt.subplots(2, 5, figsize=(15, 6.4), layout="constrained")
seed_colours = torch.tensor([[0.1, 0.1, 0.5], [1.0, 0.85, 0.0], [0.55, 0.55, 0.55]])   # sure bg, sure fg, unknown
for i, name in enumerate(seg_names):
    axes[i, 0].imshow(seg_x[i].permute(1, 2, 0).cpu())
    axes[i, 0].set_title(f"{name}: {labels[int(seg_t[i])]}", fontsize=10)
    for k, (kind, m) in enumerate(maps.items()):
        smooth = gaussian_blur(m[i:i + 1, None].cpu(), 3.0)[:, 0]
        seeds = ref.grabcut_seeds(smooth)[0]
        mask = ref.grabcut_mask(seg_x[i:i + 1].cpu(), m[i:i + 1].cpu(), blur_sigma=3.0)[0]
        axes[i, 1 + 2 * k].imshow(seed_colours[seeds])
        axes[i, 1 + 2 * k].set_title(f"{kind}: seeds\n(yellow: top 5 %, blue: bottom 30 %)", fontsize=9)
        axes[i, 2 + 2 * k].imshow((seg_x[i].cpu() * mask + 0.15 * ~mask).permute(1, 2, 0).clamp(0, 1))
        axes[i, 2 + 2 * k].set_title(f"{kind}: GrabCut mask", fontsize=9)
        print(f"{name:10s} {kind:22s}: the mask covers {float(mask.float().mean()):.0%} of the image")
for ax in axes.flat:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# With the vanilla seeds GrabCut finds the inside of the cup for the espresso, but for the moped it
# returns mostly the white door in the top-left corner (among the most salient pixels), a red box
# from the background and a piece of the engine — 9 % of the image (printed). With the SmoothGrad
# seeds, which sit on the engine and the frame, the mask covers most of the moped (41 %; part of
# the front wheel is lost), and for the espresso it adds the handle and the spoon to the cup. (Other
# noise seeds of SmoothGrad give much the same masks.) No pixel-level labels were used: the network
# was trained to say *what* is in the picture, and the saliency map plus a colour model recover
# *where*. The result is only as good as the seeds, and GrabCut errs where object and background
# share colours — the red box behind the moped comes along with it.
#
# ## Part 6 · Going further
#
# ### 6.1 SmoothGrad and integrated gradients
#
# Two widely used refinements of the gradient:
#
# * **SmoothGrad** (Smilkov et al., 2017) averages $|\nabla_x S_t|$ over $n$ noisy copies
#   $x + \varepsilon$, $\varepsilon \sim \mathcal N(0, \sigma^2)$, $\sigma$ = 15 % of the image's
#   value range. The gradient of a ReLU network jumps from pixel to pixel; the average is smoother.
# * **Integrated gradients** (Sundararajan, Taly & Yan, ICML 2017) average the gradient along the
#   straight path from a *baseline* $x'$ (here black, or a blurred copy of the image) to $x$, and
#   multiply by the difference:
#   $\mathrm{IG}_i = (x_i - x'_i)\int_0^1 \partial_i S_t(x' + \alpha(x - x'))\,d\alpha$.
#   The attributions add up to the change of the score, $\sum_i \mathrm{IG}_i = S_t(x) - S_t(x')$
#   ("completeness") — the gradient alone has no such bookkeeping. The integral is a quadrature
#   over `steps` points (Gauss–Legendre by default), and its error can be large: the first plot
#   below shows the score along the two paths. Most of the change happens in the first few percent
#   of the path, in a jump that a quadrature with few points can easily misjudge.

# %%
black = torch.zeros_like(cat)
blurred = gaussian_blur(cat.cpu(), 8.0).to(device)
alphas = torch.linspace(0, 1, 41, device=device)
fig, ax = plt.subplots(figsize=(7, 2.8), layout="constrained")
with torch.no_grad():
    for name, base in (("black baseline", black), ("blurred baseline", blurred)):
        path = base + alphas.view(-1, 1, 1, 1) * (cat - base)   # 41 images from x' to x
        ax.plot(alphas.cpu(), model(path)[:, CAT].cpu(), ".-", label=name)
ax.set_xlabel("alpha (0: baseline, 1: the image)")
ax.set_ylabel("logit of 'Egyptian cat'")
ax.legend()
plt.show()

steps = helpers.fast(full=32, fast=32)
ig_black = ref.integrated_gradients(model, cat, CAT, baseline=black, steps=steps, batch_size=32)
ig_blur = ref.integrated_gradients(model, cat, CAT, baseline=blurred, steps=steps, batch_size=32)
with torch.no_grad():
    s = {name: float(model(img)[0, CAT]) for name, img in (("x", cat), ("black", black), ("blurred", blurred))}
for name, ig in (("black", ig_black), ("blurred", ig_blur)):
    diff = s["x"] - s[name]
    print(f"baseline {name:7s}: sum of IG = {float(ig.sum()):7.3f}   S(x) - S(baseline) = {diff:7.3f}"
          f"   ({steps} steps: off by {abs(float(ig.sum()) - diff) / abs(diff):.0%})")

fig, axes = plt.subplots(1, 5, figsize=(16, 3.5), layout="constrained")
axes[0].imshow(cat[0].permute(1, 2, 0).cpu())
axes[0].set_title("Egyptian cat")
eye = {}
for ax, (title, m) in zip(axes[1:3], [("saliency", ref.saliency_map(model, cat, CAT)[0]),
                                      ("SmoothGrad", ref.smoothgrad(model, cat, CAT, samples=helpers.fast(full=16, fast=8))[0])]):
    ax.imshow(m.cpu(), cmap="gray", vmin=0, vmax=float(m.quantile(0.99)))
    ax.set_title(title)
    eye[title] = m
for ax, (title, ig) in zip(axes[3:], [("IG, black baseline", ig_black), ("IG, blurred baseline", ig_blur)]):
    m = ig[0].sum(0)                                            # signed, summed over RGB: still adds up
    lim = float(m.abs().quantile(0.99))
    ax.imshow(m.cpu(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(f"{title}\n(red: for the class, blue: against)", fontsize=10)
    eye[title] = m.abs()
for ax in axes:
    ax.set_axis_off()
plt.show()
print("share of |map| in the cat's eye box, relative to the box's share of the image: "
      + ", ".join(f"{k} {box_share(m, PARTS[0]['eye'])[0] / box_share(m, PARTS[0]['eye'])[1]:.1f} x"
                  for k, m in eye.items()))

# %% [markdown]
# The sums approximate the score differences, but not equally well (printed): with the blurred
# baseline the sum is within a few per cent of $S(x) - S(x')$, with the black baseline it is off by
# about 40 % — the jump in the first 5 % of the black path is too steep for 32 quadrature points.
# Check completeness before trusting the numbers, and add steps if it is off. Integrated gradients
# also depend on the baseline: a black baseline cannot attribute anything to black pixels
# ($x_i - x'_i = 0$), and here its map is speckled all over the fur, with the eye itself nearly
# blank; a blurred baseline asks "what do the *details* (edges, texture) contribute?" — its map
# follows the iris and pupil, the whiskers and the outlines of the face, and puts the most weight
# of all these maps into the eye's box (printed).
#
# ### 6.2 Sanity checks: do the maps explain the model?
#
# Adebayo et al. ("Sanity Checks for Saliency Maps", NeurIPS 2018) proposed a simple test. A map
# that explains the *model* must change when the model changes. So randomise the network's weights
# layer by layer, from the top down ("cascading randomisation": first the classifier, then the head,
# then stage 6, and so on), recompute the maps, and measure their similarity to the original maps
# with the **Spearman rank correlation** (`scipy.stats.spearmanr`: the correlation of the pixels'
# *ranks*, which ignores the maps' scales). A method whose maps stay the same while the network is
# being destroyed is showing the image, not the model.
# `ref.randomize_layers` redraws every parameter of a layer from a Gaussian with that tensor's mean
# and standard deviation (learned structure gone, scale kept).

# %%
sc_x = cat
sc_steps = helpers.fast(full=8, fast=4)
methods = {                                                     # each: (model, class) -> map
    "gradient": lambda m, c: ref.saliency_map(m, sc_x, c),
    "guided backprop": lambda m, c: ref.to_map(ref.guided_backprop(m, sc_x, c)),
    "integrated gradients": lambda m, c: ref.to_map(ref.integrated_gradients(m, sc_x, c, steps=sc_steps,
                                                                             progress=False)),
    "Grad-CAM (head)": lambda m, c: ref.grad_cam(m, sc_x, c, layer="head"),
}
cascade = ["classifier", "head", "stages.6", "stages.5", "stages.4", "stages.3", "stages.2", "stages.1",
           "stages.0", "stem"]
original = {name: f(model, CAT) for name, f in methods.items()}
# a yardstick: the intact model asked about an unrelated class ('espresso') on the same cat photo
other_class = {name: float(ref.rank_correlation(original[name], f(model, ESPRESSO))[0]) for name, f in methods.items()}
shown = {"original": original}
rho = {name: [] for name in methods}
for layer, randomized in helpers.progress(ref.cascading_randomization(model, layers=cascade, seed=0),
                                          total=len(cascade), desc="randomising"):
    maps = {name: f(randomized, CAT) for name, f in methods.items()}
    for name in methods:
        rho[name].append(float(ref.rank_correlation(original[name], maps[name])[0]))
    if layer in ("classifier", "stages.6", "stages.3", "stem"):
        shown[f"random up to\n{layer}"] = maps

fig, axes = plt.subplots(len(methods), len(shown), figsize=(2.3 * len(shown), 2.3 * len(methods)),
                         layout="constrained")
for col, (step, maps) in enumerate(shown.items()):
    for row, name in enumerate(methods):
        m = maps[name][0]
        axes[row, col].imshow(m.cpu(), cmap="gray", vmin=0, vmax=max(float(m.quantile(0.99)), 1e-12))
        axes[row, col].set_xticks([])
        axes[row, col].set_yticks([])
        if row == 0:
            axes[row, col].set_title(step, fontsize=9)
        if col == 0:
            axes[row, col].set_ylabel(name, fontsize=9)
plt.show()

fig, ax = plt.subplots(figsize=(9, 3.4), layout="constrained")
for name, values in rho.items():
    ax.plot(range(1, len(cascade) + 1), values, "o-", label=name)
ax.set_xticks(range(1, len(cascade) + 1), cascade, rotation=45, fontsize=8)
ax.set_xlabel("randomised from the classifier down to ...")
ax.set_ylabel("Spearman rank correlation\nwith the original map")
ax.axhline(0, color="gray", lw=0.8)
ax.set_ylim(min(-0.3, min(min(v) for v in rho.values()) - 0.05), 1.05)
ax.legend(fontsize=8)
plt.show()

print("rank correlation with the original map after randomising up to ...")
print(f"{'':21s}" + "".join(f"{layer:>11s}" for layer in cascade[:5]) + "   | intact model, 'espresso'")
for name in methods:
    print(f"{name:21s}" + "".join(f"{v:11.2f}" for v in rho[name][:5]) + f"   | {other_class[name]:.2f}")

# %% [markdown]
# **Question 2** (2 points). Read the sanity-check figures. (a) Which methods pass the model
# randomisation test and which fail it? Support your answer with the rank correlations after the
# classifier and after the head are randomised. (b) Why does guided backprop behave as it does?
# Think about what its backward rule keeps and what it throws away (Nie, Zhang & Patel, ICML 2018,
# showed it largely reconstructs the image). (c) What does this mean for using such a map to
# argue that a model is right "for the right reasons"?

# %% [markdown] nbgrader="manual" id="question_2" points=2
# ### BEGIN SOLUTION
# Model answer (2 points; accept the run's own numbers):
#
# (a) By the numbers, the gradient, integrated gradients and Grad-CAM pass: their rank
# correlation with the original map drops as soon as the classifier is randomised and stays low —
# gradient and integrated gradients to about 0.3, which is also what the intact model's map for an
# unrelated class ("espresso") shares with the original (0.34 and 0.32): the part of the map that
# comes from the image itself; Grad-CAM to about 0.2, and below 0 further down. (A good answer may
# add that, by eye, the gradient and IG maps keep the outline of the eye for a while — IG, which
# is multiplied by the image, even after stage 3 is random.) Guided backprop fails: 1.00 after the
# classifier and after the head, 0.99 after stage 6, still about 0.95 after stage 5 and 0.8 after
# stage 4, and its maps show the cat's eye until stage 3 is random; its map for "espresso" on the
# intact model is the same as for "Egyptian cat" (1.00). Other randomisation seeds give the same
# picture.
#
# (b) Guided backprop zeroes every negative signal at every rectifier on the way back. The
# class-specific information from the top layers enters the backward pass as signed weights; after
# a few layers of "keep only the positive part, only where the unit was active in the forward pass",
# what reaches the image is mostly determined by the *forward* activation masks of the early
# layers — i.e. by the image's edges and textures as seen by the first filters — not by the top
# weights. It behaves like an edge detector / partial image reconstruction, which is why it draws
# the same outlines whatever the class and whatever the top layers hold.
#
# (c) A sharp, object-shaped map is not evidence that the model uses the object: the map may show
# the input more than the model. Before trusting a method to explain a model, check that it is
# sensitive to the model (and to the labels, Adebayo's second test); prefer methods that pass, or
# perturbation-based evidence (occlusion) for causal claims.
# ### END SOLUTION

# %% [markdown]
# ### 6.3 The black-box question
#
# Suppose the model sits behind a web API: you send images, you get back class probabilities, and
# nothing else — no logits, no layers, no gradients. `helpers.models.ProbabilitiesOnly(model)`
# simulates such an API and counts the images it is sent. Which methods still work?

# %%
api = ProbabilitiesOnly(model)
bb_x = cat
bb_occ = ref.occlusion_map(api, bb_x, targets[:1], size=OCC_SIZE, stride=OCC_STRIDE, output="probs")
white_box = occ[:1]                                            # Part 2: same image, class and patches
print(f"occlusion through the API: {api.queries} images sent; same map as with the model itself: "
      f"{torch.allclose(bb_occ, white_box, atol=1e-5)}")
for method in (ref.saliency_map, ref.integrated_gradients):
    try:
        method(api, bb_x, CAT)
    except RuntimeError as err:
        print(f"{method.__name__}: RuntimeError: {str(err)[:110]}...")
try:
    ref.grad_cam(api, bb_x, CAT)
except TypeError as err:
    print(f"grad_cam: TypeError: {err}")
side = bb_x.shape[-1]
print(f"a finite-difference estimate of the gradient would need 2 x 3 x {side} x {side} = "
      f"{2 * 3 * side * side:,} queries for one image")

# %% [markdown]
# **Question 3** (2 points). (a) Which of the methods of this notebook can be used against a
# black box that returns only probabilities, which cannot, and why? (b) Compare the cost, in API
# queries for one 224 × 224 image, of occlusion (32-pixel patches, stride 16) with that of
# estimating the gradient by finite differences. (c) Name one way to get gradient-like maps from a
# black box anyway, and its catch.

# %% [markdown] nbgrader="manual" id="question_3" points=2
# ### BEGIN SOLUTION
# Model answer (2 points; any correct, argued answer):
#
# (a) Occlusion (and any perturbation method: feature ablation, LIME, KernelSHAP, RISE) works: it
# only needs the output for modified inputs. Gradient saliency, SmoothGrad, integrated gradients
# and guided backprop need the derivative of the output with respect to the input, which the API
# does not give; Grad-CAM and neuron gradients additionally need internal activations and weights.
#
# (b) Occlusion: 13 × 13 = 169 patch positions + 1 clean image = 170 queries. Finite differences:
# two queries per pixel value, 2 × 3 × 224 × 224 ≈ 301,000 queries (or 150,529 with one-sided
# differences), about 1,800 times more — and the probabilities may be rounded by the API, which
# ruins small differences.
#
# (c) Estimate the gradient with random directions (zeroth-order / NES-style estimates: average of
# $\frac{f(x + \sigma u) - f(x - \sigma u)}{2\sigma} u$ over random $u$) — cheaper than one query pair
# per pixel but noisy, and it still costs thousands of queries; or train a substitute model on the
# API's answers and take its gradients — the maps then explain the substitute, not the black box.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# * **Saliency** $\max_c |\partial S_t / \partial x|$: one backward pass, pixel-sharp, noisy; use the
#   logit, the absolute value, the max over colours.
# * **Occlusion**: the class probability's relative drop when a patch is hidden; causal and
#   model-agnostic (works on a black box), costs one forward pass per patch position.
# * **Guided backprop**: positive signals only through every ReLU/ReLU6 (for ReLU6: only where
#   $0 < z < 6$); clean-looking outlines (faint, on a checkerboard), but it fails the
#   model-randomisation sanity check — it largely shows the image.
# * **Grad-CAM**: channel weights = averaged gradients of a late layer, ReLU, upsample: coarse but
#   class-discriminative; Guided Grad-CAM combines both.
# * Saliency + GrabCut segments objects without pixel labels; SmoothGrad seeds work better.
# * Hooks change what a network computes; they must always be removed (`try/finally`).
#
# Next: instead of asking which pixels of a *given* image matter, we will *create* the image a unit
# or a class likes best — **04 · Gradient ascent**.
