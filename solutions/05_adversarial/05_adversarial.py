# %% [markdown]
# # 05 · Fool the network (20 points)
#
# Take a photo the network classifies correctly, change every pixel by at most one or two grey
# levels — a change you cannot see — and the network gives a completely different answer, often
# with high confidence. Such **adversarial examples** (Szegedy et al., 2014) are the most striking
# evidence that a CNN does not see the way we do. This notebook builds the classic attacks from
# scratch, measures how well they work on the pretrained EfficientNet-Lite0 and how well they
# *transfer* to other networks, hardens a small network by adversarial training, and finally asks
# whether an adversarial image survives the real world: JPEG compression, blur, resizing.
#
# **Learning goals.** After this notebook you can
#
# * explain with a linear model why a tiny change per pixel can move the output a lot, and why
#   that gets *worse* with more pixels;
# * make a **fooling image** by gradient ascent on a class score (Szegedy et al., 2014);
# * implement **FGSM** (Goodfellow et al., 2015) and **PGD** (Madry et al., 2018), untargeted and
#   targeted, with the right signs, clamping, projection and random start — and check them against
#   Captum;
# * measure an attack properly: success rate against the perturbation budget $\varepsilon$;
# * measure **transfer** between networks and say what it means for an attacker who can only query
#   a prediction API;
# * train a network **adversarially** and read the trade-off between clean and robust accuracy;
# * test whether an attack survives JPEG, blur and resizing, and make it survive with
#   **expectation over transformation** (Athalye et al., 2018).
#
# **How this notebook is graded.**
#
# | | points |
# |---|---|
# | Exercise 1 · `logistic_attack` | 2 |
# | Exercise 2 · `fooling_image` | 3 |
# | Exercise 3 · `fgsm` | 3 |
# | Exercise 4 · `attack_success_rate` | 2 |
# | Exercise 5 · `pgd` | 4 |
# | Questions 1–3 (written, graded by hand) | 6 |
# | **total** | **20** |
#
# * Write your code between the function's docstring and its end, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures.
# * Each exercise is followed by locked **test cells**. The *visible* tests check the basics and
#   tell you what went wrong; when your notebook is graded the same cells run *hidden* tests with
#   more cases (other models, batches, pixels at the edges of $[0, 1]$, float64), check that your
#   function leaves its inputs and the model as it found them, and check that you wrote the attack
#   yourself instead of calling the course's reference (`helpers.adversarial`) or Captum.
# * Every attack follows one calling convention, the one of Captum's `captum.robust`:
#   `attack(model, x, target, *, eps, ..., targeted=False)` with `x` a batch of images
#   (N, C, H, W) in $[0, 1]$, `target` an `int` or a tensor of N class indices — the **true label**
#   for an untargeted attack, the **goal class** for a targeted one — and `eps` in pixel units on
#   $[0, 1]$ (`eps = 4/255` means "four grey levels of an 8-bit image").
# * The demos use the reference implementations (`helpers.adversarial`, imported as `ref`), so a
#   bug in one exercise does not break the rest of the notebook.
# * The notebook runs in about four minutes on a laptop CPU, six on a single core (fast mode,
#   `COURSE_FAST=1`, set while grading: about a minute, with smaller images and fewer steps). Run it
#   top to bottom before you submit (*Kernel → Restart & Run All*).

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

from helpers import adversarial as ref      # reference implementations used by the demos
from helpers.digits import DigitsCNN, accuracy, load_digits, train_classifier
from helpers.images import image_info, load_image
from helpers.models import imagenet_labels, load_model
from helpers.plotting import show_images

plt.rcParams["figure.dpi"] = 90
FAST = helpers.is_fast()
SIZE = helpers.fast(full=224, fast=128)     # image side in pixels (224: the network's native size)
labels = imagenet_labels()


def name_of(k):
    return labels[int(k)]


# The cat photo framed on its face: Lite0 says "Egyptian cat" with 65 %. (The plain centre crop of
# `load_image` is a near-tie, Egyptian cat 39 % against tiger cat 32 %.)
CROPS = {"chelsea": (0, 0, 300, 300)}


def load_photos(names=ref.PHOTOS):
    # the photos as one batch (N, 3, SIZE, SIZE): centre crops, except the ones framed in CROPS
    return torch.cat([load_image(n, size=SIZE, crop=CROPS.get(n)) for n in names]).to(device)


@torch.no_grad()
def top3(m, x):
    # the three most probable classes of every image in x, as "class 94%, class 2%, class 1%"
    p, k = m(x).softmax(dim=1).topk(3, dim=1)
    return [", ".join(f"{name_of(c)} {float(q):.0%}" for q, c in zip(p[i], k[i])) for i in range(x.shape[0])]


def show_attack_rows(x, x_adv, titles_x, titles_adv, *, factor=10, delta_title=None, row_labels=None,
                     suptitle=None):
    # One row per image: original | perturbation x factor around grey | adversarial image.
    n = x.shape[0]
    fig, axes = plt.subplots(n, 3, figsize=(9, 3.1 * n), layout="constrained", squeeze=False)
    delta_img = ref.perturbation_image(x, x_adv, factor=factor)
    for i in range(n):
        show_images([x[i].cpu(), delta_img[i].cpu(), x_adv[i].cpu()],
                    titles=[titles_x[i], delta_title or f"perturbation x{factor:g} (grey = 0)", titles_adv[i]],
                    axes=axes[i])
        if row_labels is not None:
            axes[i, 0].set_ylabel(row_labels[i])
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# %% [markdown]
# ## Part 1 · A linear warm-up: why small changes add up
#
# Start with the simplest classifier, **logistic regression** (the example of Goodfellow et al.,
# "Explaining and Harnessing Adversarial Examples", 2015, as the UMass lecture works it):
#
# $$
# P(y = 1 \mid x) = \sigma(w^\top x + b), \qquad \sigma(z) = \frac{1}{1 + e^{-z}} .
# $$
#
# Take the 8-dimensional example $x = (1, -2, -2, 3, -1, 2, -2, -3)$,
# $w = (2, -1, -1, -1, 2, -1, -1, 1)$, $b = 0$: then $w^\top x = -2$ and
# $P(y = 1 \mid x) = \sigma(-2) = 0.1192$ — the classifier is fairly sure $x$ is class 0.
#
# We may change every coordinate by at most $\varepsilon$: $\lVert x' - x\rVert_\infty \le \varepsilon$.
# Which change raises $P(y=1)$ most? The gradient of the log-probability is
#
# $$
# \nabla_x \log \sigma(w^\top x + b) = \big(1 - \sigma(w^\top x + b)\big)\, w ,
# $$
#
# a positive multiple of $w$, so its **sign** is $\operatorname{sign}(w)$ and the best step moves
# every coordinate by the full $\varepsilon$ in that direction:
#
# $$
# x' = x + \varepsilon\, \operatorname{sign}(w)
# \quad\Longrightarrow\quad
# w^\top x' = w^\top x + \varepsilon \sum_i |w_i| = w^\top x + \varepsilon\, \lVert w\rVert_1 .
# $$
#
# No single coordinate moves by more than $\varepsilon$, but the logit moves by
# $\varepsilon\lVert w\rVert_1$, which grows with the **number of coordinates**. Here
# $\lVert w\rVert_1 = 10$: fill in the table before you run the code.
#
# | $\varepsilon$ | 0 | 0.1 | 0.2 | 0.3 |
# |---|---|---|---|---|
# | $w^\top x'$ | $-2$ | ? | ? | ? |
# | $P(y=1 \mid x')$ | 0.1192 | ? | ? | ? |
#
# ### Exercise 1 · `logistic_attack` (2 points)
#
# Implement `logistic_attack(x, w, b=0.0, *, eps, target=1)`:
#
# * `target=1` pushes towards class 1: $x' = x + \varepsilon\operatorname{sign}(w)$;
#   `target=0` pushes towards class 0: $x' = x - \varepsilon\operatorname{sign}(w)$.
#   Use the *sign* of the gradient (`torch.sign`), not the gradient itself: a coordinate with
#   $w_i = 0$ does not move, every other one moves by exactly $\varepsilon$.
# * `x` is one point $(D,)$ or a batch $(N, D)$; `w` has shape $(D,)$; `b` is a number.
# * Return `(x_adv, p)`: the new point(s), same shape and dtype as `x`, and
#   $p = \sigma(w^\top x' + b)$, the probability of **class 1** after the attack (shape $()$ for
#   one point, $(N,)$ for a batch). No clamping: $x$ is not an image here.
# * Do not modify `x` in place.

# %% nbgrader="answer" id="logistic_attack_answer"
def logistic_attack(x, w, b=0.0, *, eps, target=1):
    """Fool logistic regression P(y=1|x) = sigmoid(w.x + b) with one signed step of size eps.

    x: float tensor (D,) or (N, D); w: float tensor (D,); b: float
    eps: float >= 0; target: 1 (towards class 1) or 0 (towards class 0)
    Returns (x_adv, p): x_adv like x; p = sigmoid(w.x_adv + b), shape () or (N,).
    """
    ### BEGIN SOLUTION
    direction = 1.0 if target == 1 else -1.0
    x_adv = x + direction * eps * torch.sign(w)
    return x_adv, torch.sigmoid(x_adv @ w + b)
    ### END SOLUTION


# %% nbgrader="tests" id="logistic_attack_test" points=2
# Tests for Exercise 1: the lecture's numbers, both directions, batches.
import math
import torch
from helpers import adversarial as ref
from helpers.testing import assert_close
from helpers.testing.adversarial import run_logistic_attack

_x = torch.tensor([1.0, -2, -2, 3, -1, 2, -2, -3])
_w = torch.tensor([2.0, -1, -1, -1, 2, -1, -1, 1])
# By hand: w.x = -2 and ||w||_1 = 10, so w.x' = -2 + 10 eps: -1, 0, 1 -> sigmoid 0.2689, 0.5, 0.7311.
for _eps, _p in [(0.1, 0.2689), (0.2, 0.5), (0.3, 0.7311)]:
    _xa, _pa = run_logistic_attack(logistic_attack, _x, _w, eps=_eps)
    assert_close(_pa, torch.tensor(_p), name=f"P(y=1|x') for eps={_eps}", atol=1e-4,
                 hint="p is sigmoid(w . x_adv + b), the probability of class 1 after the step")
_xa, _ = run_logistic_attack(logistic_attack, _x, _w, eps=0.1)
assert_close(_xa, torch.tensor([1.1, -2.1, -2.1, 2.9, -0.9, 1.9, -2.1, -2.9]), name="x' for eps=0.1", atol=1e-6,
             hint="every coordinate moves by eps in the direction of sign(w)")
# Towards class 0: w.x' = -2 - 10 * 0.1 = -3.
_xa, _pa = run_logistic_attack(logistic_attack, _x, _w, eps=0.1, target=0)
assert_close(_pa, torch.tensor(1 / (1 + math.exp(3.0))), name="P(y=1|x') for eps=0.1, target=0", atol=1e-4,
             hint="target=0 moves x against sign(w), lowering the probability of class 1")

### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(0)
_w = torch.randn(50, generator=_g, dtype=torch.float64) * 3
_w[::7] = 0.0                                                      # some weights are exactly 0
_X = torch.randn(6, 50, generator=_g, dtype=torch.float64)
for _target in (1, 0):
    _e_x, _e_p = ref.logistic_attack(_X, _w, 0.3, eps=0.05, target=_target)
    _xa, _pa = run_logistic_attack(logistic_attack, _X, _w, 0.3, eps=0.05, target=_target)
    assert_close(_xa, _e_x, name=f"x_adv for a batch (6, 50), target={_target}", atol=1e-12,
                 hint="use eps * sign(w) (every coordinate moves by eps, zeros stay), not eps * w")
    assert_close(_pa, _e_p, name=f"p for a batch (6, 50), target={_target}, b=0.3", atol=1e-12)
    assert _xa.dtype == torch.float64, f"x_adv should keep x's dtype float64, got {_xa.dtype}"
### END HIDDEN TESTS
print("Exercise 1: all visible tests passed.")

# %% [markdown]
# The table, and what happens in more dimensions. Below, on the left, a linear model with $D$ inputs
# and weights $w_i = \pm 1$: the step $\varepsilon = 1/255$ (one grey level) moves the logit by
# $\varepsilon \lVert w\rVert_1 = D/255$ — negligible for $D = 8$, overwhelming for an image with
# $D = 3 \cdot 224 \cdot 224 = 150{,}528$ numbers. On the right, the same argument for the real
# network: to first order (Taylor), an FGSM step raises the loss by
# $\varepsilon \lVert \nabla_x L\rVert_1$. The dashed lines are that prediction, the dots the true
# change of the loss of the cat photo. The network is not linear, but for small $\varepsilon$ it
# behaves as if it were (Goodfellow et al.'s "linearity hypothesis").

# %%
x8 = torch.tensor([1.0, -2, -2, 3, -1, 2, -2, -3])
w8 = torch.tensor([2.0, -1, -1, -1, 2, -1, -1, 1])
print(f"{'eps':>5s} {'w.x_adv':>8s} {'P(y=1|x_adv)':>13s}")
for eps in (0.0, 0.1, 0.2, 0.3):
    xa, p = ref.logistic_attack(x8, w8, eps=eps)
    print(f"{eps:5.1f} {float(xa @ w8):8.2f} {float(p):13.4f}")

model = load_model("efficientnet_lite0").to(device)
cat = load_photos(["chelsea"])
y_cat = ref.predict(model, cat)
x_ = cat.clone().requires_grad_(True)
loss0 = F.cross_entropy(model(x_), y_cat)
(g,) = torch.autograd.grad(loss0, x_)
eps_grid = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.5]) / 255
actual = []
for eps in eps_grid:
    with torch.no_grad():
        actual.append(float(F.cross_entropy(model(ref.fgsm(model, cat, y_cat, eps=float(eps))), y_cat) - loss0))

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
D = np.logspace(0, 6, 50)
axes[0].loglog(D, D / 255, label="logit change eps * ||w||_1 (eps = 1/255, |w_i| = 1)")
for d, what in ((8, "the 8-d example"), (3 * 32 * 32, "32x32 RGB"), (3 * 224 * 224, "224x224 RGB")):
    axes[0].plot(d, d / 255, "o")
    axes[0].annotate(what, (d, d / 255), textcoords="offset points", xytext=(6, -12), fontsize=9)
axes[0].set_xlabel("number of inputs D")
axes[0].set_ylabel("change of the logit")
axes[0].set_title("A linear model: the change grows with D")
axes[0].legend(fontsize=8, loc="upper left")
axes[1].plot(eps_grid * 255, eps_grid * float(g.abs().sum()), "k--", label="first order: eps * ||grad L||_1")
axes[1].plot(eps_grid * 255, actual, "o-", label="true change of the loss (FGSM)")
axes[1].set_xscale("log")
axes[1].set_yscale("log")
axes[1].set_xlabel("eps (grey levels of 255)")
axes[1].set_ylabel("loss increase")
axes[1].set_title(f"EfficientNet-Lite0 on the cat ({SIZE}x{SIZE}, label '{name_of(y_cat[0])}')")
axes[1].legend(fontsize=8)
plt.show()
print(f"||grad L||_1 = {float(g.abs().sum()):.1f} over {g.numel():,} inputs: one grey level in every pixel "
      f"raises the loss by about {float(g.abs().sum()) / 255:.2f} (to first order).")
print("true change / first-order prediction:",
      ", ".join(f"{e * 255:g}/255: {a / (e * float(g.abs().sum())):.2f}" for e, a in zip(eps_grid, actual)))


# %% [markdown]
# **Question 1** (2 points). (a) Use the table and the left plot to explain why a perturbation of
# $\varepsilon$ per input, far too small to see, can flip the decision of a linear classifier on
# images but hardly moves it on the 8-dimensional example. (b) Deep networks are not linear. What
# does the right-hand plot say about why the same argument still applies to them? Two or three
# sentences each.

# %% [markdown] nbgrader="manual" id="question_1" points=2
# ### BEGIN SOLUTION
# Model answer (1 point each part):
#
# (a) The step $\varepsilon\operatorname{sign}(w)$ changes the logit by $\varepsilon\lVert w\rVert_1
# = 10\,\varepsilon$ in the example: every 0.1 of $\varepsilon$ adds 1 (logit −2 → −1 → 0 → 1,
# probability 0.12 → 0.27 → 0.5 → 0.73), i.e. many small changes that all push the same way add up. The
# $L_\infty$ size of the change stays $\varepsilon$ whatever the dimension, but $\lVert w\rVert_1$
# grows linearly with the number of inputs (about $D$ times the average $|w_i|$). With 150,528
# inputs, one grey level per pixel ($\varepsilon = 1/255$) can move the logit by hundreds of units
# times the average weight, while on the 8 inputs it moves it by $10/255 \approx 0.04$ — so high-dimensional inputs are
# what make imperceptible attacks possible.
#
# (b) Locally the network behaves like a linear function of its input: the first-order prediction
# $\varepsilon\lVert\nabla_x L\rVert_1$ matches the true loss increase for small $\varepsilon$
# (within about 10 % up to 0.2 grey level: the printed ratios are 1.02 to 1.12). ReLU-type
# networks are piecewise linear and are trained to be easy to optimise, i.e. close to linear, so
# the gradient sign at $x$ tells which way every pixel should move, and $\lVert\nabla_x L\rVert_1$
# — a sum over all pixels — is large. Nonlinearity shows only for larger steps, where the true
# change departs from the line (ratio 0.83 at half a grey level).
# ### END SOLUTION

# %% [markdown]
# ## Part 2 · Fooling images
#
# Szegedy et al. ("Intriguing properties of neural networks", 2014) found adversarial examples
# with an optimiser; the lecture's recipe (CS231n) is the simplest version of it:
#
# 1. start from a real image $x$;
# 2. pick a class $t$ — any class;
# 3. change the image to increase the **raw score** (logit) $s_t(x)$ of that class, a little at a
#    time;
# 4. repeat until the network predicts $t$.
#
# One step is normalised gradient ascent:
#
# $$
# g = \nabla_x s_t(x), \qquad
# x \leftarrow \operatorname{clip}_{[0, 1]}\!\Big(x + \eta\, \frac{g}{\lVert g\rVert_2}\Big),
# $$
#
# so that every step moves the image by the same distance $\eta$ (in L2), however large or small the
# gradient is. Why the raw score and not the probability $p_t = \operatorname{softmax}(s)_t$? When
# the network is sure of another class, $p_t \approx 0$ and so is its gradient; and $p_t$ can rise
# just because other classes fall. The logit asks the direct question "look more like $t$".
# There is no $\varepsilon$ here: the attack stops as soon as it succeeds, which keeps the change
# small.
#
# ### Exercise 2 · `fooling_image` (3 points)
#
# Implement `fooling_image(model, x, target, *, step_size=0.25, max_steps=100)` for a batch:
#
# * `target` is an `int` (the same goal for every image) or an int64 tensor $(N,)$.
# * Loop at most `max_steps` times. In each iteration compute the logits of the current images.
#   Images whose prediction (`argmax`) already **equals** their target are finished: they are not
#   changed any more. If all are finished, stop. Otherwise take one step for the unfinished images,
#   with each image's **own** gradient norm $\lVert g_n\rVert_2$ (over its C·H·W values), and clamp
#   to $[0, 1]$.
# * Return `(x_adv, steps)`: the images and an int64 tensor $(N,)$ counting the steps each image
#   took (0 for an image that was already classified as its target).
# * Work on a copy: `x_adv = x.detach().clone()`; in each step make a leaf
#   `x_ = x_adv.detach().requires_grad_(True)` and get the gradient with
#   `torch.autograd.grad(score, x_)`, where `score` is the **sum** over the batch of each image's
#   target logit (each image's score depends only on its own pixels, so one backward pass gives
#   every image its own gradient). Do not call `.backward()`: it would also fill the `.grad` of the
#   model's parameters.
# * Run the model in eval mode (`model.eval()`) and give it back its mode at the end
#   (`model.train(was_training)`).

# %% nbgrader="answer" id="fooling_image_answer"
def fooling_image(model, x, target, *, step_size=0.25, max_steps=100):
    """Targeted gradient ascent on the raw target logit until the network predicts target.

    model: images (N, C, H, W) -> logits (N, K); x: (N, C, H, W) in [0, 1]
    target: int or int64 tensor (N,); step_size: L2 length of one step; max_steps: int >= 1
    Returns (x_adv, steps): images in [0, 1] and an int64 tensor (N,) of steps taken.
    """
    ### BEGIN SOLUTION
    was_training = model.training
    model.eval()
    try:
        t = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(x.shape[0])
        x_adv = x.detach().clone()
        steps = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        for _ in range(max_steps):
            x_ = x_adv.detach().requires_grad_(True)
            logits = model(x_)
            active = logits.argmax(dim=1) != t
            if not bool(active.any()):
                break
            score = logits.gather(1, t[:, None]).sum()
            (g,) = torch.autograd.grad(score, x_)
            norm = g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            stepped = (x_adv + step_size * g / norm).clamp(0.0, 1.0)
            x_adv = torch.where(active.view(-1, 1, 1, 1), stepped, x_adv)
            steps = steps + active.long()
        return x_adv.detach(), steps
    finally:
        model.train(was_training)
    ### END SOLUTION


# %% nbgrader="tests" id="fooling_image_test" points=2
# Tests for Exercise 2, part 1: one step by hand, stopping.
import torch
from helpers import adversarial as ref
from helpers.testing import assert_close
from helpers.testing.adversarial import run_fooling_image
from helpers.testing.nets import linear_net, random_images, tiny_cnn

# A linear model: the gradient of the target logit is the target's weight row W_t, so one step
# is x + step_size * W_t / ||W_t||, clamped to [0, 1].
_net = linear_net(seed=0)
_x = random_images(1, side=4, seed=1) * 0.5 + 0.25  # away from 0 and 1: no clamping
with torch.no_grad():
    _t = int(_net(_x).argmin())  # the class the model likes least
_W = _net[1].weight.detach()[_t].reshape(1, 3, 4, 4)
_xa, _steps = run_fooling_image(fooling_image, _net, _x, _t, step_size=0.5, max_steps=1)
assert int(_steps[0]) == 1, f"after one step on an unfooled image steps should be [1], got {_steps.tolist()}"
assert_close(_xa, _x + 0.5 * _W / _W.norm(), name="fooling_image(linear net, max_steps=1)", atol=1e-10,
             hint="one step adds step_size * g / ||g||_2, g the gradient of the raw target logit")
