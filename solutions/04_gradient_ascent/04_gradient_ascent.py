# %% [markdown]
# # 04 · Generate an image that a neuron loves (22 points)
#
# Notebook 03 asked which pixels of a *given* photo matter to the network. This notebook turns the
# question around: keep the network fixed and **optimise the image**. Start from grey, compute the
# gradient of a class score (or of one neuron) with respect to the pixels, take a small step uphill,
# repeat. What comes out is the image that the unit "loves" — as long as we also tell the optimiser
# what an image is allowed to look like. Without such a *prior*, gradient ascent finds garish
# high-frequency patterns that convince the network and nobody else; most of this notebook is about
# priors that make the pictures readable, and about what the pictures can (and cannot) tell us.
#
# **Learning goals.** After this notebook you can
#
# * write the class-visualisation step of Simonyan et al. (2014),
#   $I^* = \arg\max_I S_c(I) - \lambda\lVert I\rVert^2$, and explain why it uses the raw score;
# * implement the image priors that make the results readable: the **total-variation** prior of
#   Mahendran & Vedaldi (2015), a **multi-scale edge energy**, and the **blur and clip** steps of
#   Yosinski et al. (2015) — and compare them with jitter and a Fourier parameterisation
#   (Olah et al., 2017) at the same budget;
# * visualise units of shallow, middle and deep layers and relate what you see to their
#   receptive fields (notebook 02);
# * **invert** a representation: find an image whose features at one layer match a photo's, and
#   read off what each depth keeps and throws away;
# * write the **DeepDream** step (Mordvintsev et al., 2015) and run it with octaves.
#
# **How this notebook is graded.**
#
# | | points |
# |---|---|
# | Exercise 1 · `l2_class_step` | 3 |
# | Exercise 2 · `tv_loss` | 2 |
# | Exercise 3 · `edge_energy` | 2 |
# | Exercise 4 · `blur_and_clip` | 3 |
# | Exercise 5 · `invert_features` | 3 |
# | Exercise 6 · `deepdream_step` | 3 |
# | Questions 1–3 (written, graded by hand) | 6 |
# | **total** | **22** |
#
# * Write your code between the function's docstring and its end, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures.
# * Each exercise is followed by a locked **test cell**. The *visible* tests check the basics and
#   say what went wrong; when your notebook is graded the same cells run *hidden* tests with more
#   cases (other models, batches, float64, odd sizes), check that your function leaves its inputs
#   and the model as it found them, and check that you did not call the course's reference
#   implementation (`helpers.ascent`).
# * Images are float tensors (N, 3, H, W) with pixels in $[0, 1]$. The network normalises its own
#   input, $(x - 0.5)/0.5$, so the **grey image 0.5 is what the network sees as all zeros**: the
#   "start from zero" of the papers is a grey start here, and an L2 penalty measures the distance
#   from grey.
# * Always take gradients with `torch.autograd.grad(objective, x)`: it computes the gradient for the
#   image only and leaves the `.grad` of the network's weights alone (`objective.backward()` would
#   fill them).
# * The demos use the reference implementations (`helpers.ascent`, imported as `ref`), so a bug in
#   one exercise does not break the rest of the notebook.
# * The notebook runs in about four minutes on an otherwise idle laptop CPU, half of it for the
#   class gallery of Part 2 (in fast mode, `COURSE_FAST=1`, which is set while grading: about a
#   minute, with smaller images and fewer steps). Run it top to bottom
#   before you submit (*Kernel → Restart & Run All*).

# %% nbgrader="setup"
# The course setup cell: `python -m grading release` inserts grading/setup_cell.py here.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers import ascent as ref             # reference implementations used by the demos
from helpers.filters import apply_filter, gaussian_blur, gaussian_kernel
from helpers.images import load_image
from helpers.models import imagenet_labels, load_model
from helpers.plotting import show_images
from helpers.taps import features

plt.rcParams["figure.dpi"] = 90
FAST = helpers.is_fast()
SIZE = helpers.fast(full=128, fast=96)       # side of generated images: multiples of 32 suit the network
STEPS = helpers.fast(full=150, fast=30)      # optimisation steps per picture
model = load_model("efficientnet_lite0").to(device)
labels = imagenet_labels()


def top_classes(x, k=3):
    # "label 97%, label 2%, ..." for one image (1, 3, H, W)
    with torch.no_grad():
        p = model(x.to(device)).softmax(dim=1)[0]
    vals, idx = p.topk(k)
    return ", ".join(f"{labels[int(i)]} {float(v):.0%}" for v, i in zip(vals, idx))


print(f"{'fast' if FAST else 'full'} mode: {SIZE}x{SIZE} images, {STEPS} steps per picture")


# %% [markdown]
# ## Part 1 · Class visualisation by gradient ascent
#
# Simonyan, Vedaldi & Zisserman ("Deep Inside Convolutional Networks", 2014) asked for the image
# that maximises the **raw score** $S_c$ of a class $c$ — the logit, before the softmax — under an
# L2 penalty that keeps the image from growing without bound:
#
# $$
# I^* = \arg\max_I \; S_c(I) - \lambda \lVert I - 0.5\rVert_2^2 .
# $$
#
# The recipe from the lecture: start from the zero image (grey, here), forward, backpropagate to the
# pixels, take a small step, repeat. One step of plain gradient ascent with step size $\eta$ is
#
# $$
# J(I) = \sum_{n} S_c(I_n) - \lambda \lVert I - 0.5\rVert_2^2, \qquad
# I \leftarrow I + \eta\, \nabla_I J(I), \qquad
# \nabla_I \lambda\lVert I - 0.5\rVert^2 = 2\lambda\,(I - 0.5).
# $$
#
# Why not maximise the probability $\operatorname{softmax}(S)_c$? It can rise simply by making the
# *other* classes less likely; the raw score asks the direct question "make this more like class
# $c$". (It is the same reason notebook 03's saliency maps use the raw score.)
#
# ### Exercise 1 · `l2_class_step` (3 points)
#
# Implement **one** step: `l2_class_step(model, x, target, *, lr, l2_reg)`.
#
# * `x` is a batch (N, 3, H, W) (values may leave $[0, 1]$: this function does **not** clamp),
#   `target` an int class index (the same for every image), `lr` is $\eta$ and `l2_reg` is
#   $\lambda$.
# * The objective $J$ sums the target's raw score over the batch and subtracts $\lambda$ times the
#   squared distance of the **whole batch** from grey (0.5). Each image's score depends only on its
#   own pixels, so one gradient gives every image its own step.
# * Work on a copy that requires grad (`x = x.detach().clone().requires_grad_(True)`), get the
#   gradient with `torch.autograd.grad(J, x)` and return `(x + lr * grad).detach()`: a new tensor
#   without autograd history, same shape and dtype as the given `x`. The model is given in eval
#   mode; leave it as it is.

# %% nbgrader="answer" id="l2_class_step_answer"
def l2_class_step(model, x, target, *, lr, l2_reg):
    """One gradient-ascent step on J(x) = sum_n S_target(x_n) - l2_reg * ||x - 0.5||^2.

    model: images (N, 3, H, W) -> raw scores (N, K); x: (N, 3, H, W); target: int
    lr: step size; l2_reg: penalty weight lambda
    Returns the new images (N, 3, H, W), detached, not clamped.
    """
    ### BEGIN SOLUTION
    x = x.detach().clone().requires_grad_(True)
    score = model(x)[:, target].sum()
    objective = score - l2_reg * ((x - 0.5) ** 2).sum()
    (grad,) = torch.autograd.grad(objective, x)
    return (x + lr * grad).detach()
    ### END SOLUTION


# %% nbgrader="tests" id="l2_class_step_test" points=3
# Tests for Exercise 1: one step by hand on a linear model, batches, a CNN.
import torch
from helpers import ascent as ref
from helpers.testing import assert_close
from helpers.testing.ascent import check_image, student
from helpers.testing.nets import TinyCNN, linear_net, random_images


def _step(model, x, target, **kw):
    return check_image(student(l2_class_step, model, x, target, **kw), x, "l2_class_step")


