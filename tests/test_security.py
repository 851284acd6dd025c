"""Untrusted checkpoints (docs/RELIABILITY.md, "Security"): a file whose pickle would run code is refused with the
one-line WeightsError and nothing in it runs, whatever the format (torch.save zip, legacy torch.save, bare pickle)
and wherever the payload hides (a tensor's place, a training checkpoint, the top level), by every loader:
lpn_core.weights.read_state_dict / load_weights, the resolver's verified download, and train's resume."""
from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path
from typing import Callable

import pytest
import torch

from lpn_core import WeightsError, create_model
from lpn_core import weights as W
from train.loop import load_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")  # the v4 files, on purpose


class Exploit:
    """Unpickling this runs a shell command that creates ``marker`` (plain pickle.load / weights_only=False)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def torch_zip(obj: object, path: Path) -> None:
    torch.save(obj, path)


def torch_legacy(obj: object, path: Path) -> None:
    torch.save(obj, path, _use_new_zipfile_serialization=False)


def bare_pickle(obj: object, path: Path) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)  # the protocol torch.load expects: it reads on to the payload


def bare_pickle_v4(obj: object, path: Path) -> None:
    """Python's default protocol: torch.load refuses its framing before it reaches the payload."""
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=4)


WRITERS = {"torch.save": torch_zip, "torch.save legacy": torch_legacy, "pickle.dump": bare_pickle,
           "pickle.dump v4": bare_pickle_v4}
PLACES: dict[str, Callable[[Exploit], object]] = {
    "a tensor's place": lambda evil: {**create_model("lpn50", init=False).state_dict(), "conv1.weight": evil},
    "a training checkpoint": lambda evil: {"state_dict": {"conv1.weight": evil}, "epoch": 3},
    "the top level": lambda evil: evil,
}


@pytest.fixture(params=WRITERS, ids=list(WRITERS))
def writer(request: pytest.FixtureRequest) -> Callable[[object, Path], None]:
    return WRITERS[request.param]


@pytest.fixture(params=PLACES, ids=list(PLACES))
def evil_file(request: pytest.FixtureRequest, writer, tmp_path: Path) -> tuple[Path, Path]:
    """(the malicious checkpoint, the marker file its payload would create)."""
    marker, path = tmp_path / "pwned", tmp_path / "evil.pth"
    writer(PLACES[request.param](Exploit(marker)), path)
    assert not marker.exists()
    return path, marker


def assert_one_line(err: WeightsError, path: Path) -> None:
    assert "\n" not in str(err) and str(path) in str(err)


def test_the_payload_is_live(tmp_path: Path) -> None:
    """Control: the same file does run its code under an unsafe load, so the tests below prove something."""
    marker, path = tmp_path / "pwned", tmp_path / "evil.pth"
    torch.save({"conv1.weight": Exploit(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_read_state_dict_refuses_pickled_code(evil_file: tuple[Path, Path], writer) -> None:
    path, marker = evil_file
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint") as info:
        W.read_state_dict(path)
    assert_one_line(info.value, path)
    assert "could run code" in str(info.value)  # says why it was refused ...
    if writer is not bare_pickle_v4:  # ... and what, when torch.load got as far as the payload's callable
        assert "(posix.system)" in str(info.value) or "(nt.system)" in str(info.value)
    assert not marker.exists()


def test_load_weights_refuses_pickled_code(evil_file: tuple[Path, Path]) -> None:
    path, marker = evil_file
    with pytest.raises(WeightsError) as info:
        W.load_weights(create_model("lpn50", init=False), path, "lpn50")
    assert_one_line(info.value, path)
    assert not marker.exists()


def test_a_malicious_download_never_reaches_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, marker = tmp_path / "cache", tmp_path / "pwned"
    monkeypatch.setenv("LPN_POSE_CACHE", str(cache))
    monkeypatch.setattr(W, "BUNDLED_DIR", tmp_path / "no-bundled")
    with pytest.raises(WeightsError, match="no weights for lpn50"):
        W.resolve_weights("lpn50", downloader=lambda drive_id, dest: torch.save({"conv1.weight": Exploit(marker)}, dest))
    assert not marker.exists() and not list(cache.rglob("*.pth")) and not list(cache.rglob("*.part"))


def test_resuming_training_refuses_pickled_code(tmp_path: Path) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "checkpoint.pth"
    torch.save({"model": {"conv1.weight": Exploit(marker)}, "optimizer": {}, "scheduler": {}, "epoch": 1}, path)
    with pytest.raises(WeightsError, match="cannot resume") as info:
        load_checkpoint(path)
    assert_one_line(info.value, path)
    assert "could run code" in str(info.value)
    assert not marker.exists()