# Run to the end: the model must predict the target, and the image then stops changing.
_xa, _steps = run_fooling_image(fooling_image, _net, _x, _t, step_size=0.5, max_steps=200)
with torch.no_grad():
    _pred = int(_net(_xa).argmax())
assert _pred == _t, f"after {_steps.tolist()} steps the model predicts {_pred}, not the target {_t}"
_e_xa, _e_steps = ref.fooling_image(_net, _x, _t, step_size=0.5, max_steps=200)
assert _steps.tolist() == _e_steps.tolist(), (
    f"the target is reached after {_e_steps.tolist()} steps, your function reports {_steps.tolist()}: "
    f"stop as soon as the prediction equals the target (check before every step)")
# An image that is already classified as the target: 0 steps, unchanged.
with torch.no_grad():
    _already = int(_net(_x).argmax())
_xa, _steps = run_fooling_image(fooling_image, _net, _x, _already, max_steps=10)
assert _steps.tolist() == [0] and torch.equal(_xa, _x), (
    "an image that is already predicted as its target should take 0 steps and come back unchanged")

### BEGIN HIDDEN TESTS
_net = tiny_cnn(seed=3)
_x = random_images(2, seed=4)
with torch.no_grad():
    _t = int(_net(_x[:1]).argmin())
_e_xa, _e_steps = ref.fooling_image(_net, _x[:1], _t, step_size=0.3, max_steps=1)
_xa, _steps = run_fooling_image(fooling_image, _net, _x[:1], _t, step_size=0.3, max_steps=1)
assert_close(_xa, _e_xa, name="one step on a small CNN", atol=1e-10,
             hint="ascend the raw logit of the target (not its softmax probability), normalised by the L2 norm")
_e_xa, _e_steps = ref.fooling_image(_net, _x[:1], _t, step_size=0.3, max_steps=100)
_xa, _steps = run_fooling_image(fooling_image, _net, _x[:1], _t, step_size=0.3, max_steps=100)
assert _steps.tolist() == _e_steps.tolist(), f"small CNN: expected {_e_steps.tolist()} steps, got {_steps.tolist()}"
assert_close(_xa, _e_xa, name="fooling image of a small CNN", atol=1e-9)
### END HIDDEN TESTS
print("Exercise 2, part 1: all visible tests passed.")

# %% nbgrader="tests" id="fooling_image_batch_test" points=1
# Tests for Exercise 2, part 2: batches, clamping, the model's mode.
import torch
from helpers import adversarial as ref
from helpers.testing import assert_close
from helpers.testing.adversarial import run_fooling_image
from helpers.testing.nets import random_images, tiny_cnn, with_dropout

# A batch of three images with three different targets; image 1's target is its current class.
_net = tiny_cnn(seed=0)
_x = random_images(3, seed=1, edges=True)
with torch.no_grad():
    _pred = _net(_x).argmax(dim=1)
_t = torch.tensor([(int(_pred[0]) + 1) % 5, int(_pred[1]), (int(_pred[2]) + 2) % 5])
_xa, _steps = run_fooling_image(fooling_image, _net, _x, _t, step_size=0.5, max_steps=300)
with torch.no_grad():
    _now = _net(_xa).argmax(dim=1)
assert _now.tolist() == _t.tolist(), f"the images should end up classified as {_t.tolist()}, got {_now.tolist()}"
assert int(_steps[1]) == 0 and torch.equal(_xa[1], _x[1]), (
    "image 1 was already classified as its target: it should take 0 steps and stay unchanged")

### BEGIN HIDDEN TESTS
_e_xa, _e_steps = ref.fooling_image(_net, _x, _t, step_size=0.5, max_steps=300)
assert _steps.tolist() == _e_steps.tolist(), (
    f"steps per image: expected {_e_steps.tolist()}, got {_steps.tolist()}: every image stops on its own, "
    f"and steps normalise by each image's own gradient norm")
assert_close(_xa, _e_xa, name="fooling images of a batch", atol=1e-9,
             hint="normalise each image by its own gradient norm, clamp to [0, 1] after every step, "
                  "and leave finished images alone")
# large steps on images with many pixels at 0 or 1: the clamp must act after every step
_x2 = random_images(2, seed=7, edges=True)
_e_xa, _e_steps = ref.fooling_image(_net, _x2, 2, step_size=3.0, max_steps=3)
_xa, _steps = run_fooling_image(fooling_image, _net, _x2, 2, step_size=3.0, max_steps=3)
assert_close(_xa, _e_xa, name="fooling_image with large steps (clamping after every step)", atol=1e-9)
# a model in train mode (with dropout) is run in eval mode and put back in train mode
_drop = with_dropout(seed=1)
_e_xa, _e_steps = ref.fooling_image(_drop, _x, 0, step_size=0.5, max_steps=20)
_xa, _steps = run_fooling_image(fooling_image, _drop, _x, 0, step_size=0.5, max_steps=20)
assert _drop.training, "the model was in train mode before fooling_image and must be again afterwards"
assert_close(_xa, _e_xa, name="fooling_image on a model with dropout (use eval mode)", atol=1e-9)
### END HIDDEN TESTS
print("Exercise 2, part 2: all visible tests passed.")

# %% [markdown]
# ### Everything becomes an ostrich
#
# The lecture shows photos that AlexNet classifies as "ostrich" after a change ten times too small
# to see (Szegedy et al., 2014). Here is the same experiment on EfficientNet-Lite0, with the
# reference `ref.fooling_image`, on photos the network classifies with confidence (the cat framed
# on its face, the espresso, the tripod and, in full mode, the moped; the cell prints the three
# most probable classes before and after). The middle column shows the perturbation
# $x' - x$ **amplified ten times** around mid grey (`ref.perturbation_image`): grey means
# unchanged.

# %%
OSTRICH = 9
fool_names = ["chelsea", "coffee", "camera"] if FAST else ["chelsea", "coffee", "camera", "motorcycle"]
x_fool = load_photos(fool_names)
t0 = time.perf_counter()
x_ostrich, fool_steps = ref.fooling_image(model, x_fool, OSTRICH, step_size=0.25, max_steps=100)
seconds = time.perf_counter() - t0
with torch.no_grad():
    p_before = model(x_fool).softmax(dim=1)
    p_after = model(x_ostrich).softmax(dim=1)
linf, l2 = ref.perturbation_norms(x_fool, x_ostrich)
d = x_fool[0].numel()
print(f"{'image':13s} {'steps':>5s} {'L-inf':>12s} {'L2':>6s} {'RMS':>12s}   top 3 before -> after")
for i, (n, before, after) in enumerate(zip(fool_names, top3(model, x_fool), top3(model, x_ostrich))):
    print(f"{n:13s} {int(fool_steps[i]):5d} {float(linf[i]) * 255:6.1f} / 255 {float(l2[i]):6.2f} "
          f"{float(l2[i]) / math.sqrt(d) * 255:6.2f} / 255   {before}\n{'-> ':>55s}{after}")
print(f"({seconds:.1f} s; L-inf: the largest change of one value, L2: the whole change, "
      f"RMS = L2 / sqrt({d:,}): the typical change per value)")
show_attack_rows(x_fool, x_ostrich,
                 [f"{name_of(p_before[i].argmax())} {float(p_before[i].max()):.0%}" for i in range(len(fool_names))],
                 [f"{name_of(p_after[i].argmax())} {float(p_after[i].max()):.0%}" for i in range(len(fool_names))],
                 suptitle="Fooling images: original, 10x perturbation, 'ostrich'")
plt.show()


# %% [markdown]
# Fewer than 20 steps suffice for every photo (7 to 19 here). The typical (RMS) change per value is
# about one grey level or less (0.5 to 1.0 / 255); the largest single change is about 6 to 13 grey
# levels, because an L2 step puts most of its budget where the gradient is largest — on the espresso you
# can make out the rim of the cup and the spoon in the amplified perturbation. The fooled images
# look exactly like the originals, yet the network now ranks "ostrich" first of its 1000 classes.
# Read the top 3, though: the attack stops as soon as ostrich is on top, so the cat becomes an
# ostrich with 93 %, but the espresso and the tripod keep 31 % and 37 % of their first answer
# (ostrich 61 % and 54 %). More steps would make the network surer.
#
# The next attacks limit the *largest* change instead: every pixel may move by at most
# $\varepsilon$ (the $L_\infty$ ball), the threat model of FGSM and PGD.

# %% [markdown]
# ## Part 3 · The fast gradient sign method (FGSM)
#
# Goodfellow, Shlens & Szegedy (2015) turned the linear argument of Part 1 into an attack: take the
# loss $L(x, y)$ the network was trained to minimise — the cross-entropy of its logits,
# $L(x, y) = -\log\operatorname{softmax}(f(x))_y$ — linearise it around $x$, and take the step that
# increases it most under $\lVert x' - x\rVert_\infty \le \varepsilon$: every pixel by $\pm\varepsilon$,
# following the sign of the gradient. One gradient, one step:
#
# $$
# \text{untargeted:}\quad x' = \operatorname{clip}_{[0,1]}\big(x + \varepsilon\,\operatorname{sign}\nabla_x L(x, y)\big)
# \qquad (y = \text{the true label: make it less likely}),
# $$
#
# $$
# \text{targeted:}\quad x' = \operatorname{clip}_{[0,1]}\big(x - \varepsilon\,\operatorname{sign}\nabla_x L(x, t)\big)
# \qquad (t = \text{the goal class: make it more likely}).
# $$
#
# Mind the two signs: an untargeted attack **climbs** the loss of the true label, a targeted attack
# **descends** the loss of the goal class. The clip keeps $x'$ an image; it never increases the
# change, so $\lVert x' - x\rVert_\infty \le \varepsilon$ still holds. Because our models take
# pixels in $[0, 1]$ and normalise internally, $\varepsilon$ is in pixel units: $\varepsilon = 1/255$
# is one grey level of an 8-bit image.
#
# ### Exercise 3 · `fgsm` (3 points)
#
# Implement `fgsm(model, x, target, *, eps, targeted=False)`:
#
# * `target`: an `int` or an int64 tensor $(N,)$ — the true labels (untargeted) or the goal
#   classes (targeted).
# * Loss: `F.cross_entropy(logits, target, reduction="sum")` (the sum keeps every image's gradient
#   independent of the others; the mean would only rescale it, which the sign ignores).
# * Gradient as in Exercise 2: a leaf copy `x_ = x.detach().clone().requires_grad_(True)` and
#   `torch.autograd.grad(loss, x_)`; the model in eval mode, its mode restored at the end.
# * Return $x'$ clamped to $[0, 1]$, without autograd graph.

# %% nbgrader="answer" id="fgsm_answer"
def fgsm(model, x, target, *, eps, targeted=False):
    """Fast gradient sign method (Goodfellow et al., 2015).

    model: images (N, C, H, W) -> logits (N, K); x: (N, C, H, W) in [0, 1]
    target: int or int64 tensor (N,): true labels (untargeted) or goal classes (targeted)
    eps: float, the L-inf budget in pixel units
    Returns x_adv (N, C, H, W) in [0, 1] with |x_adv - x| <= eps.
    """
    ### BEGIN SOLUTION
    was_training = model.training
    model.eval()
    try:
        t = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(x.shape[0])
        x_ = x.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x_), t, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_)
        direction = -1.0 if targeted else 1.0
        return (x.detach() + direction * eps * g.sign()).clamp(0.0, 1.0)
    finally:
        model.train(was_training)
    ### END SOLUTION


