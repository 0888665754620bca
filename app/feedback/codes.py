"""Names the feedback shows: kodeverk 9151 (IPLOS tjenestetype, from XPR(ipl)_CodingSchemes.xsd),
the counties (fylker) by the first two digits of a kommunenummer, the user groups and the
IPLOS items whose completeness is measured."""

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
# key -> (name shown, what the share is of)
ITEMS: dict[str, tuple[str, str]] = {
    "lopenr": ("notifikasjonLopeNr", "alle notifikasjoner"),
    "ref": ("notifikasjonRef", "notifikasjoner med status M eller C"),
    "hendelse_dato": ("hendelseDato", "alle hendelser"),
    "tjeneste_id": ("tjenesteID", "alle hendelser"),
    "org_nr_changed": ("tjenesteOrgNr", "hendelser TjenesteutforerEndret (obligatorisk)"),
    "org_nr": ("tjenesteOrgNr", "alle hendelser (valgfritt)"),
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


def tjenestetype_name(code: str) -> str:
    return TJENESTETYPE.get(code, f"Ukjent kode {code}")
