"""Soak runs: does LPN Pose keep its memory, files, threads and speed over a long run?

    python -m benchmarks.soak --mode pipeline --minutes 30          # Pipeline on a looping video
    python -m benchmarks.soak --mode window --minutes 15 --switch-min 3   # the app, offscreen
    python -m benchmarks.soak --mode pipeline --minutes 0.5 --sample-s 5 --warmup-min 0.1 \\
        --weights untrained --detector none                         # a smoke run of the script itself

pipeline: lpn_core's Pipeline on a real video re-opened at its end (tracks reset, as the app does at a
loop), writing the annotated mp4 + keypoint JSON as the CLI does into a temporary folder whose pair of
files is closed, deleted and opened afresh every --rotate-min minutes (the disk does not fill).
window: app.MainWindow offscreen (QT_QPA_PLATFORM=offscreen) playing the video in a loop with "Process
every frame" on; every --switch-min minutes the next model (lpn50 -> lpn101 -> lpn152 -> lpn50 ...) is
chosen in the model dropdown and the Record button starts a recording, stopped (and deleted) half-way
to the next switch.

Every --sample-s seconds: RSS, open fds, Python and OS threads, frames (FPS over the interval); CSV to
--out. The verdict (benchmarks/soak_probe.py) after the first --warmup-min minutes: RSS growth < 5 %, the
last minute's FPS within 10 % of the first minute's, no thread growth, fds within +2 — comparing like
with like (the same model and recording state) in the window mode. Exit code 0 PASS, 1 FAIL, 2 error.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

os.environ.setdefault("YOLO_OFFLINE", "1")  # never download anything
os.environ.setdefault("YOLO_VERBOSE", "False")
ROOT = Path(__file__).resolve().parents[1]

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.soak_probe import (Every, Sample, app_threads, format_summary, summarize,  # noqa: E402
                                   take_sample, write_csv)
from lpn_core.backends import cpu_threads, limit_malloc_arenas  # noqa: E402
from lpn_core.draw import draw_poses, draw_stats  # noqa: E402
from lpn_core.errors import LpnError, SourceError  # noqa: E402
from lpn_core.model import list_models  # noqa: E402
from lpn_core.pipeline import Pipeline, PipelineSettings  # noqa: E402
from lpn_core.stream import JsonWriter, VideoSink, json_header, open_source  # noqa: E402
from lpn_core.types import FrameResult  # noqa: E402

SHARED = Path(os.environ.get("LPN_SHARED_DATA", ROOT.parent / "shared" / "data"))
WALK = SHARED / "videos" / "walk_away_720p.mp4"
MODEL_CYCLE = ("lpn50", "lpn101", "lpn152")


# --- pipeline mode -------------------------------------------------------------------------------------

def looping_frames(video: str | os.PathLike) -> Iterator[tuple[np.ndarray, float, bool]]:
    """(frame, media time in s counted across loops, first frame of a loop) from a video file, re-opened
    at its end for ever. Close the generator to release the file."""
    offset = 0.0
    while True:
        with open_source(video) as source:
            if source.is_camera or source.is_image:
                raise SourceError(f"'{video}' is not a video file: a soak loops a video")
            for n, frame in enumerate(source):
                yield frame, offset + source.timestamp_s(), n == 0
            if source.frames_read == 0:
                raise SourceError(f"'{video}' has no decodable frame")
            offset += (source.frames_read + source.skipped_frames) / source.fps


class RotatingOutputs:
    """The CLI's outputs (annotated mp4 + per-frame JSON) in ``folder``; ``rotate()`` closes both, deletes
    them and opens a fresh pair, so that a long run keeps at most one pair on disk."""

    def __init__(self, folder: str | os.PathLike, fps: float, size: tuple[int, int], meta: dict) -> None:
        self.folder, self.fps, self.size, self.meta = Path(folder), fps, size, meta
        self.rotations = 0
        self._open()

    def _open(self) -> None:
        stem = self.folder / f"soak_{self.rotations:04d}_pose"
        self.video = VideoSink(stem.with_suffix(".mp4"), self.fps, self.size)
        self.json = JsonWriter(stem.with_suffix(".json"), self.meta)

    def write(self, image: np.ndarray, result: FrameResult, time_s: float) -> None:
        self.video.write(image)
        self.json.write(result, time_s=time_s)

    def rotate(self) -> None:
        self.close()
        for path in (self.video.path, self.json.path):
            path.unlink(missing_ok=True)
        self.rotations += 1
        self._open()

    def close(self) -> None:
        self.video.close()
        self.json.close(complete=True)


def open_outputs(folder: Path, pipeline: Pipeline, video: str | os.PathLike) -> RotatingOutputs:
    """RotatingOutputs at the video's rate and size, with the CLI's JSON header."""
    with open_source(video) as source:
        fps, size, name, count = source.fps, source.size, source.name, source.frame_count
    meta = json_header(pipeline.settings, model=pipeline.estimator.model_name, untrained=pipeline.untrained,
                       detector=pipeline.detector.name, source=name, fps=fps, size=size, frame_count=count,
                       weights_label=pipeline.estimator.weights_label)
    return RotatingOutputs(folder, fps, size, meta)


def annotate(pipeline: Pipeline, result: FrameResult, fps: float | None) -> np.ndarray:
    """Skeletons and the stats readout, as the CLI draws them."""
    start = time.perf_counter()
    image = draw_poses(result.frame, result.poses, kpt_thr=pipeline.settings.kpt_thr)
    times = {**result.times_ms, "draw": (time.perf_counter() - start) * 1e3}
    estimator = pipeline.estimator
    return draw_stats(image, fps, times, len(result.poses), untrained=pipeline.untrained,
                      weights_label=f"{estimator.model_name} {estimator.weights_label}")


@dataclass(slots=True)
class PipelineRun:
    samples: list[Sample] = field(default_factory=list)
    loops: int = 0        # times the video started over
    rotations: int = 0    # times the outputs were closed, deleted and opened afresh


def pipeline_soak(pipeline: Pipeline, video: str | os.PathLike, sample: Every, *, max_s: float | None = None,
                  max_frames: int | None = None, outputs: str | os.PathLike | None = None,
                  rotate: Every | None = None, trim: bool = False,
                  report: Callable[[Sample], None] | None = None) -> PipelineRun:
    """Run ``pipeline`` on ``video`` in a loop until ``max_s`` seconds or ``max_frames`` frames; a Sample
    at the start, whenever ``sample`` fires and at the end (``trim``: see soak_probe). With ``outputs`` (a
    folder), write the mp4 + JSON there, rotated whenever ``rotate`` fires."""
    label = pipeline.estimator.model_name
    run, frames, last_fps = PipelineRun([take_sample(0.0, 0, label, trim=trim)]), 0, None
    if report:
        report(run.samples[0])
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(contextlib.closing(open_outputs(Path(outputs), pipeline, video))) \
            if outputs is not None else None
        frames_in = stack.enter_context(contextlib.closing(looping_frames(video)))
        for frame, stamp, first in frames_in:
            if first and frames:
                pipeline.reset()  # as the app does when a looping file starts over
                run.loops += 1
            result = pipeline.process(frame, frames, stamp)
            frames += 1
            if sink is not None:
                sink.write(annotate(pipeline, result, last_fps), result, stamp)
            now = time.monotonic() - started
            last_fps = frames / now if now > 0 else None
            done = (max_frames is not None and frames >= max_frames) or (max_s is not None and now >= max_s)
            if sink is not None and rotate is not None and rotate.due(frames, now) and not done:
                sink.rotate()
            if done or sample.due(frames, now):
                run.samples.append(take_sample(now, frames, label, trim=trim))
                if report:
                    report(run.samples[-1])
            if done:
                break
        run.rotations = sink.rotations if sink is not None else 0
    return run


def run_pipeline_mode(args: argparse.Namespace, report: Callable[[Sample], None]) -> tuple[list[Sample], dict]:
    settings = PipelineSettings(model=args.model, weights=args.weights, detector=args.detector, threads=args.threads)
    pipeline = Pipeline(settings)
    with tempfile.TemporaryDirectory(prefix="lpn_soak_") as folder:
        run = pipeline_soak(pipeline, args.video, Every(seconds=args.sample_s), max_s=args.minutes * 60,
                            outputs=None if args.no_outputs else folder,
                            rotate=Every(seconds=args.rotate_min * 60), trim=args.trim == "on", report=report)
    print(f"video started over {run.loops} times; outputs rotated {run.rotations} times", file=sys.stderr)
    return run.samples, {}


# --- window mode ---------------------------------------------------------------------------------------

def pump(ms: int) -> None:
    """Run the Qt event loop for ``ms`` milliseconds."""
    from PyQt6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def open_window(settings: PipelineSettings, video: str | os.PathLike, folder: Path, live: bool = False):
    """An app window playing ``video`` in a loop (every frame processed unless ``live``), its settings
    store and output folder in ``folder`` (the user's own are not touched). Needs a QApplication."""
    from app import MainWindow
    from app.settings import open_store

    window = MainWindow(settings, None, store=open_store(folder / "settings.ini"))
    window.state.output_dir = str(folder / "recordings")
    window.source_box.loop_check.setChecked(True)
    window.source_box.process_all_check.setChecked(not live)
    window.show()
    window.open_source(str(video))
    return window


def close_window(window, timeout_s: float = 120.0) -> None:
    """Close as the user does, then wait for a model build in flight (as run_gui does)."""
    window.close()
    if not window.loader.join(timeout_s):
        raise RuntimeError("a model build did not finish after the window closed")


class WindowSoak:
    """Drives an open window: every ``switch_s`` the next model of MODEL_CYCLE through the model dropdown
    and a recording through the Record button, stopped and deleted half-way to the next switch; a Sample
    whenever ``sample`` fires. Call ``tick()`` often while the Qt event loop runs."""

    def __init__(self, window, switch_s: float, sample: Every, trim: bool = True) -> None:
        self.window, self.switch_s, self.sample_every, self.trim = window, switch_s, sample, trim
        first = window.model_box.model_combo.currentData()
        start = MODEL_CYCLE.index(first) if first in MODEL_CYCLE else 0
        self.models = MODEL_CYCLE[start:] + MODEL_CYCLE[:start]
        self.phase, self.switches, self.recordings = 0, 0, 0
        self._frames0, self._started = self.processed(), time.monotonic()
        self.samples: list[Sample] = [self.sample()]
        self.set_recording(True)

    def processed(self) -> int:
        """Frames the window's pipeline processed (it paints at most MAX_PAINT_HZ of them)."""
        return self.window.inference.frames_processed

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def label(self) -> str:
        """What runs now: the model painted last, '+rec' while recording."""
        rendered = self.window.last_rendered
        return (rendered.model if rendered else "none") + ("+rec" if self.window.inference.writing("record") else "")

    def busy(self) -> bool:
        """A model is loading (the old one still runs)."""
        rendered = self.window.last_rendered
        return self.window.loader.busy or rendered is None or rendered.model != self.window.model_box.model_combo.currentData()

    def sample(self) -> Sample:
        return take_sample(self.elapsed(), self.processed() - self._frames0, self.label(), self.busy(),
                           trim=self.trim)

    def switch_model(self, model: str) -> None:
        """Choose ``model`` in the dropdown, as the user does."""
        self.window.model_box.model_combo.setCurrentIndex(self.window.model_box.model_combo.findData(model))
        self.switches += 1

    def set_recording(self, on: bool) -> None:
        """Press the Record button; a stopped recording is deleted (the disk does not fill)."""
        self.window.outputs.buttons["record"].setChecked(on)
        if on:
            self.recordings += self.window.inference.writing("record")
            return
        for path in Path(self.window.outputs.output_dir()).glob("*.mp4"):
            path.unlink(missing_ok=True)

    def tick(self) -> Sample | None:
        """Switch, record or stop recording when due; a new Sample, or None."""
        now = self.elapsed()
        phase = int(now // self.switch_s)
        if phase > self.phase:
            self.phase = phase
            self.switch_model(self.models[phase % len(self.models)])
            self.set_recording(True)
        elif self.window.inference.writing("record") and now - phase * self.switch_s >= self.switch_s / 2:
            self.set_recording(False)
        if self.sample_every.due(self.processed() - self._frames0, now):
            self.samples.append(self.sample())
            return self.samples[-1]
        return None


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        pump(50)
    return True


def run_window_mode(args: argparse.Namespace, report: Callable[[Sample], None]) -> tuple[list[Sample], dict]:
    os.environ["QT_QPA_PLATFORM"] = os.environ.get("QT_QPA_PLATFORM") or "offscreen"
    from PyQt6.QtWidgets import QApplication

    import app  # noqa: F401 (first: it undoes OpenCV's Qt plugin paths before a QApplication exists)

    qt_app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 (kept alive for the run)
    settings = PipelineSettings(model=args.model, weights=args.weights, detector=args.detector, threads=args.threads)
    before = app_threads()
    with tempfile.TemporaryDirectory(prefix="lpn_soak_") as folder:
        window = open_window(settings, args.video, Path(folder), live=args.live)
        if not wait_for(lambda: window.frames_shown > 0 or window.errors, 600):
            raise LpnError("the window showed no frame within 10 minutes")
        if not window.frames_shown:
            close_window(window)
            raise LpnError(window.errors[0])
        soak = WindowSoak(window, args.switch_min * 60, Every(seconds=args.sample_s), trim=args.trim != "off")
        report(soak.samples[0])
        while soak.elapsed() < args.minutes * 60:
            pump(100)
            if (new := soak.tick()) is not None:
                report(new)
        soak.samples.append(soak.sample())
        report(soak.samples[-1])
        close_window(window)
        errors = list(window.errors)
    del window, soak.window  # the last reference: the window and its model go
    gc.collect()
    print(f"{soak.switches} model switches, {soak.recordings} recordings; threads (without Qt's pool workers) "
          f"{before} before the window, {app_threads()} after closing it", file=sys.stderr)
    for message in errors:
        print(f"error shown: {message}", file=sys.stderr)
    return soak.samples, {"no error shown in the window": not errors}


# --- command line --------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("pipeline", "window"), default="pipeline")
    parser.add_argument("--video", default=str(WALK), help="video file played in a loop (default: walk_away_720p)")
    parser.add_argument("--minutes", type=float, help="length of the run (default: 30 pipeline, 15 window)")
    parser.add_argument("--sample-s", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--warmup-min", type=float, default=2.0, help="minutes before the verdict's reference")
    parser.add_argument("--model", default="lpn50", choices=list_models())
    parser.add_argument("--weights", help="LPN checkpoint (default: cache, download, bundled); 'untrained' allowed")
    parser.add_argument("--detector", help="as lpn-pose --detector (default: the bundled YOLOX-nano); 'none'")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--out", help="CSV of the samples (default: soak_<mode>.csv)")
    parser.add_argument("--rotate-min", type=float, default=3.0, help="pipeline: minutes between output rotations")
    parser.add_argument("--no-outputs", action="store_true", help="pipeline: write no mp4/JSON")
    parser.add_argument("--switch-min", type=float, default=3.0, help="window: minutes between model switches")
    parser.add_argument("--trim", choices=("on", "off"),
                        help="also sample the RSS after malloc_trim(0) and judge that (default: on in window mode, "
                             "where model switches leave freed memory with the allocator; off in pipeline mode)")
    parser.add_argument("--live", action="store_true",
                        help="window: play the video at its own speed instead of processing every frame")
    parser.add_argument("--malloc-arenas", type=int, default=2,
                        help="cap glibc's malloc arenas as lpn-pose does (default 2; 0 = glibc's default)")
    return parser


def print_sample(sample: Sample, previous: list[Sample]) -> None:
    """One progress line on stderr."""
    fps = (sample.frames - previous[-1].frames) / max(sample.t_s - previous[-1].t_s, 1e-9) if previous else 0.0
    previous.append(sample)
    trimmed = f" ({sample.rss_trim_mb:.1f} trimmed)" if sample.rss_trim_mb is not None else ""
    print(f"{sample.t_s / 60:6.2f} min  {sample.frames:7d} frames  {fps:6.2f} fps  "
          f"RSS {sample.rss_mb:7.1f} MiB{trimmed}  fds {sample.fds:3d}  threads {sample.os_threads:3d} OS / "
          f"{sample.py_threads} Python  {sample.label}{'  (loading)' if sample.busy else ''}",
          file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.malloc_arenas:
        limit_malloc_arenas(args.malloc_arenas)  # as lpn_pose_cli.main does
    args.minutes = args.minutes or (30.0 if args.mode == "pipeline" else 15.0)
    args.threads = args.threads or cpu_threads()
    torch.set_num_threads(args.threads)  # as the entry points do
    cv2.setNumThreads(args.threads)
    shown: list[Sample] = []
    run = run_pipeline_mode if args.mode == "pipeline" else run_window_mode
    try:
        samples, extra_checks = run(args, lambda s: print_sample(s, shown))
        out = write_csv(samples, args.out or f"soak_{args.mode}.csv")
        summary = summarize(samples, args.warmup_min * 60)
    except (LpnError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary.checks.update(extra_checks)
    print(format_summary(summary, f"soak {args.mode} ({args.model}, {Path(args.video).name}, "
                                  f"{os.getloadavg()[0]:.1f} load average at the end)"))
    print(f"wrote {out}")
    return 0 if summary.passed else 1


if __name__ == "__main__":
    sys.exit(main())
