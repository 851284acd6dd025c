"""train loss, config, loop, rounds, resume, DDP and the CLI, on real COCO data (LPN_SPEC §2)."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lpn_core.backends import TorchBackend
from lpn_core.errors import LpnError
from lpn_core.estimator import PoseEstimator
from lpn_core.model import create_model
from tests.conftest import shared_path
from train import schedule
from train.config import load_config
from train.data import CocoKeypoints, load_coco, load_instances, resolve_folder
from train.evaluate import evaluate
from train.loop import Runtime, setup_runtime, teardown_runtime
from train.loss import joints_mse
from train.train import main

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"


def test_loss_matches_hrnet_per_joint_formula() -> None:
    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 17, 8, 6, generator=g), torch.rand(3, 17, 8, 6, generator=g)
    weight = (torch.rand(3, 17, generator=g) > 0.3).float()
    reference = sum(0.5 * torch.nn.functional.mse_loss(pred[:, j] * weight[:, j, None, None],
                                                       target[:, j] * weight[:, j, None, None]) for j in range(17)) / 17
    assert joints_mse(pred, target, weight).item() == pytest.approx(reference.item(), rel=1e-6)


@pytest.mark.parametrize("name, model", [("lpn50_256x192", "lpn50"), ("lpn101_256x192", "lpn101"),
                                         ("lpn152_256x192", "lpn152")])
def test_paper_configs_hold_the_recipe(name: str, model: str) -> None:
    config = load_config(CONFIGS / f"{name}.yaml")
    assert (config.model, config.input_size, config.epochs, config.batch_size, config.lr) == (model, (256, 192), 150, 32, 1e-3)
    assert (config.lr_steps, config.lr_factor, config.weight_decay) == ((90, 120), 0.1, 0.0)
    assert (config.scale_factor, config.rotation_factor, config.rotation_prob, config.flip_prob) == (0.3, 40.0, 0.6, 0.5)
    assert (config.flip_test, config.in_vis_thre, config.oks_thre) == (True, 0.2, 0.9)


def test_config_overrides_and_errors(tmp_path) -> None:
    config = load_config(CONFIGS / "lpn50_128x96_cpu_quick.yaml", {"lr_steps": [5, 8], "epochs": 3})
    assert config.input_size == (128, 96) and config.heatmap_size == (32, 24) and config.lr_steps == (5, 8)
    with pytest.raises(LpnError, match="did you mean 'batch_size'"):
        load_config(None, {"batchsize": 4})
    with pytest.raises(LpnError, match="multiples of 16"):
        load_config(None, {"input_size": [250, 190]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(LpnError, match="not valid YAML"):
        load_config(bad)


def test_lpn_runs_at_128x96() -> None:
    out = create_model("lpn50")(torch.zeros(2, 3, 128, 96))
    assert out.shape == (2, 17, 32, 24)


def test_overfit_one_batch_drives_loss_down_and_scores_high_ap() -> None:
    """One batch of 4 real people (one per image), 128x96 crops, no augmentation, Adam 1e-3:
    the loss falls >= 10x, and the evaluate code (GT boxes, no flip: the net never saw mirrored
    crops) scores the memorised poses with high AP."""
    split = resolve_folder(shared_path("coco_val2017"), "val")
    coco = load_coco(split.ann)
    instances = load_instances(split, coco)
    ids, counts = np.unique(instances.image_ids, return_counts=True)
    single = np.flatnonzero(np.isin(instances.image_ids, ids[counts == 1]))
    batch_instances = instances.subset(single[np.argsort(-instances.visible[single].sum(1), kind="stable")[:4]])
    dataset = CocoKeypoints(batch_instances, (128, 96), augment=None)
    images, targets, weights = (torch.stack(x) for x in zip(*(dataset[i] for i in range(4))))
    torch.manual_seed(0)
    model = create_model("lpn50").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(150):
        loss = joints_mse(model(images), targets, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] / np.mean(losses[-5:]) >= 10
    estimator = PoseEstimator(TorchBackend(model), flip_test=False, input_size=(128, 96))
    result = evaluate(estimator, coco, batch_instances, image_ids=sorted(set(batch_instances.image_ids.tolist())))
    # 32x24 heatmaps quantize to 1/24 of the box width, which caps the OKS-0.95 end of AP (0.81 here)
    assert result.stats["AP"] >= 0.75 and result.stats["AP50"] == 1.0, result.stats


def tiny_args(out: Path, *extra: str) -> list[str]:
    return ["--config", str(CONFIGS / "lpn50_128x96_cpu_quick.yaml"), "--train", str(shared_path("coco_mini")),
            "--val", str(shared_path("coco_val2017")), "--out", str(out), "--input-size", "64x48",
            "--batch-size", "4", "--workers", "0", "--no-progress", "--set", "max_train_samples=8",
            "--set", "max_val_images=6", "--set", "lr_steps=[1]", *extra]


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_rounds_and_resume_after_interrupt_reproduce_uninterrupted_run(tmp_path, monkeypatch, capsys) -> None:
    """2 rounds x 2 epochs. Run B is interrupted (Ctrl-C) inside round 1's second epoch and resumed
    with --resume: every saved tensor equals run A's. Round 1 starts from round 0's best."""
    assert main(tiny_args(tmp_path / "a", "--epochs", "2", "--rounds", "2")) == 0
    printed = capsys.readouterr().out
    assert "| round | best val AP |" in printed and "| 1 |" in printed

    real_epoch, calls = schedule.train_one_epoch, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # round 1, epoch 2
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(schedule, "train_one_epoch", interrupted)
    assert main(tiny_args(tmp_path / "b", "--epochs", "2", "--rounds", "2")) == 130
    assert "--resume" in capsys.readouterr().err
    monkeypatch.setattr(schedule, "train_one_epoch", real_epoch)
    assert main(["--out", str(tmp_path / "b"), "--resume", "--no-progress"]) == 0

    for name in ("round_0/model_best.pth", "round_1/final_state.pth", "round_1/model_best.pth"):
        a, b = weights_of(tmp_path / "a" / name), weights_of(tmp_path / "b" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    log_a = (tmp_path / "a" / "round_1" / "log.csv").read_text().splitlines()
    log_b = (tmp_path / "b" / "round_1" / "log.csv").read_text().splitlines()
    assert len(log_a) == len(log_b) == 3
    assert [r.split(",")[:4] for r in log_a] == [r.split(",")[:4] for r in log_b]  # round, epoch, lr, loss
    rounds = (tmp_path / "a" / "rounds.csv").read_text().splitlines()
    assert len(rounds) == 3 and rounds[2].startswith("1,")
    state = torch.load(tmp_path / "a" / "round_1" / "checkpoint.pth", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "best_ap", "config", "rng"} <= state.keys()
    assert state["epoch"] == 2 and state["scheduler"]["last_epoch"] == 2
    assert yaml.safe_load((tmp_path / "a" / "config.yaml").read_text())["input_size"] == [64, 48]


def test_round_seeding_reinits_head_then_loads_non_strictly(tmp_path) -> None:
    """§1.8: re-draw the head, then load the previous best non-strictly: all names match, so the
    seeded model equals the file (head included)."""
    torch.manual_seed(1)
    previous = create_model("lpn50")
    torch.nn.init.normal_(previous.final_layer.weight, std=0.5)
    torch.save(previous.state_dict(), tmp_path / "best.pth")
    model = create_model("lpn50")
    schedule.seed_from(model, tmp_path / "best.pth")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in previous.state_dict().items())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_world_size_one_matches_single_process(tmp_path, monkeypatch) -> None:
    """The torchrun path (gloo, DistributedDataParallel, DistributedSampler) at world size 1 trains
    the same weights as a plain process."""
    config = load_config(CONFIGS / "lpn50_128x96_cpu_quick.yaml", {
        "input_size": [64, 48], "batch_size": 4, "workers": 0, "epochs": 1, "eval_every": 0, "max_train_samples": 8})
    split = resolve_folder(shared_path("coco_mini"), "train")
    config.train_images, config.train_ann = [str(split.images)], [str(split.ann)]
    plain = schedule.run_rounds(config, tmp_path / "plain", Runtime(torch.device("cpu")), show_progress=False)
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(key, value)
    runtime = setup_runtime(config)
    try:
        assert runtime.distributed and runtime.world_size == 1
        ddp = schedule.run_rounds(config, tmp_path / "ddp", runtime, show_progress=False)
    finally:
        teardown_runtime(runtime)
    a, b = weights_of(plain[0].weights), weights_of(ddp[0].weights)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


@pytest.mark.parametrize("case", ["missing_data", "bad_json", "unwritable_out", "bad_key", "nothing_to_resume"])
def test_cli_errors_are_one_line_exit_2(case: str, tmp_path, capsys) -> None:
    bad = tmp_path / "bad" / "annotations"
    bad.mkdir(parents=True)
    (tmp_path / "bad" / "images").mkdir()
    (bad / "person_keypoints.json").write_text("{broken")
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = ["--config", str(CONFIGS / "lpn50_128x96_cpu_quick.yaml")]
    args = {"missing_data": [*config, "--train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")],
            "bad_json": [*config, "--train", str(tmp_path / "bad"), "--out", str(tmp_path / "o")],
            "unwritable_out": [*config, "--train", str(shared_path("coco_mini")), "--out", str(blocker / "sub")],
            "bad_key": [*config, "--set", "epoch=3", "--out", str(tmp_path / "o")],
            "nothing_to_resume": ["--resume", "--out", str(tmp_path / "empty")]}[case]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_resuming_a_finished_cosine_with_more_epochs_is_refused() -> None:
    """torch's cosine is recursive: re-aimed from LR 0 it stays at 0, so extra epochs would learn nothing."""
    from lpn_core.errors import LpnError
    from train.schedule import refuse_finished_cosine

    optimizer = torch.optim.Adam(torch.nn.Linear(1, 1).parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2)
    optimizer.step()
    scheduler.step()
    refuse_finished_cosine(optimizer, scheduler, done_epochs=1, epochs=3)  # mid-round: re-aiming is fine
    optimizer.step()
    scheduler.step()
    refuse_finished_cosine(optimizer, scheduler, done_epochs=2, epochs=2)  # finished, nothing more asked
    with pytest.raises(LpnError, match="reached LR 0 at epoch 2.*new round"):
        refuse_finished_cosine(optimizer, scheduler, done_epochs=2, epochs=3)
