"""LPN Pose engine: model, codec, crops, backends, weights, detector and pipeline. No Qt here."""
__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it (tool.setuptools.dynamic)

from .assets import asset_path, package_version
from .errors import DataError, DetectorError, LpnError, ModelError, OutputError, SourceError, WeightsError
from .estimator import PoseEstimator, build_estimator
from .model import LPN, MODELS, count_flops, count_params, create_model, list_models
from .pipeline import Pipeline, PipelineSettings
from .types import FrameResult, Pose

__all__ = [
    "LPN", "MODELS", "DataError", "DetectorError", "FrameResult", "LpnError", "ModelError", "OutputError",
    "Pipeline", "PipelineSettings", "Pose", "PoseEstimator", "SourceError", "WeightsError", "build_estimator", "count_flops", "count_params",
    "asset_path", "create_model", "list_models", "package_version",
]
