"""Our key material at run time, loaded once from the files the settings name.

In `KPR_ENV=dev` (and `test`) anything not configured falls back to the development PKI in
`KPR_PKI_DIR`, as `kpr-mottak dev-pki` writes it. Production names every file explicitly
(the settings refuse to start otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from app.platform.settings import Env, Settings
from app.register.keys import RegisterKeyError, load_protector
from app.register.protect import Protector
from app.security.keys import KeyPair, load_certificate, load_key_pair


class KeyringError(ValueError):
    """A configured key file that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class Keyring:
    signing: KeyPair | None
    decryption: tuple[KeyPair, ...]
    trust_anchors: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...]
    # the register's application keys for identifiers at rest (app/register/protect.py)
    register: Protector


def _pair(key: Path, cert: Path) -> KeyPair:
    try:
        return load_key_pair(key.read_bytes(), cert.read_bytes())
    except (OSError, ValueError, TypeError) as exc:
        raise KeyringError(f"cannot use key {key} with certificate {cert}: {exc}") from None


def _crl(path: Path) -> x509.CertificateRevocationList:
    data = path.read_bytes()
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise KeyringError(f"{path} is not a CRL: {exc}") from None


def load_keyring(settings: Settings) -> Keyring:
    dev = settings.env is not Env.PRODUCTION
    pki = settings.pki_dir
    signing: KeyPair | None = None
    if settings.signing_key and settings.signing_cert:
        signing = _pair(settings.signing_key, settings.signing_cert)
    elif dev and (pki / "kpr-signing.key").is_file():
        signing = _pair(pki / "kpr-signing.key", pki / "kpr-signing.crt")
    decryption = tuple(_pair(p.key, p.cert) for p in settings.decryption_keys)
    if settings.decryption_keys_dir is not None:
        decryption += tuple(
            _pair(key, key.with_suffix(".crt"))
            for key in sorted(settings.decryption_keys_dir.glob("*.key"))
        )
    if not decryption and dev and (pki / "kpr-encryption.key").is_file():
        decryption = (_pair(pki / "kpr-encryption.key", pki / "kpr-encryption.crt"),)
    anchors_files = list(settings.trust_anchors)
    if not anchors_files and dev and (pki / "ca.crt").is_file():
        anchors_files = [pki / "ca.crt"]
    try:
        anchors = tuple(load_certificate(p.read_bytes()) for p in anchors_files)
    except ValueError as exc:
        raise KeyringError(f"KPR_TRUST_ANCHORS: not a certificate: {exc}") from None
    crl_files: list[Path] = []
    if settings.crl_dir is not None:
        crl_files = sorted(
            p for p in settings.crl_dir.iterdir() if p.suffix.lower() in (".crl", ".pem", ".der")
        )
    elif dev and (pki / "ca.crl").is_file():
        crl_files = [pki / "ca.crl"]
    try:
        register = load_protector(settings)
    except RegisterKeyError as exc:
        raise KeyringError(str(exc)) from None
    return Keyring(
        register=register,
        signing=signing,
        decryption=decryption,
        trust_anchors=anchors,
        crls=tuple(_crl(p) for p in crl_files),
    )
