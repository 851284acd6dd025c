"""What crops a weights file wants: its input size and flip-test shift, read from where they were recorded.

Order: the bundled manifest (``assets/weights/manifest.json``), a ``train.train`` checkpoint's own config, the
``config.yaml`` of the run folder a ``model_best.pth`` / ``final_state.pth`` lies in, else the architecture's
(the official checkpoints: 256x192, the paper's 1-px shift). So no tool evaluates 128x96 weights at 256x192.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from lpn_core.model import MODELS, check_model_name
from lpn_core.weights import LOAD_ERRORS, describe_weights

from .config import TrainConfig, apply_overrides


ARCHITECTURE_DEFAULT = "architecture default"  # CropSettings.source when nothing was recorded


@dataclass(frozen=True, slots=True)
class CropSettings:
    input_size: tuple[int, int]  # (H, W)
    flip_shift: float
    source: str  # where they were read, for the printed line


def _from_config(values: dict, source: str) -> CropSettings | None:
    try:
        config = apply_overrides(TrainConfig(), {k: values[k] for k in ("input_size", "unbiased_targets") if k in values})
    except Exception:  # noqa: BLE001 - an unreadable config only means "not recorded here"
        return None
    return CropSettings(tuple(config.input_size), config.flip_shift, source)


def _checkpoint_config(path: Path) -> dict | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS:
        return None
    return data.get("config") if isinstance(data, dict) and isinstance(data.get("config"), dict) else None


def _run_config(path: Path) -> dict | None:
    for folder in (path.parent, path.parent.parent):
        candidate = folder / "config.yaml"
        if candidate.is_file():
            try:
                values = yaml.safe_load(candidate.read_text())
            except (OSError, yaml.YAMLError):
                return None
            return values if isinstance(values, dict) else None
    return None


def crop_settings(model: str, weights: str | Path | None) -> CropSettings:
    """Input size (H, W) and flip shift for ``weights`` (None or 'untrained': the architecture's)."""
    spec = CropSettings(tuple(MODELS[check_model_name(model)].input_size), 1.0, ARCHITECTURE_DEFAULT)
    if weights is None or str(weights) == "untrained" or not Path(weights).is_file():
        return spec
    path = Path(weights)
    info = describe_weights(model, path)
    if info.kind == "project":
        return CropSettings(tuple(info.input_size), info.flip_shift, "bundled manifest")
    for values, source in ((_checkpoint_config(path), "checkpoint config"), (_run_config(path), "run config.yaml")):
        if values:
            found = _from_config(values, source)
            if found is not None:
                return found
    return spec
