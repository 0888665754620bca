"""NHN's newer REST Adresseregister (`/api/v1/communicationparty/{herId}`,
`/api/v1/certificate/{herId}/signing|encryption`), authenticated with a HelseID access
token from a pluggable `TokenSource` (client credentials by default).

Parsing is pure (bytes in, `ArParty` out) so the recorded shapes can be unit-tested."""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Protocol
from urllib.parse import urlencode

from app.registries.contract import Usage
from app.registries.http import Caller
from app.registries.models import ArParty, RegistryUnavailable


class TokenSource(Protocol):
    async def token(self) -> str:
        """A bearer access token for the REST AR; raises RegistryUnavailable."""
        ...


class ClientCredentials:
    """HelseID's client-credentials grant at `token_url`, the token kept until shortly
    before it expires."""

    def __init__(
        self, caller: Caller, token_url: str, client_id: str, secret: str, scope: str = ""
    ) -> None:
        self.caller, self.token_url = caller, token_url
        self.client_id, self.secret, self.scope = client_id, secret, scope
        self._token: str | None = None
        self._until = 0.0

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._until:
            return self._token
        form = {"grant_type": "client_credentials", "client_id": self.client_id}
        form["client_secret"] = self.secret
        if self.scope:
            form["scope"] = self.scope
        response = await self.caller.call(
            "POST",
            self.token_url,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            content=urlencode(form).encode(),
            operation="token",
        )
        assert response is not None
        body = _json(response.content, "token")
        token, lifetime = body.get("access_token"), body.get("expires_in", 60)
        if not isinstance(token, str) or not token or not isinstance(lifetime, int | float):
            raise RegistryUnavailable("HelseID: no access_token in the answer")
        self._token, self._until = token, time.monotonic() + max(0.0, float(lifetime) - 30)
        return token


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        raise RegistryUnavailable(f"{what}: the answer is not JSON") from None
    if not isinstance(body, dict):
        raise RegistryUnavailable(f"{what}: the answer is not a JSON object")
    return body


def _positive(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.isdigit():
        return int(value) or None
    return None


def _code(value: object) -> str | None:
    if isinstance(value, dict):
        code = value.get("CodeValue")
        return code if isinstance(code, str) and code else None
    return None


def parse_party(data: bytes) -> ArParty:
    """A REST AR communication party: the object itself or under `communicationParty`."""
    body = _json(data, "AR communicationparty")
    inner = body.get("communicationParty")
    cp: dict[str, Any] = inner if isinstance(inner, dict) else body
    her_id = _positive(cp.get("HerId", body.get("herId")))
    if her_id is None:
        raise RegistryUnavailable("AR: a communication party without HerId")
    addresses: dict[str, str] = {}
    for item in cp.get("ElectronicAddresses") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("TypeCodeValue") or _code(item.get("Type"))
        value = item.get("Address")
        if isinstance(kind, str) and isinstance(value, str) and value:
            addresses.setdefault(kind, value)
    orgnr = _positive(cp.get("OrganizationNumber")) or _positive(cp.get("ParentOrganizationNumber"))
    name = cp.get("DisplayName") or cp.get("Name")
    return ArParty(
        her_id=her_id,
        name=name if isinstance(name, str) and name.strip() else str(her_id),
        active=cp.get("Active") is True,
        valid=cp.get("IsValidCommunicationParty") is True,
        municipality=_code(cp.get("Municipality")),
        orgnr=str(orgnr).zfill(9) if orgnr is not None else None,
        parent_her_id=_positive(cp.get("ParentHerId", body.get("parentHerId"))),
        addresses=addresses,
    )


def parse_certificate(data: bytes) -> bytes | None:
    """A certificate answer: JSON with a base64 `certificate` (any case), or a PEM body."""
    if b"-----BEGIN CERTIFICATE-----" in data:
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        try:
            return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
        except ValueError:
            raise RegistryUnavailable("AR certificate: an unreadable PEM") from None
    body = _json(data, "AR certificate")
    value = next((v for k, v in body.items() if k.lower() == "certificate"), None)
    if value is None:
        return None
    if not isinstance(value, str):
        raise RegistryUnavailable("AR certificate: the certificate is not a string")
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except ValueError:
        raise RegistryUnavailable("AR certificate: the certificate is not base64") from None


class RestAddressRegistry:
    """`AddressRegistry` over the REST AR at `base` (KPR_AR_URL, e.g. https://.../ar)."""

    def __init__(self, caller: Caller, base: str, tokens: TokenSource) -> None:
        self.caller, self.base, self.tokens = caller, base.rstrip("/"), tokens

    async def _get(self, path: str, operation: str) -> bytes | None:
        headers = {
            "Authorization": f"Bearer {await self.tokens.token()}",
            "Accept": "application/json",
        }
        response = await self.caller.call(
            "GET", f"{self.base}{path}", headers=headers, operation=operation, not_found=(404,)
        )
        return None if response is None else response.content

    async def party(self, her_id: int) -> ArParty | None:
        data = await self._get(f"/api/v1/communicationparty/{her_id}", "communicationparty")
        return None if data is None else parse_party(data)

    async def certificate(self, her_id: int, usage: Usage) -> bytes | None:
        data = await self._get(f"/api/v1/certificate/{her_id}/{usage}", f"certificate-{usage}")
        return None if data is None else parse_certificate(data)
