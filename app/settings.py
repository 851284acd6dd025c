"""What the window remembers between runs (QSettings), and how it meets the command line.

``GuiState`` is the window's one record of what the user chose: the widgets start from it and write every
change back to it, and the pipeline's settings are derived from it (``pipeline_settings``). Its pipeline
fields take their defaults from ``PipelineSettings``, so the window, the CLI and the pipeline share them.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from PyQt6.QtCore import QSettings, QStandardPaths

from lpn_core.backends import BACKENDS
from lpn_core.model import list_models
from lpn_core.pipeline import PipelineSettings
from lpn_core.quantize import PRECISIONS

ORGANIZATION = "LPN Pose"
APPLICATION = "LPN Pose"

# PipelineSettings fields the window remembers; weights, detector and device come from the command line only
# (remembering "--weights untrained" would silently turn a real session into a fake one).
PIPELINE_FIELDS = ("model", "backend", "precision", "det_every", "kpt_thr", "smoothing")


@dataclass(slots=True)
class GuiState:
    """Remembered settings; the first six are the PipelineSettings fields of the same name."""

    model: str = PipelineSettings.model
    backend: str = PipelineSettings.backend
    precision: str = PipelineSettings.precision
    det_every: int = PipelineSettings.det_every
    kpt_thr: float = PipelineSettings.kpt_thr
    smoothing: bool = PipelineSettings.smoothing
    show_boxes: bool = True
    show_ids: bool = True
    show_hud: bool = True           # the readout (FPS, stage times, people, weights) on the frame
    show_analysis: bool = False     # the joint-angle and timing dock
    process_all: bool = False       # video files: process every frame as fast as possible
    loop: bool = False              # video files: start again at the end
    camera_index: int = 0
    last_source: str = ""           # a file path or a camera index as text; reopened when none is given
    video_dir: str = ""             # where "Open video" starts
    output_dir: str = ""            # recordings, snapshots, keypoint JSON and CSV


def default_output_dir() -> str:
    movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    return str(Path(movies or Path.home()) / "LPN Pose")


def open_store(path: str | Path | None = None) -> QSettings:
    """The user's settings store, or an INI file at ``path`` (tests use a tmp file: no shared state)."""
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


def load_state(store: QSettings) -> GuiState:
    """Read every GuiState field; a missing or unreadable value keeps its default; an unknown model,
    backend or precision (from an older version) falls back to a valid one."""
    state = GuiState()
    for f in fields(GuiState):
        default = getattr(state, f.name)
        try:
            value = store.value(f"gui/{f.name}", default, type=type(default))
        except (TypeError, ValueError):
            value = default
        setattr(state, f.name, value)
    return valid(state)


def valid(state: GuiState) -> GuiState:
    """``state`` with a model, backend and precision this version offers."""
    if state.model not in list_models():
        state.model = list_models()[0]
    if state.backend not in BACKENDS:
        state.backend = GuiState.backend
    if state.precision not in PRECISIONS:
        state.precision = GuiState.precision
    return state


def save_state(store: QSettings, state: GuiState) -> None:
    for f in fields(GuiState):
        store.setValue(f"gui/{f.name}", getattr(state, f.name))
    store.sync()


def merge(settings: PipelineSettings, state: GuiState, defaults: PipelineSettings) -> GuiState:
    """The command line wins: a pipeline field still at its default (``defaults``, a fresh PipelineSettings)
    keeps the remembered value; a field the user changed on the command line becomes the window's state.
    A weights file belongs to the model given with it. Returns a new, valid GuiState."""
    state = replace(state)
    for name in PIPELINE_FIELDS:
        given = getattr(settings, name)
        if given != getattr(defaults, name):
            setattr(state, name, given)
    if settings.weights not in (None, "untrained"):
        state.model = settings.model
    return valid(state)


def pipeline_settings(base: PipelineSettings, state: GuiState) -> PipelineSettings:
    """The command line's settings with the window's choices; a weights file applies only to the model it
    was given for ('untrained' and None, resolve by name, apply to every model)."""
    weights = base.weights if base.weights in (None, "untrained") or state.model == base.model else None
    chosen = {name: getattr(state, name) for name in PIPELINE_FIELDS}
    if state.backend != "onnx":  # the precision choice is ONNX Runtime's; PyTorch runs fp32
        chosen["precision"] = PipelineSettings.precision
    return replace(base, weights=weights, **chosen)
