"""The route changes of the logging proxy (``fw_route_events``): append one, read a workload's current route
and its history."""

from __future__ import annotations

from sqlalchemy import func, select

from dataflywheel.jobs.route_tables import RouteEvent
from dataflywheel.jobs.routes import RouteAction, RouteEventRecord, RouteMode, RouteTarget
from dataflywheel.jobs.store.connection import StoreConnection
from dataflywheel.jobs.store.mapping import columns
from dataflywheel.jobs.tables import utcnow


def route_event_record(row: RouteEvent) -> RouteEventRecord:
    target = RouteTarget(row.base_url, row.model) if row.base_url and row.model else None
    return RouteEventRecord(**columns(RouteEventRecord, row, target=target))


class RouteRows(StoreConnection):
    """Route changes: each promotion or rollback is one stored event; the newest is the current route."""

    def add_route_event(
        self,
        workload_id: str,
        client_id: str,
        action: RouteAction,
        *,
        mode: RouteMode | None = None,
        canary_share: float | None = None,
        target: RouteTarget | None = None,
        job_id: str | None = None,
        candidate: str | None = None,
        eval_type: str | None = None,
        override: bool = False,
        reason: str = "",
    ) -> RouteEventRecord:
        """Store a route change. A promotion names its mode and target; a rollback neither."""
        if action is RouteAction.PROMOTE and (mode is None or target is None):
            raise ValueError("a promotion needs a mode and a target")
        with self._tx("add route event", write=True) as s:
            row = RouteEvent(
                workload_id=workload_id,
                client_id=client_id,
                ts=utcnow(),
                action=RouteAction(action),
                mode=None if mode is None else RouteMode(mode),
                canary_share=canary_share,
                base_url=target.base_url if target else None,
                model=target.model if target else None,
                job_id=job_id,
                candidate=candidate,
                eval_type=eval_type,
                override=override,
                reason=reason,
            )
            s.add(row)
            s.flush()
            return route_event_record(row)

    def current_route(self, workload_id: str, client_id: str) -> RouteEventRecord | None:
        """The newest route change of a workload and client (None: never promoted)."""
        with self._tx("read current route") as s:
            row = s.scalars(
                select(RouteEvent)
                .where(RouteEvent.workload_id == workload_id, RouteEvent.client_id == client_id)
                .order_by(RouteEvent.id.desc())
                .limit(1)
            ).first()
            return None if row is None else route_event_record(row)

    def current_routes(self, workload_id: str | None = None) -> list[RouteEventRecord]:
        """The newest route change of every workload and client (of one workload), active or not."""
        with self._tx("read current routes") as s:
            newest = select(func.max(RouteEvent.id)).group_by(RouteEvent.workload_id, RouteEvent.client_id)
            if workload_id is not None:
                newest = newest.where(RouteEvent.workload_id == workload_id)
            rows = s.scalars(select(RouteEvent).where(RouteEvent.id.in_(newest)).order_by(RouteEvent.id)).all()
            return [route_event_record(r) for r in rows]

    def route_events(self, workload_id: str, client_id: str | None = None, limit: int = 100) -> list[RouteEventRecord]:
        """A workload's route changes (of one client, or of all), newest first."""
        with self._tx("list route events") as s:
            query = select(RouteEvent).where(RouteEvent.workload_id == workload_id)
            if client_id is not None:
                query = query.where(RouteEvent.client_id == client_id)
            rows = s.scalars(query.order_by(RouteEvent.id.desc()).limit(limit)).all()
            return [route_event_record(r) for r in rows]
