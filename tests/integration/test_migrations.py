"""Migrations go up, down and up again on both databases, and match the models."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import migrate
from tests.integration.databases import dispose_database, fresh_database


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_migrations_up_down_up_without_drift(kind: str, tmp_path: Path) -> None:
    url = fresh_database(kind, tmp_path)
    try:
        migrate.upgrade(url)
        assert "(head)" in migrate.current(url)
        migrate.check(url)  # raises when models and migrations disagree
        migrate.downgrade(url, "base")
        assert migrate.current(url) == ""
        migrate.upgrade(url)
        assert "(head)" in migrate.current(url)
        migrate.check(url)
    finally:
        dispose_database(url)
