"""Register keys for the tests: one throw-away set per test process, in files, so the app
under test (its settings name them: `register_settings`) and the tests that seed or read
rows directly share them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from app.register.keys import read_key_file, write_key_file
from app.register.protect import Protector

KEY_DIR = Path(tempfile.mkdtemp(prefix="kpr-register-keys-"))
KEY_ID = "t1"
write_key_file(KEY_DIR / f"{KEY_ID}.key")
write_key_file(KEY_DIR / "hmac.key")

# what `Settings(**REGISTER_SETTINGS)` makes the app use
REGISTER_SETTINGS: dict[str, object] = {
    "register_keys": f"{KEY_ID}={KEY_DIR / f'{KEY_ID}.key'}",
    "register_hmac_key": KEY_DIR / "hmac.key",
}
PROTECTOR = Protector(
    keys={KEY_ID: read_key_file(KEY_DIR / f"{KEY_ID}.key")},
    current=KEY_ID,
    hmac_key=read_key_file(KEY_DIR / "hmac.key"),
)


def throwaway_protector(key_id: str = "x1") -> Protector:
    """Keys no one else has."""
    return Protector(keys={key_id: os.urandom(32)}, current=key_id, hmac_key=os.urandom(32))
