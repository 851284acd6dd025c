"""train.evaluate: the paper's test protocol on real COCO annotations (LPN_SPEC §3, §4.6)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lpn_core.backends import TorchBackend
from lpn_core.estimator import PoseEstimator
from lpn_core.model import create_model
from tests.conftest import shared_path
from train.data import CocoSplit, load_coco, load_instances
from train.evaluate import (COCO_SIGMAS, coco_eval, coco_results, detection_boxes, eval_boxes, main, oks_matrix,
                            oks_nms, predict, rescore)

VAL = "coco_val2017/annotations/person_keypoints_val2017.json"
VAL_538 = "coco_val2017/annotations/person_keypoints_val2017_538img_annotations_only.json"
DETS = "coco_val2017/person_detection_results/COCO_val2017_detections_AP_H_56_person_4img_subset.json"


def gt_as_predictions(instances) -> np.ndarray:
    """Ground-truth keypoints as (N, 17, 3) predictions: score 1 where labelled; unlabelled joints
    (which COCO's OKS ignores) sit at the box centre, as a network's guesses would sit on the person."""
    xy = np.where(instances.visible[..., None] > 0, instances.joints, instances.centers[:, None])
    return np.concatenate([xy, instances.visible[..., None]], axis=2).astype(np.float32)


def test_ground_truth_through_results_path_scores_ap_1() -> None:
    ann = shared_path(VAL)
    coco = load_coco(ann)
    instances = load_instances(CocoSplit(ann.parent.parent / "images", ann), coco)
    assert len(instances) == 136  # shared data README: 136 keypoint-labelled people
    results = coco_results(instances, gt_as_predictions(instances))
    stats = coco_eval(coco, results)
    assert len(results) == 136
    assert stats["AP"] == pytest.approx(1.0, abs=1e-6) and stats["AR"] == pytest.approx(1.0, abs=1e-6)


def test_ground_truth_at_scale_538_images() -> None:
    """1,354 people: AP 1.0 without NMS; with the protocol's OKS-NMS at 0.9 exactly the official
    file's near-duplicate annotations (pairs of GT poses with OKS > 0.9 to each other) are merged."""
    ann = shared_path(VAL_538)
    coco = load_coco(ann)
    instances = load_instances(CocoSplit(Path("unused"), ann), coco, check_images=False)
    assert len(instances) == 1354
    predictions = gt_as_predictions(instances)
    no_nms = coco_eval(coco, coco_results(instances, predictions, oks_thre=1.01))
    assert no_nms["AP"] == pytest.approx(1.0, abs=1e-6) and no_nms["AR"] == pytest.approx(1.0, abs=1e-6)

    results = coco_results(instances, predictions, oks_thre=0.9)
    duplicates = 0
    for image_id in np.unique(instances.image_ids):
        idx = np.flatnonzero(instances.image_ids == image_id)
        oks = oks_matrix(predictions[idx], instances.sizes[idx].prod(1))
        duplicates += int((np.triu(oks, 1) > 0.9).any(axis=0).sum())
    assert duplicates == 3 and len(results) == 1354 - duplicates
    assert coco_eval(coco, results)["AP"] >= 0.99


def reference_oks_nms(kpts: np.ndarray, scores: np.ndarray, areas: np.ndarray, thresh: float) -> list[int]:
    """HRNet's nms.oks_nms / oks_iou (in_vis_thre None), loop for loop."""
    variances = (COCO_SIGMAS * 2) ** 2
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        ious = []
        for j in order[1:]:
            d2 = ((kpts[j, :, :2] - kpts[i, :, :2]) ** 2).sum(-1)
            e = d2 / variances / ((areas[i] + areas[j]) / 2 + np.spacing(1)) / 2
            ious.append(np.exp(-e).mean())
        order = order[np.flatnonzero(np.array(ious) <= thresh) + 1]
    return keep


def test_oks_nms_matches_hrnet_reference() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 100, (6, 17, 2))
    kpts = np.concatenate([base[rng.integers(0, 6, 40)] + rng.normal(0, 2.5, (40, 17, 2)),
                           rng.uniform(0, 1, (40, 17, 1))], axis=2)
    scores, areas = rng.uniform(0, 1, 40), rng.uniform(500, 5000, 40)
    for thresh in (0.3, 0.7, 0.9):
        assert oks_nms(kpts, scores, areas, thresh).tolist() == reference_oks_nms(kpts, scores, areas, thresh)


