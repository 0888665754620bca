"""The interface the lookup uses: one for the Adresseregister (SOAP or REST), one for the
CPP/CPA registry. Each call raises `RegistryUnavailable` when it cannot get an answer."""

from __future__ import annotations

from typing import Literal, Protocol

from app.registries.models import Agreement, ArParty

Usage = Literal["signing", "encryption"]


class AddressRegistry(Protocol):
    async def party(self, her_id: int) -> ArParty | None:
        """The communication party, or None when the AR does not know the HER-id."""
        ...

    async def certificate(self, her_id: int, usage: Usage) -> bytes | None:
        """The DER certificate for signing or encryption, or None when there is none."""
        ...


class AgreementRegistry(Protocol):
    async def agreement(self, our_her_id: int, their_her_id: int) -> Agreement | None:
        """The CPA for the pair, else the counterparty's CPP, else None."""
        ...
