"""Benchmark: helpers.adversarial.fgsm / pgd vs Captum's captum.robust.FGSM / PGD.

Both attack the same pretrained EfficientNet-Lite0 on the same photos in one process, with the
same loss (cross-entropy), bounds [0, 1] and, for PGD, a fixed start; the runs are interleaved
(ours, Captum, ours, ...) so that machine noise hits both alike.  Printed per attack: median and
best wall time, the ratio ours / Captum (< 1 means ours is faster) and the largest difference
between the two adversarial batches (0 when they agree bit for bit).

Captum's ``zero_thresh`` (gradients with magnitude <= 1e-6 are treated as 0) is set to 0 so that
both compute the same thing.

Run:  python bench/bench_adversarial.py [--size 224] [--batch 4] [--steps 10] [--repeats 5]
                                        [--device cpu] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from helpers.adversarial import PHOTOS, fgsm, load_photos, pgd, predict
from helpers.models import load_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def _ce_none(outputs, target):
    return F.cross_entropy(outputs, target, reduction="none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4, help=f"photos per batch (at most {len(PHOTOS)})")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps")
    parser.add_argument("--eps", type=float, default=4 / 255)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from captum.robust import FGSM, PGD

    device = torch.device(args.device)
    model = load_model("efficientnet_lite0", device=device)
    x = load_photos(args.size, PHOTOS[: args.batch]).to(device)
    y = predict(model, x)
    eps, alpha = args.eps, 2.5 * args.eps / args.steps

    c_fgsm = FGSM(model, loss_func=_ce_none, lower_bound=0.0, upper_bound=1.0)
    c_fgsm.zero_thresh = 0.0
    c_pgd = PGD(model, loss_func=_ce_none, lower_bound=0.0, upper_bound=1.0)
    c_pgd.fgsm.zero_thresh = 0.0
    cases = {
        "FGSM": (lambda: fgsm(model, x, y, eps=eps),
                 lambda: c_fgsm.perturb(x.clone(), eps, y).detach()),
        f"PGD ({args.steps} steps)": (
            lambda: pgd(model, x, y, eps=eps, alpha=alpha, steps=args.steps, random_start=False),
            lambda: c_pgd.perturb(x.clone(), radius=eps, step_size=alpha, step_num=args.steps,
                                  target=y).detach()),
    }
    print(f"EfficientNet-Lite0, {args.batch} photos at {args.size}x{args.size}, eps = {eps * 255:.1f}/255, "
          f"{args.device}, {torch.get_num_threads()} threads, {args.repeats} repeats")
    print(f"{'attack':16s} {'ours median':>12s} {'captum median':>14s} {'ours best':>10s} "
          f"{'captum best':>12s} {'ratio':>6s} {'max |diff|':>11s}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns that it switches on requires_grad
        for name, (ours_fn, theirs_fn) in cases.items():
            ours_fn(), theirs_fn()  # warm-up
            ours_t, theirs_t, diff = [], [], 0.0
            for _ in range(args.repeats):
                t, a = _timed(ours_fn, device)
                ours_t.append(t)
                t, b = _timed(theirs_fn, device)
                theirs_t.append(t)
                diff = max(diff, float((a - b).abs().max()))
            mo, mt = statistics.median(ours_t), statistics.median(theirs_t)
            print(f"{name:16s} {mo:11.3f}s {mt:13.3f}s {min(ours_t):9.3f}s {min(theirs_t):11.3f}s "
                  f"{mo / mt:6.2f} {diff:11.2e}")


if __name__ == "__main__":
    main()
