"""data-flywheel: turn an LLM application's production logs into cheaper models."""

__version__ = "0.1.0"
