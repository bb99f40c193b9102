"""The model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018): a method that explains the *model* must change when its weights are randomised."""
from __future__ import annotations

import copy
from typing import Iterator, List, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .._checks import check_model, check_tensor
from ..taps import LayerArg, resolve_layer

__all__ = ["randomize_layers", "cascading_randomization", "rank_correlation"]


def _layer_names(model: nn.Module, layers: Union[LayerArg, Sequence[LayerArg]]) -> List[str]:
    """``layers`` (a name / submodule or a list of them) as checked dotted names of ``model``."""
    check_model(model)
    given = [layers] if isinstance(layers, (str, nn.Module)) else list(layers)
    if not given:
        raise ValueError("layers must name at least one layer, got an empty list")
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(resolve_layer(model, layer, "layers"))] for layer in given]


def randomize_layers(model: nn.Module, *, layers: Union[LayerArg, Sequence[LayerArg]],
                     seed: int = 0, inplace: bool = False) -> nn.Module:
    """Replace the learned parameters of some layers by random ones (model randomisation test).

    Every parameter tensor inside the named layers (weights, biases, BatchNorm scales and shifts)
    is redrawn from a Gaussian with that tensor's own mean and standard deviation: the learned
    *structure* is destroyed, the *scale* of the activations is kept (so nothing explodes).
    Buffers (BatchNorm running statistics) are kept.  Returns a randomised deep copy (the
    original is untouched) unless ``inplace=True``.  Random numbers come from a private generator
    seeded with ``seed``.

    Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018: a saliency method that
    explains the *model* must change when the model's weights are randomised.

    >>> from helpers.testing.nets import TinyCNN
    >>> net = TinyCNN(seed=0)
    >>> rnd = randomize_layers(net, layers=["classifier"])
    >>> torch.equal(rnd.conv1.weight, net.conv1.weight), torch.equal(rnd.classifier.weight, net.classifier.weight)
    (True, False)
    """
    names = _layer_names(model, layers)
    target = model if inplace else copy.deepcopy(model)
    gen = torch.Generator().manual_seed(int(seed))
    seen = set()
    with torch.no_grad():
        for name in names:
            for p in target.get_submodule(name).parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                ref = p.detach().to("cpu", torch.float64)
                mean = float(ref.mean())
                std = float(ref.std()) if ref.numel() > 1 else abs(mean) + 1e-3
                new = torch.randn(p.shape, generator=gen, dtype=torch.float64) * std + mean
                p.copy_(new.to(p.dtype))
    return target


def cascading_randomization(model: nn.Module, *, layers: Sequence[LayerArg], seed: int = 0
                            ) -> Iterator[Tuple[str, nn.Module]]:
    """Randomise ``layers`` one after the other, cumulatively; yield (layer name, model) each time.

    Give the layers from the output down (e.g. ``["classifier", "head", "stages.6", ...]``):
    after step k, layers 0..k are all random -- the *cascading* randomisation of Adebayo et al.
    (2018).  One deep copy of the model is made and randomised further at every step, so use
    each yielded model before asking for the next.  The original model is not changed.  The
    layer names are checked when the function is called, before the first step.

    >>> from helpers.testing.nets import TinyCNN
    >>> [name for name, _ in cascading_randomization(TinyCNN(seed=0), layers=["classifier", "conv3"])]
    ['classifier', 'conv3']
    """
    names = _layer_names(model, layers)

    def cascade() -> Iterator[Tuple[str, nn.Module]]:
        work = copy.deepcopy(model)
        for k, name in enumerate(names):
            randomize_layers(work, layers=[name], seed=int(seed) + k, inplace=True)
            yield name, work

    return cascade()


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between two maps per item (``scipy.stats.spearmanr``).

    ``a`` and ``b`` have the same shape (N, ...); each item is flattened and the correlation of
    the *ranks* of its values is computed: 1 when both maps order the pixels the same way, about
    0 for unrelated maps.  Rank correlation ignores any monotone rescaling, so maps on different
    scales can be compared.  Returns a float64 tensor (N,) on the CPU.

    >>> rank_correlation(torch.tensor([[1., 2., 3.]]), torch.tensor([[10., 20., 300.]]))
    tensor([1.], dtype=torch.float64)
    """
    from scipy.stats import spearmanr

    check_tensor(a, "a", floating=True)
    check_tensor(b, "b", floating=True)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"a and b must have the same shape (N, ...), got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    fa = a.detach().to("cpu", torch.float64).flatten(1).numpy()
    fb = b.detach().to("cpu", torch.float64).flatten(1).numpy()
    vals = [spearmanr(u, v).statistic for u, v in zip(fa, fb)]
    return torch.tensor(vals, dtype=torch.float64)
