"""Tests for helpers.taps: layer_names and features (forward-hook feature taps).

Expected activations are computed by calling the named submodules by hand, in the order of
EfficientNetLite.forward / MBConvBlock.forward / torchvision's BasicBlock.forward.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers.models import load_model
from helpers.taps import features, layer_names


@pytest.fixture(scope="module")
def model():
    return load_model("efficientnet_lite0")


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(0)
    return torch.rand(2, 3, 96, 96)


def _hook_counts(module: nn.Module):
    """Number of hooks of every kind on every submodule (the root included)."""
    kinds = ["_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs",
             "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called"]
    return {(name, kind): len(getattr(m, kind, {})) for name, m in module.named_modules()
            for kind in kinds}


def _manual(model, x):
    """Activations of a few layers, computed without hooks."""
    out = {}
    h = model.normalize(x)
    out["stem"] = h = model.stem(h)
    for s in range(4):
        for b, block in enumerate(model.stages[s]):
            if (s, b) == (3, 1):
                out["stages.3.1.expand"] = e = block.expand(h)
                out["stages.3.1.depthwise"] = block.depthwise(e)
            h = block(h)
    out["stages.3"] = h
    return out


# ------------------------------------------------------------------ layer_names

def test_layer_names_in_forward_order(model, x):
    """The order in which modules are entered during a forward pass equals layer_names()."""
    entered, handles = [], []
    try:
        for name, m in model.named_modules():
            if name:
                handles.append(m.register_forward_pre_hook(
                    lambda mod, inp, name=name: entered.append(name)))
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    assert entered == layer_names(model)
    assert "stages.3.1.depthwise" in entered and "" not in entered


def test_layer_names_small_sequential():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 2, 1)))
    assert layer_names(net) == ["0", "1", "2", "2.0"]
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        layer_names("vgg19")


# ------------------------------------------------------------------ values

def test_features_equal_manual_forward(model, x):
    wanted = ["stem", "stages.3.1.expand", "stages.3.1.depthwise", "stages.3"]
    with torch.no_grad():
        got = features(model, x, wanted)
        expected = _manual(model, x)
    assert list(got) == wanted
    for name in wanted:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=1e-6, msg=name)
    assert got["stages.3"].shape == (2, 80, 6, 6)


def test_single_name_and_duplicates(model, x):
    with torch.no_grad():
        one = features(model, x, "stem")
        two = features(model, x, ["stem", "stem"])
    assert list(one) == ["stem"] and list(two) == ["stem"]
    assert torch.equal(one["stem"], two["stem"])


def test_early_stop_gives_same_values_and_skips_the_rest(model, x, monkeypatch):
    calls = []
    original = model.classifier.forward
    monkeypatch.setattr(model.classifier, "forward", lambda t: calls.append(1) or original(t))
    wanted = ["stages.2", "stem"]  # order of the request need not be the forward order
    with torch.no_grad():
        early = features(model, x, wanted, stop_early=True)
        assert calls == []  # the classifier never ran
        full = features(model, x, wanted, stop_early=False)
        assert calls == [1]
    for name in wanted:
        assert torch.equal(early[name], full[name])
    with torch.no_grad():
        last = features(model, x, "classifier")
        torch.testing.assert_close(last["classifier"], model(x), rtol=0, atol=0)


# ------------------------------------------------------------------ state left as found

def test_no_hooks_left_after_success(model, x):
    before = _hook_counts(model)
    with torch.no_grad():
        features(model, x, ["stem", "stages.3.1.depthwise", "head"])
        features(model, x, ["stem", "classifier"], stop_early=False)
    assert _hook_counts(model) == before
    assert sum(before.values()) == 0


def test_no_hooks_left_when_forward_raises(model, x, monkeypatch):
    before = _hook_counts(model)

    def broken(t):
        raise ArithmeticError("boom inside stages.5")

    monkeypatch.setattr(model.stages[5], "forward", broken)
    with pytest.raises(ArithmeticError, match="boom"):
        with torch.no_grad():
            features(model, x, ["stem", "head"])  # stem's hook has fired before the error
    with pytest.raises(ValueError, match="x must have shape"):
        features(model, x.permute(0, 2, 3, 1), ["stem"])  # the model's own input check
    assert _hook_counts(model) == before


def test_state_untouched(model, x):
    x = x.clone()
    assert not x.requires_grad
    params_before = [p.requires_grad for p in model.parameters()]
    modes_before = [m.training for m in model.modules()]
    copy = x.clone()
    with torch.enable_grad():
        features(model, x, "stages.1")
        assert torch.is_grad_enabled()
    with torch.no_grad():
        out = features(model, x, "stages.1")["stages.1"]
        assert not torch.is_grad_enabled()
    assert out.grad_fn is None
    assert not x.requires_grad and x.grad is None and torch.equal(x, copy)
    assert [p.requires_grad for p in model.parameters()] == params_before
    assert [m.training for m in model.modules()] == modes_before


# ------------------------------------------------------------------ gradients

def test_gradient_flows_to_input(model, x):
    xa = x[:1].clone().requires_grad_()
    act = features(model, xa, "stages.2")["stages.2"]
    assert act.requires_grad
    act[:, 5].mean().backward()

    xb = x[:1].clone().requires_grad_()
    h = model.stem(model.normalize(xb))
    for s in range(3):
        h = model.stages[s](h)
    h[:, 5].mean().backward()
    assert xa.grad.abs().sum() > 0
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-8)


def test_detach(model, x):
    xa = x[:1].clone().requires_grad_()
    act = features(model, xa, ["stem", "stages.0"], detach=True)
    assert not act["stem"].requires_grad and act["stem"].grad_fn is None
    assert xa.requires_grad  # the caller's flag is left alone


# ------------------------------------------------------------------ errors

def test_unknown_layer_name_suggests_close_matches(model, x):
    with pytest.raises(ValueError) as info:
        features(model, x, ["stem", "stages.3.1.depthwse"])
    message = str(info.value)
    assert "layers" in message and "'stages.3.1.depthwse'" in message
    assert "'stages.3.1.depthwise'" in message  # difflib suggestion
    assert "layer_names(model)" in message
    with pytest.raises(ValueError, match=r"layers contains 'conv1'.*layer_names"):
        features(model, x, "conv1")
    with pytest.raises(ValueError, match="layers contains ''"):
        features(model, x, "")
    with pytest.raises(ValueError, match="layers must name at least one layer"):
        features(model, x, [])
    with pytest.raises(TypeError, match="layers must contain layer names"):
        features(model, x, [3])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        features(model, x.numpy(), "stem")


def test_layer_not_called_is_reported():
    net2 = nn.Module()
    net2.used = nn.Linear(4, 3)
    net2.unused = nn.ReLU()
    net2.forward = lambda t: net2.used(t)
    with pytest.raises(RuntimeError, match=r"\['unused'\].*not called"):
        features(net2, torch.rand(2, 4), ["used", "unused"])
    assert _hook_counts(net2)[("unused", "_forward_hooks")] == 0


# ------------------------------------------------------------------ other models

def test_small_sequential():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))
    x = torch.randn(3, 6, requires_grad=True)
    acts = features(net, x, ["1", "0"])
    torch.testing.assert_close(acts["0"], net[0](x))
    torch.testing.assert_close(acts["1"], torch.tanh(net[0](x)))
    acts["1"].sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_torchvision_resnet_reused_relu_reports_first_call():
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        acts = features(net, x, ["layer1.0.relu", "layer1.0", "maxpool"])
        block = net.layer1[0]
        h = acts["maxpool"]
        torch.testing.assert_close(acts["maxpool"], net.maxpool(net.relu(net.bn1(net.conv1(x)))))
        torch.testing.assert_close(acts["layer1.0.relu"], torch.relu(block.bn1(block.conv1(h))))
        torch.testing.assert_close(acts["layer1.0"], block(h))
    assert sum(_hook_counts(net).values()) == 0


def test_frozen_restores_modes_and_flags_also_on_error():
    from helpers.taps import frozen

    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(), nn.Linear(2, 1)).train()
    net[1].eval()                                       # a model that mixes modes on purpose
    net[2].weight.requires_grad_(False)
    with pytest.raises(KeyError):
        with frozen(net):
            assert not any(m.training for m in net.modules())
            assert not any(p.requires_grad for p in net.parameters())
            raise KeyError("boom")
    assert [m.training for m in net.modules()] == [True, True, False, True]
    assert [p.requires_grad for p in net.parameters()] == [True, True, False, True]
    black_box = lambda x: x  # noqa: E731 - a plain callable passes through unchanged
    with frozen(black_box) as m:
        assert m is black_box
    with pytest.raises(TypeError, match="model must be a torch.nn.Module or a callable"):
        with frozen(3):
            pass


# ------------------------------------------------------------------------------------------------
# the shared plumbing: resolve_layer, capture, forward_hooks, eval_mode, unit_value
# ------------------------------------------------------------------------------------------------
def _seq():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.Flatten())


def test_resolve_layer_by_name_and_by_module():
    from helpers.taps import resolve_layer

    net = _seq()
    assert resolve_layer(net, "1") is net[1]
    assert resolve_layer(net, net[2]) is net[2]
    with pytest.raises(ValueError, match=r"layer 'O' is not a layer of this Sequential"):
        resolve_layer(net, "O")
    with pytest.raises(ValueError, match="not a layer of this model"):
        resolve_layer(net, nn.ReLU())                    # a module, but not one of net's
    with pytest.raises(ValueError, match="not a layer of this model"):
        resolve_layer(net, net)                          # the model itself is no layer
    with pytest.raises(TypeError, match=r"layer must be a layer name \(str"):
        resolve_layer(net, 1)
    with pytest.raises(ValueError, match=r"target_layer 'x' is not a layer"):
        resolve_layer(net, "x", "target_layer")


def test_capture_records_every_pass_and_removes_its_hooks():
    from helpers.taps import capture

    net = _seq()
    x = torch.rand(2, 3, 8, 8)
    with capture(net, ["0", net[1]]) as cap:
        assert sum(_hook_counts(net).values()) == 2
        out, acts = cap.run(x)
        assert list(acts) == ["0", "1"]                  # a module is keyed by its dotted name
        torch.testing.assert_close(acts["1"], net[1](net[0](x)))
        torch.testing.assert_close(out, net(x))
        out2, acts2 = cap.run(x * 0.5, stop_early=True)
        assert out2 is None                              # the pass ended after layer "1"
        torch.testing.assert_close(acts2["0"], net[0](x * 0.5))
    assert sum(_hook_counts(net).values()) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with capture(net, "2"):
            raise RuntimeError("boom")
    assert sum(_hook_counts(net).values()) == 0
    with pytest.raises(ValueError, match="not a layer"):
        with capture(net, ["0", "nope"]):
            pass
    assert sum(_hook_counts(net).values()) == 0          # the first hook did not survive either


def test_forward_hooks_replace_outputs_and_are_removed_on_error():
    from helpers.taps import forward_hooks

    net = _seq()
    x = torch.rand(1, 3, 8, 8)
    with forward_hooks([(net[1], lambda m, i, o: i[0])]) as n:   # ReLU -> identity
        assert n == 1
        torch.testing.assert_close(net(x), net[3](net[2](net[0](x))))
    assert sum(_hook_counts(net).values()) == 0

    def boom(module, inputs, output):
        raise ValueError("inside the hook")

    with pytest.raises(ValueError, match="inside the hook"):
        with forward_hooks([(net[0], boom), (net[2], boom)]):
            net(x)
    assert sum(_hook_counts(net).values()) == 0


def test_eval_mode_restores_each_submodule():
    from helpers.taps import eval_mode

    net = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(), nn.BatchNorm2d(3)).train()
    net[2].eval()                                         # frozen batch norm while fine-tuning
    with pytest.raises(KeyError):
        with eval_mode(net):
            assert not any(m.training for m in net.modules())
            raise KeyError("boom")
    assert [m.training for m in net.modules()] == [True, True, True, False]
    f = lambda x: x  # noqa: E731
    with eval_mode(f) as g:
        assert g is f


def test_unit_value_channel_mean_and_neuron():
    from helpers.taps import unit_value

    a = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(unit_value(a, 1), a[:, 1].mean(dim=(1, 2)))
    torch.testing.assert_close(unit_value(a, (2, 3, 4)), a[:, 2, 3, 4])
    with pytest.raises(ValueError, match=r"channel must be in \[0, 2\]"):
        unit_value(a, 3)
    with pytest.raises(ValueError, match=r"position \(4, 0\) is outside the 4 x 5"):
        unit_value(a, (0, 4, 0))
    with pytest.raises(TypeError, match=r"unit must be a channel index c \(int\) or a neuron"):
        unit_value(a, (0, 1))
    with pytest.raises(TypeError, match="unit must be"):
        unit_value(a, True)
