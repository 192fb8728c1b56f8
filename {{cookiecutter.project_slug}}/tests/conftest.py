"""Shared fixtures: a real PostgreSQL (support/db.py), the app and a fake model (support/app.py),
identity providers on loopback (support/identity.py)."""

pytest_plugins = ["tests.support.db", "tests.support.app", "tests.support.identity"]
