"""The register's keys from the files the settings name (`KPR_REGISTER_KEYS`,
`KPR_REGISTER_HMAC_KEY`). Each file holds 32 random bytes in base64 on one line, e.g.
`openssl rand -base64 32 > k2.key`.

Outside production, keys not configured come from `KPR_PKI_DIR/register/` (`k1.key`,
`hmac.key`), written there on first use as `kpr-mottak dev-pki` writes the development PKI.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import tempfile
from pathlib import Path

from app.platform.private_files import private_dir
from app.platform.settings import Env, Settings
from app.register.protect import KEY_BYTES, Protector

DEV_KEY_ID = "k1"


class RegisterKeyError(ValueError):
    """A configured key file that cannot be used; the message names the file."""


def read_key_file(path: Path) -> bytes:
    try:
        text = path.read_text("ascii").strip()
        key = base64.b64decode(text, validate=True)
    except (OSError, UnicodeDecodeError, binascii.Error) as exc:
        raise RegisterKeyError(f"cannot read register key {path}: {exc}") from None
    if len(key) < KEY_BYTES:
        raise RegisterKeyError(f"register key {path} holds {len(key)} bytes, needs {KEY_BYTES}")
    return key


def write_key_file(path: Path) -> bool:
    """A new random key at `path`, readable by its owner only; False when one is there. The
    file appears whole (written aside, then linked in place): two processes starting at once
    never read a half-written key, and the first one's key wins."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii") + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def dev_key_dir(settings: Settings) -> Path:
    return settings.pki_dir / "register"


def ensure_dev_keys(directory: Path) -> None:
    """The development keys, created when missing."""
    for name in (f"{DEV_KEY_ID}.key", "hmac.key"):
        if not (directory / name).is_file():
            write_key_file(directory / name)


def load_protector(settings: Settings) -> Protector:
    """The register's keys as configured; outside production the development keys fill in
    what is not configured."""
    pairs = list(settings.register_keys)
    hmac_path = settings.register_hmac_key
    if settings.env is not Env.PRODUCTION and (not pairs or hmac_path is None):
        directory = dev_key_dir(settings)
        ensure_dev_keys(directory)
        if not pairs:
            pairs = [(DEV_KEY_ID, directory / f"{DEV_KEY_ID}.key")]
        if hmac_path is None:
            hmac_path = directory / "hmac.key"
    if not pairs or hmac_path is None:
        raise RegisterKeyError("KPR_REGISTER_KEYS and KPR_REGISTER_HMAC_KEY must be set")
    keys = {kid: read_key_file(path)[:KEY_BYTES] for kid, path in pairs}
    try:
        return Protector(keys=keys, current=pairs[0][0], hmac_key=read_key_file(hmac_path))
    except ValueError as exc:
        raise RegisterKeyError(str(exc)) from None
