"""What a soak run samples (RSS, open fds, threads, frames) and how it judges the samples.

No lpn_core and no Qt here: ``benchmarks/soak.py`` and ``tests/test_soak.py`` both use it.

Each sample carries a ``label`` (what was running: the model, "+rec" while recording) and ``busy`` (a
model was loading). The verdict compares like with like: RSS and FPS are compared between the first
and the last stretch of samples with the same label (a run of the pipeline has one label; the window
soak repeats each model and recording state), busy samples are left out, and fds and threads are
compared with the first steady sample after warm-up.

Memory: ``rss_mb`` is the resident set as the OS reports it. glibc keeps memory freed by a model build
(an ONNX export, torch's temporaries) for later reuse, so after a model switch the RSS stays higher
although nothing leaked (measured here: +150-200 MiB after switching LPN-50 -> LPN-101 -> LPN-50; after ``malloc_trim``
the same within 10 MiB). ``trim=True`` samples also record ``rss_trim_mb``, the RSS right
after ``malloc_trim(0)``: live memory, the figure the verdict then uses.
"""
from __future__ import annotations

import csv
import ctypes
import functools
import itertools
import os
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

try:
    import psutil
except ImportError:  # /proc/self/status instead
    psutil = None

RSS_LIMIT_PCT = 5.0   # RSS growth after warm-up, per configuration
FPS_TOLERANCE = 0.10  # last minute's FPS within 10 % of the first minute's after warm-up
FD_SLACK = 2          # open files may differ by this much (the rotated outputs, a recording)
QT_POOL_THREAD = "Thread (pooled)"  # Qt's thread-pool workers: created on demand, exit when idle


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement of this process, ``t_s`` seconds into the run, after ``frames`` frames."""

    t_s: float
    frames: int
    rss_mb: float
    fds: int
    py_threads: int
    os_threads: int
    label: str = ""
    busy: bool = False
    rss_trim_mb: float | None = None  # RSS right after malloc_trim(0), when sampled with trim=True

    @property
    def memory_mb(self) -> float:
        """The RSS the verdict uses: after malloc_trim when it was sampled so, else the plain RSS."""
        return self.rss_trim_mb if self.rss_trim_mb is not None else self.rss_mb


def rss_mb() -> float:
    """Resident memory of this process in MiB (psutil, else VmRSS of /proc/self/status)."""
    if psutil is not None:
        return psutil.Process().memory_info().rss / 2**20
    return _status_field("VmRSS") / 1024  # kB


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    """Threads of this process as the OS counts them (Python, ONNX Runtime, OpenCV, FFmpeg, Qt ...)."""
    return _status_field("Threads")


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 (glibc only)
        return libc
    except (OSError, AttributeError):
        return None


def trim_heap() -> bool:
    """Hand free heap memory back to the OS (glibc ``malloc_trim(0)``); False where that is not available."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def thread_names() -> list[str]:
    """The OS name of every thread of this process (/proc/self/task/*/comm)."""
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return names


