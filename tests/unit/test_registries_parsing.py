"""Parsing what NHN's registries answer, in the shapes of the bodies recorded by the public
reference implementation (written here afresh, not copied): the AR over SOAP and REST, the
CPPA registry's CPA and CPP."""

from __future__ import annotations

import base64
import json

import pytest

from app.registries import ar_rest, ar_soap, cppa_rest
from app.registries.fake import FakeParty, cpa_xml, cpp_xml
from app.registries.models import RegistryUnavailable, kommune_nr, queue_name

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
CP = "http://register.nhn.no/CommunicationParty"
COMMON = "http://register.nhn.no/Common"


def soap_body(inner: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP}"><s:Body>'
        f"{inner}</s:Body></s:Envelope>"
    ).encode()


def address(kind: str, value: str, inherited: str = "false") -> str:
    return (
        f"<a:ElectronicAddress><a:Address>{value}</a:Address><a:Inherited>{inherited}"
        f"</a:Inherited><a:Type><a:Active>true</a:Active><a:CodeValue>{kind}</a:CodeValue>"
        f"<a:OID>9044</a:OID></a:Type><a:TypeCodeValue>{kind}</a:TypeCodeValue>"
        "</a:ElectronicAddress>"
    )


PARTY = soap_body(
    f'<GetCommunicationPartyDetailsResponse xmlns="{CP}">'
    f'<GetCommunicationPartyDetailsResult xmlns:i="http://www.w3.org/2001/XMLSchema-instance"'
    ' i:type="OrganizationPerson">'
    "<Active>true</Active><DisplayName>Lege Testesen</DisplayName>"
    f'<ElectronicAddresses xmlns:a="{COMMON}">'
    + address("E_SB_ASYNC", "sb.test.nhn.no/DigitalDialog/91111_async")
    + address("E_SB_ERROR", "sb.test.nhn.no/DigitalDialog/91111_error")
    + address("E_SB_SYNC", "sb.test.nhn.no/DigitalDialog/91111_sync")
    + address("E_DS", "ldap://ldap.example/cn=x", "true")
    + "</ElectronicAddresses><HerId>91111</HerId>"
    "<IsValidCommunicationParty>true</IsValidCommunicationParty>"
    f'<Municipality xmlns:a="{COMMON}"><a:Active>true</a:Active><a:CodeText>OSLO</a:CodeText>'
    "<a:CodeValue>301</a:CodeValue><a:OID>3402</a:OID></Municipality>"
    "<Name>Lege Testesen</Name><ParentHerId>91110</ParentHerId>"
    "<ParentName>Testlegene</ParentName>"
    "<ParentOrganizationNumber>974760673</ParentOrganizationNumber>"
    "</GetCommunicationPartyDetailsResult></GetCommunicationPartyDetailsResponse>"
)


def fault(code: str) -> bytes:
    return soap_body(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>x</faultstring><detail>"
        f'<GenericFault xmlns="{CP}"><ErrorCode>{code}</ErrorCode><Message>m</Message>'
        "</GenericFault></detail></s:Fault>"
    )


def test_soap_party_in_the_recorded_shape() -> None:
    party = ar_soap.parse_party_response(PARTY)
    assert party is not None
    assert party.her_id == 91111
    assert party.name == "Lege Testesen"
    assert party.active
    assert party.valid
    assert party.municipality == "301"
    assert kommune_nr(party.municipality) == "0301"
    assert party.orgnr == "974760673"  # the parent's: a person has none of its own
    assert party.parent_her_id == 91110
    assert queue_name(party.addresses["E_SB_ASYNC"]) == "91111_async"
    assert queue_name(party.addresses["E_SB_ERROR"]) == "91111_error"
    assert party.addresses["E_SB_SYNC"].endswith("_sync")


def test_soap_faults() -> None:
    assert ar_soap.parse_party_response(fault("InvalidHerIdSupplied")) is None
    with pytest.raises(RegistryUnavailable, match="fault Internal"):
        ar_soap.parse_party_response(fault("InternalError"))
    with pytest.raises(RegistryUnavailable, match="not XML"):
        ar_soap.parse_party_response(b"<html>")
    with pytest.raises(RegistryUnavailable, match="no GetCommunicationPartyDetailsResult"):
        ar_soap.parse_party_response(soap_body("<Other/>"))


