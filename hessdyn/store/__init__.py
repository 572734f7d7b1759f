"""The on-disk contract of hessdyn, in one place: run folders (:class:`RunDir`), analysis folders
(:class:`AnalysisDir`), run statuses (:class:`RunStatus`), and the registry of tables, their columns
(units, 1-based ranks) and the valid domain of every metric (:mod:`hessdyn.store.registry`).

Nothing outside this package builds a path inside a run folder or lists a table's columns; a new metric
group registers its table in :mod:`hessdyn.store.registry`.
"""

from hessdyn.store import registry as _registry  # noqa: F401  (registers every table)
from hessdyn.store.analysis_dir import (
    ANALYSIS_FORMAT,
    DEFAULT_NAME,
    EXTRA_SETS_KEY,
    AnalysisDir,
    analysis_folder_name,
    is_analysis_folder_name,
    pair_keys,
)
from hessdyn.store.csv import table_frame, write_table
from hessdyn.store.integrity import DamagedFile
from hessdyn.store.locks import LOCK_NAME, exclusive_dir, is_locked
from hessdyn.store.run_dir import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_KEYS,
    RESUME_KEYS,
    RunDir,
    find_run_dirs,
    is_run_dir,
    load_checkpoint,
    sweep_analyze_dir,
    sweep_report_dir,
)
from hessdyn.store.schema import (
    DISPLACEMENT,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    UNBOUNDED,
    Column,
    Domain,
    Table,
    domain,
    metric,
    metrics,
    register_metrics,
    register_table,
    table,
    tables,
    text_columns,
)
from hessdyn.store.status import IN_MEANS, WRITABLE_STATUSES, RunStatus

__all__ = [
    "ANALYSIS_FORMAT",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_KEYS",
    "DEFAULT_NAME",
    "DISPLACEMENT",
    "EXTRA_SETS_KEY",
    "FRACTION",
    "IN_MEANS",
    "LOCK_NAME",
    "NON_NEGATIVE",
    "POSITIVE",
    "RESUME_KEYS",
    "UNBOUNDED",
    "WRITABLE_STATUSES",
    "AnalysisDir",
    "Column",
    "DamagedFile",
    "Domain",
    "RunDir",
    "RunStatus",
    "Table",
    "analysis_folder_name",
    "domain",
    "exclusive_dir",
    "find_run_dirs",
    "is_analysis_folder_name",
    "is_locked",
    "is_run_dir",
    "load_checkpoint",
    "metric",
    "metrics",
    "pair_keys",
    "register_metrics",
    "register_table",
    "sweep_analyze_dir",
    "sweep_report_dir",
    "table",
    "table_frame",
    "tables",
    "text_columns",
    "write_table",
]
