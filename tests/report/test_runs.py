"""Finding run directories and grouping them by any config key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hessdyn.config.errors import HessdynError
from hessdyn.report.runs import discover_runs
from hessdyn.store import find_run_dirs

from .fake_runs import make_sweep, write_run


def test_runs_are_found_recursively_and_report_folders_skipped(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    make_sweep(sweep, analyzed=False)
    write_run(sweep / "lr_scan" / "deeper" / "optimizer=sgd,seed=5", "sgd", 5, analyzed=False)
    (sweep / "report" / ".hydra").mkdir(parents=True)
    (sweep / "report" / ".hydra" / "config.yaml").write_text("sweep_dir: x\nreport: {}\n")
    (sweep / ".report.staging-1-2").mkdir()
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    found = [p.relative_to(sweep).as_posix() for p in find_run_dirs(sweep)]
    assert found == [
        "lr_scan/deeper/optimizer=sgd,seed=5",
        "optimizer=adam,seed=0",
        "optimizer=adam,seed=1",
        "optimizer=sgd,seed=0",
        "optimizer=sgd,seed=1",
    ]


def test_group_by_optimizer_uses_the_name(tmp_path: Path) -> None:
    make_sweep(tmp_path, optimizers=("sgd", "momentum", "adam"), seeds=(0,), analyzed=False)
    runs = discover_runs(str(tmp_path), [], "optimizer")
    assert [(r.group, r.seed) for r in runs] == [("adam", 0), ("momentum", 0), ("sgd", 0)]


def test_group_by_a_number_sorts_numerically(tmp_path: Path) -> None:
    for lr in (0.3, 0.05, 1.0):
        write_run(tmp_path / f"optimizer.lr={lr}", "sgd", 0, lr=lr, analyzed=False)
    runs = discover_runs(str(tmp_path), [], "optimizer.lr")
    assert [r.group for r in runs] == ["lr=0.05", "lr=0.3", "lr=1"]


def test_group_by_a_list_and_by_several_keys(tmp_path: Path) -> None:
    write_run(tmp_path / "a", "sgd", 0, widths=(64, 64), analyzed=False)
    write_run(tmp_path / "b", "adam", 0, widths=(128,), analyzed=False)
    assert [r.group for r in discover_runs(str(tmp_path), [], "model.widths")] == [
        "widths=[128]",
        "widths=[64, 64]",
    ]
    groups = [r.group for r in discover_runs(str(tmp_path), [], "optimizer+model.widths")]
    assert groups == ["adam, widths=[128]", "sgd, widths=[64, 64]"]


def test_key_left_out_of_run_json_is_read_from_hydra_config(tmp_path: Path) -> None:
    (run,) = make_sweep(tmp_path, optimizers=("sgd",), seeds=(0,), analyzed=False)
    assert "name" not in json.loads((run / "run.json").read_text())["config"]
    (r,) = discover_runs(str(tmp_path), [], "name")
    assert r.group == "name=tiny"


def test_run_json_config_wins_over_hydra_config(tmp_path: Path) -> None:
    (run,) = make_sweep(tmp_path, optimizers=("sgd",), seeds=(0,), analyzed=False)
    record = json.loads((run / "run.json").read_text())
    record["config"]["optimizer"]["lr"] = 0.25  # e.g. an interpolation .hydra keeps unresolved
    (run / "run.json").write_text(json.dumps(record))
    (r,) = discover_runs(str(tmp_path), [], "optimizer.lr")
    assert r.group == "lr=0.25"


def test_run_dirs_list(tmp_path: Path) -> None:
    a, b, _ = make_sweep(tmp_path, optimizers=("sgd",), seeds=(0, 1, 2), analyzed=False)
    runs = discover_runs(None, [str(a), str(b)], "optimizer")
    assert [r.name for r in runs] == ["seed=0", "seed=1"]  # without the override all runs share


@pytest.mark.parametrize(
    ("setup", "group_by", "message"),
    [
        ("missing", "optimizer", r"sweep_dir .* does not exist"),
        ("empty", "optimizer", r"no run directories .* under"),
        ("sweep", "optimizer.momentum_typo", r"no run has the config key 'optimizer.momentum_typo'"),
        (
            "sweep",
            "trainer",
            r"report.group_by=trainer is a config section without a name; name a key inside it",
        ),
        ("not_a_run", "optimizer", r"is not a run directory"),
        ("nothing", "optimizer", r"give sweep_dir=PATH or run_dirs"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, setup: str, group_by: str, message: str) -> None:
    sweep_dir, run_dirs = str(tmp_path / "sweep"), []
    if setup == "empty":
        (tmp_path / "sweep").mkdir()
    elif setup == "sweep":
        make_sweep(tmp_path / "sweep", analyzed=False)
    elif setup == "not_a_run":
        sweep_dir, run_dirs = None, [str(tmp_path)]
    elif setup == "nothing":
        sweep_dir = None
    with pytest.raises(HessdynError, match=message) as info:
        discover_runs(sweep_dir, run_dirs, group_by)
    assert "\n" not in str(info.value)


def test_run_names_drop_the_overrides_every_run_shares(tmp_path: Path) -> None:
    fixed = "checkpoint.num=5,model.widths=[16,32]"
    for opt in ("sgd", "adam"):
        write_run(tmp_path / f"{fixed},optimizer={opt},seed=0,trainer.max_steps=60", opt, 0, analyzed=False)
    write_run(
        tmp_path / "more" / f"{fixed},optimizer=sgd,seed=1,trainer.max_steps=60", "sgd", 1, analyzed=False
    )
    names = [r.name for r in discover_runs(str(tmp_path), [], "optimizer")]
    assert names == ["optimizer=adam,seed=0", "optimizer=sgd,seed=0", "more/optimizer=sgd,seed=1"]
