"""Weights resolution (path -> cache -> download -> bundled -> error) and safe, strict loading."""
from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import numpy as np

import pytest
import torch

from lpn_core import WeightsError, build_estimator, create_model
from lpn_core import weights as W
from lpn_core.model import count_params


@pytest.fixture
def lpn50_file(tmp_path: Path) -> Path:
    path = tmp_path / "lpn50.pth"
    torch.save(create_model("lpn50", init=False).state_dict(), path)
    return path


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Empty cache and bundled folders, so nothing on this machine leaks into the test."""
    cache, bundled = tmp_path / "cache", tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setenv("LPN_POSE_CACHE", str(cache))
    monkeypatch.setattr(W, "BUNDLED_DIR", bundled)
    return cache, bundled


def no_network(drive_id: str, dest: Path) -> None:
    raise OSError("offline")


def test_every_table_entry_declares_the_built_parameter_count() -> None:
    for name, spec in W.WEIGHTS.items():
        assert spec.model == name and count_params(create_model(name, init=False)) == spec.num_params


def test_explicit_path_wins(isolated, lpn50_file: Path) -> None:
    assert W.resolve_weights("lpn50", lpn50_file, downloader=no_network) == lpn50_file


def test_explicit_missing_path_is_an_error(isolated, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        W.resolve_weights("lpn50", tmp_path / "nope.pth", downloader=no_network)


def test_cache_is_used_before_any_download(isolated, lpn50_file: Path) -> None:
    cache, _ = isolated
    cache.mkdir()
    (cache / "lpn_50_256x192.pth").write_bytes(lpn50_file.read_bytes())

    def must_not_download(drive_id: str, dest: Path) -> None:
        raise AssertionError("downloaded although the cache had the file")

    assert W.resolve_weights("lpn50", downloader=must_not_download) == cache / "lpn_50_256x192.pth"


def test_download_is_verified_then_cached(isolated, lpn50_file: Path) -> None:
    cache, _ = isolated
    calls = []

    def fake_drive(drive_id: str, dest: Path) -> None:
        calls.append(drive_id)
        dest.write_bytes(lpn50_file.read_bytes())

    assert W.resolve_weights("lpn50", downloader=fake_drive) == cache / "lpn_50_256x192.pth"
    assert calls == [W.WEIGHTS["lpn50"].drive_id] and not list(cache.glob("*.part"))


def bundle(folder: Path, model: str, data: bytes, ap: float = 0.31, input_size=(128, 96)) -> Path:
    """A bundled file and its manifest entry, as assets/weights/ holds them."""
    path = folder / f"{model}_project.pth"
    path.write_bytes(data)
    manifest = folder / W.MANIFEST
    entries = json.loads(manifest.read_text()) if manifest.is_file() else {}
    entries[model] = {"file": path.name, "sha256": hashlib.sha256(data).hexdigest(), "input_size": list(input_size),
                      "ap": ap}
    manifest.write_text(json.dumps(entries))
    return path


def test_a_download_of_the_wrong_architecture_is_discarded(isolated, tmp_path: Path) -> None:
    cache, bundled = isolated
    wrong = tmp_path / "lpn101.pth"
    torch.save(create_model("lpn101", init=False).state_dict(), wrong)
    expected = bundle(bundled, "lpn50", b"placeholder")  # the next branch
    got = W.resolve_weights("lpn50", downloader=lambda i, d: d.write_bytes(wrong.read_bytes()))
    assert got == expected and not (cache / "lpn_50_256x192.pth").exists()


def test_offline_falls_back_to_bundled_weights_with_one_line(isolated, capsys: pytest.CaptureFixture) -> None:
    _, bundled = isolated
    expected = bundle(bundled, "lpn101", b"x")
    W._NOTED.discard("lpn101")
    assert W.resolve_weights("lpn101", downloader=no_network) == expected
    assert W.resolve_weights("lpn101", downloader=no_network) == expected
    note = capsys.readouterr().err.strip()
    assert note.count("\n") == 0 and "bundled project-trained lpn101" in note and "AP 0.31" in note


@pytest.mark.parametrize("damage", ["tampered", "truncated", "missing"])
def test_damaged_bundled_weights_are_a_one_line_error(isolated, lpn50_file: Path, damage: str) -> None:
    _, bundled = isolated
    path = bundle(bundled, "lpn50", lpn50_file.read_bytes())
    if damage == "tampered":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.unlink()
    with pytest.raises(WeightsError) as info:
        W.resolve_weights("lpn50", download=False)
    assert "git checkout assets/weights" in str(info.value) and "\n" not in str(info.value)


def test_a_damaged_manifest_is_a_one_line_error(isolated) -> None:
    _, bundled = isolated
    (bundled / W.MANIFEST).write_text("{not json")
    with pytest.raises(WeightsError, match="damaged"):
        W.resolve_weights("lpn50", download=False)


def test_weights_are_described_for_the_overlay(isolated, lpn50_file: Path, tmp_path: Path) -> None:
    cache, bundled = isolated
    project = bundle(bundled, "lpn50", lpn50_file.read_bytes(), ap=0.2345, input_size=(128, 96))
    info = W.describe_weights("lpn50", project)
    assert (info.kind, info.input_size, info.label) == ("project", (128, 96), "project-trained, AP 0.23")
    copy = tmp_path / "copy.pth"
    copy.write_bytes(project.read_bytes())
    assert W.describe_weights("lpn50", copy).kind == "project"  # recognised by its sha256
    assert W.describe_weights("lpn50", cache / "lpn_50_256x192.pth").label == "official"
    assert W.describe_weights("lpn50", None).label == "UNTRAINED"
    other = tmp_path / "mine.pth"
    torch.save(create_model("lpn50", init=False).state_dict(), other)
    assert W.describe_weights("lpn50", other) == W.WeightsInfo(other, "file", (256, 192), "file mine.pth")


def test_bundled_weights_build_an_estimator_at_their_input_size(isolated, lpn50_file: Path) -> None:
    _, bundled = isolated
    bundle(bundled, "lpn50", lpn50_file.read_bytes(), input_size=(128, 96))
    estimator = build_estimator("lpn50", backend="onnx", download=False)
    assert estimator.input_size == (128, 96) and estimator.weights_label.startswith("project-trained")
    assert not estimator.untrained
    image = np.zeros((240, 320, 3), np.uint8)
    assert estimator(image, np.array([[10, 10, 100, 200.0]])).shape == (1, 17, 3)


def test_nothing_found_says_where_to_put_the_file(isolated) -> None:
    cache, _ = isolated
    with pytest.raises(WeightsError) as info:
        W.resolve_weights("lpn152", downloader=no_network)
    message = str(info.value)
    assert "lpn_152_256x192.pth" in message and str(cache) in message and "--weights" in message
    assert "\n" not in message


def test_untrained_needs_no_file(isolated) -> None:
    assert W.resolve_weights("lpn50", "untrained", downloader=no_network) is None


def test_official_module_prefixed_and_training_checkpoints_all_load(tmp_path: Path) -> None:
    state = create_model("lpn50", init=False).state_dict()
    variants = {
        "plain.pth": state,
        "ddp.pth": {f"module.{k}": v for k, v in state.items()},
        "train.pth": {"state_dict": state, "epoch": 3},
    }
    for name, data in variants.items():
        torch.save(data, tmp_path / name)
        model = W.load_weights(create_model("lpn50", init=False), tmp_path / name, "lpn50")
        assert torch.equal(model.final_layer.bias, state["final_layer.bias"])


def test_wrong_architecture_names_what_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "lpn101.pth"
    torch.save(create_model("lpn101", init=False).state_dict(), path)
    with pytest.raises(WeightsError, match=r"does not fit lpn50: it holds lpn101 weights") as info:
        W.load_weights(create_model("lpn50", init=False), path, "lpn50")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100, b"PK\x03\x04truncated zip"])
def test_corrupt_files_are_one_line_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint") as info:
        W.read_state_dict(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_truncated_real_checkpoint_is_a_one_line_error(tmp_path: Path, lpn50_file: Path) -> None:
    data = lpn50_file.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        W.read_state_dict(path)


def test_non_checkpoint_data_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="holds no state_dict"):
        W.read_state_dict(path)


def test_build_estimator_loads_real_weights_into_the_backend(lpn50_file: Path) -> None:
    estimator = build_estimator("lpn50", weights=str(lpn50_file), backend="torch")
    assert not estimator.untrained
    expected = torch.load(lpn50_file, weights_only=True)["final_layer.bias"]
    assert torch.equal(estimator.backend.model.final_layer.bias, expected)


def test_onnx_export_of_a_checkpoint_is_cached_and_reused(isolated, lpn50_file: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from lpn_core import estimator as E

    first = build_estimator("lpn50", weights=str(lpn50_file), backend="onnx")
    exported = list((isolated[0] / "onnx").glob("lpn50-*.onnx"))
    assert len(exported) == 1

    def must_not_export(*args, **kwargs):
        raise AssertionError("re-exported although the cache had the file")

    monkeypatch.setattr(E, "save_onnx", must_not_export)
    second = build_estimator("lpn50", weights=str(lpn50_file), backend="onnx")
    crops = np.zeros((1, 3, 256, 192), np.float32)
    np.testing.assert_array_equal(first.backend(crops), second.backend(crops))


# --- faults in the middle of a run (docs/RELIABILITY.md, "Faults") ---------------------------------------

QUOTA_PAGE = b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users " \
             b"have viewed or downloaded this file recently.</body></html>"


def failing_download(fault: str, lpn50_file: Path):
    """A downloader that is refused, times out, stops half-way or gets Drive's quota page."""
    def download(drive_id: str, dest: Path) -> None:
        if fault == "refused":
            raise ConnectionRefusedError(111, "Connection refused")
        if fault == "timeout":
            dest.write_bytes(lpn50_file.read_bytes()[:4096])  # some bytes came, then nothing
            raise socket.timeout("timed out")
        if fault == "truncated":
            dest.write_bytes(lpn50_file.read_bytes()[: lpn50_file.stat().st_size // 2])
        if fault == "html":
            dest.write_bytes(QUOTA_PAGE)
    return download


FAULTS = {"refused": "Connection refused", "timeout": "timed out", "truncated": "incomplete",
          "html": "web page instead of the file"}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failed_download_leaves_nothing_and_bundled_weights_take_over(isolated, lpn50_file: Path, fault: str,
                                                                        capsys: pytest.CaptureFixture) -> None:
    cache, bundled = isolated
    W._NOTED.discard("lpn50")
    expected = bundle(bundled, "lpn50", b"bundled")
    assert W.resolve_weights("lpn50", downloader=failing_download(fault, lpn50_file)) == expected
    note = capsys.readouterr().err.strip()
    assert note.count("\n") == 0 and FAULTS[fault] in note and "bundled project-trained lpn50" in note
    assert list(cache.iterdir()) == []  # no .part, no bad .pth, no download folder


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failed_download_without_bundled_weights_is_one_line(isolated, lpn50_file: Path, fault: str) -> None:
    cache, _ = isolated
    with pytest.raises(WeightsError) as info:
        W.resolve_weights("lpn50", downloader=failing_download(fault, lpn50_file))
    message = str(info.value)
    assert "\n" not in message and FAULTS[fault] in message and "--weights PATH" in message
    assert list(cache.iterdir()) == []


def test_interrupted_download_leaves_nothing(isolated) -> None:
    cache, _ = isolated

    def interrupted(drive_id: str, dest: Path) -> None:
        dest.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        W.resolve_weights("lpn50", downloader=interrupted)
    assert list(cache.iterdir()) == []


def test_gdown_errors_become_one_line_os_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import gdown
    from gdown.exceptions import FileURLRetrievalError

    def quota(**kwargs):
        raise FileURLRetrievalError("Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded "
                                    "this file recently.\n\nYou may still be able to access the file")

    monkeypatch.setattr(W, "_network_reachable", lambda: True)
    monkeypatch.setattr(gdown, "download", quota)
    with pytest.raises(OSError, match="download quota for the file is exceeded"):
        W.gdown_download("id", tmp_path / "x.part")


def test_a_corrupt_onnx_export_in_the_cache_is_rebuilt(isolated, lpn50_file: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    digest = hashlib.sha256(lpn50_file.read_bytes()).hexdigest()[:16]
    cached = isolated[0] / "onnx" / f"lpn50-{digest}-256x192.onnx"  # the name cached_onnx gives the export
    cached.parent.mkdir(parents=True)
    garbage = b"\x00garbage, not a protobuf" * 40
    cached.write_bytes(garbage)
    estimator = build_estimator("lpn50", weights=str(lpn50_file), backend="onnx")
    note = capsys.readouterr().err.strip()
    assert note.count("\n") == 0 and "was damaged; exported it again" in note
    assert cached.read_bytes() != garbage and list(cached.parent.iterdir()) == [cached]
    reference = build_estimator("lpn50", weights=str(lpn50_file), backend="torch")
    crops = np.random.default_rng(0).standard_normal((2, 3, 256, 192)).astype(np.float32)
    np.testing.assert_allclose(estimator.backend(crops), reference.backend(crops), atol=1e-4)


def test_best_bundled_model_is_the_highest_ap_entry(tmp_path) -> None:
    import json

    from lpn_core.weights import best_bundled_model

    entry = {"file": "x.pth", "sha256": "0" * 64, "input_size": [128, 96]}
    (tmp_path / "manifest.json").write_text(json.dumps({"lpn50": {**entry, "ap": 0.2}, "lpn101": {**entry, "ap": 0.1}}))
    assert best_bundled_model(["lpn50", "lpn101", "lpn152"], tmp_path) == "lpn50"
    (tmp_path / "manifest.json").write_text(json.dumps({"lpn101": {**entry, "ap": 0.1}}))
    assert best_bundled_model(["lpn50", "lpn101"], tmp_path) is None


def test_a_deeper_model_is_marked_best_only_when_it_is_clearly_better(tmp_path) -> None:
    import json

    from lpn_core.weights import best_bundled_model

    entry = {"file": "x.pth", "sha256": "0" * 64, "input_size": [128, 96]}

    def best_of(ap50: float, ap101: float, ap152: float) -> str | None:
        aps = {"lpn50": ap50, "lpn101": ap101, "lpn152": ap152}
        (tmp_path / "manifest.json").write_text(json.dumps({m: {**entry, "ap": ap} for m, ap in aps.items()}))
        return best_bundled_model(["lpn50", "lpn101", "lpn152"], tmp_path)

    assert best_of(0.128, 0.1282, 0.1279) == "lpn50"  # grown copies: a rounding difference buys no speed
    assert best_of(0.128, 0.140, 0.145) == "lpn101"
    assert best_of(0.128, 0.140, 0.152) == "lpn152"
