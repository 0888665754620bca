"""Rules the intake itself enforces: size, downgrade protection, internal failures."""

from __future__ import annotations

from app.core.findings import Consequence, Layer, Rule

TOO_LARGE = Rule(
    id="EBMS-TOO-LARGE",
    layer=Layer.TRANSPORT,
    consequence=Consequence.MESSAGE_ERROR,
    title="The request body is larger than KPR_MAX_MESSAGE_BYTES",
    text_no="Meldingen er større enn mottaker tillater.",
    ebms_error_code="DeliveryFailure",
)
PLAINTEXT_REFUSED = Rule(
    id="SEC-PLAINTEXT-REFUSED",
    layer=Layer.SECURITY,
    consequence=Consequence.MESSAGE_ERROR,
    title="An unencrypted payload from a party that must encrypt",
    text_no="Innholdet er ikke kryptert, men avsender skal kryptere meldinger til KPR.",
    ebms_error_code="SecurityFailure",
)
ENVELOPE_UNSIGNED_REFUSED = Rule(
    id="SEC-ENVELOPE-UNSIGNED-REFUSED",
    layer=Layer.SECURITY,
    consequence=Consequence.MESSAGE_ERROR,
    title="An unsigned ebXML envelope from a party that must sign",
    text_no="ebXML-meldingen er ikke signert, men avsender skal signere meldinger til KPR.",
    ebms_error_code="SecurityFailure",
)
DOCUMENT_UNSIGNED = Rule(
    id="SEC-MSG-UNSIGNED",
    layer=Layer.SECURITY,
    consequence=Consequence.REJECT_MESSAGE,
    title="The business document (MsgHead) is not signed by a party that must sign",
    text_no="Fagmeldingen (MsgHead) er ikke signert, verken med ds:Signature eller CMS SignedData.",
    apprec_code="S01",
)
INTERNAL_ERROR = Rule(
    id="EBMS-INTERNAL-ERROR",
    layer=Layer.TRANSPORT,
    consequence=Consequence.MESSAGE_ERROR,
    title="An internal error while processing (temporary; the message was stored)",
    text_no="Mottaker fikk en intern feil under behandlingen. Meldingen er lagret; send den "
    "på nytt senere.",
    ebms_error_code="DeliveryFailure",
    transient=True,
)
UNAVAILABLE = Rule(
    id="EBMS-UNAVAILABLE",
    layer=Layer.TRANSPORT,
    consequence=Consequence.MESSAGE_ERROR,
    title="The database is unreachable: nothing was stored (temporary; the sender retries)",
    text_no="Mottaker er midlertidig utilgjengelig, og meldingen er ikke mottatt. Send den på "
    "nytt senere.",
    ebms_error_code="DeliveryFailure",
    transient=True,
)

RULES: tuple[Rule, ...] = (
    TOO_LARGE,
    PLAINTEXT_REFUSED,
    ENVELOPE_UNSIGNED_REFUSED,
    DOCUMENT_UNSIGNED,
    INTERNAL_ERROR,
    UNAVAILABLE,
)
