# %% [markdown]
# # 01 · What do the weights look like? (17 points)
#
# A convolutional network is a stack of small filters. Before asking what a network *does* with an
# image (assignments 02–05), this notebook looks at what it *is*: the numbers in its filters. You
# will pull the first-layer filters out of a pretrained ImageNet network, write the convolution
# yourself, build classic hand-designed filters and compare them with learned ones, and see why the
# weights of deeper layers are much harder to read than the first layer's.
#
# **Learning goals.** After this notebook you can
#
# * state the convolution (cross-correlation) equation of a CNN layer and the output-size formula,
#   and implement it from scratch;
# * display filters fairly (per-filter vs. global scaling) and say what each view hides;
# * build Sobel, Gaussian and Gabor kernels and explain what each one responds to;
# * read a convolution as *template matching*, and explain why normalisation matters;
# * explain, with numbers, why first-layer weights are readable and deeper weights are not;
# * compare learned filters with a Gabor bank, quantitatively.
#
# **How this notebook is graded.**
#
# | | points |
# |---|---|
# | Exercise 1 · `normalize_filters` | 2 |
# | Exercise 2 · `conv2d_naive` | 5 |
# | Exercise 3 · `gabor_kernel` | 3 |
# | Exercise 4 · `best_matching_gabor` | 3 |
# | Questions 1 and 2 (written, graded by hand) | 4 |
# | **total** | **17** |
#
# * Write your code between the function's docstring and its end, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures.
# * Each exercise is followed by a locked **test cell**. Run it: the *visible* tests check the
#   basics and tell you what went wrong. When your notebook is graded, the same cells also run
#   *hidden* tests with more cases (other shapes, strides, angles, edge cases) and check that you
#   wrote the computation yourself instead of calling a library function that does it.
# * Later parts of the notebook use the course's reference implementations (`helpers.filters`,
#   imported as `ref`), so a bug in one exercise does not break the rest.
# * The whole notebook runs in about two minutes on a laptop CPU. `COURSE_FAST=1` (set automatically while grading)
#   makes the slow parts smaller. Run it top to bottom before you submit
#   (*Kernel → Restart & Run All*).

# %% nbgrader="setup"
# The course setup cell: `python -m grading release` inserts grading/setup_cell.py here.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from helpers import filters as ref          # reference implementations used by the demos
from helpers.digits import DigitsCNN, accuracy, load_digits, train_classifier
from helpers.images import load_image
from helpers.models import imagenet_labels, load_model
from helpers.plotting import show_filters, show_images
from helpers.taps import features

plt.rcParams["figure.dpi"] = 90

# %% [markdown]
# ## Part 1 · The first layer of a pretrained network
#
# We use **EfficientNet-Lite0** (Tan & Le, 2019; the "Lite" version for phones): 4.7 million
# parameters, 75 % top-1 accuracy on ImageNet, and weights that ship with the course, so no download
# is needed. It takes pixels in $[0, 1]$ and normalises them itself. Its layers:
#
# * `stem` — a $3\times3$ convolution with stride 2 from the 3 colour channels to 32 channels;
# * `stages.0` … `stages.6` — 16 *MBConv* blocks (Part 4 opens one up);
# * `head` — a $1\times1$ convolution to 1280 channels, then global average pooling and a linear
#   `classifier` to 1000 ImageNet classes.
#
# The next cell loads the network, checks that it recognises a cat (the left square of scikit-image's
# photo 'chelsea', with the cat's eye and nose, scaled to $224\times224$), and lists every stage:
# the size of its output for a $224\times224$ image, its kernel size, and its number of parameters.

# %%
model = load_model("efficientnet_lite0").to(device)
labels = imagenet_labels()

cat = load_image("chelsea", size=224, crop=(0, 0, 300, 300)).to(device)   # the cat's face: (1, 3, 224, 224) in [0, 1]
with torch.no_grad():
    probs = model(cat).softmax(dim=1)[0]
top = probs.topk(3)
print("EfficientNet-Lite0 on the cat's face:",
      ", ".join(f"{labels[int(i)]} ({float(p):.0%})" for p, i in zip(top.values, top.indices)))

names = ["stem"] + [f"stages.{s}" for s in range(len(model.stages))] + ["head"]
acts = features(model, cat, names)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


print(f"\n{'layer':10s} {'output (C, H, W)':>18s} {'kernel':>7s} {'stride':>6s} {'parameters':>11s}")
for name in names:
    unit = model.get_submodule(name)
    conv = unit.conv if hasattr(unit, "conv") else unit[0].depthwise.conv   # a stage: its first depthwise conv
    shape = tuple(acts[name].shape[1:])
    k, s = conv.kernel_size[0], conv.stride[0]
    print(f"{name:10s} {str(shape):>18s} {f'{k}x{k}':>7s} {s:>6d} {n_params(unit):>11,d}")
print(f"{'classifier':10s} {'(1000,)':>18s} {'':>7s} {'':>6s} {n_params(model.classifier):>11,d}")
print(f"{'total':10s} {'':>18s} {'':>7s} {'':>6s} {n_params(model):>11,d}")

# %% [markdown]
# ### The stem filters
#
# The stem's weight has shape $(32, 3, 3, 3)$: 32 filters, each a tiny $3\times3$ picture with a
# red, a green and a blue layer. Because the input channels *are* colours, each filter can be shown
# as a colour image: the pattern that excites it most. Weights are signed numbers, so they must be
# mapped to $[0, 1]$ to be displayed. Two choices:
#
# * **per filter**: every filter is stretched to use the full range, $\hat w_k = \frac{w_k - \min w_k}{\max w_k - \min w_k}$. Good for seeing
#   *shapes*, but a filter with tiny weights looks as strong as one with large weights.
# * **global**: one min and max for all filters. Strengths are comparable, but weak filters fade
#   to grey.
#
# Compare with the picture every lecture shows: **AlexNet**'s first layer (Krizhevsky et al.,
# 2012) has 96 filters of $11\times11\times3$ applied with stride 4 (64 in torchvision's one-stream
# version) — large enough to hold oriented stripes (Gabor-like edges) and colour blobs.
# EfficientNet's stem has 32 filters of only $3\times3$, stride 2: nine pixels can hold a colour
# contrast or a one-pixel step, but not a striped pattern. Modern networks build oriented
# structure from *stacks* of small kernels instead. In Part 5 you train a tiny network with
# $5\times5$ first-layer filters and measure how close it comes to that picture.

# %%
W_stem = ref.stem_filters(model).cpu()                         # (32, 3, 3, 3)
print("stem weight:", tuple(W_stem.shape), f"  values in [{W_stem.min():.2f}, {W_stem.max():.2f}]")

fig = plt.figure(figsize=(12, 3.6), layout="constrained")
left, right = fig.subfigures(1, 2, wspace=0.05)
show_filters(W_stem, per_filter=True, axes=left.subplots(4, 8))
left.suptitle("per-filter scaling: every filter uses the full range")
show_filters(W_stem, per_filter=False, axes=right.subplots(4, 8))
right.suptitle("global scaling: one range for all 32 filters")
plt.show()

norms = W_stem.flatten(1).norm(dim=1)
order = norms.argsort(descending=True)
fig, ax = plt.subplots(figsize=(10, 2.6), layout="constrained")
ax.bar(range(32), norms[order], color=["tab:red" if n < 1e-3 else "tab:blue" for n in norms[order]])
ax.set_yscale("log")
ax.set_xticks(range(32), [str(int(i)) for i in order], fontsize=7)
ax.set_xlabel("stem filter index (sorted by norm)")
ax.set_ylabel("L2 norm of the filter")
ax.set_title("Stem filter strengths (log scale); red: norm < 1e-3, a 'dead' filter")
plt.show()
dead = [int(i) for i in order if norms[i] < 1e-3]
print(f"{len(dead)} of 32 stem filters have a norm below 1e-3: {dead}")


