"""The development PKI and the demo municipality that `make run` starts with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from app.dev.devpki import generate_dev_pki
from app.parties import repository as party_repo
from app.parties.spec import PartySpec, certificate_spec, make_party
from app.statuses import CertificateUsage

DEMO_HER_ID = 8000001
DEMO_KOMMUNE = "0301"
DEMO_EMAIL = "innsending@demo-kommune.example"


def pki_present(directory: Path) -> bool:
    names = ("ca.crt", "kpr-signing.key", "kpr-encryption.key", "municipality-signing.key")
    return all((directory / n).is_file() for n in names)


def write_pki(directory: Path, now: datetime | None = None) -> None:
    generate_dev_pki(directory, now or datetime.now(UTC))


def demo_party(
    directory: Path,
    her_id: int = DEMO_HER_ID,
    kommune: str = DEMO_KOMMUNE,
    orgnr: str | None = None,
) -> PartySpec:
    """The demo municipality, with the dev PKI's municipality certificates."""
    signing = (directory / "municipality-signing.crt").read_bytes()
    encryption = (directory / "municipality-encryption.crt").read_bytes()
    from cryptography import x509

    from app.security.certificates import organization_number

    cert = x509.load_pem_x509_certificate(signing)
    return make_party(
        her_id,
        "Demo kommune",
        orgnr or organization_number(cert),
        [kommune],
        [DEMO_EMAIL],
        certificates=(
            certificate_spec(signing, CertificateUsage.SIGNING),
            certificate_spec(encryption, CertificateUsage.ENCRYPTION),
        ),
        source="dev-pki",
    )


async def register_demo_party(session: AsyncSession, spec: PartySpec) -> bool:
    _, created = await party_repo.upsert_party(session, spec)
    return created
