"""Checks for the notebooks' autograded test cells, with messages written for students.

A failing test should tell a student what was expected, what came back and, where possible,
what probably went wrong -- not print a wall of numbers.  The functions here raise
``AssertionError`` (what nbgrader counts as a failed test) with one or two sentences:

* :func:`assert_close`  -- values, shape, dtype, type and NaNs, with hints for the usual slips
  (sign flipped, scaled by a constant, shifted by a constant, forgot to ``return``);
* :func:`assert_shape`  -- shape only;
* :func:`call_student`  -- runs a student's function, turning the stub's ``NotImplementedError``
  into "you have not implemented ... yet";
* :func:`forbid`        -- a context manager that makes chosen functions (``F.conv2d``, a
  reference helper) raise while a student's function runs, so that a hidden test can check the
  exercise was really implemented;
* :func:`assert_inputs_unchanged` -- a context manager that fails when a function edited its
  input tensors (or a model's weights / train-eval mode) in place.

None of them prints anything (a test cell that writes to stderr scores 0 under nbgrader).

Example
-------
>>> import torch
>>> from helpers.testing import assert_close, forbid
>>> def my_double(x):
...     return 2 * x
>>> with forbid("torch.mul", name="my_double"):
...     out = my_double(torch.ones(3))
>>> assert_close(out, torch.full((3,), 2.0), name="my_double(x)")
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import numbers
import sys
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = [
    "assert_close",
    "assert_shape",
    "call_student",
    "forbid",
    "assert_inputs_unchanged",
    "run_student",
    "check_image",
    "hook_count",
]


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def _type_name(x) -> str:
    if x is None:
        return "None"
    if isinstance(x, torch.Tensor):
        return "a torch.Tensor"
    if isinstance(x, np.ndarray):
        return "a numpy.ndarray"
    mod = type(x).__module__
    qual = type(x).__name__ if mod == "builtins" else f"{mod}.{type(x).__name__}"
    article = "an" if qual[:1].lower() in "aeiou" else "a"
    return f"{article} {qual}"


def _is_number(x) -> bool:
    return isinstance(x, (numbers.Number, np.number, np.bool_)) and not isinstance(x, torch.Tensor)


def _kind(dtype) -> str:
    """'bool', 'integer', 'floating' or 'complex' for a torch or numpy dtype."""
    if isinstance(dtype, torch.dtype):
        if dtype == torch.bool:
            return "bool"
        if dtype.is_complex:
            return "complex"
        if dtype.is_floating_point:
            return "floating"
        return "integer"
    kind = np.dtype(dtype).kind
    return {"b": "bool", "c": "complex", "f": "floating"}.get(kind, "integer")


_KIND_EXAMPLE = {"floating": "torch.float32", "integer": "torch.int64", "bool": "torch.bool",
                 "complex": "torch.complex64"}


def _to_cpu64(x) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.array(x))
    elif not isinstance(x, torch.Tensor):
        x = torch.tensor(x)
    x = x.detach().to("cpu")
    return x.to(torch.complex128 if x.is_complex() else torch.float64)


def _fmt(v) -> str:
    if isinstance(v, complex):
        return f"{v:.6g}"
    return f"{float(v):.6g}"


def _index(flat_i: int, shape: Tuple[int, ...]) -> Tuple[int, ...]:
    if not shape:
        return ()
    return tuple(int(i) for i in np.unravel_index(flat_i, shape))


def _shape_hint(actual: Tuple[int, ...], expected: Tuple[int, ...]) -> str:
    if len(actual) != len(expected):
        if [d for d in actual if d != 1] == [d for d in expected if d != 1]:
            return (" (same sizes apart from dimensions of size 1: a missing or extra "
                    "unsqueeze/squeeze, or keepdim?)")
        return f" ({len(actual)} dimensions instead of {len(expected)})"
    if sorted(actual) == sorted(expected):
        return " (the same sizes in a different order: dimensions swapped or permuted?)"
    differ = [i for i in range(len(actual)) if actual[i] != expected[i]]
    deltas = {actual[i] - expected[i] for i in differ}
    if len(actual) >= 3 and all(i >= len(actual) - 2 for i in differ) and len(deltas) == 1:
        delta = deltas.pop()
        return (f" (the spatial size is off by {delta:+d}: check padding, stride and the "
                f"output-size formula H_out = (H + 2*padding - k) // stride + 1)")
    return ""


# ----------------------------------------------------------------------------------------------
# assert_close / assert_shape
# ----------------------------------------------------------------------------------------------
def assert_close(actual: Any, expected: Any, *, name: str, atol: float = 1e-5,
                 rtol: float = 1e-4, hint: Optional[str] = None) -> None:
    """Fail with a student-readable message unless ``actual`` is close to ``expected``.

    Elementwise test (as in ``torch.isclose``):  ``|actual - expected| <= atol + rtol *
    |expected|``.  Both sides are moved to the CPU and compared in float64, so a result computed
    on a GPU can be checked against a CPU reference.

    ``expected`` decides what is acceptable: a ``torch.Tensor`` wants a tensor back, a NumPy array
    wants an array or a tensor, a Python / NumPy number wants a number (a one-element tensor is
    accepted too).  Checked in this order, each with its own message:

    1. type ("my_conv(x, w) returned a list, expected a torch.Tensor"; ``None`` gets a hint about
       a missing ``return``);
    2. shape ("expected shape (1, 8, 30, 30), got (1, 8, 32, 32)", plus a hint when dimensions
       look swapped, squeezed, or the spatial size is off by a padding amount);
    3. dtype kind (floating / integer / bool / complex);
    4. NaN or infinity where the expected value is finite;
    5. values: how many elements differ, the largest absolute difference, its index and the
       expected and actual values there; plus a hint when the answer is the expected one with the
       sign flipped, scaled by a constant or shifted by a constant.

    ``name`` describes the call being tested, e.g. ``"conv2d_naive(x, w)"``; ``hint`` is appended
    to any failure message.

    >>> assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]), name="f(x)")
    """
    extra = f" Hint: {hint}" if hint else ""

    def fail(msg: str) -> None:
        raise AssertionError(msg + extra)

    # 1. type -------------------------------------------------------------------------------
    if actual is None:
        fail(f"{name} returned None, expected {_type_name(expected)}"
             f"{'' if _is_number(expected) else ' of shape ' + str(tuple(expected.shape))}. "
             f"Did you forget the `return` statement?")
    if isinstance(expected, torch.Tensor):
        if not isinstance(actual, torch.Tensor):
            how = (" (convert it with torch.as_tensor(...))"
                   if isinstance(actual, (np.ndarray, list, tuple)) else "")
            fail(f"{name} returned {_type_name(actual)}, expected a torch.Tensor{how}")
    elif isinstance(expected, np.ndarray):
        if not isinstance(actual, (np.ndarray, torch.Tensor)):
            fail(f"{name} returned {_type_name(actual)}, expected a numpy.ndarray")
    elif _is_number(expected):
        if isinstance(actual, (torch.Tensor, np.ndarray)):
            count = actual.size if isinstance(actual, np.ndarray) else actual.numel()
            if count != 1:
                fail(f"{name} returned {_type_name(actual)} of shape {tuple(actual.shape)}, "
                     f"expected a single number")
        elif not _is_number(actual):
            fail(f"{name} returned {_type_name(actual)}, expected a number")
    else:
        raise TypeError(f"expected must be a torch.Tensor, numpy array or number, got "
                        f"{_type_name(expected)}")

    # 2. shape and 3. dtype kind (arrays only) -----------------------------------------------
    if not _is_number(expected):
        a_shape, e_shape = tuple(actual.shape), tuple(expected.shape)
        if a_shape != e_shape:
            fail(f"{name}: expected shape {e_shape}, got {a_shape}"
                 f"{_shape_hint(a_shape, e_shape)}")
        a_kind, e_kind = _kind(actual.dtype), _kind(expected.dtype)
        if a_kind != e_kind:
            fail(f"{name}: expected a {e_kind} result (like {_KIND_EXAMPLE[e_kind]}), got "
                 f"dtype {actual.dtype}")

    a = _to_cpu64(actual)
    e = _to_cpu64(expected)
    if _is_number(expected):
        a, e = a.reshape(()), e.reshape(())
    shape = tuple(e.shape)

    # 4. NaN / inf ----------------------------------------------------------------------------
    bad = ~torch.isfinite(a) & torch.isfinite(e)
    if bool(bad.any()):
        first = _index(int(bad.reshape(-1).nonzero()[0]), shape)
        count = int(bad.sum())
        what = "NaN" if bool(torch.isnan(a[bad]).any()) else "infinite"
        where = f" (first at index {first})" if shape else ""
        fail(f"{name} contains {count} {what} value(s){where} where finite values were "
             f"expected: look for a division by zero, a log of 0 or an overflow")

    # 5. values ---------------------------------------------------------------------------------
    both_nan = torch.isnan(a) & torch.isnan(e)
    same_inf = torch.isinf(a) & torch.isinf(e) & (a == e)
    diff = (a - e).abs()
    tol = atol + rtol * e.abs()
    wrong = ~((diff <= tol) | both_nan | same_inf)
    if not bool(wrong.any()):
        return
    n_wrong, n = int(wrong.sum()), a.numel()
    diff_masked = torch.where(wrong, diff.nan_to_num(nan=float("inf")), torch.zeros_like(diff))
    flat_i = int(diff_masked.reshape(-1).argmax())
    idx = _index(flat_i, shape)
    a_v, e_v = a.reshape(-1)[flat_i].item(), e.reshape(-1)[flat_i].item()
    tolerance = f"(tolerance atol={atol:g}, rtol={rtol:g})"
    if n == 1:
        msg = (f"{name} is not close to the expected result: expected {_fmt(e_v)}, got "
               f"{_fmt(a_v)}, a difference of {_fmt(abs(a_v - e_v))} {tolerance}.")
    else:
        msg = (f"{name} is not close to the expected result: {n_wrong} of {n} values differ. "
               f"Largest difference {_fmt(abs(a_v - e_v))} at index {idx}: expected "
               f"{_fmt(e_v)}, got {_fmt(a_v)} {tolerance}.")
    msg += _value_hint(a, e, atol, rtol)
    fail(msg)


def _value_hint(a: torch.Tensor, e: torch.Tensor, atol: float, rtol: float) -> str:
    """Recognise the usual slips: sign flipped, scaled or shifted by a constant."""
    if a.is_complex() or e.is_complex() or a.numel() < 2:
        return ""
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(e).all())):
        return ""

    def close(x, y) -> bool:
        return bool(torch.isclose(x, y, atol=atol, rtol=rtol).all())

    if bool((a == 0).all()):
        return " Your result is all zeros."
    if bool((e != 0).any()) and close(-a, e):
        return " Your result is the expected one with the sign flipped."
    if close(a.abs(), e.abs()):
        return (" The absolute values match but some signs differ (a missing or extra abs(), "
                "or a sign error?).")
    if bool((e != 0).any()):
        c = float((a * e).sum() / (e * e).sum())
        if c != 0 and abs(c - 1) > 1e-3 and close(a, c * e):
            return (f" Your result is the expected one multiplied by about {c:.4g}: check the "
                    f"normalisation / scaling factor.")
    shift = float((a - e).mean())
    if abs(shift) > atol and close(a - shift, e):
        return (f" Your result is the expected one shifted by about {shift:+.4g}: check a "
                f"missing or extra constant term.")
    return ""


def assert_shape(actual: Any, expected_shape: Sequence[Optional[int]], *, name: str) -> None:
    """Fail unless ``actual`` (tensor or NumPy array) has shape ``expected_shape``.

    ``None`` in ``expected_shape`` matches any size, e.g. ``(None, 3, 224, 224)``.

    >>> assert_shape(torch.zeros(2, 8, 30, 30), (None, 8, 30, 30), name="conv(x)")
    """
    expected_shape = tuple(expected_shape)
    shown = "(" + ", ".join("N" if d is None else str(d) for d in expected_shape) + \
        ("," if len(expected_shape) == 1 else "") + ")"
    if actual is None:
        raise AssertionError(f"{name} returned None, expected an array of shape {shown}. "
                             f"Did you forget the `return` statement?")
    if not isinstance(actual, (torch.Tensor, np.ndarray)):
        raise AssertionError(f"{name} returned {_type_name(actual)}, expected a torch.Tensor "
                             f"of shape {shown}")
    got = tuple(actual.shape)
    ok = len(got) == len(expected_shape) and all(
        d is None or d == g for d, g in zip(expected_shape, got))
    if not ok:
        if len(got) == len(expected_shape):
            concrete = tuple(g if d is None else d for d, g in zip(expected_shape, got))
        else:
            concrete = tuple(-1 if d is None else d for d in expected_shape)
        hint = _shape_hint(got, concrete)
        raise AssertionError(f"{name}: expected shape {shown}, got {got}{hint}")


# ----------------------------------------------------------------------------------------------
# running student code
# ----------------------------------------------------------------------------------------------
def call_student(fn: Callable, *args, **kwargs):
    """Call ``fn(*args, **kwargs)`` and return its result; a crash becomes a failed test.

    * The released stub (it raises ``NotImplementedError``) fails with "``fn`` is not
      implemented yet" instead of a traceback.
    * Any other exception raised by the student's code fails the test with an ``AssertionError``
      that names the function and the error; the original exception is chained to it, so the
      traceback still shows the line of the student's code where it happened.
    * An ``AssertionError`` (the student's own ``assert``, or :func:`forbid`) passes through.

    >>> def todo(x):
    ...     raise NotImplementedError()
    >>> call_student(todo, 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    AssertionError: todo is not implemented yet: replace `raise NotImplementedError()` ...
    """
    fname = getattr(fn, "__name__", repr(fn))
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(
            f"{fname} is not implemented yet: replace `raise NotImplementedError()` in its cell "
            f"with your code, run that cell, then run this test again.") from None
    except AssertionError:
        raise
    except Exception as err:  # noqa: BLE001 - any crash of the student's code fails the test
        raise AssertionError(
            f"{fname} raised {type(err).__name__}: {err} -- see the traceback above for the line "
            f"of your code where it happened.") from err


class _Forbidden:
    """Record of the forbidden calls made inside a :func:`forbid` block."""

    def __init__(self) -> None:
        self.calls: List[str] = []
        self.targets: List[str] = []

    def __repr__(self) -> str:
        return f"Forbidden(targets={self.targets}, calls={self.calls})"


def _resolve_dotted(path: str) -> Tuple[Any, str]:
    """'torch.nn.functional.conv2d' -> (torch.nn.functional module, 'conv2d')."""
    parts = path.split(".")
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"targets: {path!r} is not a dotted name like "
                         f"'torch.nn.functional.conv2d'")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:-1]:
                owner = getattr(owner, attr)
        except AttributeError:
            break
        if not hasattr(owner, parts[-1]):
            break
        return owner, parts[-1]
    raise ValueError(f"targets: cannot find {path!r} (is the module imported and the name "
                     f"spelled correctly?)")


def _alias_namespaces() -> List[Any]:
    """Places where the same function object is commonly reachable under another name."""
    spaces: List[Any] = []
    for mod_name in ("torch", "torch.nn.functional", "torch.special", "torch.linalg",
                     "torch.fft", "__main__"):
        mod = sys.modules.get(mod_name)
        if mod is not None:
            spaces.append(mod)
    spaces.append(torch.Tensor)
    for mod_name, mod in list(sys.modules.items()):
        if mod is not None and (mod_name == "helpers" or mod_name.startswith("helpers.")):
            spaces.append(mod)
    return spaces


@contextlib.contextmanager
def forbid(*targets, reason: Optional[str] = None, name: Optional[str] = None,
           aliases: bool = True) -> Iterator[_Forbidden]:
    """Make some functions unusable while a block runs; restore them afterwards.

    Each target is a dotted string (``"torch.nn.functional.conv2d"``, ``"helpers.filters.conv2d"``)
    or an ``(object, "attribute")`` pair (``(F, "conv2d")``, ``(torch.Tensor, "unfold")``).  Inside
    the ``with`` block the attribute is replaced by a function that raises::

        AssertionError: conv2d_naive must be implemented without calling
        torch.nn.functional.conv2d (write the loops yourself).

    ``name`` is the student's function (used in the message), ``reason`` an explanation in
    brackets.  The originals are put back in a ``finally`` block, also when the block fails.
    If the student's code catches the ``AssertionError`` and carries on, the block still fails
    when it ends.  The context manager yields a record whose ``calls`` lists the forbidden calls
    (a test that deliberately triggers and catches the error inside the block should empty it,
    ``record.calls.clear()``, before the block ends).

    With ``aliases=True`` (default) the *same function object* is also blocked wherever it is
    reachable under another name in ``torch``, ``torch.nn.functional``, ``torch.special``,
    ``torch.linalg``, ``torch.fft``, ``torch.Tensor``, the loaded ``helpers`` modules and the
    notebook's own namespace (``__main__``): e.g. ``torch.nn.functional.conv2d`` *is*
    ``torch.conv2d``, and ``from helpers.filters import conv2d`` in the notebook creates another
    name for the reference helper.  So compute expected values *before* entering the block.

    Limitations: an alias that is a different object (``torch.nn.Conv2d`` modules still reach
    ``F.conv2d`` and are caught; ``torch.ops.aten.conv2d`` or ``torch._C._nn`` are not), or a
    reference captured earlier in a closure or default argument, escapes.  Name every route you
    care about as a separate target: ``forbid("torch.nn.functional.conv2d",
    "torch.nn.functional.unfold", (torch.Tensor, "unfold"))``.

    >>> import torch.nn.functional as F
    >>> with forbid("torch.nn.functional.relu", name="my_relu"):
    ...     F.relu(torch.ones(1))
    Traceback (most recent call last):
    AssertionError: my_relu must be implemented without calling torch.nn.functional.relu.
    """
    if not targets:
        raise ValueError("targets: give at least one function to forbid, e.g. "
                         "forbid('torch.nn.functional.conv2d')")
    record = _Forbidden()
    subject = name or "This exercise"
    patches: List[Tuple[Any, str, bool, Any]] = []

    resolved: List[Tuple[Any, str, str]] = []
    for t in targets:
        if isinstance(t, str):
            owner, attr = _resolve_dotted(t)
            shown = t
        elif isinstance(t, tuple) and len(t) == 2 and isinstance(t[1], str):
            owner, attr = t
            if not hasattr(owner, attr):
                raise ValueError(f"targets: {owner!r} has no attribute {attr!r}")
            owner_name = getattr(owner, "__name__", type(owner).__name__)
            if isinstance(owner, type) and owner.__module__ not in ("builtins",):
                owner_name = f"{owner.__module__}.{owner.__qualname__}"
            shown = f"{owner_name}.{attr}"
        else:
            raise TypeError(f"targets: each target must be a dotted string or an (object, "
                            f"'attribute') pair, got {t!r}")
        resolved.append((owner, attr, shown))

    def blocker(shown: str):
        text = f"{subject} must be implemented without calling {shown}"
        text += f" ({reason})." if reason else "."

        def _blocked(*args, **kwargs):
            record.calls.append(shown)
            raise AssertionError(text)

        _blocked.__name__ = f"forbidden_{shown.rsplit('.', 1)[-1]}"
        _blocked.message = text  # type: ignore[attr-defined]
        return _blocked

    seen = set()
    jobs: List[Tuple[Any, str, Callable]] = []
    for owner, attr, shown in resolved:
        key = (id(owner), attr)
        if key in seen:
            continue
        seen.add(key)
        record.targets.append(shown)
        original = getattr(owner, attr)
        block = blocker(shown)
        jobs.append((owner, attr, block))
        if aliases and callable(original):
            for space in _alias_namespaces():
                try:
                    items = list(vars(space).items())
                except TypeError:
                    continue
                for other_attr, value in items:
                    k2 = (id(space), other_attr)
                    if value is original and k2 not in seen:
                        seen.add(k2)
                        jobs.append((space, other_attr, block))
    try:
        for owner, attr, block in jobs:
            try:
                had_own = attr in vars(owner)
            except TypeError:
                had_own = True
            original = vars(owner)[attr] if had_own and hasattr(owner, "__dict__") \
                else getattr(owner, attr)
            setattr(owner, attr, block)
            patches.append((owner, attr, had_own, original))
        yield record
    finally:
        for owner, attr, had_own, original in reversed(patches):
            if had_own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)
    if record.calls:
        raise AssertionError(
            f"{subject} must be implemented without calling {record.calls[0]}; it was called "
            f"{len(record.calls)} time(s) and the error was caught by your code.")


# ----------------------------------------------------------------------------------------------
# inputs left untouched
# ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def assert_inputs_unchanged(**named) -> Iterator[None]:
    """Fail if the block edits the given tensors or modules in place.

    Pass each input by name: ``with assert_inputs_unchanged(x=x, weight=w, model=model): ...``.
    For a tensor the values, shape, dtype and ``requires_grad`` flag are compared before and
    after; for an ``nn.Module`` its parameters and buffers and its train/eval mode.  The check runs
    only when the block finished without an exception (a failing block reports its own error).

    >>> x = torch.ones(3)
    >>> with assert_inputs_unchanged(x=x):
    ...     y = x * 2          # fine: a new tensor
    """
    snapshots = {}
    for arg, obj in named.items():
        if isinstance(obj, torch.Tensor):
            snapshots[arg] = ("tensor", obj.detach().clone(), obj.requires_grad)
        elif isinstance(obj, torch.nn.Module):
            state = {k: v.detach().clone() for k, v in obj.state_dict(keep_vars=True).items()}
            flags = {k: p.requires_grad for k, p in obj.named_parameters()}
            snapshots[arg] = ("module", state, obj.training, flags)
        else:
            raise TypeError(f"{arg} must be a torch.Tensor or nn.Module, got {_type_name(obj)}")
    yield
    for arg, snap in snapshots.items():
        obj = named[arg]
        if snap[0] == "tensor":
            _, before, req = snap
            if obj.shape != before.shape or obj.dtype != before.dtype or not torch.equal(
                    obj.detach(), before):
                raise AssertionError(
                    f"the input {arg} was modified in place; work on a copy (e.g. "
                    f"{arg}.clone()) or use out-of-place operations (x = x + 1, not x += 1)")
            if obj.requires_grad != req:
                raise AssertionError(
                    f"the requires_grad flag of the input {arg} was changed from {req} to "
                    f"{obj.requires_grad}; work on a copy ({arg}.detach().clone()) instead")
        else:
            _, state, training, flags = snap
            if obj.training != training:
                mode = "train" if training else "eval"
                raise AssertionError(f"{arg} was left in {'train' if obj.training else 'eval'} "
                                     f"mode; it was in {mode} mode before")
            now = obj.state_dict(keep_vars=True)
            for k, v in state.items():
                if k not in now or not torch.equal(now[k].detach(), v):
                    raise AssertionError(f"{arg}.{k} was modified; the model's weights must "
                                         f"stay as they were")
            for k, p in obj.named_parameters():
                if flags.get(k) != p.requires_grad:
                    raise AssertionError(f"{arg}.{k}.requires_grad was changed from "
                                         f"{flags.get(k)} to {p.requires_grad}")


# ----------------------------------------------------------------------------------------------
# the usual way a test cell runs a student's function, and what it checks of an image result
# ----------------------------------------------------------------------------------------------
def _named_inputs(fn: Callable, args: tuple, kwargs: dict) -> dict:
    """{argument name: value} of the tensor and module arguments of the call (the student's own
    parameter names where the call binds, else ``argument 1``, ``argument 2``, ...)."""
    try:
        bound = dict(inspect.signature(fn).bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):       # a changed signature: call_student reports the call
        bound = {f"argument {i + 1}": a for i, a in enumerate(args)}
        bound.update(kwargs)
    return {k: v for k, v in bound.items() if isinstance(v, (torch.Tensor, torch.nn.Module))}


def run_student(fn: Callable, args: Sequence[Any] = (), kwargs: Optional[dict] = None, *,
                forbidden: Sequence[Any] = (), grad_hint: str = "torch.autograd.grad(loss, x)"):
    """``fn(*args, **kwargs)`` the way a test cell calls a student's answer; returns its result.

    * the functions in ``forbidden`` raise while ``fn`` runs (:func:`forbid`);
    * the released stub or a crash becomes a failed test with a message (:func:`call_student`);
    * every tensor and module argument must come back unchanged (:func:`assert_inputs_unchanged`);
    * the ``.grad`` of every parameter of a module argument must be the very object it was: a
      method that needs the gradient with respect to the *image* gets it with ``grad_hint``
      (``torch.autograd.grad``), not with ``.backward()``, which also fills the weights' ``.grad``.

    >>> run_student(lambda x: 2 * x, (torch.ones(2),))
    tensor([2., 2.])
    """
    kwargs = dict(kwargs or {})
    name = getattr(fn, "__name__", "your function")
    inputs = _named_inputs(fn, tuple(args), kwargs)
    grads = [(p, p.grad) for m in inputs.values() if isinstance(m, torch.nn.Module)
             for p in m.parameters()]
    blocked = forbid(*forbidden, name=name) if forbidden else contextlib.nullcontext()
    with blocked, assert_inputs_unchanged(**inputs):
        out = call_student(fn, *args, **kwargs)
    if any(p.grad is not before for p, before in grads):
        raise AssertionError(
            f"{name} changed the .grad of the model's parameters: get the gradient with "
            f"{grad_hint}, which touches no .grad, instead of .backward()")
    return out


def check_image(out: Any, like: torch.Tensor, name: str, *, unit: bool = False,
                eps: Optional[float] = None) -> torch.Tensor:
    """``out`` must be an image batch like ``like`` (shape, dtype), detached and finite; with
    ``unit=True`` its pixels lie in [0, 1]; with ``eps`` it lies within ``eps`` of ``like`` in the
    L-infinity norm (an adversarial example in its eps-ball).  Returns ``out``.

    >>> x = torch.rand(1, 3, 4, 4)
    >>> check_image(x * 2, x, "double", unit=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    AssertionError: double returned pixel values in [...]: clamp the result to [0, 1] ...
    """
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{name} should return a tensor, got {_type_name(out)}"
                             + (": did you forget the `return`?" if out is None else ""))
    if out.shape != like.shape or out.dtype != like.dtype:
        raise AssertionError(f"{name} should return a tensor of shape {tuple(like.shape)} and "
                             f"dtype {like.dtype}, got {tuple(out.shape)} {out.dtype}")
    if out.requires_grad:
        raise AssertionError(f"{name} should return a tensor without autograd graph (.detach() it)")
    if not bool(torch.isfinite(out).all()):
        raise AssertionError(f"{name} returned NaN or infinite values")
    lo, hi = float(out.min()), float(out.max())
    if (unit or eps is not None) and (lo < 0.0 or hi > 1.0):
        raise AssertionError(f"{name} returned pixel values in [{lo:.4g}, {hi:.4g}]: clamp the "
                             f"result to [0, 1] (.clamp(0, 1)) so that it is still an image")
    if eps is not None:
        moved = float((out - like).abs().max())
        if moved > eps + 1e-6:
            raise AssertionError(f"{name} moved a pixel by {moved:.4g}, more than eps = {eps:.4g}: "
                                 f"the perturbation must stay inside the eps-ball")
    return out


def hook_count(model: torch.nn.Module) -> int:
    """Hooks of every kind (forward, forward-pre, backward, backward-pre, with kwargs) on
    ``model`` and its submodules: 0 after a method that promises to leave none behind."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    return sum(len(getattr(m, kind, None) or {}) for m in model.modules() for kind in kinds)