# %% [markdown]
# Several stem filters are essentially zero ("dead": training drove them to nothing, and the
# BatchNorm after them outputs a constant). In the per-filter view they still look like colourful
# patterns — that is rounding noise stretched to full contrast, except for one filter that is so
# close to constant that it comes out mid-grey. In the global view they are flat grey. *Neither
# view alone tells the whole story*; a bar chart of the norms is the honest companion to the
# pictures.
#
# ### Exercise 1 · Per-filter display scaling (2 points)
#
# Implement `normalize_filters(weight)`: for every filter $k$ (index along dimension 0), with the
# min and max taken over **all** entries of that filter (all its input channels and positions),
#
# $$\hat w_k = \frac{w_k - \min w_k}{\max w_k - \min w_k}.$$
#
# A filter with $\max w_k - \min w_k \le 10^{-8}$ has no contrast: return $0.5$ for all its
# entries (mid grey) instead of dividing by zero. Return a new tensor of the same shape and dtype;
# do not modify the input. It must work for any number of dimensions $\ge 2$, e.g. $(K, C, h, w)$
# and $(K, h, w)$. Use tensor operations, no Python loop over filters.

# %% nbgrader="answer" id="normalize_filters_answer"
def normalize_filters(weight):
    """Scale every filter to [0, 1] on its own (min-max per filter), for display.

    weight: float tensor (K, ...); dimension 0 indexes the filters, e.g. (C_out, C_in, k, k).
    Returns a new tensor with the shape and dtype of weight:
        (w_k - min w_k) / (max w_k - min w_k)   for every filter k,
    where min and max run over all entries of filter k.  A filter with max - min <= 1e-8 becomes
    0.5 everywhere.  weight itself is not modified.
    """
    ### BEGIN SOLUTION
    flat = weight.reshape(weight.shape[0], -1)
    lo = flat.min(dim=1, keepdim=True).values
    hi = flat.max(dim=1, keepdim=True).values
    span = hi - lo
    constant = span <= 1e-8
    out = (flat - lo) / torch.where(constant, torch.ones_like(span), span)
    out = torch.where(constant, torch.full_like(out, 0.5), out)
    return out.reshape(weight.shape)
    ### END SOLUTION


# %% nbgrader="tests" id="normalize_filters_test" points=2
# Tests for Exercise 1 (normalize_filters).
import torch
import helpers
from helpers.testing.filters import check_normalize_filters

# A hand-made example: filter 0 spans [-1, 3] -> [0, 0.25, 0.5, 1]; filter 1 is constant -> 0.5.
check_normalize_filters(normalize_filters, torch.tensor([[[-1.0, 0.0], [1.0, 3.0]],
                                                         [[2.0, 2.0], [2.0, 2.0]]]))
# Two filters on very different scales: each must use the full range [0, 1] on its own.
check_normalize_filters(normalize_filters, torch.stack([torch.linspace(-0.01, 0.01, 27),
                                                        torch.linspace(-5.0, 15.0, 27)]).reshape(2, 3, 3, 3),
                        what="two (3, 3, 3) filters, one tiny, one large")

### BEGIN HIDDEN TESTS
helpers.seed_everything(0)
_w = torch.randn(6, 3, 3, 3) * torch.tensor([1e-3, 0.1, 1, 10, 100, 1]).view(6, 1, 1, 1) + 3
_w[5] = -2.5                                                     # a constant filter among others
check_normalize_filters(normalize_filters, _w, what="a (6, 3, 3, 3) weight with a constant filter")
check_normalize_filters(normalize_filters, torch.randn(5, 7, 7), what="a (K, h, w) stack")
check_normalize_filters(normalize_filters, torch.randn(4, 2, 5, 5, dtype=torch.float64), what="a float64 weight")
### END HIDDEN TESTS
print("Exercise 1: all visible tests passed.")


# %% [markdown]
# ## Part 2 · Convolution from scratch
#
# A convolution layer with weight $w \in \mathbb{R}^{C_{out}\times C_{in}\times k_h\times k_w}$,
# bias $b \in \mathbb{R}^{C_{out}}$, stride $s$ and zero padding $p$ maps an input
# $x \in \mathbb{R}^{N\times C_{in}\times H\times W}$ to
#
# $$
# y[n, o, i, j] \;=\; b[o] \;+\; \sum_{c=0}^{C_{in}-1}\;\sum_{u=0}^{k_h-1}\;\sum_{v=0}^{k_w-1}
# w[o, c, u, v]\; x_{\text{pad}}[n, c,\; s\,i + u,\; s\,j + v],
# $$
#
# where $x_{\text{pad}}$ is $x$ with $p$ rows/columns of zeros added on every side. Each output is
# a dot product between the filter and the image patch under it. The output has
#
# $$H_{out} = \left\lfloor \frac{H + 2p - k_h}{s} \right\rfloor + 1$$
#
# rows (and likewise $W_{out}$ columns, with the horizontal stride and padding). Two remarks:
#
# * Deep learning's "convolution" does **not flip** the kernel: mathematically it is a
#   *cross-correlation*. A true convolution would read $x[\dots, s\,i - u, s\,j - v]$. For learned
#   filters the difference does not matter (the network would just learn the flipped filter), but
#   for a given weight tensor the results differ.
# * Stride and padding can differ per direction: `stride=(s_h, s_w)`, `padding=(p_h, p_w)`.
#
# ### Exercise 2 · `conv2d_naive` (5 points)
#
# Implement the equation above; the result must equal `torch.nn.functional.conv2d(x, weight, bias,
# stride=stride, padding=padding)`. Suggested approach — one loop over the $k_h \times k_w$ kernel
# offsets $(u, v)$: for a fixed offset, the input pixels that meet $w[:, :, u, v]$ form a strided
# slice of $x_{\text{pad}}$ of shape $(N, C_{in}, H_{out}, W_{out})$; multiply it with
# $w[:, :, u, v]$ (shape $(C_{out}, C_{in})$), sum over $c$ (`torch.einsum` does this in one line)
# and add the result to the output. Looping over output positions $(i, j)$ instead also works, but
# is slower.
#
# Allowed: tensor indexing and slicing, `F.pad`, `torch.einsum`, `@`, `.sum`, `F.unfold`. Build the
# result from tensor operations only (no `.numpy()`, `.item()` or `.detach()`), so that autograd can
# differentiate through it — a hidden test checks the gradients.
# Not allowed: any ready-made convolution (`F.conv2d`, `torch.conv2d`, `nn.Conv2d`, SciPy's
# correlate/convolve, the course's `ref.conv2d_naive`) — the hidden tests check for them.

# %% nbgrader="answer" id="conv2d_naive_answer"
def conv2d_naive(x, weight, bias=None, *, stride=1, padding=0):
    """2-D convolution (cross-correlation, no kernel flip), equal to F.conv2d without groups.

    x:       float tensor (N, C_in, H, W)
    weight:  float tensor (C_out, C_in, kH, kW)
    bias:    None or float tensor (C_out,)
    stride:  int or pair (s_h, s_w), >= 1
    padding: int or pair (p_h, p_w), >= 0; zero padding on every side
    Returns: tensor (N, C_out, H_out, W_out) with H_out = (H + 2 p_h - kH) // s_h + 1 (same for W).
    """
    ### BEGIN SOLUTION
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    n, c_in, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out = (h + 2 * ph - kh) // sh + 1
    w_out = (w + 2 * pw - kw) // sw + 1
    x_pad = F.pad(x, (pw, pw, ph, ph))
    out = x.new_zeros((n, c_out, h_out, w_out))
    for u in range(kh):
        for v in range(kw):
            patch = x_pad[:, :, u:u + sh * (h_out - 1) + 1:sh, v:v + sw * (w_out - 1) + 1:sw]
            out = out + torch.einsum("nchw,oc->nohw", patch, weight[:, :, u, v])
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
    ### END SOLUTION


# %% nbgrader="tests" id="conv2d_naive_basic_test" points=2
# Tests for Exercise 2, part 1: no stride, no padding.  Each check compares with F.conv2d.
import torch
import helpers
from helpers.testing.filters import check_conv2d

helpers.seed_everything(0)
# 1. By hand: a 2x2 kernel of ones sums every 2x2 window of a 3x3 input: [[8, 12], [20, 24]].
check_conv2d(conv2d_naive, torch.arange(9.0).reshape(1, 1, 3, 3), torch.ones(1, 1, 2, 2),
             hint="out[i, j] is the sum of x[i:i+2, j:j+2]")
