"""Settings that do not change training never name a run folder (issue 14, defect 1).

``hessdyn run experiment=quickstart analysis.top_k=3`` used to train into ``analysis.top_k=3,...`` folders
(and retrain for every other analysis setting); the report then found no run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

from hessdyn.commands.preflight import compose_jobs
from hessdyn.config import NON_NAMING_KEYS, run_dirname, to_object
from hessdyn.config.errors import HessdynError
from hessdyn.pipeline.command import analyze_command, plan
from hessdyn.training.command import job_output_dir

NOT_NAMING = [
    "analysis.top_k=3",
    "analysis=quick",
    "report.log_x=true",
    "device=cpu",
    "trainer.progress=false",
    "report.band=0.9",
    "trainer.eval_batch_size=512",
    "dataset.root=/data",
]


@pytest.fixture
def results(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HESSDYN_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def _run_dirs(overrides: list[str], multirun: bool) -> list[Path]:
    out = []
    for cfg in compose_jobs("train", overrides, multirun):
        HydraConfig.instance().set_config(cfg)
        out.append(job_output_dir(cfg, multirun))
    return out


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_analysis_overrides_never_name_run_folders(results, multirun):
    plain = _run_dirs(["dataset=mnist", "optimizer=adam", "seed=1"], multirun)
    assert [p.name for p in plain] == ["dataset=mnist,optimizer=adam,seed=1"]
    assert _run_dirs(["dataset=mnist", *NOT_NAMING, "optimizer=adam", "seed=1"], multirun) == plain


def test_every_result_key_still_names_its_run():
    assert run_dirname(["seed=1", "model.widths=[8,8]", "analysis.top_k=3"]) == "model.widths=[8,8],seed=1"
    assert run_dirname([]) == run_dirname(["analysis.top_k=3", "report=x"]) == "default"
    assert run_dirname(["analysis_like=1"]) == "analysis_like=1"  # a prefix of a key name is not the key
    assert {"analysis", "report", "device", "name", "out_dir", "experiment"} <= set(NON_NAMING_KEYS)


def test_pipeline_with_an_analysis_override_trains_once_and_analyzes_with_it(results):
    jobs = plan(["experiment=quickstart", "analysis.top_k=3"])
    assert sorted(j.run_dir.name for j in jobs) == sorted(
        f"optimizer={o},seed={s}" for o in ("sgd", "adam") for s in (0, 1)
    )
    assert [j.run_dir for j in jobs] == [j.run_dir for j in plan(["experiment=quickstart"])]
    args = analyze_command(jobs, ["analysis.top_k=3"])
    assert "analysis.top_k=3" in args and "analysis.bottom_k=2" in args  # the override over the experiment's
    assert not any(a.startswith("settings_from_run") for a in args)
    # the analyze command composes exactly the pipeline's analysis settings
    assert args[:2] == ["analyze", "-m"]
    composed = compose_jobs("analyze", args[2:], multirun=True)
    assert len(composed) == 4
    assert all(to_object(c).analysis == to_object(jobs[0].cfg).analysis for c in composed)


def test_sweeping_a_setting_that_names_no_folder_is_refused_with_what_to_do(results):
    with pytest.raises(HessdynError, match=r"share the run folder .*analysis.name=NAME"):
        plan(["experiment=quickstart", "analysis.top_k=3,4"])


def test_pipeline_passes_the_thread_policy_to_every_stage(results):
    jobs = plan(["experiment=quickstart", "runtime.threads=1"])
    assert [j.run_dir for j in jobs] == [j.run_dir for j in plan(["experiment=quickstart"])]
    args = analyze_command(jobs, ["experiment=quickstart", "runtime.threads=1", "hydra/launcher=joblib"])
    assert "runtime.threads=1" in args and "hydra/launcher=joblib" in args
    composed = compose_jobs("analyze", args[2:], multirun=True)
    assert all(to_object(c).runtime.threads == "1" for c in composed)
