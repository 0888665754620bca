"""Run Alembic programmatically (the CLI's `db` commands and the tests)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parent.parent


def alembic_config(database_url: str, stdout: TextIO | None = None) -> Config:
    ini = ROOT / "alembic.ini"
    cfg = Config(str(ini), stdout=stdout) if stdout is not None else Config(str(ini))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "-1") -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str:
    out = io.StringIO()
    command.current(alembic_config(database_url, stdout=out))
    return out.getvalue().strip()


def check(database_url: str) -> None:
    """Raises when the models and the migrations disagree (alembic check)."""
    command.check(alembic_config(database_url))