# 2. One channel, an asymmetric kernel (so that a flipped kernel gives a different answer).
check_conv2d(conv2d_naive, torch.randn(1, 1, 6, 6), torch.randn(1, 1, 3, 3), what="(one channel)")
# 3. Several input and output channels, a batch of 2, with a bias.
check_conv2d(conv2d_naive, torch.randn(2, 3, 7, 7), torch.randn(4, 3, 3, 3), torch.randn(4),
             what="(batch, channels, bias)")

### BEGIN HIDDEN TESTS
check_conv2d(conv2d_naive, torch.randn(3, 2, 9, 6), torch.randn(5, 2, 2, 4), torch.randn(5), what="(non-square)")
check_conv2d(conv2d_naive, torch.randn(1, 4, 5, 8), torch.randn(3, 4, 1, 1), what="(1x1 kernel)")
check_conv2d(conv2d_naive, torch.randn(2, 1, 5, 5), torch.randn(2, 1, 5, 5), torch.randn(2), what="(kernel = input size)")
check_conv2d(conv2d_naive, torch.randn(1, 3, 11, 10, dtype=torch.float64),
             torch.randn(6, 3, 3, 5, dtype=torch.float64), what="(float64)")
### END HIDDEN TESTS
print("Exercise 2, part 1: all visible tests passed.")

# %% nbgrader="tests" id="conv2d_naive_stride_padding_test" points=3
# Tests for Exercise 2, part 2: stride and padding.  Each check compares with F.conv2d.
import torch
import helpers
from helpers.testing.filters import check_conv2d, check_conv2d_gradients

helpers.seed_everything(1)
# Output size: (H + 2p - k) // s + 1 = (8 + 2 - 3) // 2 + 1 = 4.
check_conv2d(conv2d_naive, torch.randn(1, 2, 8, 8), torch.randn(3, 2, 3, 3), stride=2, padding=1,
             what="(a (1, 3, 4, 4) output)")
check_conv2d(conv2d_naive, torch.randn(1, 2, 8, 8), torch.randn(3, 2, 3, 3), padding=1, what="(padding only)")
check_conv2d(conv2d_naive, torch.randn(1, 2, 8, 8), torch.randn(3, 2, 3, 3), stride=2, what="(stride only)")
check_conv2d(conv2d_naive, torch.randn(2, 3, 9, 9), torch.randn(4, 3, 3, 3), torch.randn(4), stride=2, padding=1,
             what="(stride and padding)")

### BEGIN HIDDEN TESTS
check_conv2d(conv2d_naive, torch.randn(2, 3, 12, 9), torch.randn(4, 3, 3, 3), stride=(2, 1), padding=(1, 0),
             what="(different stride and padding per direction)")
check_conv2d(conv2d_naive, torch.randn(1, 2, 13, 11), torch.randn(2, 2, 5, 5), torch.randn(2), stride=3, padding=2,
             what="(stride 3, padding 2)")
check_conv2d(conv2d_naive, torch.randn(3, 1, 10, 7), torch.randn(2, 1, 4, 2), stride=(3, 2), padding=(2, 1),
             what="(non-square kernel, stride and padding)")
check_conv2d(conv2d_naive, torch.randn(1, 3, 8, 8), torch.randn(2, 3, 3, 3), padding=3,
             what="(padding wider than the kernel)")
check_conv2d(conv2d_naive, torch.randn(1, 3, 9, 9), torch.randn(8, 3, 3, 3), stride=2, padding=(0, 1),
             what="(EfficientNet stem-like)")
# gradients flow through the implementation (it is built from differentiable operations)
check_conv2d_gradients(conv2d_naive, torch.randn(1, 2, 6, 6), torch.randn(3, 2, 3, 3), torch.randn(3),
                       stride=2, padding=1)
### END HIDDEN TESTS
print("Exercise 2, part 2: all visible tests passed.")

# %% [markdown]
# ### Your loop is what the network computes
#
# The stem of EfficientNet-Lite0 is `normalize` ($x \mapsto (x - 0.5)/0.5$), then TensorFlow-style
# "same" padding (one row and column of zeros at the bottom and right only, for a 224-pixel input),
# then a $3\times3$, stride-2 convolution without bias. Rebuilding it with the reference
# `ref.conv2d_naive` reproduces the network's own output (read with a forward hook by
# `helpers.taps.features`). The picture shows what four stem filters respond to: each output
# channel is the image correlated with one filter.

# %%
stem = model.stem
x_norm = model.normalize(cat)
x_pad = stem.pad(x_norm) if hasattr(stem, "pad") else x_norm          # (1, 3, 225, 225)
ours = ref.conv2d_naive(x_pad, stem.conv.weight, stride=2, padding=stem.conv.padding)
theirs = features(model, cat, ["stem.conv"])["stem.conv"]
print(f"conv2d_naive output {tuple(ours.shape)}; largest difference to the network's stem.conv: "
      f"{(ours - theirs).abs().max():.2e}")

picks = [int(i) for i in (W_stem.flatten(1).norm(dim=1)).argsort(descending=True)[:4]]
fig, axes = plt.subplots(2, 5, figsize=(12, 5), layout="constrained",
                         gridspec_kw={"height_ratios": [1, 2.2]})
axes[0, 0].set_axis_off()
axes[1, 0].imshow(cat[0].permute(1, 2, 0).cpu())
axes[1, 0].set_title("input")
axes[1, 0].set_axis_off()
show_filters(W_stem[picks], axes=axes[0, 1:], titles=[f"filter {k}" for k in picks])
for ax, k in zip(axes[1, 1:], picks):
    im = ax.imshow(ours[0, k].cpu(), cmap="RdBu_r",
                   vmin=-ours[0, k].abs().max().item(), vmax=ours[0, k].abs().max().item())
    ax.set_title(f"response of filter {k} (112x112)", fontsize=9)
    ax.set_axis_off()
fig.colorbar(im, ax=axes[1, 1:], shrink=0.7, label="response (red +, blue -)")
fig.suptitle("Four strongest stem filters and their responses to the cat")
plt.show()

# %% [markdown]
# ## Part 3 · Hand-made filters
#
# Long before CNNs, image processing used hand-designed kernels. Three classics, all written for
# correlation like the layers above ($x$ = column offset, to the right; $y$ = row offset, *down*):
#
# * **Sobel** — a derivative $[-1, 0, 1]$ across an edge times a smoothing $[1, 2, 1]$ along it:
#   $S_x = \begin{bmatrix}-1&0&1\\-2&0&2\\-1&0&1\end{bmatrix}$ responds positively where the image
#   gets brighter to the right, $S_y = S_x^\top$ where it gets brighter downwards, and
#   $\sqrt{g_x^2 + g_y^2}$ measures edge strength in any direction.
# * **Gaussian** — $G(x, y) \propto \exp\!\big(-\frac{x^2 + y^2}{2\sigma^2}\big)$, normalised to sum
#   to 1: a weighted local average; larger $\sigma$ blurs more.
# * **Gabor** — a cosine grating under a Gaussian envelope, the classic model of simple cells in the
#   visual cortex and the shape that large learned first layers such as AlexNet's resemble (Part 5
#   tests whether a small one does):
#
# $$
# g(x, y) = \exp\!\Big(-\frac{x'^2 + \gamma^2\, y'^2}{2\sigma^2}\Big)\,
#           \cos\!\Big(2\pi\,\frac{x'}{\lambda} + \psi\Big),\qquad
# x' = x\cos\theta + y\sin\theta,\quad y' = -x\sin\theta + y\cos\theta .
# $$
#
#   $\theta$ (radians) is the direction in which the cosine oscillates (the normal of the stripes:
#   $\theta = 0$ gives vertical stripes), $\lambda$ the wavelength in pixels, $\psi$ the phase
#   ($\psi = 0$: a bright bar at the centre; $\psi = \pi/2$: an edge), $\sigma$ the width of the
#   envelope along $x'$ and $\gamma$ its aspect ratio (the envelope is $\sigma/\gamma$ wide along the
#   stripes).
#
# `ref.apply_filter(image, kernel)` correlates every channel of an image with one kernel, using
# reflect padding so the output keeps the input's size.