# %% nbgrader="tests" id="fgsm_test" points=2
# Tests for Exercise 3, part 1: untargeted FGSM.
import torch
from helpers import adversarial as ref
from helpers.testing import assert_close
from helpers.testing.adversarial import ce_grad_by_hand, run_attack
from helpers.testing.nets import linear_net, random_images, tiny_cnn, with_dropout

# A linear model, whose loss gradient is (softmax - onehot) W: the answer can be written down.
_net = linear_net(seed=0)
_x = random_images(3, side=4, seed=1) * 0.6 + 0.2  # away from 0 and 1: no clamping
_y = torch.tensor([0, 2, 3])
_expected = _x + 0.05 * ce_grad_by_hand(_net, _x, _y).sign()
_got = run_attack(fgsm, _net, _x, _y, eps=0.05)
assert_close(_got, _expected, name="fgsm(linear net, x, y, eps=0.05)", atol=1e-10,
             hint="untargeted: x + eps * sign(gradient of the cross-entropy of the true label)")
# The same label for every image, given as an int.
_expected = _x + 0.05 * ce_grad_by_hand(_net, _x, torch.tensor([1, 1, 1])).sign()
assert_close(run_attack(fgsm, _net, _x, 1, eps=0.05), _expected, name="fgsm(linear net, x, 1, eps=0.05)",
             atol=1e-10)
# Pixels at 0 and 1: the result must be clamped to [0, 1] (run_attack checks it).
_xe = random_images(3, side=4, seed=2, edges=True)
_got = run_attack(fgsm, _net, _xe, _y, eps=0.1)
assert_close(_got, (_xe + 0.1 * ce_grad_by_hand(_net, _xe, _y).sign()).clamp(0, 1),
             name="fgsm on images with pixels at 0 and 1", atol=1e-10)

### BEGIN HIDDEN TESTS
_cnn = tiny_cnn(seed=2)
_x = random_images(4, seed=3, edges=True)
_y = torch.tensor([0, 1, 4, 2])
for _eps in (0.03, 0.2):
    _e = ref.fgsm(_cnn, _x, _y, eps=_eps)
    assert_close(run_attack(fgsm, _cnn, _x, _y, eps=_eps), _e, name=f"fgsm on a small CNN, eps={_eps}",
                 atol=1e-10,
                 hint="the step is eps * sign(gradient), every pixel moves by exactly eps before the clamp")
_drop = with_dropout(seed=1)
_e = ref.fgsm(_drop, _x, _y, eps=0.05)
_got = run_attack(fgsm, _drop, _x, _y, eps=0.05)
assert _drop.training, "the model was in train mode before fgsm and must be again afterwards"
assert_close(_got, _e, name="fgsm on a model with dropout (attack it in eval mode)", atol=1e-10)
_x32 = _x.float()
_cnn32 = tiny_cnn(seed=2, dtype=torch.float32)
_got = run_attack(fgsm, _cnn32, _x32, _y, eps=0.05)
assert _got.dtype == torch.float32, f"fgsm should keep x's dtype float32, got {_got.dtype}"
### END HIDDEN TESTS
print("Exercise 3, part 1: all visible tests passed.")

# %% nbgrader="tests" id="fgsm_targeted_test" points=1
# Tests for Exercise 3, part 2: targeted FGSM.
import torch
import torch.nn.functional as F
from helpers import adversarial as ref
from helpers.testing import assert_close
from helpers.testing.adversarial import ce_grad_by_hand, run_attack
from helpers.testing.nets import linear_net, random_images, tiny_cnn

_net = linear_net(seed=0)
_x = random_images(3, side=4, seed=1) * 0.6 + 0.2
_t = torch.tensor([3, 3, 1])
_expected = _x - 0.05 * ce_grad_by_hand(_net, _x, _t).sign()
_got = run_attack(fgsm, _net, _x, _t, eps=0.05, targeted=True)
assert_close(_got, _expected, name="fgsm(linear net, x, t, eps=0.05, targeted=True)", atol=1e-10,
             hint="targeted: x - eps * sign(gradient of the cross-entropy of the goal class): descend it")
with torch.no_grad():
    _before = F.cross_entropy(_net(_x), _t, reduction="none")
    _after = F.cross_entropy(_net(_got), _t, reduction="none")
assert bool((_after < _before).all()), "a targeted step should lower the loss of the goal class"

### BEGIN HIDDEN TESTS
_cnn = tiny_cnn(seed=5)
_x = random_images(4, seed=6, edges=True)
_t = torch.tensor([4, 0, 0, 3])
_e = ref.fgsm(_cnn, _x, _t, eps=0.08, targeted=True)
assert_close(run_attack(fgsm, _cnn, _x, _t, eps=0.08, targeted=True), _e, name="targeted fgsm on a small CNN",
             atol=1e-10)
_e = ref.fgsm(_cnn, _x, 2, eps=0.08, targeted=True)
assert_close(run_attack(fgsm, _cnn, _x, 2, eps=0.08, targeted=True), _e, name="targeted fgsm, int target",
             atol=1e-10)
### END HIDDEN TESTS
print("Exercise 3, part 2: all visible tests passed.")


# %% [markdown]
# ### Exercise 4 · `attack_success_rate` (2 points)
#
# An attack is judged by how often it reaches its goal:
#
# * **untargeted** (`target` = the true labels $y$): success when $\arg\max f(x') \ne y$;
# * **targeted** (`target` = the goal classes $t$): success when $\arg\max f(x') = t$.
#
# Implement `attack_success_rate(model, x_adv, target, *, targeted=False)` returning the fraction
# of successful images as a Python `float` in $[0, 1]$. `target` is an `int` or an int64 tensor
# $(N,)$. Predict in eval mode and without gradients (`with torch.no_grad():`), and give the model
# its mode back. Our photos come without ground-truth labels, so the demos pass the network's
# **prediction on the clean image** as $y$: success then means "the attack changed the answer".

# %% nbgrader="answer" id="attack_success_rate_answer"
def attack_success_rate(model, x_adv, target, *, targeted=False):
    """Fraction of images on which the attack succeeded, a float in [0, 1].

    untargeted: prediction != target (the true label); targeted: prediction == target (the goal).
    """
    ### BEGIN SOLUTION
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            pred = model(x_adv).argmax(dim=1)
        t = torch.as_tensor(target, device=pred.device).long().reshape(-1).expand(pred.shape[0])
        hits = (pred == t) if targeted else (pred != t)
        return float(hits.double().mean())
    finally:
        model.train(was_training)
    ### END SOLUTION


# %% nbgrader="tests" id="attack_success_rate_test" points=2
# Tests for Exercise 4.
import torch
import torch.nn as nn
from helpers import adversarial as ref
from helpers.testing.adversarial import FirstPixels, run_success_rate
from helpers.testing.nets import random_images, tiny_cnn

_x = torch.zeros(4, 3, 2, 2)
for _i, _k in enumerate([0, 3, 3, 1]):                  # the predictions are 0, 3, 3, 1
    _x.view(4, -1)[_i, _k] = 1.0
_m = FirstPixels()
for _target, _targeted, _expected in [(torch.tensor([0, 3, 2, 2]), False, 0.5),   # 2 and 3 changed
                                      (torch.tensor([0, 1, 3, 1]), True, 0.75),   # 0, 2, 3 hit the goal
                                      (1, False, 0.75), (1, True, 0.25)]:
    _got = run_success_rate(attack_success_rate, _m, _x, _target, targeted=_targeted)
    assert abs(_got - _expected) < 1e-12, (
        f"attack_success_rate(predictions [0, 3, 3, 1], target={_target if isinstance(_target, int) else _target.tolist()}, "
        f"targeted={_targeted}) should be {_expected}, got {_got}"
        + (" (targeted: success means prediction == target)" if _targeted else
           " (untargeted: success means prediction != true label)"))

### BEGIN HIDDEN TESTS
_cnn = tiny_cnn(seed=4)
_X = random_images(40, seed=5)
_Y = torch.randint(0, 5, (40,), generator=torch.Generator().manual_seed(6))
for _targeted in (False, True):
    _e = ref.attack_success_rate(_cnn, _X, _Y, targeted=_targeted)
    assert abs(run_success_rate(attack_success_rate, _cnn, _X, _Y, targeted=_targeted) - _e) < 1e-12, (
        f"40 images of a small CNN, targeted={_targeted}: expected {_e}")
# BatchNorm in train mode would use the batch's statistics (and update its running averages):
# predictions must be made in eval mode.
_bn = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5), nn.BatchNorm1d(5)).double()
with torch.no_grad():
    _bn[2].running_mean.copy_(torch.tensor([3.0, -2.0, 1.0, 0.5, -1.0], dtype=torch.float64))
_bn.train()
_e = ref.attack_success_rate(_bn, _X, _Y)
_got = run_success_rate(attack_success_rate, _bn, _X, _Y)
assert _bn.training, "the model was in train mode before and must be again afterwards"
assert abs(_got - _e) < 1e-12, f"a model with BatchNorm: expected {_e}, got {_got}: predict in eval mode"
### END HIDDEN TESTS
print("Exercise 4: all visible tests passed.")

# %% [markdown]
# ### How large must $\varepsilon$ be?
#
# Which pictures count as photos? The course bundles 24 images; the success-rate experiments use
# the **11 photographs** of everyday objects, people and scenes in `ref.PHOTOS` — eight in colour
# and three greyscale (camera, clock, coins; the network sees three equal channels). Left out are the
# synthetic patterns, the textures, the scientific and medical images and the documents: the
# network was not trained on such pictures and its answers on them mean little. The cat is framed
# on its face (`CROPS`), the others are centre crops. The "true" label of each photo is the
# network's own prediction on the clean photo; the table prints how sure the network is of it —
# only five of the eleven above 50 %.
#
# For the targeted attacks every photo gets a random goal class (fixed by a seed). The curves show
# the success rate of FGSM against $\varepsilon$, from a few hundredths of a grey level to 16 grey
# levels.

# %%
photo_names = list(ref.PHOTOS)
photos = load_photos()                                                      # (11, 3, SIZE, SIZE)
y_photo = ref.predict(model, photos)
with torch.no_grad():
    conf = model(photos).softmax(dim=1).amax(dim=1)
goal = torch.randint(0, 1000, (len(photo_names),), generator=torch.Generator().manual_seed(0)).to(device)
goal = torch.where(goal == y_photo, (goal + 1) % 1000, goal)              # never the clean prediction
print(f"{'photo':13s} {'clean prediction':28s} {'goal class (targeted)':24s}")
for n, y, c, t in zip(photo_names, y_photo, conf, goal):
    print(f"{n:13s} {name_of(y)[:22]:22s} {float(c):4.0%}  {name_of(t)[:24]}")
print(f"the network is at least 50 % sure on {int((conf >= 0.5).sum())} of the {len(photo_names)} photos")

EPS_GREY = [0.01, 0.03, 0.1, 0.3, 1, 2, 4, 8, 16] if not FAST else [0.03, 0.1, 0.3, 1, 4, 16]
fgsm_rates = {"untargeted": [], "targeted": []}
t0 = time.perf_counter()
for e in helpers.progress(EPS_GREY, desc="FGSM"):
    xu = ref.fgsm(model, photos, y_photo, eps=e / 255)
    xt = ref.fgsm(model, photos, goal, eps=e / 255, targeted=True)
    fgsm_rates["untargeted"].append(ref.attack_success_rate(model, xu, y_photo))
    fgsm_rates["targeted"].append(ref.attack_success_rate(model, xt, goal, targeted=True))
