"""Test aids of assignment 01 (filters): one check per exercise, so that a test cell reads as the test.

Every check takes the student's function first, then the inputs -- ``check_conv2d(conv2d_naive,
x, w, b, stride=2)`` -- and

1. computes the expected answer with the reference (``helpers.filters``, ``F.conv2d``) *before*
   the student's code runs;
2. runs the student's function with the ready-made answers blocked (:func:`helpers.testing.forbid`;
   the lists below name public functions only) and its inputs watched
   (:func:`helpers.testing.assert_inputs_unchanged`), any crash turned into a failed test
   (:func:`helpers.testing.call_student`);
3. recognises the usual slips of that exercise (a flipped kernel, a missing bias, sin for cos,
   argmin for argmax, ...) and names them; otherwise fails with :func:`helpers.testing.assert_close`'s
   message (what was expected, what came back, where).

Every failure is an ``AssertionError`` with a message, and nothing is printed.  The checks return
the student's result, for a test cell that wants to look further.

Example
-------
>>> import torch
>>> def my_normalize(w):
...     flat = w.reshape(len(w), -1)
...     lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
...     return ((flat - lo) / (hi - lo)).reshape(w.shape)
>>> _ = check_normalize_filters(my_normalize, torch.randn(4, 3, 3, 3))
>>> _ = check_normalize_filters(lambda w: (w - w.min()) / (w.max() - w.min()),
...                             torch.randn(4, 3, 3, 3))  # doctest: +ELLIPSIS
Traceback (most recent call last):
AssertionError: normalize_filters(w) looks like a known slip: the min and max are taken over the whole tensor...
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from .. import filters as ref
from ..plotting import rescale
from . import assert_close, assert_inputs_unchanged, assert_shape, call_student, forbid

__all__ = [
    "CONV_FORBIDDEN",
    "NORMALIZE_FORBIDDEN",
    "GABOR_FORBIDDEN",
    "MATCH_FORBIDDEN",
    "assert_raises",
    "check_normalize_filters",
    "check_conv2d",
    "check_conv2d_gradients",
    "check_gabor",
    "check_best_matching_gabor",
]

#: Ready-made convolutions ``conv2d_naive`` must not call.
CONV_FORBIDDEN = (
    "torch.nn.functional.conv2d", "torch.nn.functional.conv1d", "torch.nn.functional.conv3d",
    "torch.nn.functional.conv_transpose2d", "torch.convolution",
    "scipy.signal.correlate", "scipy.signal.correlate2d", "scipy.signal.convolve",
    "scipy.signal.convolve2d", "scipy.signal.fftconvolve", "scipy.ndimage.correlate",
    "scipy.ndimage.convolve", "helpers.filters.conv2d_naive", "helpers.filters.apply_filter",
)
#: The reference implementations of per-filter display scaling.
NORMALIZE_FORBIDDEN = ("helpers.plotting.rescale", "helpers.filters.normalize_filters")
#: Ready-made Gabor kernels.
GABOR_FORBIDDEN = ("helpers.filters.gabor_kernel", "helpers.filters.gabor_bank",
                   "skimage.filters.gabor_kernel")
#: The reference implementations of the filter-vs-bank correlation.
MATCH_FORBIDDEN = ("helpers.filters.best_matching_gabor", "helpers.filters.filter_correlations")


# ----------------------------------------------------------------------------------------------
# shared
# ----------------------------------------------------------------------------------------------
def _shown(v) -> str:
    if isinstance(v, torch.Tensor):
        return f"<tensor {tuple(v.shape)}>"
    if isinstance(v, float):
        return f"{v:.4g}"
    return repr(v)


def _call_text(fn: Callable, args: tuple, kwargs: dict) -> str:
    parts = [_shown(a) for a in args] + [f"{k}={_shown(v)}" for k, v in kwargs.items()]
    return f"{getattr(fn, '__name__', 'the function')}({', '.join(parts)})"


def _known_slip(got, expected: torch.Tensor, slips: Dict[str, torch.Tensor], name: str,
                atol: float) -> None:
    """Fail naming the first slip ``got`` equals, when it is not the expected answer."""
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape or \
            not got.is_floating_point():
        return
    g = got.detach().cpu().double()
    if torch.allclose(g, expected.detach().cpu().double(), atol=atol):
        return
    for slip, value in slips.items():
        v = value.detach().cpu().double()
        if v.shape == g.shape and not torch.allclose(v, expected.detach().cpu().double(),
                                                     atol=atol) and torch.allclose(g, v, atol=atol):
            raise AssertionError(f"{name} looks like a known slip: {slip}.")


def assert_raises(error: type, fn: Callable, *args, why: str, **kwargs) -> None:
    """Fail unless ``fn(*args, **kwargs)`` raises ``error`` (a subclass counts); ``why`` says
    what is wrong with the arguments, for the message.

    >>> assert_raises(ValueError, int, "seven", why="not a number")
    >>> assert_raises(ValueError, int, "7", why="not a number")
    Traceback (most recent call last):
    AssertionError: int('7') should raise a ValueError (not a number), but it returned 7
    """
    call = _call_text(fn, args, kwargs)
    try:
        out = fn(*args, **kwargs)
    except error:
        return
    except NotImplementedError:
        raise AssertionError(
            f"{getattr(fn, '__name__', 'the function')} is not implemented yet: replace "
            f"`raise NotImplementedError()` in its cell with your code, run that cell, then run "
            f"this test again.") from None
    except Exception as err:  # noqa: BLE001 - any other error fails the test with its name
        raise AssertionError(f"{call} should raise a {error.__name__} ({why}), got "
                             f"{type(err).__name__}: {err}") from err
    returned = _shown(out) if isinstance(out, torch.Tensor) else repr(out)[:80]
    raise AssertionError(f"{call} should raise a {error.__name__} ({why}), but it returned "
                         f"{returned}")


# ----------------------------------------------------------------------------------------------
# Exercise 1: normalize_filters
# ----------------------------------------------------------------------------------------------
def check_normalize_filters(fn: Callable, weight: torch.Tensor, *, what: str = "w"
                            ) -> torch.Tensor:
    """Check ``fn(weight)`` against per-filter min-max scaling (constant filters -> 0.5).

    Also checks that the dtype is kept, the input is not modified, every non-constant filter
    spans exactly [0, 1], and names the slips: global or per-channel min/max, constant filters
    not at 0.5.
    """
    expected = ref.normalize_filters(weight)
    k = weight.shape[0]
    slips = {"the min and max are taken over the whole tensor, not per filter (over every "
             "dimension but the first)": rescale(weight, per_item=False)}
    if weight.ndim == 4:
        per_channel = rescale(weight.reshape(-1, *weight.shape[2:]), per_item=True)
        slips["the min and max are taken per input channel, not over the whole filter (all its "
              "channels and positions)"] = per_channel.reshape(weight.shape)
    name = f"normalize_filters({what})"
    with assert_inputs_unchanged(weight=weight), forbid(*NORMALIZE_FORBIDDEN,
                                                        name="normalize_filters"):
        got = call_student(fn, weight)
    _known_slip(got, expected, slips, name, atol=1e-6)
    assert_shape(got, tuple(weight.shape), name=name)
    flat_e = expected.reshape(k, -1)
    flat_g = got.detach().reshape(k, -1).double()
    for i in range(k):
        constant = bool((flat_e[i] == 0.5).all())
        lo, hi = float(flat_g[i].min()), float(flat_g[i].max())
        if constant and not (abs(lo - 0.5) < 1e-6 and abs(hi - 0.5) < 1e-6):
            raise AssertionError(
                f"{name}: filter {i} is constant (max - min = 0), so it should become 0.5 "
                f"everywhere (mid grey), got values in [{lo:.4g}, {hi:.4g}]: handle max - min "
                f"<= 1e-8 before dividing")
        if not constant and not (abs(lo) < 1e-6 and abs(hi - 1) < 1e-6):
            raise AssertionError(
                f"{name}: filter {i} should span [0, 1] after normalisation, got [{lo:.4g}, "
                f"{hi:.4g}]: take the min and max per filter, over all its entries")
    assert_close(got, expected, name=name, atol=1e-6,
                 hint="use each filter's own min and max; a constant filter becomes 0.5")
    if got.dtype != weight.dtype:
        raise AssertionError(f"{name} should keep the dtype of weight, {weight.dtype}, got "
                             f"{got.dtype}")
    return got


# ----------------------------------------------------------------------------------------------
# Exercise 2: conv2d_naive
# ----------------------------------------------------------------------------------------------
def _pair(v) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _conv_slips(x, weight, bias, stride, padding) -> Dict[str, torch.Tensor]:
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    slips = {
        "the kernel is flipped, which is a true convolution. A CNN layer computes "
        "cross-correlation: use w[o, c, u, v] * x_pad[n, c, s*i + u, s*j + v], without flipping "
        "the kernel": F.conv2d(x, weight.flip(-1, -2), bias, stride=stride, padding=padding),
    }
    if bias is not None:
        slips["the bias is missing: add b[o] to every output of channel o"] = F.conv2d(
            x, weight, None, stride=stride, padding=padding)
    if weight.shape[-1] == weight.shape[-2]:
        slips["the kernel is transposed: w[o, c, v, u] instead of w[o, c, u, v] (u runs over rows, "
              "v over columns)"] = F.conv2d(x, weight.transpose(-1, -2), bias, stride=stride,
                                            padding=padding)
    if ph or pw:
        for side, pads in (("bottom and right", (0, 2 * pw, 0, 2 * ph)),
                           ("top and left", (2 * pw, 0, 2 * ph, 0))):
            slips[f"all the zero padding is on the {side}; pad p zeros on every side, "
                  f"F.pad(x, (p_w, p_w, p_h, p_h))"] = F.conv2d(F.pad(x, pads), weight, bias,
                                                                stride=stride)
    if ph != pw:
        slips["the padding pair is read the wrong way round: padding = (p_h, p_w), rows first; "
              "F.pad takes (left, right, top, bottom)"] = F.conv2d(x, weight, bias, stride=stride,
                                                                   padding=(pw, ph))
    if sh != sw:
        slips["the stride pair is read the wrong way round: stride = (s_h, s_w), rows first"] = \
            F.conv2d(x, weight, bias, stride=(sw, sh), padding=padding)
    if sh > 1 or sw > 1:
        h_out, w_out = expected.shape[-2:]
        dense = F.conv2d(x, weight, bias, padding=padding)
        slips["the stride is ignored when reading the input: output (i, j) must read "
              "x_pad[n, c, s*i + u, s*j + v]"] = dense[..., :h_out, :w_out]
    return slips


def check_conv2d(fn: Callable, x: torch.Tensor, weight: torch.Tensor,
                 bias: Optional[torch.Tensor] = None, *, what: str = "", hint: Optional[str] = None,
                 **options) -> torch.Tensor:
    """Check ``fn(x, weight, bias, **options)`` against ``F.conv2d`` (``options``: stride, padding).

    Ready-made convolutions are blocked (:data:`CONV_FORBIDDEN`) and the inputs watched; a flipped
    or transposed kernel, a missing bias, one-sided padding, swapped pairs and an ignored stride
    are named.
    """
    expected = F.conv2d(x, weight, bias, **options)
    slips = _conv_slips(x, weight, bias, options.get("stride", 1), options.get("padding", 0))
    args = ["x", "w"] + (["b"] if bias is not None else []) + [f"{k}={v}" for k, v in
                                                               options.items()]
    name = f"conv2d_naive({', '.join(args)}) {what}".strip()
    watched = {"x": x, "weight": weight, **({"bias": bias} if bias is not None else {})}
    with assert_inputs_unchanged(**watched), forbid(*CONV_FORBIDDEN, name="conv2d_naive",
                                                    reason="write the sum yourself"):
        got = call_student(fn, x, weight, bias, **options)
    _known_slip(got, expected, slips, name, atol=1e-4)
    assert_close(got, expected, name=name, atol=1e-4, rtol=1e-4, hint=hint)
    return got


def check_conv2d_gradients(fn: Callable, x: torch.Tensor, weight: torch.Tensor,
                           bias: Optional[torch.Tensor] = None, **options) -> None:
    """Check that autograd differentiates ``fn`` like ``F.conv2d`` (loss: sum of squares)."""
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias) if t is not None]
    copies = [t.detach().clone().requires_grad_() for t in leaves]
    with forbid(*CONV_FORBIDDEN, name="conv2d_naive", reason="write the sum yourself"):
        y = call_student(fn, *leaves[:2], leaves[2] if bias is not None else None, **options)
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        raise AssertionError(
            "conv2d_naive(x, w) with x.requires_grad=True returned a result that autograd cannot "
            "differentiate: build it from tensor operations (no .numpy(), .item(), .detach() or "
            "torch.tensor(...) around intermediate results)")
    expected = F.conv2d(*copies[:2], copies[2] if bias is not None else None, **options)
    assert_close(y.detach(), expected.detach(), name="conv2d_naive(x, w) with requires_grad",
                 atol=1e-4)
    y.square().sum().backward()
    expected.square().sum().backward()
    for arg, mine, theirs in zip(("x", "weight", "bias"), leaves, copies):
        assert_close(mine.grad, theirs.grad, name=f"gradient of conv2d_naive w.r.t. {arg}",
                     atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Exercise 3: gabor_kernel
# ----------------------------------------------------------------------------------------------
def _gabor(size, sigma, theta, lambd, psi, gamma, *, swap=False, trig=torch.cos, sign=1.0,
           shift=0.0) -> torch.Tensor:
    """The Gabor formula in float64, with switches for the usual slips."""
    c = torch.arange(size, dtype=torch.float64) - size // 2 + shift
    y, x = torch.meshgrid(c, c, indexing="ij")
    if swap:
        x, y = y, x
    xr = x * math.cos(theta) + sign * y * math.sin(theta)
    yr = -sign * x * math.sin(theta) + y * math.cos(theta)
    envelope = torch.exp(-(xr ** 2 + gamma ** 2 * yr ** 2) / (2 * sigma ** 2))
    return envelope * trig(2 * math.pi * xr / lambd + psi)


def _gabor_slips(size, sigma, theta, lambd, psi, gamma) -> Dict[str, torch.Tensor]:
    p = dict(sigma=sigma, theta=theta, lambd=lambd, psi=psi, gamma=gamma)
    return {
        "x and y are swapped (x must follow the columns, y the rows)": _gabor(size, **p, swap=True),
        "sin instead of cos": _gabor(size, **p, trig=torch.sin),
        "theta is used as degrees (it is in radians)": _gabor(size, **{**p, "theta":
                                                                      math.radians(theta)}),
        "sigma and lambd are swapped": _gabor(size, **{**p, "sigma": lambd, "lambd": sigma}),
        "gamma is left out of the envelope": _gabor(size, **{**p, "gamma": 1.0}),
        "gamma is not squared in the envelope (gamma^2 y'^2)": _gabor(size, **{
            **p, "gamma": math.sqrt(gamma)}),
        "the 2 is missing in the envelope's 2 sigma^2": _gabor(size, **{
            **p, "sigma": sigma / math.sqrt(2)}),
        "the 2 pi is missing in the cosine, cos(2 pi x' / lambd + psi)": _gabor(size, **{
            **p, "lambd": 2 * math.pi * lambd}),
        "the phase has the wrong sign, cos(2 pi x' / lambd + psi)": _gabor(size, **{
            **p, "psi": -psi}),
        "the rotation has the wrong sign (x' = x cos + y sin, y' = -x sin + y cos)": _gabor(
            size, **p, sign=-1.0),
        "the coordinates are not centred (x = column - size // 2, y = row - size // 2)": _gabor(
            size, **p, shift=size // 2),
    }


def check_gabor(fn: Callable, size: int, *, what: str = "", **params) -> torch.Tensor:
    """Check ``fn(size, **params)`` against the reference Gabor kernel (float32, (size, size)).

    ``params``: sigma, theta, lambd and optionally psi (default 0) and gamma (default 0.5).  Eleven
    usual slips are named (x/y swapped, sin for cos, degrees, a wrong rotation sign, ...).
    """
    p = {"psi": 0.0, "gamma": 0.5, **params}
    expected = ref.gabor_kernel(size, **p)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in params.items())
    name = f"gabor_kernel({size}, {shown}) {what}".strip()
    with forbid(*GABOR_FORBIDDEN, name="gabor_kernel"):
        got = call_student(fn, size, **params)
    _known_slip(got, expected, _gabor_slips(size, **p), name, atol=1e-4)
    assert_close(got, expected, name=name, atol=1e-5, rtol=1e-4,
                 hint="entry [r, c] is g(x = c - size // 2, y = r - size // 2)")
    if got.dtype != torch.float32:
        raise AssertionError(f"{name} should return a float32 tensor, got {got.dtype}")
    return got


# ----------------------------------------------------------------------------------------------
# Exercise 4: best_matching_gabor
# ----------------------------------------------------------------------------------------------
def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.reshape(a.shape[0], -1).double()
    b = b.reshape(b.shape[0], -1).double()
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def check_best_matching_gabor(fn: Callable, filters: torch.Tensor, bank: torch.Tensor, *,
                              what: str, hint: Optional[str] = None
                              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Check ``fn(filters, bank)`` -> (indices int64 (K,), correlations (K,)) against the signed
    Pearson correlation.

    An index counts as right when its correlation is within 1e-6 of the best one (ties, e.g. a
    constant filter that correlates 0 with everything, accept any of the tied elements).  Named
    slips: argmin, absolute correlation, no mean subtraction (cosine), channels not averaged.
    """
    corr = ref.filter_correlations(filters, bank)                   # (K, M) float64
    best = corr.max(dim=1).values
    grey = filters.mean(dim=1) if filters.ndim == 4 else filters
    slips = {
        "the absolute value of the correlation is used; the sign matters: -g is not a match for "
        "g (it matches the element of opposite phase)": corr.abs().argmax(1),
        "argmin instead of argmax: the best match has the *largest* correlation": corr.argmin(1),
        "no mean subtraction: that is the cosine similarity, not the Pearson correlation; "
        "subtract each filter's and each bank element's mean first": _cosine(grey, bank).argmax(1),
    }
    if filters.ndim == 4:
        slips["the input channels are not averaged (only the first one is used)"] = \
            ref.filter_correlations(filters[:, 0], bank).argmax(1)
    name = f"best_matching_gabor({what})"
    with forbid(*MATCH_FORBIDDEN, name="best_matching_gabor"):
        out = call_student(fn, filters, bank)
    if not (isinstance(out, tuple) and len(out) == 2):
        raise AssertionError(f"{name} should return a pair (indices, correlations), got "
                             f"{type(out).__name__}")
    idx, r = out
    k, m = corr.shape
    assert_shape(idx, (k,), name=f"the indices of {name}")
    if idx.dtype != torch.int64:
        raise AssertionError(f"the indices of {name} should be an int64 tensor, got {idx.dtype}")
    idx = idx.detach().cpu()
    if bool(((idx < 0) | (idx >= m)).any()):
        raise AssertionError(f"the indices of {name} should lie in 0..{m - 1} (the bank has {m} "
                             f"elements), got {idx.tolist()}")
    def matched_wrongly(indices: torch.Tensor) -> torch.Tensor:
        return (corr.gather(1, indices[:, None])[:, 0] < best - 1e-6).nonzero()

    wrong = matched_wrongly(idx)
    if len(wrong):
        for slip, variant in slips.items():
            if torch.equal(idx, variant) and len(matched_wrongly(variant)):
                raise AssertionError(f"{name} looks like a known slip: {slip}.")
        i = int(wrong[0])
        extra = f" Hint: {hint}" if hint else ""
        raise AssertionError(
            f"{name}: filter {i} should match bank element {int(corr[i].argmax())} (correlation "
            f"{float(best[i]):.4f}), got element {int(idx[i])} (correlation "
            f"{float(corr[i, idx[i]]):.4f}); {len(wrong)} of {k} filters are matched wrongly.{extra}")
    assert_close(r, best.float(), name=f"the correlations of {name}", atol=1e-5, hint=hint)
    return out
