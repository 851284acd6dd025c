"""app/settings.py: remembered settings round-trip, and the command line wins over them."""
from __future__ import annotations

from app.settings import PIPELINE_FIELDS, GuiState, load_state, merge, open_store, pipeline_settings, save_state
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
    state = merge(cli, remembered, PipelineSettings())
    settings = pipeline_settings(cli, state)
    assert (settings.model, settings.backend, settings.det_every, settings.kpt_thr) == ("lpn152", "torch", 5, 0.5)
    assert settings.weights == "untrained" and state.model == "lpn152"
    assert settings.precision == PipelineSettings.precision  # PyTorch runs fp32: the ONNX choice does not apply


def test_a_weights_file_belongs_to_its_model_and_stale_choices_fall_back() -> None:
    cli = PipelineSettings(model="lpn101", weights="/ckpt/mine.pth")
    state = merge(cli, GuiState(model="lpn50", backend="tensorrt", precision="int4"), PipelineSettings())
    assert (state.model, state.backend, state.precision) == ("lpn101", GuiState.backend, GuiState.precision)
    assert pipeline_settings(cli, state).weights == "/ckpt/mine.pth"
    state.model = "lpn152"  # chosen in the window: the file is not LPN-152's, so resolve by name
    assert pipeline_settings(cli, state).weights is None


def test_one_source_of_defaults_for_the_pipeline_the_cli_and_the_window(qtbot) -> None:
    """PipelineSettings holds every default; the CLI's options, GuiState and the widgets start from it."""
    import lpn_pose_cli
    from app.controls import ModelBox

    defaults = PipelineSettings()
    assert lpn_pose_cli.settings_from_args(lpn_pose_cli.build_parser().parse_args([])) == defaults
    state = GuiState()
    for name in PIPELINE_FIELDS:
        assert getattr(state, name) == getattr(defaults, name), name
    box = ModelBox(state)
    qtbot.addWidget(box)
    shown = (box.model_combo.currentData(), box.backend_combo.currentData(), box.precision_combo.currentData(),
             box.det_every_spin.value(), box.kpt_slider.value() / 100, box.smoothing_check.isChecked())
    assert shown == tuple(getattr(defaults, name) for name in PIPELINE_FIELDS)