# %%
camera = load_image("camera", size=256)[:, :1]                  # grey (1, 1, 256, 256)
sobel_x, sobel_y = ref.sobel_kernels()
gx, gy = ref.apply_filter(camera, sobel_x), ref.apply_filter(camera, sobel_y)
blurs = [ref.apply_filter(camera, ref.gaussian_kernel(2 * math.ceil(3 * s) + 1, s)) for s in (1.0, 3.0)]

fig, axes = plt.subplots(1, 6, figsize=(15, 3), layout="constrained")
panels = [(camera, "input", "gray", None), (gx, "Sobel x: brighter to the right", "RdBu_r", 4),
          (gy, "Sobel y: brighter downwards", "RdBu_r", 4),
          ((gx ** 2 + gy ** 2).sqrt(), "edge strength sqrt(gx^2 + gy^2)", "magma", None),
          (blurs[0], "Gaussian blur, sigma = 1", "gray", None), (blurs[1], "Gaussian blur, sigma = 3", "gray", None)]
for ax, (img, title, cmap, lim) in zip(axes, panels):
    kw = dict(vmin=-lim, vmax=lim) if lim else {}
    ax.imshow(img[0, 0], cmap=cmap, **kw)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
fig.suptitle("Hand-made filters on the 'camera' photograph (red +, blue - for signed responses)")
plt.show()


# %% [markdown]
# ### Exercise 3 · Gabor kernels (3 points)
#
# Implement `gabor_kernel(size, *, sigma, theta, lambd, psi=0.0, gamma=0.5)` following the
# equation above. Coordinates are centred: for `size = 5`, $x$ and $y$ run over $-2, \dots, 2$;
# entry `[r, c]` of the result is $g(x = c - \text{size}//2,\; y = r - \text{size}//2)$, so
# $x$ grows along columns (to the right) and $y$ along rows (downwards). `theta` and `psi` are in
# **radians**. `size` must be odd (there must be a centre pixel): raise a `ValueError` otherwise.
# Return a float32 tensor of shape `(size, size)`; do not normalise it (the centre value is
# $\cos\psi$). `torch.meshgrid(..., indexing="ij")` builds the coordinate grids.

# %% nbgrader="answer" id="gabor_kernel_answer"
def gabor_kernel(size, *, sigma, theta, lambd, psi=0.0, gamma=0.5):
    """A real Gabor kernel of shape (size, size), float32.

    g(x, y) = exp(-(x'^2 + gamma^2 y'^2) / (2 sigma^2)) * cos(2 pi x' / lambd + psi)
    x' = x cos(theta) + y sin(theta),   y' = -x sin(theta) + y cos(theta)
    with x = column - size//2 (to the right) and y = row - size//2 (downwards); angles in radians.
    Raises ValueError if size is not an odd positive int.
    """
    ### BEGIN SOLUTION
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd positive int, got {size!r}")
    coords = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    xr = x * math.cos(theta) + y * math.sin(theta)
    yr = -x * math.sin(theta) + y * math.cos(theta)
    envelope = torch.exp(-(xr ** 2 + gamma ** 2 * yr ** 2) / (2 * sigma ** 2))
    return (envelope * torch.cos(2 * math.pi * xr / lambd + psi)).float()
    ### END SOLUTION


# %% nbgrader="tests" id="gabor_kernel_basic_test" points=1
# Tests for Exercise 3, part 1: shape, dtype, centre and theta = 0.
import math
from helpers.testing.filters import assert_raises, check_gabor

# By hand, theta = 0, psi = 0: g(x, y) = exp(-(x^2 + 0.25 y^2) / 8) cos(2 pi x / 4), so the
# centre [3, 3] is 1, [3, 5] (x = 2, y = 0) is -exp(-1/2), [1, 3] (x = 0, y = -2) is exp(-1/8).
check_gabor(gabor_kernel, 7, sigma=2.0, theta=0.0, lambd=4.0)
check_gabor(gabor_kernel, 9, sigma=3.0, theta=0.0, lambd=5.0)

### BEGIN HIDDEN TESTS
check_gabor(gabor_kernel, 5, sigma=1.5, theta=0.0, lambd=3.0, psi=math.pi / 2, what="(odd phase)")
check_gabor(gabor_kernel, 11, sigma=3.0, theta=0.0, lambd=6.0, psi=1.0, gamma=0.8)
check_gabor(gabor_kernel, 1, sigma=1.0, theta=0.0, lambd=2.0)
for _bad in (4, 0, -3):
    assert_raises(ValueError, gabor_kernel, _bad, sigma=1.0, theta=0.0, lambd=3.0, why="size must be odd and positive")
### END HIDDEN TESTS
print("Exercise 3, part 1: all visible tests passed.")

# %% nbgrader="tests" id="gabor_kernel_rotation_test" points=2
# Tests for Exercise 3, part 2: rotation, aspect ratio, phase.
import math
from helpers.testing.filters import check_gabor

check_gabor(gabor_kernel, 9, sigma=2.5, theta=math.pi / 6, lambd=5.0, what="(theta = 30 degrees)")
# theta = pi/2 turns the theta = 0 kernel by 90 degrees: its transpose, horizontal stripes.
check_gabor(gabor_kernel, 9, sigma=3.0, theta=math.pi / 2, lambd=4.0, what="(theta = pi/2: horizontal stripes)")

### BEGIN HIDDEN TESTS
check_gabor(gabor_kernel, 9, sigma=2.5, theta=math.pi / 4, lambd=5.0)
check_gabor(gabor_kernel, 11, sigma=3.0, theta=2.0, lambd=6.0, psi=math.pi / 2, gamma=0.3)
check_gabor(gabor_kernel, 15, sigma=4.0, theta=-0.7, lambd=7.5, psi=-2.0, gamma=1.0)
check_gabor(gabor_kernel, 7, sigma=2.0, theta=3 * math.pi / 4, lambd=3.0, psi=math.pi, gamma=0.6)
check_gabor(gabor_kernel, 13, sigma=3.5, theta=1.2, lambd=4.5, psi=0.5, gamma=2.0)
### END HIDDEN TESTS
print("Exercise 3, part 2: all visible tests passed.")

# %% [markdown]
# ### A Gabor bank on a texture
#
# `ref.gabor_bank` builds kernels over orientations $\theta = k\pi/n$, wavelengths and phases (by
# default $\psi \in \{0, \tfrac{\pi}{2}, \pi, \tfrac{3\pi}{2}\}$: bars and edges of both signs).
# Below, the even ($\psi = 0$) kernels of a $21\times21$ bank, and the *energy* of the response of
# four orientations on a brick wall — the squared responses of the even and the odd ($\psi=\pi/2$)
# kernel added, which does not depend on where exactly a stripe sits (all four maps share one
# colour scale). The long vertical mortar lines light up the $\theta = 0°$ channel (vertical
# stripes), the short horizontal joints the $\theta = 90°$ channel (in spots), and the diagonal
# channels stay dark: an orientation-selective filter bank splits a texture into its directions.
# The cell prints the mean energy of each map: the vertical channel's is about nine times the
# diagonal ones', the horizontal channel's about twice.

# %%
bank, params = ref.gabor_bank(21, n_orientations=8, wavelengths=(6.0, 12.0), phases=(0.0, math.pi / 2))
even = [i for i, p in enumerate(params) if p["psi"] == 0.0]
show_images(bank[even], titles=[f"{p['theta_deg']:.0f}°, λ={p['lambd']:.0f}" for p in (params[i] for i in even)],
            ncols=8, scale="rescale", suptitle="Even Gabor kernels (psi = 0): 8 orientations x 2 wavelengths")
plt.show()

brick = load_image("brick", size=256)[:, :1]
energies = {}
for deg in (0, 45, 90, 135):
    th = math.radians(deg)
    k_even = ref.gabor_kernel(21, sigma=4.0, theta=th, lambd=8.0, psi=0.0)
    k_odd = ref.gabor_kernel(21, sigma=4.0, theta=th, lambd=8.0, psi=math.pi / 2)
    energies[deg] = ref.apply_filter(brick, k_even) ** 2 + ref.apply_filter(brick, k_odd) ** 2
vmax = max(float(e.max()) for e in energies.values())
print("mean Gabor energy per orientation:", ", ".join(f"{deg}°: {float(e.mean()):.1f}" for deg, e in energies.items()))

