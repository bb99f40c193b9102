"""Last-layer features side by side: PCA, nearest neighbours, t-SNE.

Feature vectors -- one row of an (N, D) matrix ``X`` per image, e.g. the 1280-d pooled head of
EfficientNet-Lite (:func:`helpers.activations.extract_features`) -- are compared by their nearest
neighbours (:func:`nearest_neighbors`, Euclidean or cosine) and drawn in 2-D with a linear
(:func:`pca`) or a neighbourhood-preserving (:func:`tsne`) embedding.

>>> idx, dist = nearest_neighbors(torch.tensor([[0.0], [1.0], [5.0]]), [0], 1)
>>> idx.tolist(), dist.tolist()
([[1]], [[1.0]])
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from .._checks import _describe, check_choice, check_number, check_positive_int, check_tensor

__all__ = ["pca", "nearest_neighbors", "tsne"]


def _check_matrix(X, name: str) -> torch.Tensor:
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    check_tensor(X, name, ndim=2, floating=True)
    return X


def pca(X: torch.Tensor, n_components: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Principal component analysis of the rows of ``X``.

    With the centred data :math:`\\tilde X = X - \\bar x` and its singular value decomposition
    :math:`\\tilde X = U S V^\\top`, the principal components are the first ``n_components``
    rows of :math:`V^\\top` (the eigenvectors of the covariance
    :math:`\\tilde X^\\top \\tilde X / (N - 1)` with the largest eigenvalues), the projections
    are :math:`Z = \\tilde X V_{:, :k}` and the explained variances are :math:`S^2 / (N - 1)`.

    Singular vectors are defined up to sign; here each component is flipped so that its entry
    of largest absolute value is positive (scikit-learn's convention since version 1.5).

    Args:
        X: (N, D) float tensor (or array), N >= 2.
        n_components: k, at most min(N, D).

    Returns:
        ``(Z, components, explained_variance)``: (N, k) projections, (k, D) components with
        orthonormal rows, (k,) variances in decreasing order -- all in ``X``'s dtype.

    >>> Z, comps, var = pca(torch.randn(100, 5), 2)
    >>> Z.shape, comps.shape, var.shape
    (torch.Size([100, 2]), torch.Size([2, 5]), torch.Size([2]))
    """
    X = _check_matrix(X, "X")
    n, d = X.shape
    if n < 2:
        raise ValueError(f"X must have at least 2 rows (samples), got {_describe(X)}")
    check_positive_int(n_components, "n_components")
    if n_components > min(n, d):
        raise ValueError(f"n_components must be at most min(N, D) = {min(n, d)}, got {n_components}")
    work = X.detach().to(torch.float64)
    centred = work - work.mean(dim=0, keepdim=True)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    comps = vh[:n_components]
    biggest = comps.abs().argmax(dim=1)
    signs = torch.sign(comps[torch.arange(n_components), biggest])
    signs[signs == 0] = 1
    comps = comps * signs[:, None]
    Z = centred @ comps.T
    var = s[:n_components] ** 2 / (n - 1)
    return Z.to(X.dtype), comps.to(X.dtype), var.to(X.dtype)


