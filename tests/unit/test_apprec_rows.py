"""Issue 21 item 6: every row-level finding in the AppRec names its notification (position,
notifikasjonGUID, brukerNr, løpenummer), and a finding grouped over several rows says how many
and where the full list is; the receipt stays valid against the official AppRec XSDs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from app.apprec import (
    AppRecStatus,
    AppRecVersion,
    OriginalMsgRef,
    Party,
    build_receipt,
    parse_apprec,
    receipt_outcome,
)
from app.apprec.mapping import MAX_OT_LENGTH
from app.content.iplos.validate import validate_melding
from app.content.model import ContentContext
from app.core.findings import Finding
from app.dev.sample import build_sample

NOW = datetime(2018, 11, 20, 11, 0, 5, tzinfo=UTC)
ORIGINAL = OriginalMsgRef("KPR_IPL", "IPLOS-melding til KPR", "2018-11-20T12:00:00", "m-1")
KPR = Party(name="KPR", her_id="131725")
KOMMUNE = Party(name="Eksempel kommune", her_id="8000001")
FEILLISTE = "/api/v1/kommuner/0301/feilliste"


def _empty_fid(rows: int, empty: set[int]) -> bytes:
    """A sample of `rows` notifications whose fid is empty in the 1-based `empty` ones."""
    parts = build_sample(rows, "0301", (), seed=8).split(b"<Notifikasjon ")
    for i in empty:
        parts[i] = re.sub(rb' fid="[^"]*"', b' fid=""', parts[i], count=1)
    return b"<Notifikasjon ".join(parts)


def _findings(melding: bytes) -> list[Finding]:
    ctx = ContentContext(now=NOW, allow_synthetic=True)
    return list(validate_melding(melding, ctx).findings)


def _subjects(findings: list[Finding]) -> list[tuple[str, str, int]]:
    out = []
    for f in findings:
        s = f.subject
        assert s is not None
        assert s.notification_guid
        assert s.bruker_nr
        assert s.lopenr is not None
        out.append((s.notification_guid, s.bruker_nr, s.lopenr))
    return out


@pytest.fixture(scope="module")
def official(reference_dir: Path) -> dict[AppRecVersion, etree.XMLSchema]:
    names = {AppRecVersion.V1_0: "apprec-v1.0.xsd", AppRecVersion.V1_1: "apprec-v1.1.xsd"}
    # Test-only: lxml's default parser reads the local imports (kith.xsd) of the official files.
    return {
        v: etree.XMLSchema(etree.parse(str(reference_dir / "xsd/kith" / n)))
        for v, n in names.items()
    }


def test_an_empty_fid_in_two_notifications_names_both_and_says_where_the_list_is() -> None:
    findings = _findings(_empty_fid(3, {2, 3}))
    missing = [f for f in findings if f.rule.id == "IPL-FID-MISSING"]
    assert len(missing) == 2
    outcome = receipt_outcome(findings)
    assert outcome.status is AppRecStatus.REJECTED
    (error,) = outcome.errors
    ot = error.ot or ""
    assert error.code == "E30"
    assert ot.startswith("IPL-FID-MISSING: fid er tom. Gjelder 2 notifikasjoner:")
    for position, (guid, bruker_nr, lopenr) in zip((2, 3), _subjects(missing), strict=True):
        assert (
            f"Notifikasjon nr. {position} (notifikasjonGUID {guid}, brukerNr {bruker_nr}, "
            f"løpenummer {lopenr})"
        ) in ot
    assert f"Hele listen står i kommunens feilliste hos KPR ({FEILLISTE}" in ot


def test_an_empty_fid_in_one_notification_names_it_without_a_count() -> None:
    findings = _findings(_empty_fid(3, {2}))
    (missing,) = [f for f in findings if f.rule.id == "IPL-FID-MISSING"]
    ((guid, bruker_nr, lopenr),) = _subjects([missing])
    (error,) = receipt_outcome(findings).errors
    assert error.ot == (
        f"IPL-FID-MISSING: fid er tom. Gjelder Notifikasjon nr. 2 (notifikasjonGUID {guid}, "
        f"brukerNr {bruker_nr}, løpenummer {lopenr})."
    )


def test_a_dropped_row_is_named_with_its_position_and_lopenummer() -> None:
    melding = build_sample(3, "0301", ("IPL-XSD-ROW",), seed=8)
    findings = _findings(melding)
    dropped = [f for f in findings if f.rule.id == "IPL-XSD-ROW"]
    (error,) = receipt_outcome(findings).errors
    s = dropped[0].subject
    assert s is not None
    assert (error.ot or "").startswith(
        f"Notifikasjon nr. 3 (notifikasjonGUID {s.notification_guid}, løpenummer {s.lopenr}) "
        "er ikke tatt imot: IPL-XSD-ROW:"
    )


@pytest.mark.parametrize("version", list(AppRecVersion))
def test_a_grouped_finding_over_many_rows_fits_one_ot_and_validates(
    official: dict[AppRecVersion, etree.XMLSchema], version: AppRecVersion
) -> None:
    rows = 60
    findings = _findings(_empty_fid(rows, set(range(1, rows + 1))))
    missing = [f for f in findings if f.rule.id == "IPL-FID-MISSING"]
    assert len(missing) == rows
    data = build_receipt(
        findings, sender=KPR, receiver=KOMMUNE, original=ORIGINAL, now=NOW, version=version
    )
    assert official[version].validate(etree.fromstring(data)), official[version].error_log
    (error,) = parse_apprec(data).errors
    ot = error.ot or ""
    assert len(ot) <= MAX_OT_LENGTH
    assert ot.startswith(f"IPL-FID-MISSING: fid er tom. Gjelder {rows} notifikasjoner:")
    named = re.findall(r"Notifikasjon nr\. (\d+) \(", ot)
    assert named == [str(i) for i in range(1, len(named) + 1)]
    assert 1 < len(named) < rows
    assert f"… og {rows - len(named)} til." in ot
    assert ot.endswith(f"({FEILLISTE}; lenke i e-posten til innsendingsansvarlig).")
    assert "***" not in ot  # every row's brukerNr (B0008...) is shown whole


@pytest.mark.parametrize("version", list(AppRecVersion))
def test_rows_past_the_cap_are_summed_per_rule_and_the_receipt_validates(
    official: dict[AppRecVersion, etree.XMLSchema], version: AppRecVersion
) -> None:
    melding = build_sample(40, "0301", (), seed=8).replace(b' tjenesteType="', b' tjenesteType="x')
    findings = _findings(melding)
    data = build_receipt(
        findings,
        sender=KPR,
        receiver=KOMMUNE,
        original=ORIGINAL,
        now=NOW,
        version=version,
        max_errors=10,
    )
    assert official[version].validate(etree.fromstring(data)), official[version].error_log
    parsed = parse_apprec(data)
    assert len(parsed.errors) == 10
    summaries = [e.ot or "" for e in parsed.errors if " feil til " in (e.ot or "")]
    assert summaries
    assert all(FEILLISTE in ot and len(ot) <= MAX_OT_LENGTH for ot in summaries)
    assert all("notifikasjoner, blant dem: Notifikasjon nr. " in ot for ot in summaries)
    for e in parsed.errors:
        if e not in [x for x in parsed.errors if (x.ot or "") in summaries]:
            assert re.match(r"(IPL-ALL-DROPPED|Notifikasjon nr\. \d+ \()", e.ot or "")
