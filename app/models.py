"""The audit schema. Generic column types so SQLite and PostgreSQL both work.

Tables are singular snake_case; timestamps are `*_at`, timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    mapped_column,
    relationship,
)
from sqlalchemy.sql.dml import Insert, UpdateBase
from sqlalchemy.sql.expression import false
from sqlalchemy.sql.selectable import Alias
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; SQLite drops the zone, so put it back on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


TOKEN_LIFETIME = timedelta(days=365)


def token_expiry() -> datetime:
    """A new API token's default expiry: one year."""
    return utcnow() + TOKEN_LIFETIME


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# --- the sender registry: our mirror of AR and the CPAs -----------------------------------


class Party(Base):
    __tablename__ = "party"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    her_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(200))
    orgnr: Mapped[str | None] = mapped_column(String(9))
    # Downgrade protection: plaintext/unsigned payloads only from parties explicitly marked so.
    plaintext_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    # Where the party came from: manual (CLI/API), import (files) or ar (NHN's registries);
    # a sync never overwrites manual or import unless told to adopt it.
    source: Mapped[str] = mapped_column(String(10), default="manual", server_default="manual")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    kommuner: Mapped[list[PartyKommune]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PartyKommune.kommune_nr"
    )
    contacts: Mapped[list[PartyContact]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PartyContact.id"
    )
    certificates: Mapped[list[PartyCertificate]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PartyCertificate.id"
    )
    cpas: Mapped[list[PartyCpa]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="PartyCpa.cpa_id"
    )
    # what NHN's registries last said about the HER-id (its freshness), if they were asked
    registry_entry: Mapped[RegistryEntry | None] = relationship(
        primaryjoin="foreign(RegistryEntry.her_id) == Party.her_id",
        viewonly=True,
        lazy="selectin",
        uselist=False,
    )


class RegistryEntry(Base):
    """What NHN's registries last said about one HER-id (app/registries): the cache, the
    negative cache (known false) and the forced-refresh limit."""

    __tablename__ = "registry_entry"

    her_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    known: Mapped[bool] = mapped_column(Boolean)
    fetched_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    forced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The checked answer (app/registries/models.py RegistryParty.to_json): name, orgnr,
    # municipality, certificates, CPA, electronic addresses.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    async_queue: Mapped[str | None] = mapped_column(String(300))
    error_queue: Mapped[str | None] = mapped_column(String(300))
    sync_queue: Mapped[str | None] = mapped_column(String(300))
    problem: Mapped[str | None] = mapped_column(String(300))


