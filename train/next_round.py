"""``python -m train.next_round --hours 4``: the next round of LPN-50 training, from the best weights so far.

One command per session (docs/WEIGHTS.md, "Rounds"): it makes the teacher's pseudo-labels where they are
missing, plans the round's length from a time budget, and runs ``train.train`` with the round recipe
(``train/configs/lpn50_128x96_cpu_round.yaml``) initialised from ``--init`` (default: the bundled LPN-50,
which ``train.ship`` replaces whenever a round beats it). Run it in the background, niced, with its output
outside the work tree::

    nohup nice -n 19 python -m train.next_round --hours 4 --out ~/lpn-runs/round5 > ~/lpn-runs/round5.log 2>&1 &

Interrupted? ``python -m train.train --resume --out DIR`` continues it; ``--epochs N`` re-aims its cosine (while its
LR is above 0: a finished round is continued by the next round, not by more epochs).
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from lpn_core.errors import DataError
from lpn_core.weights import BUNDLED_DIR, bundled_weights

from . import pseudo_label
from . import train as train_cli

CONFIG = Path(__file__).parent / "configs" / "lpn50_128x96_cpu_round.yaml"
SHARED = Path("../shared/data")


@dataclass(frozen=True, slots=True)
class LabelSet:
    """Teacher labels the round trains on: a folder name under --labels and the pseudo_label flags that make it."""

    name: str
    flags: tuple[str, ...]


# Training labels: the teacher at imgsz 640, averaged with its mirrored pass. On the GT agreement folders
# downscaled to the 224-px photos' size, 0.702 of the kept joints lie within 0.05 x box size against 0.645 at
# imgsz 416 without flip, and it finds 540 of 835 people against 514 (docs/WEIGHTS.md, "Teacher pseudo-labels").
# The folder names carry the setting, so labels made under an older one are never mixed in.
TEACHER_FLAGS = ("--imgsz", "640", "--flip")
LABEL_SUFFIX = "_640f"


def label_sets(shared: Path, extra_images: list[Path]) -> list[LabelSet]:
    """The recipe's teacher-labelled sets (docs/WEIGHTS.md, "Data"); never anything under videos_tune/."""
    videos = shared / "videos"
    sources = [("pl_people", ("--images", str(shared / "people"))),
               ("pl_videos", ("--video", str(videos / "walk_away_720p.mp4"), "--video",
                              str(videos / "treadmill_360p.mp4"), "--video-every", "2")),
               ("pl_street", ("--video", str(videos / "openpose_street_multi_person_720p.avi")))]
    sources += [(f"pl_{folder.name}", ("--images", str(folder))) for folder in extra_images]
    return [LabelSet(name + LABEL_SUFFIX, flags + TEACHER_FLAGS) for name, flags in sources]


def val2_set(photos: Path) -> LabelSet:
    """The second validation set: teacher labels on photos never trained on, only confident people
    (box score >= 0.5, >= 10 joints over 0.5), so the labels are as close to ground truth as the teacher gets.
    It stays at imgsz 416, as first made, so that every round on the curve is measured against the same labels."""
    return LabelSet("pl_val2", ("--images", str(photos), "--imgsz", "416", "--box-thr", "0.5", "--min-joints", "10"))


def has_labels(folder: Path) -> bool:
    """Whether ``folder`` holds a person-keypoints json (pseudo-labels or a COCO split)."""
    return any((folder / "annotations").glob("person_keypoints*.json"))


def ensure_labels(sets: list[LabelSet], labels: Path, teacher: Path, make: bool = True) -> list[Path]:
    """Folders of every label set, made with ``train.pseudo_label`` where missing (only named when not ``make``)."""
    folders = []
    for label_set in sets:
        folder = labels / label_set.name
        if not has_labels(folder):
            print(f"{'pseudo-labelling' if make else 'would pseudo-label'} {label_set.name} -> {folder}", flush=True)
            if not make:
                folders.append(folder)
                continue
            code = pseudo_label.main(["--teacher", str(teacher), *label_set.flags, "--out", str(folder)])
            if code:
                raise DataError(f"pseudo-labelling {label_set.name} failed")
        folders.append(folder)
    return folders


def default_init() -> Path:
    """The bundled LPN-50: the best weights so far, since train.ship replaces it only with better ones."""
    entry = bundled_weights("lpn50")
    if entry is None:
        raise DataError(f"no bundled LPN-50 in '{BUNDLED_DIR}': pass --init PATH")
    return entry.path


