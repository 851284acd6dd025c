"""What the window remembers between runs (QSettings), and how it meets the command line."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from PyQt6.QtCore import QSettings, QStandardPaths

ORGANIZATION = "LPN Pose"
APPLICATION = "LPN Pose"

# PipelineSettings fields the window remembers; weights, detector and device come from the command line only
# (remembering "--weights untrained" would silently turn a real session into a fake one).
PIPELINE_FIELDS = ("model", "backend", "precision", "det_every", "kpt_thr", "smoothing")


@dataclass(slots=True)
class GuiState:
    """Remembered settings; the first six mirror PipelineSettings fields of the same name."""

    model: str = "lpn50"
    backend: str = "onnx"
    precision: str = "auto"
    det_every: int = 3  # PipelineSettings' default (tests/test_app_settings.py checks they agree)
    kpt_thr: float = 0.3
    smoothing: bool = True
    show_boxes: bool = True
    show_ids: bool = True
    process_all: bool = False       # video files: process every frame as fast as possible
    loop: bool = False              # video files: start again at the end
    camera_index: int = 0
    last_source: str = ""           # a file path or a camera index as text; reopened when none is given
    video_dir: str = ""             # where "Open video" starts
    output_dir: str = ""            # recordings, snapshots, keypoint JSON


def default_output_dir() -> str:
    movies = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    return str(Path(movies or Path.home()) / "LPN Pose")


def open_store(path: str | Path | None = None) -> QSettings:
    """The user's settings store, or an INI file at ``path`` (tests use a tmp file: no shared state)."""
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


def load_state(store: QSettings) -> GuiState:
    """Read every GuiState field; a missing or unreadable value keeps its default."""
    state = GuiState()
    for f in fields(GuiState):
        default = getattr(state, f.name)
        try:
            value = store.value(f"gui/{f.name}", default, type=type(default))
        except (TypeError, ValueError):
            value = default
        setattr(state, f.name, value)
    return state


def save_state(store: QSettings, state: GuiState) -> None:
    for f in fields(GuiState):
        store.setValue(f"gui/{f.name}", getattr(state, f.name))
    store.sync()


def merge(settings, state: GuiState, defaults) -> tuple[object, GuiState]:
    """The command line wins: a pipeline field still at its default (``defaults``, a fresh
    PipelineSettings) takes the remembered value; a field the user changed on the command line is kept
    and also becomes the window's state. Returns (settings, state), both new objects."""
    changes, state = {}, replace(state)
    for name in PIPELINE_FIELDS:
        given = getattr(settings, name)
        if given == getattr(defaults, name):
            changes[name] = getattr(state, name)
        else:
            setattr(state, name, given)
    return replace(settings, **changes), state