# A linear model: the gradient of logit c is its weight row W_c, and the gradient of
# lambda * ||x - 0.5||^2 is 2 * lambda * (x - 0.5).  So the step can be written down.
_net = linear_net(seed=0)
_W = _net[1].weight.detach().reshape(-1, 3, 4, 4)
_x = random_images(1, side=4, seed=1)
assert_close(_step(_net, _x, 2, lr=0.1, l2_reg=0.0), _x + 0.1 * _W[2:3], atol=1e-10,
             name="l2_class_step(linear net, lr=0.1, l2_reg=0)",
             hint="ascend the raw score: x + lr * d S_c / d x (the logit, not its softmax)")
assert_close(_step(_net, _x, 2, lr=0.1, l2_reg=0.5), _x + 0.1 * (_W[2:3] - (_x - 0.5)), atol=1e-10,
             name="l2_class_step(..., l2_reg=0.5)",
             hint="the penalty is l2_reg * sum((x - 0.5)**2); its gradient is 2 * l2_reg * (x - 0.5)")

### BEGIN HIDDEN TESTS
# a batch of two: each image gets the gradient of its own score (sum, not mean, over the batch)
_x2 = random_images(2, side=4, seed=2)
assert_close(_step(_net, _x2, 1, lr=0.3, l2_reg=0.2), _x2 + 0.3 * (_W[1:2] - 0.4 * (_x2 - 0.5)), atol=1e-10,
             name="l2_class_step on a batch of 2",
             hint="J sums the target score over the batch, so every image moves by its own full gradient")
# large steps leave [0, 1]: no clamping inside the step
assert_close(_step(_net, _x, 0, lr=5.0, l2_reg=0.0), _x + 5.0 * _W[0:1], atol=1e-9,
             name="l2_class_step with a large step", hint="do not clamp inside the step; the caller decides")
# a small CNN with trainable weights, float64: compare with the reference computed beforehand
_cnn, _x3 = TinyCNN(seed=3).double(), random_images(3, side=8, seed=4)
_expected = ref.l2_class_step(_cnn, _x3, 4, lr=0.7, l2_reg=0.05)
assert_close(_step(_cnn, _x3, 4, lr=0.7, l2_reg=0.05), _expected, name="l2_class_step on a small CNN", atol=1e-10)
### END HIDDEN TESTS
print("Exercise 1: all visible tests passed.")

# %% [markdown]
# Now run it on the real network: start from grey, take `STEPS` steps towards class 130,
# *flamingo*, and watch the score. The demo clamps the image to $[0, 1]$ after every step, so that it
# stays an image. Step size $\eta = 0.5$ and $\lambda = 10^{-3}$ are the kind of values the paper's
# recipe needs on this network; try others.

# %%
FLAMINGO = 130
img = torch.full((1, 3, SIZE, SIZE), 0.5, device=device)
trace = []
t0 = time.perf_counter()
for step in helpers.progress(range(STEPS), desc="flamingo, plain L2"):
    img = ref.l2_class_step(model, img, FLAMINGO, lr=0.5, l2_reg=1e-3).clamp(0, 1)
    with torch.no_grad():
        logits = model(img)
    trace.append((float(logits[0, FLAMINGO]), float(logits.softmax(dim=1)[0, FLAMINGO])))
plain_l2 = img.cpu()
print(f"{STEPS} steps in {time.perf_counter() - t0:.1f} s; the network now says: {top_classes(img)}")
sure = [i for i, (_, p) in enumerate(trace) if p > 0.99]
print(f"P(flamingo) > 0.99 first at step {sure[0] if sure else 'never'}; the raw score goes on from "
      f"{trace[sure[0]][0] if sure else float('nan'):.1f} there to {trace[-1][0]:.1f}")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
show_images([plain_l2[0]], titles=["argmax S_flamingo - 1e-3 ||I - 0.5||^2"], axes=[axes[0]])
axes[1].plot([s for s, _ in trace])
axes[1].set(xlabel="step", ylabel="raw score S_flamingo", title="the score climbs")
axes[2].plot([p for _, p in trace])
axes[2].set(xlabel="step", ylabel="P(flamingo)", ylim=(0, 1.02), title="the probability saturates early")
plt.show()


# %% [markdown]
# The network is certain — and nothing in the picture looks like a flamingo: it is saturated,
# pixel-sized colour noise with at most a faint hint of curves. Gradient ascent found what the
# network *responds to*; nothing in the objective says the result should look like a natural image.
# The score keeps climbing long after the probability has saturated (the printed steps), which is
# why the raw score is the useful objective.
#
# ## Part 2 · Priors that make the picture readable
#
# The fix is a **prior**: a penalty (or an operation) that favours images with the statistics of
# photographs — smooth regions, few large edges, no pixel-level checkerboards. You will implement
# three and compare them with two more at the same budget.

# %% [markdown]
# ### Exercise 2 · `tv_loss` (2 points)
#
# Mahendran & Vedaldi ("Understanding Deep Image Representations by Inverting Them", 2015)
# penalise the **total variation** of the image,
#
# $$
# R_\beta(x) = \sum_{c,i,j} \Big( (x_{c,i,j+1} - x_{c,i,j})^2 + (x_{c,i+1,j} - x_{c,i,j})^2 \Big)^{\beta/2},
# $$
#
# summed over every channel $c$ and pixel $(i, j)$. A difference that would leave the image (the
# horizontal one in the last column, the vertical one in the last row) counts as **0**. With
# $\beta = 2$ this is the sum of all squared neighbour differences; $\beta = 1$ is the classic
# total variation, which tolerates a few sharp edges more than many small wiggles.
#
# Implement `tv_loss(x, beta=2.0)` for a batch (N, C, H, W), returning one value per image: shape
# (N,).
#
# * The power is not differentiable at 0 when $\beta < 2$, and autograd turns `0 ** (beta/2)` into
#   an infinite or NaN gradient at every flat pixel — fatal inside an optimiser. Where both
#   differences are 0, make the term exactly 0 with **no** NaN gradient: compute the power only on
#   the positive entries, e.g. `torch.where(sq > 0, safe ** (beta / 2), 0)` with
#   `safe = torch.where(sq > 0, sq, 1)`.
# * Do not wrap around (`torch.roll` would compare the last column with the first).

# %% nbgrader="answer" id="tv_loss_answer"
def tv_loss(x, beta=2.0):
    """Total-variation prior R_beta of every image of a batch.

    x: float tensor (N, C, H, W); beta: exponent > 0
    Returns a tensor (N,): sum over c, i, j of (dx^2 + dy^2) ** (beta / 2), with the differences
    that would leave the image counted as 0.  Differentiable, no NaN gradient at flat pixels.
    """
    ### BEGIN SOLUTION
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    sq = dx ** 2 + dy ** 2
    positive = sq > 0
    safe = torch.where(positive, sq, torch.ones_like(sq))
    terms = torch.where(positive, safe ** (beta / 2), torch.zeros_like(sq))
    return terms.sum(dim=(1, 2, 3))
    ### END SOLUTION


# %% nbgrader="tests" id="tv_loss_test" points=2
# Tests for Exercise 2: a case by hand, both directions, the exponent, batches, gradients.
import torch
from helpers.testing import assert_close
from helpers.testing.ascent import check_per_image, student, tv_by_loops


def _tv(x, *beta):
    return check_per_image(student(tv_loss, x, *beta), x, "tv_loss")


# By hand: x = [[0, 1], [0, 3]].  Pixel (0,0): dx = 1, dy = 0; (0,1): dx = 0 (edge), dy = 2;
# (1,0): dx = 3, dy = 0 (edge); (1,1): both 0.  beta=2: 1 + 4 + 9 = 14; beta=1: 1 + 2 + 3 = 6.
_x = torch.tensor([[[[0.0, 1.0], [0.0, 3.0]]]], dtype=torch.float64)
assert_close(_tv(_x), torch.tensor([14.0], dtype=torch.float64), name="tv_loss([[0, 1], [0, 3]])", atol=1e-9,
             hint="add both squared differences (right neighbour, lower neighbour); edges count as 0, no wrap-around")
