"""``python -m train.photo_split --train-src DIR --val-src DIR --exclude DIR --out DIR``: photo folders for a round.

Splits a public collection of photos of people (e.g. the 100-sports set, Vigneshraj15/SportsActivityDetection,
CC0: its ``train/`` and ``test/`` folders) into ``OUT/extra/`` (more training photos) and ``OUT/val/`` (a
random sample of ``--val-count`` photos for the second validation set), so that no photo appears twice:
identical files (same bytes) are kept once, photos already in an ``--exclude`` folder (the shared
``people/sports100``) are left out, and a validation photo never also lands in the training folder.
Photos are copied; sub-folders (class names) are kept with spaces replaced by ``_``.
"""
from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sys
from pathlib import Path

from lpn_core.errors import DataError

from .pseudo_label import image_files


def content_hash(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def hashes(folders: list[Path]) -> set[str]:
    return {content_hash(p) for folder in folders for p in image_files(folder)}


def unique_photos(folder: Path, skip: set[str]) -> list[tuple[Path, str]]:
    """(path, hash) of each photo under ``folder`` whose bytes are in neither ``skip`` nor an earlier photo."""
    kept, seen = [], set(skip)
    for path in image_files(folder):
        digest = content_hash(path)
        if digest not in seen:
            seen.add(digest)
            kept.append((path, digest))
    return kept


def copy_photos(photos: list[Path], root: Path, out: Path) -> None:
    for path in photos:
        target = out / Path(*(part.replace(" ", "_") for part in path.relative_to(root).parts))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def split(train_src: Path, val_src: Path, exclude: list[Path], out: Path, val_count: int, seed: int = 0) -> tuple[int, int]:
    """Write OUT/val (a sample of val_src) and OUT/extra (train_src minus duplicates); returns the two counts."""
    excluded = hashes(exclude)
    train_hashes = hashes([train_src])
    val = unique_photos(val_src, excluded | train_hashes)
    random.Random(seed).shuffle(val)
    val = sorted(val[:val_count])
    extra = unique_photos(train_src, excluded | {digest for _, digest in val})
    copy_photos([p for p, _ in val], val_src, out / "val")
    copy_photos([p for p, _ in extra], train_src, out / "extra")
    return len(extra), len(val)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.photo_split", description=__doc__.splitlines()[0])
    p.add_argument("--train-src", type=Path, required=True, help="photos to train on (e.g. the repository's train/)")
    p.add_argument("--val-src", type=Path, required=True, help="photos to sample the validation set from (test/)")
    p.add_argument("--exclude", type=Path, action="append", default=[], help="photos already used (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="output folder, outside the work tree")
    p.add_argument("--val-count", type=int, default=900)
    return p


def run(args: argparse.Namespace) -> int:
    for folder in (args.train_src, args.val_src, *args.exclude):
        if not folder.is_dir():
            raise DataError(f"'{folder}' is not a folder of photos")
    extra, val = split(args.train_src, args.val_src, args.exclude, args.out, args.val_count)
    print(f"{extra} training photos -> {args.out / 'extra'}, {val} validation photos -> {args.out / 'val'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
