"""The register's bulk export (`kpr-mottak export`, docs/register-feed.md): one file per table
(melding, kontaktperson, melding_kommune, notifikasjon, hendelse, episode) for one
environment and reporting year, as Parquet or CSV. All of its SQL is here.

The year is the meldinger received in the year's window (`received_window`, as coverage and
the error list count it). The export is a consistent cut on both databases: it takes the
meldinger numbered in the feed up to the environment's last sequence number when it starts
(numbers are given in commit order), and every other table through them, so a message
committed meanwhile is in none of the files rather than in some. Episodes are those of the
(municipality, brukerNr, tjenesteID) keys the exported events name, as they stand now.

Rows are streamed in batches of `BATCH_ROWS` and written batch by batch: memory stays bounded
whatever the size of the year. Without `with_fid` the fid column is not even read.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol, cast

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Integer,
    Select,
    Table,
    Text,
    exists,
    func,
    or_,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Base, UtcDateTime
from app.platform.db import is_postgres
from app.query.access_log import Access, record_access
from app.register.models import (
    Episode,
    Hendelse,
    Kontaktperson,
    Melding,
    MeldingKommune,
    Notifikasjon,
    RegisterFeed,
)
from app.register.protect import Protector

BATCH_ROWS = 10_000
# rows per Parquet row group (a batch of the export's reads is smaller: they are gathered)
ROW_GROUP_ROWS = 65_536


class ExportFormat(StrEnum):
    PARQUET = "parquet"
    CSV = "csv"


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


MELDING, NOTIFIKASJON, HENDELSE = _table(Melding), _table(Notifikasjon), _table(Hendelse)
TABLES: dict[str, Table] = {
    "melding": MELDING,
    "kontaktperson": _table(Kontaktperson),
    "melding_kommune": _table(MeldingKommune),
    "notifikasjon": NOTIFIKASJON,
    "hendelse": HENDELSE,
    "episode": _table(Episode),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportScope:
    """Which meldinger: `environment`, received in [start, end), numbered up to
    `through_seq` (or never numbered)."""

    environment: str
    start: datetime
    end: datetime
    through_seq: int


async def scope_of(
    session: AsyncSession, environment: str, window: tuple[datetime, datetime]
) -> ExportScope:
    """The scope as of now: the environment's last sequence number given (committed)."""
    last = await session.scalar(
        sa_select(RegisterFeed.last_seq).where(RegisterFeed.environment == environment)
    )
    return ExportScope(
        environment=environment, start=window[0], end=window[1], through_seq=last or 0
    )


def columns(name: str, *, with_fid: bool) -> list[Column[Any]]:
    """The exported columns of a table, in the table's order: all of them, but `fid` only
    `with_fid` (`fid_hmac` always: it joins without identifying)."""
    return [c for c in TABLES[name].c if with_fid or c.name != "fid"]


def _meldinger(scope: ExportScope) -> list[Any]:
    m = MELDING
    return [
        m.c.environment == scope.environment,
        m.c.received_at >= scope.start,
        m.c.received_at < scope.end,
        or_(m.c.feed_seq.is_(None), m.c.feed_seq <= scope.through_seq),
    ]


def _query(name: str, scope: ExportScope, cols: Sequence[Column[Any]]) -> Select[Any]:
    """The rows of table `name` in `scope`, in a stable order. JSON columns come as the text
    stored (decoding and encoding again cost half of the episodes' export)."""
    m, n, h, t = MELDING, NOTIFIKASJON, HENDELSE, TABLES[name]
    query = sa_select(
        *(sa_cast(c, Text).label(c.name) if isinstance(c.type, JSON) else c for c in cols)
    )
    if name == "melding":
        return query.where(*_meldinger(scope)).order_by(m.c.id)
    if name in ("kontaktperson", "melding_kommune"):
        return (
            query.join(m, m.c.id == t.c.melding_id)
            .where(*_meldinger(scope))
            .order_by(t.c.melding_id, t.c.position)
        )
    if name == "notifikasjon":
        return query.join(m, m.c.id == n.c.melding_id).where(*_meldinger(scope)).order_by(n.c.id)
    if name == "hendelse":
        # by notification (the order of ix_hendelse_notifikasjon_id, which the join to the
        # notifications walks anyway): ordering by the event's id sorted 1 250 000 rows on disk
        return (
            query.join(n, n.c.id == h.c.notifikasjon_id)
            .join(m, m.c.id == n.c.melding_id)
            .where(*_meldinger(scope))
            .order_by(h.c.notifikasjon_id, h.c.position)
        )
    e = t
    named = (
        sa_select(h.c.id)
        .join(n, n.c.id == h.c.notifikasjon_id)
        .join(m, m.c.id == n.c.melding_id)
        .where(
            *_meldinger(scope),
            h.c.environment == e.c.environment,
            h.c.kommune_nr == e.c.kommune_nr,
            h.c.bruker_nr == e.c.bruker_nr,
            h.c.tjeneste_id == e.c.tjeneste_id,
        )
    )
    return query.where(e.c.environment == scope.environment, exists(named)).order_by(e.c.id)


