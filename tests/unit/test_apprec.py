"""AppRec build and parse: every receipt we can build validates against the official XSDs,
and the official samples read back (and agree with our own schemas)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.apprec import (
    ERROR_CODE_SYSTEM,
    ERROR_CODES,
    AppRecError,
    AppRecInvalid,
    AppRecStatus,
    AppRecVersion,
    OriginalMsgRef,
    Party,
    build_apprec,
    build_receipt,
    original_from_msghead,
    parse_apprec,
    receiver_from_msghead,
)
from app.core.findings import Consequence, Finding, Layer, Rule, Subject
from app.core.schemas import SCHEMAS_DIR
from app.msghead import read_msghead
from tests.budgets import examples

NOW = datetime(2018, 11, 20, 11, 0, 5, tzinfo=UTC)
KPR = Party(name="Helsedirektoratet KPR", her_id="131725")
KOMMUNE = Party(name="Eksempel kommune", her_id="8000001")
ORIGINAL = OriginalMsgRef(
    msg_type="KPR_IPL",
    msg_type_dn="IPLOS-melding til KPR",
    issue_date="2018-11-20T12:00:00",
    id="8b8148f6-b38a-488c-a65e-d389b74d0fb1",
)
OFFICIAL = {AppRecVersion.V1_0: "apprec-v1.0.xsd", AppRecVersion.V1_1: "apprec-v1.1.xsd"}
OURS = {AppRecVersion.V1_0: "apprec-v1.0.xsd", AppRecVersion.V1_1: "apprec-v1.1.xsd"}
VERSIONS = list(AppRecVersion)


@pytest.fixture(scope="module")
def official(reference_dir: Path) -> dict[AppRecVersion, etree.XMLSchema]:
    # Test-only: lxml's default parser reads the local imports (kith.xsd) of the official files.
    return {
        v: etree.XMLSchema(etree.parse(str(reference_dir / "xsd/kith" / name)))
        for v, name in OFFICIAL.items()
    }


@pytest.fixture(scope="module")
def ours() -> dict[AppRecVersion, etree.XMLSchema]:
    return {
        v: etree.XMLSchema(etree.parse(str(SCHEMAS_DIR / "apprec" / name)))
        for v, name in OURS.items()
    }


def assert_valid(schema: etree.XMLSchema, data: bytes) -> None:
    assert schema.validate(etree.fromstring(data)), schema.error_log


def build(version: AppRecVersion, status: AppRecStatus, errors: list[AppRecError]) -> bytes:
    return build_apprec(
        status=status,
        errors=errors,
        sender=KPR,
        receiver=KOMMUNE,
        original=ORIGINAL,
        now=NOW,
        apprec_id="3f2504e0-4f89-41d3-9a0c-0305e82c3301",
        version=version,
        software_version="0.1.0",
    )


# --- every receipt we build validates against the official XSD ----------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("status", list(AppRecStatus))
def test_each_status_validates_against_the_official_xsd(
    official: dict[AppRecVersion, etree.XMLSchema],
    ours: dict[AppRecVersion, etree.XMLSchema],
    version: AppRecVersion,
    status: AppRecStatus,
) -> None:
    errors = [] if status is AppRecStatus.OK else [AppRecError("X99", ERROR_CODES["X99"], "tekst")]
    data = build(version, status, errors)
    assert_valid(official[version], data)
    assert_valid(ours[version], data)
    parsed = parse_apprec(data)
    assert parsed.version is version
    assert parsed.status_code is status
    assert parsed.status_dn == status.dn


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_each_8221_code_validates_against_the_official_xsd(
    official: dict[AppRecVersion, etree.XMLSchema],
    ours: dict[AppRecVersion, etree.XMLSchema],
    version: AppRecVersion,
    code: str,
) -> None:
    rule = Rule(
        id=f"TEST-{code}",
        layer=Layer.CONTENT,
        consequence=Consequence.REJECT_MESSAGE,
        title="test",
        text_no="test",
        apprec_code=code,
    )
    finding = Finding(rule=rule, location="/x", detail=f"Feil med kode {code}: æøå <&> \"'")
    data = build_receipt(
        [finding], sender=KPR, receiver=KOMMUNE, original=ORIGINAL, now=NOW, version=version
    )
    assert_valid(official[version], data)
    assert_valid(ours[version], data)
    parsed = parse_apprec(data)
    assert parsed.status_code is AppRecStatus.REJECTED
    assert [(e.code, e.dn, e.system) for e in parsed.errors] == [
        (code, ERROR_CODES[code], ERROR_CODE_SYSTEM)
    ]
    assert parsed.errors[0].ot is not None
    assert f"TEST-{code}" in parsed.errors[0].ot


def test_the_18_codes_of_the_brief_are_all_known() -> None:
    brief = "T01 T02 T10 T99 E10 E20 E21 E30 E31 E32 E35 E36 E53 E54 S01 S02 S03 X99"
    wanted = brief.split()
    assert sorted(wanted) == sorted(ERROR_CODES)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_receipt_without_any_readable_msghead_is_still_valid(
    official: dict[AppRecVersion, etree.XMLSchema], version: AppRecVersion
) -> None:
    original = original_from_msghead(None, received_at=NOW)
    receiver = receiver_from_msghead(None, fallback=Party(name=None, her_id=None))
    data = build_apprec(
        status=AppRecStatus.REJECTED,
        errors=[AppRecError("T01", ERROR_CODES["T01"], "MSGHEAD-NOT-XML: ikke XML")],
        sender=Party(name=None, her_id=None),
        receiver=receiver,
        original=original,
        now=NOW,
        version=version,
    )
    assert_valid(official[version], data)
    parsed = parse_apprec(data)
    assert parsed.original.msg_type is None
    assert parsed.original.id == ""
    assert parsed.original.issue_date == "2018-11-20T12:00:05+01:00"


@pytest.mark.parametrize("version", VERSIONS)
def test_a_capped_receipt_for_many_bad_rows_is_valid(
    official: dict[AppRecVersion, etree.XMLSchema], version: AppRecVersion
) -> None:
    rule = Rule("TEST-ROW", Layer.CONTENT, Consequence.DROP_NOTIFICATION, "t", "t", "E31")
    findings = [
        Finding(rule, f"/Melding/Notifikasjon[{i}]", "feil", Subject(notification_guid=f"g{i}"))
        for i in range(500)
    ]
    data = build_receipt(
        findings, sender=KPR, receiver=KOMMUNE, original=ORIGINAL, now=NOW, version=version
    )
    assert_valid(official[version], data)
    parsed = parse_apprec(data)
    assert parsed.status_code is AppRecStatus.OK_ERROR_IN_PART
    assert len(parsed.errors) == 100


# --- building from a MsgHead --------------------------------------------------------------


def test_original_and_receiver_come_from_the_msghead(reference_dir: Path) -> None:
    data = (reference_dir / "samples/msghead/helsenorge-message.xml").read_bytes()
    head = read_msghead(data).msghead
    original = original_from_msghead(head, received_at=NOW, fallback_id="ebxml-id")
    assert original == OriginalMsgRef(
        msg_type="DIALOG_INNBYGGER_EKONTAKT",
        msg_type_dn="Dialog med innbygger - eKontakt",
        issue_date="2012-11-21T09:30:47.0Z",
        id="8325fcba-89a9-11e3-baa8-0800200c9a66",
    )
    assert receiver_from_msghead(head, fallback=KOMMUNE) == Party("Helsenorge.no", "109989")


def test_unreadable_gendate_falls_back_to_the_receive_time() -> None:
    from tests.unit.test_msghead import msghead_xml

    head = read_msghead(msghead_xml(gen_date="i går", msg_id=None)).msghead
    original = original_from_msghead(head, received_at=NOW, fallback_id="ebxml-1")
    assert original.issue_date == "2018-11-20T12:00:05+01:00"
    assert original.id == "ebxml-1"
    assert original.msg_type == "KPR_IPL"


def test_built_receipt_has_the_agreed_fields() -> None:
    parsed = parse_apprec(build(AppRecVersion.V1_1, AppRecStatus.OK, []))
    assert parsed.mig_version == "v1.1 2012-02-15"
    assert parsed.msg_type == "APPREC"
    assert parsed.software_name == "kpr-mottak"
    assert parsed.software_version == "0.1.0"
    assert parsed.id == "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    assert parsed.gen_date == NOW
    assert (parsed.sender.name, parsed.sender.id, parsed.sender.id_type) == (
        "Helsedirektoratet KPR",
        "131725",
        "HER",
    )
    assert (parsed.receiver.name, parsed.receiver.id) == ("Eksempel kommune", "8000001")
    assert parsed.original == ORIGINAL
    assert parsed.errors == ()


def test_inst_typeid_is_a_cs_without_s() -> None:
    root = etree.fromstring(build(AppRecVersion.V1_0, AppRecStatus.OK, []))
    ns = {"a": AppRecVersion.V1_0.namespace}
    type_ids = root.xpath("//a:Inst/a:TypeId", namespaces=ns)
    assert isinstance(type_ids, list)
    assert len(type_ids) == 2
    for el in type_ids:
        assert isinstance(el, etree._Element)
        assert sorted(el.items()) == [("DN", "HER-id"), ("V", "HER")]
    assert root.findtext(f"{{{ns['a']}}}MIGversion") == "1.0 2004-11-21"


def test_new_ids_are_unique_by_default() -> None:
    args: dict[str, object] = {
        "status": AppRecStatus.OK,
        "errors": [],
        "sender": KPR,
        "receiver": KOMMUNE,
        "original": ORIGINAL,
        "now": NOW,
    }
    ids = {parse_apprec(build_apprec(**args)).id for _ in range(3)}  # type: ignore[arg-type]
    assert len(ids) == 3


_TEXT = st.text(max_size=200)


@given(
    texts=st.lists(st.tuples(_TEXT, _TEXT), min_size=0, max_size=5),
    name=_TEXT,
    version=st.sampled_from(VERSIONS),
)
@settings(max_examples=examples(60), deadline=None)
def test_any_finding_text_gives_a_valid_receipt(
    texts: list[tuple[str, str]], name: str, version: AppRecVersion
) -> None:
    rule = Rule("TEST-ANY", Layer.CONTENT, Consequence.DROP_NOTIFICATION, "t", "t", None)
    findings = [Finding(rule, loc, detail, Subject(bruker_nr=loc)) for loc, detail in texts]
    data = build_receipt(
        findings,
        sender=KPR,
        receiver=Party(name=name, her_id="8000001"),
        original=ORIGINAL,
        now=NOW,
        version=version,
    )
    parsed = parse_apprec(data)  # validates against our own schema
    assert all(e.code == "X99" for e in parsed.errors)
    assert parsed.status_code is (AppRecStatus.OK_ERROR_IN_PART if findings else AppRecStatus.OK)


# --- reading the official samples ---------------------------------------------------------


def _samples(reference_dir: Path, folder: str) -> list[Path]:
    found = sorted((reference_dir / "samples/apprec" / folder).glob("*.xml"))
    assert found
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_official_sample_is_read_back(reference_dir: Path, version: AppRecVersion) -> None:
    for path in _samples(reference_dir, version.value):
        parsed = parse_apprec(path.read_bytes())
        assert parsed.version is version, path.name
        assert parsed.msg_type == "APPREC", path.name
        assert parsed.status, path.name
        assert parsed.original.id, path.name
        assert (parsed.sender.kind, parsed.receiver.kind) == ("Inst", "Inst"), path.name


def test_official_avvist_sample_pins_fields(reference_dir: Path) -> None:
    parsed = parse_apprec((reference_dir / "samples/apprec/1.0/example-avvist.xml").read_bytes())
    assert parsed.status_code is AppRecStatus.REJECTED
    assert parsed.errors == (
        AppRecError(
            code="E21", dn="Mottaker finnes ikke", ot="Legen har sluttet", system=ERROR_CODE_SYSTEM
        ),
    )
    assert parsed.sender.role == "REQ"
    assert parsed.sender.id_type == "HER"  # V=" HER" in the sample: whitespace is dropped
    assert parsed.receiver.name == "Testsykehuset HF"
    assert parsed.original.msg_type == "EPIKRISE"
    assert parsed.original.issue_date == "2020-06-19T17:02:15"


def test_official_partial_sample_pins_fields(reference_dir: Path) -> None:
    path = reference_dir / "samples/apprec/1.0/example-ok-feil-i-delmelding.xml"
    parsed = parse_apprec(path.read_bytes())
    assert parsed.status_code is AppRecStatus.OK_ERROR_IN_PART
    assert [(e.code, e.ot) for e in parsed.errors] == [("07", "93495"), ("16", "93498")]
    assert parsed.receiver.id_type == "ENH"


def test_unknown_status_is_kept_as_given(reference_dir: Path) -> None:
    parsed = parse_apprec((reference_dir / "samples/apprec/1.1/unknown-status.xml").read_bytes())
    assert parsed.status == "123"
    assert parsed.status_code is None


def test_helsenorge_sample_with_utc_gendate(reference_dir: Path) -> None:
    path = reference_dir / "samples/apprec/1.1/helsenorge-apprec11.xml"
    parsed = parse_apprec(path.read_bytes())
    assert parsed.gen_date == datetime(2020, 9, 14, 14, 1, 45, 467, tzinfo=UTC)
    assert parsed.id == "C829A5F9-5BBF-4376-A37F-ADE4B399916C"


def test_invalid_samples_are_rejected(reference_dir: Path) -> None:
    for path in _samples(reference_dir, "invalid"):
        with pytest.raises(AppRecInvalid):
            parse_apprec(path.read_bytes())


@pytest.mark.parametrize(
    "data",
    [
        b"not xml",
        b'<AppRec xmlns="http://www.kith.no/xmlstds/apprec/2099-01-01"/>',
        b'<MsgHead xmlns="http://www.kith.no/xmlstds/msghead/2006-05-24"/>',
    ],
)
def test_other_bytes_are_not_an_apprec(data: bytes) -> None:
    with pytest.raises(AppRecInvalid):
        parse_apprec(data)


def test_official_samples_agree_with_our_schemas(
    reference_dir: Path,
    official: dict[AppRecVersion, etree.XMLSchema],
    ours: dict[AppRecVersion, etree.XMLSchema],
) -> None:
    for folder in ("1.0", "1.1", "invalid"):
        for path in _samples(reference_dir, folder):
            doc = etree.parse(str(path))
            for version in VERSIONS:
                assert official[version].validate(doc) == ours[version].validate(doc), (
                    path.name,
                    version,
                )
            if folder != "invalid":
                assert ours[AppRecVersion(folder)].validate(doc), path.name