print(f"FGSM on {len(photo_names)} photos at {SIZE}x{SIZE}, {len(EPS_GREY)} values of eps: "
      f"{time.perf_counter() - t0:.1f} s")
print("eps (grey levels):", EPS_GREY)
print("untargeted:", [f"{r:.0%}" for r in fgsm_rates["untargeted"]])
print("targeted:  ", [f"{r:.0%}" for r in fgsm_rates["targeted"]])


# %% [markdown]
# Untargeted FGSM changes the answer on most photos with a perturbation of a fraction of a grey
# level (64 % of the photos at 0.1 grey level, 91 % at 0.3) — a change below half a grey level,
# which saving an 8-bit photo as an 8-bit PNG would round away (a point we return to in Part 7).
# Remember, though, that six of the eleven answers were unsure to begin with. Targeted FGSM, asked
# to reach one specific class out of 1000 in a single step, almost always fails (at most 1 of the
# 11 photos). A single linear step is a crude optimiser: it overshoots and cannot correct
# itself. Note also that FGSM's success need not grow with $\varepsilon$: a larger step can jump past
# the region where the network is wrong.

# %% [markdown]
# ## Part 4 · Projected gradient descent (PGD)
#
# Madry, Makelov, Schmidt, Tsipras & Vladu ("Towards Deep Learning Models Resistant to Adversarial
# Attacks", 2018) treat the attack as what it is, a constrained optimisation problem,
#
# $$
# \max_{x' \in S} L(x', y), \qquad S = \{x' : \lVert x' - x\rVert_\infty \le \varepsilon,\ 0 \le x' \le 1\},
# $$
#
# and solve it by **projected gradient ascent**: many small signed steps of size $\alpha$, each
# followed by the projection $\Pi_S$ back onto the allowed set. For the $L_\infty$ ball the
# projection is a clamp, pixel by pixel:
#
# $$
# x^{(k+1)} = \Pi_S\big(x^{(k)} + \alpha\,\operatorname{sign}\nabla_x L(x^{(k)}, y)\big),
# \qquad
# \Pi_S(z) = \operatorname{clip}\big(z,\ \max(x - \varepsilon, 0),\ \min(x + \varepsilon, 1)\big)
# $$
#
# (for a targeted attack: $-\alpha\operatorname{sign}\nabla_x L(x^{(k)}, t)$). Two details matter:
#
# * **Project after every step**, around the **original** image $x$ (not around the previous
#   iterate). Projecting only once at the end lets the iterates wander far outside the ball, where
#   the gradients say nothing about the points we can actually use.
# * **Random start:** $x^{(0)} = \operatorname{clip}_{[0,1]}(x + \delta_0)$ with
#   $\delta_0$ uniform in $[-\varepsilon, \varepsilon]$ for every pixel. Starting at $x$ itself, the
#   first step is exactly FGSM; a random start avoids the spot where the gradient may be
#   misleading (for example a network trained against FGSM) and lets repeated attacks explore
#   different solutions.
#
# $\alpha$ is typically chosen so that the steps can cross the ball a few times,
# e.g. $\alpha = 2.5\,\varepsilon / \text{steps}$. PGD takes all its steps; it does not stop when
# the network is fooled (pushing on makes the example more robust).
#
# ### Exercise 5 · `pgd` (4 points)
#
# Implement `pgd(model, x, target, *, eps, alpha=None, steps=10, targeted=False, random_start=True,
# generator=None)`:
#
# * `alpha=None` means $\alpha = 2.5\,\varepsilon/\text{steps}$.
# * Random start: draw `u = torch.rand(x.shape, generator=generator, dtype=x.dtype)` (then move it
#   to `x.device`), set $\delta_0 = \varepsilon(2u - 1)$ and clamp $x + \delta_0$ to $[0, 1]$.
#   Passing the same seeded `generator` twice must give the same result; `generator=None` uses
#   PyTorch's global random generator. With `random_start=False`, start at $x$.
# * Each step: the cross-entropy gradient as in `fgsm` (summed over the batch), a signed step of
#   size $\alpha$ (`+` untargeted, `-` targeted), then the projection onto $S$ above.
# * Model in eval mode and restored; $x$ untouched; result without autograd graph.

# %% nbgrader="answer" id="pgd_answer"
def pgd(model, x, target, *, eps, alpha=None, steps=10, targeted=False, random_start=True, generator=None):
    """Projected gradient descent in the L-inf ball (Madry et al., 2018).

    model: images (N, C, H, W) -> logits (N, K); x: (N, C, H, W) in [0, 1]
    target: int or int64 tensor (N,): true labels (untargeted) or goal classes (targeted)
    eps: L-inf radius in pixel units; alpha: step size (None: 2.5 * eps / steps); steps: int >= 1
    random_start: start at a uniform random point of the ball; generator: torch.Generator or None
    Returns x_adv (N, C, H, W) in [0, 1] with |x_adv - x| <= eps.
    """
    ### BEGIN SOLUTION
    if alpha is None:
        alpha = 2.5 * eps / steps
    was_training = model.training
    model.eval()
    try:
        t = torch.as_tensor(target, device=x.device).long().reshape(-1).expand(x.shape[0])
        x0 = x.detach()
        if random_start:
            u = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
            x_adv = (x0 + eps * (2 * u - 1)).clamp(0.0, 1.0)
        else:
            x_adv = x0.clone()
        direction = -1.0 if targeted else 1.0
        for _ in range(steps):
            x_ = x_adv.detach().requires_grad_(True)
            loss = F.cross_entropy(model(x_), t, reduction="sum")
            (g,) = torch.autograd.grad(loss, x_)
            x_adv = x_adv + direction * alpha * g.sign()
            x_adv = (x0 + (x_adv - x0).clamp(-eps, eps)).clamp(0.0, 1.0).detach()   # projection onto S
        return x_adv
    finally:
        model.train(was_training)
    ### END SOLUTION


# %% nbgrader="tests" id="pgd_test" points=2
# Tests for Exercise 5, part 1: PGD from a fixed start.
import torch
import torch.nn.functional as F
from helpers import adversarial as ref
from helpers.testing import assert_close
from helpers.testing.adversarial import ce_grad_by_hand, run_attack
from helpers.testing.nets import linear_net, random_images, tiny_cnn, with_dropout

# From x itself, one step of size eps is FGSM (written out for a linear model).
_net = linear_net(seed=0)
_x = random_images(3, side=4, seed=1, edges=True)
_y = torch.tensor([0, 2, 3])
_fgsm = (_x + 0.05 * ce_grad_by_hand(_net, _x, _y).sign()).clamp(0, 1)
_got = run_attack(pgd, _net, _x, _y, eps=0.05, alpha=0.05, steps=1, random_start=False)
assert_close(_got, _fgsm, name="pgd(steps=1, alpha=eps, random_start=False)", atol=1e-10,
             hint="from a fixed start, one PGD step of size eps is exactly FGSM")
# Ten small steps on a CNN: stays in the ball and [0, 1], and raises the loss more than FGSM does.
_cnn = tiny_cnn(seed=0)
_x = random_images(4, seed=2, edges=True)
_y = torch.tensor([0, 1, 2, 3])
_got = run_attack(pgd, _cnn, _x, _y, eps=0.05, alpha=0.01, steps=10, random_start=False)
_x_fgsm = ref.fgsm(_cnn, _x, _y, eps=0.05)
with torch.no_grad():
    _l0 = float(F.cross_entropy(_cnn(_x), _y))
    _l_pgd = float(F.cross_entropy(_cnn(_got), _y))
    _l_fgsm = float(F.cross_entropy(_cnn(_x_fgsm), _y))
assert _l_pgd > _l0, f"untargeted PGD should raise the loss of the true labels: {_l0:.4f} -> {_l_pgd:.4f}"
assert _l_pgd >= _l_fgsm - 1e-9, (
    f"ten PGD steps should raise the loss at least as much as one FGSM step of the same eps "
    f"(PGD {_l_pgd:.4f}, FGSM {_l_fgsm:.4f})")
_got = run_attack(pgd, _cnn, _x, 4, eps=0.05, alpha=0.01, steps=10, random_start=False, targeted=True)
with torch.no_grad():
    _l0 = float(F.cross_entropy(_cnn(_x), torch.full((4,), 4)))
    _l1 = float(F.cross_entropy(_cnn(_got), torch.full((4,), 4)))
assert _l1 < _l0, f"targeted PGD should lower the loss of the goal class: {_l0:.4f} -> {_l1:.4f}"

### BEGIN HIDDEN TESTS
for _kw in (dict(eps=0.05, alpha=0.02, steps=8), dict(eps=0.1, alpha=0.06, steps=6, targeted=True),
            dict(eps=0.03, steps=5)):
    _tgt = torch.tensor([4, 0, 0, 3]) if _kw.get("targeted") else _y
    _e = ref.pgd(_cnn, _x, _tgt, random_start=False, **_kw)
    assert_close(run_attack(pgd, _cnn, _x, _tgt, random_start=False, **_kw), _e,
                 name=f"pgd on a small CNN with {_kw}, random_start=False", atol=1e-10,
                 hint="after every step project onto the eps-ball around the ORIGINAL x and onto [0, 1]; "
                      "alpha=None means 2.5 * eps / steps")
_drop = with_dropout(seed=1)
_e = ref.pgd(_drop, _x, _y, eps=0.05, alpha=0.02, steps=4, random_start=False)
_got = run_attack(pgd, _drop, _x, _y, eps=0.05, alpha=0.02, steps=4, random_start=False)
assert _drop.training, "the model was in train mode before pgd and must be again afterwards"
assert_close(_got, _e, name="pgd on a model with dropout (attack it in eval mode)", atol=1e-10)
### END HIDDEN TESTS
print("Exercise 5, part 1: all visible tests passed.")

# %% nbgrader="tests" id="pgd_random_start_test" points=2
# Tests for Exercise 5, part 2: the random start.
import math
import torch
from helpers import adversarial as ref
from helpers.testing.adversarial import ConstantLogits, run_attack
from helpers.testing.nets import random_images, tiny_cnn

# With a zero gradient no step moves, so the result is the random start itself.
_flat = ConstantLogits()
_x = torch.full((4, 3, 16, 16), 0.5, dtype=torch.float64)
_eps = 0.1
_got = run_attack(pgd, _flat, _x, 0, eps=_eps, alpha=0.02, steps=2, generator=torch.Generator().manual_seed(0))
_delta = _got - _x
assert float(_delta.abs().max()) > 0, "with random_start=True the start must be a random point of the ball, not x"
assert abs(float(_delta.mean())) < 0.01 * _eps * 10 and abs(float(_delta.std()) - _eps / math.sqrt(3)) < 0.1 * _eps, (
    f"the random start should be uniform in [-eps, eps] (mean 0, std eps/sqrt(3) = {_eps / math.sqrt(3):.4f}); "
    f"got mean {float(_delta.mean()):.4f}, std {float(_delta.std()):.4f}")
