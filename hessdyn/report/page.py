"""The report's ``index.html``: standard-library templating, inline CSS, relative links only.

The page loads nothing from the network (no scripts, fonts or stylesheets), so it renders offline and
from an archive; every image and table it shows is a file beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from string import Template
from urllib.parse import quote

import pandas as pd

from hessdyn.report.aggregate import SUMMARY_METRICS
from hessdyn.report.provenance import Settings


@dataclass(frozen=True)
class PageFigure:
    name: str
    title: str
    caption: str
    image: str  # relative path of the PNG
    data: str  # relative path of the CSV of the numbers drawn
    other_formats: tuple[str, ...] = ()  # relative paths of the SVG/PDF versions


@dataclass(frozen=True)
class PageContent:
    title: str
    source: str  # the sweep folder or the list of runs, as text
    group_by: str
    level: float
    runs: pd.DataFrame  # runs.csv
    summary: pd.DataFrame  # summary.csv
    figures: Sequence[PageFigure]
    not_computed: Sequence[tuple[str, str]]  # (title, what it needs)
    run_settings: Settings
    analysis_settings: Settings
    environment_settings: Settings
    report_settings: dict[str, str]
    warnings: Sequence[str] = ()
    notes: Sequence[
        str
    ] = ()  # what a reader must know to read the figures (e.g. which loss the Hessian is of)
    files: Sequence[tuple[str, str]] = field(default_factory=list)  # (label, relative path): provenance files
    version: str = ""


CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d1d1f;
 max-width:1180px;margin:0 auto;padding:1.2em 1.5em 3em}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555}nav a{margin-right:.9em}a{color:#0b5cad}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}th,td{border:1px solid #ddd;padding:.25em .55em;
 text-align:left;vertical-align:top}th{background:#f4f4f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.6em 0;padding:0}figure img{max-width:100%;height:auto;display:block;border:1px solid #eee}
figcaption{font-size:.9em;color:#333;margin-top:.4em;max-width:62em}figcaption .files{color:#555}
.status{display:inline-block;padding:0 .45em;border-radius:.6em;font-size:.85em}
.completed{background:#e3f4e8}.running{background:#e6effa}.diverged{background:#fde8d8}.failed{background:#f9dcdc}
.unknown{background:#eee}.note{background:#eef4fb;border-left:4px solid #0b5cad;padding:.4em .8em}.warn{background:#fff8e1;border-left:4px solid #e6a700;padding:.4em .8em}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:.2em;margin-right:.35em;vertical-align:-.05em}
details{margin:.5em 0}summary{cursor:pointer}code{font-size:.92em}
"""

