"""Tests of the REST API (dataflywheel.api) and its CLI client (flywheel jobs, flywheel serve)."""
