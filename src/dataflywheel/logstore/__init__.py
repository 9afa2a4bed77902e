"""Where production logs are stored: one interface (:class:`LogStore`), three backends."""

from dataflywheel.logstore.base import AddResult, AddTotals, LogQuery, LogStore, WorkloadCount
from dataflywheel.logstore.factory import open_log_store

__all__ = ["AddResult", "AddTotals", "LogQuery", "LogStore", "WorkloadCount", "open_log_store"]