class PartyKommune(Base):
    __tablename__ = "party_kommune"
    __table_args__ = (UniqueConstraint("party_id", "kommune_nr"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("party.id", ondelete="CASCADE"), index=True)
    kommune_nr: Mapped[str] = mapped_column(String(4), index=True)
    # KPR may decide not to publish person identifiers to this municipality's error list
    hide_fid: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class PartyContact(Base):
    __tablename__ = "party_contact"
    __table_args__ = (UniqueConstraint("party_id", "email", "role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("party.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(200))
    # e.g. innsendingsansvarlig, teknisk
    role: Mapped[str] = mapped_column(String(40), default="innsendingsansvarlig")


class PartyCertificate(Base):
    __tablename__ = "party_certificate"
    __table_args__ = (UniqueConstraint("party_id", "usage", "sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("party.id", ondelete="CASCADE"), index=True)
    usage: Mapped[str] = mapped_column(String(20))  # signing | encryption
    pem: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    issuer: Mapped[str] = mapped_column(String(500))
    serial: Mapped[str] = mapped_column(String(64))
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)


class PartyCpa(Base):
    __tablename__ = "party_cpa"
    __table_args__ = (UniqueConstraint("party_id", "cpa_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("party.id", ondelete="CASCADE"), index=True)
    cpa_id: Mapped[str] = mapped_column(String(200))
    # [{"service": ..., "action": ...}]; empty = whatever MsgInfo/Type says
    service_actions: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    requires_signing: Mapped[bool] = mapped_column(Boolean, default=True)
    requires_encryption: Mapped[bool] = mapped_column(Boolean, default=True)
    # the sender's delivery channels as far as answering goes (app/parties/channels.py)
    reply_channels: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# --- received messages and what happened to them -----------------------------------------


class Message(Base):
    """One received HTTP request, however broken. Raw bytes are kept for audit."""

    __tablename__ = "message"
    __table_args__ = (
        Index("ix_message_received_at", "received_at"),
        # a municipality's messages newest first (the list's order), whatever its size
        Index("ix_message_kommune_time", "kommune_nr", "received_at", "id"),
        Index("ix_message_sender", "from_party_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    content_type: Mapped[str | None] = mapped_column(String(1000))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # None when the body was never read (refused by size before reading)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    raw_ref: Mapped[str | None] = mapped_column(String(500))  # when raw bytes live elsewhere
    # how it came: "ebxml-http" or "amqp" (issue 24)
    transport: Mapped[str] = mapped_column(
        String(20), default="ebxml-http", server_default="ebxml-http"
    )
    # ebXML transport
    ebms_message_id: Mapped[str | None] = mapped_column(String(500), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(500))
    ref_to_message_id: Mapped[str | None] = mapped_column(String(500))
    cpa_id: Mapped[str | None] = mapped_column(String(200))
    service: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str | None] = mapped_column(String(200))
    from_party_id: Mapped[str | None] = mapped_column(String(100))
    to_party_id: Mapped[str | None] = mapped_column(String(100))
    sender_party_id: Mapped[int | None] = mapped_column(
        ForeignKey("party.id", ondelete="SET NULL"), index=True
    )
    environment: Mapped[str | None] = mapped_column(String(20), index=True)
    # business envelope
    msghead_msg_id: Mapped[str | None] = mapped_column(String(200), index=True)
    msghead_type: Mapped[str | None] = mapped_column(String(50))
    # SHA-256 of the business document as decrypted: tells an identical resend of a MsgId.
    msghead_sha256: Mapped[str | None] = mapped_column(String(64))
    kommune_nr: Mapped[str | None] = mapped_column(String(4))  # ix_message_kommune_time
    payload_bytes: Mapped[int | None] = mapped_column(BigInteger)
    notification_count: Mapped[int | None] = mapped_column(Integer)
    # one of app.statuses.MessageStatus (its value)
    status: Mapped[str] = mapped_column(String(30), default="RECEIVED", index=True)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    events: Mapped[list[MessageEvent]] = relationship(
        lazy="raise", order_by="MessageEvent.id", cascade="all, delete-orphan"
    )


class MessageDedup(Base):
    """Duplicate elimination by (sender party, eb:MessageId): the primary key makes a second
    insert fail, also across processes sharing one PostgreSQL database."""

    __tablename__ = "message_dedup"

    from_party_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    ebms_message_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("message.id"), unique=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MessageEvent(Base):
    """Append-only processing log: received, parsed, signature_checked, decrypted, validated,
    receipt_built, reply_sent, notified, ... Rows are only ever inserted."""

    __tablename__ = "message_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Finding(Base):
    __tablename__ = "finding"
    __table_args__ = (Index("ix_finding_kommune_rule", "kommune_nr", "rule_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    rule_id: Mapped[str] = mapped_column(String(60))
    layer: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(10))
    consequence: Mapped[str] = mapped_column(String(30))
    apprec_code: Mapped[str | None] = mapped_column(String(10))
    location: Mapped[str] = mapped_column(String(500))
    detail: Mapped[str] = mapped_column(Text)
    # whom it concerns; fid and bruker_nr are personal data (municipality error list only)
    notification_guid: Mapped[str | None] = mapped_column(String(36))
    bruker_nr: Mapped[str | None] = mapped_column(String(100))
    fid: Mapped[str | None] = mapped_column(Text)  # sealed (app/register/protect.py)
    kommune_nr: Mapped[str | None] = mapped_column(String(4))
    lopenr: Mapped[int | None] = mapped_column(BigInteger)  # the notification's, if any
    # the later message whose accepted notification corrected this failing one (error list)
    corrected_by: Mapped[int | None] = mapped_column(BigInteger)
    # the message's, copied so the error list reads one index range, not every message
    environment: Mapped[str | None] = mapped_column(String(20))
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Receipt(Base):
    """The exact reply bytes sent, so a duplicate gets them byte for byte."""

    __tablename__ = "receipt"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # apprec | message_error
    reply_ebms_message_id: Mapped[str | None] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(1000))
    body: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    apprec_xml: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    apprec_id: Mapped[str | None] = mapped_column(String(100))
    apprec_status: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # when retention masked brukerNr and fid in `apprec_xml` (`body` stays as it was sent)
    apprec_redacted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class NotificationOutbox(Base):
    """Emails to innsendingsansvarlig, sent by a loop outside the request (at least once)."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_notification_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # None for a reminder, which concerns a municipality rather than a message
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(20), default="message", server_default="message")
    kommune_nr: Mapped[str | None] = mapped_column(String(4))
    # reminders: "<year>:<environment>:<kommunenr>:<day>:<recipient>"; unique = once a day
    dedup_key: Mapped[str | None] = mapped_column(String(400), unique=True)


class AmqpInbox(Base):
    """An AMQP message as received, committed before it is accepted on the broker (issue 24).

    The unique AMQP message-id makes a redelivery after a crash a no-op: the row exists, the
    broker gets its accept, and the service processes the stored copy once."""

    __tablename__ = "amqp_inbox"
    __table_args__ = (Index("ix_amqp_inbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    amqp_message_id: Mapped[str] = mapped_column(String(500), unique=True)
    queue: Mapped[str] = mapped_column(String(200))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    # pending | done | failed
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("message.id", ondelete="SET NULL"), index=True
    )
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AmqpOutbox(Base):
    """AppRecs and error messages to a sender's queue, sent by a loop with retries."""

    __tablename__ = "amqp_outbox"
    __table_args__ = (Index("ix_amqp_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    inbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("amqp_inbox.id", ondelete="SET NULL"), index=True
    )
    # one answer per inbox message and kind: a second processing sends nothing new
    dedup_key: Mapped[str] = mapped_column(String(600), unique=True)
    queue: Mapped[str] = mapped_column(String(200))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --- access -----------------------------------------------------------------------------


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # operator | municipality
    kommune_nr: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # every token expires (`tokens create --expires`); None (rows written by hand) is expired
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=token_expiry)


class AccessLog(Base):
    """Every read of personal data through the API: who, when, what."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_token.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(60))
    resource: Mapped[str] = mapped_column(String(300))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    kommune_nr: Mapped[str | None] = mapped_column(String(4))
    request_id: Mapped[str | None] = mapped_column(String(64))
    remote_addr: Mapped[str | None] = mapped_column(String(64))


# --- IPLOS history across messages (rules that need earlier messages) ---------------------


class IplosKommuneState(Base):
    """Per environment and municipality: which løpenummer have been received, as sorted,
    disjoint ranges `[[lo, hi], ...]` (completeness and gaps), and a `version` bumped by every
    message checked against this history. The intake reads the version before the history and
    compares it in its write transaction, with the row locked (SELECT ... FOR UPDATE): a
    message of the municipality stored meanwhile makes it check again."""

    __tablename__ = "iplos_kommune_state"

    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    kommune_nr: Mapped[str] = mapped_column(String(4), primary_key=True)
    received: Mapped[list[list[int]]] = mapped_column(JSON, default=list)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class IplosNotification(Base):
    """An accepted notification (dropped rows live only as findings), per environment:
    pilot, test and production never see each other's history."""

    __tablename__ = "iplos_notification"
    __table_args__ = (
        UniqueConstraint("environment", "kommune_nr", "guid"),
        Index("ix_iplos_notification_lopenr", "environment", "kommune_nr", "lopenr"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    environment: Mapped[str] = mapped_column(String(20))
    kommune_nr: Mapped[str] = mapped_column(String(4))
    guid: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(1))
    lopenr: Mapped[int | None] = mapped_column(BigInteger)
    forrige_guid: Mapped[str] = mapped_column(String(36))
    ref: Mapped[str | None] = mapped_column(String(36))
    bruker_nr: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the notification's content as read: an identical resend is no error.
    content_sha256: Mapped[str] = mapped_column(String(64))
    # the same without notifikasjonTid, hendelseRegTid and pasientGUID (a resend renews them);
    # None for rows stored before migration 0022
    content_core_sha256: Mapped[str | None] = mapped_column(String(64))

    events: Mapped[list[IplosEvent]] = relationship(
        back_populates="notification", cascade="all, delete-orphan", order_by="IplosEvent.position"
    )


class IplosEvent(Base):
    """One event of a stored notification (a notification may carry several)."""

    __tablename__ = "iplos_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("iplos_notification.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    tjeneste_type: Mapped[str] = mapped_column(String(20))
    tjeneste_id: Mapped[str] = mapped_column(Text)
    tjeneste_org_nr: Mapped[str | None] = mapped_column(String(10))
    hendelse_dato: Mapped[date | None] = mapped_column(Date)

    notification: Mapped[IplosNotification] = relationship(back_populates="events")


class IplosBruker(Base):
    """brukerNr ↔ fid per environment and municipality, to see when a pair changes.
    Personal data: read only by the intake and the municipality's own error list."""

    __tablename__ = "iplos_bruker"
    # the intake finds the brukerNr paired with each fid of a message
    __table_args__ = (Index("ix_iplos_bruker_fid_hmac", "environment", "kommune_nr", "fid_hmac"),)

    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    kommune_nr: Mapped[str] = mapped_column(String(4), primary_key=True)
    bruker_nr: Mapped[str] = mapped_column(String(100), primary_key=True)
    fid: Mapped[str] = mapped_column(Text)  # sealed (app/register/protect.py)
    fid_hmac: Mapped[str | None] = mapped_column(String(64))  # its keyed hash, for look-ups
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


# --- the intake API's read side (issue 13) ----------------------------------------------


class Kommune(Base):
    """The municipalities of Norway per reporting year (SSB classification 131)."""

    __tablename__ = "kommune"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    kommune_nr: Mapped[str] = mapped_column(String(4), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))


# The error list asks "was this GUID corrected by a later M/C row?" per notification.
Index(
    "ix_iplos_notification_ref",
    IplosNotification.environment,
    IplosNotification.kommune_nr,
    IplosNotification.ref,
)
# Message filters by rule / AppRec code, and the error list by municipality.
Index("ix_finding_rule_message", Finding.rule_id, Finding.message_id)
Index("ix_finding_code_message", Finding.apprec_code, Finding.message_id)
# The error list and coverage read one municipality's (or every) messages of an environment
# in a window of received times.
Index("ix_message_kommune_env", Message.kommune_nr, Message.environment, Message.received_at)
# The error list reads only a municipality's failing findings (about 1 in 20 findings).
_FAILING_FINDING = (
    "consequence IN ('drop_notification', 'keep_with_error', 'reject_message') "
    "AND notification_guid IS NOT NULL"
)
Index(
    "ix_finding_failing",
    Finding.kommune_nr,
    Finding.message_id,
    postgresql_where=text(_FAILING_FINDING),
    sqlite_where=text(_FAILING_FINDING),
)
# The error list: one municipality's failing findings of an environment, oldest first.
Index(
    "ix_finding_error_list",
    Finding.kommune_nr,
    Finding.environment,
    Finding.received_at,
    Finding.message_id,
    Finding.id,
    postgresql_where=text(_FAILING_FINDING),
    sqlite_where=text(_FAILING_FINDING),
)
# A new message looks up the failing findings its notifications correct, by GUID.
Index(
    "ix_finding_failing_guid",
    Finding.kommune_nr,
    Finding.notification_guid,
    postgresql_where=text(_FAILING_FINDING),
    sqlite_where=text(_FAILING_FINDING),
)


# The error list's findings that rejected a message without naming a notification (a schema
# error in the content, filed under the municipality the message names: issue 21).
MESSAGE_LEVEL_FINDING = "consequence = 'reject_message' AND notification_guid IS NULL"
Index(
    "ix_finding_message_level",
    Finding.kommune_nr,
    Finding.environment,
    Finding.received_at,
    Finding.message_id,
    Finding.id,
    postgresql_where=text(MESSAGE_LEVEL_FINDING),
    sqlite_where=text(MESSAGE_LEVEL_FINDING),
)


class CoverageTotal(Base):
    """Running totals per environment, municipality and reporting year, added to in each
    message's own transaction, so coverage reads 422 rows instead of a year of findings. A
    message received in January to March counts for both years whose windows hold it."""

    __tablename__ = "coverage_total"

    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    kommune_nr: Mapped[str] = mapped_column(String(4), primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    readable: Mapped[int] = mapped_column(BigInteger, default=0)
    first_readable_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_readable_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    best_rank: Mapped[int | None] = mapped_column(Integer)  # 1: AppRec 1, 2: 3, 3: 2
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)
    failing: Mapped[int] = mapped_column(BigInteger, default=0)
    corrected: Mapped[int] = mapped_column(BigInteger, default=0)


class RuleDayTotal(Base):
    """Findings per environment (`-`: none), UTC day and rule: the statistics' rule counts."""

    __tablename__ = "rule_day_total"

    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    rule_id: Mapped[str] = mapped_column(String(60), primary_key=True)
    findings: Mapped[int] = mapped_column(BigInteger, default=0)


class TotalsState(Base):
    """Which reporting calendar the coverage totals were built for: another calendar setting
    makes them stale until `kpr-mottak totals rebuild` (run by `db upgrade`)."""

    __tablename__ = "totals_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    calendar_sha256: Mapped[str] = mapped_column(String(64))
    built_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# --- the access log is append-only ------------------------------------------------------


class AppendOnlyError(RuntimeError):
    """Something tried to change or remove a row of the access log."""


def _writes_access_log(statement: object) -> bool:
    """An UPDATE or DELETE (ORM or Core) whose target table is the access log, also through
    an alias. Decided by the statement's table, never by its SQL text: textual SQL is the
    database triggers' to refuse (migrations 0013 and 0020)."""
    if not isinstance(statement, UpdateBase) or isinstance(statement, Insert):
        return False
    table: object = getattr(statement, "table", None)
    while isinstance(table, Alias):
        table = table.element
    return getattr(table, "name", None) == AccessLog.__tablename__


@event.listens_for(Session, "before_flush")
def _access_log_unchanged(session: Session, _context: object, _instances: object) -> None:
    """Refuse an ORM flush that would change or delete an access-log row."""
    for obj in session.deleted:
        if isinstance(obj, AccessLog):
            raise AppendOnlyError("access_log rows cannot be deleted")
    for obj in session.dirty:
        if isinstance(obj, AccessLog) and session.is_modified(obj):
            raise AppendOnlyError("access_log rows cannot be changed")


@event.listens_for(Session, "do_orm_execute")
def _access_log_no_bulk_writes(state: ORMExecuteState) -> None:
    """Refuse ORM UPDATE/DELETE statements on the access log."""
    if (state.is_update or state.is_delete) and _writes_access_log(state.statement):
        raise AppendOnlyError("access_log is append-only")


@event.listens_for(Engine, "before_execute")
def _access_log_no_core_writes(
    _conn: object, clauseelement: object, _multiparams: object, _params: object, _opts: object
) -> None:
    """The same for Core statements run on a connection, bypassing the session."""
    if _writes_access_log(clauseelement):
        raise AppendOnlyError("access_log is append-only")
