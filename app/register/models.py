"""The register store's tables (issue 19, docs/register.md), named as XPR(ipl) 56.0.0 names
its classes and attributes so a register analyst reads them without a guide: `melding`,
`kontaktperson`, `melding_kommune` (the Kommune element: `kommune` is SSB's list of
municipalities), `notifikasjon`, `hendelse` (one row per event, with its Bruker) and
`episode`. Every attribute is kept as sent (text); where the service reads a value
differently, the reading is a column of its own beside it, suffixed `_tolket`. `fid` holds a
sealed token (app/register/protect.py), never the number; `fid_hmac` is its keyed hash.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base, BigId, UtcDateTime, utcnow


class Melding(Base):
    """One accepted message's Melding element, linked to the message and its AppRec.
    `feed_seq` orders the feed: given at the very end of the message's transaction under a
    per-environment counter, so sequence numbers become visible in the order they commit."""

    __tablename__ = "melding"
    __table_args__ = (UniqueConstraint("environment", "feed_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), unique=True
    )
    environment: Mapped[str] = mapped_column(String(20))
    kommune_nr: Mapped[str] = mapped_column(String(4))  # the reporting unit (first Kommune)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    apprec_id: Mapped[str | None] = mapped_column(String(100))
    apprec_status: Mapped[str | None] = mapped_column(String(1))
    feed_seq: Mapped[int | None] = mapped_column(BigInteger)
    versjon: Mapped[str | None] = mapped_column(Text)
    meldingstype: Mapped[str | None] = mapped_column(Text)
    leverandor: Mapped[str | None] = mapped_column(Text)
    navn_epj: Mapped[str | None] = mapped_column(Text)
    versjon_epj: Mapped[str | None] = mapped_column(Text)
    versjon_ut: Mapped[str | None] = mapped_column(Text)
    lokalident: Mapped[str | None] = mapped_column(Text)


class Kontaktperson(Base):
    __tablename__ = "kontaktperson"

    melding_id: Mapped[int] = mapped_column(
        ForeignKey("melding.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kont_person: Mapped[str | None] = mapped_column(Text)
    meld_telefon: Mapped[str | None] = mapped_column(Text)
    meld_epost1: Mapped[str | None] = mapped_column(Text)
    meld_epost2: Mapped[str | None] = mapped_column(Text)
    type_kontaktperson: Mapped[str | None] = mapped_column(Text)
    type_kontaktperson_tolket: Mapped[str | None] = mapped_column(Text)  # "01" read as "1"


class MeldingKommune(Base):
    __tablename__ = "melding_kommune"

    melding_id: Mapped[int] = mapped_column(
        ForeignKey("melding.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kommune_nr: Mapped[str | None] = mapped_column(Text)


class Notifikasjon(Base):
    """An accepted notification. (environment, kommune_nr, notifikasjon_guid_tolket) is the
    loader's idempotency key. `funn` lists the rule ids of the row's findings, `feil` those
    that are errors (the row is kept with them, docs/rules.md)."""

    __tablename__ = "notifikasjon"
    __table_args__ = (
        Index("ix_notifikasjon_key", "environment", "kommune_nr", "notifikasjon_guid_tolket"),
        Index("ix_notifikasjon_ref", "environment", "kommune_nr", "notifikasjon_ref_tolket"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    melding_id: Mapped[int] = mapped_column(
        ForeignKey("melding.id", ondelete="CASCADE"), index=True
    )
    environment: Mapped[str] = mapped_column(String(20))
    kommune_nr: Mapped[str] = mapped_column(String(4))
    position: Mapped[int] = mapped_column(Integer)  # among the message's Notifikasjon
    status_notifikasjon: Mapped[str | None] = mapped_column(Text)
    notifikasjon_tid: Mapped[str | None] = mapped_column(Text)
    notifikasjon_guid: Mapped[str | None] = mapped_column(Text)
    notifikasjon_forrige_guid: Mapped[str | None] = mapped_column(Text)
    notifikasjon_lope_nr: Mapped[str | None] = mapped_column(Text)
    notifikasjon_ref: Mapped[str | None] = mapped_column(Text)
    notifikasjon_guid_tolket: Mapped[str] = mapped_column(String(100))
    notifikasjon_ref_tolket: Mapped[str | None] = mapped_column(String(100))
    notifikasjon_lope_nr_tolket: Mapped[int | None] = mapped_column(BigInteger)
    funn: Mapped[str | None] = mapped_column(Text)
    # the rule ids of the errors the row was kept with (issue 21): stored, but the
    # municipality must correct it; None when it has none
    feil: Mapped[str | None] = mapped_column(Text)


class Hendelse(Base):
    """One event (`hendelse_type` = its element name) with its Bruker's attributes."""

    __tablename__ = "hendelse"
    __table_args__ = (
        Index("ix_hendelse_episode", "environment", "kommune_nr", "bruker_nr", "tjeneste_id"),
        Index("ix_hendelse_guid", "environment", "kommune_nr", "hendelse_guid_tolket"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notifikasjon_id: Mapped[int] = mapped_column(
        ForeignKey("notifikasjon.id", ondelete="CASCADE"), index=True
    )
    environment: Mapped[str] = mapped_column(String(20))
    kommune_nr: Mapped[str] = mapped_column(String(4))
    position: Mapped[int] = mapped_column(Integer)
    hendelse_type: Mapped[str] = mapped_column(String(40))
    tjeneste_type: Mapped[str | None] = mapped_column(Text)
    hendelse_reg_tid: Mapped[str | None] = mapped_column(Text)
    tjeneste_org_nr: Mapped[str | None] = mapped_column(Text)
    hendelse_dato: Mapped[str | None] = mapped_column(Text)
    tjeneste_id: Mapped[str | None] = mapped_column(Text)
    hendelse_guid: Mapped[str | None] = mapped_column(Text)
    midlertidig_stopp_id: Mapped[str | None] = mapped_column(Text)
    pasient_guid: Mapped[str | None] = mapped_column(Text)
    bruker_nr: Mapped[str | None] = mapped_column(Text)
    fid: Mapped[str | None] = mapped_column(Text)  # sealed
    # no index: the service never looks an event up by it (the episode's is indexed), and a
    # random key costs every insert of a 100 000-row message a cache miss
    fid_hmac: Mapped[str | None] = mapped_column(String(64))
    type_id: Mapped[str | None] = mapped_column(Text)
    bydel: Mapped[str | None] = mapped_column(Text)
    hendelse_dato_tolket: Mapped[date | None] = mapped_column(Date)
    hendelse_guid_tolket: Mapped[str | None] = mapped_column(String(100))
    type_id_tolket: Mapped[str | None] = mapped_column(String(20))  # the kind the fid shows
    tjeneste_type_tolket: Mapped[str | None] = mapped_column(Text)  # "08" read as "8"


class Episode(Base):
    """A service episode as the register sees it: per environment, municipality, brukerNr and
    tjenesteID, derived from the notifications in force (app/register/episodes.py)."""

    __tablename__ = "episode"
    __table_args__ = (UniqueConstraint("environment", "kommune_nr", "bruker_nr", "tjeneste_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    environment: Mapped[str] = mapped_column(String(20))
    kommune_nr: Mapped[str] = mapped_column(String(4))
    bruker_nr: Mapped[str] = mapped_column(Text)
    tjeneste_id: Mapped[str] = mapped_column(Text)
    fid_hmac: Mapped[str | None] = mapped_column(String(64), index=True)
    tjeneste_type: Mapped[str | None] = mapped_column(Text)
    start_dato: Mapped[date | None] = mapped_column(Date)
    start_notifikasjon_guid: Mapped[str | None] = mapped_column(String(100))
    slutt_dato: Mapped[date | None] = mapped_column(Date)
    slutt_notifikasjon_guid: Mapped[str | None] = mapped_column(String(100))
    tjeneste_org_nr: Mapped[str | None] = mapped_column(Text)  # the provider in force
    # [{midlertidig_stopp_id, fra_dato, til_dato, fra_notifikasjon_guid, til_notifikasjon_guid}]
    midlertidige_stopp: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # [{hendelse_dato, tjeneste_org_nr, notifikasjon_guid}]
    utforer_endringer: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class RegisterFeed(Base):
    """Per environment: the last feed sequence number given, and how far the register's
    loader has confirmed (`confirmed_seq`, `confirmed_notifikasjon_id`: the cursor it
    posted)."""

    __tablename__ = "register_feed"

    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    confirmed_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    confirmed_notifikasjon_id: Mapped[int] = mapped_column(BigInteger, default=0)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