_again = run_attack(pgd, _flat, _x, 0, eps=_eps, alpha=0.02, steps=2, generator=torch.Generator().manual_seed(0))
assert torch.equal(_got, _again), "the same seeded generator must give the same random start: draw from `generator`"
_other = run_attack(pgd, _flat, _x, 0, eps=_eps, alpha=0.02, steps=2, generator=torch.Generator().manual_seed(1))
assert not torch.equal(_got, _other), "generators with different seeds should give different random starts"
_fixed = run_attack(pgd, _flat, _x, 0, eps=_eps, alpha=0.02, steps=2, random_start=False)
assert torch.equal(_fixed, _x), "with random_start=False (and a zero gradient) pgd should return x unchanged"

### BEGIN HIDDEN TESTS
_share = float((_delta.abs() > 0.9 * _eps).double().mean())
assert 0.07 < _share < 0.13, (
    f"{_share:.0%} of the random start lies within 10% of the ball's edge, expected about 10% for a "
    f"uniform draw: use eps * (2 * torch.rand(...) - 1), not Gaussian noise or signs")
# the random start is clamped to [0, 1] (run_attack checks it), also near the edges
_x0 = torch.full((2, 3, 8, 8), 0.02, dtype=torch.float64)
run_attack(pgd, _flat, _x0, 0, eps=0.1, alpha=0.02, steps=1, generator=torch.Generator().manual_seed(2))
# only the generator decides: the global random state does not matter
torch.manual_seed(123)
_a = run_attack(pgd, _flat, _x, 0, eps=_eps, alpha=0.02, steps=1, generator=torch.Generator().manual_seed(5))
torch.manual_seed(456)
_b = run_attack(pgd, _flat, _x, 0, eps=_eps, alpha=0.02, steps=1, generator=torch.Generator().manual_seed(5))
assert torch.equal(_a, _b), "the random start must come from `generator` (not from the global random state)"
# on a real network the random start changes the result, and the box still holds
_cnn = tiny_cnn(seed=6)
_x = random_images(3, seed=7, edges=True)
_r = run_attack(pgd, _cnn, _x, 1, eps=0.05, alpha=0.02, steps=5, generator=torch.Generator().manual_seed(0))
_f = ref.pgd(_cnn, _x, 1, eps=0.05, alpha=0.02, steps=5, random_start=False)
assert not torch.equal(_r, _f), "pgd with random_start=True should differ from the fixed start"
### END HIDDEN TESTS
print("Exercise 5, part 2: all visible tests passed.")

# %% [markdown]
# ### PGD against FGSM at the same $\varepsilon$
#
# Same photos, same goal classes, same budgets. The dashed curves are FGSM from Part 3. This is the
# slowest cell of the notebook: 100 PGD steps on 11 photos at 224×224, about 1.5 minutes on a
# laptop CPU (2.5 minutes on a single core; the progress bar counts the values of $\varepsilon$).

# %%
PGD_EPS = [0.1, 0.3, 1, 4] if not FAST else [0.1, 1, 4]
PGD_STEPS = helpers.fast(full=10, fast=5)
pgd_rates = {"untargeted": [], "targeted": []}
t0 = time.perf_counter()
for e in helpers.progress(PGD_EPS, desc="PGD"):
    gen = torch.Generator().manual_seed(0)
    xu = ref.pgd(model, photos, y_photo, eps=e / 255, steps=PGD_STEPS, generator=gen)
    xt = ref.pgd(model, photos, goal, eps=e / 255, steps=PGD_STEPS, targeted=True, generator=gen)
    pgd_rates["untargeted"].append(ref.attack_success_rate(model, xu, y_photo))
    pgd_rates["targeted"].append(ref.attack_success_rate(model, xt, goal, targeted=True))
    if e == 4:
        x_pgd_t4 = xt                                     # kept for the transfer table
print(f"PGD ({PGD_STEPS} steps) on {len(photo_names)} photos, {len(PGD_EPS)} values of eps: "
      f"{time.perf_counter() - t0:.1f} s")
print("eps (grey levels):", PGD_EPS)
print("untargeted:", [f"{r:.0%}" for r in pgd_rates["untargeted"]])
print("targeted:  ", [f"{r:.0%}" for r in pgd_rates["targeted"]])

# The benchmark setting: untargeted PGD, eps = 4/255, 20 steps, random start.
t0 = time.perf_counter()
x_pgd4 = ref.pgd(model, photos, y_photo, eps=4 / 255, steps=20, generator=torch.Generator().manual_seed(0))
rate_pgd4 = ref.attack_success_rate(model, x_pgd4, y_photo)
x_fgsm4 = ref.fgsm(model, photos, y_photo, eps=4 / 255)
rate_fgsm4 = ref.attack_success_rate(model, x_fgsm4, y_photo)
print(f"untargeted, eps = 4/255 on {len(photo_names)} photos at {SIZE}x{SIZE}: "
      f"PGD (20 steps) fools {rate_pgd4:.0%}, FGSM fools {rate_fgsm4:.0%} "
      f"({time.perf_counter() - t0:.1f} s)")

fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
for kind, color in (("untargeted", "tab:blue"), ("targeted", "tab:red")):
    ax.plot(EPS_GREY, fgsm_rates[kind], "--o", color=color, alpha=0.6, label=f"FGSM, {kind}")
    ax.plot(PGD_EPS, pgd_rates[kind], "-s", color=color, label=f"PGD ({PGD_STEPS} steps), {kind}")
ax.set_xscale("log")
ax.set_xlabel("eps (grey levels of 255)")
ax.set_ylabel(f"success rate on {len(photo_names)} photos")
ax.set_ylim(-0.03, 1.03)
ax.set_title(f"EfficientNet-Lite0, {SIZE}x{SIZE}: success rate against the budget eps")
ax.legend(fontsize=8)
plt.show()

i = photo_names.index("coffee")                       # espresso with 94 %: a confident start
shown = torch.stack([photos[i], x_fgsm4[i], x_pgd4[i]])
for what, t3 in zip(("clean", "FGSM 4/255", "PGD 4/255"), top3(model, shown)):
    print(f"coffee, {what:10s}: {t3}")
with torch.no_grad():
    p_shown = model(shown).softmax(dim=1)
show_attack_rows(photos[[i, i]], shown[1:],
                 [f"clean: {name_of(y_photo[i])} {float(p_shown[0].max()):.0%}"] * 2,
                 [f"FGSM: {name_of(p_shown[1].argmax())} {float(p_shown[1].max()):.0%}",
                  f"PGD: {name_of(p_shown[2].argmax())} {float(p_shown[2].max()):.0%}"],
                 factor=0.5 * 255 / 4, delta_title="perturbation: black -eps, grey 0, white +eps",
                 row_labels=["FGSM, eps = 4/255", "PGD, eps = 4/255"],
                 suptitle="The same budget, two perturbations")
plt.show()
for what, xa in (("FGSM", x_fgsm4), ("PGD", x_pgd4)):
    delta = (xa - photos).abs()
    at_edge = float((delta > 4 / 255 - 1e-6).double().mean())
    print(f"{what}: {at_edge:.0%} of all pixel values moved by the full eps, mean |change| "
          f"{float(delta.mean()) * 255:.2f} / 255")

# %% [markdown]
# PGD is never worse than FGSM, and the real gap is in the targeted attacks: at 1 and 4 grey levels
# targeted PGD reaches its goal class on 45 % and 100 % of the photos, FGSM on 9 % and 0 % —
# reaching one class out of a thousand needs an optimiser, not a single step. Untargeted, both
# change nearly every answer from 0.3 grey level on. The espresso (94 % at the start) shows the
# difference in the top 3: FGSM at 4/255 only just tips it over (consomme 27 % against espresso
# 23 %), PGD makes the network certain of a wrong class (loupe 100 %). Look at the two
# perturbations: FGSM uses its whole budget on every pixel (98 % of the values move by the full
# $\pm\varepsilon$, a uniform speckle), while PGD's perturbation has structure — only 15 % of the
# values sit on the edge of the ball, the rest inside it (mean change 2.3 of the 4 grey levels).
#
# **Correctness against an independent library.** Captum (`captum.robust.FGSM` and `PGD`) makes
# the same attacks with a configurable loss. `tests/test_adversarial.py` checks that
# `helpers.adversarial.fgsm` and `pgd` (fixed start, and random start with the same random
# numbers) return the same images as Captum's on the pretrained network, up to float rounding.
# Two conventions had to be matched: Captum computes the loss with `loss_func(outputs, target)`
# and, for `targeted=True`, *descends* it — the same rule as ours when `loss_func` is the
# cross-entropy — and it leaves pixels whose gradient is below $10^{-6}$ in magnitude unchanged
# (its `zero_thresh`), which the tests set to 0.

# %% [markdown]
# ## Part 5 · Transfer: fooling a network you cannot see
#
# Szegedy et al. noticed that adversarial examples made for one network often fool *other*
# networks, trained differently. Here the attacks are made on **EfficientNet-Lite0** and shown to
# **Lite1** (deeper) and **Lite2** (deeper and wider), trained separately at 240 and 260 pixels.
#
# **Which input size?** All three networks get the *same* tensors, at the size the attack was made
# (224×224 pixels; 128×128 in fast mode). The networks end in global average pooling, so they
# accept any size (the cell prints how often Lite1's and Lite2's clean answers agree with Lite0's
# at this size). Resizing the adversarial images to 240 or 260 pixels would add a
# second effect — resampling blurs the perturbation, and Part 7 shows how much that alone can undo —
# and we want to measure transfer between architectures, not robustness to resizing.
#
# A **transfer rate** is the success rate on the other network: untargeted, the number of photos
# whose prediction by that network differs from *its own* clean prediction; targeted, the number
# it classifies as the goal class. Two things can make that number look better than it is:
#
# * **A baseline.** Any change of a photo can change an answer the network was unsure of anyway.
#   The rows "random $\pm\varepsilon$" add noise of exactly the attack's size — every value moved
#   by $\pm\varepsilon$ with a random sign, averaged over three draws — and show what a perturbation
#   does when it is *not* adversarial. Transfer is what the attack does beyond that.
# * **Unsure answers.** Most of our photos get a low-confidence answer (Part 3). A flipped answer
#   means more on a photo the network was sure of, so each network has a second column, "sure":
#   the count among the photos it gave at least 50 % at the start.
#
# With 11 photos, one photo is 9 percentage points: the table prints counts, not percentages.

# %%
lite1 = load_model("efficientnet_lite1").to(device)
lite2 = load_model("efficientnet_lite2").to(device)
nets = {"Lite0": model, "Lite1": lite1, "Lite2": lite2}
with torch.no_grad():
    p_clean = {k: m(photos).softmax(dim=1) for k, m in nets.items()}
clean = {k: p.argmax(dim=1) for k, p in p_clean.items()}
sure = {k: p.amax(dim=1) >= 0.5 for k, p in p_clean.items()}       # the photos each network is sure of
for k in nets:
    print(f"{k}: agrees with Lite0 on {int((clean[k] == y_photo).sum())} of {len(photo_names)} photos; "
          f"at least 50 % sure on {int(sure[k].sum())}: "
          + ", ".join(f"{n} ({name_of(c)})" for n, c, s_ in zip(photo_names, clean[k], sure[k]) if s_))

N_NOISE = 3                                  # random sign patterns per budget, averaged
noise = {e: [(photos + e / 255 * (torch.randint(0, 2, photos.shape, generator=torch.Generator().manual_seed(s_))
                                  .to(device) * 2 - 1)).clamp(0, 1) for s_ in range(N_NOISE)] for e in (4, 16)}
