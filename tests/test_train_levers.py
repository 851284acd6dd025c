"""The CPU-budget levers of train/ (docs/WEIGHTS.md): init, growing LPN-50 into 101/152, warm-up,
bf16 autocast, confidence-weighted pseudo-labels, and the pseudo-label writer."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lpn_core.codec import FLIP_PERM
from lpn_core.model import create_model
from train.config import TrainConfig, apply_overrides
from train.data import CocoKeypoints, CocoSplit, load_instances
from train.grow import grow
from train.loop import autocast_context, build_optimizer, build_scheduler, cpu_has_bf16
from train.pseudo_label import (TeacherPerson, coco_document, downscale, match_teacher, merge_flipped, mirror_people,
                                person_annotation)


@pytest.mark.parametrize("name", ["lpn101", "lpn152"])
def test_grown_model_computes_what_the_small_one_did(name: str) -> None:
    torch.manual_seed(0)
    small = create_model("lpn50", init="kaiming")
    for module in small.modules():  # non-trivial BN statistics and affine params, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    big = grow(small, name)
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        assert torch.allclose(small.eval()(x), big.eval()(x), atol=1e-5)
    assert sum(p.numel() for p in big.parameters()) > sum(p.numel() for p in small.parameters())


def test_grown_checkpoint_keeps_the_crop_size_and_flip_shift_its_source_was_trained_with(tmp_path: Path) -> None:
    from lpn_core.codec import UNBIASED_FLIP_SHIFT
    from lpn_core.weights import load_weights
    from train.grow import main as grow_main
    from train.weights_meta import crop_settings

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("input_size: [128, 96]\nunbiased_targets: true\n")
    torch.save(create_model("lpn50", init="kaiming").state_dict(), run / "model_best.pth")
    out = tmp_path / "grown" / "lpn101.pth"
    assert grow_main(["--weights", str(run / "model_best.pth"), "--model", "lpn101", "--out", str(out)]) == 0
    settings = crop_settings("lpn101", out)
    assert settings.input_size == (128, 96) and settings.flip_shift == UNBIASED_FLIP_SHIFT
    assert settings.source == "checkpoint config"
    load_weights(create_model("lpn101", init=False), out, "lpn101")  # strict: every tensor is there


def test_kaiming_init_starts_each_residual_branch_at_zero() -> None:
    model = create_model("lpn50", init="kaiming")
    block = model.layer3[2]
    assert torch.count_nonzero(block.bn3.weight) == 0
    assert block.conv1.weight.std() > 0.01  # not the paper's 0.001
    assert torch.count_nonzero(block.att.channel_add_conv[-1].weight) == 0


def test_unknown_init_and_schedule_are_one_line_errors() -> None:
    from lpn_core.errors import LpnError

    with pytest.raises(LpnError, match="init"):
        apply_overrides(TrainConfig(), {"init": "xavier"})
    with pytest.raises(LpnError, match="lr_schedule"):
        apply_overrides(TrainConfig(), {"lr_schedule": "poly"})


def test_cosine_schedule_reaches_near_zero_and_bf16_autocast_is_cpu_only() -> None:
    model = create_model("lpn50", init=False)
    config = apply_overrides(TrainConfig(), {"lr_schedule": "cosine", "epochs": 10, "cpu_bf16": True})
    optimizer = build_optimizer(model, config)
    scheduler = build_scheduler(optimizer, config)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] < 0.03e-3 and all(a >= b for a, b in zip(lrs, lrs[1:]))
    context = autocast_context(torch.device("cpu"), config)
    assert context.fast_dtype == torch.bfloat16
    assert context._enabled == cpu_has_bf16()  # emulated bf16 (AVX2-only CPUs) is slower than fp32: off there


def _pseudo_label_folder(tmp_path: Path, image: np.ndarray, scores: list[float]) -> CocoSplit:
    import cv2

    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), image)
    kpts = np.stack([np.linspace(20, 60, 17), np.linspace(10, 110, 17)], 1)
    person = TeacherPerson(np.array([10.0, 5.0, 70.0, 120.0]), 0.9, kpts, np.array(scores))
    doc = coco_document([{"id": 1, "file_name": "a.jpg", "width": image.shape[1], "height": image.shape[0]}],
                        [person_annotation(person, 1, 1, kpt_thr=0.5)], "teacher.pt")
    ann = tmp_path / "annotations" / "person_keypoints.json"
    ann.write_text(json.dumps(doc))
    return CocoSplit(tmp_path / "images", ann)


def test_pseudo_labels_weight_each_joint_by_teacher_confidence(tmp_path: Path) -> None:
    scores = [0.9] * 10 + [0.6] * 5 + [0.2] * 2  # the last two fall under kpt_thr 0.5 -> v=0
    split = _pseudo_label_folder(tmp_path, np.full((128, 96, 3), 127, np.uint8), scores)
    instances = load_instances(split)
    np.testing.assert_allclose(instances.visible[0], [0.9] * 10 + [0.6] * 5 + [0.0] * 2, atol=1e-4)
    dataset = CocoKeypoints(instances, (128, 96), augment=None)
    _, target, weight = dataset[0]
    labelled = weight.numpy() > 0
    np.testing.assert_allclose(weight.numpy()[labelled], np.asarray(scores)[labelled], atol=1e-4)
    assert target.shape == (17, 32, 24)


def test_teacher_matching_is_greedy_by_iou() -> None:
    people = [TeacherPerson(np.array([0, 0, 10, 10.0]), 0.9, np.zeros((17, 2)), np.ones(17)),
              TeacherPerson(np.array([50, 50, 60, 60.0]), 0.9, np.zeros((17, 2)), np.ones(17))]
    matched = match_teacher(people, np.array([[51, 51, 60, 60.0], [0, 0, 10, 11.0], [200, 200, 210, 210.0]]))
    assert matched[0] is people[1] and matched[1] is people[0] and matched[2] is None


def test_teacher_flip_pass_maps_back_to_the_same_person() -> None:
    """A person seen on the mirrored image maps back onto the original: x -> width - x, left/right swapped."""
    width = 200
    keypoints = np.stack([np.linspace(40, 80, 17), np.linspace(10, 150, 17)], 1)
    person = TeacherPerson(np.array([30.0, 5.0, 90.0, 160.0]), 0.8, keypoints, np.linspace(0.1, 0.9, 17))
    seen_mirrored = TeacherPerson(np.array([width - 90.0, 5.0, width - 30.0, 160.0]), 0.6,
                                  np.stack([width - keypoints[FLIP_PERM, 0], keypoints[FLIP_PERM, 1]], 1),
                                  person.keypoint_scores[FLIP_PERM])
    back = mirror_people([seen_mirrored], width)[0]
    np.testing.assert_allclose(back.box, person.box)
    np.testing.assert_allclose(back.keypoints, person.keypoints)
    np.testing.assert_allclose(back.keypoint_scores, person.keypoint_scores)


def test_teacher_flip_merge_weights_joints_by_confidence_and_keeps_the_unmatched() -> None:
    zeros, far = np.zeros((17, 2)), np.full((17, 2), 10.0)
    near = TeacherPerson(np.array([0, 0, 20, 40.0]), 0.9, zeros, np.full(17, 0.9))
    alone = TeacherPerson(np.array([100, 0, 120, 40.0]), 0.5, zeros, np.full(17, 0.5))
    twin = TeacherPerson(np.array([1, 0, 21, 40.0]), 0.7, far, np.full(17, 0.1))
    merged = merge_flipped([near, alone], [twin])
    np.testing.assert_allclose(merged[0].keypoints, 1.0, atol=1e-4)  # 10 * 0.1 / (0.9 + 0.1)
    np.testing.assert_allclose(merged[0].keypoint_scores, 0.5)
    np.testing.assert_allclose(merged[0].box, [0.5, 0, 20.5, 40])
    assert merged[1] is alone and merge_flipped([], [twin]) == []


def test_agreement_downscale_shrinks_to_the_long_side_and_never_enlarges() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    small, scale = downscale(image, 224)
    assert small.shape == (168, 224, 3) and scale == pytest.approx(0.35)
    assert downscale(image, 1000)[1] == 1.0 and downscale(image, None)[0] is image


def test_round_zero_can_start_from_given_weights(tmp_path: Path) -> None:
    from train.schedule import load_start_weights

    source = create_model("lpn101", init="kaiming")
    path = tmp_path / "grown.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in source.state_dict().items()}, path)
    target = create_model("lpn101", init="paper")
    load_start_weights(target, path)
    for key, value in source.state_dict().items():
        assert torch.allclose(target.state_dict()[key].float(), value.float().half().float()), key
