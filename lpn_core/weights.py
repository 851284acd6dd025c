"""Known checkpoints as data, and the resolver: explicit path -> cache -> download -> bundled -> error.

Official LPN checkpoints are on Google Drive only (LPN_SPEC §6). A downloaded file has no published
checksum, so it is verified by a strict load against the architecture before it enters the cache.
Files are always read with ``torch.load(..., weights_only=True)``: nothing in them is executed.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Final, Iterable, Mapping

import torch

from .assets import asset_path
from .errors import WeightsError
from .model import LPN, MODELS, check_model_name, count_params, create_model


@dataclass(frozen=True, slots=True)
class WeightSpec:
    """An official checkpoint: file name the yaml expects, Drive id, size and reported val AP."""

    model: str
    filename: str
    drive_id: str
    num_params: int  # repo convention, LayerNorm excluded (LPN_SPEC §1.7)
    reported_ap: float  # COCO val2017, detected boxes, flip (LPN_SPEC §5.1)
    sha256: str | None = None  # unknown: Drive was never reachable from here


WEIGHTS: Final[Mapping[str, WeightSpec]] = MappingProxyType({
    "lpn50": WeightSpec("lpn50", "lpn_50_256x192.pth", "1dldLwjOacXV_uGkbxfEIPPJEK_2A-Snp", 2_910_545, 69.1),
    "lpn101": WeightSpec("lpn101", "lpn_101_256x192.pth", "1sMMgZreTwVsNSwgJDgkJ06wMIdpC5JjJ", 5_352_306, 70.4),
    "lpn152": WeightSpec("lpn152", "lpn_152_256x192.pth", "1yDSs58ZjG_M5JWonKQkVaFBsTqoUC-o5", 7_375_763, 71.0),
})
UNTRAINED: Final = "untrained"  # --weights untrained: run with the §1.8 init, for tests and timing only
BUNDLED_DIR: Final = asset_path("weights")  # assets/weights in a checkout, lpn_pose_assets/weights installed

_NOTED: set[str] = set()  # models whose fall-through to the bundled file was already reported
MANIFEST: Final = "manifest.json"  # assets/weights/manifest.json: the bundled project-trained files
Downloader = Callable[[str, Path], None]


@dataclass(frozen=True, slots=True)
class BundledWeights:
    """A project-trained file shipped in ``assets/weights/`` (docs/WEIGHTS.md), as the manifest lists it."""

    model: str
    filename: str
    sha256: str
    input_size: tuple[int, int]  # (H, W) it was trained at; LPN is fully convolutional
    ap: float  # keypoint AP on coco_val2017 (GT boxes, flip test): the model card's number
    ap_int8: float | None = None  # the same AP after ONNX Runtime INT8 quantization (lpn_core.quantize)
    flip_shift: float = 1.0  # flip-test shift its targets call for (codec.UNBIASED_FLIP_SHIFT if unbiased)

    @property
    def path(self) -> Path:
        return BUNDLED_DIR / self.filename


@dataclass(frozen=True, slots=True)
class WeightsInfo:
    """What a resolved weights path is, for the overlay, the status bar and the JSON header."""

    path: Path | None
    kind: str  # official | project | file | untrained
    input_size: tuple[int, int]  # (H, W) crops to feed
    label: str  # e.g. "official", "project-trained, AP 0.31", "file lpn50.pth", "UNTRAINED"
    int8_ap_drop: float | None = None  # AP lost to INT8, where measured (bundled files)
    flip_shift: float = 1.0  # flip-test shift in heatmap px (the manifest's, else the paper's 1)


def bundled_weights(model: str, bundled_dir: Path | None = None) -> BundledWeights | None:
    """The manifest entry for ``model``, or None if nothing is bundled for it.

    A manifest that cannot be read is a one-line WeightsError: it ships with the code, so it is broken.
    """
    folder = bundled_dir or BUNDLED_DIR
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None
    try:
        entry = json.loads(manifest.read_text()).get(model)
        if entry is None:
            return None
        return BundledWeights(model, str(entry["file"]), str(entry["sha256"]),
                              (int(entry["input_size"][0]), int(entry["input_size"][1])), float(entry["ap"]),
                              None if entry.get("ap_int8") is None else float(entry["ap_int8"]),
                              float(entry.get("flip_shift", 1.0)))
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise WeightsError(f"'{manifest}' is damaged ({type(exc).__name__}); restore it with "
                           f"`git checkout assets/weights` or reinstall LPN Pose") from exc


CLEAR_AP_GAIN = 0.01
"""AP a slower model must add to be called better: the noise of 136 validation people (docs/WEIGHTS.md)."""


def best_bundled_model(models: Iterable[str], bundled_dir: Path | None = None) -> str | None:
    """Of ``models`` (cheapest first), the one the window marks as best offline, or None when fewer than two
    are bundled: a deeper model wins only if its bundled AP (the model card's number) beats the best cheaper
    one by ``CLEAR_AP_GAIN``, since deeper is not always better offline and a tie should cost no speed."""
    scored = [(m, e.ap) for m in models if (e := bundled_weights(m, bundled_dir)) is not None]
    if len(scored) < 2:
        return None
    best, best_ap = scored[0]
    for model, ap in scored[1:]:
        if ap >= best_ap + CLEAR_AP_GAIN:
            best, best_ap = model, ap
    return best


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_bundled(entry: BundledWeights) -> Path:
    """The bundled file after its sha256 check; a missing or altered file is a one-line WeightsError."""
    path = entry.path
    if not path.is_file():
        raise WeightsError(f"bundled weights '{path}' are missing; restore them with `git checkout assets/weights` "
                           f"(git lfs is not used) or pass --weights PATH")
    if file_sha256(path) != entry.sha256:
        raise WeightsError(f"bundled weights '{path}' are damaged (sha256 mismatch); restore them with "
                           f"`git checkout assets/weights` or reinstall LPN Pose")
    return path


def describe_weights(model: str, path: Path | None) -> WeightsInfo:
    """Kind, crop size and label of a resolved path (``None`` = untrained)."""
    spec_size = MODELS[check_model_name(model)].input_size
    if path is None:
        return WeightsInfo(None, "untrained", spec_size, "UNTRAINED")
    path = Path(path)
    entry = bundled_weights(model)
    if entry is not None and (path.resolve() == entry.path.resolve()
                              or path.name != WEIGHTS[model].filename and path.is_file()
                              and file_sha256(path) == entry.sha256):  # the bundled file or a copy of it
        drop = None if entry.ap_int8 is None else round(entry.ap - entry.ap_int8, 4)
        return WeightsInfo(path, "project", entry.input_size, f"project-trained, AP {entry.ap:.2f}", drop,
                           entry.flip_shift)
    if path.name == WEIGHTS[model].filename:
        return WeightsInfo(path, "official", spec_size, "official")
    return WeightsInfo(path, "file", spec_size, f"file {path.name}")


def cache_dir() -> Path:
    """``$LPN_POSE_CACHE``, else ``$XDG_CACHE_HOME/lpn-pose``, else ``~/.cache/lpn-pose``."""
    if os.environ.get("LPN_POSE_CACHE"):
        return Path(os.environ["LPN_POSE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lpn-pose"


@functools.lru_cache(maxsize=None)
def _network_reachable(host: str = "drive.google.com", timeout_s: float = 3.0) -> bool:
    """One probe per process: an offline machine pays the timeout once, not at every model switch."""
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def gdown_download(drive_id: str, dest: Path) -> None:
    """Fetch a Google Drive file with gdown (progress bar); OSError (TimeoutError when it stalls) on failure."""
    if not _network_reachable():
        raise OSError("Google Drive is not reachable")
    import gdown
    import requests

    try:
        got = gdown.download(id=drive_id, output=str(dest), quiet=False, timeout=(10, 60))
    except requests.exceptions.Timeout as exc:
        raise TimeoutError("Google Drive stopped answering") from exc
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 gdown's own DownloadError / FileURLRetrievalError
        text = " ".join(str(exc).split())
        raise OSError("Google Drive's download quota for the file is exceeded" if "Too many users" in text
                      else text[:160] or type(exc).__name__) from exc
    if got is None:
        raise OSError(f"gdown could not fetch Drive id {drive_id}")


def looks_like_html(path: Path) -> bool:
    """True when a 'checkpoint' is a web page (Google Drive's quota or sign-in page)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(512).lstrip().lower()
    except OSError:
        return False
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def download_failure(exc: BaseException, dest: Path) -> str:
    """Why a download gave no usable checkpoint, in a few words on one line."""
    if looks_like_html(dest):
        return "Google Drive sent a web page instead of the file, probably its download quota page (try later)"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return "the download timed out"
    if isinstance(exc, WeightsError):
        return "the downloaded file is incomplete or not an LPN checkpoint"
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"the download failed ({reason})"


LOAD_ERRORS: Final = (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError)


def load_failure_reason(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in a few words on one line. A file holding pickled
    objects other than tensors (possibly code) is refused before anything in it runs, and says so."""
    text = str(exc).strip()
    if isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in text.lower():
        if found := re.search(r"GLOBAL ([\w.]+)", text):
            return f"it holds pickled Python objects besides tensors ({found.group(1)}), refused unread: " \
                   "loading them could run code"
        return "its pickle is not a plain tensor checkpoint, refused unread: loading it could run code"
    return (text.splitlines()[0] if text else type(exc).__name__)[:120]


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file: a plain state_dict, ``module.``-prefixed, or a training
    checkpoint holding one under 'state_dict' or 'model'. One-line WeightsError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file '{path}' not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as exc:
        raise WeightsError(f"'{path}' is not a readable PyTorch checkpoint ({load_failure_reason(exc)}); "
                           "download it again or pass another --weights file") from exc
    if isinstance(data, dict):
        for key in ("state_dict", "model"):
            if isinstance(data.get(key), dict):
                data = data[key]
                break
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"'{path}' holds no state_dict of tensors; pass an LPN checkpoint (.pth)")
    return {k.removeprefix("module."): v for k, v in data.items()}


def guess_architecture(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Registered model whose stage depths match the keys, if any."""
    depths = tuple(len({k.split(".")[1] for k in state_dict if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    return next((name for name, spec in MODELS.items() if spec.blocks == depths), None)


def load_weights(model: LPN, path: str | os.PathLike, name: str | None = None) -> LPN:
    """Strictly load ``path`` into ``model``; a wrong architecture is a one-line WeightsError."""
    state_dict = read_state_dict(path)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        found = guess_architecture(state_dict)
        what = f"it holds {found} weights" if found else "its keys or shapes do not match LPN"
        raise WeightsError(f"'{path}' does not fit {name or 'this model'}: {what}; "
                           f"pick the matching --model or another --weights file") from exc
    return model


def model_with_weights(name: str, path: str | os.PathLike | None) -> LPN:
    """``name``'s network with ``path`` loaded strictly, or the paper's random init when ``path`` is None
    (what ``resolve_weights`` gives for 'untrained': tests and timing only)."""
    model = create_model(name, init=path is None)
    return model if path is None else load_weights(model, path, name)


def _verified_download(spec: WeightSpec, downloader: Downloader) -> tuple[Path | None, str]:
    """Download into a private folder in the cache; keep the file only if it loads strictly. The folder
    goes in every case (also on Ctrl-C), so nothing partial or corrupt stays behind. (path, "") or
    (None, why not)."""
    from .model import create_model

    target = cache_dir() / spec.filename
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=".download-", dir=target.parent))
    except OSError as exc:
        return None, f"the cache folder cannot be written ({exc.strerror or exc})"
    partial = workdir / f"{spec.filename}.part"
    try:
        downloader(spec.drive_id, partial)
        load_weights(create_model(spec.model, init=False), partial, spec.model)
        partial.replace(target)
        return target, ""
    except (OSError, WeightsError) as exc:
        return None, download_failure(exc, partial)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def resolve_weights(model: str, weights: str | os.PathLike | None = None, download: bool = True,
                    downloader: Downloader = gdown_download) -> Path | None:
    """Path of the weights to load for ``model``, or None for ``weights='untrained'``.

    Order: explicit path -> ``cache_dir()/<official name>`` -> Google Drive download (verified) ->
    the bundled project-trained file (sha256-checked, ``assets/weights/manifest.json``) -> WeightsError
    saying where to put the file. A failed download falls through to the bundled file with one line on stderr.
    """
    spec = WEIGHTS[check_model_name(model)]
    if weights is not None:
        if str(weights) == UNTRAINED:
            return None
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file '{path}' not found")
        return path
    cached = cache_dir() / spec.filename
    if cached.is_file():
        return cached
    why = ""
    if download:
        fetched, why = _verified_download(spec, downloader)
        if fetched is not None:
            return fetched
    entry = bundled_weights(model)
    if entry is not None:
        if download and model not in _NOTED:
            _NOTED.add(model)
            print(f"note: official {spec.filename} not downloaded: {why}; using the bundled project-trained "
                  f"{model} (AP {entry.ap:.2f} on coco_val2017, docs/WEIGHTS.md)", file=sys.stderr)
        return verified_bundled(entry)
    raise WeightsError(
        f"no weights for {model}: {f'{why}; ' if why else ''}put the official {spec.filename} (Google Drive id "
        f"{spec.drive_id}) in {cache_dir()}/ or pass --weights PATH (--weights {UNTRAINED} runs untrained, "
        "for testing only)")


def declared_params_match(spec: WeightSpec, model: LPN) -> bool:
    """The table's parameter count equals the built model's (a test checks every entry)."""
    return count_params(model) == spec.num_params
