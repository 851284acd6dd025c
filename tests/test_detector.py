"""Person detectors: the bundled YOLOX-nano (decode, real COCO people, integrity), class filtering, full frame,
the shared offline models, and resolution order and errors."""
from __future__ import annotations

from pathlib import Path

import json
import socket

import cv2
import numpy as np
import pytest

from conftest import shared_path
from lpn_core import detector as det
from lpn_core.detector import (BUNDLED, BUNDLED_SHA256, Detections, DetectorError, FullFrameDetector, YoloDetector,
                                load_detector, person_classes)
from lpn_core.yolox import YoloxDetector, decode, input_hw, letterbox, make_grids, nms, sha256_of

ANNOTATIONS = "coco_val2017/annotations/person_keypoints_val2017.json"


@pytest.fixture(scope="module")
def yolox() -> YoloxDetector:
    return YoloxDetector(BUNDLED, conf=0.3, iou=0.5, threads=2, sha256=BUNDLED_SHA256)


@pytest.fixture(scope="module")
def keypoint_people() -> dict[int, np.ndarray]:
    """image id -> ground-truth xyxy boxes (N, 4) of its keypoint-labelled, non-crowd people."""
    people: dict[int, list] = {}
    for ann in json.loads(shared_path(ANNOTATIONS).read_text())["annotations"]:
        if ann["num_keypoints"] > 0 and not ann["iscrowd"]:
            x, y, w, h = ann["bbox"]
            people.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    return {image_id: np.array(boxes, np.float32) for image_id, boxes in people.items()}


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


@pytest.mark.parametrize("model", ["person_yolo_normal_fall.pt", "yolov8n_int8_openvino_model"])
def test_an_ultralytics_detector_leaves_torchs_thread_count_alone(model: str, first_frame: np.ndarray) -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # Ultralytics would set cores - 1 (at load or first predict): 1 on two cores, also on one
    try:
        YoloDetector(shared_path(f"detectors/{model}"))(first_frame)
        assert torch.get_num_threads() == 2  # so a torch LPN after it still runs on every core
    finally:
        torch.set_num_threads(before)


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


