"""Local fakes of NHN's registries that speak the real contracts, for tests and `make run`
(`kpr-mottak dev registry`): the AR over SOAP (POST /ar), the REST AR (/ar-rest/api/v1/...)
behind a HelseID-like token endpoint (POST /helseid/token), and the CPPA REST API (/cppa/...).

Built from the contracts and the recorded bodies' shapes (no recorded text is copied). What
they serve is a `FakeRegistry` the test changes as it goes: parties, outages, slowness,
faults."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request, Response
from lxml import etree

from app.core.xmlparse import XmlRejected, parse_xml
from app.parties.channels import CPA_NS
from app.registries.ar_soap import _CERT_OPS, COMMON_NS, CP_NS, SOAP_NS

_XSI = "http://www.w3.org/2001/XMLSchema-instance"
FAKE_TOKEN = "fake-helseid-token"  # noqa: S105 - a fixed token of a local fake


@dataclass
class FakeParty:
    her_id: int
    name: str
    orgnr: str
    municipality: str  # as the AR writes it: "301" for Oslo
    signing_der: bytes
    encryption_der: bytes | None = None
    active: bool = True
    queue_host: str = "sb.test.nhn.no/DigitalDialog"
    cpa_id: str | None = None  # an agreement with every counterparty under this id

    @property
    def addresses(self) -> dict[str, str]:
        base = f"{self.queue_host}/{self.her_id}"
        return {
            "E_SB_ASYNC": f"{base}_async",
            "E_SB_SYNC": f"{base}_sync",
            "E_SB_ERROR": f"{base}_error",
        }


@dataclass
class FakeRegistry:
    parties: dict[int, FakeParty] = field(default_factory=dict)
    down: bool = False  # every call answers 503
    delay: float = 0.0  # seconds before each answer
    fault: str | None = None  # a GenericFault ErrorCode for every SOAP call
    calls: list[str] = field(default_factory=list)  # operations served, in order

    def add(self, party: FakeParty) -> None:
        self.parties[party.her_id] = party


def _el(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        child.text = text
    return child


def _code(parent: etree._Element, name: str, value: str, oid: str) -> None:
    code = _el(parent, CP_NS, name)
    _el(code, COMMON_NS, "Active", "true")
    _el(code, COMMON_NS, "CodeValue", value)
    _el(code, COMMON_NS, "OID", oid)


def _soap(operation: str, fill: dict[str, str] | None, party: FakeParty | None) -> bytes:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"s": SOAP_NS})
    body = _el(env, SOAP_NS, "Body")
    response = etree.SubElement(
        body,
        f"{{{CP_NS}}}{operation}Response",
        nsmap={None: CP_NS, "a": COMMON_NS, "i": _XSI},  # type: ignore[dict-item]
    )
    result = _el(response, CP_NS, f"{operation}Result")
    if fill is None and party is None:
        result.set(f"{{{_XSI}}}nil", "true")
    for name, value in (fill or {}).items():
        _el(result, CP_NS, name, value)
    if party is not None:
        _party_element(result, party)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def _party_element(result: etree._Element, p: FakeParty) -> None:
    result.set(f"{{{_XSI}}}type", "Organization")
    _el(result, CP_NS, "Active", "true" if p.active else "false")
    _el(result, CP_NS, "DisplayName", p.name)
    addresses = _el(result, CP_NS, "ElectronicAddresses")
    for kind, value in p.addresses.items():
        address = _el(addresses, COMMON_NS, "ElectronicAddress")
        _el(address, COMMON_NS, "Address", value)
        _el(address, COMMON_NS, "TypeCodeValue", kind)
    _el(result, CP_NS, "HerId", str(p.her_id))
    _el(result, CP_NS, "IsValidCommunicationParty", "true")
    _code(result, "Municipality", p.municipality, "3402")
    _el(result, CP_NS, "Name", p.name)
    _el(result, CP_NS, "ParentHerId", "-1")
    _el(result, CP_NS, "OrganizationNumber", p.orgnr)


def _fault(code: str) -> bytes:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"s": SOAP_NS})
    fault = _el(_el(env, SOAP_NS, "Body"), SOAP_NS, "Fault")
    etree.SubElement(fault, "faultcode").text = "s:Client"
    etree.SubElement(fault, "faultstring").text = code
    detail = etree.SubElement(fault, "detail")
    generic = _el(detail, CP_NS, "GenericFault")
    _el(generic, CP_NS, "ErrorCode", code)
    _el(generic, CP_NS, "Message", "fake")
    return bytes(etree.tostring(env, xml_declaration=True, encoding="utf-8"))


def _soap_answer(fake: FakeRegistry, operation: str, her_id: int) -> Response:
    xml = "text/xml; charset=utf-8"
    party = fake.parties.get(her_id)
    if fake.fault is not None:
        return Response(_fault(fake.fault), 500, media_type=xml)
    if party is None:
        return Response(_fault("InvalidHerIdSupplied"), 500, media_type=xml)
    if operation == "GetCommunicationPartyDetails":
        return Response(_soap(operation, None, party), media_type=xml)
    der = party.signing_der if operation == _CERT_OPS["signing"] else party.encryption_der
    if der is None:
        return Response(_soap(operation, None, None), media_type=xml)
    fill = {"Certificate": base64.b64encode(der).decode(), "HerId": str(her_id)}
    return Response(_soap(operation, fill, None), media_type=xml)


def _rest_party(p: FakeParty) -> dict[str, object]:
    return {
        "herId": p.her_id,
        "parentHerId": None,
        "type": "Organization",
        "communicationParty": {
            "Active": p.active,
            "DisplayName": p.name,
            "ElectronicAddresses": [
                {"Address": v, "TypeCodeValue": k, "Type": {"CodeValue": k, "OID": 9044}}
                for k, v in p.addresses.items()
            ],
            "HerId": p.her_id,
            "IsValidCommunicationParty": True,
            "Municipality": {"CodeValue": p.municipality.zfill(4), "OID": 3402},
            "Name": p.name,
            "OrganizationNumber": int(p.orgnr),
        },
    }


def cpa_xml(cpa_id: str, ours: int, theirs: FakeParty) -> bytes:
    """A small CPA between KPR (`ours`) and the party, in the CPPA 2.0 namespace."""
    tp = CPA_NS
    root = etree.Element(f"{{{tp}}}CollaborationProtocolAgreement", nsmap={"tp": tp})
    root.set(f"{{{tp}}}cpaid", cpa_id)
    for her, name in ((ours, "KPR"), (theirs.her_id, theirs.name)):
        info = _el(root, tp, "PartyInfo")
        info.set(f"{{{tp}}}partyName", name)
        party_id = _el(info, tp, "PartyId", str(her))
        party_id.set(f"{{{tp}}}type", "HER")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def cpp_xml(party: FakeParty) -> bytes:
    tp = CPA_NS
    root = etree.Element(f"{{{tp}}}CollaborationProtocolProfile", nsmap={"tp": tp})
    info = _el(root, tp, "PartyInfo")
    _el(info, tp, "PartyId", str(party.her_id)).set(f"{{{tp}}}type", "HER")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _rest_ar(
    app: FastAPI, fake: FakeRegistry, gate: Callable[[str], Awaitable[Response | None]]
) -> None:
    """The REST AR and its token endpoint."""

    @app.post("/helseid/token")
    async def token() -> Response:
        if (down := await gate("token")) is not None:
            return down
        body = {"access_token": FAKE_TOKEN, "expires_in": 300, "token_type": "Bearer"}
        return Response(json.dumps(body), media_type="application/json")

    @app.get("/ar-rest/api/v1/{kind}/{her_id}")
    @app.get("/ar-rest/api/v1/{kind}/{her_id}/{usage}")
    async def ar_rest(request: Request, kind: str, her_id: int, usage: str = "") -> Response:
        if (down := await gate(f"rest-{kind}")) is not None:
            return down
        if request.headers.get("Authorization") != f"Bearer {FAKE_TOKEN}":
            return Response(b"", 401)
        party = fake.parties.get(her_id)
        if party is None:
            return Response(b"", 404)
        if kind == "communicationparty":
            return Response(json.dumps(_rest_party(party)), media_type="application/json")
        der = party.signing_der if usage == "signing" else party.encryption_der
        if der is None:
            return Response(b"", 404)
        body = {"certificate": base64.b64encode(der).decode()}
        return Response(json.dumps(body), media_type="application/json")


def create_fake_app(fake: FakeRegistry) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    async def gate(operation: str) -> Response | None:
        fake.calls.append(operation)
        if fake.delay:
            await asyncio.sleep(fake.delay)
        return Response(b"unavailable", 503) if fake.down else None

    @app.post("/ar")
    async def ar_soap(request: Request) -> Response:
        action = request.headers.get("SOAPAction", "").strip('"').rsplit("/", 1)[-1]
        if (down := await gate(action)) is not None:
            return down
        try:
            root = parse_xml(await request.body())
        except XmlRejected:
            return Response(_fault("InvalidRequest"), 500, media_type="text/xml")
        her = "".join(root.xpath("//*[local-name()='herId']/text()")).strip()  # type: ignore[arg-type]
        return _soap_answer(fake, action, int(her) if her.isdigit() else 0)

    _rest_ar(app, fake, gate)

    @app.get("/cppa/Agreements/HerIds/{ours}/{theirs}")
    async def agreement(ours: int, theirs: int) -> Response:
        if (down := await gate("agreement")) is not None:
            return down
        party = fake.parties.get(theirs)
        if party is None or party.cpa_id is None:
            return Response(b"", 404)
        return Response(cpa_xml(party.cpa_id, ours, party), media_type="application/xml")

    @app.get("/cppa/Profiles/{her_id}")
    async def profile(her_id: int) -> Response:
        if (down := await gate("profile")) is not None:
            return down
        party = fake.parties.get(her_id)
        if party is None:
            return Response(b"", 404)
        return Response(cpp_xml(party), media_type="application/xml")

    return app


@dataclass(frozen=True, slots=True)
class Served:
    base: str  # http://127.0.0.1:PORT

    @property
    def ar_soap(self) -> str:
        return f"{self.base}/ar"

    @property
    def ar_rest(self) -> str:
        return f"{self.base}/ar-rest"

    @property
    def cppa(self) -> str:
        return f"{self.base}/cppa"

    @property
    def token_url(self) -> str:
        return f"{self.base}/helseid/token"


@contextlib.asynccontextmanager
async def serve_fake(
    fake: FakeRegistry, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Served]:
    """The fakes on a loopback port (0: any free one) for as long as the block runs."""
    import uvicorn

    config = uvicorn.Config(
        create_fake_app(fake), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # the start failed: raise why
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield Served(f"http://{host}:{bound}")
    finally:
        server.should_exit = True
        await task


def dev_registry_parties(pki_dir: Path) -> FakeRegistry:
    """The dev PKI's demo municipality (HER 8000001, Oslo written "301") in a fake registry."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from app.dev.devsetup import DEMO_HER_ID
    from app.security.certificates import organization_number

    def der(name: str) -> bytes:
        cert = x509.load_pem_x509_certificate((pki_dir / name).read_bytes())
        return cert.public_bytes(Encoding.DER)

    signing = x509.load_der_x509_certificate(der("municipality-signing.crt"))
    fake = FakeRegistry()
    fake.add(
        FakeParty(
            her_id=DEMO_HER_ID,
            name="Demo kommune",
            orgnr=organization_number(signing) or "920000002",
            municipality="301",
            signing_der=der("municipality-signing.crt"),
            encryption_der=der("municipality-encryption.crt"),
        )
    )
    return fake