assert_close(_tv(_x, 1.0), torch.tensor([6.0], dtype=torch.float64), name="tv_loss([[0, 1], [0, 3]], beta=1)",
             atol=1e-9, hint="the exponent is beta / 2 of the SUM of the two squared differences")
# a flat image has no variation, and the gradient there must not be NaN
_flat = torch.full((1, 1, 4, 4), 0.5, dtype=torch.float64, requires_grad=True)
_v = _tv(_flat, 1.0)
assert _v.requires_grad, "tv_loss must be differentiable (no .item(), NumPy or detach inside)"
(_g,) = torch.autograd.grad(_v.sum(), _flat)
assert float(_v.detach()) == 0.0 and bool(torch.isfinite(_g).all()), (
    f"tv_loss(flat image, beta=1) should be 0 with a finite gradient, got {float(_v.detach())} and a gradient "
    f"with {int((~torch.isfinite(_g)).sum())} NaN/inf entries: compute the power only where sq > 0")

### BEGIN HIDDEN TESTS
_gen = torch.Generator().manual_seed(0)
_xb = torch.rand(3, 2, 5, 7, generator=_gen, dtype=torch.float64)
for _beta in (1.0, 1.5, 2.0, 3.0):
    assert_close(_tv(_xb, _beta), tv_by_loops(_xb, _beta), name=f"tv_loss of a batch (3, 2, 5, 7), beta={_beta}",
                 atol=1e-9, rtol=1e-9)
_x32 = torch.rand(2, 3, 6, 6, generator=_gen)
assert_close(_tv(_x32, 1.0), tv_by_loops(_x32, 1.0).float(), name="tv_loss in float32", atol=1e-4, rtol=1e-5)
# gradients: finite at flat patches, and equal to finite differences
_xg = _xb[:1].clone()
_xg[..., :2, :3] = 0.25
(_g,) = torch.autograd.grad(_tv(_xg.requires_grad_(True), 1.0).sum(), _xg)
assert bool(torch.isfinite(_g).all()), "tv_loss(beta=1) has NaN/inf gradients at flat pixels"
assert torch.autograd.gradcheck(lambda t: tv_loss(t, 1.5), (_xb[:1].clone().requires_grad_(True),), eps=1e-6,
                                atol=1e-5, raise_exception=False), "the gradient of tv_loss(x, 1.5) is wrong"
### END HIDDEN TESTS
print("Exercise 2: all visible tests passed.")


# %% [markdown]
# ### Exercise 3 · `edge_energy` (2 points)
#
# A second prior, from François Fleuret's deep-learning course (lecture 9.4): penalise the energy of
# the fine detail at **every scale**,
#
# $$
# h(x) = \sum_{s \ge 0} \big\lVert \delta^s(x) - g \circledast \delta^s(x) \big\rVert^2 ,
# $$
#
# where $g \circledast u$ blurs $u$ with a 5×5 Gaussian and $\delta$ halves the resolution, so
# $u - g \circledast u$ is a high-pass filter applied at scales 1, 1/2, 1/4, … Precisely:
#
# * treat every channel as a separate grey image: reshape (N, C, H, W) to (N·C, 1, H, W), and
#   at the end sum the C energies of each image: one value per image, shape (N,);
# * $g$ = `gaussian_kernel(5, 1.0)` (imported from `helpers.filters`: $\propto e^{-(u^2+v^2)/2}$,
#   normalised to sum 1), applied with `apply_filter(u, g, padding="reflect")`, which keeps the
#   size;
# * $\delta$ = 2×2 average pooling with stride 2: `F.avg_pool2d(u, 2)` (an odd last row or column
#   is dropped);
# * add scales while the current image is **larger than 5 pixels on its shorter side**: a 32×32
#   image contributes its scales 32, 16 and 8, a 12×12 image 12 and 6, a 10×10 image only 10.

# %% nbgrader="answer" id="edge_energy_answer"
def edge_energy(x):
    """Multi-scale edge energy h(x) of every image of a batch, channels as separate images.

    x: float tensor (N, C, H, W)
    Returns a tensor (N,): sum over scales (while the shorter side > 5) and channels of
    ||u - gaussian(5, 1.0) * u||^2, halving u by 2x2 average pooling between scales.
    """
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    g = gaussian_kernel(5, 1.0, dtype=x.dtype).to(x.device)
    u = x.reshape(n * c, 1, h, w)
    total = torch.zeros(n * c, dtype=x.dtype, device=x.device)
    while min(u.shape[-2], u.shape[-1]) > 5:
        high = u - apply_filter(u, g, padding="reflect")
        total = total + (high ** 2).sum(dim=(1, 2, 3))
        u = F.avg_pool2d(u, 2)
    return total.reshape(n, c).sum(dim=1)
    ### END SOLUTION


# %% nbgrader="tests" id="edge_energy_test" points=2
# Tests for Exercise 3: against SciPy, constants, scales, channels.
import torch
from helpers.testing import assert_close
from helpers.testing.ascent import check_per_image, edge_energy_by_scipy, student


def _edge(x):
    return check_per_image(student(edge_energy, x), x, "edge_energy")


_gen = torch.Generator().manual_seed(0)
_x = torch.rand(1, 1, 16, 16, generator=_gen, dtype=torch.float64)
assert_close(_edge(_x), edge_energy_by_scipy(_x), name="edge_energy of a 16x16 image", atol=1e-9, rtol=1e-9,
             hint="scales 16 and 8 (stop when the shorter side is 5 or less); reflect padding; 2x2 average pooling")
_v = _edge(torch.full((2, 3, 32, 32), 0.7, dtype=torch.float64))
assert float(_v.abs().max()) < 1e-12, f"a constant image has no edges: expected 0, got {_v.tolist()}"

### BEGIN HIDDEN TESTS
for _shape in [(2, 3, 32, 32), (1, 3, 45, 27), (2, 2, 20, 20), (1, 1, 12, 12), (1, 1, 10, 10), (1, 2, 6, 9)]:
    _xb = torch.rand(*_shape, generator=_gen, dtype=torch.float64)
    assert_close(_edge(_xb), edge_energy_by_scipy(_xb), name=f"edge_energy of shape {_shape}", atol=1e-9, rtol=1e-9,
                 hint="each channel separately, summed per image; every scale while min(H, W) > 5")
_x32 = torch.rand(2, 3, 24, 24, generator=_gen).requires_grad_(True)
_v = _edge(_x32)
assert _v.requires_grad, "edge_energy must be differentiable (no .item(), NumPy or detach inside)"
assert_close(_v.detach(), edge_energy_by_scipy(_x32).float(), name="edge_energy in float32", atol=1e-3, rtol=1e-4)
### END HIDDEN TESTS
print("Exercise 3: all visible tests passed.")

# %%
# What the two priors measure: a photo, the same photo with noise, and pure noise of the photo's
# mean and standard deviation.
photo = load_image("chelsea", size=SIZE)
noisy = (photo + 0.1 * torch.randn_like(photo)).clamp(0, 1)
noise = (photo.mean() + photo.std() * torch.randn_like(photo)).clamp(0, 1)
print(f"{'':22s} {'TV (beta=2)':>12s} {'TV (beta=1)':>12s} {'edge energy':>12s}")
for name, x in [("photo", photo), ("photo + noise 0.1", noisy), ("noise", noise)]:
    print(f"{name:22s} {float(ref.tv_loss(x)):12.1f} {float(ref.tv_loss(x, 1.0)):12.1f} {float(ref.edge_energy(x)):12.1f}")


