"""The feedback loop: a small model's outputs on logged prompts, normalized and checked into training data."""

from dataflywheel.feedback.normalize import (
    Normalized,
    NormalizeReport,
    NormalizeStatus,
    RejectReason,
    RepairCode,
    WarningCode,
    entry_code,
    normalize_many,
    normalize_output,
)
from dataflywheel.feedback.schema import SchemaCheck, check_arguments

__all__ = [
    "NormalizeReport",
    "NormalizeStatus",
    "Normalized",
    "RejectReason",
    "RepairCode",
    "SchemaCheck",
    "WarningCode",
    "check_arguments",
    "entry_code",
    "normalize_many",
    "normalize_output",
]
