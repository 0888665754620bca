"""Settings are validated at start-up with a message naming each bad value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from app.platform.db import create_engine
from app.platform.settings import Env, ReceiverEnvironment, Settings


def make(**kwargs: object) -> Settings:
    return Settings(_env_file=None, **kwargs)  # type: ignore[arg-type]


def test_defaults_are_the_pilot_receiver_on_sqlite() -> None:
    s = make()
    assert s.env is Env.DEV
    assert s.receivers == {131725: ReceiverEnvironment.PILOT}
    assert s.database_url == "sqlite+aiosqlite:///./var/kpr.db"
    assert s.max_message_bytes == 50 * 1024 * 1024
    assert s.apprec_version == "1.1"


def test_sqlite_is_synchronous_full_unless_the_settings_say_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert make().sqlite_synchronous == "FULL"
    monkeypatch.setenv("KPR_SQLITE_SYNCHRONOUS", "OFF")
    assert Settings(_env_file=None).sqlite_synchronous == "OFF"
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        make(sqlite_synchronous="EXTRA")


async def test_the_engine_sets_the_synchronous_mode_on_each_connection(tmp_path: Path) -> None:
    for mode, pragma in (("FULL", 2), ("NORMAL", 1), ("OFF", 0)):
        url = f"sqlite+aiosqlite:///{tmp_path / mode}.db"
        engine = create_engine(url, sqlite_synchronous=mode)  # type: ignore[arg-type]
        try:
            async with engine.connect() as conn:
                assert await conn.scalar(text("PRAGMA synchronous")) == pragma
        finally:
            await engine.dispose()
    assert create_engine(f"sqlite+aiosqlite:///{tmp_path}/d.db").url.database  # FULL: default
    with pytest.raises(ValueError, match="not allowed"):
        create_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db", sqlite_synchronous="OFF; --")  # type: ignore[arg-type]


def test_receivers_parse_several_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPR_RECEIVERS", "131725=pilot, 171479=test,122612=production")
    s = Settings(_env_file=None)
    assert s.receivers[171479] is ReceiverEnvironment.TEST
    assert s.receivers[122612] is ReceiverEnvironment.PRODUCTION


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("KPR_RECEIVERS", "131725=qa", "unknown receiver environment 'qa'"),
        ("KPR_RECEIVERS", "abc=pilot", "is not HERID=ENVIRONMENT"),
        ("KPR_RECEIVERS", "", "at least one HER-id"),
        ("KPR_APPREC_VERSION", "1.2", "'1.2' is not supported"),
        ("KPR_DATABASE_URL", "mysql://x", "use sqlite+aiosqlite"),
        ("KPR_MAX_MESSAGE_BYTES", "0", "greater than 0"),
        ("KPR_REPORTING_CALENDAR", "{not json", "not valid JSON"),
        ("KPR_SIGNING_KEY", "/no/such/key.pem", "does not exist"),
        ("KPR_DECRYPTION_KEYS", "only-a-key.pem", "is not KEYFILE=CERTFILE"),
        ("KPR_TRUST_ANCHORS", "/no/such/ca.pem", "KPR_TRUST_ANCHORS: file"),
        ("KPR_CRL_DIR", "/no/such/dir", "is not a directory"),
        ("KPR_ENV", "staging", "Input should be"),
    ],
)
def test_bad_values_get_a_specific_message(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(_env_file=None)


def test_unreadable_key_file_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("x")
    key.chmod(0)
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    try:
        import os

        if os.geteuid() == 0:  # root reads anything; a directory is unreadable as a file
            key.chmod(0o600)
            key.unlink()
            key.mkdir()
        with pytest.raises(ValidationError, match="KPR_SIGNING_KEY"):
            make(signing_key=key, signing_cert=cert)
    finally:
        key.chmod(0o700)


def test_signing_key_needs_its_certificate(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("x")
    with pytest.raises(ValidationError, match="must be set together"):
        make(signing_key=key)


def test_production_refuses_development_defaults() -> None:
    with pytest.raises(ValidationError) as info:
        make(env=Env.PRODUCTION)
    text = str(info.value)
    for expected in (
        "PostgreSQL",
        "KPR_SIGNING_KEY",
        "KPR_DECRYPTION_KEYS",
        "KPR_SMTP_HOST",
        "KPR_PUBLIC_BASE_URL",
        "KPR_MAIL_FROM",
        "KPR_REGISTER_KEYS",
    ):
        assert expected in text


def test_production_refuses_dev_pki_keys(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    key, cert = pki / "kpr-sign.key", pki / "kpr-sign.crt"
    key.write_text("k")
    cert.write_text("c")
    with pytest.raises(ValidationError, match="must not be a development PKI key"):
        make(
            env=Env.PRODUCTION,
            pki_dir=pki,
            signing_key=key,
            signing_cert=cert,
            database_url="postgresql+asyncpg://db/kpr",
            smtp_host="smtp",
        )


def test_production_accepts_a_complete_configuration(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("s.key", "s.crt", "d.key", "d.crt", "r1.key", "hmac.key"):
        (keys / name).write_text("x")
    s = make(
        env=Env.PRODUCTION,
        pki_dir=tmp_path / "pki",
        database_url="postgresql+asyncpg://kpr@db/kpr",
        signing_key=keys / "s.key",
        signing_cert=keys / "s.crt",
        decryption_keys=f"{keys / 'd.key'}={keys / 'd.crt'}",
        smtp_host="smtp.example",
        mail_from="kpr@fhi.example",
        public_base_url="https://kpr-mottak.example",
        register_keys=f"r1={keys / 'r1.key'}",
        register_hmac_key=keys / "hmac.key",
    )
    assert s.env is Env.PRODUCTION
    assert s.register_keys == (("r1", keys / "r1.key"),)
    assert s.decryption_keys[0].cert == keys / "d.crt"


def test_register_keys_are_id_equals_file_and_ids_unique(tmp_path: Path) -> None:
    s = make(register_keys=f"k2={tmp_path / 'a'}, k1={tmp_path / 'b'}")
    assert s.register_keys == (("k2", tmp_path / "a"), ("k1", tmp_path / "b"))
    with pytest.raises(ValidationError, match="not ID=KEYFILE"):
        make(register_keys=str(tmp_path / "a"))
    with pytest.raises(ValidationError, match="named twice"):
        make(register_keys=f"k1={tmp_path / 'a'},k1={tmp_path / 'b'}")


def test_register_environments_are_known_environments() -> None:
    assert make(register_environments="production, test").register_environments == (
        "production",
        "test",
    )
    with pytest.raises(ValidationError, match="KPR_REGISTER_ENVIRONMENTS"):
        make(register_environments="prod")
