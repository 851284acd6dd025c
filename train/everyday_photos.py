"""``python -m train.everyday_photos --source DIR ... --out DIR``: rebuild the *everyday* photos on a new machine.

Rounds 11 on train on 4,220 photos from public repositories (docs/WEIGHTS.md, "Data"). Their folder, source
path and the first 16 hex digits of each file's sha256 are listed in ``docs/data/everyday_photos.tsv``. Given
extracted checkouts of the listed repositories (``git --git-dir=REPO.git archive HEAD | tar -x -C DIR``), this
copies each listed file to ``OUT/<folder>/<file>`` (PNG sources are re-saved as JPEG, as first done) and checks
its hash, so a round on another machine trains on the same photos. The COCO photos' source paths start with the
folder name their repository was extracted as (``coco128/``, ``ctiny/``, ``mini/``, ``tiny/``): extract those four
under one folder and pass that folder once. A file found in no ``--source`` is an error;
a re-encoded JPEG whose bytes differ (another OpenCV build) is counted and named, not fatal.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from lpn_core.errors import DataError

LIST = Path(__file__).resolve().parent.parent / "docs" / "data" / "everyday_photos.tsv"


@dataclass(frozen=True, slots=True)
class ListedPhoto:
    """One row of the photo list: where it goes, where it came from, and its hash prefix."""

    folder: str
    source_path: str
    file: str
    sha256_16: str


def read_list(path: Path) -> list[ListedPhoto]:
    """The rows of a photo list (tab-separated, with a header)."""
    try:
        with path.open(newline="") as handle:
            return [ListedPhoto(r["folder"], r["source_path"], r["file"], r["sha256_16"])
                    for r in csv.DictReader(handle, delimiter="\t")]
    except (OSError, KeyError) as exc:
        raise DataError(f"cannot read the photo list {path} ({exc}); restore it with git checkout docs/data/") from exc


def sha256_16(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def find_source(photo: ListedPhoto, sources: list[Path]) -> Path:
    """The photo's source file in the first checkout that holds its source path (``place`` checks the bytes)."""
    for root in sources:
        if (root / photo.source_path).is_file():
            return root / photo.source_path
    raise DataError(f"{photo.source_path} is in none of the --source folders; extract the repositories "
                    "docs/WEIGHTS.md lists for the everyday photos and pass each as --source")


def place(photo: ListedPhoto, source: Path, out: Path) -> bool:
    """Copy (or re-save as JPEG) one photo into ``out``; True where its hash matches the list."""
    target = out / photo.folder / photo.file
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix.lower() == target.suffix.lower():
        shutil.copyfile(source, target)
    else:
        image = cv2.imread(str(source), cv2.IMREAD_COLOR)
        if image is None or not cv2.imwrite(str(target), image):
            raise DataError(f"cannot re-save {source} as {target}; check the checkout and that the folder is writable")
    return sha256_16(target) == photo.sha256_16


def rebuild(photos: list[ListedPhoto], sources: list[Path], out: Path) -> list[ListedPhoto]:
    """Place every listed photo under ``out``; returns those whose bytes differ from the list."""
    differing = []
    for photo in tqdm(photos, desc="everyday photos", unit="photo"):
        if not place(photo, find_source(photo, sources), out):
            differing.append(photo)
    return differing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train.everyday_photos", description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, action="append", required=True,
                   help="an extracted checkout of a listed repository (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="folder to write <folder>/<file> under")
    p.add_argument("--list", type=Path, default=LIST, help="the photo list (default: %(default)s)")
    return p


def run(args: argparse.Namespace) -> int:
    photos = read_list(args.list)
    differing = rebuild(photos, args.source, args.out)
    print(f"{len(photos)} photos under {args.out}; {len(photos) - len(differing)} match the list byte for byte")
    for photo in differing[:10]:
        print(f"  differs: {photo.folder}/{photo.file} (from {photo.source_path})")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import cli_main

    return cli_main(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