# %% [markdown]
# Both penalties are small for the photo and large for noise; the edge energy additionally looks at
# coarser scales, where noise averages out but the blobs of a bad visualisation do not.
#
# ### Exercise 4 · `blur_and_clip` (3 points)
#
# Yosinski et al. ("Understanding Neural Networks Through Deep Visualization", 2015) regularise by
# **editing the image after every ascent step** instead of adding a penalty. Work on the centred
# image $d = x - 0.5$ (so that 0 is grey, what the network sees as zero) and apply, in this order:
#
# 1. **Periodic blur.** If `blur_every > 0` and `step % blur_every == 0` (`step` counts the ascent
#    steps from 1), blur every channel of $d$ with `gaussian_blur(d, sigma)` (from
#    `helpers.filters`). Frequent blurring removes the high frequencies the ascent keeps creating.
# 2. **Clip pixels of small norm.** For each pixel the norm over the channels,
#    $n_{ij} = \lVert d_{:,i,j}\rVert_2$. Set to grey (all channels of $d$ to 0) the pixels whose
#    $n_{ij}$ is **below** the `norm_pct`-th percentile of **that image's** norms
#    (`torch.quantile(values, norm_pct / 100, dim=1)` on the flattened (N, H·W) values; keep the
#    pixels with value ≥ the percentile).
# 3. **Clip pixels of small contribution.** With `grad` the gradient of the objective (the ascent
#    direction), the first-order contribution of a pixel is
#    $c_{ij} = \big\lvert \sum_k d_{k,i,j}\, \text{grad}_{k,i,j} \big\rvert$, computed from $d$
#    **after** steps 1 and 2. Set to grey the pixels below the `contrib_pct`-th percentile of their
#    image, as in step 2.
#
# A percentile of 0 switches a clipping off. Return $0.5 + d$ as a new tensor (not clamped), same
# shape and dtype as `x`; modify neither `x` nor `grad`.

# %% nbgrader="answer" id="blur_and_clip_answer"
def blur_and_clip(x, grad, step, *, blur_every=4, sigma=0.5, norm_pct=0.0, contrib_pct=0.0):
    """Yosinski et al.'s regularisation of an image after ascent step number `step` (from 1).

    x, grad: float tensors (N, 3, H, W); step: int >= 1
    blur_every: blur when step % blur_every == 0 (0: never); sigma: blur std in pixels
    norm_pct, contrib_pct: percentiles in [0, 100] below which pixels are set to grey (0 = off)
    Returns 0.5 + d, with d = x - 0.5 after blurring and the two clippings.
    """
    ### BEGIN SOLUTION
    d = x.detach() - 0.5
    if blur_every > 0 and step % blur_every == 0:
        d = gaussian_blur(d, sigma)
    if norm_pct > 0:
        norms = d.norm(dim=1)                                            # (N, H, W)
        q = torch.quantile(norms.flatten(1), norm_pct / 100, dim=1)      # (N,)
        d = d * (norms >= q.view(-1, 1, 1)).unsqueeze(1)
    if contrib_pct > 0:
        contrib = (d * grad).sum(dim=1).abs()                            # (N, H, W)
        q = torch.quantile(contrib.flatten(1), contrib_pct / 100, dim=1)
        d = d * (contrib >= q.view(-1, 1, 1)).unsqueeze(1)
    return d + 0.5
    ### END SOLUTION


# %% nbgrader="tests" id="blur_and_clip_test" points=3
# Tests for Exercise 4: when to blur, the two clippings, per image, the order.
import torch
from helpers import ascent as ref
from helpers.filters import gaussian_blur
from helpers.testing import assert_close
from helpers.testing.ascent import check_image, student
from helpers.testing.nets import random_images


def _bc(x, grad, step, **kw):
    return check_image(student(blur_and_clip, x, grad, step, **kw), x, "blur_and_clip")


_x, _grad = random_images(2, side=12, seed=0), 2 * random_images(2, side=12, seed=1) - 1
# blur only on the steps that are multiples of blur_every
assert_close(_bc(_x, _grad, 3, blur_every=4, sigma=1.0), _x, name="blur_and_clip(step=3, blur_every=4)", atol=1e-12,
             hint="3 % 4 != 0: no blur on this step, and no clipping with percentiles 0")
assert_close(_bc(_x, _grad, 8, blur_every=4, sigma=1.0), 0.5 + gaussian_blur(_x - 0.5, 1.0),
             name="blur_and_clip(step=8, blur_every=4)", atol=1e-12,
             hint="blur d = x - 0.5 with gaussian_blur(d, sigma) when step % blur_every == 0")
# clipping half the pixels by norm: in each image, the half of its pixels closest to grey become grey
_out = _bc(_x, _grad, 1, blur_every=0, norm_pct=50)
_kept = ((_out - 0.5).abs().sum(dim=1, keepdim=True) > 0).expand_as(_out)
assert_close(1 - _kept[:, 0].double().mean(dim=(1, 2)), torch.tensor([0.5, 0.5], dtype=torch.float64),
             name="fraction of grey pixels per image (norm_pct=50)", atol=1e-12,
             hint="per image: pixels whose norm over channels of x - 0.5 is below the median become 0.5")
assert torch.equal(_out[_kept], _x[_kept]), "pixels that are kept must keep their values"

### BEGIN HIDDEN TESTS
# against the reference, with every option, in float64 (computed before the student's call)
_x3 = torch.cat([random_images(2, side=10, seed=5), 0.5 + 0.05 * (2 * random_images(1, side=10, seed=6) - 1)])
_g3 = 2 * random_images(3, side=10, seed=7) - 1
for _kw in [dict(blur_every=2, sigma=0.5, norm_pct=30), dict(blur_every=0, contrib_pct=40),
            dict(blur_every=0, norm_pct=20, contrib_pct=50), dict(blur_every=3, sigma=0.8, norm_pct=25, contrib_pct=25)]:
    for _step in (3, 6):
        _expected = ref.blur_and_clip(_x3, _g3, _step, **_kw)
        assert_close(_bc(_x3, _g3, _step, **_kw), _expected, name=f"blur_and_clip(step={_step}, {_kw})", atol=1e-12,
                     hint="centre on grey, percentiles per image, contribution |sum_k d * grad| after the "
                          "blur and the norm clipping")
### END HIDDEN TESTS
print("Exercise 4: all visible tests passed.")

# %% [markdown]
# ### Same class, same budget: which prior helps?
#
# All the runs below use `ref.visualize`, the course's one optimisation loop: each step makes the
# image from its parameters, optionally applies random transforms, runs the network with hooks on
# the layers the objective reads, and takes one optimiser step uphill. Objectives **compose** like
# numbers: `ref.class_logit(c) - 0.1 * ref.image_tv()` is "the flamingo score minus 0.1 times the
# TV penalty". Every run gets the same number of steps.
#
# 1. **plain L2**: Part 1's recipe (plain gradient steps, $\lambda = 10^{-3}$);
# 2. **L2 + blur and clip**: the same steps, then your Exercise 4 after each one (blur every 4
#    steps, clip the 10 % weakest pixels by norm and by contribution);
# 3. **TV**: the score minus a TV penalty ($\beta = 2$), optimised with Adam;
# 4. **edge energy**: the score minus the multi-scale edge energy, with Adam;
# 5. **jitter**: every step sees the image shifted by a random offset (up to 16 pixels), so a
#    pattern must work wherever it lands: pixel-exact tricks stop paying off;
# 6. **Fourier + transforms** (Olah et al., "Feature Visualization", Distill 2017): optimise the
#    image's *Fourier coefficients*, scaled so that all frequencies change equally fast, in a
#    decorrelated colour space, under random padding, jitter, scaling and rotation.

# %%
C = FLAMINGO
l2_obj = ref.class_logit(C) - 1e-3 * ref.image_l2()
recipes = {
    "plain L2": dict(objective=l2_obj, optimizer="sgd", lr=0.5),
    "L2 + blur & clip": dict(objective=l2_obj, optimizer="sgd", lr=0.5,
                             post_step=lambda x, g, step: ref.blur_and_clip(
                                 x, g, step, blur_every=4, sigma=0.5, norm_pct=10, contrib_pct=10)),
    "TV (Adam)": dict(objective=ref.class_logit(C) - 0.3 * ref.image_tv(), lr=0.02),
    "edge energy (Adam)": dict(objective=ref.class_logit(C) - 0.1 * ref.image_edge_energy(), lr=0.02),
    "jitter (Adam)": dict(objective=l2_obj, transforms=ref.compose([ref.pad(8), ref.jitter(16)]), lr=0.02),
    "Fourier + transforms": dict(objective=ref.class_logit(C), param=ref.fourier_image(SIZE),
                                 transforms=ref.standard_transforms(), lr=0.05),
}
results = {}
for name, kw in recipes.items():
    kw = dict(kw)
    kw.setdefault("param", ref.pixel_image(SIZE))
    t0 = time.perf_counter()
    results[name] = ref.visualize(model, steps=STEPS, desc=name, **kw).cpu()
    x = results[name]
    print(f"{name:22s} {time.perf_counter() - t0:5.1f} s  TV {float(ref.tv_loss(x)):7.1f}  "
          f"edge {float(ref.edge_energy(x)):7.1f}  network: {top_classes(x)}")
