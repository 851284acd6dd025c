"""Rounds of training (LPN_SPEC §2.2): each round trains the full recipe; round k > 0 starts from round k-1's best.

Layout of an output folder::

    OUT/config.yaml                 the resolved config of the run
    OUT/round_<k>/checkpoint.pth    after every epoch: model, optimizer, scheduler, scaler, epoch, best AP,
                                    history, config, RNG states (``--resume`` continues from it)
    OUT/round_<k>/model_best.pth    plain state_dict of the best val AP of round k (loads with --weights)
    OUT/round_<k>/final_state.pth   plain state_dict after the last epoch
    OUT/round_<k>/log.csv           one row per epoch
    OUT/rounds.csv                  round -> best val AP
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from pycocotools.coco import COCO
from torch.nn.parallel import DistributedDataParallel

from lpn_core.backends import TorchBackend
from lpn_core.errors import LpnError, OutputError, WeightsError
from lpn_core.estimator import PoseEstimator
from lpn_core.model import LPN, create_model
from lpn_core.weights import read_state_dict

from .config import TrainConfig
from .data import Augment, CocoKeypoints, CocoSplit, Instances, Targets, load_coco, load_instances
from .evaluate import EvalResult, eval_boxes, evaluate
from .sizes import parse_sizes
from .loop import (LOG_FIELDS, Runtime, build_loader, build_optimizer, build_scheduler, load_checkpoint, rng_state, save_file,
                   set_rng_state, train_one_epoch, write_log)


@dataclass(slots=True)
class ValSet:
    """A validation set with ground-truth boxes: annotations and instances."""

    coco: COCO
    instances: Instances


@dataclass(slots=True)
class TrainData:
    """The training dataset and the validation set (annotations, boxes, image ids to score)."""

    train: CocoKeypoints
    val_coco: COCO | None = None
    val_instances: Instances | None = None
    val_image_ids: list[int] | None = None
    val2: ValSet | None = None  # the second validation set, if any


@dataclass(frozen=True, slots=True)
class RoundResult:
    round: int
    best_ap: float  # -1 when the round never validated
    best_epoch: int  # 1-based; -1 when never validated
    weights: Path


def load_data(config: TrainConfig) -> TrainData:
    """Instances of every training split (concatenated) and the validation split."""
    if not config.train_images:
        raise LpnError("no training data: give --data DIR, --train DIR or --train-images/--train-ann")
    parts = [load_instances(CocoSplit(Path(i), Path(a))) for i, a in zip(config.train_images, config.train_ann)]
    instances = Instances.concat(parts)
    if not config.score_weights:  # every labelled joint at weight 1, pseudo-labels included
        instances.visible = (instances.visible > 0).astype(np.float32)
    if config.max_train_samples > 0:
        instances = instances.subset(slice(0, config.max_train_samples))
    augment = Augment(config.scale_factor, config.rotation_factor, config.rotation_prob, config.flip, config.flip_prob)
    data = TrainData(CocoKeypoints(instances, config.input_size, augment, config.seed,
                                   Targets(config.sigma, config.unbiased_targets), parse_sizes(config.mixed_sizes),
                                   cache=config.cache_images))
    if config.val_ann and config.eval_every > 0:
        split = CocoSplit(Path(config.val_images), Path(config.val_ann))
        data.val_coco = load_coco(split.ann)
        data.val_instances, data.val_image_ids = eval_boxes(split, data.val_coco, config.val_boxes, config.max_val_images)
    if config.val2_ann and config.eval_every > 0:
        split = CocoSplit(Path(config.val2_images), Path(config.val2_ann))
        coco = load_coco(split.ann)
        data.val2 = ValSet(coco, load_instances(split, coco))
    return data


def round_dir(out_dir: Path, index: int) -> Path:
    return out_dir / f"round_{index}"


def seed_from(model: LPN, path: Path) -> None:
    """Seed a round from a file as the released code does (§1.8): re-draw deconvs + final layer, then
    load non-strictly. All names match, so every tensor (head included) is overwritten by the file;
    a mismatch would be silent in the original, so here it is an error."""
    model.reinit_head()
    missing, unexpected = model.load_state_dict(read_state_dict(path), strict=False)
    if missing or unexpected:
        raise WeightsError(f"'{path}' does not match {type(model).__name__}: {len(missing)} missing, "
                           f"{len(unexpected)} unexpected keys")


def load_start_weights(model: LPN, path: Path) -> None:
    """Round 0 starts from a state dict of the same architecture (strict), e.g. a 128x96 run's best
    before a 256x192 fine-tune, or an LPN-50 grown to LPN-101 by ``train.grow``."""
    model.load_state_dict(read_state_dict(path))


def validate(model: LPN, data: TrainData, config: TrainConfig, runtime: Runtime) -> EvalResult:
    """The paper's test protocol on the validation set(s), through lpn_core's TorchBackend. With a second
    set, its AP and AP50 are added to the stats as AP2 and AP2_50."""
    backend = TorchBackend(model, str(runtime.device))
    estimator = PoseEstimator(backend, model_name=config.model, flip_test=config.flip_test,
                              flip_shift=config.flip_shift, input_size=tuple(config.input_size))
    try:
        result = evaluate(estimator, data.val_coco, data.val_instances, config.eval_batch_size, config.in_vis_thre,
                          config.oks_thre, data.val_image_ids)
        if data.val2 is not None:
            second = evaluate(estimator, data.val2.coco, data.val2.instances, config.eval_batch_size,
                              config.in_vis_thre, config.oks_thre)
            result.stats.update(AP2=second.stats["AP"], AP2_50=second.stats["AP50"])
        return result
    finally:
        model.train()


def selection_score(stats: dict[str, float], config: TrainConfig) -> float:
    """What model_best.pth maximises: the validation AP (HRNet), or the mean AP of both sets."""
    if config.select_on == "mean" and "AP2" in stats:
        return (stats["AP"] + stats["AP2"]) / 2
    return stats["AP"]


def refuse_finished_cosine(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                           done_epochs: int, epochs: int) -> None:
    """LpnError if a resumed cosine has already reached its floor and more epochs are asked for: torch's cosine is
    recursive (each step scales the current LR), so re-aiming it from LR 0 would train every new epoch at LR 0."""
    if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) and epochs > done_epochs \
            and optimizer.param_groups[0]["lr"] <= scheduler.eta_min:
        raise LpnError(f"this round's cosine reached LR 0 at epoch {done_epochs}: more epochs would train at LR 0; "
                       "start a new round from its model_best.pth instead (python -m train.next_round --init PATH)")


def train_round(config: TrainConfig, data: TrainData, out_dir: Path, index: int, runtime: Runtime,
                state: dict | None = None, show_progress: bool = True) -> RoundResult:
    """Train one round for ``config.epochs`` epochs with a fresh Adam and schedule, or continue ``state``."""
    folder = round_dir(out_dir, index)
    torch.manual_seed(config.seed + 1000 * index)
    np.random.seed(config.seed + 1000 * index)
    model = create_model(config.model, init=config.init)  # §1.8 init for round 0 (config.init = paper)
    if index > 0 and state is None:
        seed_from(model, round_dir(out_dir, index - 1) / "model_best.pth")
    elif index == 0 and state is None and config.init_from:
        load_start_weights(model, Path(config.init_from))
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model.to(runtime.device, memory_format=memory_format)
    optimizer = build_optimizer(model, config)  # fresh Adam and schedule every round (§2.2)
    scheduler = build_scheduler(optimizer, config)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.device.type == "cuda" and config.amp)
    start, best_ap, best_epoch, history = 0, -1.0, -1, []
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        refuse_finished_cosine(optimizer, scheduler, state["epoch"], config.epochs)
        if isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR):
            scheduler.T_max = config.epochs  # resuming with another --epochs re-aims the cosine at the new end
        scaler.load_state_dict(state["scaler"])
        start, best_ap, best_epoch, history = state["epoch"], state["best_ap"], state["best_epoch"], state["history"]
        set_rng_state(state["rng"])
    net = model
    if runtime.distributed:
        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    for epoch in range(start, config.epochs):
        loader = build_loader(data.train, config, runtime, epoch)
        lr = optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(net, loader, optimizer, scaler, runtime, config,
                                f"round {index} epoch {epoch + 1}/{config.epochs}", show_progress,
                                first_step=epoch * len(loader))
        scheduler.step()
        due = config.eval_every > 0 and data.val_coco is not None and \
            ((epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs)
        if runtime.is_main:
            result = validate(model, data, config, runtime) if due else None
            ap = selection_score(result.stats, config) if result else float("nan")
            if result is not None and ap >= best_ap:  # HRNet: perf >= best -> model_best.pth
                best_ap, best_epoch = ap, epoch + 1
                save_file(model.state_dict(), folder / "model_best.pth")
            row = {"round": index, "epoch": epoch + 1, "lr": lr, "loss": stats.loss, "samples": stats.samples,
                   "seconds": round(stats.seconds, 2), "samples_per_s": round(stats.samples_per_s, 2),
                   **({k: round(v, 4) for k, v in result.stats.items() if k in LOG_FIELDS} if result else {}),
                   "best_AP": round(best_ap, 4)}
            history.append(row)
            save_file({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch + 1,
                       "round": index, "best_ap": best_ap, "best_epoch": best_epoch, "history": history,
                       "config": config.to_dict(), "rng": rng_state()}, folder / "checkpoint.pth")
            write_log(folder / "log.csv", history)
            print(f"round {index} epoch {epoch + 1}/{config.epochs}  lr {lr:.1e}  loss {stats.loss:.3e}  "
                  f"{stats.samples_per_s:.1f} samples/s" + (f"  {result_text(result.stats)}  best {best_ap:.4f}" if result else ""),
                  flush=True)
        runtime.barrier()
    if runtime.is_main:
        save_file(model.state_dict(), folder / "final_state.pth")
        if best_epoch < 0:  # never validated: the last weights stand in for the best
            save_file(model.state_dict(), folder / "model_best.pth")
    runtime.barrier()
    return RoundResult(index, best_ap, best_epoch, folder / "model_best.pth")


def result_text(stats: dict[str, float]) -> str:
    """'AP 0.1234' or 'AP 0.1234  AP2 0.2345' for the epoch line."""
    return "  ".join(f"{k} {stats[k]:.4f}" for k in ("AP", "AP2") if k in stats)


def latest_round(out_dir: Path) -> int | None:
    """Highest k with OUT/round_k/checkpoint.pth, if any."""
    found = [int(p.parent.name.removeprefix("round_")) for p in out_dir.glob("round_*/checkpoint.pth")
             if p.parent.name.removeprefix("round_").isdigit()]
    return max(found) if found else None


def finished_result(out_dir: Path, index: int) -> RoundResult:
    """Result of a finished round, from its checkpoint."""
    state = load_checkpoint(round_dir(out_dir, index) / "checkpoint.pth")
    return RoundResult(index, float(state["best_ap"]), int(state["best_epoch"]), round_dir(out_dir, index) / "model_best.pth")


def rounds_table(results: list[RoundResult]) -> str:
    """Markdown table round -> best val AP."""
    lines = ["| round | best val AP | at epoch |", "|---|---|---|"]
    for r in results:
        ap = f"{r.best_ap:.4f}" if r.best_epoch > 0 else "not validated"
        lines.append(f"| {r.round} | {ap} | {r.best_epoch if r.best_epoch > 0 else '-'} |")
    return "\n".join(lines)


def write_rounds(out_dir: Path, results: list[RoundResult]) -> None:
    try:
        (out_dir / "rounds.csv").write_text("round,best_AP,best_epoch,weights\n" + "".join(
            f"{r.round},{r.best_ap:.4f},{r.best_epoch},{r.weights}\n" for r in results))
    except OSError as exc:
        raise OutputError(f"cannot write '{out_dir / 'rounds.csv'}': {exc.strerror or exc}") from exc


def run_rounds(config: TrainConfig, out_dir: Path, runtime: Runtime, resume: bool = False,
               show_progress: bool = True) -> list[RoundResult]:
    """Train rounds 0..R-1 (or continue the latest round of ``out_dir``) and report round -> best AP."""
    start, state = 0, None
    if resume:
        last = latest_round(out_dir)
        if last is None:
            raise LpnError(f"nothing to resume in '{out_dir}': no round_*/checkpoint.pth")
        state = load_checkpoint(round_dir(out_dir, last) / "checkpoint.pth")
        start = last
        if state["epoch"] >= config.epochs and (round_dir(out_dir, last) / "final_state.pth").exists():
            start, state = last + 1, None  # that round is complete
    if runtime.is_main:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        except OSError as exc:
            raise OutputError(f"cannot write to '{out_dir}': {exc.strerror or exc}; choose a writable --out") from exc
    data = load_data(config)
    results = [finished_result(out_dir, k) for k in range(start)] if runtime.is_main else []
    for index in range(start, config.rounds):
        results.append(train_round(config, data, out_dir, index, runtime, state if index == start else None,
                                   show_progress))
        if runtime.is_main:
            write_rounds(out_dir, results)
    return results
