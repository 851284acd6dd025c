"""What a larger crop costs in the pipeline: LPN per-crop time at each crop size, fp32 and INT8 (ONNX Runtime,
the backends the app runs), interleaved so that background load hits every size alike.

    python -m benchmarks.crop_size_cost                     # lpn50 at 128x96, 192x144, 256x192
    python -m benchmarks.crop_size_cost --sizes 128x96 192x144 --rounds 12

Times ``Backend(crops)`` on batches of 1 and 4 bundled calibration crops (``assets/calibration``), median of
``--rounds`` rounds of ``--calls`` calls each, with the weights the app would load (bundled project weights;
untrained weights where none are bundled: the cost is the same) and its backends (``lpn_core.estimator``: the cached
ONNX exports, ORT spinning off as in the pipeline). The ratios to the first size are what to
read; the accuracy that buys is ``train.evaluate``'s job (quote the two side by side).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys

from lpn_core.backends import OrtBackend, cpu_threads
from lpn_core.estimator import int8_backend, ort_backend
from lpn_core.model import list_models
from lpn_core.quantize import calibration_crops, median_ms
from lpn_core.weights import describe_weights, model_with_weights, resolve_weights
from train.evaluate import parse_size

BATCHES = (1, 4)


def backends_at(model: str, size: tuple[int, int]) -> dict[str, OrtBackend]:
    """fp32 and INT8 ONNX Runtime backends of ``model``'s bundled weights at crop ``size`` (H, W), built as the app
    builds them."""
    path = resolve_weights(model, None, download=False)
    net = model_with_weights(model, path)
    info = dataclasses.replace(describe_weights(model, path), input_size=size)
    threads = cpu_threads()
    return {"fp32": ort_backend(net, model, path, size, threads, spinning=False),
            "int8": int8_backend(net, model, info, threads, spinning=False)}


def time_sizes(model: str, sizes: list[tuple[int, int]], rounds: int, calls: int) -> dict[tuple, float]:
    """Median ms per call for every (size, precision, batch), all timed interleaved round by round."""
    runs = {size: backends_at(model, size) for size in sizes}
    feeds = {(size, b): calibration_crops(size, limit=max(BATCHES))[:b] for size in sizes for b in BATCHES}
    keys = [(size, precision, b) for size in sizes for precision in ("fp32", "int8") for b in BATCHES]
    for size, precision, b in keys:  # warm-up
        runs[size][precision](feeds[(size, b)])
    times: dict[tuple, list[float]] = {key: [] for key in keys}
    for r in range(rounds):
        for size, precision, b in keys[r % len(keys):] + keys[:r % len(keys)]:
            times[(size, precision, b)].append(median_ms(runs[size][precision], feeds[(size, b)], calls))
    return {key: statistics.median(values) for key, values in times.items()}


def report(times: dict[tuple, float], sizes: list[tuple[int, int]]) -> None:
    base = sizes[0]
    print("| crop | pixels | " + " | ".join(f"{p} b{b} ms (x {base[0]}x{base[1]})"
                                        for p in ("fp32", "int8") for b in BATCHES) + " |")
    print("|---|---|" + "---|" * (2 * len(BATCHES)))
    for size in sizes:
        cells = [f"{times[(size, p, b)]:.2f} ({times[(size, p, b)] / times[(base, p, b)]:.2f})"
                 for p in ("fp32", "int8") for b in BATCHES]
        ratio = size[0] * size[1] / (base[0] * base[1])
        print(f"| {size[0]}x{size[1]} | {ratio:.2f}x | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lpn50", choices=list_models())
    parser.add_argument("--sizes", type=parse_size, nargs="+", default=[(128, 96), (192, 144), (256, 192)],
                        help="crop sizes HxW; ratios are to the first")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args(argv)
    times = time_sizes(args.model, args.sizes, args.rounds, args.calls)
    print(f"{args.model}, ONNX Runtime, {cpu_threads()} threads, median of {args.rounds} rounds x {args.calls} calls",
          file=sys.stderr)
    report(times, args.sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
