"""GET /api/v1/kommuner/{kommunenr}/feilliste: the municipality's error list with person
identifiers, for look-up in its EPJ. Personal data: every read is access-logged in the same
transaction. JSON, or CSV for Excel (UTF-8 with BOM, `;`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.access import log_access
from app.api.deps import AnyPrincipal
from app.api.messages import Environment
from app.api.paging import decode_row_cursor, encode_row_cursor
from app.api.problems import PROBLEM_RESPONSES
from app.catalogue import rules_by_id
from app.content.calendar import OSLO
from app.core.spreadsheet import sheet
from app.http_deps import DbSession
from app.http_deps import app_state as _app_state
from app.models import utcnow
from app.platform.settings import Settings
from app.query import feilliste as repo
from app.query.reporting import default_year, received_window, year_entry
from app.register.protect import Protector

router = APIRouter(prefix="/api/v1", tags=["feilliste"], responses=PROBLEM_RESPONSES)

KommuneNr = Annotated[str, Path(pattern=r"^[0-9]{4}$", description="4-digit kommunenummer")]
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
# Column texts as the municipality reads them (Norwegian), in order.
CSV_HEADER = (
    "Meldingsreferanse",
    "Mottatt",
    "NotifikasjonGUID",
    "Løpenummer",
    "BrukerNr",
    "Person-ID",
    "Regel",
    "Feilkode",
    "Feiltekst",
    "Detaljer",
    "Rettet",
)
# A JSON page; the largest municipality's year is some thousand rows (CSV: all of them).
PAGE_ROWS = 500
MAX_ROWS = 5000


class Which(StrEnum):
    OPEN = "open"
    ALL = "all"


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


class ErrorRowOut(BaseModel):
    message_id: int = Field(description="KPR's message reference")
    received_at: datetime
    notification_guid: str | None
    lopenr: int | None = Field(description="the notification's løpenummer (null when it had none)")
    bruker_nr: str | None
    fid: str | None = Field(description="Person-ID; null when KPR does not publish it")
    rule_id: str
    apprec_code: str | None
    text: str = Field(description="the rule's Norwegian text")
    detail: str
    corrected: bool = Field(description="a later accepted notification corrected it")


class Feilliste(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kommune_nr": "0301",
                    "year": 2018,
                    "environment": "pilot",
                    "filter": "open",
                    "fid_published": True,
                    "rows": [
                        {
                            "message_id": 42,
                            "received_at": "2018-11-20T11:00:00Z",
                            "notification_guid": "bdd640fb-0667-4ad1-9c80-317fa3b1799d",
                            "lopenr": 3,
                            "bruker_nr": "B0000000",
                            "fid": "(11 sifre)",
                            "rule_id": "IPL-FID-INVALID",
                            "apprec_code": "E31",
                            "text": "Fødselsnummeret har feil kontrollsiffer",
                            "detail": "...",
                            "corrected": False,
                        }
                    ],
                }
            ]
        }
    )

    kommune_nr: str
    year: int
    environment: str
    filter: Which
    fid_published: bool
    rows: list[ErrorRowOut]
    next_cursor: str | None = Field(
        default=None, description="the next page's cursor (JSON only; CSV holds every row)"
    )


def to_csv(rows: list[ErrorRowOut], *, with_fid: bool) -> bytes:
    """Every text cell escaped (app/core/spreadsheet.py): fid, GUID and rule id included."""
    out, writer = sheet()
    writer.writerow([h for h in CSV_HEADER if with_fid or h != "Person-ID"])
    for r in rows:
        writer.writerow(
            [
                r.message_id,
                r.received_at.astimezone(OSLO).strftime("%d.%m.%Y %H:%M:%S"),
                r.notification_guid,
                r.lopenr,
                r.bruker_nr,
                *([r.fid] if with_fid else []),
                r.rule_id,
                r.apprec_code,
                r.text,
                " ".join(r.detail.split()),
                "Ja" if r.corrected else "Nei",
            ]
        )
    return out.getvalue().encode("utf-8")


async def read_feilliste(
    settings: Settings,
    session: AsyncSession,
    kommune_nr: str,
    *,
    year: int | None,
    environment: str | None,
    which: Which,
    protector: Protector,
    limit: int | None = None,
    cursor: str | None = None,
) -> Feilliste:
    """The list itself (also for the CLI): no access check, no access log. With `limit`, one
    page of it, and the cursor of the next. Person-IDs are opened with `protector` only when
    published."""
    year = year or default_year(settings, utcnow())
    env = environment or await repo.latest_environment(session, kommune_nr) or "production"
    start, end = received_window(year_entry(settings, year))
    rows = await repo.error_rows(
        session,
        kommune_nr,
        env,
        start,
        end,
        open_only=which is Which.OPEN,
        after=decode_row_cursor(cursor),
        limit=None if limit is None else limit + 1,
    )
    next_cursor = None
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_row_cursor(last.received_at, last.message_id, last.finding_id)
    publish = settings.feilliste_publish_fid and not await repo.fid_hidden_for(session, kommune_nr)
    rules = rules_by_id()
    return Feilliste(
        kommune_nr=kommune_nr,
        year=year,
        environment=env,
        filter=which,
        fid_published=publish,
        rows=[
            ErrorRowOut(
                message_id=r.message_id,
                received_at=r.received_at,
                notification_guid=r.notification_guid,
                lopenr=r.lopenr,
                bruker_nr=r.bruker_nr,
                fid=protector.open_optional(r.fid) if publish else None,
                rule_id=r.rule_id,
                apprec_code=r.apprec_code,
                text=rules[r.rule_id].text_no if r.rule_id in rules else r.rule_id,
                detail=r.detail,
                corrected=r.corrected,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )


@router.get(
    "/kommuner/{kommune_nr}/feilliste",
    response_model=Feilliste,
    summary="The municipality's error list (personal data; access-logged)",
    responses={200: {"content": {"text/csv": {}}, "description": "JSON or CSV (format=csv)"}},
)
async def get_feilliste(
    kommune_nr: KommuneNr,
    request: Request,
    session: DbSession,
    who: AnyPrincipal,
    year: Annotated[int | None, Query(ge=2000, le=2100, description="reporting year")] = None,
    environment: Annotated[
        Environment | None,
        Query(description="default: the environment of the municipality's latest message"),
    ] = None,
    filter: Annotated[Which, Query(description="open: not yet corrected")] = Which.OPEN,
    format: Annotated[Format | None, Query(description="csv, or Accept: text/csv")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="rows per page (JSON)")] = PAGE_ROWS,
    cursor: Annotated[str | None, Query(description="next_cursor of the page before")] = None,
) -> Response:
    """One row per failing notification and rule: KPR's message reference, when received,
    notifikasjonGUID, brukerNr, Person-ID (fid), rule, AppRec code, the Norwegian text, and
    whether a later accepted notification corrected it."""
    if not who.may_read_kommune(kommune_nr):
        raise HTTPException(404, f"no error list for kommune {kommune_nr}")
    wants_csv = format is Format.CSV or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    result = await read_feilliste(
        _app_state(request).settings,
        session,
        kommune_nr,
        year=year,
        environment=environment.value if environment else None,
        which=filter,
        protector=_app_state(request).keyring.register,
        limit=None if wants_csv else limit,  # a spreadsheet gets the whole list
        cursor=None if wants_csv else cursor,
    )
    log_access(session, request, who, "feilliste.read", kommune_nr=kommune_nr)
    await session.commit()
    if wants_csv:
        name = f"feilliste-{kommune_nr}-{result.year}-{result.environment}.csv"
        return Response(
            to_csv(result.rows, with_fid=result.fid_published),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    # serialized once (the model was validated as it was built): a large list costs half
    return Response(result.model_dump_json(), media_type="application/json")
