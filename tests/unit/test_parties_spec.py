"""Reading parties from CLI values, AR exports (CSV/JSON) and real CPA files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.parties.spec import PartySpecError, make_party, read_parties


def test_make_party_validates_every_field() -> None:
    p = make_party("8000001", "Eksempel kommune", "974760673", ["0301"], ["a@b.no"])
    assert (p.her_id, p.orgnr, p.kommuner) == (8000001, "974760673", ("0301",))
    with pytest.raises(PartySpecError, match="HER-id 'x1'"):
        make_party("x1", "n")
    with pytest.raises(PartySpecError, match="organisation number '974760674'"):
        make_party(1, "n", "974760674")
    with pytest.raises(PartySpecError, match="kommunenummer '301'"):
        make_party(1, "n", kommuner=["301"])
    with pytest.raises(PartySpecError, match="'nope' is not an e-mail"):
        make_party(1, "n", emails=["nope"])


def test_csv_export_is_read_with_lists() -> None:
    csv = (
        b"her_id,name,orgnr,kommuner,emails,cpa_ids,plaintext_allowed\n"
        b"8000001,Oslo kommune,974760673,0301,a@oslo.example;b@oslo.example,cpa-1,yes\n"
    )
    (p,) = read_parties(csv, "ar.csv")
    assert p.kommuner == ("0301",)
    assert [c.email for c in p.contacts] == ["a@oslo.example", "b@oslo.example"]
    assert p.cpas[0].cpa_id == "cpa-1"
    assert p.plaintext_allowed


def test_csv_error_names_the_row() -> None:
    csv = b"her_id,name\n1,ok\n-5,bad\n"
    with pytest.raises(PartySpecError, match=r"ar.csv:3: HER-id '-5'"):
        read_parties(csv, "ar.csv")


def test_json_export_is_read() -> None:
    data = json.dumps([{"her_id": 42, "name": "Bergen", "kommuner": ["4601"]}]).encode()
    (p,) = read_parties(data, "ar.json")
    assert (p.her_id, p.kommuner) == (42, ("4601",))


def test_real_nav_cpa_gives_parties_with_certificates(reference_dir: Path) -> None:
    path = reference_dir / "cpa" / "nav-qass-35065.xml"
    parties = {p.her_id: p for p in read_parties(path.read_bytes(), path.name)}
    assert set(parties) == {8141253, 79768}
    speare = parties[8141253]
    assert speare.cpas[0].cpa_id == "nav:qass:35065"
    assert ("Legemelding", "Sykmelding") in speare.cpas[0].service_actions
    usages = sorted(c.usage for c in speare.certificates)
    assert usages == ["encryption", "signing"]
    assert all("NTRNO-994598759" in c.subject for c in speare.certificates)
    assert parties[79768].orgnr == "889640782"


def test_real_helsenorge_cpa_reads_apprec_action(reference_dir: Path) -> None:
    path = reference_dir / "cpa" / "helsenorge-CPA_93252.xml"
    parties = {p.her_id: p for p in read_parties(path.read_bytes(), path.name)}
    assert 93252 in parties
    actions = parties[93252].cpas[0].service_actions
    assert ("S-DIALOG_INNBYGGER_DIGITALBRUKER", "APPREC") in actions


def test_not_a_cpa_is_refused() -> None:
    with pytest.raises(PartySpecError, match="not a CPA"):
        read_parties(b"<x/>", "x.xml")
