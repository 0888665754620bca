"""What every command of the CLI shares: the settings (a clear message, not a traceback, when
they are invalid) and one unit of database work. Below the command line's root module and the
groups of commands it registers, so the groups do not import the command line that imports
them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

from app.platform.db import create_engine, session_factory
from app.platform.settings import Settings

T = TypeVar("T")

err = Console(stderr=True)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        err.print("[bold red]invalid configuration:[/]")
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ())) or "settings"
            err.print(f"  - {where}: {e['msg'].removeprefix('Value error, ')}")
        raise typer.Exit(2) from None


def run_db(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run one unit of work in a session and commit it."""
    settings = load_settings()

    async def main() -> T:
        engine = create_engine(
            settings.database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        try:
            async with session_factory(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(main())