def _status_field(name: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {name} in /proc/self/status")


def app_threads() -> int:
    """OS threads without Qt's thread-pool workers (started on demand by Qt, ended after 30 s idle)."""
    return sum(name != QT_POOL_THREAD for name in thread_names())


def take_sample(t_s: float, frames: int, label: str = "", busy: bool = False, trim: bool = False) -> Sample:
    """Measure this process now; with ``trim``, also the RSS after ``malloc_trim(0)``."""
    rss = round(rss_mb(), 2)
    trimmed = round(rss_mb(), 2) if trim and trim_heap() else None
    return Sample(round(t_s, 3), frames, rss, open_fds(), threading.active_count(), os_threads(), label, busy,
                  trimmed)


class Every:
    """A trigger that fires every ``seconds`` or every ``frames`` (whichever is given, or both)."""

    def __init__(self, seconds: float | None = None, frames: int | None = None) -> None:
        if seconds is None and frames is None:
            raise ValueError("give seconds or frames")
        self.seconds, self.frames = seconds, frames
        self._t, self._n = 0.0, 0

    def due(self, frames: int, t_s: float) -> bool:
        """True (and restart the count) when the interval has passed since the last time it fired."""
        hit = (self.seconds is not None and t_s - self._t >= self.seconds) or \
              (self.frames is not None and frames - self._n >= self.frames)
        if hit:
            self._t, self._n = t_s, frames
        return hit


def write_csv(samples: list[Sample], path: str | os.PathLike) -> Path:
    """Samples as CSV, with the FPS over the interval before each sample."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in fields(Sample)]
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow([*names, "fps"])
        for prev, cur in zip([None, *samples], samples):
            fps = "" if prev is None else round(interval_fps(prev, cur), 2)
            writer.writerow([asdict(cur)[n] for n in names] + [fps])
    return path


def interval_fps(a: Sample, b: Sample) -> float:
    return (b.frames - a.frames) / (b.t_s - a.t_s) if b.t_s > a.t_s else 0.0


# --- verdict -------------------------------------------------------------------------------------------

@dataclass(slots=True)
class LabelResult:
    """RSS and FPS of one configuration: its first stretch after warm-up against its last."""

    label: str
    rss_from: Sample
    rss_to: Sample
    fps_first: float
    fps_last: float
    window_s: float  # length of each FPS window

    @property
    def rss_growth_pct(self) -> float:
        return (self.rss_to.memory_mb - self.rss_from.memory_mb) / self.rss_from.memory_mb * 100

    @property
    def fps_ratio(self) -> float:
        return self.fps_last / self.fps_first if self.fps_first else 0.0


@dataclass(slots=True)
class Summary:
    samples: int
    minutes: float
    frames: int
    warmup_s: float
    reference: Sample                     # the first steady sample after warm-up
    labels: list[LabelResult] = field(default_factory=list)
    fds: tuple[int, int] = (0, 0)         # min, max of steady samples after warm-up
    os_threads: tuple[int, int] = (0, 0)
    py_threads: tuple[int, int] = (0, 0)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


def stretches(samples: list[Sample]) -> list[list[Sample]]:
    """Runs of two or more consecutive steady (not busy) samples with one label."""
    runs = [list(group) for (_, busy), group in itertools.groupby(samples, key=lambda s: (s.label, s.busy))
            if not busy]
    return [run for run in runs if len(run) >= 2]


def window_fps(run: list[Sample], window_s: float, from_end: bool) -> float:
    """Frames per second over the first (or last) ``window_s`` of a stretch."""
    ordered = run[::-1] if from_end else run
    start = ordered[0]
    end = next((s for s in ordered[1:] if abs(s.t_s - start.t_s) >= window_s - 1e-6), ordered[-1])
    a, b = (end, start) if from_end else (start, end)
    return interval_fps(a, b)


def compare_label(runs: list[list[Sample]], fps_window_s: float) -> LabelResult:
    """First stretch of a label against its last (one stretch: its start against its end)."""
    first, last = runs[0], runs[-1]
    span = (lambda r: r[-1].t_s - r[0].t_s)
    if first is last:
        window = min(fps_window_s, span(first) / 2)
        rss_from = first[0]
    else:  # each stretch's end, when its model had run longest
        window = min(fps_window_s, span(first), span(last))
        rss_from = first[-1]
    return LabelResult(first[0].label, rss_from, last[-1], window_fps(first, window, False),
                       window_fps(last, window, True), window)


def summarize(samples: list[Sample], warmup_s: float, fps_window_s: float = 60.0,
              rss_limit_pct: float = RSS_LIMIT_PCT, fps_tolerance: float = FPS_TOLERANCE,
              fd_slack: int = FD_SLACK) -> Summary:
    """Judge a soak: RSS growth, FPS drift, fd and thread growth after warm-up (see the module doc).

    A configuration is judged when it ran in two stretches after warm-up, or when it is the only one.
    """
    after = [s for s in samples if s.t_s >= warmup_s - 1e-6]
    steady = [s for s in after if not s.busy]
    if len(steady) < 2:
        raise ValueError(f"too few samples after the warm-up ({len(steady)} steady of {len(samples)}): "
                         "run longer or sample more often")
    ref = steady[0]
    by_label: dict[str, list[list[Sample]]] = {}
    for run in stretches(after):
        by_label.setdefault(run[0].label, []).append(run)
    judged = [compare_label(runs, fps_window_s) for runs in by_label.values()
              if len(by_label) == 1 or len(runs) >= 2]
    judged = [r for r in judged if r.rss_to.t_s > r.rss_from.t_s]
    summary = Summary(len(samples), samples[-1].t_s / 60, samples[-1].frames, warmup_s, ref, judged,
                      spread(steady, "fds"), spread(steady, "os_threads"), spread(steady, "py_threads"))
    summary.checks = {
        "configurations compared": bool(judged),
        f"RSS growth < {rss_limit_pct:g} %": all(r.rss_growth_pct < rss_limit_pct for r in judged),
        f"FPS within {fps_tolerance:.0%}": all(abs(r.fps_ratio - 1) <= fps_tolerance for r in judged),
        f"fds no growth (+{fd_slack} allowed)": summary.fds[1] <= ref.fds + fd_slack,
        "threads no growth": summary.os_threads[1] <= ref.os_threads and summary.py_threads[1] <= ref.py_threads,
    }
    return summary


def spread(samples: list[Sample], name: str) -> tuple[int, int]:
    values = [getattr(s, name) for s in samples]
    return min(values), max(values)


def format_summary(summary: Summary, title: str) -> str:
    """The printed report: one line per quantity, then PASS/FAIL per target and overall."""
    ref = summary.reference
    lines = [f"{title}: {summary.minutes:.1f} min, {summary.frames} frames, {summary.samples} samples, "
             f"warm-up {summary.warmup_s / 60:g} min"]
    for r in summary.labels:
        name = f" [{r.label}]" if r.label else ""
        trimmed = r.rss_from.rss_trim_mb is not None
        raw = f" (plain RSS {r.rss_from.rss_mb:.1f} -> {r.rss_to.rss_mb:.1f} MiB)" if trimmed else ""
        lines.append(f"RSS{' after malloc_trim' if trimmed else ''}{name}: {r.rss_from.memory_mb:.1f} MiB at "
                     f"{r.rss_from.t_s / 60:.1f} min -> {r.rss_to.memory_mb:.1f} MiB at {r.rss_to.t_s / 60:.1f} min "
                     f"({r.rss_growth_pct:+.1f} %){raw}")
        lines.append(f"FPS{name}: {r.fps_first:.2f} (first {r.window_s:.0f} s) -> {r.fps_last:.2f} "
                     f"(last {r.window_s:.0f} s), ratio {r.fps_ratio:.3f}")
    lines.append(f"fds after warm-up: min {summary.fds[0]}, max {summary.fds[1]} ({ref.fds} at "
                 f"{ref.t_s / 60:.1f} min)")
    lines.append(f"threads after warm-up: OS min {summary.os_threads[0]}, max {summary.os_threads[1]} "
                 f"({ref.os_threads} at {ref.t_s / 60:.1f} min); Python min {summary.py_threads[0]}, "
                 f"max {summary.py_threads[1]} ({ref.py_threads})")
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}" for name, ok in summary.checks.items()]
    lines.append(f"overall: {'PASS' if summary.passed else 'FAIL'}")
    return "\n".join(lines)
