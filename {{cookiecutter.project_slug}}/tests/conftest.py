"""Shared fixtures: a real PostgreSQL (fixtures_db) and the app with a fake model (fixtures_app)."""

pytest_plugins = ["tests.fixtures_db", "tests.fixtures_app"]