show_images([v[0] for v in results.values()], titles=list(results), ncols=6, figsize=(17, 3.6),
            suptitle=f"'{labels[C]}', {STEPS} steps each")
plt.show()

# %% [markdown]
# Every picture convinces the network (the printed top classes: flamingo, near 100 %); they differ
# in what *else* they contain. The printed TV and edge energies measure the difference: the TV prior
# makes the image more than an order of magnitude smoother than plain L2, but smooth is not the
# same as readable (a pink haze). The only panel where a bird's pink body and neck start to
# appear is the last one: changing *how* the image is optimised (transforms, Fourier
# parameterisation) does more than changing *what* is penalised.
#
# ### A gallery: six classes, the best recipe given room to work
#
# At 128 pixels and 150 steps even the best recipe above gives only a hint of a flamingo. The
# Fourier parameterisation with transforms needs a larger canvas, so that the object can be drawn
# at the size the network saw objects in training, and more steps. Below, six classes are
# optimised at once (one image per class in one batch: `ref.class_logit(c, batch=i)` scores image
# `i` only), first with Part 1's plain-L2 recipe, then with Fourier + transforms.
#
# Two ways to judge the result. **Your eyes**: cover the titles and try to name each picture.
# **A second network**: show the pictures to EfficientNet-Lite2, a larger network trained
# separately, which played no part in making them. An image that carries what the class looks
# like should be recognised by Lite2 too; a pattern that only exploits Lite0's quirks should not
# (notebook 05 returns to this question with adversarial examples). The six classes were picked
# from about thirty tried as ones this network draws well: fruit, vegetables and animals with a
# distinctive colour and texture come out best; many classes give a pattern nobody could name.

# %%
GALLERY = [340, 949, 937, 107, 980, 950]  # zebra, strawberry, broccoli, jellyfish, volcano, orange
G_SIZE = helpers.fast(full=192, fast=64)
G_STEPS = helpers.fast(full=200, fast=20)
L2_STEPS = helpers.fast(full=60, fast=10)   # plain L2 saturates early (Part 1's probability curve)
lite2 = load_model("efficientnet_lite2").to(device)      # the judge: never used to make the images
print(f"Two runs of six {G_SIZE}x{G_SIZE} images: about {helpers.fast(full=2, fast=0.5)} minutes "
      "on a laptop CPU, seconds on a GPU.")


def lite2_rank(x, classes):
    # rank of image i's class classes[i] in Lite2's scores (1 = top class), at Lite2's own
    # resolution of 260 pixels
    with torch.no_grad():
        scores = lite2(F.interpolate(x.to(device), size=260, mode="bilinear", align_corners=False))
    own = scores.gather(1, torch.tensor(classes, device=scores.device).view(-1, 1))
    return ((scores > own).sum(dim=1) + 1).cpu()


class_scores = sum(ref.class_logit(c, batch=i) for i, c in enumerate(GALLERY))
t0 = time.perf_counter()
gallery_l2 = ref.visualize(model, class_scores - 1e-3 * ref.image_l2(), optimizer="sgd", lr=0.5,
                           param=ref.pixel_image(G_SIZE, batch=len(GALLERY)), steps=L2_STEPS,
                           desc="plain L2, six classes").cpu()
gallery = ref.visualize(model, class_scores, param=ref.fourier_image(G_SIZE, batch=len(GALLERY)),
                        transforms=ref.standard_transforms(), steps=G_STEPS, lr=0.05,
                        desc="Fourier + transforms, six classes").cpu()
print(f"{time.perf_counter() - t0:.0f} s")
ranks = {"plain L2": lite2_rank(gallery_l2, GALLERY), "Fourier + transforms": lite2_rank(gallery, GALLERY)}
for name, r in ranks.items():
    print(f"{name:21s} Lite2's rank of the class: {r.tolist()}  -> in Lite2's top 5 for "
          f"{int((r <= 5).sum())} of {len(GALLERY)}")
show_images(list(gallery_l2) + list(gallery), ncols=len(GALLERY), figsize=(17, 6.4),
            titles=[f"{labels[c]} (Lite2 rank {int(r)})" for name in ranks
                    for c, r in zip(GALLERY, ranks[name])],
            suptitle=f"Top: plain L2, {L2_STEPS} steps.  Bottom: Fourier + transforms, {G_STEPS} steps. "
                     "Both make Lite0 certain of its class.")
plt.show()

# %% [markdown]
# Both rows convince Lite0, the network they were made for. Only the bottom row carries the class
# to a network that did not make it (the printed ranks), and only the bottom row shows something a
# person can name: the patterns of the top row are tuned to Lite0's exact filters at exact pixel
# positions, while the transforms force every part of the bottom row to work at any position,
# scale and tilt — which is what the parts of real objects do. Even so, these are not photographs:
# the class's parts (stripes, red seeded skin, green florets, bells and tentacles, a glowing cone,
# round orange fruit) are repeated and scattered over the whole frame, because nothing in the
# objective asks for *one* object. Classes whose look is mostly colour and texture come out most
# readable.
#
# **Question 1** (2 points). (a) The plain-L2 image is full of high-frequency, saturated
# patterns, yet the network gives it a probability near 1. Why does gradient ascent find such
# images rather than a photo-like flamingo? (b) Pick two of the priors above and explain, in terms
# of what they penalise or make impossible, why each produces smoother or more recognisable
# pictures. Two or three sentences each.

# %% [markdown] nbgrader="manual" id="question_1" points=2
# ### BEGIN SOLUTION
# Model answer (1 point each part):
#
# (a) The objective only asks for a high score; the set of images with a high score is huge and
# mostly made of non-natural images. Gradient steps in pixel space are dominated by high
# frequencies (every pixel moves independently, by its own gradient), and the network — trained only
# on natural images — responds strongly to local texture statistics that those pixel-level patterns
# reproduce and exaggerate. Nothing pulls the image towards the natural-image manifold: the L2
# penalty only limits the overall size, not the structure, so the ascent reaches an adversarial-like
# pattern that no photograph contains.
#
# (b) Examples: **blur** removes the high frequencies every few steps, so only patterns that survive
# smoothing keep growing; **clipping** weak pixels keeps the image grey where nothing matters, which
# concentrates the picture on the object. **TV / edge energy** make every pixel-to-pixel difference
# (at every scale, for the edge energy) cost score, so the optimum has smooth regions and few edges,
# as photographs do. **Jitter / transforms** require the pattern to work at any shift, scale and
# rotation: pixel-exact tricks average out while object parts that work anywhere survive. The
# **Fourier parameterisation** changes the geometry of the optimisation: low frequencies move as fast
# as high ones and colours are decorrelated, so the optimiser finds large, coherent structures first.
# ### END SOLUTION

# %% [markdown]
# ## Part 3 · What do intermediate units want?
#
# The same loop works for any unit, not only for classes. `ref.channel(layer, c)` is the mean
# activation of channel `c` of a layer over all positions; `ref.neuron(layer, (c, i, j))` is one
# neuron of that channel (row `i`, column `j`), and `ref.neuron(layer, c)` the neuron at the
# centre of the channel's map. Shallow layers have small receptive fields and
# respond to edges and colours; deep ones cover most of the image and respond to parts and objects
# (notebook 02). To choose channels that matter, take for each layer the channel that responds
# most strongly to the cat photo.
#
# One run optimises a **batch of six images** at once: `ref.channel(layer, c, batch=i)` applies an
# objective to image `i` only, and the six objectives are summed.

