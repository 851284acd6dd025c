"""app/settings.py: remembered settings round-trip, and the command line wins over them."""
from __future__ import annotations

from app.settings import PIPELINE_FIELDS, GuiState, load_state, merge, open_store, save_state
from lpn_core.pipeline import PipelineSettings


def test_state_round_trip_through_an_ini_file(tmp_path) -> None:
    store = open_store(tmp_path / "settings.ini")
    state = GuiState(model="lpn152", backend="torch", det_every=4, kpt_thr=0.45, smoothing=False,
                     show_boxes=False, process_all=True, camera_index=2, last_source="/videos/a.mp4")
    save_state(store, state)
    assert load_state(open_store(tmp_path / "settings.ini")) == state


def test_missing_store_gives_defaults(tmp_path) -> None:
    assert load_state(open_store(tmp_path / "none.ini")) == GuiState()


def test_command_line_wins_defaults_take_remembered_values() -> None:
    remembered = GuiState(model="lpn101", backend="torch", det_every=5, kpt_thr=0.5)
    cli = PipelineSettings(model="lpn152", weights="untrained")  # --model given, the rest default
    settings, state = merge(cli, remembered, PipelineSettings())
    assert (settings.model, settings.backend, settings.det_every, settings.kpt_thr) == ("lpn152", "torch", 5, 0.5)
    assert settings.weights == "untrained" and state.model == "lpn152"


def test_window_and_command_line_share_the_pipeline_defaults() -> None:
    """The defaults chosen in docs/PERFORMANCE.md hold for the CLI and the window alike."""
    import lpn_pose_cli

    args = lpn_pose_cli.build_parser().parse_args([])
    defaults, state = PipelineSettings(), GuiState()
    for name in PIPELINE_FIELDS:
        assert getattr(state, name) == getattr(defaults, name), name
    assert (args.det_every, args.precision, args.backend) == (defaults.det_every, defaults.precision, defaults.backend)