def best_iou(truth: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """For each ground-truth box (N, 4), its best IoU with any of ``boxes`` (M, 4)."""
    top_left = np.maximum(truth[:, None, :2], boxes[None, :, :2])
    bottom_right = np.minimum(truth[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_t, area_b = (np.prod(b[:, 2:] - b[:, :2], axis=1) for b in (truth, boxes))
    return (inter / (area_t[:, None] + area_b[None, :] - inter)).max(axis=1, initial=0.0)


def coco_image(image_id: int) -> np.ndarray:
    return cv2.imread(str(shared_path(f"coco_val2017/images/{image_id:012d}.jpg")))


@pytest.mark.parametrize("image_id", [139, 785, 40083, 196141])
def test_yolox_finds_the_keypoint_labelled_people(image_id: int, yolox: YoloxDetector,
                                                   keypoint_people: dict[int, np.ndarray]) -> None:
    found = yolox(coco_image(image_id))
    assert found.boxes.dtype == np.float32 and found.scores.dtype == np.float32
    assert (best_iou(keypoint_people[image_id], found.boxes) >= 0.5).all()


def test_yolox_on_a_crowded_counter(yolox: YoloxDetector, keypoint_people: dict[int, np.ndarray]) -> None:
    """Image 34417: both labelled people found; the woman reaching out scores IoU 0.47, because her
    ground-truth box includes the outstretched arm and the detector's box does not."""
    image = coco_image(34417)
    found = yolox(image)
    ious = best_iou(keypoint_people[34417], found.boxes)
    assert ious.max() >= 0.75 and ious.min() >= 0.4
    height, width = image.shape[:2]
    assert (found.boxes >= 0).all() and (found.boxes <= [width, height, width, height]).all()  # clipped


def test_yolox_finds_the_walker(yolox: YoloxDetector, first_frame: np.ndarray) -> None:
    found = yolox(first_frame)
    assert len(found) == 1 and 540 < found.boxes[0, 0] < found.boxes[0, 2] < 740 and found.scores[0] > 0.5


def test_grids_stride_8_first_row_major() -> None:
    grid, strides = make_grids((416, 416))
    assert grid.shape == (3549, 2) and strides.shape == (3549, 1)
    assert grid[:3].tolist() == [[0, 0], [1, 0], [2, 0]] and grid[52].tolist() == [0, 1]  # (col, row)
    assert strides[2703, 0] == 8 and strides[2704, 0] == 16 and grid[2704 + 27].tolist() == [1, 1]
    assert strides[-1, 0] == 32 and grid[-1].tolist() == [12, 12]


def test_letterbox_top_left_pads_114_unnormalised() -> None:
    image = np.full((300, 500, 3), (10, 20, 30), np.uint8)  # BGR
    blob, ratio = letterbox(image, (416, 416))
    assert blob.shape == (1, 3, 416, 416) and blob.dtype == np.float32 and ratio == pytest.approx(0.832)
    assert blob[0, :, 0, 0].tolist() == [10, 20, 30] and blob[0, :, 249, 415].tolist() == [10, 20, 30]
    assert (blob[0, :, 250:] == 114).all()  # 300 rows * 0.832 = 249.6 -> 250


class FakeSession:
    """Stands in for onnxruntime: returns a given raw head output."""

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw

    def run(self, outputs, feeds: dict) -> list[np.ndarray]:
        assert feeds["images"].shape == (1, 3, 256, 416)  # 500 x 300 -> 416 x 250, rounded up to 32
        return [self.raw[None]]


def encode(box: list[float], ratio: float, stride: int, grid: np.ndarray, strides: np.ndarray) -> tuple[int, list]:
    """Inverse of the YOLOX decode: frame box xyxy -> (anchor index, dx dy log-w log-h) at ``stride``."""
    x1, y1, x2, y2 = np.array(box) * ratio
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    index = int(np.flatnonzero((strides[:, 0] == stride) & (grid[:, 0] == int(cx // stride))
                               & (grid[:, 1] == int(cy // stride)))[0])
    return index, [cx / stride - grid[index, 0], cy / stride - grid[index, 1],
                   np.log((x2 - x1) / stride), np.log((y2 - y1) / stride)]


def test_decode_round_trip_nms_and_clipping(yolox: YoloxDetector, monkeypatch: pytest.MonkeyPatch) -> None:
    image = np.zeros((300, 500, 3), np.uint8)
    ratio = 416 / 500
    grid, strides = make_grids((256, 416))
    raw = np.zeros((len(grid), 85), np.float32)
    cases = [  # frame box, stride, objectness, class scores {class: score}
        ([100, 50, 220, 290], 16, 0.9, {0: 0.8}),     # a person: kept, exactly
        ([104, 54, 224, 286], 8, 0.8, {0: 0.7}),      # the same person, lower score: NMS drops it
        ([400, 100, 560, 200], 32, 0.9, {0: 0.9}),    # a person leaving the frame: clipped to x = 500
        ([300, 20, 340, 60], 8, 0.9, {2: 0.95}),      # a car: not a person
        ([10, 200, 60, 280], 8, 0.5, {0: 0.5}),       # score 0.25 < conf 0.3
    ]
    for box, stride, objectness, classes in cases:
        index, reg = encode(box, ratio, stride, grid, strides)
        raw[index, :4], raw[index, 4] = reg, objectness
        for cls, score in classes.items():
            raw[index, 5 + cls] = score
    monkeypatch.setattr(yolox, "session", FakeSession(raw))
    found = yolox(image)
    assert found.scores.tolist() == pytest.approx([0.81, 0.72])
    np.testing.assert_allclose(found.boxes, [[400, 100, 500, 200], [100, 50, 220, 290]], atol=1e-3)


def test_bundled_file_is_intact() -> None:
    assert sha256_of(BUNDLED) == BUNDLED_SHA256


def test_default_is_the_bundled_yolox_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("YOLO_OFFLINE", raising=False)  # the default must not even look for the network
    monkeypatch.setenv("LPN_POSE_CACHE", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("the default detector touched the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    assert det.resolve_detector(None) == BUNDLED
    detector = load_detector(None, threads=1)
    assert isinstance(detector, YoloxDetector) and detector.name == str(BUNDLED) and not detector.full_frame
    assert not any(tmp_path.iterdir())  # nothing downloaded or cached


def test_yolox_file_name_loads_as_yolox(tmp_path: Path) -> None:
    copy = tmp_path / "yolox_nano_copy.onnx"
    copy.write_bytes(BUNDLED.read_bytes())
    assert isinstance(load_detector(copy, threads=1), YoloxDetector)


@pytest.mark.parametrize("content, message", [(None, "is missing"), (b"garbage" * 100, "is corrupt")])
def test_broken_bundled_file_is_one_line(content: bytes | None, message: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bundled = tmp_path / "yolox_nano_416x416.onnx"
    if content is not None:
        bundled.write_bytes(content)
    monkeypatch.setattr(det, "BUNDLED", bundled)
    with pytest.raises(DetectorError, match=f"{message}.*git checkout assets/detectors/") as err:
        load_detector()
    assert "\n" not in str(err.value)


def test_corrupt_yolox_path_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "yolox_s.onnx"
    bad.write_bytes(BUNDLED.read_bytes()[:50_000])
    with pytest.raises(DetectorError, match="cannot load detector") as err:
        load_detector(bad)
    assert "\n" not in str(err.value)


def test_yolox_input_follows_the_frame_and_det_imgsz() -> None:
    assert input_hw((720, 1280), 416) == (256, 416) and input_hw((1280, 720), 416) == (416, 256)
    assert input_hw((720, 1280), 320) == (192, 320) and input_hw((480, 480), 416) == (416, 416)
    assert load_detector(None, imgsz=320, threads=1).imgsz == 320
    with pytest.raises(DetectorError, match="--det-imgsz 300: YOLOX needs a multiple of 32"):
        load_detector(None, imgsz=300)


def test_a_frame_shaped_input_finds_what_the_square_export_finds(yolox: YoloxDetector) -> None:
    """The symbolic input size is sound: 416x256 on a 16:9 frame gives the boxes of the export's own
    416x416 (the same pixels at the same scale; only padding differs)."""
    import onnxruntime as ort

    frame = cv2.VideoCapture(str(shared_path("videos/openpose_street_multi_person_720p.avi"))).read()[1]
    square = ort.InferenceSession(str(BUNDLED), providers=["CPUExecutionProvider"])
    blob, ratio = letterbox(frame, (416, 416))
    boxes, scores = decode(square.run(None, {"images": blob})[0][0], *make_grids((416, 416)))
    keep = nms(boxes, scores, yolox.conf, yolox.iou)
    found = yolox(frame)
    assert len(found) == len(keep) >= 7
    square_boxes = np.clip(boxes[keep] / ratio, 0, [1280, 720, 1280, 720])
    ious = best_iou(square_boxes, found.boxes)
    assert ious.min() > 0.9 and np.median(ious) > 0.99
    np.testing.assert_allclose(np.sort(found.scores), np.sort(scores[keep]), atol=0.03)


def test_yolov8n_name_means_cache_then_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--detector yolov8n.pt``: the cached file, downloaded there when online; offline, a one-line error."""
    monkeypatch.setenv("LPN_POSE_CACHE", str(tmp_path))
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    with pytest.raises(DetectorError, match="yolov8n.pt is not in .* cannot be downloaded offline") as err:
        det.resolve_detector("yolov8n.pt")
    assert "\n" not in str(err.value)
    cached = tmp_path / "detectors" / "yolov8n.pt"
    cached.parent.mkdir()
    cached.write_bytes(b"x")
    assert det.resolve_detector("yolov8n.pt") == cached
    monkeypatch.setattr(det, "online", lambda: True)
    cached.unlink()
    assert det.resolve_detector("yolov8n.pt") == cached  # to be downloaded there by YoloDetector