# %%
cat = load_image("chelsea", size=224).to(device)
unit_layers = ["stages.1", "stages.3", "stages.5"]
acts = features(model, cat, unit_layers, detach=True)
units = [(layer, int(acts[layer][0].mean(dim=(1, 2)).argmax())) for layer in unit_layers]
objective = sum(ref.channel(layer, c, batch=i) for i, (layer, c) in enumerate(units))
objective = objective + sum(ref.neuron(layer, c, batch=3 + i) for i, (layer, c) in enumerate(units))
print("objective:", objective)
t0 = time.perf_counter()
unit_images = ref.visualize(model, objective, param=ref.fourier_image(SIZE, batch=6),
                            transforms=ref.standard_transforms(), steps=STEPS, lr=0.05, desc="six units").cpu()
print(f"{time.perf_counter() - t0:.1f} s")
changed = [float(((x - 0.5).abs().amax(dim=0) > 0.1).float().mean()) for x in unit_images[3:]]
print("share of the image that the single-neuron runs changed (|pixel - grey| > 0.1): "
      + ", ".join(f"{layer} {a:.0%}" for (layer, _), a in zip(units, changed)))
titles = [f"channel {c} of {layer}" for layer, c in units] + [f"centre neuron, {layer}:{c}" for layer, c in units]
show_images(list(unit_images), titles=titles, ncols=3, figsize=(11, 7.5),
            suptitle="Shallow -> deep: whole channels (top) and one spatial unit (bottom)")
plt.show()


# %% [markdown]
# Top row: a whole channel is a *texture* — the unit's favourite pattern repeated wherever the
# image allows. Bottom row: a single unit only sees its receptive field, so only a patch around the
# centre changes; the patch grows with depth (the printed shares of the image), as the receptive
# fields of notebook 02 do, and so does the complexity of what fills it.
#
# ## Part 4 · Inverting a representation
#
# Instead of asking what a unit *wants*, ask what a layer *keeps*. Given a photo $x_0$ and its
# activation $\Phi_0 = \Phi(x_0)$ at one layer, Mahendran & Vedaldi (2015) search for an image whose
# activation matches:
#
# $$
# x^* = \arg\min_x \; \frac{\lVert \Phi(x) - \Phi_0\rVert^2}{\lVert \Phi_0\rVert^2}
#       + \mu \, \frac{R_\beta(x)}{H W} .
# $$
#
# Everything the layer discards — what it is *invariant* to — is free to change, and the TV prior
# $R_\beta$ fills it with something smooth. Dividing by $\lVert\Phi_0\rVert^2$ makes the data term
# comparable across layers (1 means "as far as a zero activation"); dividing the TV by the number of
# pixels makes $\mu$ independent of the image size.
#
# ### Exercise 5 · `invert_features` (3 points)
#
# Implement `invert_features(model, x, *, layer, init=None, steps, lr, tv_weight, beta=2.0)`, where
# `x` is the photo $x_0$ (N, 3, H, W) and the optimised image is called `y`:
#
# * the target $\Phi_0$ = `features(model, x, [layer], detach=True)[layer]` (from `helpers.taps`);
# * `y = init.detach().clone().requires_grad_(True)` (a grey image like `x` when `init` is None)
#   and `opt = torch.optim.Adam([y], lr=lr)` (default betas);
# * for each of the `steps` iterations: compute the activation `features(model, y, [layer])[layer]`,
#   the loss $L$ above with $\mu$ = `tv_weight` and $R_\beta$ = your `tv_loss(y, beta)` summed over
#   the batch (if your Exercise 2 does not work, use `ref.tv_loss`), **record** `float(L.detach())`,
#   set `y.grad` to `torch.autograd.grad(L, y)[0]`, call `opt.step()`, and clamp `y` to $[0, 1]$ in
#   place under `torch.no_grad()`;
# * return `(y.detach(), losses)` with `losses` the list of the `steps` recorded values (each computed
#   **before** its update).
#
# `init` has the shape of `x`; modify neither.

# %% nbgrader="answer" id="invert_features_answer"
def invert_features(model, x, *, layer, init=None, steps, lr, tv_weight, beta=2.0):
    """Feature inversion: Adam on the pixels of y to match Phi_layer(x), the features of the photo x.

    model: network; x: the photo(s) (N, 3, H, W) in [0, 1]; layer: name of a layer (see helpers.layer_names)
    init: starting image, shape of x (None: grey 0.5); steps: int; lr: Adam learning rate
    tv_weight: mu; beta: TV exponent
    Returns (y, losses): the final image (N, 3, H, W) in [0, 1] and the `steps` loss values.
    """
    ### BEGIN SOLUTION
    target = features(model, x, [layer], detach=True)[layer]
    norm0 = (target ** 2).sum()
    h, w = x.shape[-2:]
    y = (torch.full_like(x, 0.5) if init is None else init).detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    losses = []
    for _ in range(steps):
        phi = features(model, y, [layer])[layer]
        loss = ((phi - target) ** 2).sum() / norm0 + tv_weight * tv_loss(y, beta).sum() / (h * w)
        losses.append(float(loss.detach()))
        (g,) = torch.autograd.grad(loss, y)
        y.grad = g
        opt.step()
        with torch.no_grad():
            y.clamp_(0.0, 1.0)
    return y.detach(), losses
    ### END SOLUTION


# %% nbgrader="tests" id="invert_features_test" points=3
# Tests for Exercise 5: the first loss by hand, the trajectory, the prior, clamping.
import torch
from helpers import ascent as ref
from helpers.taps import features
from helpers.testing import assert_close
from helpers.testing.ascent import check_inversion, student
from helpers.testing.nets import TinyCNN, random_images


def _invert(model, x, **kw):       # the reference's tv_loss may be used here
    return check_inversion(student(invert_features, model, x, allow=["tv_loss"], **kw), kw["init"], kw["steps"])


_net, _photo = TinyCNN(seed=0).double(), random_images(1, side=8, seed=1)
_init = torch.full_like(_photo, 0.5)
# the first loss is computed at init, before any update: ||Phi(init) - Phi(x)||^2 / ||Phi(x)||^2
_phi0, _phi_init = (features(_net, _t, ["act2"], detach=True)["act2"] for _t in (_photo, _init))
_y, _losses = _invert(_net, _photo, layer="act2", init=_init, steps=30, lr=0.05, tv_weight=0.0)
assert_close(_losses[0], float(((_phi_init - _phi0) ** 2).sum() / (_phi0 ** 2).sum()), name="losses[0] (tv_weight=0)",
             atol=1e-9, hint="record the loss before the first update; divide the squared error by ||Phi(x)||^2")
assert _losses[-1] < 0.5 * _losses[0], (
    f"after 30 Adam steps the loss should fall below half its start, got {_losses[0]:.4g} -> {_losses[-1]:.4g}")

### BEGIN HIDDEN TESTS
# the whole trajectory against the reference (computed before the student's call), with and without the prior
for _kw in [dict(steps=12, lr=0.05, tv_weight=0.0), dict(steps=12, lr=0.1, tv_weight=2.0, beta=1.5),
            dict(steps=8, lr=0.3, tv_weight=0.5)]:
    _ey, _el = ref.invert_features(_net, _photo, layer="act2", init=_init, progress=False, **_kw)
    _y, _losses = _invert(_net, _photo, layer="act2", init=_init, **_kw)
    assert_close(torch.tensor(_losses), torch.tensor(_el), name=f"losses of invert_features({_kw})", atol=1e-9,
                 rtol=1e-7, hint="L = ||Phi(y) - Phi(x)||^2 / ||Phi(x)||^2 + tv_weight * tv_loss(y, beta).sum() / (H * W)")
    assert_close(_y, _ey, name=f"image of invert_features({_kw})", atol=1e-8,
                 hint="Adam on y with the given lr, then clamp y to [0, 1] after every step")
# another layer and a non-grey start
_init2 = random_images(1, side=8, seed=9)
_ey, _ = ref.invert_features(_net, _photo, layer="act1", init=_init2, steps=6, lr=0.2, tv_weight=1.0, progress=False)
_y, _ = _invert(_net, _photo, layer="act1", init=_init2, steps=6, lr=0.2, tv_weight=1.0)
assert_close(_y, _ey, name="invert_features at layer 'act1' from a random start", atol=1e-8)
### END HIDDEN TESTS
print("Exercise 5: all visible tests passed.")

