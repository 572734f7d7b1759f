"""Finding the runs of a report and labelling them by a config key.

Runs are found by :func:`hessdyn.store.find_run_dirs` (a folder with ``run.json``, or the
``.hydra/config.yaml`` of a training job that died before writing one), recursively below a sweep folder.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from hessdyn.config.errors import HessdynError
from hessdyn.store import DamagedFile, RunDir, RunStatus, find_run_dirs, is_run_dir

log = logging.getLogger("hessdyn")

_MISSING = object()


@dataclass(frozen=True)
class RunInfo:
    """One training run as the report sees it.

    ``status`` is the run's true status (:meth:`hessdyn.store.RunDir.status`: ``run.json``'s, except
    ``interrupted`` for a "running" run whose process is gone), or ``unknown`` when the job left no
    ``run.json``.
    """

    path: Path
    name: str  # path relative to the report's source folder, less overrides all runs share (display)
    status: str
    group: str  # label of the group-by value, e.g. "sgd", "lr=0.1", "widths=[64, 64]"
    group_sort: tuple  # sort key of the group-by value (numbers numerically)
    seed: int | None
    config: dict[str, Any]  # flattened dotted keys -> values (run.json's resolved config over .hydra's)
    overrides: tuple[str, ...]
    record: dict[str, Any] = field(default_factory=dict)  # run.json as written
    problems: tuple[str, ...] = ()  # its files that failed their checks (one line each)

    @property
    def in_means(self) -> bool:
        """Whether the run enters the mean and band over seeds (see :mod:`hessdyn.report` for why)."""
        return RunStatus.parse(self.status).in_means


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict) and value:
                out.update(_flatten(value, path))
            else:
                out[path] = value
    return out


def _lookup(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _hydra_tree(path: Path) -> dict[str, Any]:
    """``.hydra/config.yaml`` as a plain dict; interpolations that cannot be resolved stay as text."""
    file = RunDir(path).hydra_config
    if not file.is_file():
        return {}
    try:
        cfg = OmegaConf.load(file)
    except Exception as exc:
        log.warning("cannot read %s (%s); its settings are left out", file, exc)
        return {}

    def plain(node: Any) -> Any:
        if isinstance(node, DictConfig):
            out = {}
            for key in node.keys():
                try:
                    out[str(key)] = plain(node[key])
                except Exception:  # an interpolation needing a resolver this process lacks
                    child = node._get_node(key)
                    out[str(key)] = child._value() if child is not None else None
            return out
        if isinstance(node, ListConfig):
            return [plain(v) for v in node]
        return node

    return plain(cfg)


def _read_overrides(path: Path) -> tuple[str, ...]:
    file = RunDir(path).hydra_overrides
    if not file.is_file():
        return ()
    try:
        return tuple(str(o) for o in OmegaConf.load(file))
    except Exception:
        return ()


def format_value(value: Any) -> str:
    """Readable text of a config value: ``0.001``, ``[64, 64]``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


def group_label(key: str, value: Any) -> tuple[str, tuple]:
    """Label and sort key of one run's value of the group-by ``key``.

    A config section with a ``name`` (a group choice such as ``optimizer``) is labelled by that name; any
    other value by ``leaf=value`` (``lr=0.1``, ``widths=[64, 64]``).
    """
    if isinstance(value, dict):
        if "name" not in value:
            raise HessdynError(
                f"report.group_by={key} is a config section without a name; "
                f"name a key inside it (e.g. {key}.{next(iter(value), 'KEY')})"
            )
        return str(value["name"]), (1, 0.0, str(value["name"]))
    leaf = key.rsplit(".", 1)[-1]
    label = f"{leaf}={format_value(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return label, (0, float(value), label)
    return label, (1, 0.0, label)


def _group_of(keys: Sequence[str], trees: Sequence[dict[str, Any]]) -> tuple[str, tuple] | None:
    labels, sorts = [], []
    for key in keys:
        for tree in trees:
            value = _lookup(tree, key)
            if value is not _MISSING:
                break
        else:
            return None
        label, sort = group_label(key, value)
        labels.append(label)
        sorts.append(sort)
    return ", ".join(labels), tuple(sorts)


def group_keys(group_by: str) -> list[str]:
    """``report.group_by`` split into keys: ``optimizer`` or several joined by ``+`` (``optimizer+optimizer.lr``)."""
    keys = [k.strip() for k in group_by.replace(",", "+").split("+") if k.strip()]
    if not keys:
        raise HessdynError("report.group_by is empty; name a config key, e.g. report.group_by=optimizer")
    return keys


