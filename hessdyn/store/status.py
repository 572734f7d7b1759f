"""The status of a training run, as ``run.json`` records it, and what each status means downstream."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """``run.json``'s ``status``. The value is what the file holds.

    ``UNKNOWN`` is never written: it is what a reader reports for a run folder without ``run.json`` (its
    job stopped before training began, or it is starting).
    """

    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    FAILED = "failed"
    # stopped by Ctrl-C or SIGTERM (recorded), or killed (a "running" run whose process holds no lock):
    # rerunning its `hessdyn train` command resumes it
    INTERRUPTED = "interrupted"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object) -> RunStatus:
        """The status of a ``run.json`` value (``UNKNOWN`` for a missing or unrecognized one)."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN

    @property
    def finished(self) -> bool:
        """Training will not continue: rerunning ``hessdyn train`` does nothing."""
        return self in (RunStatus.COMPLETED, RunStatus.DIVERGED)

    @property
    def in_means(self) -> bool:
        """The run enters means and bands over seeds (a running run up to its current step)."""
        return self in (RunStatus.COMPLETED, RunStatus.RUNNING)

    @property
    def broken(self) -> bool:
        """Diverged, failed or interrupted: drawn individually in reports, never averaged in."""
        return self in (RunStatus.DIVERGED, RunStatus.FAILED, RunStatus.INTERRUPTED)

    @property
    def writable(self) -> bool:
        """A status a writer may record in ``run.json``."""
        return self is not RunStatus.UNKNOWN


WRITABLE_STATUSES = tuple(s.value for s in RunStatus if s.writable)
IN_MEANS = tuple(s.value for s in RunStatus if s.in_means)
