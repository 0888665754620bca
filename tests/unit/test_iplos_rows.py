"""Issue 8 in the content rules: nothing the standard allows is lost. Schema errors drop only
their notification, every event is kept, a number is judged by what it says and a service
type by when the event happened; contacts are read as EPJs write them."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from app.content.iplos import validate_melding
from app.content.iplos.validate import RETIRED_TJENESTETYPER_UNTIL, tjenestetype_valid
from app.content.model import guid_key
from app.core.findings import Consequence
from app.dev.sample import build_sample, fault_context

KOMMUNE = "0301"


def test_two_events_in_one_notification_are_both_kept() -> None:
    result = validate_melding(
        build_sample(3, KOMMUNE, ["two-events"], seed=4), fault_context(KOMMUNE)
    )
    last = result.notifications[-1]
    assert not last.dropped
    assert [e.kind for e in last.events] == ["TjenesteStart", "TjenesteSlutt"]
    assert all(isinstance(e.hendelse_dato, datetime.date) for e in last.events)
    assert len({e.hendelse_guid for e in last.events}) == 2


def test_a_notification_without_event_is_kept_with_an_error() -> None:
    # the schema allows zero events (issue 21): kept, stored, reported
    result = validate_melding(
        build_sample(3, KOMMUNE, ["IPL-EVENT-COUNT"], seed=4), fault_context(KOMMUNE)
    )
    assert [f.rule.id for f in result.findings] == ["IPL-EVENT-COUNT"]
    assert result.notifications[-1].events == ()
    assert not result.notifications[-1].dropped
    assert result.notifications[-1].errors == ("IPL-EVENT-COUNT",)


def test_a_d_nummer_with_typeid_1_is_kept_as_a_d_nummer() -> None:
    result = validate_melding(
        build_sample(3, KOMMUNE, ["dnr-as-typeid-1"], seed=4), fault_context(KOMMUNE)
    )
    (finding,) = result.findings
    assert finding.rule.id == "IPL-TYPEID-KIND"
    assert "D-nummer" in finding.detail
    assert finding.location.endswith("/Bruker/@typeID")
    last = result.notifications[-1]
    assert (last.dropped, last.type_id) == (False, "2")


@pytest.mark.parametrize(
    ("on", "valid"),
    [
        (datetime.date(2018, 6, 1), True),
        (RETIRED_TJENESTETYPER_UNTIL, True),
        (RETIRED_TJENESTETYPER_UNTIL + datetime.timedelta(days=1), False),
        (None, False),
    ],
)
def test_a_retired_service_type_is_judged_at_the_event_date(
    on: datetime.date | None, valid: bool
) -> None:
    for code in ("6", "14", "23", "24", "26", "27", "28"):
        assert tjenestetype_valid(code, on) is valid
    assert tjenestetype_valid("21", on)
    assert not tjenestetype_valid("13", on)


def test_a_retired_service_type_in_a_later_event_is_kept_with_an_error() -> None:
    # handling 9 (issue 21): stored with the error, reported so the municipality corrects it
    data = build_sample(3, KOMMUNE, ["retired-type-in-time"], seed=4, year=2021)
    result = validate_melding(data, fault_context(KOMMUNE, year=2021))
    (finding,) = result.findings
    assert finding.rule.id == "IPL-TJENESTETYPE-CODE"
    assert finding.rule.consequence is Consequence.KEEP_WITH_ERROR
    assert "31.12.2020" in finding.detail
    assert not result.notifications[-1].dropped
    assert result.notifications[-1].errors == ("IPL-TJENESTETYPE-CODE",)


def test_an_event_after_the_extraction_is_a_warning_only_when_the_extraction_is_known() -> None:
    data = build_sample(3, KOMMUNE, ["IPL-HENDELSEDATO-FUTURE"], seed=4)
    context = fault_context(KOMMUNE)
    result = validate_melding(data, context)
    assert [f.rule.id for f in result.findings] == ["IPL-HENDELSEDATO-FUTURE"]
    assert "01.02.2018" in result.findings[0].detail
    assert not result.notifications[-1].dropped
    unknown = validate_melding(data, dataclasses.replace(context, extracted_at=None))
    assert unknown.findings == ()


def test_the_extraction_date_is_the_norwegian_date() -> None:
    # 23:30 UTC on 31 May is 1 June in Norway: an event on 1 June is not after it
    data = build_sample(3, KOMMUNE, ["IPL-HENDELSEDATO-FUTURE"], seed=4)
    late = datetime.datetime(2018, 5, 31, 23, 30, tzinfo=datetime.UTC)
    context = dataclasses.replace(fault_context(KOMMUNE), extracted_at=late)
    assert validate_melding(data, context).findings == ()


def test_a_trailing_space_keeps_the_innsendingsansvarlig_address() -> None:
    data = build_sample(2, KOMMUNE, ["epost-trailing-space"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert result.findings == ()
    assert result.innsendingsansvarlig_emails == ("innsending@kommune.example",)


def test_a_contact_type_written_01_is_type_1() -> None:
    data = build_sample(2, KOMMUNE, ["kontakttype-leading-zero"], seed=4)
    assert b'typeKontaktperson="01"' in data
    result = validate_melding(data, fault_context(KOMMUNE))
    assert result.findings == ()
    assert result.contacts[0].type == "1"


@pytest.mark.parametrize("scenario", ["orgnr-zeros", "orgnr-first-digit"])
def test_an_organisation_number_not_starting_with_8_or_9_is_ignored(scenario: str) -> None:
    result = validate_melding(build_sample(3, KOMMUNE, [scenario], seed=4), fault_context(KOMMUNE))
    assert [f.rule.id for f in result.findings] == ["IPL-ORGNR-INVALID"]
    assert result.notifications[-1].events[0].tjeneste_org_nr is None


def test_an_h_nummer_with_individual_number_750_to_899_is_accepted() -> None:
    data = build_sample(3, KOMMUNE, ["hnr-individual-750"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert result.findings == ()
    last = result.notifications[-1]
    assert last.type_id == "3"
    assert 750 <= int(last.fid[6:9]) <= 899


def test_every_notification_dropped_rejects_the_message() -> None:
    data = build_sample(3, KOMMUNE, ["IPL-ALL-DROPPED"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert result.rejected
    assert [f.rule.id for f in result.findings] == ["IPL-XSD-ROW"] * 3 + ["IPL-ALL-DROPPED"]
    assert "Ingen av meldingens 3 notifikasjoner" in result.findings[-1].detail


def test_a_bydel_too_long_for_the_schema_is_only_its_own_warning() -> None:
    data = build_sample(3, KOMMUNE, seed=4).replace(b'bydel="030101"', b'bydel="0301011"', 1)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [f.rule.id for f in result.findings] == ["IPL-BYDEL-FORMAT"]
    assert not any(n.dropped for n in result.notifications)
    assert result.notifications[1].bydel is None


def test_two_events_for_different_persons_drop_the_notification() -> None:
    data = build_sample(3, KOMMUNE, ["IPL-EVENT-PERSON"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [(f.rule.id, f.location) for f in result.findings] == [
        ("IPL-EVENT-PERSON", "/Melding/Notifikasjon[3]")
    ]
    assert [n.dropped for n in result.notifications] == [False, False, True]


# --- issue 21: rows the Annotations do not let KPR refuse ----------------------------------


def test_a_guid_without_hyphens_is_kept_under_its_key() -> None:
    data = build_sample(3, KOMMUNE, ["IPL-XSD-VALUE"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert not result.rejected
    (finding,) = result.findings
    assert finding.rule.id == "IPL-XSD-VALUE"
    assert finding.location == "/Melding/Notifikasjon[3]/@notifikasjonGUID"
    last = result.notifications[-1]
    sent = last.raw.attrs["notifikasjonGUID"] if last.raw else ""
    assert "-" not in sent
    assert len(sent) == 32
    assert last.guid == guid_key(sent)
    assert last.guid.startswith("~")
    assert len(last.guid) == 36
    assert finding.subject is not None
    assert finding.subject.notification_guid == last.guid
    assert (last.dropped, last.errors) == (False, ("IPL-XSD-VALUE",))


def test_the_key_of_a_malformed_guid_is_stable_and_never_a_guid() -> None:
    assert guid_key("{ABCDEF01-2345-6789-ABCD-EF0123456789}") == (
        "abcdef01-2345-6789-abcd-ef0123456789"
    )
    key = guid_key("abcdef0123456789abcdef0123456789")
    assert key == guid_key("abcdef0123456789abcdef0123456789")
    assert key != guid_key("ABCDEF0123456789ABCDEF0123456789")  # the value as sent
    assert key[0] == "~"
    assert len(key) == 36
    assert all(c in "0123456789abcdef" for c in key[1:])
    assert guid_key("") == ""


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("hendelseGUID", "not-a-guid"),
        ("notifikasjonForrigeGUID", "x"),
        ("hendelseDato", "2018-13-45"),
    ],
)
def test_a_malformed_value_with_handling_9_keeps_the_row(attribute: str, value: str) -> None:
    data = build_sample(3, KOMMUNE, seed=4)
    at = data.rindex(f'{attribute}="'.encode())
    end = data.index(b'"', at + len(attribute) + 2)
    data = data[: at + len(attribute) + 2] + value.encode() + data[end:]
    result = validate_melding(data, fault_context(KOMMUNE))
    assert not result.rejected
    ids = {f.rule.id for f in result.findings}
    assert "IPL-XSD-VALUE" in ids
    assert not result.notifications[-1].dropped


def test_a_missing_guid_still_rejects_the_message() -> None:
    data = build_sample(3, KOMMUNE, seed=4)
    at = data.rindex(b' notifikasjonGUID="')
    end = data.index(b'"', at + len(b' notifikasjonGUID="'))
    result = validate_melding(data[:at] + data[end + 1 :], fault_context(KOMMUNE))
    assert result.rejected
    assert [f.rule.id for f in result.findings] == ["IPL-XSD"]


@pytest.mark.parametrize("attribute", ["uttakDato", "fraDatoPeriode", "tilDatoPeriode"])
def test_moduleconstraint_i_attributes_on_melding_are_ignored(attribute: str) -> None:
    data = build_sample(3, KOMMUNE, seed=4).replace(
        b' lokalident="', f' {attribute}="2018-01-01" lokalident="'.encode(), 1
    )
    result = validate_melding(data, fault_context(KOMMUNE))
    assert not result.rejected
    assert [(f.rule.id, f.location) for f in result.findings] == [
        ("IPL-XSD-IGNORED", f"/Melding/@{attribute}")
    ]
    assert all(not n.dropped for n in result.notifications)


def test_a_service_type_with_a_leading_zero_is_read_without_it() -> None:
    data = build_sample(3, KOMMUNE, ["IPL-CODE-LEADING-ZERO"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    (finding,) = result.findings
    assert finding.rule.id == "IPL-CODE-LEADING-ZERO"
    assert finding.location.endswith("/@tjenesteType")
    last = result.notifications[-1]
    assert not last.dropped
    assert last.events[0].tjeneste_type == "8"
    assert last.raw is not None
    assert last.raw.events[0].attrs["tjenesteType"] == "08"


def test_typeid_with_a_leading_zero_is_read_without_it() -> None:
    data = build_sample(3, KOMMUNE, ["typeid-leading-zero"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [(f.rule.id, f.location[-14:]) for f in result.findings] == [
        ("IPL-CODE-LEADING-ZERO", "Bruker/@typeID")
    ]
    last = result.notifications[-1]
    assert (last.dropped, last.type_id) == (False, "1")
    assert last.raw is not None
    assert last.raw.events[0].bruker["typeID"] == "01"


def test_a_foedselsnummer_with_typeid_9_is_kept_as_a_foedselsnummer() -> None:
    data = build_sample(3, KOMMUNE, ["fnr-as-typeid-9"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    (finding,) = result.findings
    assert finding.rule.id == "IPL-TYPEID-KIND"
    assert "fødselsnummer" in finding.detail
    last = result.notifications[-1]
    assert (last.dropped, last.type_id) == (False, "1")


def test_a_birth_date_with_typeid_1_is_kept_as_a_birth_date() -> None:
    data = build_sample(3, KOMMUNE, ["birthdate-as-typeid-1"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    (finding,) = result.findings
    assert finding.rule.id == "IPL-TYPEID-KIND"
    assert "fødselsdato" in finding.detail
    last = result.notifications[-1]
    assert (last.dropped, last.type_id) == (False, "9")
    assert not last.identifies_person


def test_typeid_9_with_neither_a_date_nor_a_number_is_kept_with_an_error() -> None:
    data = build_sample(3, KOMMUNE, ["IPL-FID-DATE"], seed=4)
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [f.rule.id for f in result.findings] == ["IPL-FID-DATE"]
    assert result.notifications[-1].errors == ("IPL-FID-DATE",)
    assert not result.notifications[-1].dropped


@pytest.mark.parametrize(
    "fault",
    [
        "IPL-FID-INVALID",
        "IPL-TJENESTETYPE-CODE",
        "IPL-STATUS-CODE",
        "IPL-REF-MISSING",
        "IPL-ORGNR-REQUIRED",
    ],
)
def test_rules_with_handling_9_keep_the_row_with_its_error(fault: str) -> None:
    result = validate_melding(build_sample(3, KOMMUNE, [fault], seed=4), fault_context(KOMMUNE))
    assert [f.rule.id for f in result.findings] == [fault]
    assert result.findings[0].rule.consequence is Consequence.KEEP_WITH_ERROR
    assert all(not n.dropped for n in result.notifications)
    assert result.notifications[-1].errors == (fault,)


def test_an_invalid_provider_does_not_drop_the_start_beside_it() -> None:
    # a TjenesteStart and a TjenesteutforerEndret with an invalid tjenesteOrgNr in one
    data = build_sample(3, KOMMUNE, ["two-events"], seed=4)
    data = data.replace(b"<TjenesteSlutt ", b'<TjenesteutforerEndret tjenesteOrgNr="123" ')
    data = data.replace(b"</TjenesteSlutt>", b"</TjenesteutforerEndret>")
    result = validate_melding(data, fault_context(KOMMUNE))
    assert [f.rule.id for f in result.findings] == ["IPL-ORGNR-REQUIRED"]
    last = result.notifications[-1]
    assert not last.dropped
    assert [e.kind for e in last.events] == ["TjenesteStart", "TjenesteutforerEndret"]
