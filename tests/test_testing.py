"""Tests for helpers.testing: the messages students read when an autograded test fails."""
import matplotlib

matplotlib.use("Agg")

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers.testing import (assert_close, assert_inputs_unchanged, assert_shape, call_student,
                             forbid)

ORIG_CONV2D = F.conv2d
ORIG_TORCH_CONV2D = torch.conv2d


def _message(fn) -> str:
    with pytest.raises(AssertionError) as err:
        fn()
    return str(err.value)


# ---------------------------------------------------------------------------------------------
# assert_close
# ---------------------------------------------------------------------------------------------
def test_assert_close_passes_on_close_values_of_every_kind():
    x = torch.linspace(-1, 1, 12).reshape(1, 3, 2, 2)
    assert_close(x + 1e-7, x, name="f(x)")
    assert_close(x.double(), x, name="f(x)")  # same kind, different precision
    assert_close(x.clone().requires_grad_(), x, name="f(x)")
    assert_close(x.numpy(), x.numpy(), name="f(x)")
    assert_close(x, x.numpy(), name="f(x)")       # a tensor is fine where an array is expected
    assert_close(2.0, 2.0 + 1e-9, name="loss")
    assert_close(torch.tensor(2.0), 2.0, name="loss")
    assert_close(np.float32(2.0), 2, name="loss")
    assert_close(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]), name="f")
    assert_close(torch.tensor([float("inf")]), torch.tensor([float("inf")]), name="f")


def test_assert_close_agrees_with_torch_isclose():
    g = torch.Generator().manual_seed(0)
    for trial in range(200):
        e = torch.randn(6, generator=g) * 10 ** float(torch.randint(-3, 3, (1,), generator=g))
        noise = torch.randn(6, generator=g) * 10 ** float(torch.randint(-9, -2, (1,),
                                                                         generator=g))
        a = e + noise
        atol, rtol = 1e-5, 1e-4
        expected_pass = bool(torch.isclose(a.double(), e.double(), atol=atol, rtol=rtol).all())
        try:
            assert_close(a, e, name="f", atol=atol, rtol=rtol)
            passed = True
        except AssertionError:
            passed = False
        assert passed == expected_pass, (trial, a, e)


def test_assert_close_wrong_type_messages():
    e = torch.zeros(1, 8, 30, 30)
    assert _message(lambda: assert_close([1, 2], e, name="conv(x, w)")) == (
        "conv(x, w) returned a list, expected a torch.Tensor (convert it with "
        "torch.as_tensor(...))")
    msg = _message(lambda: assert_close(None, e, name="conv(x, w)"))
    assert "returned None" in msg and "return" in msg and "(1, 8, 30, 30)" in msg
    assert "returned a numpy.ndarray, expected a torch.Tensor" in _message(
        lambda: assert_close(np.zeros((1, 8, 30, 30)), e, name="conv"))
    assert "returned a str, expected a number" in _message(
        lambda: assert_close("0.5", 0.5, name="score"))
    assert "expected a single number" in _message(
        lambda: assert_close(torch.zeros(3), 0.5, name="score"))
    assert "expected a numpy.ndarray" in _message(
        lambda: assert_close(3.0, np.zeros(2), name="g"))
    with pytest.raises(TypeError, match="expected must be"):
        assert_close(1.0, [1.0], name="g")


def test_assert_close_shape_messages_and_hints():
    e = torch.zeros(1, 8, 30, 30)
    msg = _message(lambda: assert_close(torch.zeros(1, 8, 32, 32), e, name="conv(x, w)"))
    assert msg.startswith("conv(x, w): expected shape (1, 8, 30, 30), got (1, 8, 32, 32)")
    assert "off by +2" in msg and "padding" in msg
    assert "swapped" in _message(lambda: assert_close(torch.zeros(1, 30, 30, 8), e, name="f"))
    assert "unsqueeze/squeeze" in _message(lambda: assert_close(torch.zeros(8, 30, 30), e,
                                                                name="f"))
    plain = _message(lambda: assert_close(torch.zeros(2, 5), torch.zeros(2, 6), name="f"))
    assert plain == "f: expected shape (2, 6), got (2, 5)"


def test_assert_close_dtype_kind_and_nan_messages():
    e = torch.zeros(2, 3)
    msg = _message(lambda: assert_close(torch.zeros(2, 3, dtype=torch.long), e, name="f(x)"))
    assert "expected a floating result" in msg and "torch.int64" in msg
    assert "bool" in _message(lambda: assert_close(torch.zeros(2, 3), e.bool(), name="mask"))
    a = torch.zeros(2, 3)
    a[1, 2] = float("nan")
    a[0, 1] = float("nan")
    msg = _message(lambda: assert_close(a, e, name="f(x)"))
    assert "2 NaN value(s)" in msg and "(0, 1)" in msg
    b = torch.zeros(2, 3)
    b[1, 0] = float("inf")
    assert "1 infinite value(s) (first at index (1, 0))" in _message(
        lambda: assert_close(b, e, name="f"))


