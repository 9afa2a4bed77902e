"""Flywheel jobs: the stage graph (``plan``), what each stage does (``stages``), the per-job driver
(``driver``), where stages run (``executors``, ``celery_app``) and the service that ties them together."""
