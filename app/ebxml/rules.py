"""The transport layer's rule catalogue (ebMS 2.0, Norwegian profile).

Every rule here ends in an ebMS MessageError: the transport failed, so no AppRec is sent.
The registry-dependent rules (FROM/CPA/SERVICE/REFTO/DUPLICATE) are checked by the intake
service, which owns the registry, but live here so the catalogue is complete.
"""

from __future__ import annotations

from app.core.findings import Consequence, Layer, Rule

# ebMS 2.0 errorCode values (ebMS 2.0 §4.2.3.4.1).
VALUE_NOT_RECOGNIZED = "ValueNotRecognized"
NOT_SUPPORTED = "NotSupported"
INCONSISTENT = "Inconsistent"
OTHER_XML = "OtherXml"
TIME_TO_LIVE_EXPIRED = "TimeToLiveExpired"
SECURITY_FAILURE = "SecurityFailure"
MIME_PROBLEM = "MimeProblem"
UNKNOWN = "Unknown"


def _rule(rule_id: str, title: str, text_no: str, code: str) -> Rule:
    return Rule(
        id=rule_id,
        layer=Layer.TRANSPORT,
        consequence=Consequence.MESSAGE_ERROR,
        title=title,
        text_no=text_no,
        ebms_error_code=code,
    )


# --- MIME ------------------------------------------------------------------------------------
MIME_CONTENT_TYPE = _rule(
    "EBMS-MIME-CONTENT-TYPE",
    "Unsupported or missing Content-Type",
    "Meldingen har manglende eller ustøttet Content-Type.",
    MIME_PROBLEM,
)
MIME_BOUNDARY = _rule(
    "EBMS-MIME-BOUNDARY",
    "Multipart boundary missing or not found in the body",
    "MIME-grensen (boundary) mangler eller finnes ikke i meldingen.",
    MIME_PROBLEM,
)
MIME_TOO_MANY_PARTS = _rule(
    "EBMS-MIME-TOO-MANY-PARTS",
    "Too many MIME parts",
    "Meldingen har for mange MIME-deler.",
    MIME_PROBLEM,
)
MIME_PART_MALFORMED = _rule(
    "EBMS-MIME-PART-MALFORMED",
    "A MIME part has malformed or oversized headers",
    "En MIME-del har ugyldige eller for store hoder.",
    MIME_PROBLEM,
)
MIME_CTE_UNSUPPORTED = _rule(
    "EBMS-MIME-CTE-UNSUPPORTED",
    "Unsupported Content-Transfer-Encoding",
    "En MIME-del bruker en ustøttet Content-Transfer-Encoding.",
    MIME_PROBLEM,
)
MIME_CTE_INVALID = _rule(
    "EBMS-MIME-CTE-INVALID",
    "A MIME part cannot be decoded with its Content-Transfer-Encoding",
    "En MIME-del kan ikke dekodes med oppgitt Content-Transfer-Encoding.",
    MIME_PROBLEM,
)
MIME_START_MISSING = _rule(
    "EBMS-MIME-START-MISSING",
    "The start part (SOAP envelope) is missing",
    "Startdelen (SOAP-konvolutten) mangler i meldingen.",
    MIME_PROBLEM,
)
MIME_START_TYPE = _rule(
    "EBMS-MIME-START-TYPE",
    "The start part is not text/xml",
    "Startdelen (SOAP-konvolutten) har feil innholdstype.",
    MIME_PROBLEM,
)
MIME_CID_MISSING = _rule(
    "EBMS-MIME-CID-MISSING",
    "An attachment has no Content-ID",
    "Et vedlegg mangler Content-ID.",
    MIME_PROBLEM,
)
MIME_CID_DUPLICATE = _rule(
    "EBMS-MIME-CID-DUPLICATE",
    "Two MIME parts share a Content-ID",
    "To MIME-deler har samme Content-ID.",
    MIME_PROBLEM,
)

