"""Where this installation's files are: the bundled ``assets/`` folder and the installed version.

Two layouts, one answer:

* a checkout, or an editable install (``pip install -e .``): ``lpn_core/`` sits beside ``assets/``;
* a regular install (``pip install .``): the wheel carries ``assets/`` as the data-only package
  ``lpn_pose_assets`` (pyproject.toml maps it), installed beside ``lpn_core/`` in site-packages.

Nothing here imports the rest of lpn_core, torch or Qt.
"""
from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlparse

from . import __version__

DISTRIBUTION: Final = "lpn-pose"  # the name pip knows this project by (pyproject.toml, [project] name)
INSTALLED_ASSETS: Final = "lpn_pose_assets"  # what assets/ is called inside the wheel
_PACKAGE_DIR: Final = Path(__file__).resolve().parent  # .../lpn_core


def assets_dir() -> Path:
    """The bundled files' folder: ``<site-packages>/lpn_pose_assets`` when installed from a wheel, else the
    checkout's ``assets/`` (the folder may not exist: callers check each file)."""
    installed = _PACKAGE_DIR.parent / INSTALLED_ASSETS
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / "assets"


def asset_path(relative: str | Path) -> Path:
    """``asset_path('weights/manifest.json')`` -> that bundled file, installed or in a checkout."""
    return assets_dir() / relative


def package_version() -> str:
    """The installed distribution's version when this code is that installation (``pip install .`` or
    ``pip install -e .``), else ``__version__`` (a plain checkout, possibly beside an unrelated installed copy)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return __version__
    if Path(dist.locate_file("lpn_core")).resolve() == _PACKAGE_DIR:  # a regular install: these are its files
        return dist.version
    try:  # an editable install records the checkout it points at
        url = json.loads(dist.read_text("direct_url.json") or "{}")
        editable = bool(url.get("dir_info", {}).get("editable"))
        source = Path(unquote(urlparse(url.get("url", "")).path)).resolve()
    except (ValueError, AttributeError, OSError):
        return __version__
    return dist.version if editable and source == _PACKAGE_DIR.parent else __version__
