"""A small CNN on scikit-learn's 8x8 handwritten digits, trained in seconds on a CPU.

The pretrained EfficientNet is the main patient of this course, but some questions are easier to
ask of a network we can train ourselves in a few seconds: what do first-layer filters look like
*before* training (random) and *after* (structured)?  How do activations of a tiny network respond
to a digit?  How easily is it fooled?  Assignments 01 (filters), 02 (activations) and
05 (adversarial examples) use this module.

Data
----
scikit-learn ships 1,797 greyscale digits of 8x8 pixels with integer intensities 0..16 (they are
bundled in the package, so nothing is downloaded).  :func:`load_digits` divides by 16, so pixels
live in [0, 1] like every image in the course, and makes a deterministic stratified train/test
split (75 % / 25 % by default: 1,347 / 450 images).

Model
-----
:class:`DigitsCNN`::

    conv1  1 -> 8 channels, 5x5, padding 2     (8x8)   the filters assignment 01 looks at
    relu1
    pool1  2x2 max-pool                         (4x4)
    conv2  8 -> 16 channels, 3x3, padding 1     (4x4)
    relu2
    pool2  2x2 max-pool                         (2x2)
    flatten, fc  64 -> 10 logits

Example
-------
>>> from helpers.digits import load_digits, DigitsCNN, train_classifier, accuracy
>>> X_train, y_train = load_digits(split="train")
>>> X_test, y_test = load_digits(split="test")
>>> model = DigitsCNN(seed=0)
>>> history = train_classifier(model, X_train, y_train, seed=0, progress=False)
>>> accuracy(model, X_test, y_test) > 0.95
True
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ._checks import (check_choice, check_model, check_number, check_positive_int, check_tensor,
                      model_device)
from .runtime import progress as _progress
from .taps import eval_mode

__all__ = [
    "load_digits",
    "DigitsCNN",
    "train_classifier",
    "accuracy",
    "trained_digits_cnn",
    "DIGITS_TEST_SIZE",
]

#: Fraction of the 1,797 digits held out for testing by :func:`load_digits`.
DIGITS_TEST_SIZE = 0.25


def load_digits(*, split: str = "train", seed: int = 0, test_size: float = DIGITS_TEST_SIZE
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Load scikit-learn's handwritten digits as course tensors.

    Pixels are divided by 16 (the data holds integers 0..16), so ``X`` lies in [0, 1].  The split
    is stratified (every class keeps its share) and deterministic for a given ``seed`` and
    ``test_size`` (``sklearn.model_selection.train_test_split``).

    Parameters
    ----------
    split : "train", "test" or "all"
    seed : int, the seed of the train/test split (not of any training).
    test_size : float in (0, 1), the held-out fraction.

    Returns
    -------
    X : float32 tensor (N, 1, 8, 8) in [0, 1]
    y : int64 tensor (N,) of labels 0..9

    Example
    -------
    >>> X, y = load_digits(split="test")
    >>> X.shape, y.shape
    (torch.Size([450, 1, 8, 8]), torch.Size([450]))
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    check_choice(split, "split", ["train", "test", "all"])
    check_number(seed, "seed", minimum=0, integer=True)
    test_size = check_number(test_size, "test_size", minimum=0, maximum=1, strict=True,
                             hint="the held-out fraction")
    if test_size == 1:
        raise ValueError("test_size must be < 1 (the held-out fraction), got 1")

    data = _sk_load_digits()
    images = data.images.astype(np.float32) / 16.0          # (1797, 8, 8), values 0..1
    labels = data.target.astype(np.int64)
    if split == "all":
        idx = np.arange(len(labels))
    else:
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)), test_size=test_size, random_state=seed, stratify=labels
        )
        idx = np.sort(train_idx if split == "train" else test_idx)
    X = torch.from_numpy(images[idx]).unsqueeze(1).contiguous()
    y = torch.from_numpy(labels[idx]).contiguous()
    return X, y


class DigitsCNN(nn.Module):
    """A two-convolution CNN for 8x8 digits; its first layer has eight 5x5 filters.

    Input: (N, 1, 8, 8) in [0, 1].  Output: logits (N, 10).
    Named children (for hooks and ``helpers.features``): ``conv1, relu1, pool1, conv2, relu2,
    pool2, flatten, fc``.  About 2,000 parameters.

    Parameters
    ----------
    channels : (int, int), output channels of conv1 and conv2 (default (8, 16)).
    seed : int or None.  If given, the weights are initialised from this seed without touching
        the global random generator, so ``DigitsCNN(seed=0)`` is the same network every time.

    Example
    -------
    >>> model = DigitsCNN(seed=0)
    >>> model.conv1.weight.shape
    torch.Size([8, 1, 5, 5])
    >>> model(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """

    def __init__(self, channels: Tuple[int, int] = (8, 16), *, seed: Optional[int] = None):
        super().__init__()
        if (not isinstance(channels, (tuple, list)) or len(channels) != 2):
            raise ValueError(f"channels must be a pair of ints (conv1, conv2), got {channels!r}")
        c1 = check_positive_int(channels[0], "channels[0]")
        c2 = check_positive_int(channels[1], "channels[1]")
        if seed is not None:
            check_number(seed, "seed", minimum=0, integer=True)
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.conv1 = nn.Conv2d(1, c1, kernel_size=5, padding=2)
            self.relu1 = nn.ReLU()
            self.pool1 = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool2 = nn.MaxPool2d(2)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(c2 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1:] != (1, 8, 8):
            raise ValueError(
                f"x must have shape (N, 1, 8, 8) (a batch of 8x8 digits), got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.flatten(x))


def _check_xy(X, y) -> None:
    """A labelled data set: X float (N, ...) and y int64 (N,), N >= 1."""
    check_tensor(X, "X", ndim=4, floating=True)
    check_tensor(y, "y", ndim=1)
    if y.dtype != torch.int64:
        raise TypeError(f"y must be an int64 (long) tensor of class labels, got {y.dtype}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y must hold the same number of examples, got X with {X.shape[0]} "
                         f"and y with {y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError("X and y must not be empty")


#: The loss of one mini-batch, ``batch_loss(model, xb, yb) -> scalar tensor``.
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def _cross_entropy(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(xb), yb)


@contextlib.contextmanager
def _training(model: nn.Module, params: Sequence[nn.Parameter], device: torch.device,
              num_threads: Optional[int]) -> Iterator[None]:
    """Train mode and ``num_threads`` CPU threads while the block runs.  Afterwards every
    submodule's own train flag and the thread setting are restored and the ``.grad`` of
    ``params`` is cleared -- also when the block raises."""
    threads_before = torch.get_num_threads()
    with eval_mode(model):                  # on exit: every submodule's own flag, as before
        model.train()
        if num_threads is not None and device.type == "cpu":
            torch.set_num_threads(num_threads)
        try:
            yield
        finally:
            if torch.get_num_threads() != threads_before:
                torch.set_num_threads(threads_before)
            for p in params:
                p.grad = None


def train_classifier(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, epochs: int = 30,
                     lr: float = 1e-2, batch_size: int = 64, weight_decay: float = 0.0,
                     seed: int = 0, batch_loss: Optional[BatchLoss] = None,
                     progress: bool = True, num_threads: Optional[int] = 1) -> List[float]:
    """Train ``model`` on (X, y) with Adam (Kingma & Ba, 2015); return the mean loss of every epoch.

    Minimises :math:`\\frac{1}{B}\\sum_i -\\log \\mathrm{softmax}(f(x_i))_{y_i}` over shuffled
    mini-batches of ``batch_size`` examples.  The shuffling uses its own generator seeded with
    ``seed``, so two runs from the same initial weights give the same weights (on CPU).  The data
    follow the model's device; the train/eval mode of every submodule, PyTorch's thread setting and
    the parameters' ``.grad`` are restored at the end (the weights, of course, change).

    Parameters
    ----------
    model : nn.Module mapping X to logits (N, n_classes), with trainable parameters.
    X : float tensor (N, C, H, W); y : int64 tensor (N,).
    epochs, batch_size : positive ints.  lr > 0, weight_decay >= 0 : Adam's settings.
    seed : int >= 0, seeds the mini-batch order.
    batch_loss : None (cross-entropy of ``model(xb)`` against ``yb``) or a function
        ``(model, xb, yb) -> scalar loss`` called in train mode on every mini-batch -- e.g. one that
        first attacks ``xb`` (adversarial training, ``helpers.adversarial``).
    progress : show a progress bar over epochs.
    num_threads : int or None.  CPU threads PyTorch may use while training on the CPU; the
        previous setting is restored afterwards.  The default 1 is deliberate: the network is so
        small that extra threads only add synchronisation, and on a busy 2-core machine two
        threads were measured 20x slower than one (12.6 s vs 0.55 s for 15 epochs).  ``None``
        leaves PyTorch's setting alone.  Ignored when the model is not on the CPU.

    Returns
    -------
    history : list of ``epochs`` floats, the mean training loss of each epoch.

    Example
    -------
    >>> X, y = load_digits(split="train")
    >>> history = train_classifier(DigitsCNN(seed=0), X, y, epochs=2, progress=False)
    >>> len(history)
    2
    """
    check_model(model)
    _check_xy(X, y)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_number(lr, "lr", minimum=0, strict=True)
    check_number(weight_decay, "weight_decay", minimum=0)
    check_number(seed, "seed", minimum=0, integer=True)
    if num_threads is not None:
        check_positive_int(num_threads, "num_threads")
    if batch_loss is not None and not callable(batch_loss):
        raise TypeError(f"batch_loss must be None or a function (model, xb, yb) -> loss, got "
                        f"{type(batch_loss).__name__}")
    loss_of = _cross_entropy if batch_loss is None else batch_loss
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (all have requires_grad=False)")

    device = model_device(model)
    X, y = X.detach().to(device), y.detach().to(device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    n = X.shape[0]
    history: List[float] = []
    with _training(model, params, device, num_threads):
        for _ in _progress(range(epochs), desc="training", disable=None if progress else True):
            order = torch.randperm(n, generator=generator).to(device)
            total = 0.0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                loss = loss_of(model, X[idx], y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * idx.numel()
            history.append(total / n)
    return history


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> float:
    """Fraction of examples whose arg-max logit equals the label, in [0, 1].

    .. math::  \\mathrm{acc} = \\frac{1}{N} \\sum_i [\\arg\\max_k f(x_i)_k = y_i]

    Runs in eval mode without gradients and restores the mode of every submodule afterwards.

    Example
    -------
    >>> X, y = load_digits(split="test")
    >>> 0.0 <= accuracy(DigitsCNN(seed=0), X, y) <= 1.0
    True
    """
    check_model(model)
    _check_xy(X, y)
    check_positive_int(batch_size, "batch_size")
    device = model_device(model)
    correct = 0
    with eval_mode(model):
        for start in range(0, X.shape[0], batch_size):
            xb = X[start:start + batch_size].to(device)
            yb = y[start:start + batch_size].to(device)
            correct += int((model(xb).argmax(dim=1) == yb).sum())
    return correct / X.shape[0]


def trained_digits_cnn(*, seed: int = 0, epochs: int = 30, progress: bool = True,
                       device: Optional[torch.device] = None) -> DigitsCNN:
    """Build ``DigitsCNN(seed=seed)``, train it on the training split, return it in eval mode.

    A one-liner for notebooks that need a working digits classifier (assignments 01, 02 and 05):
    :func:`train_classifier` with its defaults.  It takes a few seconds on a CPU and is
    deterministic on CPU for a given ``seed``.

    Example
    -------
    >>> model = trained_digits_cnn(seed=0, progress=False)
    >>> X, y = load_digits(split="test")
    >>> accuracy(model, X, y) > 0.95
    True
    """
    X, y = load_digits(split="train")
    model = DigitsCNN(seed=seed)
    if device is not None:
        model = model.to(device)
    train_classifier(model, X, y, epochs=epochs, seed=seed, progress=progress)
    return model.eval()
