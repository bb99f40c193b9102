"""Tests for helpers.runtime (device, seeds, fast mode, progress) and helpers._checks."""
import matplotlib

matplotlib.use("Agg")

import random

import numpy as np
import pytest
import torch

from helpers import _checks, runtime
from helpers._checks import (check_choice, check_image_batch, check_positive_int, check_tensor,
                             check_unit_range)
from helpers.runtime import (environment_report, fast, get_device, is_fast, is_grading, progress,
                             seed_everything)


@pytest.fixture
def clean_env(monkeypatch):
    """No course variables set (tests/conftest.py sets COURSE_FAST and COURSE_PROGRESS)."""
    for var in ("COURSE_FAST", "COURSE_PROGRESS", "COURSE_DEVICE", "NBGRADER_EXECUTION",
                "NBGRADER_VALIDATING"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _fake_accelerators(monkeypatch, cuda: bool, mps: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


# ---------------------------------------------------------------------------------------------
# get_device
# ---------------------------------------------------------------------------------------------
def test_get_device_order_cuda_then_mps_then_cpu(clean_env):
    _fake_accelerators(clean_env, cuda=False, mps=False)
    assert get_device() == torch.device("cpu")
    _fake_accelerators(clean_env, cuda=False, mps=True)
    assert get_device() == torch.device("mps")
    _fake_accelerators(clean_env, cuda=True, mps=True)
    assert get_device() == torch.device("cuda")
    assert get_device("mps") == torch.device("mps")
    assert get_device("cpu") == torch.device("cpu")
    assert get_device("cuda:1") == torch.device("cuda:1")


def test_get_device_prefer_and_course_device(clean_env):
    _fake_accelerators(clean_env, cuda=True, mps=False)
    clean_env.setenv("COURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    assert get_device(prefer="cuda") == torch.device("cuda")  # the argument wins
    clean_env.setenv("COURSE_DEVICE", "")  # empty means unset
    assert get_device() == torch.device("cuda")


def test_get_device_unavailable_choice_names_what_is_available(clean_env):
    _fake_accelerators(clean_env, cuda=False, mps=False)
    with pytest.raises(RuntimeError, match=r"'cuda'.*prefer or COURSE_DEVICE.*available: cpu"):
        get_device("cuda")
    clean_env.setenv("COURSE_DEVICE", "mps")
    with pytest.raises(RuntimeError, match="'mps'.*available: cpu"):
        get_device()
    with pytest.raises(RuntimeError, match="'tpu'"):
        get_device("tpu")


def test_get_device_on_this_machine_is_usable():
    dev = get_device("cpu")
    assert torch.zeros(1, device=dev).device.type == "cpu"


# ---------------------------------------------------------------------------------------------
# seed_everything
# ---------------------------------------------------------------------------------------------
def _draw():
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(),
            torch.randint(0, 10**6, (2,)).tolist())


def test_seed_everything_repeats_python_numpy_and_torch():
    assert seed_everything(123) == 123
    first = _draw()
    seed_everything(123)
    assert _draw() == first
    seed_everything(124)
    other = _draw()
    for a, b in zip(first, other):
        assert a != b
    assert seed_everything() == 0
    zero = _draw()
    seed_everything(0)
    assert _draw() == zero
    assert seed_everything(2**64 - 1) == 2**64 - 1  # torch's largest seed


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None, 2**64, np.float64(1.0)])
def test_seed_everything_refuses_bad_seeds_without_touching_the_generators(bad):
    seed_everything(7)
    expected = _draw()
    seed_everything(7)
    with pytest.raises(ValueError, match="seed"):
        seed_everything(bad)
    assert _draw() == expected  # no generator was re-seeded half-way


# ---------------------------------------------------------------------------------------------
# fast mode
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("course_fast, nbgrader, expected", [
    (None, None, False),
    (None, "autograde", True),
    (None, "validate", True),
    ("0", "autograde", False),
    ("1", None, True),
    ("true", None, True),
    (" YES ", None, True),
    ("On", None, True),
    ("off", "autograde", False),
    ("False", None, False),
    ("no", None, False),
    ("", None, False),         # empty = unset
    ("", "autograde", True),   # ... so grading still gets fast mode
    ("  ", "validate", True),
])
def test_is_fast_combinations(clean_env, course_fast, nbgrader, expected):
    if course_fast is not None:
        clean_env.setenv("COURSE_FAST", course_fast)
    if nbgrader is not None:
        clean_env.setenv("NBGRADER_EXECUTION", nbgrader)
    assert is_fast() is expected
    assert is_grading() is (nbgrader is not None)
    assert fast(full=200, fast=20) == (20 if expected else 200)
    assert fast(full="big", fast="small") == ("small" if expected else "big")


