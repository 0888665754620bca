"""The Helsenorge-style dev sender without a broker: its own CMS opens with the receiver's
code, its message carries Helsenorge's properties; with no broker it says so (exit 2), and
`amqp setup` fails clearly."""

from __future__ import annotations

from pathlib import Path

import pika.exceptions
import pytest

from app.amqp import devsender
from app.amqp.envelope import CONTENT_TYPE, check
from app.amqp.link import from_proton
from app.amqp.setup import declare
from app.cli.amqp import send_amqp
from app.dev.devpki import DevPki
from app.platform.settings import Settings
from app.security import cms

AWAY = "amqp://guest:guest@127.0.0.1:1"


def test_signed_then_encrypted_and_addressed(settings_with_pki: Settings, pki: DevPki) -> None:
    body = devsender.protect(b"<MsgHead/>", settings_with_pki.pki_dir)
    opened = cms.decrypt_enveloped(body, [pki.kpr.encryption])
    assert opened.content is not None
    signed = cms.verify_signed_data(opened.content)
    assert signed.content == b"<MsgHead/>"
    assert signed.signer == pki.municipality.signing.certificate
    envelope, sent = from_proton(
        devsender.message(body, from_her="8000001", to_her="134197", subject="KPR_IPL")
    )
    assert sent == body
    assert envelope.to == "134197_async"
    assert envelope.content_type == CONTENT_TYPE
    assert check(envelope, len(body), 10**6) is None


def test_no_broker_is_exit_2(settings_with_pki: Settings, tmp_path: Path) -> None:
    msghead = tmp_path / "m.xml"
    msghead.write_bytes(b"<MsgHead/>")
    assert send_amqp(msghead, AWAY, "8000001", "134197", settings_with_pki.pki_dir, 1.0) == 2
    missing = tmp_path / "no-pki"
    assert send_amqp(msghead, AWAY, "8000001", "134197", missing, 1.0) == 2


def test_setup_without_a_broker_raises() -> None:
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        declare("amqp://guest:guest@127.0.0.1:1/ns", [1])
