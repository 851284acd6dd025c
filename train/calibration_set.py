"""``python -m train.calibration_set --people ../shared/data/people/sports100``: the INT8 calibration crops.

Writes ``assets/calibration/``: one 256x192 person crop (JPEG) per sport folder, cut around the largest
person the bundled YOLOX-nano finds (box padded like the pipeline's crops, LPN_SPEC §4.2), and
``SOURCES.tsv`` naming each crop's photo. The photos are the CC0 "100 Sports Image Classification" set,
so the crops may ship. ``lpn_core.quantize`` resizes them to the weights' input size and calibrates
ONNX Runtime's static INT8 quantization on them; coco_val2017 is never used here.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from lpn_core import transforms
from lpn_core.detector import load_detector
from lpn_core.errors import DataError
from lpn_core.quantize import CALIBRATION_DIR, CROP_SIZE, SOURCES

MIN_HEIGHT_FRACTION = 0.4  # the person fills at least this much of the photo's height


def largest_person(detector, image: np.ndarray) -> np.ndarray | None:
    """The largest box (4,) tall enough to be a usable crop, or None."""
    found = detector(image)
    if len(found) == 0:
        return None
    boxes = found.boxes
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    box = boxes[int(np.argmax(areas))]
    return box if box[3] - box[1] >= MIN_HEIGHT_FRACTION * image.shape[0] else None


def person_crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The 256x192 BGR crop the pipeline would cut for ``box``."""
    centers, sizes = transforms.box_to_center_size(box[None])
    height, width = CROP_SIZE
    affines = transforms.crop_affines(centers, sizes, 0.0, (height, width))
    return transforms.warp_crops(image, affines, (height, width))[0]


def build(people: Path, out: Path, per_folder: int = 1, limit: int = 64) -> int:
    """Write up to ``limit`` crops (``per_folder`` per sport folder) and SOURCES.tsv; returns the count."""
    detector = load_detector(None, conf=0.5, allow_download=False)
    out.mkdir(parents=True, exist_ok=True)
    rows = ["file\tsource\tlicence"]
    for folder in sorted(p for p in people.iterdir() if p.is_dir()):
        taken = 0
        for photo in sorted(folder.glob("*.jpg")):
            if taken == per_folder or len(rows) > limit:
                break
            image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
            box = None if image is None else largest_person(detector, image)
            if box is None:
                continue
            name = f"{folder.name}_{photo.stem}.jpg"
            cv2.imwrite(str(out / name), person_crop(image, box), [cv2.IMWRITE_JPEG_QUALITY, 90])
            rows.append(f"{name}\tpeople/sports100/{folder.name}/{photo.name}\tCC0-1.0")
            taken += 1
    (out / SOURCES).write_text("\n".join(rows) + "\n")
    return len(rows) - 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.calibration_set", description=__doc__.splitlines()[0])
    p.add_argument("--people", type=Path, required=True, help="folder of sport folders of photos (sports100)")
    p.add_argument("--out", type=Path, default=CALIBRATION_DIR)
    p.add_argument("--limit", type=int, default=64)
    return p


def run(args: argparse.Namespace) -> int:
    if not args.people.is_dir():
        raise DataError(f"'{args.people}' is not a folder; expected ../shared/data/people/sports100")
    print(f"wrote {build(args.people, args.out, limit=args.limit)} crops to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