PAGE = Template(
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>$title</title>
<style>$css</style>
</head>
<body>
<h1>$title</h1>
<p class="meta">$meta</p>
<nav>$nav</nav>
$warnings
$notes
<h2 id="summary">Summary per group</h2>
$summary
<h2 id="figures">Figures</h2>
$figures
$not_computed
<h2 id="runs">Runs</h2>
$runs
<h2 id="settings">Settings</h2>
$settings
<footer class="meta"><p>$footer</p></footer>
</body>
</html>
"""
)


def _href(path: str) -> str:
    return escape(quote(path, safe="/"), quote=True)


def _num(value: float) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.4g}"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None
) -> str:
    """Table from already-escaped cell HTML."""
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if n else f"<td>{c}</td>" for c, n in zip(r, numeric, strict=True)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(content: PageContent, colors: dict[str, str]) -> str:
    s = content.summary
    if s.empty:
        return "<p>No completed run has final metrics yet.</p>"
    metrics = [m for m in SUMMARY_METRICS if m in set(s["metric"])]
    rows = []
    for group in dict.fromkeys(content.runs["group"]):
        part = s[s["group"] == group].set_index("metric")
        cells = [_group_cell(group, colors)]
        for m in metrics:
            if m not in part.index:
                cells.append("–")
                continue
            r = part.loc[m]
            spread = f" ± {float(r['sd']):.2g}" if math.isfinite(float(r["sd"])) else ""
            cells.append(f"{_num(r['mean'])}{spread} <small>(n={int(r['n'])})</small>")
        rows.append(cells)
    header = ["group", *(escape(SUMMARY_METRICS[m]) for m in metrics)]
    note = (
        '<p class="meta">Mean ± standard deviation over the completed runs of each group (n runs); final = at each '
        "run's last evaluated or analyzed step. Displacement: mean over consecutive checkpoint pairs and the leading "
        "ranks; IPR: normalized IPR of the leading eigenvectors at the last analyzed step. "
        f'Numbers with the {content.level:.0%} t-interval: <a href="summary.csv">summary.csv</a>.</p>'
    )
    return _table(header, rows, [False] + [True] * len(metrics)) + note


def _group_cell(group: str, colors: dict[str, str]) -> str:
    color = colors.get(group, "#999")
    return f'<span class="swatch" style="background:{escape(color)}"></span>{escape(group)}'


def _figures(content: PageContent) -> str:
    out = []
    for f in content.figures:
        files = [f'data: <a href="{_href(f.data)}">{escape(f.data)}</a>']
        files += [f'<a href="{_href(p)}">{escape(p)}</a>' for p in f.other_formats]
        out.append(
            f'<figure id="{escape(f.name)}">\n<img src="{_href(f.image)}" alt="{escape(f.title)}">\n'
            f"<figcaption><b>{escape(f.title)}.</b> {escape(f.caption)}<br>"
            f'<span class="files">{" · ".join(files)}</span></figcaption>\n</figure>'
        )
    return "\n".join(out) if out else "<p>No figure could be drawn from the runs' tables yet.</p>"


def _not_computed(content: PageContent) -> str:
    if not content.not_computed:
        return ""
    items = "".join(
        f"<li><b>{escape(t)}</b>: not computed (no run has {escape(n)})</li>" for t, n in content.not_computed
    )
    return f'<h3 id="not-computed">Not computed</h3><ul>{items}</ul>'


def _runs(content: PageContent, colors: dict[str, str]) -> str:
    rows = []
    for _, r in content.runs.iterrows():
        status = escape(str(r["status"]))
        steps = "–" if pd.isna(r["steps"]) else f"{int(r['steps'])}"
        if not pd.isna(r["total_steps"]):
            steps += f" / {int(r['total_steps'])}"
        analyzed = f"yes ({int(r['analyzed_checkpoints'])} checkpoints)" if r["analyzed"] else "no"
        seed = "–" if pd.isna(r["seed"]) else str(int(r["seed"]))
        rows.append(
            [
                f'<code title="{escape(str(r["run_dir"]))}">{escape(str(r["run"]))}</code>',
                _group_cell(str(r["group"]), colors),
                seed,
                f'<span class="status {status}">{status}</span>',
                steps,
                analyzed,
                escape(str(r["note"])),
                f"<small><code>{escape(str(r['overrides']))}</code></small>",
            ]
        )
    header = ["run", "group", "seed", "status", "steps", "analyzed", "in figures", "overrides (.hydra)"]
    return _table(header, rows) + ('<p class="meta">Also as <a href="runs.csv">runs.csv</a>.</p>')


def _settings_block(title: str, settings: Settings) -> str:
    parts = [f"<h3>{escape(title)}</h3>"]
    if settings.varied:
        rows = [[f"<code>{escape(k)}</code>", escape(", ".join(v))] for k, v in settings.varied.items()]
        parts.append("<p>Varied across runs:</p>" + _table(["key", "values"], rows))
    if settings.constant:
        rows = [[f"<code>{escape(k)}</code>", escape(v)] for k, v in settings.constant.items()]
        parts.append(
            f"<details><summary>Same in every run ({len(rows)} keys)</summary>{_table(['key', 'value'], rows)}</details>"
        )
    if not settings.varied and not settings.constant:
        parts.append("<p>None recorded.</p>")
    return "\n".join(parts)


def _settings(content: PageContent) -> str:
    report_rows = [[f"<code>{escape(k)}</code>", escape(v)] for k, v in content.report_settings.items()]
    parts = [
        _settings_block("Training (run.json config, .hydra/config.yaml)", content.run_settings),
        _settings_block("Analysis (analysis/analysis.json)", content.analysis_settings),
        _settings_block("Code, libraries, device, data (run.json)", content.environment_settings),
        "<h3>This report</h3>" + _table(["setting", "value"], report_rows),
    ]
    if content.files:
        links = " · ".join(f'<a href="{_href(p)}">{escape(label)}</a>' for label, p in content.files)
        parts.append(f"<p>Provenance: {links}</p>")
    return "\n".join(parts)


def render_page(content: PageContent, colors: dict[str, str]) -> str:
    """The complete ``index.html`` text."""
    counts = content.runs["status"].value_counts()
    status_text = ", ".join(f"{int(counts[s])} {s}" for s in sorted(counts.index))
    analyzed = int(content.runs["analyzed"].sum())
    groups = list(dict.fromkeys(content.runs["group"]))
    meta = (
        f"{len(content.runs)} runs ({escape(status_text)}; {analyzed} analyzed) in {len(groups)} groups by "
        f"<code>{escape(content.group_by)}</code> · source: <code>{escape(content.source)}</code> · bands: "
        f"{content.level:.0%} t-interval of the mean over seeds"
    )
    nav_items = [("summary", "Summary"), ("figures", "Figures"), ("runs", "Runs"), ("settings", "Settings")]
    nav = " ".join(f'<a href="#{i}">{escape(t)}</a>' for i, t in nav_items)
    figure_nav = " · ".join(f'<a href="#{escape(f.name)}">{escape(f.title)}</a>' for f in content.figures)
    warnings = ""
    if content.warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in content.warnings)
        warnings = f'<div class="warn"><b>Partial data</b><ul>{items}</ul></div>'
    notes = "".join(f'<p class="note">{escape(n)}</p>' for n in content.notes)
    figures = (f'<p class="meta">{figure_nav}</p>' if figure_nav else "") + _figures(content)
    return PAGE.substitute(
        title=escape(content.title),
        css=CSS,
        meta=meta,
        nav=nav,
        warnings=warnings,
        notes=notes,
        summary=_summary(content, colors),
        figures=figures,
        not_computed=_not_computed(content),
        runs=_runs(content, colors),
        settings=_settings(content),
        footer=escape(f"hessdyn {content.version}".strip()),
    )