def test_assert_close_value_message_points_at_the_worst_element():
    e = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    a = e.clone()
    a[1, 2, 3] += 0.5    # the largest error
    a[0, 0, 1] -= 0.01   # a small one
    msg = _message(lambda: assert_close(a, e, name="f(x)", hint="check the kernel flip"))
    assert "2 of 24 values differ" in msg
    assert "Largest difference 0.5 at index (1, 2, 3): expected 23, got 23.5" in msg
    assert "atol=1e-05, rtol=0.0001" in msg
    assert msg.endswith("Hint: check the kernel flip")
    scalar = _message(lambda: assert_close(3.0, 2.0, name="loss"))
    assert scalar == ("loss is not close to the expected result: expected 2, got 3, a difference "
                      "of 1 (tolerance atol=1e-05, rtol=0.0001).")
    one = _message(lambda: assert_close(torch.tensor([3.0]), torch.tensor([2.0]), name="f"))
    assert "expected 2, got 3" in one and "index" not in one


def test_assert_close_runs_on_the_cpu_copy_of_inputs_and_changes_nothing():
    e = torch.rand(3, 3)
    a = (e + 1).requires_grad_()
    with pytest.raises(AssertionError):
        assert_close(a, e, name="f")
    assert a.requires_grad and a.grad is None and a.dtype == torch.float32
    meta_free = torch.rand(2, dtype=torch.float16)
    assert_close(meta_free, meta_free.float(), name="half", atol=1e-3)


@pytest.mark.parametrize("wrong, expected_hint", [
    (lambda e: -e, "sign flipped"),
    (lambda e: 0.5 * e, "multiplied by about 0.5"),
    (lambda e: e + 3.0, "shifted by about +3"),
    (lambda e: e.abs(), "signs differ"),
    (lambda e: torch.zeros_like(e), "all zeros"),
])
def test_assert_close_recognises_common_slips(wrong, expected_hint):
    e = torch.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.5]])
    assert expected_hint in _message(lambda: assert_close(wrong(e), e, name="f"))


def test_assert_close_gives_no_slip_hint_for_unrelated_errors():
    e = torch.tensor([1.0, -2.0, 3.0, 4.0])
    msg = _message(lambda: assert_close(torch.tensor([1.0, -2.0, 3.0, 5.0]), e, name="f"))
    for hint in ("sign", "multiplied", "shifted", "zeros"):
        assert hint not in msg


# ---------------------------------------------------------------------------------------------
# assert_shape
# ---------------------------------------------------------------------------------------------
def test_assert_shape():
    assert_shape(torch.zeros(2, 8, 30, 30), (2, 8, 30, 30), name="conv(x)")
    assert_shape(np.zeros((5, 3)), (None, 3), name="f")
    assert _message(lambda: assert_shape(torch.zeros(1, 8, 32, 32), (None, 8, 30, 30),
                                         name="conv(x)")).startswith(
        "conv(x): expected shape (N, 8, 30, 30), got (1, 8, 32, 32)")
    assert "3 dimensions instead of 4" in _message(
        lambda: assert_shape(torch.zeros(8, 30, 30), (None, 8, 30, 30), name="f"))
    assert "returned None" in _message(lambda: assert_shape(None, (3,), name="f"))
    assert "returned a list" in _message(lambda: assert_shape([1, 2, 3], (3,), name="f"))


# ---------------------------------------------------------------------------------------------
# call_student
# ---------------------------------------------------------------------------------------------
def test_call_student():
    def double(x, *, k=2):
        return k * x

    assert call_student(double, 3, k=5) == 15

    def conv2d_naive(x, w):
        raise NotImplementedError()

    msg = _message(lambda: call_student(conv2d_naive, 1, 2))
    assert msg.startswith("conv2d_naive is not implemented yet")

    def broken(x):
        raise ValueError("student bug")

    msg = _message(lambda: call_student(broken, 1))   # a crash is a failed test with a message
    assert msg.startswith("broken raised ValueError: student bug -- see the traceback above")
    try:
        call_student(broken, 1)
    except AssertionError as err:
        assert isinstance(err.__cause__, ValueError)   # the student's traceback is kept

    def asserts(x):
        assert x > 0, "my own check"

    assert _message(lambda: call_student(asserts, -1)).startswith("my own check")   # passes through


# ---------------------------------------------------------------------------------------------
# forbid
# ---------------------------------------------------------------------------------------------
def _student_uses_functional(x, w):
    return F.conv2d(x, w)


def _student_uses_torch(x, w):
    return torch.conv2d(x, w)


