"""Packaging: `lpn-pose --version`, the pyproject's entry point and dependencies, where bundled assets are found,
and one real wheel build (pip + setuptools, no network) holding the code, every file under assets/ and the
console script."""
from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import lpn_core
import lpn_pose_cli
from conftest import REPO_ROOT
from lpn_core import assets as A
from lpn_core import weights as W

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
IGNORED = ("__pycache__", "*.pyc", ".DS_Store")  # never shipped, never expected in the wheel


def files_under(folder: Path) -> list[Path]:
    """Every file below ``folder`` (relative), less caches."""
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file()
                  and not any(p.match(pattern) or pattern in p.parts for pattern in IGNORED))


def test_version_flag_prints_the_version_and_exits_0(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        lpn_pose_cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"lpn-pose {lpn_core.package_version()}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+([a-z0-9.+-]*)", lpn_core.__version__)


def test_pyproject_takes_the_version_from_lpn_core() -> None:
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lpn_core.__version__"}


def test_pyproject_declares_the_lpn_pose_command_at_an_importable_callable() -> None:
    target = PYPROJECT["project"]["scripts"]["lpn-pose"]
    module_name, _, attr = target.partition(":")
    function = getattr(importlib.import_module(module_name), attr)
    assert callable(function) and function is lpn_pose_cli.main
    assert module_name in PYPROJECT["tool"]["setuptools"]["py-modules"]


def requirement_names(lines: list[str]) -> dict[str, str]:
    """``{'torch': 'torch>=2.4', ...}`` from requirement lines (comments and blanks dropped)."""
    specs = [line.split("#")[0].strip() for line in lines]
    return {re.split(r"[<>=!~\[; ]", spec)[0].lower(): spec for spec in specs if spec}


def test_dependencies_are_requirements_txt_less_the_test_tools() -> None:
    required = requirement_names((REPO_ROOT / "requirements.txt").read_text().splitlines())
    runtime = requirement_names(PYPROJECT["project"]["dependencies"])
    test_extra = requirement_names(PYPROJECT["project"]["optional-dependencies"]["test"])
    assert set(test_extra) == {"pytest", "pytest-qt", "pandas", "setuptools"}
    assert runtime | test_extra == required, "pyproject.toml and requirements.txt list different versions or packages"
    assert not set(runtime) & set(test_extra)


def test_the_cli_module_imports_no_qt() -> None:
    """lpn-pose --no-gui must work without a display or PyQt6: the GUI is imported only when opened."""
    code = ("import sys, lpn_pose_cli; bad = sorted(m for m in sys.modules if m.split('.')[0] in ('PyQt6', 'app')); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_assets_are_found_beside_a_checkout() -> None:
    assert A.assets_dir() == REPO_ROOT / "assets"
    assert lpn_core.asset_path("weights") == W.BUNDLED_DIR == REPO_ROOT / "assets" / "weights"


def test_code_reaches_bundled_files_only_through_asset_path() -> None:
    """A hand-built ``.../"assets"/...`` path works in a checkout but not once installed (assets/ is then
    lpn_pose_assets/): every module must use lpn_core.asset_path()."""
    packages = ("lpn_core", "app", "train")
    sources = [REPO_ROOT / "lpn_pose_cli.py", *(p for d in packages for p in (REPO_ROOT / d).rglob("*.py"))]
    offenders = [f"{path.relative_to(REPO_ROOT)}:{number}" for path in sources if path.name != "assets.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"[\"']assets[\"'/]", line)]
    assert not offenders, f"use lpn_core.asset_path() instead of building the assets/ path: {offenders}"


def test_assets_are_found_in_an_installed_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wheel installs assets/ as site-packages/lpn_pose_assets, beside lpn_core/."""
    (tmp_path / "lpn_core").mkdir()
    (tmp_path / "lpn_pose_assets" / "weights").mkdir(parents=True)
    monkeypatch.setattr(A, "_PACKAGE_DIR", tmp_path / "lpn_core")
    assert A.asset_path("weights") == tmp_path / "lpn_pose_assets" / "weights"


def build_inputs() -> list[str]:
    """What the build reads, from pyproject.toml: packages (with their source folders), modules, readme, licence."""
    tool = PYPROJECT["tool"]["setuptools"]
    folders = [tool.get("package-dir", {}).get(name, name) for name in tool["packages"]]
    return ["pyproject.toml", PYPROJECT["project"]["readme"], *PYPROJECT["project"]["license-files"],
            *(f"{module}.py" for module in tool["py-modules"]), *folders]


def test_a_wheel_holds_the_code_every_asset_and_the_command(tmp_path: Path) -> None:
    """`pip wheel` on a copy of the sources (the checkout gets no build/ or egg-info), no network, no isolation."""
    try:
        import setuptools
    except ImportError:
        pytest.fail("building the wheel needs setuptools>=77 in this Python: pip install 'setuptools>=77'")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.fail(f"building the wheel needs setuptools>=77 (PEP 639 licence fields), found {setuptools.__version__}")
    source = tmp_path / "src"
    for name in build_inputs():
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns(*IGNORED))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(path, source / name)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                          "--disable-pip-version-check", "-q", str(source), "-w", str(tmp_path / "dist")],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    [wheel] = (tmp_path / "dist").glob("lpn_pose-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))

    for package in ("lpn_core", "app", "train"):
        expected = {f"{package}/{p.as_posix()}" for p in files_under(REPO_ROOT / package) if p.suffix in (".py", ".yaml")}
        assert expected and expected <= names, f"{package}/ files missing from the wheel: {sorted(expected - names)}"
    assert "lpn_pose_cli.py" in names
    assets = {f"lpn_pose_assets/{p.as_posix()}" for p in files_under(REPO_ROOT / "assets")}
    assert assets and assets <= names, f"assets missing from the wheel: {sorted(assets - names)}"
    assert not {n for n in names if n.startswith(("tests/", "benchmarks/", "docs/", "assets/"))}
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert re.search(r"^\[console_scripts\]\s*^lpn-pose = lpn_pose_cli:main$", entry_points, re.M), entry_points
