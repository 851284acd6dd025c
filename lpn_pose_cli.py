"""LPN Pose command line: real-time top-down human pose estimation (person detector -> LPN -> Beta-Soft-Argmax).

    lpn-pose --camera 0                                   # the GUI on webcam 0 (or: python main.py --camera 0)
    lpn-pose --source walk.mp4 --no-gui                   # annotated video + JSON in runs/pose/
    lpn-pose --source photos/ --no-gui --coco-json r.json # a folder of images
    lpn-pose --source walk.mp4 --no-gui --csv poses.csv   # + one CSV row per person per frame (joint angles)

``lpn-pose`` (the installed console script) and ``python main.py`` (a checkout) both call ``main()`` here.
This module imports no Qt: the GUI (``app``) is imported only when it is opened.
Every user error is one line on stderr ("error: ...") and exit code 2; Ctrl-C exits 130 after closing
the outputs (the video plays and the JSON is valid, holding every frame processed so far).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from lpn_core import package_version
from lpn_core.backends import BACKENDS, cpu_threads, limit_malloc_arenas
from lpn_core.csv_export import CsvWriter
from lpn_core.draw import draw_poses, draw_stats, draw_untrained_banner
from lpn_core.errors import LpnError, OutputError, SourceError
from lpn_core.model import check_model_name, list_models
from lpn_core.pipeline import Pipeline, PipelineSettings
from lpn_core.quantize import PRECISIONS
from lpn_core.stream import (IMAGE_EXTENSIONS, CocoJsonWriter, FrameSource, JsonWriter, VideoSink, coco_image_id,
                             json_header, open_source, prepare_output)
from lpn_core.timing import FpsMeter
from lpn_core.types import FrameResult

RUNS_DIR: Final = Path("runs") / "pose"
DEFAULTS: Final = PipelineSettings()  # every option's default comes from here (tests/test_app_settings.py checks)
CAMERA_PROBE_FRAMES: Final = 20  # camera recordings: measure the real rate before opening the writer


def program_name() -> str:
    """How the user started us, for --help and --version: ``python main.py`` in a checkout, else ``lpn-pose``."""
    return "python main.py" if Path(sys.argv[0]).name == "main.py" else "lpn-pose"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(), formatter_class=argparse.RawDescriptionHelpFormatter,
        description="LPN Pose: real-time top-down human pose estimation on the CPU.\n"
                    "Without --no-gui it opens the desktop app; with --no-gui it writes an annotated video\n"
                    "(or images) and keypoint JSON.",
        epilog="examples:\n"
               "  %(prog)s --camera 0\n"
               "  %(prog)s --source walk.mp4 --no-gui --det-every 3\n"
               "  %(prog)s --source walk.mp4 --no-gui --weights untrained   # no weights: timing only\n"
               "  %(prog)s --source images/ --no-gui --coco-json results.json\n"
               "outputs default to runs/pose/<source name>_pose.{mp4,json}.")
    parser.add_argument("--version", action="version", version=f"lpn-pose {package_version()}")
    io = parser.add_argument_group("input and output")
    io.add_argument("--source", metavar="SRC", help="video file, camera index (0, 1, ...), image, or folder of images")
    io.add_argument("--camera", metavar="N", type=int, help="camera index; same as --source N")
    io.add_argument("--output", "-o", metavar="PATH",
                    help="annotated video (.mp4) or, for images, a folder (default: runs/pose/...)")
    io.add_argument("--json", metavar="PATH", help="per-frame keypoints JSON (default: next to --output)")
    io.add_argument("--csv", metavar="PATH", help="also write a CSV table: one row per person per frame (frame, time, "
                    "id, box, score, 17 x x/y/score, joint angles); pandas.read_csv reads it as is")
    io.add_argument("--coco-json", metavar="PATH", help="also write COCO keypoint results (image_id, keypoints, score)")
    io.add_argument("--max-frames", metavar="N", type=int, help="stop after N frames (cameras run until Ctrl-C)")
    io.add_argument("--no-gui", action="store_true", help="process headless and write files instead of opening the app")
    io.add_argument("--hide-stats", action="store_true", help="no FPS/latency readout on the output frames")

    model = parser.add_argument_group("pose model")
    model.add_argument("--model", default=DEFAULTS.model, metavar="NAME",
                       help=f"one of {', '.join(list_models())} (default %(default)s)")
    model.add_argument("--weights", metavar="PATH",
                       help="LPN checkpoint; default: cache, then download; 'untrained' = random init (tests only)")
    model.add_argument("--backend", default=DEFAULTS.backend, choices=BACKENDS,
                       help="inference backend (default %(default)s)")
    model.add_argument("--device", default=DEFAULTS.device, help="cpu or cuda (cuda needs --backend torch; "
                                                                 "default %(default)s)")
    model.add_argument("--precision", default=DEFAULTS.precision, choices=PRECISIONS,
                       help="LPN arithmetic on ONNX Runtime: int8, fp32, or auto = INT8 where its AP is within "
                            "0.01 of fp32 and it measures faster on this CPU (default %(default)s)")
    model.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=DEFAULTS.flip_test,
                       help="average with the mirrored crop: ~2x slower, a bit more accurate")
    model.add_argument("--kpt-thr", type=float, default=DEFAULTS.kpt_thr, metavar="T",
                       help="draw joints scoring above T (default %(default)s)")
    model.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: all cores)")

    people = parser.add_argument_group("people")
    people.add_argument("--detector", metavar="PATH",
                        help="YOLO .pt/.onnx file, *_openvino_model folder or yolox*.onnx; 'yolov8n.pt' = "
                             "cache, else download; 'none' = one person filling the frame (default: the bundled "
                             "YOLOX-nano, offline, Apache-2.0)")
    people.add_argument("--det-every", type=int, default=DEFAULTS.det_every, metavar="N",
                        help="run the detector every N frames; in between, follow the keypoints, unless a pose "
                             f"fades or more than {DEFAULTS.carry_max_people} people are tracked "
                             "(default %(default)s; 1 = every frame)")
    people.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=DEFAULTS.overlap,
                        help="run the detector on a worker thread beside the pose model, its boxes one frame "
                             "late: ~10 %% faster when detecting every frame (docs/PERFORMANCE.md)")
    people.add_argument("--det-conf", type=float, default=DEFAULTS.det_conf, metavar="C",
                        help="detector confidence (default %(default)s)")
    people.add_argument("--det-iou", type=float, default=DEFAULTS.det_iou, metavar="T",
                        help="detector NMS IoU (default %(default)s)")
    people.add_argument("--det-imgsz", type=int, metavar="PX",
                        help="detector input size: YOLO imgsz, or the long side of YOLOX's input (a multiple "
                             "of 32); default: the model's")
    people.add_argument("--max-people", type=int, default=DEFAULTS.max_people, metavar="N",
                        help="most people per frame (default %(default)s)")
    people.add_argument("--tracking", action=argparse.BooleanOptionalAction, default=DEFAULTS.tracking,
                        help="track ids across frames")
    people.add_argument("--smoothing", action=argparse.BooleanOptionalAction, default=DEFAULTS.smoothing,
                        help="One-Euro smoothing of each tracked person's keypoints")
    return parser


def settings_from_args(args: argparse.Namespace) -> PipelineSettings:
    """argparse namespace -> PipelineSettings (one-line errors for bad values)."""
    check_model_name(args.model)
    for name in ("det_every", "max_people", "max_frames", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise LpnError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    given = vars(args)  # every option named like a PipelineSettings field sets it; the rest keep its default
    return PipelineSettings(**{f.name: given[f.name] for f in fields(PipelineSettings) if f.name in given})


def set_threads(threads: int | None) -> int:
    """Thread counts, set once, here in the entry point (libraries never set them behind the caller's back)."""
    threads = threads or cpu_threads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return threads


def source_arg(args: argparse.Namespace) -> str | int | None:
    if args.camera is not None and args.source is not None:
        raise LpnError("give either --source or --camera, not both")
    if args.camera is not None:
        return args.camera
    return args.source


def default_stem(name: str, is_camera: bool) -> str:
    return f"camera{name.split()[-1]}" if is_camera else Path(name).stem


@dataclass(frozen=True)
class Outputs:
    """Where a headless run writes: ``media`` is the .mp4, an image file, or a folder of images."""

    media: Path
    json: Path
    coco: Path | None
    csv: Path | None = None
    media_is_folder: bool = False


def plan_outputs(args: argparse.Namespace, source: FrameSource) -> Outputs:
    """Output paths from the flags or the defaults under runs/pose/; each folder is created (or refused) now,
    before any model is built."""
    coco = Path(args.coco_json) if args.coco_json else None
    table = Path(args.csv) if args.csv else None
    if source.is_image:
        single = bool(args.output) and Path(args.output).suffix.lower() in IMAGE_EXTENSIONS and source.frame_count == 1
        media = Path(args.output) if args.output else RUNS_DIR / f"{Path(source.name).stem}_pose"
        json_path = Path(args.json) if args.json else (media.parent if single else media) / "poses.json"
        outputs = Outputs(media, json_path, coco, table, media_is_folder=not single)
    else:
        media = Path(args.output) if args.output else RUNS_DIR / f"{default_stem(source.name, source.is_camera)}_pose.mp4"
        outputs = Outputs(media, Path(args.json) if args.json else media.with_suffix(".json"), coco, table)
    prepare_output(outputs.media, is_folder=outputs.media_is_folder)
    for path in (outputs.json, outputs.coco, outputs.csv):
        if path is not None:
            prepare_output(path)
    return outputs


def run_gui(settings: PipelineSettings, source: str | int | None) -> int:
    try:
        from app import run_gui as app_run_gui
    except ImportError as exc:  # app/ not installed or PyQt6 missing: point at the headless mode
        raise LpnError(f"the GUI is not available ({exc}); run headless with --no-gui") from exc
    return int(app_run_gui(settings, source) or 0)


def annotate(result: FrameResult, pipeline: Pipeline, args: argparse.Namespace, fps: float | None) -> np.ndarray:
    """Draw the poses (and the readout) on a copy of the frame; record the draw time."""
    start = time.perf_counter()
    image = draw_poses(result.frame, result.poses, kpt_thr=args.kpt_thr)
    if args.hide_stats:
        if pipeline.untrained:
            draw_untrained_banner(image)
    else:
        times = {**result.times_ms, "draw": (time.perf_counter() - start) * 1e3}
        estimator = pipeline.estimator
        draw_stats(image, fps, times, len(result.poses), untrained=pipeline.untrained,
                   weights_label=f"{estimator.model_name} {estimator.weights_label}")
    result.times_ms["draw"] = (time.perf_counter() - start) * 1e3
    return image


def json_meta(settings: PipelineSettings, pipeline: Pipeline, source: FrameSource, video: bool) -> dict:
    """JSON header: what ran on which source (fps, size and frame count for videos)."""
    return json_header(settings, model=settings.model, untrained=pipeline.untrained, detector=pipeline.detector.name,
                       weights_label=pipeline.estimator.weights_label, precision=pipeline.estimator.precision,
                       source=source.name, fps=source.fps if video else None, size=source.size if video else None,
                       frame_count=source.frame_count if video else None)


def read_frames(source: FrameSource, limit: int | None, lost: list[str]) -> Iterator[np.ndarray]:
    """Frames of ``source``, at most ``limit``. A camera that stops (unplugged) ends them with a line in
    ``lost`` instead of an error: the outputs keep every frame before it."""
    for index in itertools.count():
        if limit and index >= limit:
            return
        try:
            frame = source.read()
        except SourceError as err:
            if not source.is_camera:
                raise
            lost.append(f"{err}; the outputs hold the {index} frames before it")
            return
        if frame is None:
            if source.is_camera:
                lost.append(f"{source.name} stopped delivering frames; the outputs hold the {index} frames before it")
            return
        yield frame


def frame_size(frame: np.ndarray, source: FrameSource) -> dict:
    """JSON extra for a frame whose size differs from the source's first: its keypoints are in its own pixels."""
    size = [frame.shape[1], frame.shape[0]]
    return {} if tuple(size) == tuple(source.size) else {"size": size}


def process_video(source: FrameSource, pipeline: Pipeline, settings: PipelineSettings, args: argparse.Namespace,
                  outputs: Outputs) -> int:
    """Video or camera -> annotated mp4 + JSON (+ COCO JSON, + CSV). Returns the number of frames processed."""
    video_path, json_path = outputs.media, outputs.json
    meta = json_meta(settings, pipeline, source, video=True)
    meter, pending, processed, lost = FpsMeter(), [], 0, []
    total = min(filter(None, (source.frame_count, args.max_frames)), default=None)
    with ExitStack() as stack:
        sink = None if source.is_camera else stack.enter_context(VideoSink(video_path, source.fps, source.size))
        writer = stack.enter_context(JsonWriter(json_path, meta))
        coco = stack.enter_context(CocoJsonWriter(outputs.coco)) if outputs.coco else None
        table = stack.enter_context(CsvWriter(outputs.csv)) if outputs.csv else None
        bar = stack.enter_context(tqdm(total=total, unit="frame", disable=None, dynamic_ncols=True))
        try:
            for index, frame in enumerate(read_frames(source, args.max_frames, lost)):
                stamp = None if source.is_camera else source.timestamp_s()
                result = pipeline.process(frame, index, stamp)
                pending.append(annotate(result, pipeline, args, meter.tick()))
                time_s = stamp if stamp is not None else time.time()
                writer.write(result, time_s=time_s, **frame_size(frame, source))
                if coco is not None:
                    coco.write(result, index)
                if table is not None:
                    table.write(result, time_s)
                if sink is None and len(pending) >= CAMERA_PROBE_FRAMES:  # camera: the rate really achieved
                    sink = stack.enter_context(VideoSink(video_path, meter.fps or source.fps, source.size))
                if sink is not None:
                    for image in pending:
                        sink.write(image)
                    pending.clear()
                processed += 1
                bar.update(1)
                bar.set_postfix(fps=f"{meter.fps or 0:.1f}", people=len(result.poses))
            if lost:
                writer.close(complete=False)
        finally:
            if sink is None and pending:  # a short (or interrupted) camera run: flush at the measured rate
                sink = stack.enter_context(VideoSink(video_path, meter.fps or source.fps, source.size))
                for image in pending:
                    sink.write(image)
    warn(*lost, source.skipped_note(), sink.resize_note() if sink is not None else None)
    if getattr(source, "truncated", False) and not args.max_frames:
        warn(f"decoded {source.frames_read} of the {source.frame_count} frames '{source.name}' announces: "
             "the file looks truncated; the outputs hold the decodable frames")
    return processed


def warn(*notes: str | None) -> None:
    """Each note as one 'warning: ...' line on stderr (None: nothing to say)."""
    for note in filter(None, notes):
        print(f"warning: {note}", file=sys.stderr)


def process_images(source: FrameSource, pipeline: Pipeline, settings: PipelineSettings, args: argparse.Namespace,
                   outputs: Outputs) -> int:
    """Image or folder -> annotated images in a folder (or one image file) + JSON (+ COCO JSON, + CSV)."""
    processed = 0
    with ExitStack() as stack:
        writer = stack.enter_context(JsonWriter(outputs.json, json_meta(settings, pipeline, source, video=False)))
        coco = stack.enter_context(CocoJsonWriter(outputs.coco)) if outputs.coco else None
        table = stack.enter_context(CsvWriter(outputs.csv)) if outputs.csv else None
        for index, frame in enumerate(source):
            if args.max_frames and index >= args.max_frames:
                break
            pipeline.reset()  # stills: no tracking or smoothing across images
            result = pipeline.process(frame, index, 0.0)
            image = annotate(result, pipeline, args, None)
            target = outputs.media / source.path.name if outputs.media_is_folder else outputs.media
            if not cv2.imwrite(str(target), image):
                raise OutputError(f"cannot write image '{target}'; choose a writable --output folder")
            writer.write(result, file=source.path.name, size=[frame.shape[1], frame.shape[0]])
            if coco is not None:
                coco.write(result, coco_image_id(source.path, index))
            if table is not None:
                table.write(result)
            processed += 1
    warn(*(f"skipped unreadable image '{path}'" for path in source.skipped))
    return processed


def describe_run(pipeline: Pipeline) -> str:
    """One line: model, weights, arithmetic and detector, e.g. for the log of a headless run."""
    est = pipeline.estimator
    return (f"{est.model_name} ({est.weights_label}) on {est.backend.name}, {est.precision_note or est.precision}; "
            f"detector {Path(str(pipeline.detector.name)).name}, every {pipeline.settings.det_every} frame(s)")


def run_headless(args: argparse.Namespace, settings: PipelineSettings, source_spec: str | int) -> int:
    with open_source(source_spec) as source:  # sources and outputs fail fast, before any model is built
        outputs = plan_outputs(args, source)
        pipeline = Pipeline(settings)
        if pipeline.untrained:
            print("warning: running with UNTRAINED weights: keypoints are meaningless (tests and timing only)",
                  file=sys.stderr)
        print(describe_run(pipeline), file=sys.stderr)
        process = process_images if source.is_image else process_video
        started = time.perf_counter()
        try:
            frames = process(source, pipeline, settings, args, outputs)
        except KeyboardInterrupt:
            print(f"\ninterrupted after {source.frames_read} frames; outputs closed and valid", file=sys.stderr)
            return 130
        seconds = time.perf_counter() - started
    print(f"processed {frames} frames in {seconds:.1f} s ({frames / max(seconds, 1e-9):.1f} fps)")
    for path in (outputs.media, outputs.json, outputs.coco, outputs.csv):
        if path is not None:
            print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, report user errors as one line (exit 2)."""
    os.environ.setdefault("YOLO_VERBOSE", "False")  # ultralytics: no per-frame logging
    limit_malloc_arenas()  # before the worker threads exist: RSS stays flat over hours (docs/RELIABILITY.md)
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        source = source_arg(args)
        settings.threads = set_threads(args.threads)
        if not args.no_gui:
            return run_gui(settings, source)
        if source is None:
            raise LpnError("nothing to process: pass --source VIDEO|IMAGE|FOLDER|CAMERA (or --camera N)")
        return run_headless(args, settings, source)
    except LpnError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
