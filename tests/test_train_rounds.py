"""The accuracy levers of a training round (docs/WEIGHTS.md, "Rounds"): unbiased targets and their flip
shift, mixed crop sizes, the image cache, a second validation set, recorded crop settings, next_round."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lpn_core import codec
from lpn_core.model import create_model
from lpn_core.weights import bundled_weights
from train.config import TrainConfig, apply_overrides
from train.data import Augment, CocoKeypoints, Targets, load_coco, load_instances, resolve_folder
from train.loop import Runtime, build_loader
from train.next_round import label_sets, plan_epochs, train_argv, build_parser
from train.schedule import selection_score
from train.sizes import SizedBatches, parse_sizes
from train.weights_meta import crop_settings

from tests.conftest import shared_path


def mean_centre(heatmaps: np.ndarray) -> np.ndarray:
    """Intensity-weighted centre (x, y) of each heatmap (N, K, H, W) -> (N, K, 2)."""
    h, w = heatmaps.shape[-2:]
    total = heatmaps.sum(axis=(-2, -1))
    return np.stack([(heatmaps.sum(-2) * np.arange(w)).sum(-1) / total,
                     (heatmaps.sum(-1) * np.arange(h)).sum(-1) / total], -1)


def test_unbiased_targets_peak_at_the_exact_joint_and_rounded_ones_at_the_rounded_pixel() -> None:
    joints = np.array([[[41.0, 50.0], [42.6, 61.3]]])  # input px; heatmap = / 4
    rounded, _ = codec.encode(joints, np.ones((1, 2)), (32, 24), 4.0, 2.0)
    exact, weights = codec.encode(joints, np.ones((1, 2)), (32, 24), 4.0, 2.0, unbiased=True)
    assert np.allclose(mean_centre(exact), joints / 4, atol=0.02)
    assert np.allclose(mean_centre(rounded), np.trunc(joints / 4 + 0.5), atol=0.02)
    assert weights.tolist() == [[1.0, 1.0]]


def flip_decode_error(unbiased: bool, shift: float) -> float:
    """Mean |x error| in heatmap px of flip-merged, decoded Gaussians at random sub-pixel joints."""
    rng = np.random.default_rng(0)
    joints = np.stack([rng.uniform(20, 76, (64, 17)), rng.uniform(20, 108, (64, 17))], -1)
    mirrored = joints[:, codec.FLIP_PERM].copy()
    mirrored[..., 0] = 96 - 1 - mirrored[..., 0]
    direct = codec.encode(joints, np.ones((64, 17)), (32, 24), 4.0, 2.0, unbiased)[0]
    flipped = codec.encode(mirrored, np.ones((64, 17)), (32, 24), 4.0, 2.0, unbiased)[0]
    coords, _ = codec.decode(codec.flip_merge(direct, flipped, shift=shift))
    return float(np.abs(coords[..., 0] - joints[..., 0] / 4).mean())


def test_flip_shift_of_three_quarters_fits_unbiased_targets() -> None:
    assert flip_decode_error(True, codec.UNBIASED_FLIP_SHIFT) < flip_decode_error(True, 1.0)
    assert flip_decode_error(True, codec.UNBIASED_FLIP_SHIFT) < flip_decode_error(False, 1.0)
    assert codec.flip_merge(np.zeros((1, 17, 2, 4)), np.zeros((1, 17, 2, 4)), shift=True).shape == (1, 17, 2, 4)


def test_fractional_flip_shift_interpolates_between_columns() -> None:
    flipped = np.zeros((1, 17, 1, 6), np.float32)
    flipped[0, 0, 0, 2] = 1.0  # flipped back: column 3
    merged = codec.flip_merge(np.zeros_like(flipped), flipped, shift=0.75)
    assert np.allclose(merged[0, 0, 0], [0, 0, 0, 0.125, 0.375, 0])


def test_sized_batches_tag_every_sample_of_a_batch_with_one_size_reproducibly() -> None:
    sampler = list(range(100))
    first = list(SizedBatches(sampler, 32, [1, 1], seed=3, epoch=2))
    again = list(SizedBatches(sampler, 32, [1, 1], seed=3, epoch=2))
    assert first == again and len(first) == 4
    assert [i for batch in first for i, _ in batch] == sampler
    assert all(len({s for _, s in batch}) == 1 for batch in first)
    sizes = [batch[0][1] for epoch in range(5) for batch in SizedBatches(sampler, 32, [1, 1], 3, epoch)]
    assert set(sizes) == {0, 1}


def test_crop_sizes_must_fit_the_stride() -> None:
    from lpn_core.errors import LpnError

    assert parse_sizes(["64x48", "128x96"]) == ((64, 48), (128, 96))
    with pytest.raises(LpnError, match="multiples of 16"):
        parse_sizes(["96x72"])
    with pytest.raises(LpnError, match="96x72"):
        apply_overrides(TrainConfig(), {"mixed_sizes": ["96x72"]})


@pytest.fixture(scope="module")
def val_instances():
    split = resolve_folder(shared_path("coco_val2017"), "val")
    return load_instances(split, load_coco(split.ann)).subset(slice(0, 8))


def test_mixed_size_loader_gives_batches_at_each_size_with_matching_targets(val_instances) -> None:
    dataset = CocoKeypoints(val_instances, (128, 96), Augment(), 0, Targets(unbiased=True), ((64, 48), (128, 96)))
    config = TrainConfig(batch_size=2, workers=0, mixed_sizes=["64x48", "128x96"], mixed_until=3)
    shapes = set()
    for epoch in range(3):
        for images, targets, weights in build_loader(dataset, config, Runtime(torch.device("cpu")), epoch):
            assert targets.shape[-2:] == (images.shape[-2] // 4, images.shape[-1] // 4)
            shapes.add(tuple(images.shape[-2:]))
    assert shapes == {(64, 48), (128, 96)}
    late = build_loader(dataset, config, Runtime(torch.device("cpu")), epoch=3)  # past mixed_until: 128x96 only
    assert {tuple(images.shape[-2:]) for images, _, _ in late} == {(128, 96)}


def test_image_cache_decodes_each_file_once_and_gives_the_same_samples(val_instances, monkeypatch) -> None:
    import train.data as data

    plain = CocoKeypoints(val_instances, (64, 48), Augment(), 0)
    cached = CocoKeypoints(val_instances, (64, 48), Augment(), 0, cache=True)
    reads = []
    real_imread = data.cv2.imread
    monkeypatch.setattr(data.cv2, "imread", lambda path, flags: reads.append(path) or real_imread(path, flags))
    for _ in range(2):
        for i in range(len(val_instances)):
            assert all(torch.equal(a, b) for a, b in zip(plain[i], cached[i]))
    files = len(set(val_instances.image_paths))
    assert len(reads) == 2 * len(val_instances) + files  # plain: every sample; cached: each file once


def test_model_best_can_be_chosen_on_the_mean_of_two_validation_sets() -> None:
    stats = {"AP": 0.1, "AP2": 0.3}
    assert selection_score(stats, TrainConfig(select_on="val")) == 0.1
    assert selection_score(stats, TrainConfig(select_on="mean")) == pytest.approx(0.2)
    assert selection_score({"AP": 0.1}, TrainConfig(select_on="mean")) == 0.1


def test_crop_settings_come_from_the_manifest_the_checkpoint_or_the_run_folder(tmp_path: Path) -> None:
    bundled = crop_settings("lpn50", Path("assets/weights/lpn50_project.pth"))
    manifest = json.loads(Path("assets/weights/manifest.json").read_text())["lpn50"]
    assert bundled.input_size == tuple(manifest["input_size"])
    assert bundled.flip_shift == manifest.get("flip_shift", 1.0)
    run = tmp_path / "run"
    (run / "round_0").mkdir(parents=True)
    torch.save(create_model("lpn50", init=False).state_dict(), run / "round_0" / "model_best.pth")
    (run / "config.yaml").write_text(yaml.safe_dump({"input_size": [64, 48], "unbiased_targets": True}))
    from_run = crop_settings("lpn50", run / "round_0" / "model_best.pth")
    assert (from_run.input_size, from_run.flip_shift) == ((64, 48), 0.75)
    torch.save({"model": {}, "config": {"input_size": [128, 96]}}, tmp_path / "checkpoint.pth")
    assert crop_settings("lpn50", tmp_path / "checkpoint.pth").input_size == (128, 96)
    assert crop_settings("lpn50", "untrained").input_size == (256, 192)


def test_evaluate_without_input_size_uses_the_recorded_one(capsys) -> None:
    from train.evaluate import main

    code = main(["--data", str(shared_path("coco_val2017")), "--weights", "assets/weights/lpn50_project.pth",
                 "--max-images", "2", "--no-flip"])
    assert code == 0
    out = capsys.readouterr().out
    height, width = bundled_weights("lpn50").input_size
    assert (height, width) != (256, 192)  # the architecture's default, which the bug fell back to
    assert f"crops {height}x{width}" in out and "bundled manifest" in out


def test_next_round_plans_epochs_from_the_budget_and_never_labels_tuning_videos(tmp_path: Path) -> None:
    epochs, mixed = plan_epochs(hours=2, samples_per_s=30, people=9000, mixed_fraction=0.5)
    assert 24 <= epochs <= 30 and mixed == epochs // 2
    assert plan_epochs(1, 30, 9000, 0.0)[1] == 0
    sets = label_sets(Path("/data"), [Path("/photos/extra")])
    flags = [f for s in sets for f in s.flags]
    assert not any("videos_tune" in f for f in flags)
    assert [s.name for s in sets][-1] == "pl_extra_640f"
    assert all(s.flags[-3:] == ("--imgsz", "640", "--flip") for s in sets)  # the labels the agreement table chose
    args = build_parser().parse_args(["--out", str(tmp_path / "r"), "--val2", "/v2", "--set", "lr=5e-4"])
    argv = train_argv(args, [Path("/labels/pl_people")], 12, 8, Path("/w/best.pth"))
    assert argv[argv.index("--epochs") + 1] == "12"
    assert "init_from=/w/best.pth" in argv and "mixed_until=8" in argv and "lr=5e-4" in argv
    assert argv[argv.index("--val2") + 1] == "/v2"
    assert "/labels/pl_people" in argv


def test_next_round_with_no_mixed_epochs_trains_every_epoch_at_one_size(tmp_path: Path) -> None:
    """--mixed-fraction 0 once meant mixed_until=0, which the config reads as *every* epoch mixed."""
    from train import train as train_cli
    from train.loop import mixes_sizes

    args = build_parser().parse_args(["--out", str(tmp_path / "r"), "--mixed-fraction", "0"])
    for mixed_until, expected in ((0, [False] * 6), (3, [True] * 3 + [False] * 3)):
        argv = train_argv(args, [], 6, mixed_until, Path("/w/best.pth"))  # the shared COCO folders only
        parsed = train_cli.build_parser().parse_args(argv)
        config = train_cli.resolve_config(parsed, tmp_path / "r")
        assert [mixes_sizes(config, epoch) for epoch in range(6)] == expected
    assert config.mixed_sizes == ["64x48", "128x96"]  # the round config's sizes stay when epochs mix


def test_next_round_dry_run_names_missing_labels_without_making_them(tmp_path: Path, monkeypatch, capsys) -> None:
    from train import next_round

    shared = shared_path("coco_val2017").parent

    def refuse(argv: list[str]) -> int:
        raise AssertionError(f"a dry run made labels: {argv}")

    monkeypatch.setattr(next_round.pseudo_label, "main", refuse)
    assert next_round.main(["--out", str(tmp_path / "r"), "--shared", str(shared), "--labels", str(tmp_path / "l"),
                            "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would pseudo-label pl_people_640f" in out and "python -m train.train" in out
    assert not (tmp_path / "l").exists()


def test_photo_split_keeps_every_photo_once_and_out_of_the_excluded_folders(tmp_path: Path) -> None:
    from train.photo_split import split

    def photo(path: Path, value: int) -> None:
        import cv2

        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))

    for i in range(6):
        photo(tmp_path / "train" / "ice hockey" / f"t{i}.png", i)  # values 0..5
    photo(tmp_path / "train" / "golf" / "dup.png", 0)  # same bytes as t0
    for i in range(4):
        photo(tmp_path / "test" / f"v{i}.png", 10 + i)
    photo(tmp_path / "test" / "seen.png", 3)  # also a training photo
    photo(tmp_path / "used" / "u.png", 5)  # already in the shared set
    extra, val = split(tmp_path / "train", tmp_path / "test", [tmp_path / "used"], tmp_path / "out", val_count=3)
    assert (extra, val) == (5, 3)  # golf/dup (sorted first; t0 is its copy), t1..t4; t5 was used already
    names = {p.name for p in (tmp_path / "out" / "extra").rglob("*.png")}
    assert names == {"dup.png", "t1.png", "t2.png", "t3.png", "t4.png"}
    assert (tmp_path / "out" / "extra" / "ice_hockey").is_dir()
    assert "seen.png" not in {p.name for p in (tmp_path / "out" / "val").rglob("*.png")}


def test_everyday_photos_rebuilds_each_listed_file_from_a_checkout_and_checks_its_hash(tmp_path: Path) -> None:
    import cv2
    from lpn_core.errors import DataError
    from train.everyday_photos import ListedPhoto, rebuild, sha256_16

    checkout = tmp_path / "repo"
    (checkout / "photos").mkdir(parents=True)
    cv2.imwrite(str(checkout / "photos" / "a.jpg"), np.full((8, 8, 3), 40, np.uint8))
    cv2.imwrite(str(checkout / "photos" / "b.png"), np.full((8, 8, 3), 90, np.uint8))
    reencoded = tmp_path / "b.jpg"
    cv2.imwrite(str(reencoded), np.full((8, 8, 3), 90, np.uint8))
    listed = [ListedPhoto("ccp", "photos/a.jpg", "a.jpg", sha256_16(checkout / "photos" / "a.jpg")),
              ListedPhoto("pennfudan", "photos/b.png", "b.jpg", sha256_16(reencoded)),
              ListedPhoto("ccp", "photos/a.jpg", "stale.jpg", "0" * 16)]
    differing = rebuild(listed, [tmp_path / "elsewhere", checkout], tmp_path / "out")
    assert (tmp_path / "out" / "ccp" / "a.jpg").read_bytes() == (checkout / "photos" / "a.jpg").read_bytes()
    assert cv2.imread(str(tmp_path / "out" / "pennfudan" / "b.jpg")).shape == (8, 8, 3)  # PNG re-saved as JPEG
    assert [photo.file for photo in differing] == ["stale.jpg"]  # the one whose bytes differ from the list
    with pytest.raises(DataError, match="none of the --source folders"):
        rebuild([ListedPhoto("ccp", "photos/missing.jpg", "m.jpg", "0" * 16)], [checkout], tmp_path / "out")
    from train.everyday_photos import main

    assert main(["--source", str(tmp_path / "elsewhere"), "--out", str(tmp_path / "out2")]) == 2  # one line, no traceback
