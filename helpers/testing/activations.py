"""Test aids for assignment 02 (activations), shared by its test cells and ``tests/``.

The four exercises are ``receptive_field(layers)``, ``top_k_patches(images, activations, k, rf,
fill=0.5)``, ``pca(X, n_components)`` and ``nearest_neighbors(X, queries, k, metric="euclidean",
exclude_self=True)``, written by the student.  The test cells check them through the functions
here, so that a test cell reads as the test it is:

* ``student_*`` -- call the student's function with the shortcuts forbidden (the public reference
  functions of :mod:`helpers.activations` and the library function that does the whole job),
  check that the inputs are left alone and that the result has the right structure; a crash of
  the student's code becomes a failed test with a message;
* ``check_*`` -- a student call compared with the expected answer: hand-derived numbers, the
  reference implementation or scikit-learn; when the answer is wrong, the usual slip is named
  ("off by one", "sorted smallest first", "not centred", "returned the query itself", ...);
* :func:`random_chains`, :func:`pca_data`, :func:`labelled_images` -- deterministic inputs.

Every check raises ``AssertionError`` with a sentence for the student; nothing is printed.
Expected values are computed *before* the student's function runs (the reference functions are
forbidden while it runs).

Example
-------
>>> def receptive_field(layers):                   # a student's answer
...     size, jump, start = 1, 1, 0
...     for k, s, p in layers:
...         before = p[0] if isinstance(p, tuple) else p
...         size, start, jump = size + (k - 1) * jump, start - before * jump, jump * s
...     return size, jump, start
>>> check_receptive_field(receptive_field, [(3, 1, 1)] * 3, (7, 1, -3), "a VGG stage")
"""
from __future__ import annotations

import random
from typing import Callable, Iterator, List, Sequence, Tuple

import torch

from .. import activations as ref
from . import assert_close, assert_inputs_unchanged, assert_shape, call_student, forbid

__all__ = ["random_chains", "student_receptive_field", "check_size_jump", "check_receptive_field",
           "check_measured_receptive_field", "student_top_k_patches", "check_top_k_locations",
           "check_top_k_patches", "labelled_images", "pca_data", "student_pca",
           "check_pca_against_sklearn", "check_pca_convention", "check_pca_like_reference",
           "student_nearest_neighbors", "check_neighbors", "check_neighbors_against_sklearn"]

#: Public functions a student's answer may not call, per exercise.
FORBIDDEN_RF = ((ref, "receptive_field"), (ref, "empirical_receptive_field"), (ref, "layer_specs"))
FORBIDDEN_TOP_K = ((ref, "top_k_patches"), (ref, "receptive_field_patch"))
FORBIDDEN_PCA = ("sklearn.decomposition.PCA", "torch.pca_lowrank", (ref, "pca"), (ref, "tsne"))
FORBIDDEN_NN = ("sklearn.neighbors.NearestNeighbors", (ref, "nearest_neighbors"))


