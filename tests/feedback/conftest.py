"""Fixtures of the feedback-loop tests: the workflow tests' loaded home."""

from tests.feedback.test_pipeline import servers
from tests.workflow.conftest import home, loaded_home_template

__all__ = ["home", "loaded_home_template", "servers"]
