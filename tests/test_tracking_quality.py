"""benchmarks/bench_tracking.py's comparison of a det-every-N run with the det-every-1 reference, on synthetic poses."""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_tracking import compare_runs, id_switches, joint_distances, match_people
from lpn_core.types import Pose


def person(x: float, y: float = 0.0, track_id: int | None = 1, score: float = 0.9, height: float = 200.0) -> Pose:
    """A 100 x ``height`` px person at (x, y), joints spread over its box, all with ``score``."""
    kpts = np.zeros((17, 3), np.float32)
    kpts[:, 0], kpts[:, 1], kpts[:, 2] = x + np.linspace(20, 80, 17), y + np.linspace(10, height - 10, 17), score
    return Pose(kpts, np.array([x, y, x + 100, y + height], np.float32), score, track_id)


def test_match_people_is_hungarian_on_iou_with_a_threshold() -> None:
    ref = [person(0), person(300)]
    test = [person(310), person(500), person(5)]  # swapped order; the one at 500 overlaps nobody
    assert sorted(match_people(ref, test)) == [(0, 2), (1, 0)]
    assert match_people(ref, [person(80)]) == []  # IoU 20/180 < 0.3
    assert match_people([], test) == [] and match_people(ref, []) == []


def test_joint_distances_use_joints_confident_in_both() -> None:
    ref, test = person(0), person(0, y=10)
    test.keypoints[:5, 2] = 0.1  # not confident in the test run: not compared
    dist, height = joint_distances(ref, test, kpt_thr=0.3)
    assert len(dist) == 12 and np.allclose(dist, 10) and height == 200


def test_id_switches_count_changes_of_the_matched_id_along_each_reference_track() -> None:
    assert id_switches([]) == 0
    assert id_switches([(1, 5), (1, 5), (2, 7), (1, 6), (2, 7), (1, 6), (1, 5)]) == 2
    assert id_switches([(1, 5), (2, 5)]) == 0  # two reference tracks: each keeps its own history


def test_compare_runs_counts_distance_lost_extra_and_switches() -> None:
    ref = [[person(0)], [person(0)], [person(0), person(300, track_id=2)], [person(0)]]
    test = [[person(0, y=10, track_id=4)],             # 10 px = 5 % of 200 px on 17 joints
            [],                                          # lost
            [person(0, track_id=4), person(600, track_id=9)],  # second reference person lost, one extra
            [person(0, track_id=8)]]                     # the matched test id changed: one switch
    q = compare_runs(ref, test)
    assert (q.ref_people, q.matched, q.lost, q.extra, q.id_switches) == (5, 3, 2, 1, 1)
    assert q.lost_pct == pytest.approx(40.0) and q.joints == 51
    assert q.dist_px_mean == pytest.approx(10 / 3, abs=0.01) and q.dist_px_median == 0.0
    assert q.dist_pct_mean == pytest.approx(5 / 3, abs=0.01)
    same = compare_runs(ref, ref)
    assert (same.lost, same.extra, same.id_switches, same.dist_px_mean) == (0, 0, 0, 0.0)
    with pytest.raises(ValueError):
        compare_runs(ref, test[:2])  # runs over different frames cannot be compared
