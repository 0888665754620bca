"""The security layer's rules: envelope signature, payload encryption, business signature and
certificates.

Three families, by where the failure sits (DOMAIN.md §2.2):
- transport (`SEC-SIG-*`, `SEC-CMS-*`, `SEC-CERT-*`): the ebXML envelope signature, the CMS
  envelope and the certificate that signed the envelope. The answer is an ebMS MessageError with
  errorCode `SecurityFailure` (consequence MESSAGE_ERROR).
- business (`SEC-MSG-*`): the signature on the business document (MsgHead ds:Signature or CMS
  SignedData) and its certificate. The answer is AppRec status 2 with S01 (bad signature),
  S02 (invalid certificate) or S03 (revoked certificate).
- temporary (`SEC-CERT-STATUS-UNAVAILABLE`, `SEC-MSG-CERT-STATUS-UNAVAILABLE`): revocation
  status could not be established (no current CRL for the issuer). That is our outage, not the
  sender's fault: never a rejection. They carry ebMS errorCode `DeliveryFailure`; the intake
  service should treat them as transient (see `TRANSIENT_RULE_IDS`): store nothing as
  rejected and answer so that the sender retries (no Acknowledgment, or a MessageError
  DeliveryFailure with severity Warning).
- payload decoding after decryption (`SEC-GZIP-*`): the transport succeeded, so these are
  AppRec rejections (T01/T99), never MessageErrors.
"""

from __future__ import annotations

from app.core.findings import Consequence, Layer, Rule

_SECURITY_FAILURE = "SecurityFailure"
_DELIVERY_FAILURE = "DeliveryFailure"


def _transport(rule_id: str, title: str, text_no: str) -> Rule:
    return Rule(
        id=rule_id,
        layer=Layer.SECURITY,
        consequence=Consequence.MESSAGE_ERROR,
        title=title,
        text_no=text_no,
        ebms_error_code=_SECURITY_FAILURE,
    )


def _business(rule_id: str, title: str, text_no: str, apprec_code: str) -> Rule:
    return Rule(
        id=rule_id,
        layer=Layer.SECURITY,
        consequence=Consequence.REJECT_MESSAGE,
        title=title,
        text_no=text_no,
        apprec_code=apprec_code,
    )


# --- ebXML envelope signature (XML-DSig in SOAP:Header) ---------------------------------------
SIG_MISSING = _transport(
    "SEC-SIG-MISSING",
    "The ebXML envelope carries no XML-DSig signature",
    "ebXML-meldingen mangler signatur (ds:Signature i SOAP:Header).",
)
SIG_MALFORMED = _transport(
    "SEC-SIG-MALFORMED",
    "The envelope signature is structurally broken",
    "Signaturen i ebXML-meldingen er ufullstendig eller feil bygd opp.",
)
SIG_ALGORITHM = _transport(
    "SEC-SIG-ALGORITHM",
    "The envelope signature uses a weak or unsupported algorithm",
    "Signaturen bruker en svak eller ikke støttet algoritme (krever rsa-sha256 eller rsa-sha1).",
)
SIG_REFERENCE = _transport(
    "SEC-SIG-REFERENCE",
    "A ds:Reference of the envelope signature is outside the ebMS profile",
    "Signaturen har en referanse eller transformasjon som ikke følger ebMS-profilen.",
)
SIG_PAYLOAD_UNSIGNED = _transport(
    "SEC-SIG-PAYLOAD-UNSIGNED",
    "A payload part is not covered by the envelope signature",
    "En vedleggsdel i meldingen er ikke dekket av signaturen.",
)
SIG_INVALID = _transport(
    "SEC-SIG-INVALID",
    "The envelope signature does not verify (tampered message or wrong key)",
    "Signaturen i ebXML-meldingen er ugyldig: meldingen er endret etter signering "
    "eller signert med en annen nøkkel.",
)

