"""The XPR(ipl) 56.0.0 content rules. Ids are stable: they are stored and published.

Consequences follow the official per-attribute handling in XPR(ipl)_Annotations.xsd
("Slettemerk melding" -> reject the message, "Slettemerk rad med underelementer" -> drop the
notification, "Sett verdi til NULL/-1" -> warn and blank the value). Where the Annotations
say "Ingen handling" (9) but the value is wrong, the row is kept and stored with its finding
beside it, and reported as an error so the municipality corrects it (KEEP_WITH_ERROR, AppRec
status 3, issue 21). Order, chain, references and brukerNr history never drop a row:
messages arrive out of order and dropped rows are sent again (issue 8). Where a rule is
stricter than the Annotations, app/content/iplos/handling.py says why (docs/rules.md).

Schema errors follow the same handling (app/content/iplos/schema.py, `_xsd_rule`): on
versjon, a missing notifikasjonGUID, fid or typeID (handlingObligatID 1) and outside the
notifications the message is rejected (IPL-XSD); on brukerNr (handling 2) or the structure
of a notification that notification is dropped (IPL-XSD-ROW); on a notification's other
values (handling 9: a malformed GUID, a date that is no date) the row is kept with the error
(IPL-XSD-VALUE); on a value KPR neither stores nor uses (handling 7 or 9: texts, contact
details, registration times, pasientGUID, attributes the schema prohibits, the Melding's
moduleConstraint I attributes) it is a warning (IPL-XSD-IGNORED). A message none of whose
notifications is taken is rejected (IPL-ALL-DROPPED, decision of DOMAIN.md §2.5) so that its
AppRec says status 2.

AppRec codes (kodeverk 8221), decision: T02 for what the XSD refuses; T99 ("annen feil på
format") for values of the wrong form or outside a code list that the XSD leaves as strings;
E30/E31 for a missing or wrong person identifier, E36 for an identifier type KPR cannot use;
X99 for everything about sequence, references, history and authorisation.
"""

from __future__ import annotations

from app.core.findings import Consequence, Layer, Rule

_REJECT = Consequence.REJECT_MESSAGE
_DROP = Consequence.DROP_NOTIFICATION
_KEEP = Consequence.KEEP_WITH_ERROR
_WARN = Consequence.WARN


def _rule(
    rule_id: str, code: str | None, consequence: Consequence, title: str, text_no: str
) -> Rule:
    return Rule(
        id=rule_id,
        layer=Layer.CONTENT,
        consequence=consequence,
        title=title,
        text_no=text_no,
        apprec_code=code,
    )


