"""Training throughput: ``python -m train.bench --model lpn50 --input-size 256x192 --batch-size 32``.

Times full training steps (forward, JointsMSE, backward, Adam) after warm-up, on synthetic batches
(compute only) and, with ``--data``, on real augmented batches from the DataLoader (end to end), and
the DataLoader alone. Prints samples/s; a measurement, not a test (STYLE §14).
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from lpn_core.backends import cpu_threads
from lpn_core.model import create_model, list_models

from .config import TrainConfig
from .data import Augment, CocoKeypoints, load_instances, resolve_folder
from .evaluate import parse_size
from .loop import Runtime, build_loader, build_optimizer, cpu_has_bf16
from .loss import joints_mse


def step_fn(model: torch.nn.Module, optimizer: torch.optim.Optimizer, channels_last: bool, bf16: bool = False):
    def step(images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> float:
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outputs = model(images)
        loss = joints_mse(outputs, targets, weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def time_steps(step, batches, warmup: int) -> float:
    """Samples/s over the batches after ``warmup`` of them."""
    count, start = 0, None
    for i, batch in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        step(*batch)
        if start is not None:
            count += len(batch[0])
    return count / (time.perf_counter() - start)


def ab_steps(model: torch.nn.Module, args: argparse.Namespace, h: int, w: int) -> int:
    """Median samples/s of two step variants, interleaved so both see the same load: contiguous vs
    channels_last (``--ab``), or fp32 vs bf16 autocast (``--ab-bf16``)."""
    import copy

    other = copy.deepcopy(model)
    if args.ab_bf16:
        steps = {"fp32": step_fn(model, build_optimizer(model, TrainConfig()), False),
                 "bf16 autocast": step_fn(other, build_optimizer(other, TrainConfig()), False, bf16=True)}
    else:
        other = other.to(memory_format=torch.channels_last)
        steps = {"contiguous": step_fn(model, build_optimizer(model, TrainConfig()), False),
                 "channels_last": step_fn(other, build_optimizer(other, TrainConfig()), True)}
    batch = (torch.randn(args.batch_size, 3, h, w), torch.rand(args.batch_size, 17, h // 4, w // 4),
             torch.ones(args.batch_size, 17))
    times: dict[str, list[float]] = {k: [] for k in steps}
    for i in range(args.warmup + args.iters):
        for name, step in steps.items():
            start = time.perf_counter()
            step(*batch)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name:>14}: {args.batch_size / float(np.median(values)):.2f} samples/s "
              f"(median of {len(values)} steps)", flush=True)
    return 0


LOOP_VARIANTS = {
    # name: (crop sizes, DataLoader workers, cached images, torch.compile, channels_last)
    "shipped (128x96, 1 worker, read every sample)": (("128x96",), 1, False, False, False),
    "128x96, cached, 0 workers": (("128x96",), 0, True, False, False),
    "64x48, cached, 0 workers": (("64x48",), 0, True, False, False),
    "mixed 64x48/128x96, cached": (("64x48", "128x96"), 0, True, False, False),
    "128x96, cached, channels_last": (("128x96",), 0, True, False, True),
}
COMPILE_VARIANT = {"128x96, cached, torch.compile": (("128x96",), 0, True, True, False)}


def loop_variant(name: str, instances, args: argparse.Namespace):
    """(step, batch iterator) of one LOOP_VARIANTS entry: its own model copy, optimizer and loader."""
    from .data import Targets
    from .sizes import parse_sizes

    sizes, workers, cached, compiled, channels_last = {**LOOP_VARIANTS, **COMPILE_VARIANT}[name]
    torch.manual_seed(0)
    model = create_model(args.model).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, TrainConfig())
    net = torch.compile(model) if compiled else model
    parsed = parse_sizes(sizes)
    dataset = CocoKeypoints(instances, parsed[-1], Augment(), 0, Targets(unbiased=True), parsed, cache=cached)
    if cached:
        for path in sorted(set(instances.image_paths)):
            dataset.cache.get(path)  # steady state: every image decoded once already
    config = TrainConfig(batch_size=args.batch_size, workers=workers, mixed_sizes=list(sizes) if len(sizes) > 1 else [])
    loader = build_loader(dataset, config, Runtime(torch.device("cpu")), epoch=0)
    return step_fn(net, optimizer, channels_last, bf16=cpu_has_bf16()), iter(loader)


def loop_ab(args: argparse.Namespace) -> int:
    """The real training loop (DataLoader + step, bf16 where the CPU has it) of each LOOP_VARIANTS entry, in interleaved blocks of
    ``--iters`` steps so that every variant sees the same load; prints the median samples/s per block."""
    from .data import Instances

    parts = [load_instances(resolve_folder(d, "train")) for d in args.data.split(",")]
    instances = Instances.concat(parts)
    instances = instances.subset(np.random.default_rng(0).permutation(len(instances))[:args.loop_people])
    names = [*LOOP_VARIANTS, *(COMPILE_VARIANT if args.compile else ())]
    variants = {name: loop_variant(name, instances, args) for name in names}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for block in range(args.warmup + args.blocks):
        for name, (step, batches) in variants.items():
            count, start = 0, time.perf_counter()
            for _ in range(args.iters):
                images, targets, weights = next(batches)
                step(images, targets, weights)
                count += len(images)
            if block >= args.warmup:
                rates[name].append(count / (time.perf_counter() - start))
    base = float(np.median(rates[next(iter(rates))]))
    for name, values in rates.items():
        rate = float(np.median(values))
        print(f"{name:>48}: {rate:6.1f} samples/s  x{rate / base:.2f}  (median of {len(values)} blocks of {args.iters} steps)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lpn50", choices=list_models())
    p.add_argument("--input-size", type=parse_size, default=(256, 192))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--iters", type=int, default=4, help="timed steps")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--ab", action="store_true",
                   help="A/B in one process: alternate steps of a contiguous and a channels_last copy (fair under load)")
    p.add_argument("--ab-bf16", action="store_true", help="A/B in one process: fp32 vs bf16 autocast steps")
    p.add_argument("--flush-denormals", action="store_true", help="torch.set_flush_denormal(True) (measured: no gain)")
    p.add_argument("--data", help="COCO folder for the end-to-end and loader timings")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--loop-ab", action="store_true",
                   help="interleave the real training loop of several set-ups (needs --data DIR[,DIR...]); see LOOP_VARIANTS")
    p.add_argument("--blocks", type=int, default=3, help="--loop-ab: timed blocks per set-up")
    p.add_argument("--compile", action="store_true", help="--loop-ab: add a torch.compile set-up (compiles for minutes)")
    p.add_argument("--loop-people", type=int, default=1500, help="--loop-ab: people drawn from --data")
    return p


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads or cpu_threads())
    torch.set_flush_denormal(args.flush_denormals)
    torch.manual_seed(0)
    h, w = args.input_size
    model = create_model(args.model).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, TrainConfig())
    step = step_fn(model, optimizer, args.channels_last)
    print(f"{args.model} {h}x{w} batch {args.batch_size}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"channels_last {args.channels_last}, flush denormals {args.flush_denormals}, {platform.processor() or platform.machine()}", flush=True)
    if args.ab or args.ab_bf16:
        return ab_steps(model, args, h, w)
    if args.loop_ab:
        return loop_ab(args)
    synthetic = [(torch.randn(args.batch_size, 3, h, w), torch.rand(args.batch_size, 17, h // 4, w // 4),
                  torch.ones(args.batch_size, 17))] * (args.warmup + args.iters)
    print(f"compute only (synthetic batches): {time_steps(step, synthetic, args.warmup):.2f} samples/s", flush=True)
    if args.data:
        split = resolve_folder(args.data, "train")
        dataset = CocoKeypoints(load_instances(split), (h, w), Augment(), seed=0)
        config = TrainConfig(batch_size=args.batch_size, workers=args.workers)
        loader = build_loader(dataset, config, Runtime(torch.device("cpu")), epoch=0)
        batches = iter(loader)
        n = args.warmup + args.iters
        start, loaded = time.perf_counter(), [next(batches) for _ in range(min(n, len(loader)))]
        print(f"DataLoader alone ({args.workers} workers): {sum(len(b[0]) for b in loaded) / (time.perf_counter() - start):.2f} samples/s")
        loader = build_loader(dataset, config, Runtime(torch.device("cpu")), epoch=1)
        it = iter(loader)
        real = (next(it) for _ in range(min(n, len(loader))))
        print(f"end to end (DataLoader + step): {time_steps(step, real, args.warmup):.2f} samples/s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