x_fgsm16 = ref.fgsm(model, photos, y_photo, eps=16 / 255)
x_pgd16 = ref.pgd(model, photos, y_photo, eps=16 / 255, steps=PGD_STEPS, generator=torch.Generator().manual_seed(0))
rows = [(f"random +-4/255 (mean of {N_NOISE})", noise[4], False),
        ("FGSM, eps = 4/255", [x_fgsm4], False), ("PGD, eps = 4/255 (20 steps)", [x_pgd4], False),
        (f"random +-16/255 (mean of {N_NOISE})", noise[16], False),
        ("FGSM, eps = 16/255", [x_fgsm16], False), (f"PGD, eps = 16/255 ({PGD_STEPS} steps)", [x_pgd16], False),
        ("PGD targeted, eps = 4/255", [x_pgd_t4], True)]


@torch.no_grad()
def transfer(m, k, xs, targeted):
    # per photo, averaged over the images in xs: did the attack succeed on network m (named k),
    # and the probability m gives to the class that matters (its clean answer; the goal, targeted)
    wanted = goal if targeted else clean[k]
    hits, probs = [], []
    for xa in xs:
        p = m(xa).softmax(dim=1)
        hits.append((p.argmax(dim=1) == wanted) if targeted else (p.argmax(dim=1) != wanted))
        probs.append(p.gather(1, wanted[:, None])[:, 0])
    return torch.stack(hits).double().mean(0), torch.stack(probs).mean(0)


n_all = len(photo_names)
print(f"\n{'photos fooled':34s}" + "".join(f"{k + ': all, sure':>18s}" for k in nets)
      + "  | mean prob. of the clean answer (targeted: of the goal)")
for what, xs, targeted in rows:
    cells, probs = "", []
    for k, m in nets.items():
        hit, prob = transfer(m, k, xs, targeted)
        cells += f"{float(hit.sum()):>9.3g}/{n_all} {float(hit[sure[k]].sum()):>4.3g}/{int(sure[k].sum())}"
        probs.append(float(prob.mean()))
    print(f"{what:34s}{cells}  | " + "  ".join(f"{p_:5.0%}" for p_ in probs))
print(f"(Lite0 is the attacked network. Untargeted: the network's answer differs from its own clean answer; "
      f"targeted: it is the goal class. "
      f"'sure': only the photos the network was at least 50 % sure of. Clean photos: mean prob. "
      + ", ".join(f"{k} {float(p.amax(dim=1).mean()):.0%}" for k, p in p_clean.items()) + ")")

# %% [markdown]
# Read every attack row against the noise row of the same budget above it.
#
# * **At 4/255 transfer is real but weak.** The attacks change 7 or 8 of Lite1's 11 answers,
#   against 2.7 for random noise, but on Lite2 only 7 against 5 — two photos more than noise. On the photos the
#   other network was sure of they change 1 or 2 of Lite1's 4 answers and 2 of Lite2's 5 (noise: 0
#   and 1). The clean answer's probability tells the same story: it falls by 11–22 points on Lite1
#   and 19–24 on Lite2, where noise alone takes none on Lite1 and 10 on Lite2.
# * **At 16/255 PGD transfers clearly.** It changes 11 of 11 answers of Lite1 and 10 of 11 of
#   Lite2, *every* answer either network was sure of (4 of 4, 5 of 5), against 4 or 5 of 11 and at
#   most 1 sure answer for noise; the clean answer keeps 3 % and 12 % of probability. FGSM at the
#   same budget transfers less (9 and 6 of 11, 2 sure answers each).
# * **Targeted examples do not transfer at all** (0 of 11 on both): landing on one specific class
#   of another network is much harder than just leaving the right one.
#
# So adversarial examples made on Lite0 do fool its relatives beyond chance, but at a budget that is
# hard to see (4/255) they flip mostly answers the other network was unsure of anyway; they flip its
# confident answers reliably only with a larger budget (16/255).
# Here PGD transfers at least as well as FGSM; with many more iterations an attack can fit the
# quirks of the attacked network and transfer *worse* (Kurakin et al., 2017, found iterative
# attacks transfer worse than single steps). With 11 photos, read a difference of one or two photos
# as noise.
# Attacks that transfer better average over several source networks, over random transformations
# (Part 7), or use momentum (Dong et al., 2018).
#
# **Question 2** (2 points). An attacker cannot see a model's weights or gradients; they can only
# send images to a **prediction API** and read the answers (the top class, perhaps the
# probabilities). Describe two different ways they could still construct adversarial examples, and
# use this notebook's transfer table to say how well the first kind of attack would work against
# Lite1 or Lite2. What does each way cost the attacker?

# %% [markdown] nbgrader="manual" id="question_2" points=2
# ### BEGIN SOLUTION
# Model answer (1 point for two correct, distinct strategies with their costs, 1 point for using the
# table sensibly):
#
# 1. **Transfer from a substitute model.** Attack a network you own (a public pretrained model, or
#    a substitute trained to imitate the API by labelling your own images with its answers — Papernot
#    et al., 2017) with white-box PGD, then send the result to the API. Cost: a few or no queries (only
#    to label the substitute's training data) plus compute. The table shows it works only with a
#    large enough budget and only untargeted: at 4/255 the examples made on Lite0 change 7–8 of
#    Lite1's and 7 of Lite2's 11 answers, but random noise of the same size already changes about 3
#    and 5, and of the answers those networks were sure of only 1–2 of 4 and 2 of 5 flip; at 16/255
#    PGD changes 11/11 and 10/11, every sure answer included (noise: 4–5 of 11). Targeted examples
#    did not transfer at all (0 of 11). So the attacker needs a larger, more visible perturbation
#    than in a white-box attack. Ensembles of substitutes and EOT improve transfer.
# 2. **Query-based (black-box) optimisation.** Estimate the gradient from the API's outputs by finite
#    differences or random directions (ZOO, Chen et al. 2017; NES, Ilyas et al. 2018; SPSA), or search
#    directly with random perturbations that keep lowering the true class's score (Square attack,
#    Andriushchenko et al. 2020); with only the top label, decision-based attacks walk along the
#    decision boundary (Boundary attack, Brendel et al. 2018). Cost: many queries — hundreds to tens of
#    thousands per image, which can be slow, expensive, rate-limited or noticed — but it works on the
#    actual model, including targeted attacks.
#
# Defensively: returning only the top label, rounding probabilities, and rate limiting raise the
# cost of (2) but not of (1).
# ### END SOLUTION

# %% [markdown]
# ## Part 6 · Adversarial training
#
# If the network is fooled by points of the $\varepsilon$-ball, train it on those points. Madry et al.
# write robust training as a min-max problem,
#
# $$
# \min_\theta\; \mathbb{E}_{(x, y)}\Big[\max_{\lVert\delta\rVert_\infty \le \varepsilon} L\big(f_\theta(x + \delta), y\big)\Big],
# $$
#
# and approximate the inner maximum with PGD on every mini-batch: the network is trained on its own
# worst-case examples (Goodfellow et al., 2015, did the same with FGSM examples mixed with clean
# ones). On ImageNet this takes days of GPU time, so we use the small digits network of assignment 01:
# scikit-learn's 8×8 handwritten digits, pixels in $[0, 1]$ (17 grey levels: $0, 1/16, \dots, 1$).
# Budget: $\varepsilon = 0.2$, about three of those grey levels. `ref.adversarial_training` trains on
# PGD examples (a few steps, random start) made fresh for every mini-batch. It gets a smaller
# learning rate (Adam, $3\cdot 10^{-3}$) than the standard network ($10^{-2}$): at $10^{-2}$
# adversarial training is unstable — with random seeds 0, 1, 2 it reached 88 %, 48 % and 80 % clean
# accuracy — while at $3\cdot 10^{-3}$ the three seeds agree (94 %, 90 %, 86 % clean; 31 %, 35 %,
# 31 % under PGD at $\varepsilon = 0.2$).
#
# **Robust accuracy** is the accuracy on attacked test digits (every test digit attacked with its
# true label); the stronger the attack, the more honest the number, so we report FGSM and PGD
# (20 steps).

# %%
X_train, y_train = load_digits(split="train")
X_test, y_test = load_digits(split="test")
X_train, y_train, X_test, y_test = (t.to(device) for t in (X_train, y_train, X_test, y_test))
EPS_D = 0.2
EPOCHS = helpers.fast(full=30, fast=15)

standard = DigitsCNN(seed=0).to(device)
t0 = time.perf_counter()
train_classifier(standard, X_train, y_train, epochs=EPOCHS, seed=0)
t_standard = time.perf_counter() - t0
robust = DigitsCNN(seed=0).to(device)
t0 = time.perf_counter()
ref.adversarial_training(robust, X_train, y_train, eps=EPS_D, attack="pgd", steps=helpers.fast(full=5, fast=3),
                         epochs=EPOCHS, lr=3e-3, seed=0)
t_robust = time.perf_counter() - t0
print(f"training {EPOCHS} epochs: standard {t_standard:.1f} s, adversarial (PGD) {t_robust:.1f} s")

EPS_DIGITS = [0.05, 0.1, 0.2, 0.3]
results = {}
for name, net in (("standard", standard), ("adversarially trained", robust)):
    net.eval()
    row = {"clean": accuracy(net, X_test, y_test)}
    for e in EPS_DIGITS:
        row[f"FGSM {e}"] = accuracy(net, ref.fgsm(net, X_test, y_test, eps=e), y_test)
        row[f"PGD {e}"] = accuracy(net, ref.pgd(net, X_test, y_test, eps=e, steps=20,
                                                generator=torch.Generator().manual_seed(0)), y_test)
    results[name] = row

print(f"\n{'test accuracy (450 digits)':26s}" + "".join(f"{k:>24s}" for k in results))
for key in results["standard"]:
    print(f"{key:26s}" + "".join(f"{results[k][key]:>24.1%}" for k in results))

fig = plt.figure(figsize=(13, 4.4), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[1, 1.2], wspace=0.04)
ax = left.subplots()
for (name, row), color in zip(results.items(), ("tab:gray", "tab:green")):
    ax.plot([0] + EPS_DIGITS, [row["clean"]] + [row[f"PGD {e}"] for e in EPS_DIGITS], "-o", color=color,
            label=f"{name}, PGD")
    ax.plot([0] + EPS_DIGITS, [row["clean"]] + [row[f"FGSM {e}"] for e in EPS_DIGITS], "--", color=color,
            label=f"{name}, FGSM")
ax.axvline(EPS_D, color="k", lw=0.8, ls=":")
ax.set_xlabel("eps (pixel units; one grey level of the digits = 1/16)")
ax.set_ylabel("test accuracy")
ax.set_title("Accuracy under attack against eps (dotted: the training eps)")
ax.legend(fontsize=8)
show_n = 10
x_show, y_show = X_test[:show_n], y_test[:show_n]
rows_img = [("clean", x_show, y_show)]
for name, net in (("standard", standard), ("robust", robust)):
    xa = ref.pgd(net, x_show, y_show, eps=EPS_D, steps=20, generator=torch.Generator().manual_seed(0))
    rows_img.append((f"PGD vs {name}", xa, ref.predict(net, xa)))
axes = right.subplots(len(rows_img), show_n)
for r, (what, imgs, pred) in enumerate(rows_img):
    show_images([im.cpu() for im in imgs], titles=[str(int(p)) for p in pred], axes=axes[r])
    axes[r, 0].set_ylabel(what, fontsize=9)
    for c in range(show_n):
        if int(pred[c]) != int(y_show[c]):
            axes[r, c].title.set_color("tab:red")
