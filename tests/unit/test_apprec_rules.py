"""Per rule, the AppRec the server would send: status by consequence, the rule's 8221 code,
OT naming the rule (and the notification), never a fid, and valid against the official XSD.

The MsgHead path is the server's own (`stages.check_business` on a `wrap_in_msghead`'d
sample, receipt built with `original_from_msghead`/`receiver_from_msghead`); the bare path is
the content format's check plus `build_receipt`, as `kpr-mottak validate` does for a bare
`Melding`.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree

from app.apprec import (
    AppRec,
    AppRecStatus,
    AppRecVersion,
    OriginalMsgRef,
    Party,
    build_receipt,
    original_from_msghead,
    parse_apprec,
    receiver_from_msghead,
)
from app.content.iplos import FORMAT
from app.content.iplos.rules import RULES as IPLOS_RULES
from app.content.model import ContentContext, guid_key
from app.core.findings import Consequence, Finding, Rule
from app.dev.sample import COMPANIONS, build_sample, fault_context, wrap_in_msghead
from app.intake.stages import Business, HeadExpectations, check_business
from app.msghead import msgid_duplicate
from app.msghead import rules as mh

KOMMUNE = "0301"
SENDER_HER = 8000001
KPR_HER = 131725
SEED = 7
NOTIFICATIONS = 3
MSG_ID = "8b8148f6-b38a-488c-a65e-d389b74d0fb1"
GEN_DATE = datetime.datetime(2018, 2, 1, 12, 0)  # Oslo time: one hour before fault_context.now
KPR = Party(name="Helsedirektoratet KPR", her_id=str(KPR_HER))
FALLBACK_SENDER = Party(name="Avsender", her_id=str(SENDER_HER))
EBXML_MESSAGE_ID = "ebxml-1@epj.example"
EXPECTED_STATUS = {
    Consequence.REJECT_MESSAGE: AppRecStatus.REJECTED,
    Consequence.DROP_NOTIFICATION: AppRecStatus.OK_ERROR_IN_PART,
    Consequence.KEEP_WITH_ERROR: AppRecStatus.OK_ERROR_IN_PART,
    Consequence.WARN: AppRecStatus.OK,
}
ELEVEN_DIGITS = re.compile(r"(?<!\d)\d{11}(?!\d)")


@pytest.fixture(scope="module")
def official(reference_dir: Path) -> dict[AppRecVersion, etree.XMLSchema]:
    # Test-only: lxml's default parser reads the local imports (kith.xsd) of the official files.
    return {
        v: etree.XMLSchema(etree.parse(str(reference_dir / "xsd/kith" / f"apprec-v{v.value}.xsd")))
        for v in AppRecVersion
    }


def msghead_receipt(
    business: Business, findings: Sequence[Finding], now: datetime.datetime, v: AppRecVersion
) -> bytes:
    head = business.msghead
    return build_receipt(
        findings,
        sender=KPR,
        receiver=receiver_from_msghead(head, fallback=FALLBACK_SENDER),
        original=original_from_msghead(
            head, received_at=now, fallback_id=EBXML_MESSAGE_ID, fallback_type="KPR_IPL"
        ),
        now=now,
        version=v,
    )


def bare_receipt(findings: Sequence[Finding], now: datetime.datetime, v: AppRecVersion) -> bytes:
    return build_receipt(
        findings,
        sender=KPR,
        receiver=FALLBACK_SENDER,
        original=OriginalMsgRef(
            msg_type="KPR_IPL", msg_type_dn=None, issue_date="2018-02-01T12:00:00", id="fil"
        ),
        now=now,
        version=v,
    )


def server_check(
    msghead: bytes,
    context: ContentContext,
    *,
    ebxml_from_her: str | None = None,
    ebxml_to_her: str | None = None,
    party_her: str | None = None,
    our_her_ids: frozenset[str] = frozenset({str(KPR_HER)}),
) -> Business:
    expect = HeadExpectations(
        now=context.now,
        ebxml_from_her=ebxml_from_her,
        ebxml_to_her=ebxml_to_her,
        party_her=party_her,
        our_her_ids=our_her_ids,
        skew=timedelta(minutes=5),
    )
    return check_business(msghead, expect, context)


def fids_of(melding: bytes) -> set[str]:
    found = re.findall(rb'\bfid="([^"]*)"', melding)
    return {f.decode() for f in found if f}


def last_guid(melding: bytes) -> str:
    found: list[bytes] = re.findall(rb'notifikasjonGUID="([^"]*)"', melding)
    return guid_key(found[-1].decode())  # a malformed one by its key (IPL-XSD-VALUE)


def check_apprec(
    data: bytes,
    schema: etree.XMLSchema,
    rule: Rule,
    *,
    fids: set[str],
    guid: str | None = None,
    exclusive: bool = True,
) -> AppRec:
    """The receipt for a message that broke `rule` (and, when not `exclusive`, possibly other
    rules of the same consequence)."""
    assert schema.validate(etree.fromstring(data)), schema.error_log
    parsed = parse_apprec(data)  # and against our own schema
    assert parsed.status_code is EXPECTED_STATUS[rule.consequence]
    text = data.decode()
    for fid in fids:
        assert fid not in text
    if rule.consequence is Consequence.WARN:
        assert parsed.errors == ()
        return parsed
    ours = [e for e in parsed.errors if rule.id in (e.ot or "")]
    if exclusive:
        assert len(parsed.errors) == 1
    assert len(ours) == 1, [e.ot for e in parsed.errors]
    error = ours[0]
    assert error.code == rule.apprec_code
    assert error.system == "2.16.578.1.12.4.1.1.8221"
    assert not ELEVEN_DIGITS.search(error.ot or "")
    if rule.consequence is Consequence.REJECT_MESSAGE:
        assert (error.ot or "").startswith(f"{rule.id}: ")
    else:
        assert guid is not None
        assert f"notifikasjonGUID {guid}" in (error.ot or "")
    return parsed


# --- content rules -------------------------------------------------------------------------


@pytest.mark.parametrize("version", list(AppRecVersion), ids=lambda v: f"v{v.value}")
@pytest.mark.parametrize(
    "rule",
    # IPL-NOT-XML in a MsgHead is MSGHEAD-NOT-XML; rules with companions have their own tests
    [r for r in IPLOS_RULES if r.id != "IPL-NOT-XML" and r.id not in COMPANIONS],
    ids=lambda r: r.id,
)
def test_content_rule_in_a_msghead_gives_its_apprec(
    rule: Rule, version: AppRecVersion, official: dict[AppRecVersion, etree.XMLSchema]
) -> None:
    melding = build_sample(NOTIFICATIONS, KOMMUNE, (rule.id,), seed=SEED)
    context = fault_context(KOMMUNE, (rule.id,))
    msghead = wrap_in_msghead(melding, SENDER_HER, KPR_HER, MSG_ID, GEN_DATE)
    business = server_check(msghead, context)
    assert [f.rule.id for f in business.findings] == [rule.id]
    data = msghead_receipt(business, business.findings, context.now, version)
    parsed = check_apprec(
        data, official[version], rule, fids=fids_of(melding), guid=last_guid(melding)
    )
    assert parsed.original.id == MSG_ID
    assert parsed.original.msg_type == "KPR_IPL"
    assert parsed.receiver.id == str(SENDER_HER)
    assert parsed.sender.id == str(KPR_HER)


@pytest.mark.parametrize(
    "rule", [r for r in IPLOS_RULES if r.id not in COMPANIONS], ids=lambda r: r.id
)
def test_content_rule_in_a_bare_melding_gives_its_apprec(
    rule: Rule, official: dict[AppRecVersion, etree.XMLSchema]
) -> None:
    melding = build_sample(NOTIFICATIONS, KOMMUNE, (rule.id,), seed=SEED)
    context = fault_context(KOMMUNE, (rule.id,))
    result = FORMAT.check(melding, context)
    assert [f.rule.id for f in result.findings] == [rule.id]
    data = bare_receipt(result.findings, context.now, AppRecVersion.V1_1)
    check_apprec(
        data,
        official[AppRecVersion.V1_1],
        rule,
        fids=fids_of(melding),
        guid=last_guid(melding),
    )


def test_row_errors_name_brukernr_and_every_failing_notification(
    official: dict[AppRecVersion, etree.XMLSchema],
) -> None:
    faults = ("IPL-TJENESTETYPE-CODE", "IPL-FID-INVALID")
    melding = build_sample(NOTIFICATIONS, KOMMUNE, faults, seed=SEED)
    context = fault_context(KOMMUNE, faults)
    business = server_check(
        wrap_in_msghead(melding, SENDER_HER, KPR_HER, MSG_ID, GEN_DATE), context
    )
    data = msghead_receipt(business, business.findings, context.now, AppRecVersion.V1_1)
    assert official[AppRecVersion.V1_1].validate(etree.fromstring(data))
    parsed = parse_apprec(data)
    assert parsed.status_code is AppRecStatus.OK_ERROR_IN_PART
    # both faults sit in the same (last) notification: one Error naming both rules
    assert len(parsed.errors) == 1
    ot = parsed.errors[0].ot or ""
    assert "IPL-TJENESTETYPE-CODE" in ot
    assert "IPL-FID-INVALID" in ot
    assert f"notifikasjonGUID {last_guid(melding)}" in ot
    assert "brukerNr B" in ot
    assert parsed.errors[0].code == "T99"  # the code of the notification's first finding
    assert not any(fid in data.decode() for fid in fids_of(melding))


# 10 000 notifications in the second tier (`make test-all`), 1 000 in `make test`.
@pytest.mark.parametrize(
    "size",
    [pytest.param(1_000, id="1000"), pytest.param(10_000, id="10000", marks=pytest.mark.slow)],
)
def test_a_valid_sample_of_many_notifications_gets_status_1(
    official: dict[AppRecVersion, etree.XMLSchema], size: int
) -> None:
    melding = build_sample(size, KOMMUNE, seed=11)
    context = fault_context(KOMMUNE)
    business = server_check(
        wrap_in_msghead(melding, SENDER_HER, KPR_HER, MSG_ID, GEN_DATE), context
    )
    assert business.findings == ()
    assert business.content is not None
    assert len(business.content.notifications) == size
    data = msghead_receipt(business, business.findings, context.now, AppRecVersion.V1_1)
    assert official[AppRecVersion.V1_1].validate(etree.fromstring(data))
    parsed = parse_apprec(data)
    assert parsed.status_code is AppRecStatus.OK
    assert parsed.errors == ()


# --- MsgHead rules ---------------------------------------------------------------------------

Mutation = Callable[[bytes, bytes], bytes]


def _wrap(melding: bytes, **kwargs: object) -> bytes:
    receiver = kwargs.pop("receiver", KPR_HER)
    gen_date = kwargs.pop("gen_date", GEN_DATE)
    msg_type = kwargs.pop("msg_type", "KPR_IPL")
    assert not kwargs
    assert isinstance(receiver, int)
    assert isinstance(gen_date, datetime.datetime)
    assert isinstance(msg_type, str)
    return wrap_in_msghead(melding, SENDER_HER, receiver, MSG_ID, gen_date, msg_type=msg_type)


def _without_content(good: bytes) -> bytes:
    start = good.index(b"<Content>") + len(b"<Content>")
    return good[:start] + b"</Content></RefDoc></Document></MsgHead>\n"


GEN = b"<GenDate>2018-02-01T12:00:00</GenDate>"
MSGHEAD_CASES: dict[str, Mutation] = {
    "MSGHEAD-NOT-XML": lambda good, mel: b"dette er ikke XML",
    "MSGHEAD-NOT-MSGHEAD": lambda good, mel: mel,
    "MSGHEAD-SCHEMA-INVALID": lambda good, mel: good.replace(
        b"<MIGversion>", b"<Ukjent/><MIGversion>"
    ),
    "MSGHEAD-MIGVERSION-WRONG": lambda good, mel: good.replace(
        b"v1.2 2006-05-24", b"v1.1 2004-01-01"
    ),
    "MSGHEAD-GENDATE-MISSING": lambda good, mel: good.replace(GEN, b""),
    "MSGHEAD-GENDATE-INVALID": lambda good, mel: good.replace(GEN, b"<GenDate>i morgen</GenDate>"),
    "MSGHEAD-GENDATE-FUTURE": lambda good, mel: _wrap(mel, gen_date=GEN_DATE + timedelta(days=1)),
    "MSGHEAD-MSGID-MISSING": lambda good, mel: good.replace(
        f"<MsgId>{MSG_ID}</MsgId>".encode(), b"<MsgId></MsgId>"
    ),
    "MSGHEAD-TYPE-UNSUPPORTED": lambda good, mel: _wrap(mel, msg_type="KPR_IDE"),
    "MSGHEAD-CONTENT-MISSING": lambda good, mel: _without_content(good),
    "MSGHEAD-RECEIVER-UNKNOWN": lambda good, mel: _wrap(mel, receiver=999),
}
# Rules that a broken structure also trips: the schema says what is wrong in its own words.
ALSO_SCHEMA = {"MSGHEAD-GENDATE-MISSING"}
# Rules about the envelope and the party: the message is fine, its context disagrees.
CONTEXT_CASES: dict[str, dict[str, str]] = {
    "MSGHEAD-SENDER-NOT-EBXML-FROM": {"ebxml_from_her": "8000002"},
    "MSGHEAD-RECEIVER-NOT-EBXML-TO": {"ebxml_to_her": "131726"},
    "MSGHEAD-SENDER-NOT-PARTY": {"party_her": "8000002"},
}


def test_every_msghead_rule_has_a_case_here() -> None:
    covered = set(MSGHEAD_CASES) | set(CONTEXT_CASES) | {"MSGHEAD-MSGID-DUPLICATE"}
    assert covered == {r.id for r in mh.RULES}


@pytest.mark.parametrize("rule_id", sorted(MSGHEAD_CASES))
def test_msghead_rule_gives_its_apprec(
    rule_id: str, official: dict[AppRecVersion, etree.XMLSchema]
) -> None:
    rule = next(r for r in mh.RULES if r.id == rule_id)
    melding = build_sample(NOTIFICATIONS, KOMMUNE, seed=SEED)
    context = fault_context(KOMMUNE)
    good = _wrap(melding)
    business = server_check(MSGHEAD_CASES[rule_id](good, melding), context)
    ids = [f.rule.id for f in business.findings]
    if rule_id in ALSO_SCHEMA:
        assert sorted(ids) == sorted([rule_id, "MSGHEAD-SCHEMA-INVALID"])
    else:
        assert ids == [rule_id]
    for version in AppRecVersion:
        data = msghead_receipt(business, business.findings, context.now, version)
        parsed = check_apprec(
            data,
            official[version],
            rule,
            fids=fids_of(melding),
            exclusive=rule_id not in ALSO_SCHEMA,
        )
        assert parsed.receiver.id == str(SENDER_HER)
        assert parsed.original.id in {MSG_ID, EBXML_MESSAGE_ID, ""}


@pytest.mark.parametrize("rule_id", sorted(CONTEXT_CASES))
def test_msghead_context_rule_gives_its_apprec(
    rule_id: str, official: dict[AppRecVersion, etree.XMLSchema]
) -> None:
    rule = next(r for r in mh.RULES if r.id == rule_id)
    melding = build_sample(NOTIFICATIONS, KOMMUNE, seed=SEED)
    context = fault_context(KOMMUNE)
    business = server_check(
        _wrap(melding),
        context,
        our_her_ids=frozenset({str(KPR_HER), "131726"}),
        **CONTEXT_CASES[rule_id],
    )
    assert [f.rule.id for f in business.findings] == [rule_id]
    # a rejected message is not checked further: no content result
    assert business.content is None
    data = msghead_receipt(business, business.findings, context.now, AppRecVersion.V1_1)
    parsed = check_apprec(data, official[AppRecVersion.V1_1], rule, fids=fids_of(melding))
    assert parsed.original.id == MSG_ID


def test_msgid_duplicate_gives_its_apprec(official: dict[AppRecVersion, etree.XMLSchema]) -> None:
    melding = build_sample(NOTIFICATIONS, KOMMUNE, seed=SEED)
    context = fault_context(KOMMUNE)
    business = server_check(_wrap(melding), context)
    assert business.findings == ()
    assert business.msghead is not None
    findings = [msgid_duplicate(business.msghead)]  # what the service adds after its DB look-up
    data = msghead_receipt(business, findings, context.now, AppRecVersion.V1_1)
    parsed = check_apprec(
        data, official[AppRecVersion.V1_1], mh.MSGID_DUPLICATE, fids=fids_of(melding)
    )
    assert MSG_ID in (parsed.errors[0].ot or "")