@pytest.mark.parametrize("bad", ["2", "maybe", "fast"])
def test_is_fast_bad_value_names_the_variable(clean_env, bad):
    clean_env.setenv("COURSE_FAST", bad)
    with pytest.raises(ValueError, match=f"COURSE_FAST must be 0 or 1, got '{bad}'"):
        is_fast()


# ---------------------------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------------------------
def test_progress_shows_a_bar_normally(clean_env, capfd):
    # the control case: without it the "silent" tests below could not fail
    assert list(progress(range(5), desc="work", disable=False)) == [0, 1, 2, 3, 4]
    assert "work" in capfd.readouterr().err
    assert list(progress(range(3), desc="again")) == [0, 1, 2]
    assert "again" in capfd.readouterr().err


@pytest.mark.parametrize("env", [{"NBGRADER_EXECUTION": "autograde"},
                                 {"NBGRADER_EXECUTION": "validate"},
                                 {"COURSE_PROGRESS": "0"},
                                 {"COURSE_PROGRESS": "false"},
                                 {"COURSE_PROGRESS": "Off"}])
def test_progress_is_silent_under_nbgrader_or_when_switched_off(clean_env, capfd, env):
    for k, v in env.items():
        clean_env.setenv(k, v)
    items = list(progress(iter(range(50)), desc="training", total=50, leave=True))
    assert items == list(range(50))
    out = capfd.readouterr()
    assert out.err == "" and out.out == ""


def test_progress_explicit_disable(clean_env, capfd):
    assert list(progress([1, 2], desc="x", disable=True)) == [1, 2]
    assert capfd.readouterr().err == ""


class _FakeHandle:
    def __init__(self, frames):
        self.frames = frames

    def update(self, obj):
        self.frames.append(obj)


def test_notebook_bar_updates_one_display_in_place(clean_env, capfd, monkeypatch):
    import IPython.display
    from helpers import runtime

    frames, handles = [], []

    def fake_display(obj, display_id=False):
        assert display_id is True, "the bar must ask for a display handle to update in place"
        frames.append(obj)
        handles.append(_FakeHandle(frames))
        return handles[-1]

    monkeypatch.setattr(runtime, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    assert list(progress(range(7), desc="steps")) == list(range(7))
    assert len(handles) == 1, f"one display per bar, got {len(handles)}"
    last = frames[-1]
    assert "steps" in repr(last) and "7/7" in repr(last), repr(last)
    assert last.done and "<progress" in last._repr_html_() and 'value="7"' in last._repr_html_()
    assert not frames[0].done
    out = capfd.readouterr()
    assert out.err == "" and out.out == "", "the notebook bar writes nothing to stdout/stderr"


def test_notebook_bar_is_off_under_nbgrader_even_in_a_kernel(clean_env, capfd, monkeypatch):
    from helpers import runtime

    clean_env.setenv("NBGRADER_EXECUTION", "autograde")
    monkeypatch.setattr(runtime, "_in_notebook", lambda: True)
    assert list(progress(range(3))) == [0, 1, 2]
    assert capfd.readouterr() == ("", "")


def test_saved_notebook_shows_the_final_state_of_the_bar(clean_env, tmp_path):
    # the real thing: a kernel runs a loop, nbclient saves the notebook as Jupyter would
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import helpers, time\n"
        "for _ in helpers.progress(range(40), desc='demo'):\n"
        "    time.sleep(0.01)")]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    texts = [o.get("data", {}).get("text/plain", "") for o in outputs]
    assert len(outputs) == 1, outputs
    assert "demo" in texts[0] and "40/40" in texts[0], texts
    assert "<progress" in outputs[0]["data"]["text/html"]