def test_soap_certificate_details() -> None:
    op = "GetCertificateDetailsForValidatingSignature"
    der = b"0\x82\x01\x00fake-der"
    body = soap_body(
        f'<{op}Response xmlns="{CP}"><{op}Result><Certificate>'
        f"{base64.b64encode(der).decode()}</Certificate><HerId>91111</HerId>"
        f"<LdapUrl>ldap://x</LdapUrl></{op}Result></{op}Response>"
    )
    assert ar_soap.parse_certificate_response(body, op) == der
    nil = soap_body(
        f'<{op}Response xmlns="{CP}"><{op}Result xmlns:i="http://www.w3.org/2001/'
        f'XMLSchema-instance" i:nil="true"/></{op}Response>'
    )
    assert ar_soap.parse_certificate_response(nil, op) is None


def test_soap_request_envelope() -> None:
    sent = ar_soap.envelope("GetCommunicationPartyDetails", 91111)
    assert b"<herId>91111</herId>" in sent
    assert CP.encode() in sent


def test_rest_party_in_the_recorded_shape() -> None:
    body = {
        "herId": 8141705,
        "parentHerId": 8141703,
        "type": "Service",
        "communicationParty": {
            "Active": True,
            "DisplayName": None,
            "Name": "Allmennlege",
            "ElectronicAddresses": [
                {"Address": "tb.test.nhn.no/Bus/8141703_async", "TypeCodeValue": "E_SB_ASYNC"},
                {
                    "Address": "tb.test.nhn.no/Bus/8141703_error",
                    "Type": {"CodeValue": "E_SB_ERROR", "OID": 9044},
                },
            ],
            "HerId": 8141705,
            "IsValidCommunicationParty": True,
            "Municipality": {"CodeValue": "0301", "OID": 3402},
            "ParentHerId": 8141703,
            "ParentOrganizationNumber": 974760673,
        },
    }
    party = ar_rest.parse_party(json.dumps(body).encode())
    assert party.her_id == 8141705
    assert party.name == "Allmennlege"
    assert party.municipality == "0301"
    assert party.orgnr == "974760673"
    assert party.parent_her_id == 8141703
    assert queue_name(party.addresses["E_SB_ERROR"]) == "8141703_error"
    with pytest.raises(RegistryUnavailable):
        ar_rest.parse_party(b"[]")
    with pytest.raises(RegistryUnavailable):
        ar_rest.parse_party(b'{"communicationParty": {}}')


def test_rest_certificate() -> None:
    der = b"0\x82fake"
    assert (
        ar_rest.parse_certificate(
            json.dumps({"Certificate": base64.b64encode(der).decode()}).encode()
        )
        == der
    )
    assert ar_rest.parse_certificate(b"{}") is None
    with pytest.raises(RegistryUnavailable):
        ar_rest.parse_certificate(b'{"certificate": "***"}')


def test_cpa_and_cpp() -> None:
    party = FakeParty(91111, "Lege", "974760673", "301", b"", cpa_id="nav:qass:35065")
    agreement = cppa_rest.parse_agreement(cpa_xml("nav:qass:35065", 131725, party), 91111)
    assert agreement.cpa_id == "nav:qass:35065"  # not a GUID: kept as a string
    with pytest.raises(RegistryUnavailable, match="does not name"):
        cppa_rest.parse_agreement(cpa_xml("x", 131725, party), 92222)
    assert cppa_rest.parse_profile(cpp_xml(party)).cpa_id is None
    with pytest.raises(RegistryUnavailable):
        cppa_rest.parse_profile(b"<x/>")


@pytest.mark.parametrize(
    ("code", "number"),
    [
        ("301", "0301"),
        ("0301", "0301"),
        ("4601", "4601"),
        ("1", "0001"),
        ("", None),
        ("12345", None),
        ("03O1", None),
        (None, None),
    ],
)
def test_kommune_nr(code: str | None, number: str | None) -> None:
    assert kommune_nr(code) == number