# --- CMS EnvelopedData (payload encryption) -----------------------------------------------
CMS_MALFORMED = _transport(
    "SEC-CMS-MALFORMED",
    "The payload is not a readable CMS EnvelopedData",
    "Vedlegget er ikke en lesbar kryptert CMS-melding (EnvelopedData).",
)
CMS_NO_RECIPIENT = _transport(
    "SEC-CMS-NO-RECIPIENT",
    "The payload is not encrypted to any of our certificates",
    "Vedlegget er ikke kryptert til mottakerens krypteringssertifikat.",
)
CMS_ALGORITHM = _transport(
    "SEC-CMS-ALGORITHM",
    "The payload uses an unsupported key transport or content cipher",
    "Vedlegget er kryptert med en algoritme som ikke støttes "
    "(krever RSA PKCS#1 v1.5 og AES-256-CBC, AES-128-CBC eller 3DES-CBC).",
)
CMS_DECRYPT = _transport(
    "SEC-CMS-DECRYPT",
    "The payload could not be decrypted",
    "Vedlegget kunne ikke dekrypteres.",
)

# --- certificate of the envelope signer -------------------------------------------------------
CERT_UNKNOWN = _transport(
    "SEC-CERT-UNKNOWN",
    "The signing certificate is neither registered for the party nor issued by a trusted CA",
    "Signatursertifikatet er ikke registrert for avsenderen og er ikke utstedt av en godkjent "
    "utsteder.",
)
CERT_ORGNR = _transport(
    "SEC-CERT-ORGNR",
    "The signing certificate belongs to another organisation",
    "Signatursertifikatet tilhører en annen virksomhet enn avsenderen.",
)
CERT_VALIDITY = _transport(
    "SEC-CERT-VALIDITY",
    "The signing certificate is expired or not yet valid",
    "Signatursertifikatet er utløpt eller ennå ikke gyldig.",
)
CERT_KEY_USAGE = _transport(
    "SEC-CERT-KEY-USAGE",
    "The signing certificate may not be used for signatures",
    "Sertifikatet er ikke et signatursertifikat (mangler nonRepudiation/digitalSignature).",
)
CERT_REVOKED = _transport(
    "SEC-CERT-REVOKED",
    "The signing certificate is revoked",
    "Signatursertifikatet er tilbakekalt.",
)
CERT_STATUS_UNAVAILABLE = Rule(
    id="SEC-CERT-STATUS-UNAVAILABLE",
    layer=Layer.SECURITY,
    consequence=Consequence.MESSAGE_ERROR,
    title="Revocation status of the signing certificate is unavailable (temporary)",
    text_no="Mottaker kunne ikke sjekke om signatursertifikatet er tilbakekalt. Dette er en "
    "midlertidig feil hos mottaker: send meldingen på nytt senere.",
    ebms_error_code=_DELIVERY_FAILURE,
    transient=True,
)

