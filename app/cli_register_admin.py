"""`kpr-mottak register ...`: the register store's upkeep (key rotation, rebuilding the store
from stored requests). The export and the feed's commands live in app/cli_register.py."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from app.db import create_engine, session_factory
from app.register import keyrotation
from app.register.keys import RegisterKeyError, load_protector
from app.settings import Settings

register_app = typer.Typer(help="The register store (docs/register.md).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    from app.cli import load_settings

    return load_settings()


@register_app.command("rotate-key")
def rotate_key() -> None:
    """Re-encrypt every stored identifier under the first key of KPR_REGISTER_KEYS, in
    batches, each committed. Keep the old keys listed until it reports 0 left."""
    settings = _settings()
    try:
        protector = load_protector(settings)
    except RegisterKeyError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None

    async def main() -> tuple[dict[str, int], dict[str, int], int]:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                before = await keyrotation.count_to_rotate(session, protector)
                with console.status("re-encrypting") as status:

                    def progress(table: str, n: int) -> None:
                        status.update(f"re-encrypting {table}: {n} more")

                    done = await keyrotation.rotate_all(session, protector, progress)
                left = await keyrotation.count_to_rotate(session, protector)
                return before, done, sum(left.values())
        finally:
            await engine.dispose()

    before, done, left = asyncio.run(main())
    for table, n in before.items():
        console.print(
            f"{table}: {done.get(table, 0)} of {n} re-encrypted under key '{protector.current}'"
        )
    console.print(f"left under other keys: {left}")
    if left:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(register_app, name="register")
