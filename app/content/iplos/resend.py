"""Resends and corrections across messages (issue 21, item 5).

- A notification sent again with its GUID is the same notification when only what the EPJ
  stamps anew on every extraction differs: `notifikasjonTid`, `hendelseRegTid` and
  `pasientGUID`. Its *core digest* leaves those out; the register keeps the values first
  stored. (The full digest is unchanged: stored digests are compared with new ones.)
- A correction or annulment whose original KPR received but did not take (dropped, or in a
  rejected message) is told so: the original will never be linked.
"""

from __future__ import annotations

import datetime
import hashlib

from app.content.calendar import local_date
from app.content.model import StoredNotification

# what a resend may renew (names as the content digest writes them: "\0name=value")
_RENEWED = ("\x00notifikasjonTid=", "\x00hendelseRegTid=", "\x00pasientGUID=")


def core_digest(parts: list[str]) -> str:
    """SHA-256 over the content digest's parts without the renewed attributes (see
    `validate._attributes`)."""
    return hashlib.sha256(
        "".join([p for p in parts if not p.startswith(_RENEWED)]).encode()
    ).hexdigest()


def same_notification(stored: StoredNotification, digest: str, core: str) -> bool:
    """A stored notification sent again: identical, or differing only in what a resend may
    renew (rows stored before the core digest was kept compare in full)."""
    if stored.content_sha256 == digest:
        return True
    return bool(core) and stored.core_sha256 is not None and stored.core_sha256 == core


def unknown_ref_text(
    status: str, in_message: int | None, refused_at: datetime.datetime | None
) -> str:
    """IPL-REF-UNKNOWN's detail: what happened to the original the row names."""
    what = (
        "Korreksjonen (status M) er lagret og gjelder i stedet for originalen."
        if status == "M"
        else f"Notifikasjonen (status {status}) er lagret; originalen er ikke i registeret."
    )
    if in_message is not None:
        return (
            f"notifikasjonRef peker på notifikasjon nr. {in_message} i denne meldingen, som "
            f"ikke er tatt imot (se feilen for den). Originalen blir ikke koblet. {what}"
        )
    if refused_at is not None:
        return (
            f"notifikasjonRef peker på en notifikasjon KPR mottok "
            f"{local_date(refused_at):%d.%m.%Y}, men ikke tok imot fordi den hadde feil (se "
            f"feillisten). Originalen blir ikke koblet. {what}"
        )
    return (
        "notifikasjonRef peker på en notifikasjon KPR ikke har mottatt (ennå). Notifikasjonen "
        f"(status {status}) er lagret og kobles til originalen når den kommer."
    )