def _student_uses_module(x, w):
    conv = torch.nn.Conv2d(1, 1, 2, bias=False)
    with torch.no_grad():
        conv.weight.copy_(w)
    return conv(x)


def _student_loops(x, w):
    out = torch.zeros(1, 1, 2, 2)
    for i in range(2):
        for j in range(2):
            out[0, 0, i, j] = (x[0, 0, i:i + 2, j:j + 2] * w[0, 0]).sum()
    return out


X = torch.arange(9.0).reshape(1, 1, 3, 3)
W = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]])


@pytest.mark.parametrize("student", [_student_uses_functional, _student_uses_torch,
                                     _student_uses_module])
def test_forbid_catches_every_route_to_the_same_function(student):
    with pytest.raises(AssertionError) as err:
        with forbid("torch.nn.functional.conv2d", name="conv2d_naive",
                    reason="write the loops yourself"):
            student(X, W)
    assert str(err.value) == ("conv2d_naive must be implemented without calling "
                              "torch.nn.functional.conv2d (write the loops yourself).")
    assert F.conv2d is ORIG_CONV2D and torch.conv2d is ORIG_TORCH_CONV2D
    assert torch.equal(student(X, W), ORIG_CONV2D(X, W))  # works again afterwards


def test_forbid_lets_an_honest_implementation_through():
    expected = F.conv2d(X, W)
    with forbid("torch.nn.functional.conv2d", name="conv2d_naive") as record:
        out = _student_loops(X, W)
    assert record.calls == [] and record.targets == ["torch.nn.functional.conv2d"]
    assert torch.equal(out, expected)


def test_forbid_without_aliases_only_patches_the_named_attribute():
    with forbid("torch.nn.functional.conv2d", aliases=False) as record:
        assert torch.equal(torch.conv2d(X, W), ORIG_CONV2D(X, W))
        with pytest.raises(AssertionError, match="This exercise must be implemented without"):
            F.conv2d(X, W)
        record.calls.clear()  # this test caught the error itself
    assert F.conv2d is ORIG_CONV2D


def test_forbid_detects_a_swallowed_error():
    def sneaky(x, w):
        try:
            return F.conv2d(x, w)
        except AssertionError:
            return _student_loops(x, w)

    msg = _message(lambda: _run_in_forbid(sneaky))
    assert "conv2d_naive must be implemented without calling torch.nn.functional.conv2d" in msg
    assert "caught by your code" in msg
    assert F.conv2d is ORIG_CONV2D


def _run_in_forbid(fn):
    with forbid("torch.nn.functional.conv2d", name="conv2d_naive"):
        fn(X, W)


def test_forbid_restores_after_other_exceptions():
    with pytest.raises(ZeroDivisionError):
        with forbid("torch.nn.functional.conv2d", "torch.nn.functional.unfold"):
            1 / 0
    assert F.conv2d is ORIG_CONV2D
    assert F.unfold.__name__ == "unfold"


def test_forbid_object_attribute_pairs_and_inherited_methods():
    assert "unfold" not in vars(torch.Tensor)  # defined on the C base class
    with forbid((torch.Tensor, "unfold"), (F, "pad"), name="im2col") as record:
        with pytest.raises(AssertionError, match="im2col must be implemented without calling "
                                                 "torch.Tensor.unfold"):
            torch.zeros(4).unfold(0, 2, 1)
        with pytest.raises(AssertionError, match="torch.nn.functional.pad"):
            F.pad(torch.zeros(2), (1, 1))
        assert record.calls == ["torch.Tensor.unfold", "torch.nn.functional.pad"]
        record.calls.clear()  # the test itself handled them
    assert "unfold" not in vars(torch.Tensor)  # removed again, not left as a shadowing copy
    assert torch.zeros(4).unfold(0, 2, 1).shape == (3, 2)


def test_forbid_blocks_reference_helpers_and_notebook_aliases(monkeypatch):
    def reference_conv(x, w):
        return F.conv2d(x, w)

    fake = types.ModuleType("helpers._fake_reference")
    fake.reference_conv = reference_conv
    monkeypatch.setitem(sys.modules, "helpers._fake_reference", fake)
    main = sys.modules["__main__"]
    # what `from helpers.filters import conv2d as ref` in a notebook cell would create
    monkeypatch.setattr(main, "ref_alias", reference_conv, raising=False)
    with forbid("helpers._fake_reference.reference_conv", name="conv2d_naive") as record:
        with pytest.raises(AssertionError, match="helpers._fake_reference.reference_conv"):
            fake.reference_conv(X, W)
        with pytest.raises(AssertionError, match="helpers._fake_reference.reference_conv"):
            main.ref_alias(X, W)
        assert len(record.calls) == 2
        record.calls.clear()  # this test caught the errors itself
    assert fake.reference_conv is reference_conv and main.ref_alias is reference_conv


