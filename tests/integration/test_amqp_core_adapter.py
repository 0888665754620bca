"""The adapter between the AMQP inbox and the intake core's seam: the payload handed over,
the outcome turned into an AppRec (signed, then encrypted to the sender), an error or a
retry. The core here answers a fixed outcome (the stand-in until `IntakeCore.process` is
implemented on the core-seam branch)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.amqp.conditions import ErrorCondition
from app.amqp.core_adapter import CoreAdapter, error_condition, received_payload, refusal_of
from app.amqp.core_port import InboxMessage, Verdict
from app.amqp.envelope import CONTENT_TYPE, Envelope, Refusal
from app.cli.root import app as cli
from app.core.findings import Finding
from app.dev.devpki import DevPki
from app.intake.received import CoreOutcome, OutcomeKind, PayloadProtection, ReceivedPayload
from app.keyring import load_keyring
from app.msghead import rules as msghead_rules
from app.platform.metrics import Metrics
from app.platform.settings import Settings
from app.security import cms
from app.security import rules as security_rules
from app.security.signed_data import NO_SIGNER_CERTIFICATE
from app.state import AppState


class Answers:
    def __init__(self, outcome: CoreOutcome) -> None:
        self.outcome = outcome
        self.seen: list[ReceivedPayload] = []

    async def process(self, received: ReceivedPayload) -> CoreOutcome:
        self.seen.append(received)
        return self.outcome


def _message(from_her: int) -> InboxMessage:
    application = {
        "fromHerId": str(from_her),
        "toHerId": "134197",
        "applicationTimeStamp": "2026-12-05T22:50:00Z",
        "cpaId": "cpa-7",
    }
    envelope = Envelope("m-1", "134197_async", "KPR_IPLOS", None, None, CONTENT_TYPE, application)
    return InboxMessage(5, "134197_async", envelope, b"\x30\x80payload")


@pytest.fixture
def state(settings_with_pki: Settings, sessions: async_sessionmaker[AsyncSession]) -> AppState:
    return AppState(
        settings=settings_with_pki,
        engine=None,  # type: ignore[arg-type]
        sessions=sessions,
        metrics=Metrics(),
        keyring=load_keyring(settings_with_pki),
    )


def test_the_payload_handed_to_the_core() -> None:
    received = received_payload(_message(8000001))
    assert received.transport == "amqp"
    assert received.protection is PayloadProtection.CMS_SIGNED_ENVELOPED
    assert (received.from_her_id, received.to_her_id, received.cpa_id) == (
        "8000001",
        "134197",
        "cpa-7",
    )
    assert received.transport_message_id == "m-1"
    assert received.payload == b"\x30\x80payload"
    assert received.audit.details["queue"] == "134197_async"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("abuse:spoofing-attack", ErrorCondition.SPOOFING_ATTACK),
        ("cert-revoked", ErrorCondition.REVOKED_CERTIFICATE),
        ("certificate-expired", ErrorCondition.EXPIRED_CERTIFICATE),
        ("DecryptionFailed", ErrorCondition.INVALID_CERTIFICATE),
        ("SenderMismatch-spoofing", ErrorCondition.SPOOFING_ATTACK),
        ("NotWellFormedXml", ErrorCondition.NOT_WELL_FORMED_XML),
        ("unsupported", ErrorCondition.UNSUPPORTED_MESSAGE),
        ("NotAuthenticated", ErrorCondition.INVALID_FIELD_VALUE),
        (None, ErrorCondition.INVALID_FIELD_VALUE),
    ],
)
def test_conditions_map_to_helsenorges(condition: str | None, expected: ErrorCondition) -> None:
    assert error_condition(condition) is expected


async def test_an_answer_is_signed_then_encrypted_to_the_sender(
    state: AppState, demo_party: int, pki: DevPki
) -> None:
    apprec = b"<AppRec/>"
    core = Answers(CoreOutcome(kind=OutcomeKind.ANSWERED, message_id=None, apprec=apprec))
    outcome = await CoreAdapter(core, state).process(_message(demo_party))
    assert outcome.verdict is Verdict.APPREC
    assert outcome.apprec is not None
    opened = cms.decrypt_enveloped(outcome.apprec, [pki.municipality.encryption])
    assert opened.content is not None
    signed = cms.verify_signed_data(opened.content)
    assert signed.content == apprec
    assert signed.signer == pki.kpr.signing.certificate


async def test_without_an_encryption_certificate_the_answer_is_only_signed(
    state: AppState,
) -> None:
    core = Answers(CoreOutcome(kind=OutcomeKind.DUPLICATE, message_id=None, apprec=b"<A/>"))
    outcome = await CoreAdapter(core, state).process(_message(12345))
    assert outcome.apprec is not None
    assert cms.verify_signed_data(outcome.apprec).content == b"<A/>"


async def test_refused_and_temporary(state: AppState) -> None:
    refused = CoreOutcome(
        kind=OutcomeKind.REFUSED,
        message_id=None,
        findings=(Finding(security_rules.MSG_CERT_REVOKED, "CMS", "tilbakekalt"),),
        condition="NotAuthenticated",
        reason="Kontroller avsenders HER-id, signatur og sertifikat.",
    )
    outcome = await CoreAdapter(Answers(refused), state).process(_message(1))
    assert outcome.verdict is Verdict.ERROR
    assert outcome.refusal is not None
    assert outcome.refusal.condition is ErrorCondition.REVOKED_CERTIFICATE
    assert outcome.refusal.description == security_rules.MSG_CERT_REVOKED.text_no
    later = CoreOutcome(kind=OutcomeKind.TEMPORARY, message_id=None, reason="crl offline")
    outcome = await CoreAdapter(Answers(later), state).process(_message(1))
    assert (outcome.verdict, outcome.reason) == (Verdict.RETRY, "crl offline")


def test_signed_data_without_the_signers_certificate_is_a_missing_certificate() -> None:
    finding = Finding(security_rules.MSG_SIG_MALFORMED, "CMS SignedData", NO_SIGNER_CERTIFICATE)
    refused = CoreOutcome(kind=OutcomeKind.REFUSED, message_id=None, findings=(finding,))
    assert refusal_of(refused).condition is ErrorCondition.MISSING_CERTIFICATE


async def test_a_msghead_sender_not_the_from_her_id_is_spoofing(state: AppState) -> None:
    """Stored with its AppRec by the core, but Helsenorge's answer is the error, no AppRec."""
    finding = Finding(msghead_rules.SENDER_NOT_EBXML_FROM, "MsgHead", "HER-id 1 mot 2")
    answered = CoreOutcome(
        kind=OutcomeKind.ANSWERED, message_id=None, apprec=b"<A/>", findings=(finding,)
    )
    outcome = await CoreAdapter(Answers(answered), state).process(_message(1))
    assert outcome.verdict is Verdict.ERROR
    assert outcome.refusal == Refusal(
        ErrorCondition.SPOOFING_ATTACK,
        "Avsenderens HER-id i meldingshodet (MsgHead) er ikke fromHerId 1 som meldingen er "
        "sendt med. De skal være like.",
    )


def test_the_cli_needs_a_broker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.delenv("KPR_AMQP_URL", raising=False)
    for command in (["amqp", "setup"], ["amqp", "listen"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2
        assert "KPR_AMQP_URL" in result.output