right.suptitle(f"Test digits and their PGD versions (eps = {EPS_D}); titles: what the network reads "
               f"(red = wrong)", fontsize=10)
plt.show()

# %% [markdown]
# **Question 3** (2 points). Use the table and the curves. (a) What did adversarial training buy,
# and what did it cost? (b) Why is the accuracy under PGD lower than under FGSM for the same
# $\varepsilon$, and why would it be a mistake to evaluate a defence only with FGSM? (c) What happens
# beyond the training budget ($\varepsilon = 0.3$), and what does that say about what kind of
# robustness adversarial training gives?

# %% [markdown] nbgrader="manual" id="question_3" points=2
# ### BEGIN SOLUTION
# Model answer (2 points: (a) and (b) correct with numbers, (c) a sensible observation; accept
# other numbers if the run differs a little):
#
# (a) At the training budget $\varepsilon = 0.2$ the standard network is almost always fooled by PGD
# (1 % robust accuracy), the adversarially trained one keeps about a third of the digits (31 %; 31–35 %
# over three seeds). The gain is largest at $\varepsilon = 0.1$ (74 % against 47 %); at 0.05 the two
# are about even (86 % against 85 %). The price is clean accuracy (98 % → 94 %; 86–94 % over three
# seeds) and several times the training time (4–5 times here: every mini-batch needs a PGD attack).
#
# (b) FGSM takes one linear step; PGD optimises inside the same ball, so it finds a worse point
# whenever the loss is not linear there, and the accuracy under PGD is lower — in the table at every
# $\varepsilon$, for both networks. For the adversarially trained network FGSM overstates robustness
# most: 46 % against 31 % under PGD at $\varepsilon = 0.2$. A defence can look robust against FGSM only because it makes the gradient at $x$ itself
# useless (gradient masking, e.g. training on FGSM examples), while a stronger or different attack
# still succeeds. Robustness claims must use the strongest attacks available (PGD with random
# restarts, many steps, EOT, black-box attacks): Athalye, Carlini & Wagner (2018) found that 7 of the
# 9 white-box defences accepted at ICLR 2018 relied on such obfuscated gradients, and circumvented them
# (6 completely, 1 partly).
#
# (c) At $\varepsilon = 0.3$, above the training budget, the robust network's PGD accuracy collapses
# (31 % → 3 %, hardly better than the standard network's 0 %): adversarial training makes a network robust to the threat model
# it was trained against — this norm, this budget — and not beyond. (At 0.3, about five grey levels
# of 16 in every pixel, some digits also become genuinely ambiguous.) Robustness is a property of a
# model *and* a threat model, and must be reported with both.
# ### END SOLUTION

# %% [markdown]
# ## Part 7 · Going further: does the attack survive the real world?
#
# Kurakin, Goodfellow & Bengio (2017) printed adversarial images, photographed the printouts with a
# phone, and fed the photos to the network: many still fooled it. A real attacker's image goes
# through such a channel — a camera, a printer, a JPEG encoder, a thumbnail — and each step
# destroys some of the perturbation. Three channels, applied to the PGD examples of Part 4
# ($\varepsilon = 4/255$), and to the clean photos as a control:
#
# * **JPEG** at quality 75 (Pillow, in memory: `ref.jpeg`) — 8-bit rounding, colour subsampling,
#   coarse quantisation of 8×8 DCT blocks;
# * **blur** with a Gaussian of $\sigma = 1$ pixel (`ref.blur`) — a camera slightly out of focus;
# * **resizing** to half the size and back (`ref.resize_roundtrip`) — a thumbnail, or a printout
#   seen from further away.
#
# A transformation can change the network's answer by itself (a blurred photo is a different
# photo), so we compare like with like: the attack **survives** a channel $T$ when the prediction
# on $T(x')$ differs from the prediction on $T(x)$, the clean photo sent through the same channel.
# The first column is the control: how often the clean photo keeps its label through the channel.

# %%
channels = {"none": lambda z: z, "JPEG q=75": lambda z: ref.jpeg(z, 75), "blur sigma=1": lambda z: ref.blur(z, 1.0),
            "resize x0.5 and back": lambda z: ref.resize_roundtrip(z, 0.5)}


def survives(xa, x_clean, T):
    # fraction of images whose answer through channel T differs from the clean image's through T
    return ref.attack_success_rate(model, T(xa), ref.predict(model, T(x_clean)))


print(f"{'channel':22s} {'clean keeps its label':>22s} {'FGSM 4/255 survives':>20s} {'PGD 4/255 survives':>19s}")
for cname, T in channels.items():
    keep = float((ref.predict(model, T(photos)) == y_photo).double().mean())
    print(f"{cname:22s} {keep:>22.0%} {survives(x_fgsm4, photos, T):>20.0%} {survives(x_pgd4, photos, T):>19.0%}")

# %% [markdown]
# Every channel undoes part of the attack: after JPEG, blur or resizing, between a fifth and a half
# of the adversarial photos get the same answer as the clean photo sent through the same channel
# (the attack survives on 45–82 % of the photos), for FGSM and PGD alike. The control column is a
# reminder that the channels change answers by themselves: each one changes 4 of the 11 clean
# answers. (A perturbation below half a grey level would not even survive saving an 8-bit photo as
# an 8-bit PNG: rounding to whole grey levels gives back the clean photo.)
# Athalye, Engstrom, Ilyas & Kwok ("Synthesizing
# Robust Adversarial Examples", 2018) made attacks survive by optimising the *expected* loss over
# random transformations — **expectation over transformation (EOT)**:
#
# $$
# \max_{x' \in S}\; \mathbb{E}_{T \sim \mathcal{T}}\big[L(f(T(x')), y)\big]
# \;\approx\; \max_{x' \in S} \frac{1}{K} \sum_{k=1}^{K} L(f(T_k(x')), y),
# $$
#
# with $K$ fresh random transformations at every PGD step. The transformations must be
# differentiable: `ref.random_distortion` draws a random blur ($\sigma \le 1.5$), a random
# shrink-and-enlarge (factor $\ge 0.5$) and a little noise. JPEG is not differentiable and is *not*
# in the training distribution — it tests whether robustness to related distortions carries over.
# EOT costs $K$ times more per step. Both attacks get a larger budget here, $\varepsilon = 8/255$,
# and the table counts photos (6 in full mode, 4 in fast mode).

# %%
eot_names = ["chelsea", "coffee", "flower", "rocket"] + ([] if FAST else ["motorcycle", "china"])
eot_idx = [photo_names.index(n) for n in eot_names]
x_eot_src, y_eot = photos[eot_idx], y_photo[eot_idx]
EOT_STEPS, EOT_SAMPLES = helpers.fast(full=8, fast=5), 4
t0 = time.perf_counter()
x_plain8 = ref.pgd(model, x_eot_src, y_eot, eps=8 / 255, steps=EOT_STEPS, generator=torch.Generator().manual_seed(0))
x_eot8 = ref.eot_pgd(model, x_eot_src, y_eot, eps=8 / 255, steps=EOT_STEPS, samples=EOT_SAMPLES,
                     generator=torch.Generator().manual_seed(0), progress=True)
print(f"PGD and EOT-PGD ({EOT_STEPS} steps, {EOT_SAMPLES} samples per step) on {len(eot_idx)} photos: "
      f"{time.perf_counter() - t0:.1f} s")
n_eot = len(eot_idx)
print(f"\n{'survives (photos)':22s} {'PGD 8/255':>12s} {'EOT-PGD 8/255':>15s}")
for cname, T in channels.items():
    print(f"{cname:22s} {round(survives(x_plain8, x_eot_src, T) * n_eot):>10d}/{n_eot} "
          f"{round(survives(x_eot8, x_eot_src, T) * n_eot):>13d}/{n_eot}")

i = eot_names.index("coffee")
view = [x_eot_src[i], x_plain8[i], x_eot8[i]]
pred = [ref.predict(model, v[None])[0] for v in view]
pred_jpeg = [ref.predict(model, ref.jpeg(v[None], 75))[0] for v in view]
for what, v in zip(("clean", "PGD 8/255", "EOT-PGD 8/255"), view):
    print(f"coffee, {what:13s}: {top3(model, v[None])[0]}\n{'after JPEG':>21s}: {top3(model, ref.jpeg(v[None], 75))[0]}")
deltas = [ref.perturbation_image(x_eot_src[i:i + 1], v[None], factor=10)[0] for v in view[1:]]
show_images([view[0].cpu(), view[1].cpu(), deltas[0].cpu(), view[2].cpu(), deltas[1].cpu()],
            titles=[f"clean: {name_of(pred[0])}\nafter JPEG: {name_of(pred_jpeg[0])}",
                    f"PGD: {name_of(pred[1])}\nafter JPEG: {name_of(pred_jpeg[1])}", "PGD perturbation x10",
                    f"EOT-PGD: {name_of(pred[2])}\nafter JPEG: {name_of(pred_jpeg[2])}", "EOT perturbation x10"],
            ncols=5, figsize=(15, 3.8), suptitle="EOT puts its budget into coarser patterns that survive blur and resizing")
plt.show()

# %% [markdown]
# The EOT perturbation is smoother and blotchier: fine pixel-level patterns do not survive blurring
# and resizing, so EOT puts its budget into coarser structure that does — the same idea that made
# Athalye et al.'s 3-D printed turtle a "rifle" from most viewpoints. In the table, EOT survives blur
# and resizing on 5 of the 6 photos where plain PGD survives on 3; on JPEG, which was not in the
# distribution, it gains only one photo (4 → 5). Other random seeds (1 and 2) give the same picture:
# EOT survives on 5 or 6 of 6 photos through every channel, plain PGD on 3 to 5. (On the espresso
# shown, both attacks happen to survive JPEG.) To survive JPEG reliably, put a differentiable
# approximation of it into the distribution (Shin & Song, 2017).
# Defences that rely on randomised preprocessing (random resizing, JPEG, noise) are broken by exactly
# this attack.
#
# ## Summary
#
# * A linear model moves its output by $\varepsilon\lVert w\rVert_1$ under a perturbation of
#   $\varepsilon$ per input: high dimension turns invisible changes into large ones, and deep
#   networks are linear enough for this to carry over.
# * Fooling images (raw class score, normalised steps, stop when fooled), **FGSM** (one signed step:
#   $+$ for untargeted, $-$ for targeted) and **PGD** (many steps, projection onto the
#   $\varepsilon$-ball and $[0, 1]$ after every step, random start) — with state left untouched and
#   the results checked against Captum.
# * Untargeted attacks succeed with a fraction of a grey level; targeted ones need PGD. Untargeted
#   examples transfer to other networks — at 4/255 modestly beyond what random noise of the same
#   size does and rarely on answers the other network was sure of, at 16/255 clearly — and targeted
#   ones did not transfer at all. Measure transfer against a noise baseline, on confident answers.
# * Adversarial training buys robustness inside the trained budget at the price of clean accuracy
#   and compute; a defence must be evaluated with the strongest attacks.
# * Real-world channels (JPEG, blur, resizing) weaken attacks; expectation over transformation makes
#   most of them survive the distortions it was trained on, and helps less against others (JPEG).
#
# Next: **06 · Texture** — the statistics of features that make a texture, and how to synthesise
# new images from them.
