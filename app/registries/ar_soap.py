"""The Adresseregister over SOAP (`ICommunicationPartyService`, namespace
http://register.nhn.no/CommunicationParty), HTTP Basic with KPR_AR_CREDENTIALS_FILE.

Parsing is pure (bytes in, `ArParty` out) so the recorded shapes can be unit-tested."""

from __future__ import annotations

import base64

from lxml import etree

from app.core.xmlparse import XmlRejected, parse_xml
from app.registries.contract import Usage
from app.registries.http import Caller
from app.registries.models import ArParty, RegistryUnavailable

CP_NS = "http://register.nhn.no/CommunicationParty"
COMMON_NS = "http://register.nhn.no/Common"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_NS = {"cp": CP_NS, "c": COMMON_NS, "s": SOAP_NS}
ACTION = CP_NS + "/ICommunicationPartyService/{op}"
_CERT_OPS: dict[Usage, str] = {
    "signing": "GetCertificateDetailsForValidatingSignature",
    "encryption": "GetCertificateDetailsForEncryption",
}


class UnknownHerId(Exception):
    """A GenericFault with InvalidHerIdSupplied (or a party the AR does not have)."""


def envelope(operation: str, her_id: int) -> bytes:
    """The SOAP 1.1 request for one operation taking a herId."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"s": SOAP_NS})
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    op = etree.SubElement(body, f"{{{CP_NS}}}{operation}", nsmap={None: CP_NS})  # type: ignore[dict-item]
    etree.SubElement(op, f"{{{CP_NS}}}herId").text = str(her_id)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def _result(data: bytes, operation: str) -> etree._Element | None:
    """The operation's Result element; None when it is nil. Raises UnknownHerId for the
    InvalidHerIdSupplied fault, RegistryUnavailable for any other fault or shape."""
    try:
        root = parse_xml(data)
    except XmlRejected:
        raise RegistryUnavailable(f"AR {operation}: the answer is not XML") from None
    fault = root.find("s:Body/s:Fault", _NS)
    if fault is not None:
        code = "".join(fault.xpath(".//*[local-name()='ErrorCode']/text()"))  # type: ignore[arg-type]
        if code.strip() == "InvalidHerIdSupplied":
            raise UnknownHerId()
        raise RegistryUnavailable(f"AR {operation}: fault {code.strip()[:60] or '(no code)'}")
    result = root.find(f"s:Body/cp:{operation}Response/cp:{operation}Result", _NS)
    if result is None:
        raise RegistryUnavailable(f"AR {operation}: no {operation}Result in the answer")
    nil = result.get("{http://www.w3.org/2001/XMLSchema-instance}nil")
    return None if nil == "true" else result


def _text(el: etree._Element, path: str) -> str | None:
    found = el.find(path, _NS)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def _int(text: str | None) -> int | None:
    if text is None or not text.lstrip("-").isdigit():
        return None
    value = int(text)
    return value if value > 0 else None


def parse_party(el: etree._Element) -> ArParty:
    """A CommunicationParty element (as in GetCommunicationPartyDetailsResult)."""
    her_id = _int(_text(el, "cp:HerId"))
    if her_id is None:
        raise RegistryUnavailable("AR: a communication party without HerId")
    addresses: dict[str, str] = {}
    for address in el.iterfind("cp:ElectronicAddresses/c:ElectronicAddress", _NS):
        kind = _text(address, "c:TypeCodeValue") or _text(address, "c:Type/c:CodeValue")
        value = _text(address, "c:Address")
        if kind and value:
            addresses.setdefault(kind, value)
    orgnr = _text(el, "cp:OrganizationNumber") or _text(el, "cp:ParentOrganizationNumber")
    return ArParty(
        her_id=her_id,
        name=_text(el, "cp:DisplayName") or _text(el, "cp:Name") or str(her_id),
        active=_text(el, "cp:Active") == "true",
        valid=_text(el, "cp:IsValidCommunicationParty") == "true",
        municipality=_text(el, "cp:Municipality/c:CodeValue"),
        orgnr=orgnr if orgnr and _int(orgnr) is not None else None,
        parent_her_id=_int(_text(el, "cp:ParentHerId")),
        addresses=addresses,
    )


def parse_party_response(data: bytes) -> ArParty | None:
    try:
        result = _result(data, "GetCommunicationPartyDetails")
    except UnknownHerId:
        return None
    return None if result is None else parse_party(result)


def parse_certificate_response(data: bytes, operation: str) -> bytes | None:
    """The DER certificate of a CertificateDetails answer (None: no certificate)."""
    try:
        result = _result(data, operation)
    except UnknownHerId:
        return None
    if result is None:
        return None
    text = _text(result, "cp:Certificate")
    if text is None:
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except ValueError:
        raise RegistryUnavailable(f"AR {operation}: the certificate is not base64") from None


class SoapAddressRegistry:
    """`AddressRegistry` over the AR's SOAP endpoint (KPR_AR_URL)."""

    def __init__(self, caller: Caller, url: str, basic: tuple[str, str] | None) -> None:
        self.caller, self.url = caller, url
        self._auth: dict[str, str] = {}
        if basic is not None:
            token = base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
            self._auth = {"Authorization": f"Basic {token}"}

    async def _call(self, operation: str, her_id: int) -> bytes:
        headers = {
            **self._auth,
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{ACTION.format(op=operation)}"',
            "Accept": "text/xml",
        }
        response = await self.caller.call(
            "POST",
            self.url,
            headers=headers,
            content=envelope(operation, her_id),
            operation=operation,
            accept_status=frozenset({500}),  # a SOAP fault: its body says which
        )
        assert response is not None
        return response.content

    async def party(self, her_id: int) -> ArParty | None:
        return parse_party_response(await self._call("GetCommunicationPartyDetails", her_id))

    async def certificate(self, her_id: int, usage: Usage) -> bytes | None:
        op = _CERT_OPS[usage]
        return parse_certificate_response(await self._call(op, her_id), op)
