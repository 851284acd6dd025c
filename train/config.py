"""TrainConfig: the paper's recipe as one dataclass (LPN_SPEC §2.1), read from YAML, overridden from the CLI."""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lpn_core import codec
from lpn_core.errors import DataError, LpnError
from lpn_core.model import check_model_name

from .sizes import parse_sizes


@dataclass(slots=True)
class TrainConfig:
    """Every knob of a training run. Defaults are the released LPN COCO yaml (LPN_SPEC §2.1, §4)."""

    model: str = "lpn50"
    input_size: tuple[int, int] = (256, 192)  # (H, W) of the crop; heatmaps are H/4 x W/4 (§1.1)
    # data: folders resolved by train.data.resolve_folder, or explicit image dir / json pairs
    train_images: list[str] = field(default_factory=list)
    train_ann: list[str] = field(default_factory=list)
    val_images: str = ""
    val_ann: str = ""
    val_boxes: str | None = None  # COCO detection-results json (§4.6); None = ground-truth boxes
    val2_images: str = ""  # a second validation set (e.g. teacher-labelled photos never trained on)
    val2_ann: str = ""
    select_on: str = "val"  # model_best.pth by: val = the first set's AP (HRNet) | mean = mean AP of both
    # augmentation, §4.3
    scale_factor: float = 0.3
    rotation_factor: float = 40.0
    rotation_prob: float = 0.6
    flip: bool = True
    flip_prob: float = 0.5
    # optimisation, §2.1: Adam (default betas), no weight decay, MultiStep x0.1 at 90 and 120
    epochs: int = 150
    batch_size: int = 32  # per process; the paper's total is 32 on one GPU
    lr: float = 1e-3
    lr_steps: tuple[int, ...] = (90, 120)
    lr_factor: float = 0.1
    weight_decay: float = 0.0
    rounds: int = 1  # iterative training (§2.2): the paper used 7 for LPN-50
    # CPU-budget levers (docs/WEIGHTS.md); the defaults are the paper's
    init: str = "paper"  # paper = N(0, 0.001^2) (§1.8) | kaiming (LPN.init_weights_kaiming)
    lr_schedule: str = "step"  # step = MultiStep at lr_steps (§2.1) | cosine (to 0 at the last epoch)
    warmup_steps: int = 0  # linear LR warm-up over the first N optimiser steps of a round
    score_weights: bool = True  # pseudo-labels: joint loss weight = teacher confidence (keypoint_scores)
    init_from: str = ""  # start round 0 from these weights (a state dict, e.g. a smaller input size's best)
    sigma: float = 2.0  # Gaussian target sigma in heatmap px (§4.5)
    unbiased_targets: bool = False  # Gaussians centred at the sub-pixel joint (DARK), flip shift 0.75 px
    mixed_sizes: list[str] = field(default_factory=list)  # e.g. [64x48, 96x72, 128x96]: one drawn per batch
    mixed_until: int = 0  # epochs before this use mixed_sizes, later ones input_size; 0 = every epoch
    cache_images: bool = False  # decode each image once and keep it in memory (use with workers: 0)
    # evaluation, §4.6
    flip_test: bool = True
    eval_batch_size: int = 32
    in_vis_thre: float = 0.2
    oks_thre: float = 0.9
    eval_every: int = 1  # validate every N epochs (HRNet: every epoch); 0 = never
    # runtime
    seed: int = 0
    workers: int = 2
    threads: int = 0  # torch.set_num_threads on the CPU; 0 = all cores
    channels_last: bool = False
    amp: bool = True  # fp16 autocast on CUDA
    cpu_bf16: bool = False  # bf16 autocast on the CPU (worth it where lscpu shows avx512_bf16 / amx)
    device: str = "auto"  # auto | cpu | cuda
    max_train_samples: int = 0  # 0 = all; >0 keeps the first N instances (quick runs, tests)
    max_val_images: int = 0  # 0 = all

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/checkpoint-safe dict (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @property
    def flip_shift(self) -> float:
        """Flip-test shift in heatmap px that the targets call for (lpn_core.codec)."""
        return codec.UNBIASED_FLIP_SHIFT if self.unbiased_targets else 1.0

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(H, W) of the network output: stride 4 (§1.1)."""
        return self.input_size[0] // 4, self.input_size[1] // 4


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    """Convert a YAML/CLI value to the field's type; one-line LpnError if it does not fit."""
    default = getattr(TrainConfig(), name)
    try:
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(default, tuple):
            return tuple(type(default[0])(v) for v in value) if default else tuple(int(v) for v in value)
        if isinstance(default, list):
            return [str(v) for v in (value if isinstance(value, list) else [value])]
        if name == "val_boxes":
            return None if value in (None, "", "none", "null") else str(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise TypeError
            return int(value)
        return str(value)
    except (TypeError, ValueError):
        raise LpnError(f"config key '{name}': cannot use {value!r} (expected like {default!r})") from None


def apply_overrides(config: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """Set fields from a mapping, rejecting unknown keys with a suggestion."""
    for name, value in values.items():
        if name not in FIELDS:
            near = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f"did you mean '{near[0]}'?" if near else "see train/configs/lpn50_256x192.yaml"
            raise LpnError(f"unknown config key '{name}': {hint}")
        setattr(config, name, _coerce(name, value))
    return validate(config)


def validate(config: TrainConfig) -> TrainConfig:
    """Reject values that cannot train (one-line errors)."""
    check_model_name(config.model)
    h, w = config.input_size
    if h % 16 or w % 16 or h <= 0 or w <= 0:  # the backbone downsamples by 16 (§1.1)
        raise LpnError(f"input_size {h}x{w}: both sides must be positive multiples of 16 (e.g. 256x192, 128x96)")
    for name in ("epochs", "batch_size", "rounds", "eval_batch_size"):
        if getattr(config, name) < 1:
            raise LpnError(f"config key '{name}' must be >= 1, got {getattr(config, name)}")
    if config.init not in ("paper", "kaiming"):
        raise LpnError(f"config key 'init' must be 'paper' or 'kaiming', got '{config.init}'")
    if config.lr_schedule not in ("step", "cosine"):
        raise LpnError(f"config key 'lr_schedule' must be 'step' or 'cosine', got '{config.lr_schedule}'")
    if config.select_on not in ("val", "mean"):
        raise LpnError(f"config key 'select_on' must be 'val' or 'mean', got '{config.select_on}'")
    if config.sigma <= 0:
        raise LpnError(f"config key 'sigma' must be > 0, got {config.sigma}")
    parse_sizes(config.mixed_sizes)
    if len(config.train_images) != len(config.train_ann):
        raise LpnError("train_images and train_ann must have the same length (one json per image folder)")
    return config


def parse_set(items: list[str]) -> dict[str, Any]:
    """``['lr=1e-4', 'lr_steps=[5,8]']`` -> {'lr': 0.0001, 'lr_steps': [5, 8]} (values parsed as YAML)."""
    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise LpnError(f"--set expects key=value, got '{item}'")
        values[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return values


def load_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults <- YAML file <- overrides."""
    config = TrainConfig()
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise LpnError(f"cannot read config '{path}': {exc.strerror or exc}") from exc
        except yaml.YAMLError as exc:
            raise DataError(f"config '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(values, dict):
            raise DataError(f"config '{path}' must be a mapping of key: value")
    return apply_overrides(config, {**values, **(overrides or {})})
