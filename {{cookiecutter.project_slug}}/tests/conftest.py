"""Shared fixtures: a real PostgreSQL (support/db.py), the app and a fake model (support/app.py),
identity providers on loopback (support/identity.py), object storage (support/s3.py)."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.support.db",
    "tests.support.app",
    "tests.support.identity",
    "tests.support.s3",
]


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook; `-p no:xdist` still runs
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than the cores. About a third of the suite's time is spent
    waiting (for servers to start and stop, for outages to last), and a third worker on two
    cores fills it (docs/design_decisions.md, "Tests")."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + 1
