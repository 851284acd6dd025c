"""The tuning videos (../shared/data/videos_tune/) choose the pipeline's defaults, so their frames must never
reach a training annotation file made by train.pseudo_label: a source-path check on what it writes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_path
from train import pseudo_label

TUNING = ("jumping_jacks_gym_1person.mp4", "pushups_side_1person.mp4", "dance_3people_portrait.mp4",
          "running_side_1person.mp4")


def tuning_frames(annotation_file: Path, tuning_dir: Path) -> list[str]:
    """Images of a pseudo-label file that come from a tuning video: a path in the tuning folder, or a frame
    name ``<tuning video stem>_<index>.jpg`` as ``pseudo_label.video_frames`` writes them."""
    stems = {video.stem for video in tuning_dir.glob("*") if video.suffix.lower() in {".mp4", ".avi", ".mov", ".mkv"}}
    images = json.loads(annotation_file.read_text())["images"]
    return [image["file_name"] for image in images
            if pseudo_label.TUNING_FOLDER in Path(image["file_name"]).parts
            or Path(image["file_name"]).stem.rsplit("_", 1)[0] in stems]


class FakeTeacher:
    """Stands in for the YOLO11n-pose teacher (slow on CPU): one confident person per image."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __call__(self, image: np.ndarray) -> list[pseudo_label.TeacherPerson]:
        keypoints = np.stack([np.linspace(10, 50, 17), np.linspace(10, 90, 17)], axis=1)
        return [pseudo_label.TeacherPerson(np.array([5.0, 5.0, 60.0, 100.0]), 0.9, keypoints, np.full(17, 0.9))]


@pytest.fixture
def fake_teacher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pseudo_label, "Teacher", FakeTeacher)


@pytest.mark.parametrize("name", TUNING)
def test_pseudo_label_refuses_every_tuning_video(name: str, tmp_path: Path, fake_teacher: None,
                                                  capsys: pytest.CaptureFixture) -> None:
    video = shared_path(f"videos_tune/{name}")
    code = pseudo_label.main(["--teacher", "t.pt", "--video", str(video), "--out", str(tmp_path / "pl")])
    assert code == 2 and "videos_tune/ folder" in capsys.readouterr().err
    assert not (tmp_path / "pl").exists()  # refused before anything was written


def test_pseudo_label_refuses_the_tuning_folder_as_images(tmp_path: Path, fake_teacher: None) -> None:
    folder = shared_path("videos_tune")
    with pytest.raises(pseudo_label.DataError, match="never trained on"):
        pseudo_label.run(pseudo_label.build_parser().parse_args(
            ["--teacher", "t.pt", "--images", str(folder / ".." / "videos_tune"), "--out", str(tmp_path)]))


def test_a_pseudo_label_file_holds_no_tuning_frame(tmp_path: Path, fake_teacher: None) -> None:
    """Label a real trained-on clip (every 40th frame), then check what reached the annotation file."""
    out = tmp_path / "pl"
    code = pseudo_label.main(["--teacher", "t.pt", "--video", str(shared_path("videos/walk_away_720p.mp4")),
                              "--video-every", "40", "--out", str(out)])
    annotations = out / "annotations" / "person_keypoints.json"
    assert code == 0 and len(json.loads(annotations.read_text())["images"]) == 3
    tuning_dir = shared_path("videos_tune")
    assert tuning_frames(annotations, tuning_dir) == []
    forged = json.loads(annotations.read_text())  # what a tuning clip would have left there
    forged["images"][0]["file_name"] = str(out / "images" / "running_side_1person_000040.jpg")
    forged["images"][1]["file_name"] = str(tuning_dir / "frame.jpg")
    annotations.write_text(json.dumps(forged))
    assert len(tuning_frames(annotations, tuning_dir)) == 2
