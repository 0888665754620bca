"""Settings: every key is `KPR_*`, validated at start-up with a message naming the bad value.

Tests build `Settings(...)` explicitly; nothing reads the environment at import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.platform.mailboxes import EdiMailbox, parse_listen, parse_mailboxes, parse_relay

DEV_DATABASE_URL = "sqlite+aiosqlite:///./var/kpr.db"
DEV_PKI_DIR = Path("var/pki")


class Env(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class ReceiverEnvironment(StrEnum):
    PILOT = "pilot"
    TEST = "test"
    PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class KeyPair:
    key: Path
    cert: Path


def _parse_receivers(raw: str) -> dict[int, ReceiverEnvironment]:
    result: dict[int, ReceiverEnvironment] = {}
    for item in (p.strip() for p in raw.split(",")):
        if not item:
            continue
        her, sep, env = item.partition("=")
        if not sep or not her.strip().isdigit() or int(her) <= 0:
            raise ValueError(
                f"KPR_RECEIVERS: '{item}' is not HERID=ENVIRONMENT (e.g. 131725=pilot)"
            )
        try:
            result[int(her)] = ReceiverEnvironment(env.strip())
        except ValueError:
            allowed = ", ".join(e.value for e in ReceiverEnvironment)
            raise ValueError(
                f"KPR_RECEIVERS: unknown receiver environment '{env.strip()}' for HER-id {her}"
                f" (allowed: {allowed})"
            ) from None
    if not result:
        raise ValueError("KPR_RECEIVERS: at least one HER-id is required (e.g. 131725=pilot)")
    return result


def _readable_file(path: Path, key: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{key}: file {path} does not exist")
    try:
        path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{key}: file {path} is not readable ({exc.strerror})") from None
    return path


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KPR_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    env: Env = Env.DEV
    database_url: str = DEV_DATABASE_URL
    # SQLite's `PRAGMA synchronous`: FULL, so an acknowledged message survives a power loss.
    # The test suite sets OFF for its throw-away databases (production runs on PostgreSQL).
    sqlite_synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL"
    receivers: Annotated[dict[int, ReceiverEnvironment], NoDecode] = Field(
        default_factory=lambda: {131725: ReceiverEnvironment.PILOT}
    )
    pki_dir: Path = DEV_PKI_DIR
    signing_key: Path | None = None
    signing_cert: Path | None = None
    decryption_keys: Annotated[tuple[KeyPair, ...], NoDecode] = ()
    trust_anchors: Annotated[tuple[Path, ...], NoDecode] = ()
    crl_dir: Path | None = None
    max_message_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    max_mime_parts: int = Field(default=16, gt=1)
    max_header_bytes: int = Field(default=16 * 1024, gt=256)
    # The decrypted, inflated MsgHead: the largest real IPLOS file (100 000 notifications) is
    # 55 MB and ~300 000 elements; the element count is taken before a tree is built.
    max_payload_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    max_payload_elements: int = Field(default=1_000_000, gt=0)
    max_concurrent_messages: int = Field(default=4, gt=0)
    apprec_version: str = "1.1"
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str = "kpr-mottak@localhost"
    reporting_calendar: str = ""
    public_base_url: str = "http://127.0.0.1:8080"
    gen_date_skew_seconds: int = Field(default=300, ge=0)
    log_format: str = "auto"
    # --- the intake API (issue 13) ---
    # KPR may decide not to publish person identifiers (fid) in the error lists at all.
    feilliste_publish_fid: bool = True
    # The dev mail sink (KPR_ENV=dev without KPR_SMTP_HOST) writes each email here.
    mail_dir: Path = Path("var/mail")

    @field_validator("receivers", mode="before")
    @classmethod
    def _receivers(cls, value: object) -> object:
        return _parse_receivers(value) if isinstance(value, str) else value

    @field_validator("decryption_keys", mode="before")
    @classmethod
    def _decryption_keys(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = []
        for item in (p.strip() for p in value.split(",")):
            if not item:
                continue
            key, sep, cert = item.partition("=")
            if not sep:
                raise ValueError(
                    f"KPR_DECRYPTION_KEYS: '{item}' is not KEYFILE=CERTFILE (comma-separated)"
                )
            pairs.append(KeyPair(Path(key.strip()), Path(cert.strip())))
        return tuple(pairs)

    @field_validator("trust_anchors", mode="before")
    @classmethod
    def _trust_anchors(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(Path(p.strip()) for p in value.split(",") if p.strip())
        return value

    @field_validator("apprec_version")
    @classmethod
    def _apprec_version(cls, value: str) -> str:
        if value not in ("1.0", "1.1"):
            raise ValueError(f"KPR_APPREC_VERSION: '{value}' is not supported (use 1.0 or 1.1)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "KPR_DATABASE_URL: use sqlite+aiosqlite:///PATH or postgresql+asyncpg://..."
                f" (got scheme '{value.split(':', 1)[0]}')"
            )
        return value

    @field_validator("reporting_calendar")
    @classmethod
    def _calendar(cls, value: str) -> str:
        if value.strip():
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"KPR_REPORTING_CALENDAR: not valid JSON ({exc.msg})") from None
            if not isinstance(parsed, dict):
                raise ValueError("KPR_REPORTING_CALENDAR: expected a JSON object keyed by year")
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("auto", "json", "console"):
            raise ValueError(f"KPR_LOG_FORMAT: '{value}' is not one of auto, json, console")
        return value

    @model_validator(mode="after")
    def _files_and_production(self) -> Settings:
        for key, path in (
            ("KPR_SIGNING_KEY", self.signing_key),
            ("KPR_SIGNING_CERT", self.signing_cert),
        ):
            if path is not None:
                _readable_file(path, key)
        for pair in self.decryption_keys:
            _readable_file(pair.key, "KPR_DECRYPTION_KEYS")
            _readable_file(pair.cert, "KPR_DECRYPTION_KEYS")
        for anchor in self.trust_anchors:
            _readable_file(anchor, "KPR_TRUST_ANCHORS")
        if self.crl_dir is not None and not self.crl_dir.is_dir():
            raise ValueError(f"KPR_CRL_DIR: {self.crl_dir} is not a directory")
        if (self.signing_key is None) != (self.signing_cert is None):
            raise ValueError("KPR_SIGNING_KEY and KPR_SIGNING_CERT must be set together")
        if self.env is Env.PRODUCTION:
            self._refuse_dev_defaults()
        return self

    def _refuse_dev_defaults(self) -> None:
        problems = []
        if self.database_url.startswith("sqlite"):
            problems.append("KPR_DATABASE_URL must point at PostgreSQL in production")
        if self.signing_key is None:
            problems.append("KPR_SIGNING_KEY/KPR_SIGNING_CERT must be set in production")
        elif self._inside_dev_pki(self.signing_key):
            problems.append("KPR_SIGNING_KEY must not be a development PKI key in production")
        if not self.decryption_keys:
            problems.append("KPR_DECRYPTION_KEYS must be set in production")
        elif any(self._inside_dev_pki(p.key) for p in self.decryption_keys):
            problems.append("KPR_DECRYPTION_KEYS must not be development PKI keys in production")
        if not self.register_keys or self.register_hmac_key is None:
            problems.append("KPR_REGISTER_KEYS and KPR_REGISTER_HMAC_KEY must be set in production")
        elif any(self._inside_dev_pki(p) for _, p in self.register_keys):
            problems.append("KPR_REGISTER_KEYS must not be development keys in production")
        if not self.smtp_host:
            problems.append("KPR_SMTP_HOST must be set in production")
        if "127.0.0.1" in self.public_base_url or "localhost" in self.public_base_url:
            problems.append("KPR_PUBLIC_BASE_URL must be the public address in production")
        if self.mail_from.endswith("@localhost"):
            problems.append("KPR_MAIL_FROM must be a real address in production")
        if problems:
            raise ValueError("production refuses development defaults: " + "; ".join(problems))

    def _inside_dev_pki(self, path: Path) -> bool:
        return self.pki_dir.resolve() in path.resolve().parents

    # --- operations (issue 12) ----------------------------------------------------------------
    # CRLs fetched from the certificates' distribution points (and these extra URLs), cached
    # on disk, refreshed halfway to nextUpdate and at least every KPR_CRL_REFRESH_SECONDS.
    crl_urls: Annotated[tuple[str, ...], NoDecode] = ()
    crl_cache_dir: Path = Path("var/crl-cache")
    crl_refresh_seconds: int = Field(default=3600, gt=0)
    crl_retry_seconds: int = Field(default=300, gt=0)
    crl_fetch_timeout_seconds: float = Field(default=10.0, gt=0)
    # Every KEY.key with its KEY.crt in this directory is a live decryption key (rollover:
    # drop the new pair in, SIGHUP; remove the old one later, SIGHUP).
    decryption_keys_dir: Path | None = None
    # Messages in progress at SIGTERM may finish for this long (`kpr-mottak serve`).
    shutdown_grace_seconds: int = Field(default=30, ge=0)
    # Written at start-up with the server's pid, for `kpr-mottak keys reload`.
    pid_file: Path | None = None

    @field_validator("crl_urls", mode="before")
    @classmethod
    def _crl_urls(cls, value: object) -> object:
        if isinstance(value, str):
            urls = tuple(u.strip() for u in value.split(",") if u.strip())
            for url in urls:
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"KPR_CRL_URLS: '{url}' is not an http(s) URL")
            return urls
        return value

    @field_validator("decryption_keys_dir", "pid_file", mode="before")
    @classmethod
    def _empty_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # --- the register store (issue 19, docs/register.md) ---
    # Application keys for identifiers at rest: `ID=FILE,ID=FILE`, the first one encrypts
    # (the others only decrypt, until `kpr-mottak register rotate-key` has re-encrypted).
    register_keys: Annotated[tuple[tuple[str, Path], ...], NoDecode] = ()
    # The keyed hash (HMAC-SHA-256) for joins and look-ups of identifiers.
    register_hmac_key: Path | None = None
    # Environments whose data KPR's loader takes: nothing there is removed by retention
    # before the loader has confirmed it.
    register_environments: Annotated[tuple[str, ...], NoDecode] = ("production",)

    @field_validator("register_keys", mode="before")
    @classmethod
    def _register_keys(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: list[tuple[str, Path]] = []
        for item in (p.strip() for p in value.split(",")):
            if not item:
                continue
            kid, sep, path = item.partition("=")
            if not sep or not kid.strip() or not path.strip():
                raise ValueError(f"KPR_REGISTER_KEYS: '{item}' is not ID=KEYFILE (comma-separated)")
            pairs.append((kid.strip(), Path(path.strip())))
        if len({kid for kid, _ in pairs}) != len(pairs):
            raise ValueError("KPR_REGISTER_KEYS: a key id is named twice")
        return tuple(pairs)

    @field_validator("register_environments", mode="before")
    @classmethod
    def _register_environments(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        names = tuple(e.strip() for e in value.split(",") if e.strip())
        known = {e.value for e in ReceiverEnvironment}
        for name in names:
            if name not in known:
                raise ValueError(
                    f"KPR_REGISTER_ENVIRONMENTS: '{name}' is not one of {sorted(known)}"
                )
        return names

    @field_validator("register_hmac_key", mode="before")
    @classmethod
    def _register_hmac_key(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # Retention (docs/operations.md, "Retention"): days after receipt; 0 keeps for ever.
    retention_raw_days: int = Field(default=90, ge=0)
    retention_findings_days: int = Field(default=400, ge=0)
    retention_history_days: int = Field(default=1095, ge=0)
    # The server applies retention this often (hours; 0: only `kpr-mottak retention run`).
    retention_interval_hours: float = Field(default=24.0, ge=0)
    # The open feedback's aggregates are refreshed this often (seconds; 0: only
    # `kpr-mottak feedback refresh`, e.g. from cron).
    feedback_refresh_seconds: float = Field(default=300.0, ge=0)

    # --- safe defaults (issue 20, docs/operations.md "Safe defaults") ---
    # /docs, /redoc and /openapi.json; false closes them (404), e.g. on an Internet-facing
    # instance. The API itself is unchanged.
    public_docs: bool = True
    # When set, /metrics answers only `Authorization: Bearer <this token>` (401 otherwise).
    metrics_token: SecretStr | None = None

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _metrics_token(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def env_explicit(self) -> bool:
        """KPR_ENV given (environment, .env or a constructor), not the dev default."""
        return "env" in self.model_fields_set

    # --- outbound HTTP and revocation fetches (issue 20, app/outbound.py) ---
    # Loopback, private and link-local targets for outbound HTTP (CRLs, OCSP): unset means
    # allowed only with KPR_ENV=dev (the dev PKI's distribution points are on loopback).
    outbound_allow_private: bool | None = None
    # CAs trusted for outbound HTTPS besides the public bundle (PEM), e.g. those of the senders'
    # reply endpoints on the health network (issue 26).
    outbound_ca_file: Path | None = None
    # The largest CRL and OCSP answer read (Content-Length first, then the body is cut).
    crl_max_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    ocsp_max_bytes: int = Field(default=64 * 1024, gt=0)

    @field_validator("outbound_allow_private", mode="before")
    @classmethod
    def _outbound_allow_private(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("outbound_ca_file", mode="before")
    @classmethod
    def _outbound_ca_file_blank(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("outbound_ca_file")
    @classmethod
    def _outbound_ca_file(cls, value: Path | None) -> Path | None:
        return None if value is None else _readable_file(value, "KPR_OUTBOUND_CA_FILE")

    @property
    def outbound_private_allowed(self) -> bool:
        if self.outbound_allow_private is None:
            return self.env is Env.DEV
        return self.outbound_allow_private

    # --- replies as the sender's CPA asks (issue 26, app/replies, docs/architecture.md) ---
    # A reply the CPA wants as a message of its own (syncReplyMode "none") is tried again
    # after the CPA's RetryInterval, doubled per failure, at most this many seconds apart...
    reply_retry_max_seconds: int = Field(default=900, gt=0)
    # ...for the CPA's Retries; then this often until delivered or an operator resends.
    reply_slow_retry_seconds: int = Field(default=3600, gt=0)
    # One delivery (connect, send, the endpoint's answer) within this.
    reply_timeout_seconds: float = Field(default=30.0, gt=0)

    # --- NHN's registries (issue 23, app/registries, docs/operations.md "Registries") ---
    # Unset KPR_AR_URL: offline (file imports and `parties add` only), the default.
    ar_url: str | None = None
    ar_kind: Literal["soap", "rest"] = "soap"
    cppa_url: str | None = None
    # SOAP AR: a file "username:password" (HTTP Basic). REST AR: a JSON file with
    # token_url, client_id, client_secret (and scope) for HelseID client credentials.
    ar_credentials_file: Path | None = None
    registry_cache_seconds: int = Field(default=3600, gt=0)
    registry_timeout_seconds: float = Field(default=10.0, gt=0)
    registry_concurrency: int = Field(default=4, gt=0)
    registry_max_bytes: int = Field(default=4 * 1024 * 1024, gt=0)

    @field_validator("ar_url", "cppa_url", "ar_credentials_file", mode="before")
    @classmethod
    def _registry_blank(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ar_credentials_file")
    @classmethod
    def _ar_credentials_file(cls, value: Path | None) -> Path | None:
        return None if value is None else _readable_file(value, "KPR_AR_CREDENTIALS_FILE")

    # --- request bodies being received (issue 20, hole 7: docs/operations.md "Request
    # bodies") --- checked before a byte of a POST /ebms body is spooled; past a limit the
    # answer is 503 with Retry-After and the body is not read.
    # Bodies being received at once (from the first byte to the last).
    max_receiving_bodies: int = Field(default=32, gt=0)
    # All spooled bodies together, from the first byte until their answer: a declared
    # Content-Length is reserved whole, a chunked body as it grows (cut past the budget).
    spool_budget_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    # The whole body must arrive within this (408 and its spool removed otherwise).
    body_timeout_seconds: float = Field(default=120.0, gt=0)
    # Where bodies past 1 MiB are spooled (files `kpr-body-*.part`, removed when the request
    # ends); empty: the system's temporary directory.
    spool_dir: Path | None = None

    @field_validator("spool_dir", mode="before")
    @classmethod
    def _spool_dir(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _spool_budget(self) -> Settings:
        if self.spool_budget_bytes < self.max_message_bytes:
            raise ValueError(
                f"KPR_SPOOL_BUDGET_BYTES ({self.spool_budget_bytes}) is smaller than "
                f"KPR_MAX_MESSAGE_BYTES ({self.max_message_bytes}): a message of the largest "
                "allowed size could never be received"
            )
        return self

    # --- AMQP 1.0 through NHN's Tjenestebuss (issue 24, docs/amqp.md) ---
    # amqp(s)://user:password@host:port/namespace; empty: no AMQP receiver runs.
    amqp_url: str | None = None
    # HER-ids whose `{her}_async` and `{her}_sync` queues KPR consumes (comma-separated).
    amqp_queues: Annotated[tuple[int, ...], NoDecode] = ()
    # The CA bundle that verifies the broker's TLS certificate (amqps://).
    amqp_ca_file: Path | None = None
    # Link credit: how many unsettled messages the broker may push at once.
    amqp_credit: int = Field(default=8, gt=0, le=1000)

    @field_validator("amqp_queues", mode="before")
    @classmethod
    def _amqp_queues(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return tuple(int(v.strip()) for v in value.split(",") if v.strip())
            except ValueError:
                raise ValueError(f"KPR_AMQP_QUEUES: '{value}' is not a list of HER-ids") from None
        return value

    @field_validator("amqp_url", "amqp_ca_file", mode="before")
    @classmethod
    def _amqp_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # --- EDI: ebXML over SMTP (issue 25, docs/operations.md "EDI") ---
    # ADDRESS=imaps://USER@HOST:PORT/FOLDER or ADDRESS=pop3s://USER@HOST:PORT (each with
    # ?environment=... outside NHN's domains), comma-separated; empty: no EDI.
    edi_mailboxes: Annotated[tuple[EdiMailbox, ...], NoDecode] = ()
    # ADDRESS:PASSWORD lines, one per mailbox (NHN's meldingskonto passwords).
    edi_credentials_file: Path | None = None
    # The CA bundle that verifies the IMAP, POP3 and SMTP servers' TLS certificates.
    edi_ca_file: Path | None = None
    edi_poll_seconds: float = Field(default=30.0, gt=0)
    # ADDRESS=lmtp://HOST:PORT (or smtp://), comma-separated: mail the site's MTA hands over
    # directly, answered 250 only once its outcome is committed; empty: no listener.
    edi_listen: Annotated[tuple[EdiMailbox, ...], NoDecode] = ()
    # The relay our replies leave by: smtps://HOST:465, smtp+starttls://HOST:587.
    edi_smtp_url: str | None = None
    # One line USERNAME:PASSWORD for the relay, when it wants a login.
    edi_smtp_credentials_file: Path | None = None

    @field_validator(
        "edi_credentials_file",
        "edi_ca_file",
        "edi_smtp_url",
        "edi_smtp_credentials_file",
        mode="before",
    )
    @classmethod
    def _edi_blank(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("edi_mailboxes", mode="before")
    @classmethod
    def _edi_mailboxes(cls, value: object) -> object:
        return parse_mailboxes(value) if isinstance(value, str) else value

    @field_validator("edi_listen", mode="before")
    @classmethod
    def _edi_listen(cls, value: object) -> object:
        return parse_listen(value) if isinstance(value, str) else value

    @field_validator("edi_smtp_url")
    @classmethod
    def _edi_smtp_url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_relay(value)
        return value

    @field_validator("edi_credentials_file", "edi_ca_file", "edi_smtp_credentials_file")
    @classmethod
    def _edi_files(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        key = f"KPR_{(info.field_name or '').upper()}"
        return None if value is None else _readable_file(value, key)

    @model_validator(mode="after")
    def _edi_environments(self) -> Settings:
        served = {env.value for env in self.receivers.values()}
        for box in (*self.edi_mailboxes, *self.edi_listen):
            if box.environment not in served:
                key = "KPR_EDI_MAILBOXES" if box in self.edi_mailboxes else "KPR_EDI_LISTEN"
                raise ValueError(
                    f"{key}: {box.address} serves {box.environment}, but "
                    f"KPR_RECEIVERS has no HER-id of that environment"
                )
        if self.edi_mailboxes and self.edi_credentials_file is None:
            raise ValueError("KPR_EDI_MAILBOXES needs KPR_EDI_CREDENTIALS_FILE (the passwords)")
        return self
