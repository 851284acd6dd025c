"""Model loading off the GUI and inference threads: the latest request wins, the old model keeps running."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from lpn_core.errors import LpnError
from lpn_core.estimator import PoseEstimator, estimator_from_settings
from lpn_core.pipeline import Pipeline, PipelineSettings

from .report import unexpected

WARMUP_FRAME = np.zeros((360, 640, 3), np.uint8)
WARMUP_BOX = np.array([[0, 0, 192, 256]], np.float32)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A model built in the background: the estimator, plus a whole Pipeline when none existed yet."""

    estimator: PoseEstimator
    pipeline: Pipeline | None
    request: int


class ModelLoader(QObject):
    """Builds models off the GUI and inference threads; the latest request wins.

    A plain thread per request rather than a QThread: building LPN-152 for ONNX Runtime takes ~15 s
    here; closing the window must not wait for it, nor destroy a running QThread (which aborts the
    process). ``run_gui`` joins builds still in flight after the window has gone, before the
    interpreter exits (a thread killed inside torch/ORT at exit aborts the process). A superseded
    build skips its remaining steps and is dropped.
    """

    loaded = pyqtSignal(object)   # LoadedModel
    failed = pyqtSignal(str, int)  # message, request number

    def __init__(self) -> None:
        super().__init__()
        self._threads: list[threading.Thread] = []
        self._cancelled = threading.Event()
        self.latest = 0

    def request(self, settings: PipelineSettings, build_pipeline: bool) -> int:
        self.latest += 1
        thread = threading.Thread(target=self._build, args=(settings, build_pipeline, self.latest),
                                  name=f"lpn-model-loader-{self.latest}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return self.latest

    @property
    def busy(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def cancel(self) -> None:
        """Skip the remaining steps of builds in flight (the current step still finishes)."""
        self._cancelled.set()

    def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for builds in flight; True when none is left."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not self.busy

    def _build(self, settings: PipelineSettings, build_pipeline: bool, request: int) -> None:
        try:
            estimator = estimator_from_settings(settings)
            if self._cancelled.is_set() or request != self.latest:
                return  # closed or superseded: skip the rest
            estimator(WARMUP_FRAME, WARMUP_BOX)  # first runs allocate; pay that here, not in the live loop
            pipeline = None
            if build_pipeline:
                pipeline = Pipeline(settings, estimator=estimator)
                pipeline.process(WARMUP_FRAME)  # loads and compiles the detector lazily on first call
                pipeline.reset()
            self._emit(self.loaded, LoadedModel(estimator, pipeline, request))
        except LpnError as err:
            self._emit(self.failed, str(err), request)
        except Exception as err:  # noqa: BLE001 (see unexpected())
            self._emit(self.failed, unexpected(err), request)

    @staticmethod
    def _emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the window (and this QObject) closed while the model was building
            pass
