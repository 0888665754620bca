"""The one table from findings to AppRec status (kodeverk 8258) and errors (kodeverk 8221).

- Any message-level finding (consequence REJECT_MESSAGE, or MESSAGE_ERROR should one reach
  here) -> status 2 (Avvist).
- Otherwise any row-level finding (DROP_NOTIFICATION, or KEEP_WITH_ERROR: the row is stored
  but must be corrected) -> status 3 (OK, feil i delmelding).
- Otherwise (warnings only, or nothing) -> status 1 (OK), with no Error: warnings reach the
  municipality through its error list, not through the receipt.

Errors, in this order:
- one Error per distinct message-level finding (same rule and same detail only once);
- one Error per failing notification (findings grouped by notifikasjonGUID, else brukerNr,
  else location), V = the code of its first finding, OT naming the notification and every rule
  it broke. In a rejected message these come after the message-level ones, so a sender can
  fix everything in one round.
- At most `max_errors` Error elements: past that, the first `max_errors - 1` are kept and one
  summary Error closes the list, with V = the most frequent code among those left out and an
  OT counting what was left out per code. A message with 100 000 bad rows thus gets a receipt
  of bounded size; the full list is in the municipality's error list.

OT never holds a fødselsnummer: it is built from rule ids, notification GUIDs, brukerNr and
the findings' details (which by contract quote no value that could hold a fid); as defence in
depth the `fid` of the finding's subject, any 11-digit run, an 11-digit number split after the
birth date (`018544 03784`, also with `.` or `-`) and any run of 10 or more digits are masked,
except the notification's own brukerNr when it is neither its fid nor a valid person number
(a brukerNr of digits is how many EPJs number their users, and the reader needs it).
GUIDs are left whole: the receipt names notifications by them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from app.apprec.model import (
    ERROR_CODES,
    FALLBACK_ERROR_CODE,
    AppRecError,
    AppRecStatus,
    ReceiptOutcome,
)
from app.core.findings import Consequence, Finding
from app.identifiers import PERSON_ID_MASK, mask_person_ids

DEFAULT_MAX_ERRORS = 100
MAX_OT_LENGTH = 1000

_MESSAGE_LEVEL = {Consequence.MESSAGE_ERROR, Consequence.REJECT_MESSAGE}
_ROW_LEVEL = {Consequence.DROP_NOTIFICATION, Consequence.KEEP_WITH_ERROR}
# What the reader does about a dropped notification (DOMAIN.md 2.5: the receipt helps its
# reader); ends every row's OT.
_NEXT_STEP = " Rett feilen i fagsystemet (EPJ) og send notifikasjonen på nytt."
# ... and about one KPR kept with its error (issue 21): the stored row is corrected by an M.
_NEXT_STEP_KEPT = (
    " Rett feilen i fagsystemet (EPJ) og send en korreksjon (status M) med notifikasjonRef "
    "til denne notifikasjonen."
)


def error_code(finding: Finding) -> str:
    """The 8221 code of a finding: its rule's, or X99 when the rule has none we know."""
    code = finding.rule.apprec_code
    return code if code in ERROR_CODES else FALLBACK_ERROR_CODE


def _shown_bruker_nr(finding: Finding | None) -> str | None:
    """The finding's brukerNr when it may be shown whole: the OT names a notification by it,
    and an EPJ's brukerNr is often a long number. Never when it is the fid; the mask itself
    refuses a valid person number (an EPJ may use the fødselsnummer as brukerNr)."""
    s = finding.subject if finding is not None else None
    if s is None or not s.bruker_nr or s.bruker_nr == s.fid:
        return None
    return s.bruker_nr


def _clean(text: str, finding: Finding | None = None) -> str:
    fid = finding.subject.fid if finding is not None and finding.subject is not None else None
    if fid and len(fid) >= 6:  # a short junk value would mask unrelated text
        text = text.replace(fid, PERSON_ID_MASK)
    text = " ".join(text.split())
    # also 10+ digits and a split fid; the notification's own brukerNr stays readable
    text = mask_person_ids(text, keep=_shown_bruker_nr(finding))
    return text if len(text) <= MAX_OT_LENGTH else text[: MAX_OT_LENGTH - 1] + "…"