# %% [markdown]
# Now invert the cat from six depths of EfficientNet-Lite0, from a grey start, with the same
# budget and prior for every layer. The numbers under each picture: the final data term and the
# correlation of the reconstruction's pixels with the photo's (1 = the same picture up to
# brightness and contrast).

# %%
INV_STEPS = helpers.fast(full=200, fast=40)
photo = load_image("chelsea", size=SIZE).to(device)
inv_layers = ["stem", "stages.1", "stages.2", "stages.3", "stages.4", "stages.5"]


def pixel_correlation(a, b):
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


recons, captions = [photo.cpu()[0]], ["photo"]
t0 = time.perf_counter()
for layer in helpers.progress(inv_layers, desc="inverting"):
    x, losses = ref.invert_features(model, photo, layer=layer, init=torch.full_like(photo, 0.5),
                                    steps=INV_STEPS, lr=0.05, tv_weight=5.0)
    shape = "x".join(str(s) for s in features(model, photo, [layer], detach=True)[layer].shape[1:])
    recons.append(x.cpu()[0])
    captions.append(f"{layer} ({shape})\nloss {losses[-1]:.3f}, r = {pixel_correlation(x, photo):.2f}")
    print(f"{layer:9s} loss from {losses[0]:.2f} (grey start) to {losses[-1]:.3f}; "
          f"pixel correlation with the photo r = {pixel_correlation(x, photo):.2f}")
print(f"{len(inv_layers)} inversions of {INV_STEPS} steps in {time.perf_counter() - t0:.1f} s")
show_images(recons, titles=captions, ncols=7, figsize=(18, 3.6),
            suptitle="What each depth keeps: images whose features match the cat's")
plt.show()

# %% [markdown]
# The stem's 32 channels at half resolution keep almost everything: the reconstruction is the photo,
# slightly blurred (r close to 1). From stage to stage the layout survives (the eyes and the nose
# stay where they were) while the exact colours, the fine texture and finally the geometry dissolve
# into noisy colour patterns. The printed losses say two things. Every inversion moved the
# features most of the way from the grey start's towards the photo's. But the match is not
# equally good at every depth: with the same budget the final loss grows about tenfold from the
# stem to `stages.5`, while the correlation with the photo falls. A deep layer keeps much less of
# the picture, *and* it is harder to match in 200 steps — so the rainbow noise of the last panels
# is partly what the layer ignores and partly what the optimiser has not fixed yet.
#
# How much of a deep reconstruction comes from the prior? Compare a weak and a strong TV weight at
# one deep layer:

# %%
layer = "stages.3"
pair, pair_titles = [], []
for mu in (0.5, 5.0, 50.0):
    x, losses = ref.invert_features(model, photo, layer=layer, init=torch.full_like(photo, 0.5),
                                    steps=INV_STEPS, lr=0.05, tv_weight=mu)
    pair.append(x.cpu()[0])
    pair_titles.append(f"tv_weight {mu:g}: loss {losses[-1]:.3f}, r = {pixel_correlation(x, photo):.2f}")
show_images(pair, titles=pair_titles, ncols=3, figsize=(12, 4.2), suptitle=f"Inverting {layer} with weak to strong priors")
plt.show()


# %% [markdown]
# **Question 2** (2 points). (a) From the reconstructions, what does a deep layer of this network
# keep about the cat, and what does it discard? Relate your answer to the *invariances* a
# classifier needs. (b) Every inversion brought the feature loss far below its grey start, yet
# the images differ from the photo. What does that tell you about using feature inversion to explain a network, and what
# role does the prior play in what you see?

# %% [markdown] nbgrader="manual" id="question_2" points=2
# ### BEGIN SOLUTION
# Model answer (1 point each part):
#
# (a) Deep layers keep the coarse layout and the presence of object parts (eyes, nose, ears, fur
# texture at the right places) but discard exact colours, fine texture, precise positions and the
# geometry of edges; the reconstructions become collages of part-like patterns with the right
# statistics. A classifier must be invariant to small shifts, deformations, lighting and colour
# changes, so the layers progressively throw away exactly that information while keeping what
# distinguishes classes.
#
# (b) Many different images produce the same deep features: the inversion is far from unique, and
# the reconstruction shows *one* member of the set of images the layer cannot tell apart. Which
# member we see is chosen by the prior (and the start and optimiser): with a weak prior the
# unconstrained directions fill with noise; with a strong one they become smooth. So an inversion
# shows what the layer is insensitive to, but its details partly reflect our regulariser, not the
# network — conclusions should be drawn from what stays fixed across priors.
# ### END SOLUTION

# %% [markdown]
# ## Part 5 · DeepDream
#
# DeepDream (Mordvintsev, Olah & Tyka, 2015) starts from a photo and amplifies whatever a layer
# already sees in it: forward to the layer, **set the gradient of the layer equal to its
# activation**, backpropagate to the image, step. Setting $\partial J/\partial a = a$ is the same as
# maximising
#
# $$
# J(x) = \tfrac12 \sum_i a_i(x)^2 ,
# $$
#
# the energy of the layer's activation. Three tricks make it work:
#
# * **jitter**: roll the image by a random offset before the step and roll the gradient back after,
#   so that the patterns do not lock onto the pixel grid;
# * **L1-normalised steps**: divide the gradient by its mean absolute value, so every step moves a
#   pixel by about `lr` whatever the layer's scale:
#   $x \leftarrow x + \eta\, g / (\operatorname{mean}|g| + 10^{-8})$, the mean over the image's
#   C·H·W values (each image of a batch with its own mean);
# * **pixel clipping** to $[0, 1]$ after every step; and, around the step, **octaves**: dream on a
#   small copy first, enlarge the detail, continue at the next scale (`ref.dream` does this).
#
# ### Exercise 6 · `deepdream_step` (3 points)
#
# Implement `deepdream_step(model, x, *, layer, lr, shift=(0, 0))`:
#
# 1. `xs = torch.roll(x.detach(), shifts=shift, dims=(2, 3)).requires_grad_(True)` (`shift` is
#    `(dy, dx)` in pixels);
# 2. `a = features(model, xs, [layer])[layer]`; `J = 0.5 * (a ** 2).sum()`;
#    `g = torch.autograd.grad(J, xs)[0]`;
# 3. roll `g` back by `(-dy, -dx)`;
# 4. return `(x + lr * g / (mean |g| + 1e-8)).clamp(0, 1)` with the mean per image, as a new tensor
#    without autograd history; `x` itself is not modified.

# %% nbgrader="answer" id="deepdream_step_answer"
def deepdream_step(model, x, *, layer, lr, shift=(0, 0)):
    """One jittered, L1-normalised DeepDream step that amplifies the activation of `layer`.

    model: network; x: images (N, 3, H, W) in [0, 1]; layer: layer name
    lr: step size; shift: (dy, dx) jitter in pixels
    Returns the new images (N, 3, H, W) in [0, 1], detached.
    """
    ### BEGIN SOLUTION
    dy, dx = shift
    xs = torch.roll(x.detach(), shifts=(dy, dx), dims=(2, 3)).requires_grad_(True)
    a = features(model, xs, [layer])[layer]
    (g,) = torch.autograd.grad(0.5 * (a ** 2).sum(), xs)
    g = torch.roll(g, shifts=(-dy, -dx), dims=(2, 3))
    g = g / (g.abs().mean(dim=(1, 2, 3), keepdim=True) + 1e-8)
    return (x.detach() + lr * g).clamp(0.0, 1.0)
    ### END SOLUTION


# %% nbgrader="tests" id="deepdream_step_test" points=3
# Tests for Exercise 6: step size, jitter, the objective, batches.
import torch
from helpers import ascent as ref
from helpers.taps import features
from helpers.testing import assert_close
from helpers.testing.ascent import check_image, student
from helpers.testing.nets import TinyCNN, random_images


def _dd(model, x, **kw):
    return check_image(student(deepdream_step, model, x, **kw), x, "deepdream_step", unit=True)


