"""AppRec (application receipt) v1.0 / v1.1: versions, code lists and dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# Kodeverk 8221 (feil i applikasjonskvittering): code system OID and texts.
ERROR_CODE_SYSTEM = "2.16.578.1.12.4.1.1.8221"
ERROR_CODES: dict[str, str] = {
    "T01": "Ikke XML / ikke 'well formed' / uleselig",
    "T02": "XML validerer ikke",
    "T10": "Støtter ikke meldingsformatet",
    "T99": "Annen feil på format",
    "E10": "Ugyldig meldingsidentifikator",
    "E20": "Lege finnes ikke",
    "E21": "Mottaker finnes ikke",
    "E30": "Pasientens fødselsnummer mangler",
    "E31": "Pasientens fødselsnummer er feil",
    "E32": "Pasientens navn mangler",
    "E35": "Pasienten finnes ikke i mottakersystemet",
    "E36": "Pasientopplysninger er utilstrekkelige",
    "E53": "Pasienten er ikke registrert i Folkeregisteret",
    "E54": "Pasienten er ikke registrert i mottagersystemet",
    "S01": "Feil på signatur",
    "S02": "Ugyldig sertifikat",
    "S03": "Tilbaketrukket sertifikat",
    "X99": "Annen feil",
}
FALLBACK_ERROR_CODE = "X99"
# The AppRec's Sender name: the same from the server and from the offline `validate`.
KPR_NAME = "Kommunalt pasient- og brukerregister (KPR)"


class AppRecVersion(StrEnum):
    V1_0 = "1.0"
    V1_1 = "1.1"

    @property
    def namespace(self) -> str:
        return _NAMESPACES[self]

    @property
    def mig_version(self) -> str:
        return _MIG_VERSIONS[self]

    @classmethod
    def from_namespace(cls, namespace: str | None) -> AppRecVersion | None:
        for version, ns in _NAMESPACES.items():
            if ns == namespace:
                return version
        return None


_NAMESPACES = {
    AppRecVersion.V1_0: "http://www.kith.no/xmlstds/apprec/2004-11-21",
    AppRecVersion.V1_1: "http://www.kith.no/xmlstds/apprec/2012-02-15",
}
_MIG_VERSIONS = {
    AppRecVersion.V1_0: "1.0 2004-11-21",
    AppRecVersion.V1_1: "v1.1 2012-02-15",
}


class AppRecStatus(StrEnum):
    """Kodeverk 8258 (status for applikasjonskvittering)."""

    OK = "1"
    REJECTED = "2"  # Avvist
    OK_ERROR_IN_PART = "3"  # OK, feil i delmelding

    @property
    def dn(self) -> str:
        return _STATUS_DN[self]


_STATUS_DN = {
    AppRecStatus.OK: "OK",
    AppRecStatus.REJECTED: "Avvist",
    AppRecStatus.OK_ERROR_IN_PART: "OK, feil i delmelding",
}


@dataclass(frozen=True, slots=True)
class AppRecError:
    """One AppRec Error (a CV of kodeverk 8221 when built by us)."""

    code: str  # V
    dn: str | None = None
    ot: str | None = None  # original text: what was wrong and where (never a fødselsnummer)
    system: str | None = ERROR_CODE_SYSTEM  # S


@dataclass(frozen=True, slots=True)
class Party:
    """Builder input for Sender/Receiver HCP/Inst: institution name and HER-id."""

    name: str | None
    her_id: str | None


@dataclass(frozen=True, slots=True)
class OriginalMsgRef:
    """OriginalMsgId: the message this receipt answers."""

    msg_type: str | None  # V of the original MsgInfo/Type; None when unknown
    msg_type_dn: str | None
    issue_date: str  # an xs:dateTime: the original GenDate as given
    id: str  # the original MsgId


@dataclass(frozen=True, slots=True)
class AppRecParty:
    """Sender/Receiver as read from an AppRec: the HCP's institution (or professional)."""

    role: str | None  # Role/@V
    kind: str  # "Inst" or "HCProf"
    name: str | None
    id: str | None
    id_type: str | None  # TypeId/@V, e.g. HER or ENH


@dataclass(frozen=True, slots=True)
class AppRec:
    """A parsed AppRec. `status` is kept as given (the official samples include codes outside
    8258); `status_code` gives the 8258 member when it is one."""

    version: AppRecVersion
    mig_version: str
    msg_type: str | None
    software_name: str | None
    software_version: str | None
    gen_date_raw: str
    gen_date: datetime | None
    id: str
    sender: AppRecParty
    receiver: AppRecParty
    status: str
    status_dn: str | None
    errors: tuple[AppRecError, ...]
    original: OriginalMsgRef

    @property
    def status_code(self) -> AppRecStatus | None:
        try:
            return AppRecStatus(self.status)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class ReceiptOutcome:
    """What the findings of one message amount to in its AppRec."""

    status: AppRecStatus
    errors: tuple[AppRecError, ...]
