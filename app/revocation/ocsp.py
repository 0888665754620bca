"""OCSP, where a certificate names a responder (Authority Information Access), asked when no
current CRL decides. An answer counts only when it is signed by the issuer itself or by a
responder certificate the issuer issued for OCSP signing, names the certificate asked about
and is current; it is kept until its nextUpdate (or `ANSWER_LIFETIME` without one). Asked in
the background only, through the one outbound client (overall deadline, byte cap, no
redirects): a message that finds no answer gets the temporary DeliveryFailure at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID
from prometheus_client import Counter

from app.outbound import OutboundClient, OutboundError
from app.platform.logs import get_logger
from app.security.certificates import OcspAnswer

log = get_logger(__name__)

ANSWER_LIFETIME = timedelta(hours=1)  # an answer without nextUpdate
MAX_RESPONSE_BYTES = 64 * 1024


def responder_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):  # ValueError: unparsable extensions
        return []
    return [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
        and d.access_location.value.startswith(("http://", "https://"))
    ]


def _signed_by(response: ocsp.OCSPResponse, signer: x509.Certificate) -> bool:
    key = signer.public_key()
    algorithm = response.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(
                response.signature, response.tbs_response_bytes, padding.PKCS1v15(), algorithm
            )
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _delegated(candidate: x509.Certificate, issuer: x509.Certificate, now: datetime) -> bool:
    """A responder certificate issued by `issuer` for OCSP signing."""
    if not candidate.not_valid_before_utc <= now <= candidate.not_valid_after_utc:
        return False
    try:
        candidate.verify_directly_issued_by(issuer)
        eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


def verify_response(
    data: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
) -> OcspAnswer:
    """The answer for `cert`, or ValueError saying why the response does not count."""
    response = ocsp.load_der_ocsp_response(data)
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise ValueError(f"responder status {response.response_status.name}")
    signers = [issuer, *(c for c in response.certificates if _delegated(c, issuer, now))]
    if not any(_signed_by(response, s) for s in signers):
        raise ValueError("not signed by the issuer or a responder it authorised")
    for single in response.responses:
        if single.serial_number != cert.serial_number:
            continue
        expected = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, single.hash_algorithm)
        request = expected.build()
        if (
            single.issuer_name_hash != request.issuer_name_hash
            or single.issuer_key_hash != request.issuer_key_hash
        ):
            continue
        if single.certificate_status is ocsp.OCSPCertStatus.UNKNOWN:
            raise ValueError("the responder does not know the certificate")
        this_update = single.this_update_utc
        next_update = single.next_update_utc or (now + ANSWER_LIFETIME)
        if this_update > now + timedelta(minutes=5) or next_update < now:
            raise ValueError("the answer is not current")
        return OcspAnswer(
            issuer=cert.issuer,
            serial=cert.serial_number,
            revoked=single.certificate_status is ocsp.OCSPCertStatus.REVOKED,
            this_update=min(this_update, now),
            next_update=next_update,
        )
    raise ValueError("the response does not name the certificate asked about")


class OcspAnswers:
    """Answers held per (issuer, serial), asked in the background (`ask_later`) when a message
    could not be checked, through the one outbound client."""

    def __init__(
        self,
        *,
        timeout: float,
        retry: timedelta,
        max_bytes: int = MAX_RESPONSE_BYTES,
        outbound: OutboundClient | None = None,
        counter: Counter | None = None,
    ) -> None:
        self.timeout = timeout  # the overall deadline of one question
        self.retry = retry  # one question per certificate per retry period
        self.max_bytes = max_bytes
        self.outbound = outbound
        self.counter = counter  # kpr_ocsp_requests_total{outcome}
        self.answers: dict[tuple[bytes, int], OcspAnswer] = {}
        self.attempts: dict[tuple[bytes, int], datetime] = {}
        self._asking: set[asyncio.Task[bool]] = set()

    def current(self, now: datetime) -> tuple[OcspAnswer, ...]:
        return tuple(
            a for a in self.answers.values() if a.next_update is None or now <= a.next_update
        )

    def _count(self, outcome: str) -> None:
        if self.counter is not None:
            self.counter.labels(outcome).inc()

    def ask_later(self, cert: x509.Certificate, issuers: Iterable[x509.Certificate]) -> bool:
        """Ask in the background (never while a message waits); False when there is nothing
        to ask or it was asked within the retry period."""
        key = (cert.issuer.public_bytes(), cert.serial_number)
        last = self.attempts.get(key)
        if not responder_urls(cert) or self.outbound is None:
            return False
        if last is not None and datetime.now(UTC) < last + self.retry:
            return False
        task = asyncio.ensure_future(self.ask(cert, tuple(issuers)))
        self._asking.add(task)  # held until done: a task nobody holds may be collected
        task.add_done_callback(self._asking.discard)
        return True

    async def close(self) -> None:
        for task in list(self._asking):
            task.cancel()
        for task in list(self._asking):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def ask(self, cert: x509.Certificate, issuers: Iterable[x509.Certificate]) -> bool:
        """Ask the certificate's responders; True when a new answer was accepted."""
        urls = responder_urls(cert)
        issuer = next((i for i in issuers if _issues(i, cert)), None)
        if not urls or issuer is None or self.outbound is None:
            return False
        key = (cert.issuer.public_bytes(), cert.serial_number)
        now = datetime.now(UTC)
        last = self.attempts.get(key)
        if last is not None and now < last + self.retry:
            return False
        self.attempts[key] = now
        # The CertID's hash only names the certificate; SHA-1 is what responders expect.
        builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())  # noqa: S303
        request = builder.build()
        body = request.public_bytes(Encoding.DER)
        for url in urls:
            try:
                response = await self.outbound.post(
                    url,
                    body,
                    content_type="application/ocsp-request",
                    max_bytes=self.max_bytes,
                    deadline=self.timeout,
                )
                answer = await asyncio.to_thread(
                    verify_response, response.content, cert, issuer, now
                )
            except (OutboundError, ValueError) as exc:
                self._count("failed")
                log.warning("ocsp.failed", url=url, error=f"{type(exc).__name__}: {exc}"[:200])
                continue
            self.answers[key] = answer
            self._count("revoked" if answer.revoked else "good")
            log.info("ocsp.answered", url=url, revoked=answer.revoked)
            return True
        return False


def _issues(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    if issuer.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