def read_run(path: Path, group_by: str, name: str) -> RunInfo:
    """The :class:`RunInfo` of one run directory (its group looked up in run.json's config, then .hydra's)."""
    run = RunDir(path)
    record: dict[str, Any] = {}
    problems: tuple[str, ...] = ()
    try:
        record = run.read_record() or {}
    except DamagedFile as exc:
        problems = (f"{exc}; the run is listed with status unknown",)
    resolved: dict[str, Any] = record["config"] if isinstance(record.get("config"), dict) else {}
    hydra = _hydra_tree(path)
    trees = [resolved, hydra]
    keys = group_keys(group_by)
    found = _group_of(keys, trees)
    if found is None:
        label, sort = f"({group_by} not set)", (2, 0.0, "")
    else:
        label, sort = found
    seed = _lookup(resolved, "seed")
    if seed is _MISSING:
        seed = _lookup(hydra, "seed")
    config = {**_flatten(hydra), **_flatten(resolved)}
    status = run.status(record).value if record else RunStatus.UNKNOWN.value  # a killed run: interrupted
    return RunInfo(
        path=path,
        name=name,
        status=status,
        group=label,
        group_sort=sort,
        seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
        config=config,
        overrides=_read_overrides(path),
        record=record,
        problems=problems,
    )


_OVERRIDE_ITEM = re.compile(r",(?=[A-Za-z_+~][\w.]*=)")  # commas between key=value items, not inside [..]


def _without_common_overrides(names: list[str]) -> list[str]:
    """Drop the ``key=value`` items every folder name shares (Hydra's override_dirname repeats fixed
    overrides in every run), when the names stay distinct: ``optimizer=sgd,seed=0`` instead of
    ``checkpoint.num=5,...,optimizer=sgd,seed=0,trainer.max_steps=60``."""
    if len(names) < 2:
        return names
    heads, leaves = zip(*(n.rpartition("/")[::2] for n in names), strict=True)
    items = [_OVERRIDE_ITEM.split(leaf) for leaf in leaves]
    common = set.intersection(*(set(i) for i in items))
    short = [",".join(x for x in i if x not in common) for i in items]
    out = [f"{h}/{s}" if h else s for h, s in zip(heads, short, strict=True)]
    return out if all(short) and len(set(out)) == len(out) else names


def _display_names(paths: Sequence[Path], base: Path | None) -> list[str]:
    """Names of runs for tables and legends: paths relative to ``base`` (or the runs' common folder)."""
    if base is None:
        base = Path(os.path.commonpath([str(p) for p in paths])) if len(paths) > 1 else paths[0].parent
    names = []
    for p in paths:
        try:
            rel = p.relative_to(base)
            names.append(rel.as_posix() if str(rel) != "." else p.name)
        except ValueError:
            names.append(str(p))
    return _without_common_overrides(names)


def discover_runs(
    sweep_dir: str | os.PathLike | None, run_dirs: Iterable[str | os.PathLike], group_by: str
) -> list[RunInfo]:
    """Every run of a report, sorted by group, seed and name.

    Raises HessdynError (one line) when a folder is missing, holds no runs, a listed folder is not a
    run, or no run has the group-by key.
    """
    paths: list[Path] = []
    base: Path | None = None
    if sweep_dir is not None:
        sweep = Path(sweep_dir).expanduser().resolve()
        if sweep.exists() and not sweep.is_dir():
            raise HessdynError(f"sweep_dir {sweep_dir} is a file; pass the folder that holds the runs")
        if not sweep.is_dir():
            raise HessdynError(
                f"sweep_dir {sweep_dir} does not exist; pass the folder `hessdyn train -m` wrote"
            )
        paths += find_run_dirs(sweep)
        if not paths:
            raise HessdynError(
                f"no run directories (run.json or .hydra/config.yaml of a training run) under {sweep_dir}; "
                "train first, or pass the sweep folder that holds them"
            )
        base = sweep if not is_run_dir(sweep) else sweep.parent
    for given in run_dirs:
        path = Path(given).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise HessdynError(f"run directory {given} is a file; list run folders in run_dirs=[...]")
        if not path.is_dir():
            raise HessdynError(f"run directory {given} does not exist; check run_dirs=[...]")
        if not is_run_dir(path):
            raise HessdynError(
                f"{given} is not a run directory (no run.json or .hydra/config.yaml); "
                "list folders written by hessdyn train, or use sweep_dir=..."
            )
        if path not in paths:
            paths.append(path)
            base = None  # runs from several places: names relative to their common folder
    if not paths:
        raise HessdynError("nothing to report: give sweep_dir=PATH or run_dirs=[RUN,...]")
    runs = [read_run(p, group_by, n) for p, n in zip(paths, _display_names(paths, base), strict=True)]
    if all(r.group.endswith("not set)") for r in runs):
        example = ", ".join(sorted({k.split(".")[0] for r in runs for k in r.config})[:8])
        raise HessdynError(
            f"no run has the config key '{group_by}'; choose report.group_by from the runs' keys (e.g. {example})"
        )
    return sorted(runs, key=lambda r: (r.group_sort, r.seed if r.seed is not None else -1, r.name))
