"""The report on any mix of runs (issue 14): only diverged, only failed, run.json missing, ... never a
KeyError; the runs it leaves out of the means are listed with the reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from .conftest import build
from .fake_runs import write_run

MIXES = {
    "only_diverged": [{"status": "diverged", "last_step": 30}],
    "analyzed_then_run_json_lost": [{"lose_run_json": True}],
    "diverged_failed_and_missing": [
        {"status": "diverged", "last_step": 30},
        {"status": "failed", "last_step": 10, "analyzed": False},
        {"run_json": False},
    ],
}


def _write_mix(root: Path, mix: list[dict]) -> None:
    for seed, spec in enumerate(mix):
        spec = dict(spec)
        lose = spec.pop("lose_run_json", False)
        run = write_run(root / f"optimizer=sgd,seed={seed}", "sgd", seed, **spec)
        if lose:
            (run / "run.json").unlink()


@pytest.mark.parametrize("mix", list(MIXES))
def test_report_with_no_completed_or_running_run_has_no_key_error(tmp_path: Path, mix: str) -> None:
    """Defect 2: ``KeyError: 'param'`` in ``aggregate.layer_mass_data`` when no analyzed run is
    completed or running."""
    _write_mix(tmp_path / "sweep", MIXES[mix])
    result = build(tmp_path / "sweep")
    runs = pd.read_csv(result.out / "runs.csv")
    assert len(runs) == len(MIXES[mix])
    assert not runs["in_means"].any()  # none of these runs may be averaged in
    # every run left out of the means is named with its reason, on the page and in runs.csv
    page = (result.out / "index.html").read_text(encoding="utf-8")
    for name, note in zip(runs["run"], runs["note"], strict=True):
        assert isinstance(note, str) and note
        assert any(name in w for w in result.warnings), (name, result.warnings)
    for w in result.warnings:
        assert w.split(";")[0].split(":")[0] in page
