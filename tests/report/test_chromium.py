"""The report page in headless Chromium: loads offline, every image displayed (skipped without chromium)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hessdyn.report.figures import FIGURES

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_report_chromium.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not on PATH (apt-get install -y chromium to run the browser check)"
)


def _check(report: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(report), "--chromium", CHROMIUM],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_report_renders_with_every_image(clean_report) -> None:
    proc = _check(clean_report.out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # every figure with data in the fake runs (the noise figures have none there) is on the page and shown
    count = len([f for f in FIGURES if (clean_report.out / f"{f.name}.png").exists()])
    assert count >= len(FIGURES) - 4
    assert f"{count}/{count} images displayed" in proc.stdout


def test_check_catches_a_broken_image_and_a_remote_reference(clean_report, tmp_path: Path) -> None:
    broken = tmp_path / "report"
    shutil.copytree(clean_report.out, broken)
    (broken / "trace.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    page = broken / "index.html"
    page.write_text(page.read_text().replace("</body>", '<img src="https://example.org/x.png"></body>'))
    proc = _check(broken)
    assert proc.returncode == 1
    assert "'trace.png' is not displayed" in proc.stderr
    assert "https://example.org/x.png" in proc.stderr
