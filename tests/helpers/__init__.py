"""Shared test helpers (imported as `helpers.*`; tests/ is on sys.path through its conftest)."""
