"""Curation: pure checks and transforms over log records (validate, filter, dedup, split, training rows)."""