# --- the whole message ---
NOT_XML = _rule(
    "IPL-NOT-XML",
    "T01",
    _REJECT,
    "The IPLOS content is not well-formed XML",
    "IPLOS-meldingen er ikke velformet XML og kan ikke leses.",
)
XSD = _rule(
    "IPL-XSD",
    "T02",
    _REJECT,
    "The IPLOS message does not validate against the XPR(ipl) 56.0.0 schema outside the "
    "notifications, or in a value with handling 1 (versjon; notifikasjonGUID, fid, typeID "
    "missing)",
    "IPLOS-meldingen validerer ikke mot XML-skjemaet for XPR(ipl) 56.0.0, og feilen gjelder "
    "hele meldingen. Rett feilen i fagsystemet (EPJ) og send meldingen på nytt.",
)
XSD_ROW = _rule(
    "IPL-XSD-ROW",
    "T02",
    _DROP,
    "A notification does not validate against the schema in brukerNr (handling 2) or its "
    "structure: the notification is dropped",
    "Notifikasjonen validerer ikke mot XML-skjemaet for XPR(ipl) 56.0.0 og er ikke tatt imot. "
    "Rett verdien i fagsystemet (EPJ) og send notifikasjonen på nytt.",
)
XSD_VALUE = _rule(
    "IPL-XSD-VALUE",
    "T02",
    _KEEP,
    "A value of a notification with handling 9 does not validate against the schema (a "
    "malformed GUID, a date that is no date): the row is kept with the error",
    "En verdi i notifikasjonen validerer ikke mot XML-skjemaet for XPR(ipl) 56.0.0. "
    "Notifikasjonen er lagret med verdien slik den ble sendt. Rett verdien i fagsystemet (EPJ) "
    "og send en korreksjon (status M).",
)
XSD_IGNORED = _rule(
    "IPL-XSD-IGNORED",
    None,
    _WARN,
    "A value KPR does not use does not validate against the schema (handling 7 or 9): ignored",
    "En verdi som KPR ikke bruker validerer ikke mot XML-skjemaet for XPR(ipl) 56.0.0. "
    "Verdien er ikke lagret; resten er tatt imot. Rett verdien i fagsystemet (EPJ).",
)
GUID_UNIQUE = _rule(
    "IPL-GUID-UNIQUE",
    "T99",
    _DROP,
    "notifikasjonGUID occurs twice in the message (compared without braces and case)",
    "Samme notifikasjonGUID er brukt på flere notifikasjoner i meldingen. Hver notifikasjon "
    "skal ha sin egen GUID; den første er tatt imot. Rett GUID i EPJ og send de andre på nytt.",
)
KOMMUNE_UNIQUE = _rule(
    "IPL-KOMMUNE-UNIQUE",
    "T02",
    _REJECT,
    "kommuneNr occurs twice in the message",
    "Samme kommuneNr er oppgitt i flere Kommune-elementer. Hver kommune skal stå én gang.",
)
FID_MISSING = _rule(
    "IPL-FID-MISSING",
    "E30",
    _REJECT,
    "A Bruker has no fid: the whole message fails (Annotations: handling 1)",
    "Bruker mangler personidentifikasjon (fid: fødselsnummer, D-nummer, H-nummer eller "
    "fødselsdato). Meldingen avvises i sin helhet. Registrer personidentifikasjonen i "
    "fagsystemet (EPJ) og send meldingen på nytt.",
)
ALL_DROPPED = _rule(
    "IPL-ALL-DROPPED",
    "X99",
    _REJECT,
    "Every notification of the message was dropped: nothing was stored",
    "Ingen av notifikasjonene i meldingen er tatt imot, så meldingen er avvist. Rett feilene "
    "som er listet for hver notifikasjon i fagsystemet (EPJ) og send notifikasjonene på nytt.",
)
KOMMUNE_FORMAT = _rule(
    "IPL-KOMMUNE-FORMAT",
    "T99",
    _REJECT,
    "kommuneNr is not four digits",
    "kommuneNr skal være fire siffer.",
)
KOMMUNE_NOT_ALLOWED = _rule(
    "IPL-KOMMUNE-NOT-ALLOWED",
    "X99",
    _REJECT,
    "The sender may not report for this municipality",
    "Avsenderen er ikke registrert som innrapportør for denne kommunen. En kommune kan bare "
    "rapportere for egne kommunenummer.",
)
KOMMUNE_YEAR = _rule(
    "IPL-KOMMUNE-YEAR",
    None,
    _WARN,
    "kommuneNr is not in SSB's list of municipalities for the reporting year (an old number "
    "after a renumbering, or a new one before it): a warning naming the number in force",
    "Kommunenummeret finnes ikke i SSBs kommuneliste for rapporteringsåret. Notifikasjonene er "
    "tatt imot. Bruk kommunenummeret som gjelder for året i fagsystemet (EPJ).",
)
# --- one notification (row) ---
EVENT_COUNT = _rule(
    "IPL-EVENT-COUNT",
    "T99",
    _KEEP,
    "A Notifikasjon holds no event (the schema allows it): kept with the error",
    "Notifikasjonen skal inneholde minst én hendelse (TjenesteStart, MidlertidigStoppTil, "
    "MidlertidigStoppFra, TjenesteutforerEndret eller TjenesteSlutt). Notifikasjonen er lagret.",
)
EVENT_PERSON = _rule(
    "IPL-EVENT-PERSON",
    "T99",
    _DROP,
    "The events of one notification name different persons (brukerNr, fid or typeID)",
    "Hendelsene i notifikasjonen gjelder ulike personer (ulik brukerNr, fid eller typeID i "
    "Bruker). En notifikasjon gjelder én person: send hendelsene for hver person i egne "
    "notifikasjoner fra fagsystemet (EPJ).",
)
STATUS_CODE = _rule(
    "IPL-STATUS-CODE",
    "T99",
    _KEEP,
    "statusNotifikasjon is not N, M or C (kodeverk 7316; T is not in use yet)",
    "statusNotifikasjon skal være N (original), M (korriger/erstatt) eller C (annuller) "
    "(kodeverk 7316). Kode T skal foreløpig ikke brukes. Notifikasjonen er lagret; rett "
    "statusen i fagsystemet (EPJ).",
)
REF_MISSING = _rule(
    "IPL-REF-MISSING",
    "X99",
    _KEEP,
    "A correction or annulment has no notifikasjonRef",
    "notifikasjonRef mangler. Den skal være med for alle statuser som ikke er N, og peke på "
    "den opprinnelige N-notifikasjonen. Notifikasjonen er lagret, men kan ikke kobles til "
    "originalen; rett den i fagsystemet (EPJ).",
)
REF_UNKNOWN = _rule(
    "IPL-REF-UNKNOWN",
    None,
    _WARN,
    "notifikasjonRef does not point at an original (N) notification KPR has",
    "notifikasjonRef peker ikke på en original notifikasjon (status N) som KPR har fra "
    "kommunen. Notifikasjonen er lagret; kontroller at originalen er sendt.",
)
GUID_KNOWN = _rule(
    "IPL-GUID-KNOWN",
    "X99",
    _DROP,
    "The notifikasjonGUID was received before with other content",
    "En notifikasjon med denne notifikasjonGUID er tatt imot tidligere med annet innhold. "
    "Endringer sendes som ny notifikasjon med status M (korriger/erstatt), ny GUID og "
    "notifikasjonRef til originalen.",
)
HENDELSE_GUID_KNOWN = _rule(
    "IPL-HENDELSE-GUID-KNOWN",
    None,
    _WARN,
    "The hendelseGUID was received before in another notification (the event counts once)",
    "hendelseGUID er sendt tidligere i en annen notifikasjon. Notifikasjonen er lagret, men "
    "hendelsen telles bare én gang. En endret hendelse sendes som korreksjon (status M) med "
    "notifikasjonRef til originalen; en ny hendelse skal ha ny hendelseGUID.",
)
FORRIGE_CHAIN = _rule(
    "IPL-FORRIGE-CHAIN",
    None,
    _WARN,
    "notifikasjonForrigeGUID does not name the notification with the løpenummer just below",
    "notifikasjonForrigeGUID peker ikke på notifikasjonen med nærmeste lavere løpenummer "
    "(første notifikasjon fra kommunen skal ha 00000000-0000-0000-0000-000000000000). "
    "Notifikasjonen er lagret; kontroller rekkefølgen i uttrekket fra EPJ.",
)
LOPENR_FORMAT = _rule(
    "IPL-LOPENR-FORMAT",
    None,
    _WARN,
    "notifikasjonLopeNr is not a whole number of 1 to 18 digits (the value is ignored)",
    "notifikasjonLopeNr skal være et heltall på 1 til 18 siffer (0-9). Notifikasjonen er "
    "lagret uten løpenummer og teller ikke med i kontrollen av kompletthet.",
)
LOPENR_ORDER = _rule(
    "IPL-LOPENR-ORDER",
    None,
    _WARN,
    "notifikasjonLopeNr was used by another notification",
    "notifikasjonLopeNr er brukt av en annen notifikasjon fra kommunen. Notifikasjonen er "
    "lagret; løpenummer skal være entydige og stigende per kommune.",
)
LOPENR_GAP = _rule(
    "IPL-LOPENR-GAP",
    None,
    _WARN,
    "Løpenummer are missing between the lowest and the highest received (completeness)",
    "Det mangler løpenummer mellom det laveste og det høyeste KPR har mottatt fra kommunen. "
    "Notifikasjoner kan mangle.",
)
TJENESTETYPE_CODE = _rule(
    "IPL-TJENESTETYPE-CODE",
    "T99",
    _KEEP,
    "tjenesteType is not a code of kodeverk 9151 valid at the service's start (the "
    "TjenesteStart's hendelseDato for the same tjenesteID)",
    "tjenesteType er ikke en gyldig kode i kodeverk 9151 da tjenesten startet (utgåtte koder 6, "
    "14, 23, 24, 26, 27 og 28 kan bare brukes for tjenester som startet før de gikk ut; slike "
    "tjenester kan fortsatt stanses midlertidig, få ny utfører og avsluttes). Notifikasjonen er "
    "lagret. Velg riktig tjenestetype i fagsystemet (EPJ) og send en korreksjon (status M).",
)
TJENESTETYPE_START_UNKNOWN = _rule(
    "IPL-TJENESTETYPE-START-UNKNOWN",
    None,
    _WARN,
    "A retired tjenesteType on an event after the code's end, for a service whose start KPR "
    "does not know: accepted",
    "tjenesteType er en utgått kode, og KPR kjenner ikke starten på tjenesten (TjenesteStart "
    "for samme brukerNr og tjenesteID). Koden vurderes på datoen tjenesten startet; "
    "notifikasjonen er tatt imot. Kontroller at tjenesten startet før koden gikk ut.",
)
ORGNR_REQUIRED = _rule(
    "IPL-ORGNR-REQUIRED",
    "T99",
    _KEEP,
    "TjenesteutforerEndret needs a valid tjenesteOrgNr",
    "TjenesteutforerEndret skal ha gyldig organisasjonsnummer i tjenesteOrgNr (9 siffer som "
    "begynner med 8 eller 9, eventuelt etterfulgt av 0, med riktig kontrollsiffer). "
    "Notifikasjonen er lagret; rett organisasjonsnummeret i fagsystemet (EPJ).",
)
ORGNR_INVALID = _rule(
    "IPL-ORGNR-INVALID",
    None,
    _WARN,
    "tjenesteOrgNr is not a valid organisation number (the value is ignored)",
    "tjenesteOrgNr er ikke et gyldig organisasjonsnummer (9 siffer som begynner med 8 eller 9, "
    "eventuelt etterfulgt av 0, med riktig kontrollsiffer). Verdien er ikke lagret.",
)
TYPEID_CODE = _rule(
    "IPL-TYPEID-CODE",
    "E36",
    _DROP,
    "typeID is not 1, 2, 3 or 9 (kodeverk 9032)",
    "typeID (type personidentifikasjon, kodeverk 9032) skal være 1 (fødselsnummer), "
    "2 (D-nummer), 3 (H-nummer) eller 9 (annet, fid er da fødselsdato ddmmåå).",
)
FID_INVALID = _rule(
    "IPL-FID-INVALID",
    "E31",
    _KEEP,
    "fid is not a valid fødselsnummer, D-nummer or H-nummer",
    "Personidentifikasjonen (fid) er ikke et gyldig fødselsnummer, D-nummer eller H-nummer "
    "(11 siffer, gyldig dato og kontrollsiffer). Notifikasjonen er lagret. Kontroller "
    "personidentifikasjonen i fagsystemet (EPJ) og send en korreksjon (status M).",
)
TYPEID_KIND = _rule(
    "IPL-TYPEID-KIND",
    None,
    _WARN,
    "fid is a valid number or birth date of another kind than typeID says: stored as the kind "
    "it is",
    "typeID stemmer ikke med personidentifikasjonen (fid): verdien er av en annen type (for "
    "eksempel et D-nummer med typeID 1, et fødselsnummer med typeID 9 eller en fødselsdato med "
    "typeID 1). Notifikasjonen er tatt imot med typen verdien viser. Rett typeID i "
    "fagsystemet (EPJ).",
)
FID_DATE = _rule(
    "IPL-FID-DATE",
    "E31",
    _KEEP,
    "With typeID 9, fid must be a birth date ddmmyy",
    "Når typeID er 9 (annet) skal fid være fødselsdato på formen ddmmåå. Notifikasjonen er "
    "lagret; rett personidentifikasjonen i fagsystemet (EPJ).",
)
FID_SYNTHETIC = _rule(
    "IPL-FID-SYNTHETIC",
    "E31",
    _DROP,
    "A synthetic test identity was sent to a production address",
    "fid er et syntetisk testnummer (måned + 80). Testdata skal ikke sendes til "
    "produksjonsmottaket.",
)
BRUKERNR_FORMAT = _rule(
    "IPL-BRUKERNR-FORMAT",
    "T99",
    _DROP,
    "brukerNr is empty or longer than 100 characters",
    "brukerNr skal være 1 til 100 tegn.",
)
BRUKERNR_STABLE = _rule(
    "IPL-BRUKERNR-STABLE",
    None,
    _WARN,
    "The brukerNr was reported with another person identifier before",
    "brukerNr er tidligere rapportert med en annen personidentifikasjon i kommunen. "
    "Notifikasjonen er lagret. Er personidentifikasjonen rettet (eller ny), send en korreksjon "
    "(status M); ellers kontroller at brukerNr er riktig i EPJ.",
)
BRUKERNR_CHANGED = _rule(
    "IPL-BRUKERNR-CHANGED",
    None,
    _WARN,
    "The person was reported with another brukerNr before",
    "Personen er tidligere rapportert med et annet brukerNr i kommunen. brukerNr bør være "
    "stabilt for samme person.",
)
BRUKERNR_ID_KIND = _rule(
    "IPL-BRUKERNR-ID-KIND",
    None,
    _WARN,
    "The brukerNr was reported with another kind of identity before (e.g. D-nummer, now "
    "fødselsnummer)",
    "brukerNr er tidligere rapportert med en annen type identifikasjon (for eksempel D-nummer "
    "eller H-nummer, nå fødselsnummer). Notifikasjonen er tatt imot som samme person.",
)
BYDEL_FORMAT = _rule(
    "IPL-BYDEL-FORMAT",
    None,
    _WARN,
    "bydel is not 2 to 6 digits (the value is ignored)",
    "bydel skal være 2 til 6 siffer. Verdien er ikke lagret.",
)
HENDELSEDATO_RANGE = _rule(
    "IPL-HENDELSEDATO-RANGE",
    None,
    _WARN,
    "hendelseDato is later than hendelseRegTid",
    "hendelseDato er senere enn tidspunktet hendelsen ble registrert (hendelseRegTid).",
)
HENDELSEDATO_FUTURE = _rule(
    "IPL-HENDELSEDATO-FUTURE",
    None,
    _WARN,
    "hendelseDato is later than the extraction (MsgHead GenDate)",
    "hendelseDato er senere enn datoen meldingen ble laget (uttrekket). Kontroller datoen i "
    "fagsystemet (EPJ); notifikasjonen er tatt imot.",
)
CODE_LEADING_ZERO = _rule(
    "IPL-CODE-LEADING-ZERO",
    None,
    _WARN,
    "A code is written with a leading zero (tjenesteType 08, typeID 01): read without it",
    "Koden er skrevet med innledende null (for eksempel tjenesteType 08 eller typeID 01) og er "
    "lest uten den (8, 1). Notifikasjonen er tatt imot; skriv koden uten innledende null i "
    "fagsystemet (EPJ).",
)
# --- contacts and texts: warnings ---
KONTAKT_MISSING = _rule(
    "IPL-KONTAKT-MISSING",
    None,
    _WARN,
    "A mandatory contact type (1, 15, 16, 17) is missing",
    "Meldingen skal ha kontaktperson av type 1 (teknisk), 15 (EPJ-leverandør), "
    "16 (IPLOS kontaktperson) og 17 (IPLOS innsendingsansvarlig).",
)
KONTAKT_TYPE = _rule(
    "IPL-KONTAKT-TYPE",
    None,
    _WARN,
    "typeKontaktperson is not a code of kodeverk 8471",
    "typeKontaktperson er ikke en kode i kodeverk 8471.",
)
EPOST_FORMAT = _rule(
    "IPL-EPOST-FORMAT",
    None,
    _WARN,
    "meldEpost1/meldEpost2 is not a valid e-mail address (the value is ignored)",
    "E-postadressen er ikke gyldig. Verdien er ikke lagret.",
)
TELEFON_FORMAT = _rule(
    "IPL-TELEFON-FORMAT",
    None,
    _WARN,
    "meldTelefon is not a Norwegian phone number (the value is ignored)",
    "meldTelefon skal være et norsk telefonnummer: eventuelt +47 eller 0047 og 8 siffer. "
    "Verdien er ikke lagret.",
)
TEXT_LENGTH = _rule(
    "IPL-TEXT-LENGTH",
    None,
    _WARN,
    "A text attribute is longer than 100 characters (the value is ignored)",
    "Teksten er lengre enn 100 tegn. Verdien er ikke lagret.",
)
# --- the reporting calendar ---
CALENDAR_LATE = _rule(
    "IPL-CALENDAR-LATE",
    None,
    _WARN,
    "Notifications received after the reporting deadline",
    "Meldingen for rapporteringsåret er mottatt etter fristen. Notifikasjonene er lagret.",
)
CALENDAR_AFTER_CORRECTION = _rule(
    "IPL-CALENDAR-AFTER-CORRECTION",
    None,
    _WARN,
    "Notifications received after the correction deadline",
    "Meldingen for rapporteringsåret er mottatt etter fristen for korreksjoner. "
    "Notifikasjonene er lagret, men kommer ikke med i årets tall.",
)
CALENDAR_PILOT_WINDOW = _rule(
    "IPL-CALENDAR-PILOT-WINDOW",
    None,
    _WARN,
    "A message to the pilot address outside the configured pilot window",
    "Meldingen er sendt til pilotmottaket utenfor pilotperioden. Den er tatt imot som test; "
    "send den ordinære rapporteringen til KPRs produksjonsadresse.",
)

