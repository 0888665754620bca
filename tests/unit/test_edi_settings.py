"""The EDI channel's settings: mailbox URLs, the relay, credentials files (issue 25)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.platform.mailboxes import (
    parse_listen,
    parse_mailbox,
    parse_mailboxes,
    parse_relay,
    read_credentials,
)
from app.platform.settings import Settings


def test_an_nhn_address_takes_its_environment_from_the_domain() -> None:
    box = parse_mailbox("KPR@edi.nhn.no=imaps://kpr@mail.edi.nhn.no/INBOX")
    assert (box.address, box.host, box.port, box.username, box.folder, box.tls) == (
        "kpr@edi.nhn.no",
        "mail.edi.nhn.no",
        993,
        "kpr",
        "INBOX",
        True,
    )
    assert box.environment == "production"
    assert parse_mailbox("kpr@testedi.nhn.no=imaps://u@h:1993/X").environment == "test"


def test_another_address_names_its_environment_on_the_url() -> None:
    box = parse_mailbox("kpr@pilot.example=imap://k%40p@127.0.0.1:1143/?environment=pilot")
    assert (box.environment, box.username, box.folder, box.tls) == ("pilot", "k@p", "INBOX", False)


def test_a_pop3_mailbox_has_no_folder_and_pop3s_by_default() -> None:
    box = parse_mailbox("kpr@edi.nhn.no=pop3s://kpr@mail.edi.nhn.no")
    assert (box.protocol, box.host, box.port, box.username, box.tls) == (
        "pop3",
        "mail.edi.nhn.no",
        995,
        "kpr",
        True,
    )
    assert parse_mailbox("kpr@edi.nhn.no=pop3s://kpr@h:1995/").port == 1995
    plain = parse_mailbox("kpr@pilot.example=pop3://kpr@127.0.0.1:1110?environment=pilot")
    assert (plain.protocol, plain.port, plain.tls, plain.environment) == (
        "pop3",
        1110,
        False,
        "pilot",
    )
    assert parse_mailbox("kpr@edi.nhn.no=imaps://kpr@h/INBOX").protocol == "imap"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("kpr@edi.nhn.no", "not ADDRESS="),
        ("kpr@edi.nhn.no=pop3://u@mail.example", "plain pop3:// only to a server on loopback"),
        ("kpr@edi.nhn.no=pop3s://u@mail.example/INBOX", "POP3 has no folders"),
        ("kpr@edi.nhn.no=pop3s://mail.example", "pop3s://USER@HOST"),
        ("kpr@edi.nhn.no=pop3s://u:secret@mail.example", "no password in the URL"),
        ("kpr@edi.nhn.no=https://u@h/INBOX", "imaps://"),
        ("kpr@edi.nhn.no=imaps://h/INBOX", "imaps://"),
        ("kpr@edi.nhn.no=imaps://u:secret@h/INBOX", "no password in the URL"),
        ("kpr@edi.nhn.no=imap://u@mail.example/INBOX", "loopback"),
        ("kpr@other.example=imaps://u@h/INBOX", "environment"),
        ("kpr@other.example=imaps://u@h/INBOX?environment=staging", "one of"),
        ("kpr@edi.nhn.no=imaps://u@h:99999/INBOX", "port"),
    ],
)
def test_a_bad_mailbox_entry_is_named(entry: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_mailbox(entry)


def test_an_address_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="named twice"):
        parse_mailboxes("a@edi.nhn.no=imaps://u@h/I, A@edi.nhn.no=imaps://v@h/I")


def test_the_relay_url() -> None:
    assert parse_relay("smtps://relay.example").port == 465
    relay = parse_relay("smtp+starttls://relay.example:2587")
    assert (relay.port, relay.starttls, relay.tls) == (2587, True, False)
    assert parse_relay("smtp://127.0.0.1:2525").tls is False
    for bad in ("smtp://relay.example", "http://x", "smtps://u:p@relay.example"):
        with pytest.raises(ValueError, match="KPR_EDI_SMTP_URL"):
            parse_relay(bad)


def test_credentials_lines() -> None:
    text = "# NHN\nkpr@edi.nhn.no:pa:ss word\n\n"
    assert read_credentials(text, "K") == {"kpr@edi.nhn.no": "pa:ss word"}
    with pytest.raises(ValueError, match="line 1 is not NAME:PASSWORD"):
        read_credentials("no-colon\n", "K")


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, pki_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_a_mailbox_of_an_environment_without_receivers_stops_start_up(tmp_path: Path) -> None:
    secrets = tmp_path / "edi.secrets"
    secrets.write_text("kpr@edi.nhn.no:pw\n")
    with pytest.raises(ValidationError, match="KPR_RECEIVERS has no HER-id"):
        _settings(
            tmp_path,
            receivers="131725=pilot",
            edi_mailboxes="kpr@edi.nhn.no=imaps://kpr@mail.example/INBOX",
            edi_credentials_file=str(secrets),
        )
    ok = _settings(
        tmp_path,
        receivers="131725=pilot,122612=production",
        edi_mailboxes="kpr@edi.nhn.no=imaps://kpr@mail.example/INBOX",
        edi_credentials_file=str(secrets),
    )
    assert ok.edi_mailboxes[0].environment == "production"


def test_mailboxes_need_the_credentials_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="KPR_EDI_CREDENTIALS_FILE"):
        _settings(
            tmp_path,
            receivers="122612=production",
            edi_mailboxes="kpr@edi.nhn.no=imaps://kpr@mail.example/INBOX",
        )
    with pytest.raises(ValidationError, match="KPR_EDI_CREDENTIALS_FILE: file"):
        _settings(tmp_path, edi_credentials_file=str(tmp_path / "missing"))


def test_a_listen_entry_names_its_protocol_port_and_environment() -> None:
    [box] = parse_listen("KPR@edi.nhn.no=lmtp://127.0.0.1:2424")
    assert (box.address, box.host, box.port, box.folder, box.environment) == (
        "kpr@edi.nhn.no",
        "127.0.0.1",
        2424,
        "lmtp",
        "production",
    )


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("kpr@edi.nhn.no=imap://127.0.0.1:2424", "lmtp://HOST:PORT"),
        ("kpr@edi.nhn.no=lmtp://127.0.0.1", "name the port"),
        ("kpr@other.example=smtp://127.0.0.1:25", "environment"),
        ("kpr@edi.nhn.no=lmtp://a:1,kpr@edi.nhn.no=lmtp://a:2", "named twice"),
    ],
)
def test_a_bad_listen_entry_is_named(entry: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_listen(entry)