def test_forbid_bad_targets_name_the_argument():
    with pytest.raises(ValueError, match="targets"):
        with forbid():
            pass
    with pytest.raises(ValueError, match="targets.*torch.nn.functional.no_such_thing"):
        with forbid("torch.nn.functional.no_such_thing"):
            pass
    with pytest.raises(ValueError, match="targets"):
        with forbid("conv2d"):
            pass
    with pytest.raises(TypeError, match="targets"):
        with forbid(F.conv2d):
            pass
    with pytest.raises(ValueError, match="targets"):
        with forbid((F, "nothing_here")):
            pass
    assert F.conv2d is ORIG_CONV2D


# ---------------------------------------------------------------------------------------------
# assert_inputs_unchanged
# ---------------------------------------------------------------------------------------------
def test_assert_inputs_unchanged_accepts_pure_functions():
    x = torch.rand(3, requires_grad=True)
    model = torch.nn.Linear(2, 2).eval()
    with assert_inputs_unchanged(x=x, model=model):
        y = (x * 2).sum()
        model(torch.rand(1, 2))
    assert y.requires_grad


def test_assert_inputs_unchanged_catches_in_place_edits():
    x = torch.ones(3)
    assert "input x was modified in place" in _message(lambda: _edit(x, lambda t: t.add_(1)))
    y = torch.ones(3)
    assert "requires_grad flag of the input y" in _message(
        lambda: _edit(y, lambda t: t.requires_grad_(), name="y"))
    model = torch.nn.Linear(2, 2).eval()
    assert "left in train mode" in _message(lambda: _edit(model, lambda m: m.train(),
                                                          name="model"))
    model2 = torch.nn.Linear(2, 2)
    msg = _message(lambda: _edit(model2, lambda m: m.weight.data.mul_(2), name="model"))
    assert "model.weight was modified" in msg
    model3 = torch.nn.Linear(2, 2)
    assert "model.bias.requires_grad" in _message(
        lambda: _edit(model3, lambda m: m.bias.requires_grad_(False), name="model"))
    with pytest.raises(TypeError, match="x must be"):
        with assert_inputs_unchanged(x=[1, 2]):
            pass


def _edit(obj, fn, name="x"):
    with assert_inputs_unchanged(**{name: obj}):
        fn(obj)


# ---------------------------------------------------------------------------------------------
# run_student, check_image, hook_count: what the topic test aids share
# ---------------------------------------------------------------------------------------------
def test_run_student_forbids_checks_inputs_and_grads():
    from helpers.testing import run_student

    net = torch.nn.Linear(3, 2)
    x = torch.rand(4, 3)
    assert torch.equal(run_student(lambda model, x: model(x).detach(), (net, x)), net(x).detach())

    def uses_backward(model, x):
        model(x).sum().backward()
        return x

    msg = _message(lambda: run_student(uses_backward, (net, x), grad_hint="autograd.grad(s, x)"))
    assert "changed the .grad of the model's parameters" in msg and "autograd.grad(s, x)" in msg

    def edits(model, x):
        x += 1
        return x

    assert "modified in place" in _message(lambda: run_student(edits, (net, x.clone())))

    def shortcut(model, x):
        return F.relu(model(x))

    assert "must be implemented without calling" in _message(
        lambda: run_student(shortcut, (net, x), forbidden=["torch.nn.functional.relu"]))
    assert F.relu is not None and F.relu(torch.ones(1)).item() == 1.0   # put back afterwards


def test_check_image():
    from helpers.testing import check_image

    x = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    assert check_image(x.clone(), x, "f", unit=True, eps=0.0) is not None
    assert "did you forget the `return`" in _message(lambda: check_image(None, x, "f"))
    assert "shape (2, 3, 4, 4) and dtype torch.float64" in _message(
        lambda: check_image(x.float(), x, "f"))
    assert "without autograd graph" in _message(
        lambda: check_image(x.clone().requires_grad_(), x, "f"))
    assert "NaN" in _message(lambda: check_image(x * float("nan"), x, "f"))
    assert "clamp the result to [0, 1]" in _message(lambda: check_image(x + 1, x, "f", unit=True))
    check_image(x + 1, x, "f")                                   # no range asked: fine
    grey = torch.full_like(x, 0.5)
    assert "moved a pixel by 0.2, more than eps = 0.1" in _message(
        lambda: check_image(grey + 0.2, grey, "f", eps=0.1))


def test_hook_count():
    from helpers.testing import hook_count

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    assert hook_count(net) == 0
    handles = [net[0].register_forward_hook(lambda *a: None),
               net[1].register_forward_pre_hook(lambda *a: None),
               net.register_full_backward_hook(lambda *a: None)]
    assert hook_count(net) == 3
    for h in handles:
        h.remove()
    assert hook_count(net) == 0
