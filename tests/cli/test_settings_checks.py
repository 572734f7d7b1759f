"""Settings that used to pass their checks and fail later (issue 14): NaN and ±inf in any numeric
setting, Nesterov without momentum, an HVP budget below one product per eigenpair, unquoted values."""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
from omegaconf import OmegaConf

from hessdyn.commands.preflight import PreflightError, preflight
from hessdyn.config import schema as s
from hessdyn.config import to_object
from hessdyn.config.errors import ConfigValueError, HessdynError
from hessdyn.config.store import GROUP_SCHEMAS, PRIMARY_SCHEMAS


def _float_fields(cls: type, prefix: str = "") -> list[tuple[str, bool]]:
    """(dotted key, is a list) of every float setting of schema ``cls`` and its nested schemas."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        args = typing.get_args(hint)
        if dataclasses.is_dataclass(hint):
            out += _float_fields(hint, f"{prefix}{f.name}.")
        elif typing.get_origin(hint) is list:
            if args == (float,):
                out.append((f"{prefix}{f.name}", True))
        elif hint is float or float in args:
            out.append((f"{prefix}{f.name}", False))
    return out


SCHEMAS = {
    **{f"{group}/{name}": cls for group, options in GROUP_SCHEMAS.items() for name, cls in options.items()},
    **PRIMARY_SCHEMAS,
}
CASES = [(where, key, is_list) for where, cls in SCHEMAS.items() for key, is_list in _float_fields(cls)]


def test_every_float_setting_is_found():
    keys = {key for _, key, _ in CASES}
    assert {"lr", "eps", "analysis.tol", "trainer.epochs", "report.band", "analysis.reparam_alphas"} <= keys
    assert len(CASES) > 40


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_nan_and_inf_are_refused_for_every_numeric_setting(bad):
    """``optimizer.lr=nan|inf`` started runs that diverged at step 1; ``analysis.tol=nan`` burned 9,060
    HVPs. One check in the schema covers every float key, present and future."""
    for where, key, is_list in CASES:
        node = OmegaConf.structured(SCHEMAS[where])
        value = [1.0, bad] if is_list else bad
        OmegaConf.update(node, key, value, merge=False)
        with pytest.raises(ConfigValueError) as info:
            to_object(node)
        shown = f"{key}[1]" if is_list else key
        assert f"invalid value for '{shown}': must be a finite number" in str(info.value), (where, key)


@pytest.mark.parametrize(
    ("command", "override", "key"),
    [
        ("train", "optimizer.lr=nan", "optimizer.lr"),
        ("train", "optimizer.lr=inf", "optimizer.lr"),
        ("train", "analysis.tol=nan", "analysis.tol"),
        ("analyze", "analysis.tol=nan", "analysis.tol"),
        ("report", "report.band=-inf", "report.band"),
    ],
)
def test_nan_and_inf_fail_before_anything_runs(command, override, key, tmp_path, monkeypatch):
    monkeypatch.setenv("HESSDYN_RESULTS", str(tmp_path))
    with pytest.raises(HessdynError, match=rf"invalid value for '{key}': must be a finite number"):
        preflight(command, [override], multirun=False, check=None)


def test_nesterov_without_momentum_is_one_line():
    """It used to be torch's ValueError traceback when the optimizer was built."""
    with pytest.raises(
        HessdynError, match=r"'optimizer.nesterov': Nesterov momentum needs optimizer.momentum > 0"
    ):
        preflight(
            "train", ["optimizer=momentum", "optimizer.momentum=0", "optimizer.nesterov=true"], False, None
        )
    preflight(
        "train", ["optimizer=momentum", "optimizer.momentum=0.5", "optimizer.nesterov=true"], False, None
    )


def test_max_hvps_below_one_product_per_eigenpair_is_one_line():
    """``analysis.max_hvps=1`` used to be a ValueError traceback from the solver."""
    with pytest.raises(
        HessdynError, match=r"'analysis.max_hvps': must be >= analysis.top_k.*got 1 for top_k=20"
    ):
        preflight("analyze", ["analysis.max_hvps=1"], False, None)
    assert s.AnalysisConfig(top_k=5, bottom_k=3, max_hvps=5).max_hvps == 5


@pytest.mark.parametrize(
    ("config", "override", "hint"),
    [
        ("train", "name=ünï", "\"name='ünï'\""),
        ("report", "run_dirs=[out/a=1,b=2,out/a=2,b=3]", "\"run_dirs=['PATH_A','PATH_B']\""),
    ],
)
def test_unquoted_values_hydra_cannot_lex_get_a_quoting_hint(config, override, hint):
    """Hydra's raw lexer error (``LexerNoViableAltException: name=ünï``) gave no hint."""
    with pytest.raises(PreflightError) as info:
        preflight(config, [override], False, None)
    assert str(info.value).startswith(f"cannot parse override '{override}'") and hint in str(info.value)


def test_the_quoted_forms_the_hints_give_are_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("HESSDYN_RESULTS", str(tmp_path))
    assert preflight("train", ["name='ünï'"], False, None) == 1
