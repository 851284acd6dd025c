"""The real videos the benchmarks read, in ``../shared/data/`` (``$LPN_SHARED_DATA`` moves it; never copied here).

``TUNE`` (``videos_tune/``) are never trained on: the pipeline's defaults are chosen on them. ``TRAINED``
(walking, treadmill, street) are in the bundled weights' training data: they show speed and behaviour,
but their accuracy flatters the model, so they cannot choose defaults.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Final

SHARED: Final = Path(os.environ.get("LPN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
WALK: Final = SHARED / "videos" / "walk_away_720p.mp4"
TREADMILL: Final = SHARED / "videos" / "treadmill_360p.mp4"
STREET: Final = SHARED / "videos" / "openpose_street_multi_person_720p.avi"
TRAINED: Final = (WALK, TREADMILL, STREET)
TUNE_DIR: Final = SHARED / "videos_tune"
TUNE: Final = tuple(TUNE_DIR / name for name in ("jumping_jacks_gym_1person.mp4", "pushups_side_1person.mp4",
                                                "dance_3people_portrait.mp4", "running_side_1person.mp4"))
