"""The CPP/CPA registry over REST: `GET Agreements/HerIds/{ours}/{theirs}` (the CPA for the
pair), falling back to `GET Profiles/{theirs}` (the counterparty's CPP), `Accept:
application/xml`. CPA ids are strings (not always GUIDs)."""

from __future__ import annotations

from app.core.xmlparse import XmlRejected, parse_xml
from app.parties.channels import CPA_NS, read_reply_channels
from app.parties.spec import PartySpecError, read_cpa
from app.registries.http import Caller
from app.registries.models import Agreement, RegistryUnavailable


def parse_agreement(data: bytes, their_her_id: int) -> Agreement:
    """The counterparty's side of a CPA: its id, what it may send, what it demands."""
    try:
        specs = read_cpa(data, "CPA")
    except PartySpecError as exc:
        raise RegistryUnavailable(f"CPPA: {exc}") from None
    spec = next((s for s in specs if s.her_id == their_her_id), None)
    if spec is None or not spec.cpas:
        raise RegistryUnavailable("CPPA: the CPA does not name the counterparty")
    cpa = spec.cpas[0]
    return Agreement(
        cpa_id=cpa.cpa_id,
        service_actions=cpa.service_actions,
        requires_signing=cpa.requires_signing,
        requires_encryption=cpa.requires_encryption,
        reply_channels=cpa.reply_channels,
    )


def parse_profile(data: bytes) -> Agreement:
    """A CPP: no agreement id; the party may send what its profile says (not narrowed), and is
    answered as its delivery channels say."""
    try:
        root = parse_xml(data)
    except XmlRejected:
        raise RegistryUnavailable("CPPA: the profile is not XML") from None
    if root.tag != f"{{{CPA_NS}}}CollaborationProtocolProfile":
        raise RegistryUnavailable("CPPA: the answer is not a CPP")
    info = root.find(f"{{{CPA_NS}}}PartyInfo")
    # how the party wants to be answered, when it has no agreement with KPR (issue 26)
    channels = read_reply_channels(info) if info is not None else None
    return Agreement(cpa_id=None, reply_channels=channels)


class RestAgreementRegistry:
    """`AgreementRegistry` over the CPPA REST API at `base` (KPR_CPPA_URL)."""

    def __init__(self, caller: Caller, base: str) -> None:
        self.caller, self.base = caller, base.rstrip("/")

    async def _get(self, path: str, operation: str) -> bytes | None:
        response = await self.caller.call(
            "GET",
            f"{self.base}/{path}",
            headers={"Accept": "application/xml"},
            operation=operation,
            not_found=(404,),
        )
        return None if response is None else response.content

    async def agreement(self, our_her_id: int, their_her_id: int) -> Agreement | None:
        cpa = await self._get(f"Agreements/HerIds/{our_her_id}/{their_her_id}", "agreement")
        if cpa is not None:
            return parse_agreement(cpa, their_her_id)
        cpp = await self._get(f"Profiles/{their_her_id}", "profile")
        return None if cpp is None else parse_profile(cpp)
