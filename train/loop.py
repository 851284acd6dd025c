"""One epoch of training, the runtime (CPU / CUDA / torchrun DDP), loaders and checkpoints.

Checkpoints hold only tensors and plain Python values, so they load with ``weights_only=True``
(nothing in them is executed) and ``lpn_core.weights.read_state_dict`` reads their 'model' entry.
"""
from __future__ import annotations

import csv
import multiprocessing as mp
import os
import random
import time
from datetime import timedelta
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from lpn_core.errors import LpnError, OutputError, WeightsError
from lpn_core.weights import LOAD_ERRORS, load_failure_reason

from .config import TrainConfig
from .data import CocoKeypoints, worker_init_fn
from .loss import joints_mse
from .sizes import SizedBatches


@dataclass(frozen=True, slots=True)
class Runtime:
    """Where this process trains: device, and its place in a torchrun job (rank 0 of 1 otherwise)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def setup_runtime(config: TrainConfig) -> Runtime:
    """Pick the device; under torchrun (WORLD_SIZE set) join the process group (NCCL on CUDA, else gloo)."""
    want = config.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise LpnError(f"device '{want}' requested but CUDA is not available here: use --device cpu")
    if "WORLD_SIZE" not in os.environ:
        return Runtime(torch.device(want))
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if want.startswith("cuda"):
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        # rank 0 validates while the others wait at a barrier: allow a long evaluation
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world,
                                timeout=timedelta(hours=2))
    return Runtime(device, rank, world, True)


def teardown_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


def build_loader(dataset: CocoKeypoints, config: TrainConfig, runtime: Runtime, epoch: int) -> DataLoader:
    """Shuffled loader of one epoch. The order depends only on (seed, epoch) and the rank, as
    DistributedSampler.set_epoch defines it; with one process it is the single-replica case."""
    dataset.set_epoch(epoch)
    sampler = DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=True,
                                 seed=config.seed, drop_last=False)
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)  # worker seeds per epoch
    # Workers start from a clean forkserver process, not a fork of this one: a fork inherits OpenCV's
    # and OpenMP's thread pools without their threads, and cv2 calls in the child then deadlocked here.
    context = "forkserver" if config.workers > 0 and "forkserver" in mp.get_all_start_methods() else None
    common = dict(num_workers=config.workers, pin_memory=runtime.device.type == "cuda", worker_init_fn=worker_init_fn,
                  generator=generator, persistent_workers=False, multiprocessing_context=context)
    if mixes_sizes(config, epoch):
        batches = SizedBatches(sampler, config.batch_size, [1.0] * len(dataset.sizes), config.seed, epoch)
        return DataLoader(dataset, batch_sampler=batches, **common)
    return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, drop_last=False, **common)


def mixes_sizes(config: TrainConfig, epoch: int) -> bool:
    """Whether epoch ``epoch`` (0-based) draws each batch's crop size from ``config.mixed_sizes``."""
    return bool(config.mixed_sizes) and (config.mixed_until <= 0 or epoch < config.mixed_until)


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam with default betas and no weight decay: HRNet's get_optimizer passes only the LR (§2.1)."""
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """x0.1 at epochs 90 and 120 (§2.1), or cosine to 0 over the round; stepped after each epoch, so
    epoch e trains at LR(e)."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_steps), config.lr_factor)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX, as oneDNN reports it). Without it, bf16
    autocast is emulated and slower than fp32 (measured on an AVX2-only CPU: docs/WEIGHTS.md)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast_context(device: torch.device, config: TrainConfig) -> torch.autocast:
    """fp16 autocast on CUDA (config.amp), bf16 on the CPU (config.cpu_bf16, only where the CPU has bf16
    instructions), else a disabled one."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16, enabled=config.amp)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.cpu_bf16 and cpu_has_bf16())


@dataclass(frozen=True, slots=True)
class EpochStats:
    loss: float
    samples: int
    seconds: float

    @property
    def samples_per_s(self) -> float:
        return self.samples / max(self.seconds, 1e-9)


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, runtime: Runtime, config: TrainConfig,
                    desc: str = "train", show_progress: bool = True, first_step: int = 0) -> EpochStats:
    """Forward, JointsMSE, backward, Adam step over one epoch; fp16 AMP on CUDA, bf16 on the CPU if asked.

    ``first_step`` is the round's step count before this epoch: the first ``config.warmup_steps`` steps
    scale the scheduled LR linearly from 1/warmup to 1 (restored at the end of the epoch).
    """
    from tqdm import tqdm

    model.train()
    device = runtime.device
    scheduled = [group["lr"] for group in optimizer.param_groups]
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    total, count, start = 0.0, 0, time.perf_counter()
    bar = tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True, leave=False,
               disable=not (show_progress and runtime.is_main))
    for step, (images, targets, weights) in enumerate(bar, start=first_step):
        if step < config.warmup_steps:
            for group, lr in zip(optimizer.param_groups, scheduled):
                group["lr"] = lr * (step + 1) / config.warmup_steps
        elif step == config.warmup_steps and config.warmup_steps:
            for group, lr in zip(optimizer.param_groups, scheduled):
                group["lr"] = lr
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        targets, weights = targets.to(device, non_blocking=True), weights.to(device, non_blocking=True)
        with autocast_context(device, config):
            outputs = model(images)
        loss = joints_mse(outputs, targets, weights)  # float32 even under autocast
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.item() * len(images)
        count += len(images)
        bar.set_postfix(loss=f"{loss.item():.3e}", sps=f"{count / (time.perf_counter() - start):.1f}")
    seconds = time.perf_counter() - start
    for group, lr in zip(optimizer.param_groups, scheduled):
        group["lr"] = lr
    if runtime.distributed:  # average the loss over ranks for the log
        sums = torch.tensor([total, count], dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        total, count = sums[0].item(), int(sums[1].item())
    return EpochStats(total / max(count, 1), count, seconds)


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors / plain values (weights_only-safe)."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "gauss": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_file(obj: Any, path: Path) -> None:
    """torch.save through a temporary file, so an interrupt never leaves a truncated checkpoint."""
    partial = path.with_suffix(path.suffix + ".part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, partial)
        partial.replace(path)
    except OSError as exc:
        raise OutputError(f"cannot write '{path}': {exc.strerror or exc}; choose a writable --out folder") from exc


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A training checkpoint written by save_file (weights_only: nothing executed)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        raise WeightsError(f"cannot resume from '{path}': {load_failure_reason(exc)}") from exc
    if not isinstance(data, dict) or not {"model", "optimizer", "scheduler", "epoch"} <= data.keys():
        raise WeightsError(f"'{path}' is not a train.train checkpoint (no model/optimizer/scheduler/epoch)")
    return data


LOG_FIELDS = ("round", "epoch", "lr", "loss", "samples", "seconds", "samples_per_s", "AP", "AP50", "AP75",
              "APm", "APl", "AR", "AP2", "AP2_50", "best_AP")


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """The CSV log of a round, rewritten from the checkpoint's history (so a resume never duplicates rows)."""
    partial = path.with_suffix(".csv.part")
    try:
        with partial.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, LOG_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        partial.replace(path)
    except OSError as exc:
        raise OutputError(f"cannot write '{path}': {exc.strerror or exc}") from exc