def _J(img):
    return float(0.5 * (features(_net, img, ["act2"], detach=True)["act2"] ** 2).sum())


_net = TinyCNN(seed=0).double()
_x = 0.3 + 0.4 * random_images(1, side=8, seed=1)         # away from 0 and 1: nothing is clipped
# an L1-normalised step moves the pixels by lr on average, uphill: 0.5 * sum(a^2) grows
_out = _dd(_net, _x, layer="act2", lr=0.01)
_moved = float((_out - _x).abs().mean())
assert abs(_moved - 0.01) < 1e-6, (
    f"with lr=0.01 the pixels should move by 0.01 on average (g / mean|g|), they moved by {_moved:.6g}")
assert _J(_out) > _J(_x), f"the step should raise 0.5 * sum(a^2): {_J(_x):.6g} -> {_J(_out):.6g}"
# jitter: a step on x shifted by (dy, dx) equals the shifted step, rolled back
_base = _dd(_net, torch.roll(_x, shifts=(3, -2), dims=(2, 3)), layer="act2", lr=0.01)
assert_close(_dd(_net, _x, layer="act2", lr=0.01, shift=(3, -2)), torch.roll(_base, shifts=(-3, 2), dims=(2, 3)),
             name="deepdream_step with shift=(3, -2)", atol=1e-10,
             hint="roll x by shift, take the gradient there, roll the gradient back by (-dy, -dx)")

### BEGIN HIDDEN TESTS
# against the reference (computed before the student's call): a batch whose images have very
# different gradient scales, pixels at the edges, other layers and shifts
_xb = torch.cat([random_images(1, side=10, seed=2), 0.5 + 0.01 * (2 * random_images(1, side=10, seed=3) - 1)])
for _layer, _lr, _shift in [("act2", 0.05, (0, 0)), ("act1", 0.2, (1, 4)), ("act2", 0.3, (-2, 5))]:
    _expected = ref.deepdream_step(_net, _xb, layer=_layer, lr=_lr, shift=_shift)
    assert_close(_dd(_net, _xb, layer=_layer, lr=_lr, shift=_shift), _expected, atol=1e-9,
                 name=f"deepdream_step(layer={_layer!r}, lr={_lr}, shift={_shift}) on a batch of 2",
                 hint="objective 0.5 * sum(a^2); each image divided by its own mean |g|; clamp to [0, 1]")
### END HIDDEN TESTS
print("Exercise 6: all visible tests passed.")

# %% [markdown]
# Dream on the astronaut photo at three depths with `ref.dream` (octaves, random jitter): shallow
# layers paint strokes and textures, deeper ones eyes, fur and object parts wherever the photo gives
# them a hint.

# %%
DREAM_SIZE = helpers.fast(full=224, fast=128)
astronaut = load_image("astronaut", size=DREAM_SIZE).to(device)
dreams, dream_titles = [astronaut.cpu()[0]], ["photo"]
t0 = time.perf_counter()
for layer in ["stages.2", "stages.3", "stages.4"]:
    dreamed = ref.dream(model, astronaut, layer=layer, octaves=helpers.fast(full=4, fast=3),
                        steps=helpers.fast(full=12, fast=5), lr=0.015, max_jitter=16, seed=0)
    dreams.append(dreamed.cpu()[0])
    dream_titles.append(f"dreaming {layer}")
print(f"{time.perf_counter() - t0:.1f} s")
show_images(dreams, titles=dream_titles, ncols=4, figsize=(16, 4.4))
plt.show()

# %% [markdown]
# ## Going further · One neuron, several faces
#
# A class or a channel usually responds to several quite different things (a "flamingo" unit may
# love necks, pink plumage, groups of birds standing in water). Optimising one image finds one of
# them. Optimise a **batch** and add a **diversity** term (Olah et al., 2017; Nguyen et al., 2016):
# `ref.diversity(layer)` is minus the mean cosine similarity between the images' Gram matrices at a
# layer, i.e. it rewards images that excite the layer in *different styles*. Objectives compose, so
# the whole experiment is one line.

# %%
deep_layer, deep_c = units[-1]
facets = {}
for name, obj in [("alone", ref.channel(deep_layer, deep_c)),
                  ("with diversity", ref.channel(deep_layer, deep_c) + 2.0 * ref.diversity("stages.3"))]:
    facets[name] = ref.visualize(model, obj, param=ref.fourier_image(SIZE, batch=3),
                                 transforms=ref.standard_transforms(), steps=STEPS, lr=0.05, desc=name).cpu()
for name, x in facets.items():
    sim = -float(ref.evaluate(model, x.to(device), ref.diversity("stages.3")).mean())
    score = float(ref.evaluate(model, x.to(device), ref.channel(deep_layer, deep_c)).mean())
    print(f"{name:15s} mean Gram similarity at stages.3 between the three images: {sim:.3f}; "
          f"mean channel value {score:.2f}")
show_images(list(facets["alone"]) + list(facets["with diversity"]),
            titles=[f"alone #{i}" for i in range(3)] + [f"with diversity #{i}" for i in range(3)],
            ncols=6, figsize=(17, 3.4), suptitle=f"channel {deep_c} of {deep_layer}: three runs in one batch")
plt.show()

# %% [markdown]
# Be honest about this figure: for this unit, at this weight and budget, the term changes nothing
# that can be measured. Without it, the three images already differ in layout, because each starts
# from its own random spectrum, and they share one motif (the same feathery strokes and colours);
# the three made with the term look the same way, and the printed Gram similarity — the very
# quantity the term penalises — is essentially unchanged (and so is the channel's value). A channel
# that responds to one texture seems to have one "face", and the class score of the channel
# dominates a weight-2 diversity term. Diversity earns its keep on units that respond to several
# different things (classes often do). Try `ref.class_logit(130)` instead of the channel, larger
# weights (5, 20) or `ref.neuron`, and watch the printed similarity: the demo is yours to fix.
#
# **Question 3** (2 points). (a) Compare DeepDream's objective $\tfrac12\sum_i a_i^2$ with the
# class-visualisation objective of Part 1: what does each ask of the image, and why does DeepDream
# need a photo to start from while class visualisation can start from grey? (b) Why does the
# *layer* you dream at decide the size and kind of pattern that appears? Use the receptive fields
# of notebook 02 in your answer.

# %% [markdown] nbgrader="manual" id="question_3" points=2
# ### BEGIN SOLUTION
# Model answer (1 point each part):
#
# (a) Class visualisation maximises one fixed, chosen quantity (a class score), so it pulls any
# start towards the same target, and from grey it builds that class's patterns from nothing.
# DeepDream's objective is the energy of a whole layer: its gradient is the activation itself, so
# every unit is pushed up *in proportion to how active it already is* — it amplifies whatever the
# layer already detects in the current image (positive feedback). From grey there is little
# structure to amplify (and what is there is the same everywhere), so the result depends on the
# photo: clouds become whatever the layer half-sees in them.
#
# (b) A unit of a layer sees only its receptive field and responds to patterns at that scale and
# complexity: shallow layers have small receptive fields and detect edges, colours and simple
# textures, so dreaming there paints strokes and fine textures; deep layers have receptive fields
# covering large parts of the image and detect object parts (eyes, fur, faces, wheels), so dreaming
# there makes those parts appear, at the size of their receptive fields. Octaves add larger versions
# of the same patterns by dreaming on shrunk copies.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# * Gradient ascent on the **input** turns a frozen network into an image generator: class scores
#   (raw, before the softmax), channels, single units, feature matches and layer energies are all
#   objectives of the same loop.
# * Without a prior the optimum is an adversarial-looking pattern; **L2**, **TV**, the
#   **multi-scale edge energy**, **blur and clip**, **jitter** and a **Fourier
#   parameterisation** each restrict or reshape the search towards natural images — and the
#   pictures you get depend on that choice as much as on the network.
# * **Feature inversion** shows what a layer keeps: everything at the stem, the layout and parts
#   deeper in, and an increasingly free collage of statistics at the top.
# * **DeepDream** amplifies what a layer already sees, at the scale of its receptive fields.
#
# Next: **05 · Fool the network** — the same gradient, used to change the label instead of
# explaining it.
