"""Names the feedback shows: kodeverk 9151 (IPLOS tjenestetype, from XPR(ipl)_CodingSchemes.xsd),
the counties (fylker) by the first two digits of a kommunenummer, the user groups, the
IPLOS items whose completeness is measured, and the codes and municipalities those items are
judged against (typeID's kodeverk 9032, the municipalities divided into districts)."""

from __future__ import annotations

# kodeverk 9151; 6, 14, 23, 24, 26, 27, 28 are retired but may appear in older events
TJENESTETYPE: dict[str, str] = {
    "1": "Praktisk bistand – daglige gjøremål",
    "2": "Praktisk bistand – opplæring – daglige gjøremål",
    "3": "Praktisk bistand – brukerstyrt personlig assistanse",
    "4": "Dagaktivitetstilbud",
    "5": "Matombringing",
    "6": "Trygghetsalarm (utgått)",
    "7": "Avlastning utenfor institusjon",
    "8": "Avlastning i institusjon",
    "9": "Støttekontakt",
    "11": "Omsorgsstønad",
    "14": "Planlagte tiltak (utgått)",
    "15": "Helsetjenester i hjemmet",
    "17": "Dagopphold i institusjon",
    "18": "Tidsbegrenset opphold – utredning/behandling",
    "19": "Tidsbegrenset opphold – habilitering/rehabilitering",
    "20": "Tidsbegrenset opphold – annet",
    "21": "Langtidsopphold i institusjon",
    "22": "Nattopphold i institusjon",
    "23": "Skadeavvergende tiltak i nødssituasjoner (utgått)",
    "24": "Helsehjelp med tvang (utgått)",
    "25": "Kommunal øyeblikkelig hjelp – døgnopphold",
    "26": "Lokaliseringsteknologi (utgått)",
    "27": "Elektronisk medisineringsstøtte (utgått)",
    "28": "Digitalt tilsyn (utgått)",
    "29": "Bolig som kommunen disponerer for helse- og omsorgsformål",
}

# Users in a long-term stay have service 21. Living at home: no long-term stay and at least
# one service given outside an institution (decision, docs/feedback.md).
LONG_TERM = frozenset({"21"})
AT_HOME = frozenset({"1", "2", "3", "4", "5", "6", "7", "9", "11", "15", "26", "27", "28", "29"})

USER_GROUPS: dict[str, str] = {
    "long_term": "Langtidsopphold i institusjon",
    "home": "Hjemmeboende (tjenester utenfor institusjon)",
    "other": "Andre (bare andre opphold i institusjon)",
}

# The items stored per event and notification whose completeness the refresh counts:
# key -> (name shown, what the share is of). `type_id` and `bydel` are the Bruker's, read from
# the register store's `hendelse` rows (app/feedback/register_counts.py).
ITEMS: dict[str, tuple[str, str]] = {
    "lopenr": ("notifikasjonLopeNr", "alle notifikasjoner"),
    "ref": ("notifikasjonRef", "notifikasjoner med status M eller C"),
    "hendelse_dato": ("hendelseDato", "alle hendelser"),
    "tjeneste_id": ("tjenesteID", "alle hendelser"),
    "org_nr_changed": ("tjenesteOrgNr", "hendelser TjenesteutforerEndret (obligatorisk)"),
    "org_nr": ("tjenesteOrgNr", "alle hendelser (valgfritt)"),
    "type_id": ("typeID", "alle hendelser (gyldig kode 1, 2, 3 eller 9)"),
    "bydel": ("bydel", "alle hendelser (kommuner med bydeler; 2 til 6 siffer)"),
}
# shown only for the municipalities in BYDEL_KOMMUNER (elsewhere bydel is not used)
DISTRICT_ITEMS = frozenset({"bydel"})

# kodeverk 9032 (type personidentifikasjon): the codes IPL-TYPEID-CODE accepts
# (app/content/iplos/validate.py): 1 fødselsnummer, 2 D-nummer, 3 H-nummer, 9 annet (fid is
# then a birth date ddmmåå). typeID is counted as sent, so "01" is not a valid code here.
TYPE_ID_CODES = frozenset({"1", "2", "3", "9"})

# The municipalities divided into districts (bydeler), whose events are expected to carry
# Bruker/@bydel. Source: Statistics Norway's classification of districts, "Standard for
# bydelsinndeling" (KLASS 103, https://www.ssb.no/klass/klassifikasjoner/103): "in official
# Norwegian statistics the term bydel is tied to the four largest municipalities, Oslo,
# Bergen, Trondheim and Stavanger". Each under every number it has had since KPR began
# (2017): Bergen 1201 until 2019, 4601 from 2020; Trondheim 1601 until 2017, 5001 from 2018.
BYDEL_KOMMUNER: dict[str, str] = {
    "0301": "Oslo",
    "1201": "Bergen (til 2019)",
    "4601": "Bergen (fra 2020)",
    "1601": "Trondheim (til 2017)",
    "5001": "Trondheim (fra 2018)",
    "1103": "Stavanger",
}

# Counties by the first two digits; the numbers of 2018, 2020 and 2024 do not collide.
FYLKER: dict[str, str] = {
    "01": "Østfold",
    "02": "Akershus",
    "03": "Oslo",
    "04": "Hedmark",
    "05": "Oppland",
    "06": "Buskerud",
    "07": "Vestfold",
    "08": "Telemark",
    "09": "Aust-Agder",
    "10": "Vest-Agder",
    "11": "Rogaland",
    "12": "Hordaland",
    "14": "Sogn og Fjordane",
    "15": "Møre og Romsdal",
    "18": "Nordland",
    "19": "Troms",
    "20": "Finnmark",
    "30": "Viken",
    "31": "Østfold",
    "32": "Akershus",
    "33": "Buskerud",
    "34": "Innlandet",
    "38": "Vestfold og Telemark",
    "39": "Vestfold",
    "40": "Telemark",
    "42": "Agder",
    "46": "Vestland",
    "50": "Trøndelag",
    "54": "Troms og Finnmark",
    "55": "Troms",
    "56": "Finnmark",
}


def fylke_of(kommune_nr: str) -> str:
    return kommune_nr[:2]


def fylke_name(code: str) -> str:
    return FYLKER.get(code, f"Fylke {code}")


def has_districts(kommune_nr: str) -> bool:
    return kommune_nr in BYDEL_KOMMUNER


def tjenestetype_name(code: str) -> str:
    return TJENESTETYPE.get(code, f"Ukjent kode {code}")
