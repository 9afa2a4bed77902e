"""Export of finished jobs to experiment trackers (MLflow: :mod:`.mlflow`).

:mod:`.inputs` reads what a job left on disk (the dataset build's manifest and file hashes, eval summaries,
adapters, a report), :mod:`.plan` turns the job and those facts into a typed plan of what to log (pure), and
:mod:`.mlflow` logs a plan with the MLflow client and records the outcome in the job's result.
"""

from __future__ import annotations

from dataflywheel.errors import FlywheelError

__all__ = ["ExportError"]


class ExportError(FlywheelError):
    """An export failed: the tracking server is unreachable, the URI is wrong, or it refused the data.

    ``run_id`` is the run that was created before the failure (left marked failed), if any.
    """

    def __init__(self, message: str, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(message)
