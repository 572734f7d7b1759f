#!/usr/bin/env python3
"""Check a hessdyn report in headless Chromium: the page loads offline with every image displayed.

usage: check_report_chromium.py REPORT_DIR [--chromium PATH] [--timeout SECONDS]

1. Static: every ``img src``/``a href``/``link href``/``script src`` of ``index.html`` is a relative path
   to a file that exists (no ``http:``, ``https:`` or ``//`` addresses; no ``@import``/remote ``url()``).
2. Browser: a copy of the report, with a small script added that records, after the ``load`` event, each
   image's ``naturalWidth`` and every resource the page fetched, is opened with ``chromium --headless
   --dump-dom`` (network disabled through an unreachable proxy); every image must have decoded
   (``naturalWidth > 0``) and every resource must be a ``file:`` URL.

The report folder itself is not modified. Exit status 0 when all checks pass, 1 when one fails, 2 when
the folder or Chromium is missing. Prints one summary line with the time Chromium took.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (im) {
    return {src: im.getAttribute("src"), complete: im.complete, width: im.naturalWidth, height: im.naturalHeight};
  });
  var resources = performance.getEntriesByType("resource").map(function (e) { return e.name; });
  var pre = document.createElement("pre");
  pre.id = "hessdyn-check";
  pre.textContent = JSON.stringify({images: images, resources: resources, location: String(location.href)});
  document.body.appendChild(pre);
});
</script>
"""

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--proxy-server=http://127.0.0.1:9",  # nothing listens there: any remote fetch fails
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=10000",  # dump the DOM after the page (and its images) settled
]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is not None and (tag, name) in {
                ("img", "src"),
                ("a", "href"),
                ("link", "href"),
                ("script", "src"),
                ("source", "src"),
                ("iframe", "src"),
            }:
                self.refs.append((tag, name, value))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def static_problems(report: Path) -> tuple[list[str], int]:
    """Problems of index.html's links; returns them and the number of images."""
    parser = _Links()
    parser.feed((report / "index.html").read_text(encoding="utf-8"))
    problems, images = [], 0
    for tag, attr, value in parser.refs:
        url = urlparse(value)
        if url.scheme or value.startswith("//"):
            problems.append(f"<{tag} {attr}={value!r}> is not a relative path (the page must work offline)")
            continue
        if tag == "a" and value.startswith("#"):
            continue
        target = report / unquote(url.path)
        if not target.is_file():
            problems.append(f"<{tag} {attr}={value!r}> points to a missing file")
        images += tag == "img"
    for css in parser.styles:
        if "@import" in css or re.search(r"url\(\s*['\"]?(https?:)?//", css):
            problems.append("inline CSS loads a remote resource (@import or url(http...))")
    return problems, images


def browser_problems(report: Path, chromium: str, timeout: float) -> tuple[list[str], dict, float]:
    """Load a probed copy of the report in headless Chromium; returns problems, the probe, seconds."""
    with tempfile.TemporaryDirectory(prefix="hessdyn-chromium-") as tmp:
        copy = Path(tmp) / "report"
        shutil.copytree(report, copy, ignore=shutil.ignore_patterns(".hydra", "*.log"))
        page = copy / "index.html"
        text = page.read_text(encoding="utf-8")
        page.write_text(text.replace("</body>", PROBE + "</body>", 1), encoding="utf-8")
        command = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ]
        start = time.perf_counter()
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return [f"chromium did not finish within {timeout:g} s"], {}, time.perf_counter() - start
        seconds = time.perf_counter() - start
    match = re.search(r'<pre id="hessdyn-check">(.*?)</pre>', proc.stdout, flags=re.S)
    if not match:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [f"the page did not finish loading in chromium (exit {proc.returncode}): {tail}"], {}, seconds
    probe = json.loads(html.unescape(match.group(1)))
    problems = [
        f"image {im['src']!r} is not displayed (complete={im['complete']}, naturalWidth={im['width']})"
        for im in probe["images"]
        if not im["complete"] or im["width"] <= 0
    ]
    problems += [
        f"the page fetched a non-local resource: {url}"
        for url in probe["resources"]
        if not url.startswith("file:")
    ]
    return problems, probe, seconds


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--chromium", default=None, help="browser executable (default: chromium on PATH)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    report = args.report_dir
    if not (report / "index.html").is_file():
        print(
            f"check_report_chromium: error: {report}/index.html not found; pass a report folder",
            file=sys.stderr,
        )
        return 2
    chromium = args.chromium or find_chromium()
    if chromium is None:
        print(
            "check_report_chromium: error: chromium not found; apt-get install -y chromium", file=sys.stderr
        )
        return 2
    problems, images = static_problems(report)
    browser, probe, seconds = browser_problems(report, chromium, args.timeout)
    problems += browser
    shown = len(probe.get("images", []))
    if problems:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        print(
            f"check_report_chromium: {len(problems)} problems in {report} (chromium {seconds:.1f} s)",
            file=sys.stderr,
        )
        return 1
    print(
        f"ok: {report}/index.html rendered offline with {shown}/{images} images displayed (chromium {seconds:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
