"""Test helpers: real local servers and fixtures shared between test modules."""
