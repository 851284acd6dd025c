"""``python -m train.train --config train/configs/lpn50_256x192.yaml --data DIR [--rounds R] [--resume]``.

Trains LPN on COCO keypoints with the paper's recipe (LPN_SPEC §2), validating every epoch with the
paper's test protocol and keeping model_best.pth. Multi-GPU: ``torchrun --nproc_per_node N -m train.train ...``.
User errors print one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import torch

from lpn_core.backends import cpu_threads
from lpn_core.errors import LpnError, OutputError

from .config import TrainConfig, apply_overrides, load_config, parse_set
from .data import resolve_folder
from .evaluate import parse_size
from .loop import cpu_has_bf16, load_checkpoint, setup_runtime, teardown_runtime
from .schedule import latest_round, round_dir, rounds_table, run_rounds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.train", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML config (train/configs/*.yaml); not needed with --resume")
    p.add_argument("--out", help="output folder (default: runs/<config name>)")
    p.add_argument("--data", help="COCO root: train2017/ + val2017/ + annotations/person_keypoints_{train,val}2017.json")
    p.add_argument("--train", action="append", metavar="DIR", help="training folder (repeatable): "
                   "{train2017|images}/ + annotations/person_keypoints_train2017.json or person_keypoints.json")
    p.add_argument("--val", metavar="DIR", help="validation folder: {val2017|images}/ + annotations/person_keypoints_val2017.json")
    p.add_argument("--val2", metavar="DIR", help="a second validation folder (same layouts as --val), logged as AP2")
    p.add_argument("--train-images", action="append", metavar="DIR", help="explicit image folder (pairs with --train-ann)")
    p.add_argument("--train-ann", action="append", metavar="JSON", help="explicit person_keypoints json")
    p.add_argument("--val-images", metavar="DIR")
    p.add_argument("--val-ann", metavar="JSON")
    p.add_argument("--val-boxes", metavar="JSON", help="COCO detection results for validation (default: GT boxes)")
    p.add_argument("--model", help="lpn50 | lpn101 | lpn152")
    p.add_argument("--input-size", type=parse_size, help="crop HxW, e.g. 256x192")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per process (the paper: 32 on one GPU)")
    p.add_argument("--lr", type=float)
    p.add_argument("--rounds", type=int, help="iterative training rounds (LPN_SPEC §2.2)")
    p.add_argument("--workers", type=int, help="DataLoader worker processes")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (0 = all cores)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key, e.g. lr_steps=[5,8]")
    p.add_argument("--resume", action="store_true", help="continue the latest round_*/checkpoint.pth in --out")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (one line per epoch still printed)")
    return p


FLAG_KEYS = ("model", "input_size", "epochs", "batch_size", "lr", "rounds", "workers", "seed", "device", "threads")


def data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config values for the data flags that were given."""
    values: dict[str, Any] = {}
    if args.data:
        train, val = resolve_folder(args.data, "train"), resolve_folder(args.data, "val")
        values.update(train_images=[str(train.images)], train_ann=[str(train.ann)],
                      val_images=str(val.images), val_ann=str(val.ann))
    if args.train or args.train_images or args.train_ann:
        splits = [resolve_folder(d, "train") for d in args.train or []]
        images = [str(s.images) for s in splits] + list(args.train_images or [])
        anns = [str(s.ann) for s in splits] + list(args.train_ann or [])
        values.update(train_images=images, train_ann=anns)
    if args.val:
        val = resolve_folder(args.val, "val")
        values.update(val_images=str(val.images), val_ann=str(val.ann))
    if args.val2:
        val2 = resolve_folder(args.val2, "val")
        values.update(val2_images=str(val2.images), val2_ann=str(val2.ann))
    if args.val_images or args.val_ann:
        if not (args.val_images and args.val_ann):
            raise LpnError("--val-images and --val-ann go together")
        values.update(val_images=args.val_images, val_ann=args.val_ann)
    if args.val_boxes:
        values["val_boxes"] = args.val_boxes
    return values


def out_folder(args: argparse.Namespace) -> Path:
    if args.out:
        return Path(args.out)
    if args.config:
        return Path("runs") / Path(args.config).stem  # runs/ is git-ignored
    raise LpnError("give --out DIR (or --config, whose name picks runs/<name>)")


def resolve_config(args: argparse.Namespace, out_dir: Path) -> TrainConfig:
    """--config (or, with --resume, the checkpoint's config) <- data flags <- flags <- --set."""
    overrides = data_overrides(args)
    overrides.update({k: getattr(args, k) for k in FLAG_KEYS if getattr(args, k) is not None})
    overrides.update(parse_set(args.set))
    if args.resume:
        last = latest_round(out_dir)
        if last is None:
            raise LpnError(f"nothing to resume in '{out_dir}': no round_*/checkpoint.pth")
        saved = load_checkpoint(round_dir(out_dir, last) / "checkpoint.pth")["config"]
        return apply_overrides(TrainConfig(), {**saved, **overrides})
    if not args.config:
        raise LpnError("give --config train/configs/<name>.yaml (or --resume with --out)")
    return load_config(args.config, overrides)


def check_writable(out_dir: Path) -> None:
    """Fail early, in one line, if the output folder cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write to '{out_dir}': {exc.strerror or exc}; choose a writable --out") from exc


def run(args: argparse.Namespace) -> int:
    out_dir = out_folder(args)
    config = resolve_config(args, out_dir)
    torch.set_num_threads(config.threads or cpu_threads())  # thread counts: set once, here (STYLE §8)
    cv2.setNumThreads(1)
    runtime = setup_runtime(config)
    try:
        if runtime.is_main:
            check_writable(out_dir)
            if config.cpu_bf16 and runtime.device.type == "cpu" and not cpu_has_bf16():
                print("this CPU has no bf16 instructions: training in fp32 (cpu_bf16 ignored)", flush=True)
            print(f"{config.model} {config.input_size[0]}x{config.input_size[1]}, {config.epochs} epochs x "
                  f"{config.rounds} round(s), batch {config.batch_size} x {runtime.world_size} process(es) on "
                  f"{runtime.device}, output {out_dir}", flush=True)
        results = run_rounds(config, out_dir, runtime, args.resume, show_progress=not args.no_progress)
        if runtime.is_main:
            print(rounds_table(results))
    finally:
        teardown_runtime(runtime)
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv, lambda args: f"continue with --resume --out {args.out or '<out>'}")


if __name__ == "__main__":
    sys.exit(main())