def test_environment_report(clean_env):
    clean_env.setenv("COURSE_FAST", "1")
    report = environment_report(torch.device("cpu"))
    assert torch.__version__ in report and "device: cpu" in report
    assert "fast mode: on" in report
    clean_env.setenv("COURSE_FAST", "0")
    assert "fast mode: off" in environment_report(torch.device("cpu"))


# ---------------------------------------------------------------------------------------------
# _checks: every message names the argument and says what came back
# ---------------------------------------------------------------------------------------------
def test_check_tensor():
    x = torch.zeros(2, 3, 4, 4)
    assert check_tensor(x, "x", ndim=4, floating=True, channels=3) is x
    with pytest.raises(TypeError, match=r"^image must be a torch.Tensor, got list"):
        check_tensor([1.0], "image")
    with pytest.raises(ValueError, match=r"weight must be a 4-D tensor, got a torch.float32 "
                                         r"tensor of shape \(3, 3\)"):
        check_tensor(torch.zeros(3, 3), "weight", ndim=4)
    with pytest.raises(ValueError, match="x must be a 3-D or 4-D tensor"):
        check_tensor(torch.zeros(3), "x", ndim=(3, 4))
    with pytest.raises(TypeError, match=r"img must be a floating-point tensor.*torch.uint8.*255"):
        check_tensor(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), "img", floating=True)
    with pytest.raises(ValueError, match=r"x must have 3 channel\(s\) in dimension 1"):
        check_tensor(torch.zeros(1, 4, 2, 2), "x", channels=3)
    with pytest.raises(ValueError, match=r"x must have 1 or 3 channel\(s\) in dimension 0"):
        check_tensor(torch.zeros(2, 5, 5), "x", channels=(1, 3))


def test_check_unit_range():
    x = torch.rand(1, 3, 4, 4)
    assert check_unit_range(x, "x") is x
    check_unit_range(torch.tensor([-5e-5, 1 + 5e-5]), "x")  # within the tolerance
    check_unit_range(torch.zeros(0), "x")
    with pytest.raises(ValueError, match=r"image must hold pixel values in \[0, 1\], got values "
                                         r"in \[0, 255\].*divide by 255"):
        check_unit_range(torch.tensor([0.0, 255.0]), "image")
    with pytest.raises(ValueError, match=r"delta must hold.*\[-0.5, 0.5\]") as err:
        check_unit_range(torch.tensor([-0.5, 0.5]), "delta")
    assert "255" not in str(err.value)


def test_check_image_batch():
    x = torch.rand(2, 3, 5, 5)
    assert check_image_batch(x) is x
    check_image_batch(x * 3, unit_range=False)
    with pytest.raises(ValueError, match=r"^x must be a 4-D tensor"):
        check_image_batch(torch.rand(3, 5, 5))
    with pytest.raises(ValueError, match=r"content must have shape \(N, 3, H, W\).*channels-last"):
        check_image_batch(torch.rand(1, 5, 5, 3), "content")
    with pytest.raises(ValueError, match=r"style must have shape \(N, 3, H, W\)") as err:
        check_image_batch(torch.rand(1, 1, 5, 5), "style")
    assert "channels-last" not in str(err.value)
    with pytest.raises(ValueError, match=r"x must hold pixel values"):
        check_image_batch(x * 3)
    with pytest.raises(TypeError, match="batch must be a floating-point tensor"):
        check_image_batch(torch.zeros(1, 3, 2, 2, dtype=torch.long), "batch")


def test_check_positive_int():
    assert check_positive_int(3, "steps") == 3
    assert check_positive_int(0, "pad", minimum=0) == 0
    with pytest.raises(TypeError, match="steps must be an int >= 1, got bool True"):
        check_positive_int(True, "steps")
    with pytest.raises(TypeError, match="steps must be an int >= 1, got float 2.0"):
        check_positive_int(2.0, "steps")
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        check_positive_int(0, "steps")
    with pytest.raises(ValueError, match="pad must be an int >= 0, got -1"):
        check_positive_int(-1, "pad", minimum=0)


def test_check_choice():
    assert check_choice("mean", "reduction", ["mean", "sum"]) == "mean"
    with pytest.raises(ValueError, match=r"reduction must be one of 'mean', 'sum'; got 'avg'"):
        check_choice("avg", "reduction", ("mean", "sum"))
    many = [f"layer{i}" for i in range(50)]
    with pytest.raises(ValueError, match=r"layer must be one of .*'layer39', \.\.\. \(50 in all\)"
                                         r"; got 'x'") as err:
        check_choice("x", "layer", many)
    assert "'layer40'" not in str(err.value)


