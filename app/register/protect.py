"""Direct identifiers (fid, a typeID 9 birth date) never stand in the database in clear.

`Protector.seal` encrypts a value with AES-GCM under the current application key (kept in a
file outside the database) and returns a token `KEYID:BASE64` that names its key, so keys
rotate row by row (`kpr-mottak register rotate-key`). `Protector.digest` is a keyed hash
(HMAC-SHA-256) for joins and look-ups: equal values give equal digests, and without the HMAC
key nobody can test a guessed fødselsnummer against the database (11 digits with a check digit
are few enough to enumerate).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12
_NONCES_AT_ONCE = 1024
# Binds a ciphertext to its purpose: a sealed value cannot be replayed as another kind.
_AAD = b"kpr-mottak register identifier v1:"
KEY_BYTES = 32


class ProtectionError(ValueError):
    """A token that cannot be opened: unknown key id, damaged, or not a token at all."""


@dataclass(frozen=True, slots=True)
class Protector:
    """The register's keys: `keys` by id (each 32 bytes), `current` the one that encrypts,
    and the HMAC key. Immutable: a key reload builds a new one."""

    keys: Mapping[str, bytes]
    current: str
    hmac_key: bytes
    # one cipher per key, made once: a feed page opens 5 000 values
    _ciphers: dict[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError(f"the current register key '{self.current}' is not among the keys")
        for kid, key in self.keys.items():
            if not kid or ":" in kid or len(kid) > 32:
                raise ValueError(f"register key id '{kid}' must be 1-32 characters without ':'")
            if len(key) != KEY_BYTES:
                raise ValueError(f"register key '{kid}' must be {KEY_BYTES} bytes")
        if len(self.hmac_key) < KEY_BYTES:
            raise ValueError(f"the register HMAC key must be at least {KEY_BYTES} bytes")
        object.__setattr__(self, "_ciphers", {kid: AESGCM(k) for kid, k in self.keys.items()})

    def seal(self, value: str) -> str:
        """`value` encrypted under the current key, as a token naming that key."""
        return self._seal(os.urandom(_NONCE), value)

    def sealer(self) -> Callable[[str], str]:
        """`seal` for many values: their random nonces are read from the OS in blocks of
        `_NONCES_AT_ONCE` (one call each cost up to 25 µs on a loaded machine: 2.5 s for a
        message of 100 000)."""
        pool = b""
        at = 0

        def seal(value: str) -> str:
            nonlocal pool, at
            if at == len(pool):
                pool, at = os.urandom(_NONCE * _NONCES_AT_ONCE), 0
            at += _NONCE
            return self._seal(pool[at - _NONCE : at], value)

        return seal

    def _seal(self, nonce: bytes, value: str) -> str:
        sealed = self._ciphers[self.current].encrypt(
            nonce, value.encode("utf-8"), _AAD + self.current.encode()
        )
        return f"{self.current}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def seal_optional(self, value: str | None) -> str | None:
        return None if value is None else self.seal(value)

    def open(self, token: str) -> str:
        """The value a token holds; `ProtectionError` when it cannot be opened."""
        kid, sep, body = token.partition(":")
        cipher = self._ciphers.get(kid)
        if not sep or cipher is None:
            raise ProtectionError(f"no register key '{kid}' for this value")
        try:
            raw = base64.b64decode(body, validate=True)
            plain = cipher.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD + kid.encode())
        except (binascii.Error, InvalidTag, ValueError) as exc:
            raise ProtectionError(f"a value sealed with key '{kid}' does not open") from exc
        return plain.decode("utf-8")

    def open_optional(self, token: str | None) -> str | None:
        return None if token is None else self.open(token)

    def digest(self, value: str) -> str:
        """The keyed hash of `value` (64 hex characters)."""
        return hmac.new(self.hmac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
