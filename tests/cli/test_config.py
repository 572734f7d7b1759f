"""Every config option composes; bad overrides fail at start with one line naming the key and choices."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hessdyn.commands.preflight import preflight
from hessdyn.config.errors import HessdynError
from hessdyn.config.store import GROUP_SCHEMAS

CONF = Path(__file__).resolve().parents[2] / "conf"


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", sorted(GROUP_SCHEMAS))
def test_group_options_on_disk_match_schemas(group: str) -> None:
    assert _options(group) == sorted(GROUP_SCHEMAS[group])


@pytest.mark.parametrize(
    "override",
    [f"{g}={o}" for g in sorted(GROUP_SCHEMAS) for o in _options(g)]
    + [f"analysis={o}" for o in _options("analysis")],
)
def test_every_option_composes_and_validates(override: str) -> None:
    needs = {"regularizer=hsr": ["model=three_layer"]}  # options that exist for some models only
    assert preflight("train", [override, *needs.get(override, [])], multirun=False, check=None) == 1


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes(experiment: str) -> None:
    assert preflight("train", [f"experiment={experiment}"], multirun=False, check=None) == 1


def test_multirun_expands_every_job() -> None:
    assert preflight("train", ["optimizer=sgd,adam", "seed=0,1,2"], multirun=True, check=None) == 6


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("model=resnet", r"unknown model 'resnet' \(choose from: mlp, three_layer, wide_resnet\)"),
        (
            "optimizer=adagrad",
            r"unknown optimizer 'adagrad' \(choose from: adam, adamw, momentum, rmsprop, sam, sgd\)",
        ),
        (
            "model.activation=swish",
            r"invalid value for 'model.activation': 'swish' \(choose from: relu, tanh, gelu, softplus, sigmoid\)",
        ),
        ("optimizer.lr=-0.1", r"invalid value for 'optimizer.lr': must be > 0, got -0.1"),
        (
            "optimizer.lrr=0.1",
            r"unknown config key 'optimizer.lrr' \(valid keys of optimizer: name, lr, weight_decay\)",
        ),
        ("trainer.batch_size=big", r"invalid value for 'trainer.batch_size': 'big' is not a valid integer"),
        (
            "checkpoint.schedule=sometimes",
            r"invalid value for 'checkpoint.schedule': 'sometimes' \(choose from: every, log, list\)",
        ),
        ("+typo_key=1", r"unknown config key 'typo_key'"),
        ("device=tpu", r"invalid value for 'device': 'tpu' \(choose from: auto, cpu, cuda\)"),
        ("model.widths=[64,0]", r"invalid value for 'model.widths'"),
        ("seed==1", r"cannot parse override"),
        (
            "optimizer=sam optimizer.base=rmsprop",
            r"invalid value for 'optimizer.base': 'rmsprop' \(choose from: sgd, momentum, adam\)",
        ),
        (
            "optimizer=sam optimizer.rho=0",
            r"invalid value for 'optimizer.rho': must be a finite number > 0, got 0.0",
        ),
        (
            "model=three_layer regularizer=hsr regularizer.beta=-0.1",
            r"invalid value for 'regularizer.beta': must be a finite number >= 0, got -0.1",
        ),
        ("regularizer=hsr", r"invalid value for 'regularizer': hsr needs model=three_layer .*got model=mlp"),
        (
            "model=three_layer model.activation=relu regularizer=hsr",
            r"invalid value for 'model.activation': 'relu' \(choose from: sigmoid, tanh, softplus\)",
        ),
        ("regularizer.beta=0.1", r"invalid value for 'regularizer.beta': regularizer=none has no penalty"),
        (  # an optional group: Hydra itself would silently run the defaults
            "experiment=quickstrat",
            r"unknown experiment 'quickstrat' \(choose from: edge_of_stability, flat_minima, lr_sweep, "
            r"noise_curvature, optimizer_dynamics, quickstart, ",
        ),
    ],
)
def test_bad_override_is_one_clear_line(override: str, pattern: str) -> None:
    with pytest.raises(HessdynError) as info:
        preflight("train", override.split(), multirun=False, check=None)
    message = str(info.value)
    assert "\n" not in message
    assert re.search(pattern, message), message


def test_bad_value_inside_a_sweep_is_caught_before_any_job() -> None:
    with pytest.raises(HessdynError, match="optimizer.lr"):
        preflight("train", ["optimizer.lr=0.1,-1"], multirun=True, check=None)
    with pytest.raises(HessdynError, match="unknown experiment 'nope'"):
        preflight("train", ["experiment=quickstart,nope"], multirun=True, check=None)


@pytest.mark.slow
def test_cli_bad_override_exits_2_with_one_line(run_cli) -> None:
    proc = run_cli("train", "model.activation=swish")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [
        "hessdyn: error: invalid value for 'model.activation': 'swish' (choose from: relu, tanh, gelu, softplus, sigmoid)"
    ]


@pytest.mark.slow
def test_cli_help_lists_commands_and_unknown_command(run_cli) -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("train",):
        assert re.search(rf"^\s+{command}\s", proc.stdout, flags=re.M)
    bad = run_cli("trian")
    assert bad.returncode == 2 and "unknown command 'trian'" in bad.stderr


@pytest.mark.slow
def test_train_help_lists_every_group_option(run_cli) -> None:
    proc = run_cli("train", "--help")
    assert proc.returncode == 0, proc.stderr
    for group in GROUP_SCHEMAS:
        line = re.search(rf"^\s+{group}:\s+(.*)$", proc.stdout, flags=re.M)
        assert line, f"{group} missing from help"
        assert sorted(x.strip() for x in line.group(1).split(",")) == _options(group)
    experiments = re.search(r"^\s+experiment:\s+(.*)$", proc.stdout, flags=re.M).group(1)
    assert sorted(x.strip() for x in experiments.split(",")) == _options("experiment")


@pytest.mark.slow
def test_cfg_job_prints_composed_config(run_cli) -> None:
    proc = run_cli("train", "optimizer=adam", "optimizer.lr=0.003", "--cfg", "job")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^optimizer:\n  name: adam\n  lr: 0.003", proc.stdout, flags=re.M)


def test_the_noise_curvature_sweep_expands_to_every_combination() -> None:
    """2 datasets x 4 batch sizes x 3 random-label fractions (x 2 optimizers x 2 seeds, narrowed here to keep
    the test short), each job composed and validated."""
    narrowed = ["experiment=noise_curvature", "optimizer=sgd", "seed=0"]
    assert preflight("train", narrowed, multirun=True, check=None) == 24


def test_flat_minima_arms_are_one_sweep_axis_the_report_tells_apart() -> None:
    from omegaconf import OmegaConf

    from hessdyn.commands.preflight import compose_jobs
    from hessdyn.report.runs import _group_of, group_keys

    jobs = compose_jobs("train", ["experiment=flat_minima"], multirun=True)
    assert len(jobs) == 6 * 3  # six arms, three seeds
    labels = {}
    for cfg in jobs:
        tree = OmegaConf.to_container(cfg, resolve=False)
        arm = cfg.hydra.runtime.choices["arm"] if "arm" in cfg.hydra.runtime.choices else None
        label, _ = _group_of(group_keys(cfg.report.group_by), [tree])
        labels.setdefault(label, set()).add(arm)
        assert cfg.model.name == "three_layer" and cfg.trainer.stop_at_train_loss == 0.05
    assert all(len(arms) == 1 for arms in labels.values()), labels  # one group per arm
    assert sorted(labels) == [
        "adam, beta=0",
        "sam, beta=0",
        "sgd, beta=0",
        "sgd, beta=0.01",
        "sgd, beta=0.1",
        "sgd, beta=1",
    ]
    with pytest.raises(HessdynError, match=r"unknown arm 'nope' \(choose from: adam, eos_adam_lr0.001, "):
        preflight("train", ["experiment=flat_minima", "arm=nope"], multirun=False, check=None)
