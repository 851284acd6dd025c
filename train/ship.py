"""``python -m train.ship --model lpn50 --weights runs/x/round_0/model_best.pth --input-size 128x96 --val DIR``.

Turns a trained checkpoint into a bundled file: evaluates it on the held-out validation set (ground-truth
boxes, flip test, the paper's protocol) in float32 and after rounding to float16, writes the float16 state
dict to ``assets/weights/<model>_project.pth`` only if the rounding costs less than ``--max-ap-drop``,
and records its sha256, input size and AP in ``assets/weights/manifest.json``.

``python -m train.ship --model lpn50 --int8 --val DIR`` measures an already bundled file after ONNX Runtime
INT8 quantization (``lpn_core.quantize``, exactly what the app runs) and records that AP as ``ap_int8``:
``--precision auto`` runs INT8 only where it is within 0.01 of ``ap``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import torch

from lpn_core.errors import LpnError
from lpn_core.estimator import PoseEstimator, build_estimator
from lpn_core.model import check_model_name
from lpn_core.weights import BUNDLED_DIR, MANIFEST, file_sha256, read_state_dict

from .data import load_coco, resolve_folder
from .evaluate import eval_boxes, evaluate, make_estimator, parse_size
from .weights_meta import crop_settings


def gt_box_ap(estimator: PoseEstimator, val_dir: str) -> float:
    """Keypoint AP of ``estimator`` on ``val_dir`` with ground-truth boxes (its own flip setting)."""
    split = resolve_folder(val_dir, "val")
    coco = load_coco(split.ann)
    instances, ids = eval_boxes(split, coco, None)
    with contextlib.redirect_stdout(io.StringIO()):
        return float(evaluate(estimator, coco, instances, image_ids=ids).stats["AP"])


def val_ap(model: str, weights: Path, input_size: tuple[int, int], val_dir: str, flip_shift: float = 1.0) -> float:
    """Keypoint AP on ``val_dir`` with ground-truth boxes and the flip test."""
    estimator = make_estimator(model, str(weights), input_size, "torch", "cpu", flip_test=True, flip_shift=flip_shift)
    return gt_box_ap(estimator, val_dir)


def int8_ap(model: str, val_dir: str, out_dir: Path = BUNDLED_DIR) -> dict:
    """AP of the bundled ``model`` on ONNX Runtime INT8 (GT boxes, flip test); recorded as ``ap_int8``."""
    entries = json.loads((out_dir / MANIFEST).read_text())
    if model not in entries:
        raise LpnError(f"no bundled {model} in '{out_dir / MANIFEST}': ship it first")
    estimator = build_estimator(model, str(out_dir / entries[model]["file"]), flip_test=True, download=False,
                                precision="int8")
    entry = {**entries[model], "ap_int8": round(gt_box_ap(estimator, val_dir), 4)}
    update_manifest(out_dir, model, entry)
    return entry


def half_state_dict(weights: Path) -> dict[str, torch.Tensor]:
    """Floating tensors as float16 (BN running statistics included; counters stay int64)."""
    return {k: v.half() if v.is_floating_point() else v for k, v in read_state_dict(weights).items()}


def update_manifest(folder: Path, model: str, entry: dict) -> None:
    path = folder / MANIFEST
    entries = json.loads(path.read_text()) if path.is_file() else {}
    entries[model] = entry
    path.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n")


def ship(model: str, weights: Path, input_size: tuple[int, int] | None, val_dir: str, out_dir: Path,
         max_ap_drop: float = 0.005) -> dict:
    """Evaluate, round, re-evaluate, write the file and its manifest entry; returns the entry.

    The input size (unless given) and the flip shift come from what the checkpoint's run recorded."""
    recorded = crop_settings(model, weights)
    input_size, shift = input_size or recorded.input_size, recorded.flip_shift
    ap32 = val_ap(model, weights, input_size, val_dir, shift)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{model}_project.pth"
    with tempfile.TemporaryDirectory() as tmp:
        half = Path(tmp) / target.name
        torch.save(half_state_dict(weights), half)
        ap16 = val_ap(model, half, input_size, val_dir, shift)
        if ap32 - ap16 > max_ap_drop:
            raise LpnError(f"float16 costs {ap32 - ap16:.4f} AP (> {max_ap_drop}); not shipped")
        target.write_bytes(half.read_bytes())
    entry = {"file": target.name, "sha256": file_sha256(target), "input_size": list(input_size),
             "ap": round(ap16, 4), "ap_fp32": round(ap32, 4), "protocol": "coco_val2017, GT boxes, flip test",
             "flip_shift": shift}
    update_manifest(out_dir, model, entry)
    return entry


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.ship", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--weights", type=Path, help="trained checkpoint (not with --int8)")
    p.add_argument("--input-size", type=parse_size, help="HxW it was trained at (default: what its run recorded)")
    p.add_argument("--int8", action="store_true", help="measure the bundled file's INT8 AP instead of shipping")
    p.add_argument("--val", required=True, help="held-out COCO folder, e.g. ../shared/data/coco_val2017")
    p.add_argument("--out", type=Path, default=BUNDLED_DIR)
    p.add_argument("--max-ap-drop", type=float, default=0.005)
    return p


def run(args: argparse.Namespace) -> int:
    if args.int8:
        entry = int8_ap(check_model_name(args.model), args.val, args.out)
    elif args.weights is None:
        raise LpnError("--weights is needed to ship a checkpoint (or --int8 to measure a bundled file)")
    else:
        entry = ship(check_model_name(args.model), args.weights, args.input_size, args.val, args.out, args.max_ap_drop)
    print(json.dumps({args.model: entry}))
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
