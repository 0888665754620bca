"""Identifiers at rest: sealed with AES-GCM under a named key, opened only with it, hashed
with a key for look-ups."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.register.protect import ProtectionError, Protector


def protector(current: str = "k1", **keys: bytes) -> Protector:
    return Protector(keys=keys or {current: os.urandom(32)}, current=current, hmac_key=b"h" * 32)


@given(st.text(max_size=40))
def test_a_sealed_value_opens_to_itself_and_names_its_key(value: str) -> None:
    p = protector()
    token = p.seal(value)
    assert token.partition(":")[0] == "k1"
    assert p.open(token) == value


def test_sealing_twice_gives_different_tokens_and_one_digest() -> None:
    p = protector()
    assert p.seal("01010112345") != p.seal("01010112345")
    assert p.digest("01010112345") == p.digest("01010112345")
    assert p.digest("01010112345") != p.digest("01010112346")
    assert len(p.digest("x")) == 64


def test_a_sealer_seals_as_seal_does_with_a_fresh_nonce_for_every_value() -> None:
    p = protector()
    seal = p.sealer()
    values = [f"{i:011d}" for i in range(2500)]  # past two blocks of nonces
    tokens = [seal(v) for v in values]
    assert [p.open(t) for t in tokens] == values
    nonces = {base64.b64decode(t.partition(":")[2])[:12] for t in tokens}
    assert len(nonces) == len(values)
    assert seal("01010112345") != seal("01010112345")


def test_a_digest_needs_the_hmac_key() -> None:
    a = Protector(keys={"k1": os.urandom(32)}, current="k1", hmac_key=b"a" * 32)
    b = Protector(keys={"k1": os.urandom(32)}, current="k1", hmac_key=b"b" * 32)
    assert a.digest("01010112345") != b.digest("01010112345")


def test_an_old_key_still_opens_after_rotation() -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = protector("k1", k1=old)
    token = before.seal("01010112345")
    after = protector("k2", k2=new, k1=old)
    assert after.open(token) == "01010112345"
    assert after.seal("01010112345").startswith("k2:")  # new values under the new key


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: "k9" + t[2:],  # an unknown key
        lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),  # tampered
        lambda t: "01010112345",  # a value stored in clear
        lambda t: "k1:not base64!",
    ],
)
def test_a_token_that_does_not_open_is_an_error_never_a_value(damage: object) -> None:
    p = protector()
    token = p.seal("01010112345")
    with pytest.raises(ProtectionError):
        p.open(damage(token))  # type: ignore[operator]


def test_a_token_is_bound_to_its_key_id() -> None:
    key = os.urandom(32)
    p = protector("k1", k1=key, k2=key)
    token = p.seal("01010112345")
    with pytest.raises(ProtectionError):
        p.open("k2" + token[2:])  # same key bytes, another id: refused


@pytest.mark.parametrize(
    ("keys", "current", "hmac_key", "message"),
    [
        ({"k1": b"x" * 16}, "k1", b"h" * 32, "32 bytes"),
        ({"k1": b"x" * 32}, "k2", b"h" * 32, "not among"),
        ({"k:1": b"x" * 32}, "k:1", b"h" * 32, "without ':'"),
        ({"k1": b"x" * 32}, "k1", b"h" * 8, "HMAC"),
    ],
)
def test_unusable_keys_are_refused(
    keys: dict[str, bytes], current: str, hmac_key: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Protector(keys=keys, current=current, hmac_key=hmac_key)
