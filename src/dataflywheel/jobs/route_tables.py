"""The table of route changes (``fw_route_events``): see :mod:`dataflywheel.jobs.routes`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dataflywheel.jobs.routes import RouteAction, RouteMode
from dataflywheel.jobs.tables import Base, StrEnumType, UTCDateTime, utcnow


class RouteEvent(Base):
    """One change of a workload's route in the logging proxy (append-only; the newest is the current route)."""

    __tablename__ = "fw_route_events"
    # A workload's events newest first (its current route), from one index.
    __table_args__ = (Index("ix_fw_route_events_workload_id_client_id_id", "workload_id", "client_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[RouteAction] = mapped_column(StrEnumType(RouteAction))
    mode: Mapped[RouteMode | None] = mapped_column(StrEnumType(RouteMode))
    canary_share: Mapped[float | None] = mapped_column(Float)
    base_url: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(1024))
    # A deleted job leaves its routes' history: the reference is cleared, not cascaded.
    job_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("fw_jobs.id", ondelete="SET NULL"))
    candidate: Mapped[str | None] = mapped_column(String(255))
    eval_type: Mapped[str | None] = mapped_column(String(64))
    override: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