def nearest_neighbors(X: torch.Tensor, queries, k: int, *, metric: str = "euclidean",
                      exclude_self: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` rows of ``X`` closest to each query row, nearest first.

    Distances:

    * ``"euclidean"``: :math:`d(a, b) = \\lVert a - b \\rVert_2`;
    * ``"cosine"``: :math:`d(a, b) = 1 - \\frac{a \\cdot b}{\\lVert a\\rVert \\lVert b\\rVert}`
      (a zero vector has cosine 0 with everything).

    ``queries`` are row *indices* of ``X`` (an int, a list or an int tensor).  With
    ``exclude_self=True`` the query's own row is never among its neighbours (an exact duplicate
    at another index still is, at distance 0).  Ties go to the smaller index.  Computed in
    float64.

    Returns:
        ``(indices, distances)``: int64 (Q, k) and (Q, k) in ``X``'s dtype, distances ascending,
        on ``X``'s device.

    >>> X = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
    >>> idx, dist = nearest_neighbors(X, [2], k=2)
    >>> idx.tolist(), dist.tolist()
    ([[3, 1]], [[0.5, 2.0]])
    """
    X = _check_matrix(X, "X")
    check_choice(metric, "metric", ["euclidean", "cosine"])
    if isinstance(queries, int) and not isinstance(queries, bool):
        queries = [queries]
    q = torch.as_tensor(queries)
    if q.ndim != 1 or q.is_floating_point() or q.dtype == torch.bool:
        raise ValueError(f"queries must be a 1-D list/tensor of row indices of X, got {_describe(queries)}")
    n = X.shape[0]
    if q.numel() and (int(q.min()) < 0 or int(q.max()) >= n):
        raise ValueError(f"queries must be row indices in 0..{n - 1}, got values in "
                         f"[{int(q.min())}, {int(q.max())}]")
    check_positive_int(k, "k")
    available = n - 1 if exclude_self else n
    if k > available:
        raise ValueError(f"k must be at most {available} (X has {n} rows"
                         f"{', minus the query itself' if exclude_self else ''}), got {k}")
    work = X.detach().to(torch.float64)
    q = q.to(device=work.device, dtype=torch.int64)
    Q = work[q]
    if metric == "euclidean":
        dist = torch.cdist(Q, work, compute_mode="donot_use_mm_for_euclid_dist")
    else:
        a = Q / Q.norm(dim=1, keepdim=True).clamp_min(1e-300)
        b = work / work.norm(dim=1, keepdim=True).clamp_min(1e-300)
        dist = 1.0 - a @ b.T
    if exclude_self:
        dist[torch.arange(q.numel(), device=dist.device), q] = float("inf")
    order = torch.sort(dist, dim=1, stable=True).indices[:, :k]
    return order, dist.gather(1, order).to(X.dtype)


def tsne(X: torch.Tensor, *, perplexity: float = 30.0, seed: int = 0,
         pca_components: Optional[int] = 50, num_threads: Optional[int] = 1) -> torch.Tensor:
    """2-D t-SNE embedding of the rows of ``X`` (scikit-learn's ``TSNE``), as an (N, 2) tensor.

    t-SNE (van der Maaten & Hinton, JMLR 2008) places points in 2-D so that each point's
    neighbours in the high-dimensional space stay its neighbours: it matches the distributions
    :math:`p_{j|i} \\propto \\exp(-\\lVert x_i - x_j\\rVert^2 / 2\\sigma_i^2)` (the bandwidths
    set by ``perplexity``, roughly the number of neighbours that count) with Student-t
    similarities in the plane.  Clusters and neighbourhoods are meaningful; distances *between*
    clusters and cluster sizes are not.

    As usual, the data are first reduced to ``pca_components`` dimensions with :func:`pca`
    (``None`` skips that); initialisation is PCA and ``seed`` fixes the rest, so the result is
    deterministic on a given machine.  ``perplexity`` is capped at (N - 1) / 3.

    ``num_threads`` limits scikit-learn's OpenMP / BLAS threads while t-SNE runs (restored
    afterwards; ``None`` leaves them alone).  The default 1 is deliberate: for the few hundred
    points of the course one thread is as fast on an idle machine, and on a busy 2-core machine
    it was measured 4x faster than two (0.65 s against 2.6 s for 240 points; same result).

    >>> tsne(torch.randn(40, 10), perplexity=5).shape
    torch.Size([40, 2])
    """
    from sklearn.manifold import TSNE

    X = _check_matrix(X, "X")
    n = X.shape[0]
    if n < 4:
        raise ValueError(f"X must have at least 4 rows for t-SNE, got {_describe(X)}")
    data = X.detach().to(torch.float64)
    if pca_components is not None and pca_components < min(data.shape):
        data = pca(data, pca_components)[0]
    perplexity = min(check_number(perplexity, "perplexity", minimum=0, strict=True), (n - 1) / 3)
    if num_threads is not None:
        check_positive_int(num_threads, "num_threads")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=num_threads):
        emb = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                   random_state=seed).fit_transform(data.cpu().numpy())
    return torch.from_numpy(np.ascontiguousarray(emb)).to(device=X.device, dtype=torch.float32)