# --- SOAP and ebMS header --------------------------------------------------------------------
SOAP_NOT_XML = _rule(
    "EBMS-SOAP-NOT-XML",
    "The SOAP part is not well-formed or uses forbidden XML features",
    "SOAP-konvolutten er ikke velformet XML.",
    OTHER_XML,
)
SOAP_NOT_ENVELOPE = _rule(
    "EBMS-SOAP-NOT-ENVELOPE",
    "The start part is not a SOAP 1.1 envelope",
    "Startdelen er ikke en SOAP 1.1-konvolutt.",
    OTHER_XML,
)
HEADER_MISSING = _rule(
    "EBMS-HEADER-MISSING",
    "No eb:MessageHeader in the SOAP header",
    "SOAP-hodet mangler eb:MessageHeader.",
    OTHER_XML,
)
HEADER_ELEMENT_MISSING = _rule(
    "EBMS-HEADER-ELEMENT-MISSING",
    "A mandatory ebMS header element is missing or empty",
    "Et obligatorisk element i ebXML-hodet mangler eller er tomt.",
    OTHER_XML,
)
SCHEMA_INVALID = _rule(
    "EBMS-SCHEMA-INVALID",
    "The SOAP envelope does not validate against the ebMS 2.0 schema",
    "SOAP-konvolutten validerer ikke mot ebXML-skjemaet (ebMS 2.0).",
    OTHER_XML,
)
VERSION_UNSUPPORTED = _rule(
    "EBMS-VERSION-UNSUPPORTED",
    "eb:version is not 2.0",
    "Meldingen bruker en ebXML-versjon som ikke støttes.",
    NOT_SUPPORTED,
)
TO_UNKNOWN = _rule(
    "EBMS-TO-UNKNOWN",
    "The To party is not one of our addresses",
    "Mottakeren (To) er ikke en adresse som denne tjenesten tar imot meldinger for.",
    VALUE_NOT_RECOGNIZED,
)
TTL_EXPIRED = _rule(
    "EBMS-TTL-EXPIRED",
    "TimeToLive has passed",
    "Meldingens levetid (TimeToLive) er utløpt.",
    TIME_TO_LIVE_EXPIRED,
)
MANIFEST_CID_UNRESOLVED = _rule(
    "EBMS-MANIFEST-CID-UNRESOLVED",
    "A Manifest cid: reference has no MIME part",
    "En referanse i eb:Manifest peker på en MIME-del som ikke finnes.",
    MIME_PROBLEM,
)
MANIFEST_HREF_UNSUPPORTED = _rule(
    "EBMS-MANIFEST-HREF-UNSUPPORTED",
    "A Manifest reference is not a cid: URI",
    "En referanse i eb:Manifest er ikke en cid:-referanse til en MIME-del.",
    NOT_SUPPORTED,
)
PART_UNREFERENCED = _rule(
    "EBMS-PART-UNREFERENCED",
    "A MIME part is not referenced by the Manifest",
    "Meldingen har en MIME-del som ikke er referert fra eb:Manifest.",
    MIME_PROBLEM,
)
PAYLOAD_MISSING = _rule(
    "EBMS-PAYLOAD-MISSING",
    "A business message without payload",
    "Meldingen mangler nyttelast (eb:Manifest uten referanser).",
    MIME_PROBLEM,
)
MANIFEST_REF_DUPLICATE = _rule(
    "EBMS-MANIFEST-REF-DUPLICATE",
    "Two Manifest references name the same part",
    "eb:Manifest refererer samme MIME-del mer enn én gang.",
    INCONSISTENT,
)

# --- envelope shape: what the signature covers, and what it costs to check it --------------
ENVELOPE_TOO_COMPLEX = _rule(
    "EBMS-ENVELOPE-TOO-COMPLEX",
    "The SOAP part is larger, deeper or has more elements than an ebMS envelope needs",
    "SOAP-konvolutten er større eller mer sammensatt enn en ebMS-konvolutt kan være.",
    OTHER_XML,
)
ENVELOPE_UNEXPECTED_BLOCK = _rule(
    "EBMS-ENVELOPE-UNEXPECTED-BLOCK",
    "SOAP:Header or SOAP:Body holds an element the ebMS profile does not use there",
    "SOAP-konvolutten har et element som ebMS-profilen ikke bruker på dette stedet.",
    OTHER_XML,
)
ENVELOPE_UNSIGNED_BLOCK = _rule(
    "EBMS-ENVELOPE-UNSIGNED-BLOCK",
    "An ebMS element is marked with the nextMSH/next actor, which the signature leaves out",
    "Et ebMS-element er merket med SOAP:actor nextMSH eller next og er dermed ikke dekket "
    "av signaturen.",
    SECURITY_FAILURE,
)
ENVELOPE_BLOCK_REPEATED = _rule(
    "EBMS-ENVELOPE-BLOCK-REPEATED",
    "MessageHeader, Manifest, AckRequested or ds:Signature appears more than once",
    "SOAP-konvolutten har et ebMS-element som bare kan forekomme én gang, flere ganger.",
    INCONSISTENT,
)
SIGNAL_NOT_SUPPORTED = _rule(
    "EBMS-SIGNAL-NOT-SUPPORTED",
    "An ebMS signal other than Acknowledgment or MessageError",
    "Mottaker tar bare imot signalene Acknowledgment og MessageError.",
    NOT_SUPPORTED,
)
NOT_AUTHENTICATED = _rule(
    "EBMS-NOT-AUTHENTICATED",
    "The sender could not be authenticated (the one answer before authentication)",
    "Meldingen kan ikke tas imot: avsenderen kunne ikke autentiseres.",
    SECURITY_FAILURE,
)

