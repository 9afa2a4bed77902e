"""The project's exception hierarchy.

Every error raised on purpose by data-flywheel derives from :class:`FlywheelError`. Errors of lower
libraries (database drivers, HTTP clients, pydantic) are mapped to one of these at the boundary where they
happen, so callers (the CLI, the API) handle one family and show its message to a person.
"""

from __future__ import annotations


class FlywheelError(Exception):
    """Base class of every error data-flywheel raises on purpose."""


class ConfigError(FlywheelError):
    """A setting is missing or invalid. The message names the setting (``section.key``) and the reason."""


class RecordError(FlywheelError):
    """A log record is malformed. ``field`` names the offending field as a dotted path."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class StoreError(FlywheelError):
    """A log store could not be reached or refused an operation (connection, schema, query)."""


class DependencyMissingError(FlywheelError):
    """An optional backend was selected but its extra is not installed (e.g. ``pip install data-flywheel[es]``)."""


class CurationError(FlywheelError):
    """Datasets cannot be built from the selected records."""


class InsufficientRecordsError(CurationError):
    """Fewer usable records than ``data_split.min_total_records`` remain after curation."""


class EmbeddingError(FlywheelError):
    """The embedder failed (model not loadable, endpoint unreachable or answering nonsense)."""


class RemoteServiceError(FlywheelError):
    """Another service the flywheel called (a flywheel API, for ``flywheel jobs``) refused a request or could
    not be reached."""
