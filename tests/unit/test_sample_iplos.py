"""The sample generator and the MsgHead wrapper."""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest
from lxml import etree

from app.content.iplos import NS
from app.dev.sample import MSGHEAD_NS, build_sample, wrap_in_msghead, write_sample
from app.identifiers import PersonId, check_person_id


def test_sample_is_deterministic_per_seed() -> None:
    assert build_sample(20, "0301", seed=4) == build_sample(20, "0301", seed=4)
    assert build_sample(20, "0301", seed=4) != build_sample(20, "0301", seed=5)


def test_streamed_and_built_samples_are_equal() -> None:
    out = io.BytesIO()
    write_sample(out, 1500, "4601", seed=2)
    assert out.getvalue() == build_sample(1500, "4601", seed=2)


def test_sample_uses_only_synthetic_identities() -> None:
    doc = etree.fromstring(build_sample(200, "0301", seed=1))
    fids = [b.get("fid") or "" for b in doc.iter("{*}Bruker")]
    assert len(fids) == 200 == len(set(fids))
    for fid in fids:
        pid = check_person_id(fid)
        assert isinstance(pid, PersonId)
        assert pid.synthetic


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        build_sample(2, "0301", ["IPL-NO-SUCH-RULE"])


def test_fault_needing_two_notifications_is_refused_for_one() -> None:
    with pytest.raises(ValueError, match="two"):
        build_sample(1, "0301", ["IPL-LOPENR-ORDER"])


def test_msghead_wrapper_validates_against_official_schemas(
    reference_dir: Path, tmp_path: Path
) -> None:
    kith = (reference_dir / "xsd/kith/MsgHead-v1_2.xsd").resolve().as_uri()
    ipl = (reference_dir / "xsd/iplos-56.0.0/XPR(ipl).xsd").resolve().as_uri()
    driver = tmp_path / "driver.xsd"
    driver.write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        f'<xs:import namespace="{MSGHEAD_NS}" schemaLocation="{kith}"/>'
        f'<xs:import namespace="{NS}" schemaLocation="{ipl}"/>'
        "</xs:schema>"
    )
    schema = etree.XMLSchema(etree.parse(str(driver)))
    data = wrap_in_msghead(
        build_sample(10, "0301", seed=1),
        8000001,
        131725,
        "8b8148f6-b38a-488c-a65e-d389b74d0fb1",
        datetime.datetime(2018, 11, 20, 12, 0),
        sender_name="Eksempel & co kommune",
    )
    doc = etree.fromstring(data)
    assert schema.validate(doc), schema.error_log
    ns = {"mh": "http://www.kith.no/xmlstds/msghead/2006-05-24"}
    assert doc.xpath("string(mh:MsgInfo/mh:Type/@V)", namespaces=ns) == "KPR_IPL"
    assert doc.xpath("string(mh:MsgInfo/mh:Sender//mh:Id)", namespaces=ns) == "8000001"
    assert doc.xpath("string(mh:MsgInfo/mh:Receiver//mh:Id)", namespaces=ns) == "131725"