# --- registry-dependent, checked by the caller -----------------------------------------------
FROM_UNKNOWN = _rule(
    "EBMS-FROM-UNKNOWN",
    "The From party is not a registered sender",
    "Avsenderen (From) er ikke registrert som avsender til denne tjenesten.",
    VALUE_NOT_RECOGNIZED,
)
REGISTRY_UNAVAILABLE = Rule(
    id="EBMS-REGISTRY-UNAVAILABLE",
    layer=Layer.TRANSPORT,
    consequence=Consequence.MESSAGE_ERROR,
    title="The sender is not registered and NHN's registries could not be asked (temporary)",
    text_no="Mottaker kunne ikke slå opp avsenderen i adresseregisteret. Dette er en midlertidig "
    "feil hos mottaker: send meldingen på nytt senere.",
    ebms_error_code="DeliveryFailure",
    transient=True,
)
CPA_UNKNOWN = _rule(
    "EBMS-CPA-UNKNOWN",
    "CPAId is unknown or not allowed for the sender",
    "CPAId er ukjent eller ikke gyldig for avsenderen.",
    VALUE_NOT_RECOGNIZED,
)
SERVICE_NOT_ALLOWED = _rule(
    "EBMS-SERVICE-NOT-ALLOWED",
    "Service/Action is not allowed for the sender",
    "Service/Action er ikke tillatt for avsenderen.",
    VALUE_NOT_RECOGNIZED,
)
REFTO_UNKNOWN = _rule(
    "EBMS-REFTO-UNKNOWN",
    "RefToMessageId names no message we know",
    "RefToMessageId viser til en melding som ikke er kjent.",
    VALUE_NOT_RECOGNIZED,
)
DUPLICATE_INCONSISTENT = _rule(
    "EBMS-DUPLICATE-INCONSISTENT",
    "A MessageId is reused with different content",
    "MessageId er brukt før for en melding med annet innhold.",
    INCONSISTENT,
)

RULES: tuple[Rule, ...] = (
    MIME_CONTENT_TYPE,
    MIME_BOUNDARY,
    MIME_TOO_MANY_PARTS,
    MIME_PART_MALFORMED,
    MIME_CTE_UNSUPPORTED,
    MIME_CTE_INVALID,
    MIME_START_MISSING,
    MIME_START_TYPE,
    MIME_CID_MISSING,
    MIME_CID_DUPLICATE,
    SOAP_NOT_XML,
    SOAP_NOT_ENVELOPE,
    HEADER_MISSING,
    HEADER_ELEMENT_MISSING,
    SCHEMA_INVALID,
    VERSION_UNSUPPORTED,
    TO_UNKNOWN,
    TTL_EXPIRED,
    MANIFEST_CID_UNRESOLVED,
    MANIFEST_HREF_UNSUPPORTED,
    PART_UNREFERENCED,
    PAYLOAD_MISSING,
    MANIFEST_REF_DUPLICATE,
    ENVELOPE_TOO_COMPLEX,
    ENVELOPE_UNEXPECTED_BLOCK,
    ENVELOPE_UNSIGNED_BLOCK,
    ENVELOPE_BLOCK_REPEATED,
    SIGNAL_NOT_SUPPORTED,
    NOT_AUTHENTICATED,
    FROM_UNKNOWN,
    REGISTRY_UNAVAILABLE,
    CPA_UNKNOWN,
    SERVICE_NOT_ALLOWED,
    REFTO_UNKNOWN,
    DUPLICATE_INCONSISTENT,
)
