"""What the ebXML layer checks and records of the ebMS header: the CPA, signals, and the
header's fields on the request's row."""

from __future__ import annotations

from collections.abc import Sequence

from app.core.findings import Finding
from app.core.xmlparse import xml_safe
from app.ebxml import rules as ebxml_rules
from app.ebxml.envelope import (
    ACTION_ACKNOWLEDGMENT,
    ACTION_MESSAGE_ERROR,
    EbmsHeader,
    first_her_id,
)
from app.intake import repository as repo
from app.intake import stages
from app.intake.ebms.request import IntakeRequest, Reply
from app.intake.outcome import Outcome
from app.models import Message, Party
from app.statuses import MessageStatus

# Signals are answered with nothing: never a MessageError to a MessageError (ebMS 2.0 §4.2).
SIGNAL_ACTIONS = frozenset({ACTION_ACKNOWLEDGMENT, ACTION_MESSAGE_ERROR})


def is_signal(header: EbmsHeader) -> bool:
    """An Acknowledgment or MessageError signal: the ones that are never answered."""
    return header.is_signal and header.action in SIGNAL_ACTIONS


def signal_refused(out: Outcome, findings: Sequence[Finding]) -> Reply:
    """A refused Acknowledgment or MessageError: stored, answered with nothing (ebMS 2.0:
    never a MessageError to a MessageError, and an Acknowledgment expects no answer)."""
    out.status = MessageStatus.SIGNAL_REFUSED
    out.findings.extend(findings)
    out.event("refused", rules=sorted({f.rule.id for f in findings}))
    return Reply(204, b"", "text/plain; charset=utf-8")


def cpa_findings(header: EbmsHeader, party: Party) -> list[Finding]:
    """The CPA named must be one of the party's, and allow the Service/Action."""
    if not party.cpas:
        return []
    her = first_her_id(header.from_party.party_ids)
    cpa = next((c for c in party.cpas if c.cpa_id == header.cpa_id), None)
    if cpa is None:
        return [
            Finding(
                ebxml_rules.CPA_UNKNOWN,
                "eb:MessageHeader/eb:CPAId",
                f"CPAId '{header.cpa_id}' er ikke en avtale for HER-id {her}. Bruk "
                "CPAId fra den avtalen KPR har registrert for avsenderen.",
            )
        ]
    if (
        not header.is_signal
        and cpa.service_actions
        and not any(
            sa.get("service") == header.service.value and sa.get("action") == header.action
            for sa in cpa.service_actions
        )
    ):
        return [
            Finding(
                ebxml_rules.SERVICE_NOT_ALLOWED,
                "eb:MessageHeader/eb:Action",
                f"Service '{header.service.value}' med Action '{header.action}' er ikke "
                f"avtalt i CPA '{cpa.cpa_id}'.",
            )
        ]
    return []


def fill_transport(message: Message, transport: stages.Transport) -> None:
    h = transport.header
    if h is not None:
        repo.record_header(
            message,
            ebms_message_id=h.message_id,
            conversation_id=h.conversation_id,
            ref_to_message_id=h.ref_to_message_id,
            cpa_id=h.cpa_id,
            service=h.service.value,
            action=h.action,
            from_her=first_her_id(h.from_party.party_ids),
            to_her=first_her_id(h.to_party.party_ids),
        )
    else:
        ctx = transport.reply_context
        repo.record_header(
            message,
            ebms_message_id=ctx.message_id,
            cpa_id=ctx.cpa_id,
            from_her=first_her_id(ctx.from_party_ids),
        )
    if transport.receiver is not None:
        message.environment = transport.receiver.environment


def record_arrival(out: Outcome, req: IntakeRequest, transport: stages.Transport) -> None:
    out.event_at(
        req.received_at,
        "received",
        size=len(req.body),
        soap_action=xml_safe(req.soap_action)[:100] if req.soap_action else None,
    )
    out.event("parsed", ok=transport.header is not None, findings=len(transport.findings))