async def count_rows(session: AsyncSession, name: str, scope: ExportScope) -> int:
    """How many rows table `name` exports (for the progress bar)."""
    inner = _query(name, scope, [TABLES[name].c[0]]).order_by(None).subquery()
    return int(await session.scalar(sa_select(func.count()).select_from(inner)) or 0)


async def stream_rows(
    session: AsyncSession, name: str, scope: ExportScope, cols: Sequence[Column[Any]]
) -> AsyncIterator[Sequence[Sequence[Any]]]:
    """The rows in batches of `BATCH_ROWS` (a server-side cursor on PostgreSQL)."""
    query = _query(name, scope, cols).execution_options(yield_per=BATCH_ROWS)
    result = await session.stream(query)
    async for batch in result.partitions(BATCH_ROWS):
        yield batch


def record_export_access(session: AsyncSession, *, actor: str, resource: str) -> None:
    """The access-log row of an export with identifiers; the caller commits it before the
    first identifier is written."""
    record_access(
        session,
        Access(
            token_id=None, actor=actor, role="operator", action="register.export", resource=resource
        ),
    )


# --- writing ----------------------------------------------------------------------------------


def arrow_type(column: Column[Any]) -> pa.DataType:
    """dates as date32, integers as int64, timestamps as UTC microseconds, the rest (every
    attribute as sent, the episodes' JSON lists) as strings."""
    kind = column.type
    if isinstance(kind, Date):
        return pa.date32()
    if isinstance(kind, UtcDateTime | DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(kind, Integer):
        return pa.int64()
    return pa.string()


Convert = Callable[[Any], Any]


def converters(cols: Sequence[Column[Any]], protector: Protector | None) -> list[Convert | None]:
    """Per column, what turns a stored value into the exported one (None: as it is)."""
    out: list[Convert | None] = []
    for c in cols:
        if c.name == "fid" and protector is not None:
            out.append(protector.open_optional)
        else:
            out.append(None)
    return out


class TableWriter(Protocol):
    def write(self, rows: Sequence[Sequence[Any]]) -> None: ...

    def close(self) -> None: ...


def _private(path: Path, mode: str) -> IO[Any]:
    """A new file only its owner reads (an export holds personal data)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8-sig", newline="")


class ParquetTable:
    """One table as Parquet: batches gathered into row groups of `ROW_GROUP_ROWS`."""

    def __init__(self, path: Path, cols: Sequence[Column[Any]], convert: list[Convert | None]):
        self.columns = list(cols)
        self.schema = pa.schema([pa.field(c.name, arrow_type(c)) for c in cols])
        self.convert = convert
        self.file = _private(path, "wb")
        self.writer = pq.ParquetWriter(self.file, self.schema)
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def read_csv(self, path: Path) -> Iterator[pa.RecordBatch]:
        """PostgreSQL's CSV of these columns, typed by the schema: an unquoted empty field is
        NULL, a quoted one the empty string (so a value sent empty stays one). pyarrow's
        default 1 MB blocks: 16 MB blocks read ahead in parallel took 540 MB and were slower."""
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=self.schema.names),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict(zip(self.schema.names, self.schema.types, strict=True)),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        yield from reader

    def write_arrow(self, batch: pa.RecordBatch) -> None:
        """A batch read by `read_csv`, its converted columns (the fid) converted."""
        arrays = list(batch.columns)
        for i, convert in enumerate(self.convert):
            if convert is not None:
                arrays[i] = pa.array(
                    [convert(v) for v in arrays[i].to_pylist()], type=self.schema.field(i).type
                )
        self._add(pa.record_batch(arrays, schema=self.schema))

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        arrays = []
        columns = zip(*rows, strict=True)  # the batch turned into columns in one pass
        for field, convert, values in zip(self.schema, self.convert, columns, strict=True):
            if convert is not None:
                values = tuple(convert(v) for v in values)
            arrays.append(pa.array(values, type=field.type))
        self._add(pa.record_batch(arrays, schema=self.schema))

    def _add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending, schema=self.schema))
        self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()
        self.file.close()


class CsvTable:
    """One table as CSV: `;`, UTF-8 with BOM, CRLF, a header of the column names. Values as
    stored (ISO dates and times, UTC); an empty cell is a value not sent. No formula guard:
    this is data for the register, not a sheet for Excel."""

    def __init__(self, path: Path, cols: Sequence[Column[Any]], convert: list[Convert | None]):
        self.convert = convert
        self.file = _private(path, "w")
        self.writer = csv.writer(self.file, delimiter=";", lineterminator="\r\n")
        self.writer.writerow([c.name for c in cols])

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        convert = self.convert
        self.writer.writerows(
            [_text(v if f is None else f(v)) for f, v in zip(convert, r, strict=True)] for r in rows
        )

    def close(self) -> None:
        self.file.close()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def open_writer(
    fmt: ExportFormat, path: Path, cols: Sequence[Column[Any]], protector: Protector | None
) -> TableWriter:
    convert = converters(cols, protector)
    if fmt is ExportFormat.PARQUET:
        return ParquetTable(path, cols, convert)
    return CsvTable(path, cols, convert)


Progress = Callable[[str, int], None]  # (table, rows written since the last call)


async def export_tables(
    session: AsyncSession,
    scope: ExportScope,
    out: Path,
    fmt: ExportFormat,
    *,
    protector: Protector | None,
    progress: Progress | None = None,
    names: Iterable[str] = TABLES,
) -> dict[str, Path]:
    """Write each table to `out/<table>.<format>` (with the fids opened by `protector`, or
    without a fid column when it is None); returns the files. Each file is written aside and
    renamed when complete, so a file with the final name is whole. `out` exists. (A command
    line's work: the files are written in the event loop's thread.)"""
    written: dict[str, Path] = {}
    copy = fmt is ExportFormat.PARQUET and await is_postgres(session)
    for name in names:
        cols = columns(name, with_fid=protector is not None)
        target = out / f"{name}.{fmt.value}"
        partial = target.with_name(target.name + ".partial")
        writer = open_writer(fmt, partial, cols, protector)
        try:
            if copy:
                assert isinstance(writer, ParquetTable)
                spool = target.with_name(f".{name}.copy.csv")
                await copy_table(session, name, scope, writer, spool, progress)
            else:
                async for batch in stream_rows(session, name, scope, cols):
                    writer.write(batch)
                    if progress is not None:
                        progress(name, len(batch))
        finally:
            writer.close()
        os.replace(partial, target)
        written[name] = target
    return written


async def copy_table(
    session: AsyncSession,
    name: str,
    scope: ExportScope,
    writer: ParquetTable,
    spool: Path,
    progress: Progress | None,
) -> None:
    """PostgreSQL's way to Parquet: the table's rows as CSV from `COPY (query) TO STDOUT` into
    a spool file beside the output, read back by pyarrow's streaming CSV reader (C++) typed by
    the Parquet schema, a record batch at a time. Decoding 26 million values in Python cost
    two thirds of the export's 25 s for 1 000 000 notifications. The spool holds what the
    file will (the fid still sealed) and is removed at once."""
    connection = await session.connection()
    driver: Any = (await connection.get_raw_connection()).driver_connection
    query = _query(name, scope, writer.columns).compile(dialect=connection.dialect)
    # times in UTC and dates as ISO, whatever the server's defaults (until the transaction ends)
    await driver.execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'")
    try:
        with _private(spool, "wb") as out:
            await driver.copy_from_query(
                query.string,
                *(query.params[key] for key in query.positiontup or ()),
                output=out,
                format="csv",
            )
        if os.stat(spool).st_size == 0:
            return  # no rows (pyarrow refuses an empty CSV)
        for batch in writer.read_csv(spool):
            writer.write_arrow(batch)
            if progress is not None:
                progress(name, batch.num_rows)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spool)
