"""Response models filled from the records they show: a field takes the source's attribute of the same name."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def project(model: type[M], source: object, /, **values: Any) -> M:
    """``model`` with each field read from the attribute of ``source`` of the same name, except the fields
    ``values`` gives (those the source names otherwise, or that are computed). ``model`` and ``source`` are
    positional only: a field may be called ``model``."""
    copied = {name: getattr(source, name) for name in model.model_fields if name not in values}
    return model(**copied, **values)