RULES: tuple[Rule, ...] = (
    NOT_XML,
    XSD,
    XSD_ROW,
    XSD_VALUE,
    XSD_IGNORED,
    GUID_UNIQUE,
    KOMMUNE_UNIQUE,
    FID_MISSING,
    KOMMUNE_FORMAT,
    KOMMUNE_NOT_ALLOWED,
    KOMMUNE_YEAR,
    ALL_DROPPED,
    EVENT_COUNT,
    EVENT_PERSON,
    STATUS_CODE,
    REF_MISSING,
    REF_UNKNOWN,
    GUID_KNOWN,
    HENDELSE_GUID_KNOWN,
    FORRIGE_CHAIN,
    LOPENR_FORMAT,
    LOPENR_ORDER,
    LOPENR_GAP,
    TJENESTETYPE_CODE,
    TJENESTETYPE_START_UNKNOWN,
    ORGNR_REQUIRED,
    ORGNR_INVALID,
    TYPEID_CODE,
    FID_INVALID,
    TYPEID_KIND,
    FID_DATE,
    CODE_LEADING_ZERO,
    FID_SYNTHETIC,
    BRUKERNR_FORMAT,
    BRUKERNR_STABLE,
    BRUKERNR_CHANGED,
    BRUKERNR_ID_KIND,
    BYDEL_FORMAT,
    HENDELSEDATO_RANGE,
    HENDELSEDATO_FUTURE,
    KONTAKT_MISSING,
    KONTAKT_TYPE,
    EPOST_FORMAT,
    TELEFON_FORMAT,
    TEXT_LENGTH,
    CALENDAR_LATE,
    CALENDAR_AFTER_CORRECTION,
    CALENDAR_PILOT_WINDOW,
)
RULES_BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