def plan_epochs(hours: float, samples_per_s: float, people: int, mixed_fraction: float) -> tuple[int, int]:
    """(epochs, mixed_until) that fill ``hours`` at ``samples_per_s`` (measured at 128x96); mixed-size epochs
    run about 1.5x faster (train.bench), so they count for less."""
    epoch_s_full = people / samples_per_s
    epoch_s_mixed = epoch_s_full / 1.5
    mean_epoch_s = mixed_fraction * epoch_s_mixed + (1 - mixed_fraction) * epoch_s_full
    epochs = max(1, int(hours * 3600 / mean_epoch_s))
    return epochs, max(0, math.floor(epochs * mixed_fraction)) if mixed_fraction > 0 else 0


def count_people(folders: list[Path]) -> int:
    """Training people in the folders (train.data's filters)."""
    from .data import load_instances, resolve_folder

    return sum(len(load_instances(resolve_folder(f, "train"), check_images=False)) for f in folders)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.next_round", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="run folder, outside the work tree (e.g. ~/lpn-runs/round5)")
    p.add_argument("--hours", type=float, default=4.0, help="training time to plan for (default 4)")
    p.add_argument("--samples-per-s", type=float, default=35.0,
                   help="128x96 training speed on this machine (python -m train.bench; default 35)")
    p.add_argument("--init", help="weights to start from (default: the bundled LPN-50)")
    p.add_argument("--shared", default=str(SHARED), help="the shared data folder (default ../shared/data)")
    p.add_argument("--labels", default=str(Path.home() / "lpn-data"), help="where pseudo-labels live (made if missing)")
    p.add_argument("--extra-images", action="append", default=[], metavar="DIR",
                   help="more photos of people to pseudo-label and train on (repeatable)")
    p.add_argument("--val2", metavar="DIR", help="second validation folder, labelled (COCO layout)")
    p.add_argument("--val2-photos", metavar="DIR", help="or: photos never trained on, labelled here by the teacher")
    p.add_argument("--mixed-fraction", type=float, default=0.7, help="share of epochs with mixed crop sizes")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides, as train.train")
    p.add_argument("--dry-run", action="store_true",
                   help="print the train.train command and stop (missing labels are named, not made)")
    return p


def mixed_size_flags(mixed_until: int) -> list[str]:
    """Overrides for ``mixed_until`` mixed-size epochs. None mixed means no mixed sizes at all: the config's
    ``mixed_until=0`` means *every* epoch mixes (the round config lists 64x48 and 128x96)."""
    if mixed_until > 0:
        return ["--set", f"mixed_until={mixed_until}"]
    return ["--set", "mixed_sizes=[]", "--set", "mixed_until=0"]


def train_argv(args: argparse.Namespace, folders: list[Path], epochs: int, mixed_until: int, init: Path) -> list[str]:
    shared = Path(args.shared)
    argv = ["--config", str(CONFIG), "--out", args.out, "--epochs", str(epochs), "--val", str(shared / "coco_val2017"),
            "--set", f"init_from={init}", *mixed_size_flags(mixed_until)]
    for folder in [shared / "coco_extra", shared / "coco_mini", *folders]:
        argv += ["--train", str(folder)]
    if args.val2:
        argv += ["--val2", args.val2]
    for item in args.set:
        argv += ["--set", item]
    return argv


def run(args: argparse.Namespace) -> int:
    shared = Path(args.shared)
    if not (shared / "coco_val2017").is_dir():
        raise DataError(f"shared data not found at '{shared}': pass --shared DIR")
    init = Path(args.init) if args.init else default_init()
    sets = label_sets(shared, [Path(d) for d in args.extra_images])
    teacher = shared / "teachers" / "yolo11n-pose.pt"
    labels, make = Path(args.labels).expanduser(), not args.dry_run
    folders = ensure_labels(sets, labels, teacher, make)
    if args.val2_photos and not args.val2:
        args.val2 = str(ensure_labels([val2_set(Path(args.val2_photos))], labels, teacher, make)[0])
    people = count_people([f for f in (shared / "coco_extra", shared / "coco_mini", *folders) if has_labels(f)])
    epochs, mixed_until = plan_epochs(args.hours, args.samples_per_s, people, args.mixed_fraction)
    argv = train_argv(args, folders, epochs, mixed_until, init)
    print(f"next round: {people} people, {epochs} epochs ({mixed_until} with mixed crop sizes), from {init}", flush=True)
    print("python -m train.train " + " ".join(argv), flush=True)
    if args.dry_run:
        return 0
    return train_cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
