"""Fixtures (filled by its area)."""
