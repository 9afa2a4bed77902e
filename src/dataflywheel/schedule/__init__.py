"""Scheduled and drift-triggered jobs: a workload's job started on a cron expression, after N new records, or
when its logs drift from its last dataset.

* :mod:`.cron`: cron expressions (checked, next occurrence), over ``croniter``;
* :mod:`.spec`: a schedule as a person gives it (checked, with errors that name the field);
* :mod:`.decide`: which trigger of a schedule is due (a pure function);
* :mod:`.scheduler`: :class:`~dataflywheel.schedule.scheduler.Scheduler`, whose ``tick(now)`` fires what is
  due, each firing claimed in the job store so that two processes never fire it twice; run in the background
  by ``flywheel serve``.
"""
