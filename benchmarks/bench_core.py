"""Per-crop latency of LPN-50/101/152 on PyTorch eager and ONNX Runtime, batch 1 and 4.

    python -m benchmarks.bench_core [--runs 30] [--warmup 5] [--out benchmarks/results/bench_core.json]

Medians of at least ``--runs`` timed calls per configuration after ``--warmup`` untimed ones, all in
one process, timed in warm blocks round-robin across configurations, so the ratios are comparable on
a shared machine. Weights are the untrained init: latency does not depend on weight values.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from lpn_core import count_flops, create_model, list_models
from lpn_core.backends import OrtBackend, TorchBackend, cpu_threads


SETTLE_S = 0.3


def time_ms(run, crops: np.ndarray) -> float:
    t0 = time.perf_counter()
    run(crops)
    return (time.perf_counter() - t0) * 1e3


def bench(runs: int, warmup: int, batches: tuple[int, ...], block: int = 10, settle_calls: int = 2) -> list[dict]:
    """Median ms per call of every (model, backend, batch). Timed in blocks, round-robin across the
    configurations: each round runs ``block`` consecutive calls of each one and keeps all but the first
    ``settle_calls`` (which pay for caches another configuration evicted; a short pause before each
    block lets the previous backend's spinning OpenMP/ORT threads go idle), so load from
    other processes hits every configuration alike while each is timed warm."""
    rng = np.random.default_rng(0)
    configs = []
    for name in list_models():
        model = create_model(name)
        gmacs = round(count_flops(model), 3)
        for backend in (TorchBackend(model), OrtBackend(model)):
            for batch in batches:
                crops = rng.normal(size=(batch, 3, 256, 192)).astype(np.float32)
                configs.append((name, backend, batch, crops, gmacs, []))
    for config in configs:
        for _ in range(warmup):
            config[1](config[3])
    rounds = -(-runs // (block - settle_calls))
    for round_index in range(rounds):
        for _, backend, _, crops, _, times in configs:
            time.sleep(SETTLE_S)  # let the previous backend's spinning worker threads go idle
            times.extend([time_ms(backend, crops) for _ in range(block)][settle_calls:])
        print(f"\r  round {round_index + 1}/{rounds}", end="", flush=True)
    print()
    rows = []
    for name, backend, batch, _, gmacs, times in configs:
        ms = statistics.median(times)
        rows.append({"model": name, "backend": backend.name, "batch": batch, "ms_per_call": round(ms, 2),
                     "ms_per_crop": round(ms / batch, 2), "gmacs": gmacs, "samples": len(times)})
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table: ms per crop, and the torch / onnx ratio per model and batch."""
    lines = ["| model | GMAC | batch | torch eager ms/crop | ONNX Runtime ms/crop | torch / ORT |",
             "|---|---|---|---|---|---|"]
    index = {(r["model"], r["backend"], r["batch"]): r for r in rows}
    for model, batch in dict.fromkeys((r["model"], r["batch"]) for r in rows):
        t, o = index[(model, "torch", batch)], index[(model, "onnx", batch)]
        lines.append(f"| {model} | {t['gmacs']} | {batch} | {t['ms_per_crop']:.1f} | {o['ms_per_crop']:.1f} | "
                     f"{t['ms_per_crop'] / o['ms_per_crop']:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--out", default="benchmarks/results/bench_core.json")
    args = parser.parse_args()
    torch.set_num_threads(cpu_threads())
    machine = {"cpu": platform.processor() or platform.machine(), "threads": cpu_threads(),
               "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    print(f"machine: {machine}; runs {args.runs} after {args.warmup} warm-up", flush=True)
    rows = bench(args.runs, args.warmup, tuple(args.batches))
    print(table(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "runs": args.runs, "warmup": args.warmup, "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