fig, axes = plt.subplots(1, 5, figsize=(15, 3.3), layout="constrained")
axes[0].imshow(brick[0, 0], cmap="gray")
axes[0].set_title("input: 'brick'")
for ax, (deg, energy) in zip(axes[1:], energies.items()):
    im = ax.imshow(energy[0, 0], cmap="magma", vmin=0, vmax=vmax)
    ax.set_title(f"Gabor energy, theta = {deg}°")
for ax in axes:
    ax.set_axis_off()
fig.colorbar(im, ax=axes[1:], shrink=0.8, label="energy (shared scale)")
plt.show()

# %% [markdown]
# ### Convolution as template matching
#
# Every output of a convolution is a dot product $\langle w, P_{ij}\rangle$ between the filter and
# the patch $P_{ij}$ under it: a similarity score. So a filter is a *template*, and a convolution
# layer asks at every position "how much does this patch look like my template?". Take a patch of
# the photo — the eye on the left of the picture — as the filter and slide it over the image.
#
# The raw dot product has a flaw: it grows with the brightness and contrast of the patch, so a
# bright patch scores high whatever it shows. The **normalised cross-correlation** removes both
# (it is the Pearson correlation between template and patch):
#
# $$
# r(i, j) = \frac{\sum (P_{ij} - \bar P_{ij})(T - \bar T)}
# {\sqrt{\sum (P_{ij} - \bar P_{ij})^2\,\sum (T - \bar T)^2}} \in [-1, 1].
# $$
#
# `ref.template_match` computes both maps (`normalize=False` for the raw one); its entry $(i, j)$
# scores the patch whose top-left corner is pixel $(i, j)$.

# %%
photo = load_image("chelsea")                                   # (1, 3, 300, 451)
top, left, h, w = 95, 145, 45, 55
eye = photo[0, :, top:top + h, left:left + w]                    # the template (3, 45, 55)

raw = ref.template_match(photo, eye, normalize=False)[0, 0]
ncc = ref.template_match(photo, eye)[0, 0]


def peak(score):
    i, j = divmod(int(score.argmax()), score.shape[1])
    return i + h // 2, j + w // 2                                # centre of the best patch


masked = ncc.clone()                                             # hide the eye itself ...
masked[max(0, top - h):top + h, max(0, left - w):left + w] = -1
second = peak(masked)                                            # ... and find the next best match

fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
axes[0].imshow(photo[0].permute(1, 2, 0))
axes[0].add_patch(plt.Rectangle((left, top), w, h, fill=False, color="cyan", lw=2))
for (r, c), color in ((peak(raw), "red"), (second, "orange")):
    axes[0].add_patch(plt.Rectangle((c - w // 2, r - h // 2), w, h, fill=False, color=color, lw=2, ls="--"))
axes[0].set_title("template (cyan); best raw match (red),\n2nd best normalised match (orange)", fontsize=10)
for ax, score, title in ((axes[1], raw, "raw correlation <w, P>"),
                         (axes[2], ncc, "normalised cross-correlation r")):
    im = ax.imshow(score, cmap="viridis")
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title)
for ax in axes[1:]:
    for (r, c), color, label in ((peak(raw), "red", "raw peak"), (peak(ncc), "cyan", "r peak"),
                                 (second, "orange", "2nd r peak")):
        ax.plot(c - w // 2, r - h // 2, "o", ms=10, mfc="none", mec=color, mew=2, label=label)
    ax.legend(loc="lower right", fontsize=8)
for ax in axes:
    ax.set_axis_off()
plt.show()
print(f"raw peak at (row, col) = {peak(raw)}; normalised peak at {peak(ncc)} (the eye itself, r = {float(ncc.max()):.2f}); "
      f"second normalised peak at {second}, r = {float(masked.max()):.2f}: the other eye")

# %% [markdown]
# The raw correlation peaks on the bright fur, far from the eye. The normalised score peaks on the
# eye (a perfect $r = 1$: the template was cut from there) and, with the eye masked out, on the
# cat's *other* eye — a different, smaller eye that still correlates strongly ($r = 0.80$).
# Convolution layers compute the raw score; what keeps deep networks from being fooled by
# brightness in the same way is normalisation elsewhere: normalised inputs, and the BatchNorm after
# every convolution, which subtracts each channel's average response and divides by its spread.
#
# ## Part 4 · Deeper layers: why are their weights hard to read?
#
# Every MBConv block of EfficientNet-Lite computes
#
# $$
# h = \text{ReLU6}(\text{BN}(W_{\text{expand}} * x)),\quad
# h = \text{ReLU6}(\text{BN}(W_{\text{depthwise}} \circledast h)),\quad
# y = \text{BN}(W_{\text{project}} * h)\;(+\,x).
# $$
#
# * `expand` and `project` are $1\times1$ convolutions: at every pixel, a matrix mixes the channels.
#   They have no spatial extent at all, so there is no picture to draw.
# * `depthwise` is the only spatial filter: one $k\times k$ kernel ($k = 3$ or 5) *per channel*,
#   acting on that channel alone — but that channel is an abstract feature computed by everything
#   before it, not a colour.
#
# Where do the 4.7 million weights live?

# %%
groups = {"stem 3x3 (RGB pictures)": 0, "depthwise kxk": 0, "1x1 expand / project / head": 0,
          "BatchNorm scale and shift": 0, "classifier (linear)": 0}
for name, module in model.named_modules():
    if isinstance(module, torch.nn.Conv2d):
        if name.startswith("stem"):
            groups["stem 3x3 (RGB pictures)"] += module.weight.numel()
        elif module.kernel_size == (1, 1):
            groups["1x1 expand / project / head"] += module.weight.numel()
        else:
            groups["depthwise kxk"] += module.weight.numel()
    elif isinstance(module, torch.nn.BatchNorm2d):
        groups["BatchNorm scale and shift"] += module.weight.numel() + module.bias.numel()
    elif isinstance(module, torch.nn.Linear):
        groups["classifier (linear)"] += module.weight.numel() + module.bias.numel()
total = n_params(model)
assert sum(groups.values()) == total
fig, ax = plt.subplots(figsize=(9, 2.6), layout="constrained")
bars = ax.barh(list(groups), [100 * v / total for v in groups.values()], color="tab:blue")
for bar, v in zip(bars, groups.values()):
    ax.text(bar.get_width() + 0.5, bar.get_y() + bar.get_height() / 2, f"{v:,} ({100 * v / total:.2f} %)", va="center", fontsize=9)
ax.set_xlim(0, 100)
ax.set_xlabel("share of all parameters (%)")
ax.invert_yaxis()
ax.set_title(f"Where EfficientNet-Lite0's {total:,} parameters live")
plt.show()

# %% [markdown]
# Less than 0.02 % of the weights — the stem — can be drawn as pictures of pixels. About 4 % are
# depthwise kernels, which can be drawn but act on abstract channels; everything else is channel
# mixing.
#
# Meanwhile the region of the input a unit can see — its *receptive field* — grows with depth
# although every kernel stays $3\times3$ or $5\times5$. Going through the convolutions in order,
# a $k\times k$ layer adds $(k-1)\,J$ pixels, where the *jump* $J$ is the product of all strides
# before it:
#
# $$ r_\ell = r_{\ell-1} + (k_\ell - 1)\,J_{\ell-1}, \qquad J_\ell = J_{\ell-1}\, s_\ell,
# \qquad r_0 = 1,\; J_0 = 1. $$

# %%
r, jump, rf = 1, 1, {}
for name, module in model.named_modules():              # definition order = forward order here
    if isinstance(module, torch.nn.Conv2d):
        r += (module.kernel_size[0] - 1) * jump
        jump *= module.stride[0]
        rf[name.rsplit(".", 2)[0] if name.startswith("stages") else name.split(".")[0]] = (r, jump)
stage_end = {k: v for k, v in rf.items() if k == "stem" or k.startswith("stages") or k == "head"}
fig, ax = plt.subplots(figsize=(10, 3), layout="constrained")
ax.plot(list(stage_end), [v[0] for v in stage_end.values()], "o-", label="receptive field (pixels)")
ax.axhline(224, color="gray", ls="--", label="input size 224")
ax.set_yscale("log")
ax.set_ylabel("pixels (log scale)")
ax.set_xlabel("output of block")
ax.tick_params(axis="x", rotation=60, labelsize=8)
ax.set_title("Theoretical receptive field after each block (while every kernel stays 3x3 or 5x5)")
ax.legend()
plt.show()
for name in ("stem", "stages.1.1", "stages.3.2", "stages.4.0", "stages.4.1", "stages.5.3"):
    print(f"{name:11s} receptive field {stage_end[name][0]:4d} px, jump {stage_end[name][1]:2d} px")

# %% [markdown]
# Let us look at depthwise kernels from four blocks anyway (first 24 channels of each, per-filter
# scaling):

# %%
blocks = [(1, 0), (2, 0), (4, 1), (5, 2)]
fig = plt.figure(figsize=(14, 4.2), layout="constrained")
for sub, (s, b) in zip(fig.subfigures(1, 4, wspace=0.04), blocks):
    W = ref.depthwise_filters(model, s, b)
    conv = model.stages[s][b].depthwise.conv
    show_filters(W[:24], axes=sub.subplots(6, 4))
    sub.suptitle(f"stages.{s}.{b}.depthwise\n{W.shape[0]} x {conv.kernel_size[0]}x{conv.kernel_size[1]}, stride {conv.stride[0]}",
                 fontsize=10)
plt.show()

# %% [markdown]
# Some of these kernels look like blobs, edges or centre-surround patterns; many in the deeper,
# stride-1 blocks are a single bright or dark centre pixel: they mostly *pass their channel
# through*, with a little of the neighbourhood added or subtracted. Two numbers make this precise,
# each compared with random kernels of the same size (dashed):
#
# * **centre energy** `ref.center_energy`: the fraction $w_{\text{centre}}^2 / \sum w^2$ of a
#   kernel's energy in its centre pixel (random: $1/k^2$);
# * **best Gabor correlation** (the quantity you implement in Exercise 4): the largest Pearson
#   correlation between the kernel and any element of a Gabor bank of its size.

# %%
gen = torch.Generator().manual_seed(0)
names, centre, centre_rand, gab, gab_rand = [], [], [], [], []
stem_grey = W_stem.mean(dim=1)                                  # (32, 3, 3): response to grey input
layers = [("stem 3x3/2", stem_grey)] + [
    (f"{s}.{b} {k}x{k}{'/2' if st == 2 else ''}", ref.depthwise_filters(model, s, b)[:, 0].cpu())
    for s in range(len(model.stages)) for b in range(len(model.stages[s]))
    for k, st in [(model.stages[s][b].depthwise.conv.kernel_size[0], model.stages[s][b].depthwise.conv.stride[0])]]
for name, W in layers:
    alive = W[W.flatten(1).norm(dim=1) > 1e-3]                  # leave out dead (all-zero) kernels
    k = W.shape[-1]
    bank_k, _ = ref.gabor_bank(k, wavelengths=(3.0, 6.0) if k == 3 else (4.0, 8.0))
    noise = torch.randn(alive.shape, generator=gen)
    names.append(name)
    centre.append(ref.center_energy(alive).mean().item())
    centre_rand.append(ref.center_energy(noise).mean().item())
    gab.append(ref.best_matching_gabor(alive, bank_k)[1].mean().item())
    gab_rand.append(ref.best_matching_gabor(noise, bank_k)[1].mean().item())

fig, axes = plt.subplots(1, 2, figsize=(14, 3.6), layout="constrained")
for ax, real, rand, title in ((axes[0], centre, centre_rand, "mean centre energy"),
                              (axes[1], gab, gab_rand, "mean best-Gabor correlation")):
    ax.plot(names, real, "o-", label="EfficientNet-Lite0 kernels")
    ax.plot(names, rand, "k--", label="random kernels, same size")
    ax.set_title(title)
    ax.set_xlabel("layer: stem (RGB averaged), then depthwise of block stages.S.B  (k x k, /2 = stride 2)")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    ax.legend(fontsize=8)
plt.show()
print(f"{'layer':12s} {'centre energy / random':>23s} {'best-Gabor r - random':>22s}")
for name, c, cr, g, gr in zip(names, centre, centre_rand, gab, gab_rand):
    print(f"{name:12s} {c / cr:>22.1f}x {g - gr:>+22.2f}")

# %% [markdown]
# Read the plots with care (the table prints the ratios and differences). For $3\times3$ kernels the
# Gabor score barely separates real from random (differences between −0.03 and +0.07): with only 9
# numbers (8 after removing the mean) *random* kernels already correlate about 0.7 with some element
# of a 64-element bank — anything looks like something. For $5\times5$ kernels the score separates
# them, most clearly in the stride-2 blocks `2.0` and `5.0` (+0.26 and +0.20; the other $5\times5$
# blocks +0.05 to +0.12), which downsample and must smooth their input first. The centre energy is
# 6–13 times the random level in the deep $5\times5$ stride-1 blocks (`4.x`, `5.1`–`5.3`; `2.1`
# too), about 4–6 times in the $3\times3$ stride-1 blocks `0.0`, `1.1`, `3.1`, `3.2`: those kernels
# mostly pass their channel through. It is only about 2–3 times random in the stem and the stride-2
# blocks, and in the last block, `6.0`, it is even below random.
#
# **Question 1** (2 points). Even though every depthwise kernel is still a small $3\times3$ or
# $5\times5$ picture, looking at the weights of deeper layers tells us little about what the
# network detects there. Give **three** distinct reasons, using what you saw and measured in this
# notebook (numbers where you can). Then name one method from the lectures that does reveal what a
# deeper unit responds to.

# %% [markdown] nbgrader="manual" id="question_1" points=2
# ### BEGIN SOLUTION
# Model answer (any three well-argued reasons get full marks; 2 points = three reasons + a method):
#
# 1. **The inputs are not pixels.** A depthwise kernel acts on one channel of the expanded
#    representation, an abstract feature built by all earlier layers. "An edge detector on channel
#    37" says nothing until we know what channel 37 means; the stem is readable only because its
#    input channels are R, G, B.
# 2. **Most weights have no spatial shape.** About 68 % of the parameters are $1\times1$
#    expand/project/head convolutions (and 27.5 % the linear classifier): matrices that mix hundreds
#    of channels, with nothing to draw. The drawable depthwise kernels are about 4 %, the stem 0.02 %.
# 3. **A unit's meaning is spread over many layers.** What a deep unit responds to is a composition
#    of stem → expand → depthwise → project → … ; its receptive field grows from 3 pixels (stem) to
#    147 (end of stage 3) and beyond the whole 224-pixel image from block `stages.4.1` on, while each kernel
#    stays $3\times3$ or $5\times5$: no single kernel contains the pattern, and a 5x5 kernel whose
#    pixels are 16 input pixels apart is not a picture of anything in the image.
# 4. **Scale and sign are not in the kernel.** BatchNorm rescales (and may flip) each channel after
#    the convolution, ReLU6 clips, and per-filter display scaling hides magnitudes (dead kernels
#    look as strong as live ones), so the picture of a raw kernel can mislead.
# 5. **Many deep kernels are nearly trivial**: the deep $5\times5$ stride-1 depthwise kernels put
#    6–13 times the random share of their energy in the centre pixel — they mostly copy their
#    channel — and the Gabor score of $3\times3$ kernels is within 0.07 of random kernels'.
#
# Methods that do work look at *activations* or *sensitivities* instead of weights: maximally
# activating image patches, occlusion or gradient saliency, or gradient ascent on the input
# (feature visualisation) — assignments 02–04.
# ### END SOLUTION

# %% [markdown]
# ## Part 5 · Going further: watch first-layer filters form
#
# The lectures' famous first-layer picture (AlexNet, 11×11 filters) shows Gabor-like stripes and
# colour blobs. EfficientNet's $3\times3$ stem is too small to show them, so let us train a network
# of our own, in seconds, watch its first layer form, and measure whether it becomes Gabor-like. The data are scikit-learn's 1,797
# handwritten digits ($8\times8$ pixels, values scaled to $[0, 1]$), split 75 % / 25 % into a
# training and a test set. `DigitsCNN` has a first layer of eight $5\times5$ filters (padding 2),
# then a $3\times3$ layer, pooling, and a linear classifier — about 2,000 parameters.

# %%
X_train, y_train = load_digits(split="train")
X_test, y_test = load_digits(split="test")
print(f"train {tuple(X_train.shape)}, test {tuple(X_test.shape)}; pixels in [{X_train.min():.0f}, {X_train.max():.0f}]")
show_images(X_train[:16], titles=[f"label {int(t)}" for t in y_train[:16]], ncols=8, figsize=(9, 2.8),
            suptitle="The first 16 training digits (8x8 pixels)")
plt.show()

digits_net = DigitsCNN(seed=0)
W_before = digits_net.conv1.weight.detach().clone()          # (8, 1, 5, 5), random initialisation
epochs = helpers.fast(full=30, fast=15)
t0 = time.perf_counter()
history = train_classifier(digits_net, X_train, y_train, epochs=epochs, seed=0)
seconds = time.perf_counter() - t0
W_after = digits_net.conv1.weight.detach().clone()
print(f"trained {epochs} epochs in {seconds:.1f} s; test accuracy {accuracy(digits_net, X_test, y_test):.1%} "
      f"(random init: {accuracy(DigitsCNN(seed=0), X_test, y_test):.1%})")

fig = plt.figure(figsize=(13, 2.8), layout="constrained")
sub_loss, sub_before, sub_after = fig.subfigures(1, 3, width_ratios=[1, 1.3, 1.3])
ax = sub_loss.subplots()
ax.plot(range(1, epochs + 1), history, "o-")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss (cross-entropy)")
ax.set_title("training")
show_filters(W_before, axes=sub_before.subplots(2, 4))
sub_before.suptitle("conv1 filters before training (random)")
show_filters(W_after, axes=sub_after.subplots(2, 4))
sub_after.suptitle("conv1 filters after training")
plt.show()


# %% [markdown]
# ### Exercise 4 · Which Gabor does a filter look like? (3 points)
#
# Implement `best_matching_gabor(filters, bank)`. For every filter $f$ and every bank element $g$
# compute the **Pearson correlation** of their flattened pixels,
#
# $$
# \rho(f, g) = \frac{\langle f - \bar f,\; g - \bar g\rangle}{\lVert f - \bar f\rVert\;\lVert g - \bar g\rVert},
# $$
#
# and return, for each filter, the index of the bank element with the **largest** $\rho$ and that
# value. The correlation is **signed**: a filter that is the negative of a bank element correlates
# $-1$ with it and is *not* a match (the default bank contains both signs, so it matches the
# element of opposite phase instead). Details:
#
# * `filters` has shape $(K, h, w)$ or $(K, C, h, w)$; with input channels, **average over them
#   first** (for an RGB filter: its response to grey images).
# * `bank` has shape $(M, h, w)$ with the same $h, w$; otherwise raise a `ValueError`.
# * A constant filter (zero norm after removing its mean) correlates 0 with everything; avoid
#   dividing by zero.
# * Return `(indices, correlations)`: an int64 tensor $(K,)$ and a float tensor $(K,)$.
# * No Python loops over filters or bank elements: flatten, centre, normalise, one matrix product.

# %% nbgrader="answer" id="best_matching_gabor_answer"
def best_matching_gabor(filters, bank):
    """For every filter, the bank element with the largest (signed) Pearson correlation.

    filters: float tensor (K, h, w) or (K, C, h, w); channels are averaged first.
    bank:    float tensor (M, h, w), same h and w (else ValueError).
    Returns (indices, correlations): int64 tensor (K,) and float tensor (K,).
    A constant filter correlates 0 with every bank element.
    """
    ### BEGIN SOLUTION
    if filters.ndim == 4:
        filters = filters.mean(dim=1)
    if filters.shape[-2:] != bank.shape[-2:]:
        raise ValueError(f"bank kernels must have the filters' size {tuple(filters.shape[-2:])}, "
                         f"got {tuple(bank.shape[-2:])}")

    def unit(t):
        flat = t.reshape(t.shape[0], -1).double()
        flat = flat - flat.mean(dim=1, keepdim=True)
        norm = flat.norm(dim=1, keepdim=True)
        return torch.where(norm > 1e-12, flat / norm.clamp_min(1e-12), torch.zeros_like(flat))

    corr = unit(filters) @ unit(bank).T                 # (K, M)
    best, idx = corr.max(dim=1)
    return idx, best.float()
    ### END SOLUTION


# %% nbgrader="tests" id="best_matching_gabor_test" points=2
# Tests for Exercise 4, part 1: indices and correlations.
import torch
import helpers
from helpers import filters as ref
from helpers.testing.filters import check_best_matching_gabor

_bank, _ = ref.gabor_bank(5)                                     # (64, 5, 5)
# Copies of bank elements 0, 9, 40, rescaled and shifted: Pearson correlation ignores both (r = 1).
check_best_matching_gabor(best_matching_gabor, 3.0 * _bank[[0, 9, 40]] + 1.0, _bank, what="3 bank[[0, 9, 40]] + 1",
                          hint="subtract each filter's mean and divide by its norm before the dot product")
# -bank[0] (psi = 0) matches the element of opposite phase (psi = pi) with r = +1, not element 0.
check_best_matching_gabor(best_matching_gabor, -_bank[[0]], _bank, what="-bank[[0]]")

### BEGIN HIDDEN TESTS
helpers.seed_everything(0)
_bank7, _ = ref.gabor_bank(7, n_orientations=8, wavelengths=(4.0, 8.0))
_planted = _bank7[torch.randint(0, _bank7.shape[0], (30,))]
_filters = _planted * (torch.rand(30, 1, 1) * 3 + 0.5) + torch.randn(30, 1, 1) + 0.05 * torch.randn(30, 7, 7)
check_best_matching_gabor(best_matching_gabor, _filters, _bank7, what="noisy, rescaled copies of bank elements")
check_best_matching_gabor(best_matching_gabor, torch.randn(20, 5, 5), _bank, what="random filters")
### END HIDDEN TESTS
print("Exercise 4, part 1: all visible tests passed.")

# %% nbgrader="tests" id="best_matching_gabor_channels_test" points=1
# Tests for Exercise 4, part 2: channels, constant filters, errors.
import torch
import helpers
from helpers import filters as ref
from helpers.testing.filters import assert_raises, check_best_matching_gabor

_bank, _ = ref.gabor_bank(5)
# (K, C, h, w): the channels are averaged first.  Here the two channels average to bank[17].
_f = torch.stack([_bank[17] + 0.5 * _bank[3], _bank[17] - 0.5 * _bank[3]]).unsqueeze(0)   # (1, 2, 5, 5)
check_best_matching_gabor(best_matching_gabor, _f, _bank, what="a (1, 2, 5, 5) filter whose channels average to bank[17]",
                          hint="average the filters over their input channels (dimension 1) first")

### BEGIN HIDDEN TESTS
helpers.seed_everything(1)
check_best_matching_gabor(best_matching_gabor, torch.randn(6, 3, 5, 5), _bank, what="RGB filters (6, 3, 5, 5)",
                          hint="average over the input channels before correlating")
check_best_matching_gabor(best_matching_gabor, torch.cat([torch.full((1, 5, 5), 2.0), _bank[[5]]]), _bank,
                          what="a constant filter and bank[5]", hint="a constant filter correlates 0 with everything (no NaN)")
assert_raises(ValueError, best_matching_gabor, torch.randn(2, 3, 3), _bank, why="3x3 filters and a 5x5 bank")
### END HIDDEN TESTS
print("Exercise 4, part 2: all visible tests passed.")

# %% [markdown]
# ### What did training change?
#
# Each trained filter next to its best-matching Gabor (reference implementation), with the
# orientation $\theta$ and the correlation $r$. Two numbers describe a filter: its best-Gabor $r$
# and its spatial smoothness `ref.smoothness` (1 − mean squared difference between neighbouring
# pixels / twice the variance: about 0 for noise, near 1 for smooth patterns).
#
# A high $r$ alone proves little. Every Gabor kernel is a smooth pattern, so *any* smooth filter
# correlates fairly well with some element of the bank. The fair baseline is therefore not plain
# noise but **smoothed noise**: random $5\times5$ kernels blurred by Gaussians of various widths,
# which have spatial structure but no Gabor shape. For each filter we average the $r$ of the 100
# smoothed-noise kernels whose smoothness is closest to the filter's own ("smooth noise" under each
# Gabor in the figure). The last lines repeat the comparison for two more training seeds.

# %%
bank5, params5 = ref.gabor_bank(5)
idx_after, r_after = ref.best_matching_gabor(W_after, bank5)
idx_before, r_before = ref.best_matching_gabor(W_before, bank5)

# The baseline: noise blurred by Gaussians of 27 widths from 0.2 to 1.5 pixels (150 kernels each).
gen = torch.Generator().manual_seed(0)
smooth_noise = torch.cat([F.conv2d(torch.randn(150, 1, 11, 11, generator=gen),
                                   ref.gaussian_kernel(7, float(sigma)).view(1, 1, 7, 7))[:, 0]
                          for sigma in torch.linspace(0.2, 1.5, 27)])            # (4050, 5, 5)
s_pool, r_pool = ref.smoothness(smooth_noise), ref.best_matching_gabor(smooth_noise, bank5)[1]


def smooth_noise_r(W):
    """For each filter: the mean best-Gabor r of the 100 smoothed-noise kernels closest in smoothness."""
    return torch.stack([r_pool[(s_pool - s).abs().argsort()[:100]].mean() for s in ref.smoothness(W)])


base_after = smooth_noise_r(W_after)
fig, axes = plt.subplots(2, 8, figsize=(13, 4), layout="constrained")
show_filters(W_after, axes=axes[0], titles=[f"filter {k}" for k in range(8)])
show_filters(bank5[idx_after].unsqueeze(1), axes=axes[1],
             titles=[f"θ={params5[int(i)]['theta_deg']:.0f}° ψ={params5[int(i)]['psi'] / math.pi:.1f}π\n"
                     f"r = {float(r):.2f}\nsmooth noise {float(b):.2f}" for i, r, b in zip(idx_after, r_after, base_after)])
fig.suptitle("Trained conv1 filters (top) and their best-matching Gabor kernels (bottom)")
plt.show()

noise = torch.randn(2000, 5, 5, generator=torch.Generator().manual_seed(0))
patches = F.unfold(F.pad(X_train, (2, 2, 2, 2)), 5).transpose(1, 2).reshape(-1, 5, 5)   # the windows conv1 sees
patches = patches[patches.flatten(1).std(dim=1) > 0.05]                                # not blank background
patches = patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(0))[:2000]]
rows = [("random noise (2000 kernels)", ref.best_matching_gabor(noise, bank5)[1], ref.smoothness(noise)),
        ("5x5 patches of digits (2000)", ref.best_matching_gabor(patches, bank5)[1], ref.smoothness(patches)),
        ("conv1 before training", r_before, ref.smoothness(W_before)),
        ("conv1 after training", r_after, ref.smoothness(W_after)),
        ("smooth noise, same smoothness", base_after, ref.smoothness(W_after))]
print(f"{'':30s} {'best-Gabor r':>14s} {'smoothness':>11s}")
for name, r, s in rows:
    print(f"{name:30s} {r.mean():>14.2f} {s.mean():>11.2f}")
print(f"training moved the conv1 weights by {(W_after - W_before).norm() / W_before.norm():.1f} times their initial norm")
margin = r_after - base_after
print(f"margin over smooth noise of the same smoothness, filters 0-7: " + " ".join(f"{float(m):+.2f}" for m in margin)
      + f"  ({int((margin > 0).sum())} of 8 above)")

print(f"\nThree training runs ({epochs} epochs each):")
for seed in (0, 1, 2):
    if seed == 0:
        w0, w1 = W_before, W_after
    else:
        net = DigitsCNN(seed=seed)
        w0 = net.conv1.weight.detach().clone()
        train_classifier(net, X_train, y_train, epochs=epochs, seed=seed, progress=False)
        w1 = net.conv1.weight.detach().clone()
    r0, r1 = ref.best_matching_gabor(w0, bank5)[1].mean(), ref.best_matching_gabor(w1, bank5)[1].mean()
    b1 = smooth_noise_r(w1).mean()
    print(f"  seed {seed}: smoothness {ref.smoothness(w0).mean():+.2f} -> {ref.smoothness(w1).mean():+.2f}, "
          f"best-Gabor r {r0:.2f} -> {r1:.2f}; smooth noise of the same smoothness {b1:.2f} (margin {r1 - b1:+.2f})")

# %% [markdown]
# Training changed the filters a lot (the weights moved about three times their initial norm): their
# smoothness rose from 0.02 to 0.38 and their best-Gabor $r$ from 0.46 to 0.63, far above plain
# noise (0.43) and close to the digit patches themselves (0.48 and 0.64). In the pictures some
# filters now have a broad light region next to a dark one — an edge or a bar (filters 0, 5 and 7
# in this run) — while others are still blotchy.
#
# But compare with the fair baseline: smoothed noise as smooth as the trained filters already scores
# 0.60. Most of the rise of $r$ (0.14 of 0.17) comes from the filters becoming smoother, not from a
# Gabor shape; the trained filters beat equally smooth noise by only 0.04, and the three training
# seeds agree (margins +0.04 to +0.05). The largest single margin is filter 5's, a horizontal light
# bar, +0.15. So a $5\times5$ first
# layer trained for seconds on 1,347 tiny digits learns smooth blob and edge detectors, not clean
# Gabor filters. The striking Gabor pictures of AlexNet come from $11\times11$ filters trained on a
# million natural photographs.
#
# **Question 2** (2 points). Compare the digits network's first-layer filters before and after
# training, using the pictures and the numbers above. (a) What changed, and why does training on
# handwritten digits make the filters smoother rather than leaving them as noise? (Hint: the
# gradient of the loss with respect to a first-layer filter is a weighted sum of input patches.)
# (b) The trained filters' best-Gabor $r$ is far above that of random noise. Does this show that
# they became Gabor filters? Use the smoothed-noise baseline and the three seeds. Two or three
# sentences each.

# %% [markdown] nbgrader="manual" id="question_2" points=2
# ### BEGIN SOLUTION
# Model answer (1 point each part; accept other numbers if the run differs a little):
#
# (a) The random initial filters are pixel noise (smoothness about 0, best-Gabor r 0.46, at the
# level of random noise, 0.43). After training they are smoother (smoothness 0.38; 0.23–0.38 over
# three seeds) with higher r (0.63): broad light and dark regions, a few with a clear edge or bar
# (filters 0, 5, 7). The gradient of the loss with respect to a first-layer filter is a sum of
# input patches weighted by the backpropagated error, so every update is a mix of digit patches.
# Digit strokes are blurry, one or two pixels wide (5x5 digit patches have smoothness 0.48), so the
# filters, which moved about three times their initial norm, inherit that smoothness and the
# light/dark edges of strokes.
#
# (b) No, hardly. Gabor kernels are smooth, so any smooth filter correlates well with some element
# of the bank: noise blurred to the same smoothness already reaches r = 0.60, and the trained
# filters beat it by only about 0.04 (+0.04 to +0.05 over three seeds; the best single filter, a
# horizontal bar, by 0.15). The rise from 0.46 to 0.63 is mostly smoothness; plain noise (0.43) is
# the wrong baseline. The filters are smooth blob and stroke-edge detectors shaped by $8\times8$ digits:
# $5\times5$ is most of the image, there are only 1,347 images, and nothing pushes them towards
# oriented gratings the way a million natural photos push AlexNet's $11\times11$ filters.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# * A convolution layer computes $y = b + \sum w \cdot x_{\text{patch}}$ at every position —
#   cross-correlation, output size $\lfloor (H + 2p - k)/s \rfloor + 1$ — and each output is a
#   template-matching score.
# * First-layer weights are readable because their inputs are pixels. Display them per filter to see
#   shapes, globally (plus norms) to see strengths — dead filters hide in the per-filter view.
# * Hand-made kernels (Sobel, Gaussian, Gabor) are the vocabulary for describing learned ones; a
#   learned $5\times5$ first layer moves from noise to smooth blob and edge detectors; compared with
#   equally smooth random filters, it is barely more Gabor-like. A score needs a fair baseline.
# * Deeper weights act on abstract channels, mostly through $1\times1$ channel mixing; to understand
#   deep units we must look at what they *do* with images. That is the next assignment:
#   **02 · Activations**.