def test_checks_public_names():
    assert set(_checks.__all__) == {"check_tensor", "check_image_batch", "check_unit_range",
                                    "check_positive_int", "check_choice", "check_target", "TargetArg",
                                    "check_model", "model_device", "check_number", "check_unit",
                                    "class_scores"}


def test_check_model_and_model_device():
    net = torch.nn.Linear(2, 2)
    assert _checks.check_model(net) is net
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        _checks.check_model(lambda x: x)
    f = lambda x: x  # noqa: E731
    assert _checks.check_model(f, module=False) is f
    with pytest.raises(TypeError, match="net must be a torch.nn.Module or a callable"):
        _checks.check_model(3, "net", module=False)
    assert _checks.model_device(net) == torch.device("cpu")
    assert _checks.model_device(torch.nn.ReLU(), "meta") == torch.device("meta")
    assert _checks.model_device(f, None) == torch.device("cpu")
    bn = torch.nn.BatchNorm1d(2, affine=False).to("meta")    # buffers only
    assert _checks.model_device(bn) == torch.device("meta")


def test_check_number():
    assert _checks.check_number(3, "lr", minimum=0, strict=True) == 3.0
    assert isinstance(_checks.check_number(3, "lr"), float)
    assert _checks.check_number(4, "steps", integer=True, minimum=1) == 4
    with pytest.raises(TypeError, match="lr must be a number, got bool"):
        _checks.check_number(True, "lr")
    with pytest.raises(TypeError, match="steps must be an int, got float"):
        _checks.check_number(2.0, "steps", integer=True)
    with pytest.raises(ValueError, match="lr must be a finite number"):
        _checks.check_number(float("nan"), "lr")
    with pytest.raises(ValueError, match=r"lr must be > 0, got 0"):
        _checks.check_number(0, "lr", minimum=0, strict=True)
    with pytest.raises(ValueError, match=r"eps must be <= 1 \(pixel units\), got 8"):
        _checks.check_number(8, "eps", minimum=0, maximum=1, hint="pixel units")


def test_check_unit():
    assert _checks.check_unit(2) == (2, None, None)
    assert _checks.check_unit((2, 0, 1), (1, 3, 2, 2)) == (2, 0, 1)
    assert _checks.check_unit([1, 1, 1]) == (1, 1, 1)
    for bad in [(1, 2), "3", 1.0, (1, 2, 3.0), None]:
        with pytest.raises(TypeError, match="unit must be a channel index"):
            _checks.check_unit(bad)
    with pytest.raises(ValueError, match=r"needs a 4-D activation"):
        _checks.check_unit(0, (2, 3))


def test_class_scores():
    s = torch.arange(6.).reshape(2, 3)
    assert _checks.class_scores(s, torch.tensor([2, 0])).tolist() == [2.0, 3.0]
    assert _checks.class_scores(s) is s
    with pytest.raises(ValueError, match=r"target must be a class index in \[0, 2\].*got 3"):
        _checks.class_scores(s, torch.tensor([3, 0]))
    with pytest.raises(ValueError, match=r"model\(x\) returned 2 rows of scores for 3 images"):
        _checks.class_scores(s, torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match=r"must return class scores of shape \(N, K\)"):
        _checks.class_scores(torch.zeros(2, 3, 1), torch.tensor([0, 0]))


def test_check_target():
    assert _checks.check_target(3, 2).tolist() == [3, 3]
    assert _checks.check_target([1, 2], 2).dtype == torch.long
    assert _checks.check_target(torch.tensor(4), 3).tolist() == [4, 4, 4]
    with pytest.raises(TypeError, match="target must hold integer class indices"):
        _checks.check_target(torch.tensor([1.0, 2.0]), 2)
    with pytest.raises(ValueError, match=r"target must be an int or a tensor of shape \(3,\)"):
        _checks.check_target(torch.tensor([1, 2]), 3)
    with pytest.raises(TypeError, match="target must be a class index"):
        _checks.check_target(True, 1)
    assert set(runtime.__all__) >= {"get_device", "seed_everything", "is_fast", "fast",
                                    "progress"}