def test_rescore_uses_joints_above_threshold_only() -> None:
    kpts = np.zeros((2, 17, 3), np.float32)
    kpts[0, :, 2] = 0.1
    kpts[0, :4, 2] = [0.9, 0.5, 0.3, 0.2]  # 0.2 is not > 0.2
    kpts[1, :, 2] = 0.1
    scores = rescore(kpts, np.array([0.5, 0.9]), 0.2)
    assert scores == pytest.approx([0.5 * (0.9 + 0.5 + 0.3) / 3, 0.0])


def test_detection_boxes_and_batched_predict_match_pose_estimator() -> None:
    """The 4-image AP-56.4 excerpt loads (118 boxes, centre/size as §4.2); crops batched across
    images give the same keypoints as lpn_core's PoseEstimator image by image."""
    ann = shared_path(VAL)
    coco = load_coco(ann)
    split = CocoSplit(ann.parent.parent / "images", ann)
    boxes = detection_boxes(shared_path(DETS), coco, split.images)
    assert len(boxes) == 118 and set(boxes.image_ids.tolist()) == {785, 40083, 196141, 197388}
    raw = json.loads(shared_path(DETS).read_text())[0]
    x, y, w, h = raw["bbox"]
    assert boxes.centers[0] == pytest.approx([x + w / 2, y + h / 2])
    assert boxes.sizes[0, 0] / boxes.sizes[0, 1] == pytest.approx(0.75) and boxes.sizes[0].max() == pytest.approx(1.25 * max(h, w / 0.75))

    few = boxes.subset(np.flatnonzero(np.isin(boxes.image_ids, [785, 40083]))[:7])
    estimator = PoseEstimator(TorchBackend(create_model("lpn50")), flip_test=True, input_size=(64, 48))
    batched = predict(estimator, few, batch_size=4)
    import cv2
    for image_id in np.unique(few.image_ids):
        idx = np.flatnonzero(few.image_ids == image_id)
        image = cv2.imread(few.image_paths[idx[0]])
        single = estimator.estimate(image, few.centers[idx], few.sizes[idx])
        np.testing.assert_allclose(batched[idx], single, atol=1e-3)


def test_eval_boxes_restricts_scoring_to_detected_images() -> None:
    ann = shared_path(VAL)
    coco = load_coco(ann)
    split = CocoSplit(ann.parent.parent / "images", ann)
    instances, ids = eval_boxes(split, coco, str(shared_path(DETS)))
    assert ids == [785, 40083, 196141, 197388] and len(instances) == 118
    instances, ids = eval_boxes(split, coco, None, max_images=10)
    assert ids == sorted(coco.getImgIds())[:10] and set(instances.image_ids) <= set(ids)


def test_cli_runs_on_detections_and_writes_results(tmp_path, capsys) -> None:
    out = tmp_path / "results.json"
    code = main(["--data", str(shared_path("coco_val2017")), "--weights", "untrained", "--boxes",
                 str(shared_path(DETS)), "--input-size", "64x48", "--max-images", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "AP50" in printed and "1 images" in printed
    results = json.loads(out.read_text())
    assert results and {"image_id", "category_id", "keypoints", "score"} <= results[0].keys()
    assert len(results[0]["keypoints"]) == 51


@pytest.mark.parametrize("case", ["missing_folder", "bad_json", "bad_boxes"])
def test_cli_errors_are_one_line(case: str, tmp_path, capsys) -> None:
    images = shared_path("coco_val2017/images")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    args = {"missing_folder": ["--data", str(tmp_path / "nowhere")],
            "bad_json": ["--images", str(images), "--ann", str(bad)],
            "bad_boxes": ["--data", str(shared_path("coco_val2017")), "--boxes", str(bad)]}[case]
    code = main([*args, "--weights", "untrained"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
