"""Benchmark: helpers.saliency vs Captum, side by side in one process.

Each method runs on the same model, images and targets as its Captum counterpart; the runs are
interleaved (ours, Captum, ours, ...) so that machine noise hits both alike.  Printed per method:
median and best wall time, the ratio ours / Captum (< 1 means ours is faster) and the largest
relative difference of the results (max |ours - captum| / max |captum|).

Methods (Captum counterpart):
* saliency_map         Saliency(abs=True), max over channels
* occlusion_map        Occlusion on softmax probabilities (ours is divided by p_clean; the
                       comparison multiplies it back), same window and batch size
* integrated_gradients IntegratedGradients, Gauss-Legendre, same steps and batch size
* grad_cam             LayerGradCam(relu_attributions=True) + interpolate(bilinear)

Run:  python bench/bench_saliency.py [--size 224] [--batch 2] [--repeats 5] [--steps 32]
                                     [--patch 32] [--stride 16] [--device cpu] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from helpers.images import load_image
from helpers.models import load_model
from helpers.saliency import grad_cam, integrated_gradients, occlusion_map, saliency_map


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2, help="images per call (cat, coffee, ...)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=32, help="integrated-gradients steps")
    parser.add_argument("--patch", type=int, default=32, help="occlusion patch size")
    parser.add_argument("--stride", type=int, default=16, help="occlusion stride")
    parser.add_argument("--per-eval", type=int, default=64, help="occluded images / IG points per pass")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # Captum's notices about hooks

    from captum.attr import (IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion,
                             Saliency)

    device = torch.device(args.device)
    model = load_model(device=device)
    names = ["chelsea", "coffee", "motorcycle", "rocket", "astronaut", "flower", "china", "grace_hopper"]
    x = torch.cat([load_image(names[i % len(names)], size=args.size) for i in range(args.batch)]).to(device)
    with torch.no_grad():
        probs = model(x).softmax(1)
    t = probs.argmax(1)
    p_clean = probs.gather(1, t[:, None])[:, 0]
    n = args.batch

    def captum_occlusion():
        occ = Occlusion(lambda z: model(z).softmax(1))
        return occ.attribute(x, sliding_window_shapes=(3, args.patch, args.patch),
                             strides=(3, args.stride, args.stride), baselines=0.5, target=t,
                             perturbations_per_eval=args.per_eval)[:, 0]

    def captum_cam():
        cam = LayerGradCam(model, model.head).attribute(x, target=t, relu_attributions=True)
        return LayerAttribution.interpolate(cam, x.shape[-2:], "bilinear")[:, 0]

    cases = [
        ("saliency_map",
         lambda: saliency_map(model, x, t),
         lambda: Saliency(model).attribute(x, target=t, abs=True).amax(1)),
        (f"occlusion_map {args.patch}/{args.stride}",
         lambda: occlusion_map(model, x, t, size=args.patch, stride=args.stride,
                               batch_size=args.per_eval, progress=False) * p_clean[:, None, None],
         captum_occlusion),
        (f"integrated_gradients {args.steps}",
         lambda: integrated_gradients(model, x, t, steps=args.steps, batch_size=max(1, args.per_eval // n),
                                      progress=False),
         lambda: IntegratedGradients(model).attribute(x, baselines=0.0, target=t, n_steps=args.steps,
                                                      method="gausslegendre",
                                                      internal_batch_size=args.per_eval)),
        ("grad_cam (head)",
         lambda: grad_cam(model, x, t, layer="head"),
         captum_cam),
    ]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print(f"EfficientNet-Lite0, {n} image(s) at {args.size}x{args.size}, {args.repeats} timed repeats each\n")
    print(f"  {'method':<28} {'ours (ms)':>18} {'Captum (ms)':>18} {'ratio':>14} {'max rel diff':>13}")
    print(f"  {'':<28} {'median / best':>18} {'median / best':>18} {'median / best':>14}")
    for label, ours_fn, theirs_fn in cases:
        _, a = _timed(ours_fn, device)            # warm-up, and the results to compare
        _, b = _timed(theirs_fn, device)
        rel = float((a - b).abs().max() / b.abs().max())
        t_ours, t_theirs = [], []
        for _ in range(args.repeats):
            t_ours.append(_timed(ours_fn, device)[0])
            t_theirs.append(_timed(theirs_fn, device)[0])
        mo, bo = statistics.median(t_ours), min(t_ours)
        mt, bt = statistics.median(t_theirs), min(t_theirs)
        print(f"  {label:<28} {mo * 1e3:8.0f} /{bo * 1e3:8.0f} {mt * 1e3:8.0f} /{bt * 1e3:8.0f}"
              f" {mo / mt:6.2f} /{bo / bt:6.2f} {rel:13.2e}")


if __name__ == "__main__":
    main()
