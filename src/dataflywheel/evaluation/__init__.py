"""Evaluation: run candidates over eval sets, score them (metrics, judge), aggregate with intervals."""