def _structure(out, n: int, what: str):
    if not (isinstance(out, tuple) and len(out) == n):
        raise AssertionError(f"{what}, got {type(out).__name__}"
                             + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    return out


# ----------------------------------------------------------------------------------------------
# Exercise 1: receptive_field
# ----------------------------------------------------------------------------------------------
def random_chains(seed: int, count: int, *, pairs: bool = False,
                  max_layers: int = 7) -> Iterator[List[tuple]]:
    """``count`` random chains of 1..``max_layers`` ``(kernel, stride, padding)`` tuples; with
    ``pairs`` the padding is a pair ``(before, after)``.

    >>> next(random_chains(0, 1))
    [(5, 3, 0), (3, 3, 1), (3, 3, 1), (7, 1, 1), (3, 1, 0), (7, 2, 1), (3, 1, 0)]
    """
    rng = random.Random(seed)
    for _ in range(count):
        chain = []
        for _ in range(rng.randint(1, max_layers)):
            k = rng.choice([1, 2, 3, 5, 7])
            s = rng.choice([1, 1, 2, 3])
            p = (rng.randint(0, k // 2 + 1), rng.randint(0, k // 2 + 1)) if pairs \
                else rng.randint(0, k // 2)
            chain.append((k, s, p))
        yield chain


def student_receptive_field(fn: Callable, layers: Sequence) -> Tuple:
    """``fn(layers)`` without the reference helpers, as a triple (size, jump, start)."""
    with forbid(*FORBIDDEN_RF, name="receptive_field", reason="use the recurrences"):
        out = call_student(fn, [tuple(layer) for layer in layers])
    if out is None:
        raise AssertionError("receptive_field returned None: did you forget the `return` statement?")
    try:
        size, jump, start = out
    except (TypeError, ValueError):
        raise AssertionError(f"receptive_field should return three numbers (size, jump, start), "
                             f"got {out!r}") from None
    return size, jump, start


def check_size_jump(fn: Callable, layers: Sequence, size: int, jump: int, what: str) -> None:
    """The size and jump of ``fn(layers)`` (the start is checked by :func:`check_receptive_field`)."""
    got = student_receptive_field(fn, layers)
    msg = (f"receptive_field({layers}) ({what}): expected size {size} and jump {jump}, got size "
           f"{got[0]} and jump {got[1]}")
    if got[0] in (size - 1, size + 1) and got[1] == jump:
        msg += ". Off by one: start from r0 = 1 (one pixel) and add (k - 1) * J for every layer"
    elif got[1] == jump and got[0] != size:
        msg += (". The jump is right but the size is not: add (k - 1) times the jump *before* this "
                "layer (update the jump after the size)")
    elif got[1] != jump:
        msg += ". The jump is the product of the strides so far"
    assert (got[0], got[1]) == (size, jump), msg


def check_receptive_field(fn: Callable, layers: Sequence, expected: Sequence[int], what: str
                          ) -> None:
    """The whole answer (size, jump, start) of ``fn(layers)``."""
    got = student_receptive_field(fn, layers)
    msg = (f"receptive_field({layers}) ({what}): expected (size, jump, start) = "
           f"{tuple(expected)}, got {tuple(got)}")
    if tuple(got[:2]) == tuple(expected[:2]) and got[2] != expected[2]:
        if got[2] == 0:
            msg += ". The start is 0: padding must move it (start -= before * jump)"
        else:
            msg += (". Only the padding *before* the input moves the start, times the jump before "
                    "the layer; for a pair (before, after) use before")
    assert tuple(got) == tuple(expected), msg


def check_measured_receptive_field(fn: Callable, model, layer: str, side: int) -> None:
    """``fn`` on the chain of ``model`` up to ``layer`` against the field measured with input
    gradients on a ``side`` x ``side`` image (:func:`helpers.activations.empirical_receptive_field`)."""
    chain = [(s.kernel, s.stride, s.padding) for s in ref.layer_specs(model, layer=layer)]
    measured = ref.empirical_receptive_field(model, layer=layer, input_size=side)
    check_receptive_field(fn, chain, measured, f"{type(model).__name__} up to {layer}, measured "
                                               f"with gradients")


# ----------------------------------------------------------------------------------------------
# Exercise 2: top_k_patches
# ----------------------------------------------------------------------------------------------
def student_top_k_patches(fn: Callable, images: torch.Tensor, activations: torch.Tensor, k: int,
                          rf, **options) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``fn(images, activations, k, rf, **options)`` without the reference helpers, inputs left
    alone; returns ``(patches, values, locations)``."""
    with forbid(*FORBIDDEN_TOP_K, name="top_k_patches"), \
            assert_inputs_unchanged(images=images, activations=activations):
        out = call_student(fn, images, activations, k, rf, **options)
    return _structure(out, 3, "top_k_patches should return a tuple (patches, values, locations)")


def check_top_k_locations(fn: Callable, images: torch.Tensor, activations: torch.Tensor, k: int,
                          rf, what: str) -> None:
    """Values and locations (int64 (k, 3) rows (n, i, j)) against the reference, with hints."""
    _, e_values, e_where = ref.top_k_patches(images, activations, k, rf)
    one_each = ref.top_k_patches(images, activations, min(k, images.shape[0]), rf,
                                 one_per_image=True)[2].tolist()
    _, values, where = student_top_k_patches(fn, images, activations, k, rf)
    assert_shape(values, (k,), name=f"values ({what})")
    assert_shape(where, (k, 3), name=f"locations ({what})")
    assert where.dtype == torch.int64, f"locations should be an int64 tensor, got {where.dtype}"
    got, expected = [[int(v) for v in row] for row in where.tolist()], e_where.tolist()
    if got != expected:
        hint = ""
        if got == expected[::-1] or (len(values) > 1 and float(values[0]) < float(values[-1])):
            hint = ": they are sorted smallest first; return the largest activation first"
        elif float(values.max()) < float(e_values.min()):
            hint = (f": your values (largest {float(values.max()):.4g}) are smaller than every "
                    f"expected one; take the k *largest* activations")
        elif got == one_each and got != expected:
            hint = (": you took one unit per image (each image's maximum); take the k largest "
                    "values over all images and positions together")
        elif sorted(got) != sorted(expected) and {tuple(r[:1]) for r in got} == \
                {tuple(r[:1]) for r in expected}:
            hint = (": the images are right but not the positions: a flat index f of an (h, w) map "
                    "is row f // w, column f % w")
        raise AssertionError(f"top_k_patches on {what}: expected locations (n, i, j) {expected}, "
                             f"got {got}{hint}")
    assert_close(values, e_values, name=f"values ({what})")


def check_top_k_patches(fn: Callable, images: torch.Tensor, activations: torch.Tensor, k: int,
                        rf, what: str, **options) -> None:
    """The patches against the reference (same options, e.g. ``fill``)."""
    expected = ref.top_k_patches(images, activations, k, rf, **options)[0]
    patches = student_top_k_patches(fn, images, activations, k, rf, **options)[0]
    assert_close(patches, expected, name=f"patches ({what})",
                 hint="unit (i, j) sees rows start + i*jump ... + size - 1 (columns likewise); "
                      "pixels outside the image are fill")


def labelled_images(n: int, channels: int, side: int) -> torch.Tensor:
    """Images (n, channels, side, side) whose pixel values say where they come from:
    ``n*1000 + c*100 + y*10 + x``.

    >>> labelled_images(2, 3, 8)[1, 2, 3, 4].item()
    1234.0
    """
    n_, c_, y_, x_ = torch.meshgrid(torch.arange(n), torch.arange(channels), torch.arange(side),
                                    torch.arange(side), indexing="ij")
    return (n_ * 1000 + c_ * 100 + y_ * 10 + x_).float()


# ----------------------------------------------------------------------------------------------
# Exercise 3: pca
# ----------------------------------------------------------------------------------------------
def pca_data(n: int, d: int, seed: int, offset: float = 3.0) -> torch.Tensor:
    """Correlated float64 data (n, d) with mean about ``offset``: a random Gaussian matrix times a
    random mixing matrix."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ \
        torch.randn(d, d, generator=g, dtype=torch.float64) + offset


def student_pca(fn: Callable, X: torch.Tensor, k: int) -> Tuple:
    """``fn(X, k)`` without PCA from a library, ``X`` left alone, shapes checked."""
    with forbid(*FORBIDDEN_PCA, name="pca"), assert_inputs_unchanged(X=X):
        out = call_student(fn, X, k)
    Z, C, var = _structure(out, 3, "pca should return a tuple (Z, components, explained_variance)")
    n, d = X.shape
    assert_shape(Z, (n, k), name=f"Z for X of shape {(n, d)}, k={k}")
    assert_shape(C, (k, d), name=f"components for X of shape {(n, d)}, k={k} (one component per row)")
    assert_shape(var, (k,), name="explained_variance")
    return Z, C, var


def check_pca_against_sklearn(fn: Callable, X: torch.Tensor, k: int, what: str) -> None:
    """Components and projections equal scikit-learn's up to the sign of each component;
    explained variances equal."""
    import sklearn.decomposition

    sk = sklearn.decomposition.PCA(n_components=k, svd_solver="full").fit(X.numpy())
    sk_Z, sk_C = torch.from_numpy(sk.transform(X.numpy())), torch.from_numpy(sk.components_)
    raw = torch.linalg.svd(X, full_matrices=False)[2][:k]         # what PCA without centring finds
    Z, C, var = student_pca(fn, X, k)
    signs = torch.sign((C.double() * sk_C).sum(dim=1))                  # compare up to sign
    signs[signs == 0] = 1
    if torch.allclose(C.double().abs(), raw.abs(), atol=1e-6) and \
            not torch.allclose(raw.abs(), sk_C.abs(), atol=1e-6):
        raise AssertionError(f"pca on {what}: your components are the singular vectors of X "
                             f"itself; subtract the mean row (centre the data) before the SVD")
    assert_close(C.double(), sk_C * signs[:, None], name=f"components on {what} (compared up to "
                 f"sign)", atol=1e-6, hint="the components are the first k rows of V^T from the "
                                          "SVD of the centred data, largest singular value first")
    assert_close(Z.double(), sk_Z * signs[None, :], name=f"Z on {what} (compared up to sign)",
                 atol=1e-6)
    assert_close(var.double(), torch.from_numpy(sk.explained_variance_),
                 name=f"explained_variance on {what}", atol=1e-6, rtol=1e-6, hint="S**2 / (N - 1)")


def check_pca_convention(fn: Callable, X: torch.Tensor, k: int, what: str) -> None:
    """Each component's largest |entry| is positive, components orthonormal, Z = centred X
    projected on the components returned."""
    Z, C, _ = student_pca(fn, X, k)
    C, Z = C.double(), Z.double()
    big = C[torch.arange(k), C.abs().argmax(dim=1)]
    assert bool((big > 0).all()), (
        f"pca on {what}: the entry of largest absolute value of every component should be "
        f"positive, got {[round(float(v), 4) for v in big]}: multiply each row by the sign of its "
        f"largest-|.| entry")
    assert_close(C @ C.T, torch.eye(k, dtype=torch.float64), name=f"components @ components.T on "
                 f"{what}", atol=1e-6, hint="the components must be orthonormal rows")
    assert_close(Z, (X - X.mean(dim=0)).double() @ C.T, name=f"Z on {what}", atol=1e-6,
                 hint="Z must be the centred data projected on the components you return: "
                      "(X - mean) @ components.T, after flipping the signs")


def check_pca_like_reference(fn: Callable, X: torch.Tensor, k: int, what: str, *,
                             atol: float = 1e-6) -> None:
    """Everything, signs included, against :func:`helpers.activations.pca`."""
    eZ, eC, evar = ref.pca(X, k)
    Z, C, var = student_pca(fn, X, k)
    assert_close(C, eC, name=f"components on {what} (with the sign convention)", atol=atol)
    assert_close(Z, eZ, name=f"Z on {what} (with the sign convention)", atol=atol)
    assert_close(var, evar, name=f"explained_variance on {what}", atol=atol, rtol=1e-4)


# ----------------------------------------------------------------------------------------------
# Exercise 4: nearest_neighbors
# ----------------------------------------------------------------------------------------------
def student_nearest_neighbors(fn: Callable, X: torch.Tensor, queries, k: int, **options) -> Tuple:
    """``fn(X, queries, k, **options)`` without a library search, ``X`` left alone, shapes and
    dtype checked; returns ``(indices, distances)``."""
    with forbid(*FORBIDDEN_NN, name="nearest_neighbors"), assert_inputs_unchanged(X=X):
        out = call_student(fn, X, queries, k, **options)
    idx, dist = _structure(out, 2, "nearest_neighbors should return a tuple (indices, distances)")
    q = len(queries)
    assert_shape(idx, (q, k), name=f"indices for {q} queries, k={k}")
    assert_shape(dist, (q, k), name=f"distances for {q} queries, k={k}")
    assert idx.dtype == torch.int64, f"indices should be an int64 tensor, got {idx.dtype}"
    return idx, dist


def _neighbour_hint(dist: torch.Tensor, queries: List[int], got: List[List[int]],
                    exclude_self: bool) -> str:
    """The usual slip behind wrong neighbours: farthest first, or the query itself returned."""
    d = torch.as_tensor(dist).detach().double()
    if d.ndim == 2 and d.shape[-1] > 1 and bool((d[:, 1:] <= d[:, :-1]).all()) \
            and bool((d[:, 1:] < d[:, :-1]).any()):
        return ("; the neighbours are sorted farthest first: return the nearest first (e.g. "
                "torch.topk(..., largest=False))")
    if exclude_self and any(q in r for q, r in zip(queries, got)):
        return ("; a query's own row is among its neighbours: with exclude_self=True leave the "
                "query's own row out, by its index (a computed distance to itself need not be "
                "exactly 0)")
    return ""


def check_neighbors(fn: Callable, X: torch.Tensor, queries, k: int, expected: List[List[int]],
                    what: str, **options) -> Tuple:
    """The neighbour indices of ``fn(X, queries, k, **options)`` equal ``expected``; names the
    usual slips (the query itself returned, a duplicate of the query dropped).  Returns the
    student's ``(indices, distances)``."""
    idx, dist = student_nearest_neighbors(fn, X, queries, k, **options)
    got = idx.tolist()
    if got != expected:
        rows = torch.as_tensor(queries).tolist()
        hint = _neighbour_hint(dist, rows, got, options.get("exclude_self", True))
        if not hint and options.get("exclude_self", True) and any(
                bool((X[r] == X[q]).all()) and r != q and r not in g
                for q, g, e in zip(rows, got, expected) for r in e):
            hint = ("; a row identical to the query is missing: leave out the query's own index, "
                    "not every point at distance 0")
        raise AssertionError(f"nearest_neighbors ({what}): expected neighbours {expected}, got "
                             f"{got}{hint}")
    return idx, dist


def check_neighbors_against_sklearn(fn: Callable, X: torch.Tensor, queries, k: int, metric: str,
                                    what: str) -> None:
    """Indices and distances against scikit-learn's brute-force ``NearestNeighbors`` (whose first
    neighbour of a row is the row itself, dropped here)."""
    import sklearn.neighbors

    search = sklearn.neighbors.NearestNeighbors(n_neighbors=k + 1, metric=metric,
                                                algorithm="brute").fit(X.numpy())
    sk_dist, sk_idx = search.kneighbors(X[queries].numpy())
    idx, dist = student_nearest_neighbors(fn, X, queries, k, metric=metric)
    if idx.tolist() != sk_idx[:, 1:].tolist():
        r = next(r for r in range(len(queries)) if idx[r].tolist() != sk_idx[r, 1:].tolist())
        hint = _neighbour_hint(dist, list(queries), idx.tolist(), True)
        raise AssertionError(f"{what}: wrong neighbours. For query row {queries[r]}: expected "
                             f"{sk_idx[r, 1:].tolist()}, got {idx[r].tolist()}{hint}")
    assert_close(dist.double(), torch.from_numpy(sk_dist[:, 1:]), name=f"distances ({what})",
                 atol=1e-6)