# --- business document signature (MsgHead ds:Signature or CMS SignedData) ---------------------
MSG_SIG_INVALID = _business(
    "SEC-MSG-SIG-INVALID",
    "The business document's signature does not verify",
    "Feil på signatur: signaturen på fagmeldingen er ugyldig.",
    "S01",
)
MSG_SIG_ALGORITHM = _business(
    "SEC-MSG-SIG-ALGORITHM",
    "The business document's signature uses a weak or unsupported algorithm",
    "Feil på signatur: fagmeldingen er signert med en svak eller ikke støttet algoritme.",
    "S01",
)
MSG_SIG_MALFORMED = _business(
    "SEC-MSG-SIG-MALFORMED",
    "The business document's signature is structurally broken",
    "Feil på signatur: signaturen på fagmeldingen er ufullstendig eller feil bygd opp.",
    "S01",
)
MSG_CERT_UNKNOWN = _business(
    "SEC-MSG-CERT-UNKNOWN",
    "The business signer's certificate is not registered nor issued by a trusted CA",
    "Ugyldig sertifikat: sertifikatet er ikke registrert for avsenderen og er ikke utstedt av "
    "en godkjent utsteder.",
    "S02",
)
MSG_CERT_ORGNR = _business(
    "SEC-MSG-CERT-ORGNR",
    "The business signer's certificate belongs to another organisation",
    "Ugyldig sertifikat: sertifikatet tilhører en annen virksomhet enn avsenderen.",
    "S02",
)
MSG_CERT_VALIDITY = _business(
    "SEC-MSG-CERT-VALIDITY",
    "The business signer's certificate is expired or not yet valid",
    "Ugyldig sertifikat: sertifikatet er utløpt eller ennå ikke gyldig.",
    "S02",
)
MSG_CERT_KEY_USAGE = _business(
    "SEC-MSG-CERT-KEY-USAGE",
    "The business signer's certificate may not be used for signatures",
    "Ugyldig sertifikat: sertifikatet er ikke et signatursertifikat.",
    "S02",
)
MSG_CERT_REVOKED = _business(
    "SEC-MSG-CERT-REVOKED",
    "The business signer's certificate is revoked",
    "Tilbaketrukket sertifikat: sertifikatet som signerte fagmeldingen er tilbakekalt.",
    "S03",
)
MSG_CERT_STATUS_UNAVAILABLE = Rule(
    id="SEC-MSG-CERT-STATUS-UNAVAILABLE",
    layer=Layer.SECURITY,
    consequence=Consequence.MESSAGE_ERROR,
    title="Revocation status of the business signer's certificate is unavailable (temporary)",
    text_no="Mottaker kunne ikke sjekke om sertifikatet som signerte fagmeldingen er "
    "tilbakekalt. Dette er en midlertidig feil hos mottaker: send meldingen på nytt senere.",
    ebms_error_code=_DELIVERY_FAILURE,
    transient=True,
)

# --- decoding the decrypted payload ----------------------------------------------------------
GZIP_CORRUPT = _business(
    "SEC-GZIP-CORRUPT",
    "The decrypted payload is gzip but cannot be decompressed",
    "Ikke lesbar: innholdet er gzip-komprimert, men kan ikke pakkes ut.",
    "T01",
)
GZIP_TOO_LARGE = _business(
    "SEC-GZIP-TOO-LARGE",
    "The decrypted payload inflates beyond the size limit",
    "Innholdet blir for stort når det pakkes ut (gzip): send meldingen i mindre deler.",
    "T99",
)
PAYLOAD_TOO_MANY_ELEMENTS = _business(
    "SEC-PAYLOAD-TOO-MANY-ELEMENTS",
    "The decrypted payload has more XML elements than the intake reads (counted before parsing)",
    "Fagmeldingen har flere XML-elementer enn mottaker tar imot: send meldingen i mindre deler.",
    "T99",
)

RULES: tuple[Rule, ...] = (
    SIG_MISSING,
    SIG_MALFORMED,
    SIG_ALGORITHM,
    SIG_REFERENCE,
    SIG_PAYLOAD_UNSIGNED,
    SIG_INVALID,
    CMS_MALFORMED,
    CMS_NO_RECIPIENT,
    CMS_ALGORITHM,
    CMS_DECRYPT,
    CERT_UNKNOWN,
    CERT_ORGNR,
    CERT_VALIDITY,
    CERT_KEY_USAGE,
    CERT_REVOKED,
    CERT_STATUS_UNAVAILABLE,
    MSG_SIG_INVALID,
    MSG_SIG_ALGORITHM,
    MSG_SIG_MALFORMED,
    MSG_CERT_UNKNOWN,
    MSG_CERT_ORGNR,
    MSG_CERT_VALIDITY,
    MSG_CERT_KEY_USAGE,
    MSG_CERT_REVOKED,
    MSG_CERT_STATUS_UNAVAILABLE,
    GZIP_CORRUPT,
    GZIP_TOO_LARGE,
    PAYLOAD_TOO_MANY_ELEMENTS,
)

# Rules that mean "try again later", not "you sent something wrong".
TRANSIENT_RULE_IDS: frozenset[str] = frozenset(
    {CERT_STATUS_UNAVAILABLE.id, MSG_CERT_STATUS_UNAVAILABLE.id}
)
