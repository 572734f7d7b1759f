"""A plain, non-editable install finds its configs: build the wheel, install it elsewhere, compose and train."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _source_copy(dest: Path) -> Path:
    """The tracked sources in a scratch folder, so the build leaves no build/ or egg-info in the checkout."""
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "hessdyn", dest / "hessdyn", ignore=ignore)
    shutil.copytree(REPO / "conf", dest / "conf", ignore=ignore)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    src = _source_copy(tmp_path_factory.mktemp("src"))
    wheels = tmp_path_factory.mktemp("wheels")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(src),
            "-w",
            str(wheels),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("hessdyn-*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("hessdyn/conf/")}
    expected = {
        f"hessdyn/conf/{p.relative_to(REPO / 'conf').as_posix()}" for p in (REPO / "conf").rglob("*.yaml")
    }
    assert expected <= shipped, f"configs missing from the wheel: {sorted(expected - shipped)}"
    site = tmp_path_factory.mktemp("site")
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inst.returncode == 0, inst.stderr
    return site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "HESSDYN_RESULTS": str(cwd / "results")}
    code = "import sys; from hessdyn.cli import main; sys.argv[0] = 'hessdyn'; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_wheel_install_composes_configs_away_from_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [sys.executable, "-c", "import hessdyn.conf, os; print(os.path.dirname(hessdyn.conf.__file__))"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True,
        text=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed), where.stdout + where.stderr
    shown = _run(
        installed, tmp_path, "train", "--cfg", "job", "experiment=optimizer_dynamics", "optimizer=adam"
    )
    assert shown.returncode == 0, shown.stderr
    assert "name: adam" in shown.stdout
    help_text = _run(installed, tmp_path, "train", "--help")
    assert help_text.returncode == 0 and "wide_resnet" in help_text.stdout


def test_wheel_install_trains_and_analyzes(installed: Path, tmp_path: Path) -> None:
    trained = _run(
        installed,
        tmp_path,
        "train",
        "trainer.max_steps=3",
        "checkpoint.schedule=list",
        "checkpoint.steps=[0,3]",
    )
    assert trained.returncode == 0, trained.stderr
    (run_dir,) = [p.parent for p in (tmp_path / "results").rglob("run.json")]
    analyzed = _run(installed, tmp_path, "analyze", f"run_dir={run_dir}", "analysis=quick")
    assert analyzed.returncode == 0, analyzed.stderr
    assert list((run_dir / "analysis-quick").glob("*.csv")), sorted(p.name for p in run_dir.iterdir())