def _error(code: str, ot: str) -> AppRecError:
    return AppRecError(code=code, dn=ERROR_CODES[code], ot=ot)


def row_key(finding: Finding) -> str:
    """Which notification (row) a finding concerns: its GUID, else brukerNr, else location."""
    s = finding.subject
    if s is not None and s.notification_guid:
        return "guid:" + s.notification_guid
    if s is not None and s.bruker_nr:
        return "bruker:" + s.bruker_nr
    return "loc:" + finding.location


def _row_label(finding: Finding) -> str:
    s = finding.subject
    parts: list[str] = []
    if s is not None and s.notification_guid:
        parts.append(f"notifikasjonGUID {s.notification_guid}")
    if s is not None and s.bruker_nr:
        parts.append(f"brukerNr {s.bruker_nr}")
    if not parts:
        parts.append(finding.location)
    return "Notifikasjon " + ", ".join(parts)


def _distinct(findings: Sequence[Finding]) -> list[Finding]:
    """The first finding of each (rule, detail): the same fault is reported once."""
    seen: set[tuple[str, str]] = set()
    out: list[Finding] = []
    for f in findings:
        if (f.rule.id, f.detail) not in seen:
            seen.add((f.rule.id, f.detail))
            out.append(f)
    return out


def _rows(findings: Sequence[Finding]) -> list[list[Finding]]:
    """Row-level findings grouped by the notification they concern, in order of appearance."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(row_key(f), []).append(f)
    return list(groups.values())


def _message_level(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.rule.consequence in _MESSAGE_LEVEL]


def _row_level(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.rule.consequence in _ROW_LEVEL]


def _message_errors(findings: Sequence[Finding]) -> list[AppRecError]:
    return [
        _error(error_code(f), _clean(f"{f.rule.id}: {f.detail}", f)) for f in _distinct(findings)
    ]


def _row_error(group: Sequence[Finding]) -> AppRecError:
    first = group[0]
    reasons = [_clean(f"{f.rule.id}: {f.detail}", f) for f in _distinct(group)]
    if any(f.rule.consequence is Consequence.DROP_NOTIFICATION for f in group):
        what, step = "er ikke tatt imot", _NEXT_STEP
    else:
        what, step = "er lagret, men har feil", _NEXT_STEP_KEPT
    ot = _clean(f"{_row_label(first)} {what}: " + "; ".join(reasons) + step, first)
    return _error(error_code(first), ot)


def error_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """How many AppRec Errors each 8221 code gets for these findings before the cap on the
    number of Error elements: one per distinct message-level finding, one per failing
    notification (the code of its first finding). Warnings count nothing. The notification
    email reports these counts."""
    codes = [error_code(f) for f in _distinct(_message_level(findings))]
    codes += [error_code(group[0]) for group in _rows(_row_level(findings))]
    return dict(Counter(codes))


def _cap(errors: list[AppRecError], max_errors: int) -> list[AppRecError]:
    if len(errors) <= max_errors:
        return errors
    kept = errors[: max_errors - 1]
    left_out = errors[max_errors - 1 :]
    counts = Counter(e.code for e in left_out)
    code = counts.most_common(1)[0][0]
    spread = ", ".join(f"{c}: {n}" for c, n in counts.most_common())
    ot = (
        f"{len(left_out)} feil til er ikke listet i denne kvitteringen (per feilkode: {spread}). "
        "Hele feillisten finnes hos KPR."
    )
    return [*kept, _error(code, _clean(ot))]


def receipt_outcome(
    findings: Sequence[Finding], *, max_errors: int = DEFAULT_MAX_ERRORS
) -> ReceiptOutcome:
    """AppRec status and Error list for all findings of one message (see the module doc)."""
    if max_errors < 1:
        raise ValueError("max_errors must be at least 1")
    message_level = _message_level(findings)
    row_level = _row_level(findings)
    if message_level:
        status = AppRecStatus.REJECTED
    elif row_level:
        status = AppRecStatus.OK_ERROR_IN_PART
    else:
        return ReceiptOutcome(status=AppRecStatus.OK, errors=())
    errors = _message_errors(message_level) + [_row_error(g) for g in _rows(row_level)]
    return ReceiptOutcome(status=status, errors=tuple(_cap(errors, max_errors)))
