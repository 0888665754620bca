"""The one table from findings to AppRec status (kodeverk 8258) and errors (kodeverk 8221).

- Any message-level finding (consequence REJECT_MESSAGE, or MESSAGE_ERROR should one reach
  here) -> status 2 (Avvist).
- Otherwise any row-level finding (DROP_NOTIFICATION, or KEEP_WITH_ERROR: the row is stored
  but must be corrected) -> status 3 (OK, feil i delmelding).
- Otherwise (warnings only, or nothing) -> status 1 (OK), with no Error: warnings reach the
  municipality through its error list and the email, not through the receipt.

Errors, in this order:
- one Error per distinct message-level finding (same rule and same detail only once). When
  that finding concerns notifications (a missing fid in rows 2 and 3 rejects the message),
  its OT says how many and names them, as many as fit, and where the full list is;
- one Error per failing notification (findings grouped by notifikasjonGUID, else brukerNr,
  else location), V = the code of its first finding, OT naming the notification and every rule
  it broke. In a rejected message these come after the message-level ones, so a sender can
  fix everything in one round.

A notification is named by its position in the message, notifikasjonGUID, brukerNr and
løpenummer (`row_label`): whatever of these it has, so the EPJ can find it.

At most `max_errors` Error elements (the schema sets no limit; a 100 000-row message must not
get a receipt of 100 000 Errors): past that, as many Errors as fit are kept in order and the
rest is summed up with one Error per rule (V = that rule's code; OT: how many errors and
notifications, the first few named, and where the full list is: the municipality's error
list). When even the rules left out are more than the room, the least frequent share one
last Error. Every OT is at most `MAX_OT_LENGTH` characters.

OT never holds a fødselsnummer: it is built from rule ids, notification GUIDs, brukerNr and
the findings' details (which by contract quote no value that could hold a fid); as defence in
depth the `fid` of the finding's subject, any 11-digit run, an 11-digit number split after the
birth date (`018544 03784`, also with `.` or `-`) and any run of 10 or more digits are masked,
except the notification's own brukerNr when it is neither its fid nor a valid person number
(a brukerNr of digits is how many EPJs number their users, and the reader needs it). Each
notification's label is masked on its own, so a list keeps every row's brukerNr readable.
GUIDs are left whole: the receipt names notifications by them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

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
# What the reader does about a dropped notification (DOMAIN.md 2.5: the receipt helps its
# reader); ends every dropped row's OT.
_NEXT_STEP = " Rett feilen i fagsystemet (EPJ) og send notifikasjonen på nytt."
# ... and about one KPR kept with its error (issue 21): the stored row is corrected by an M.
_CORRECT_STEP = (
    " Rett feilen i fagsystemet (EPJ) og send en korreksjon (status M) med notifikasjonRef "
    "til denne notifikasjonen."
)
# The notification's position in the message, from a finding's location
_POSITION = re.compile(r"^/Melding/Notifikasjon\[(\d+)\]")
_KOMMUNE_NR = re.compile(r"\d{4}")


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


def _masked(text: str, finding: Finding | None = None) -> str:
    """`text` on one line with anything fid-like masked; the finding's own brukerNr stays."""
    fid = finding.subject.fid if finding is not None and finding.subject is not None else None
    if fid and len(fid) >= 6:  # a short junk value would mask unrelated text
        text = text.replace(fid, PERSON_ID_MASK)
    text = " ".join(text.split())
    # also 10+ digits and a split fid; the notification's own brukerNr stays readable
    return mask_person_ids(text, keep=_shown_bruker_nr(finding))


def _cut(text: str, length: int = MAX_OT_LENGTH) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _clean(text: str, finding: Finding | None = None) -> str:
    return _cut(_masked(text, finding))


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


def _position(finding: Finding) -> str | None:
    m = _POSITION.match(finding.location)
    return m[1] if m else None


def concerns_row(finding: Finding) -> bool:
    """Whether a finding is about one notification (its subject or location names one)."""
    s = finding.subject
    named = s is not None and bool(s.notification_guid or s.bruker_nr or s.lopenr is not None)
    return named or _position(finding) is not None


def row_label(finding: Finding) -> str:
    """The notification a finding concerns, as the EPJ can find it: position in the message,
    notifikasjonGUID, brukerNr and løpenummer (what it has of them), masked. Falls back to
    the finding's location."""
    s = finding.subject
    parts: list[str] = []
    if s is not None and s.notification_guid:
        parts.append(f"notifikasjonGUID {s.notification_guid}")
    if s is not None and s.bruker_nr:
        parts.append(f"brukerNr {s.bruker_nr}")
    if s is not None and s.lopenr is not None:
        parts.append(f"løpenummer {s.lopenr}")
    position = _position(finding)
    if not parts:
        text = f"Notifikasjon nr. {position}" if position else f"Notifikasjon {finding.location}"
    else:
        nr = f" nr. {position}" if position else ""
        text = f"Notifikasjon{nr} (" + ", ".join(parts) + ")"
    return _masked(text, finding)


def _kommune(findings: Sequence[Finding]) -> str | None:
    for f in findings:
        k = f.subject.kommune_nr if f.subject is not None else None
        if k and _KOMMUNE_NR.fullmatch(k):
            return k
    return None


def error_list_text(kommune_nr: str | None) -> str:
    """Where the full list is: the municipality's error list at KPR (with brukerNr and fid,
    for its own users)."""
    if kommune_nr is None:
        return "Hele listen står i kommunens feilliste hos KPR."
    return (
        "Hele listen står i kommunens feilliste hos KPR "
        f"(/api/v1/kommuner/{kommune_nr}/feilliste; lenke i e-posten til innsendingsansvarlig)."
    )


def _listing(head: str, labels: Sequence[str], tail: str) -> str:
    """`head`, as many of `labels` as fit in one OT, how many were left out, then `tail`
    (always whole). `head` is cut if it takes more than half the room."""
    budget = MAX_OT_LENGTH - len(tail) - 1
    head = _cut(head, max(budget // 2, 1))
    shown: list[str] = []
    used = len(head)
    for i, label in enumerate(labels):
        more = len(labels) - i - 1
        ending = f" … og {more} til." if more else "."
        sep = "; " if shown else " "
        if used + len(sep) + len(label) + len(ending) > budget:
            break
        shown.append(label)
        used += len(sep) + len(label)
    left = len(labels) - len(shown)
    listed = (" " + "; ".join(shown)) if shown else ""
    ending = f" … og {left} til." if left else "."
    return _cut(f"{head}{listed}{ending} {tail}")


@dataclass(frozen=True, slots=True)
class _Entry:
    """One Error before the cap, with what it reports (counted when it is left out)."""

    code: str
    ot: str
    rule: str  # the rule it is counted under beyond the cap
    findings: tuple[Finding, ...]

    def error(self) -> AppRecError:
        return _error(self.code, self.ot)


def _groups(findings: Sequence[Finding]) -> list[list[Finding]]:
    """Findings grouped by (rule, detail), in order of appearance: the same fault once."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.rule.id, f.detail), []).append(f)
    return list(groups.values())


def _distinct(findings: Sequence[Finding]) -> list[Finding]:
    """The first finding of each (rule, detail): the same fault is reported once."""
    return [g[0] for g in _groups(findings)]


def _rows(findings: Sequence[Finding]) -> list[list[Finding]]:
    """Row-level findings grouped by the notification they concern, in order of appearance."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(row_key(f), []).append(f)
    return list(groups.values())


def _message_level(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.rule.consequence in _MESSAGE_LEVEL]


def _row_level(findings: Sequence[Finding]) -> list[Finding]:
    """Errors that concern one notification: dropped, or (should a rule keep the row and
    report it) kept with an error. Not warnings, not message-level."""
    return [
        f
        for f in findings
        if f.rule.consequence not in _MESSAGE_LEVEL and f.rule.consequence is not Consequence.WARN
    ]


def _message_entry(group: Sequence[Finding]) -> _Entry:
    first = group[0]
    head = _masked(f"{first.rule.id}: {first.detail}", first)
    rows = _rows([f for f in group if concerns_row(f)])
    if not rows:
        ot = _cut(head)
    elif len(rows) == 1:
        ot = _cut(f"{head} Gjelder {row_label(rows[0][0])}.")
    else:
        labels = [row_label(r[0]) for r in rows]
        ot = _listing(
            f"{head} Gjelder {len(rows)} notifikasjoner:", labels, error_list_text(_kommune(group))
        )
    return _Entry(error_code(first), ot, first.rule.id, tuple(group))


def _row_entry(group: Sequence[Finding]) -> _Entry:
    first = group[0]
    reasons = [_masked(f"{f.rule.id}: {f.detail}", f) for f in _distinct(group)]
    dropped = any(f.rule.consequence is Consequence.DROP_NOTIFICATION for f in group)
    verdict, step = (
        ("er ikke tatt imot", _NEXT_STEP) if dropped else ("er lagret, men har feil", _CORRECT_STEP)
    )
    ot = _cut(f"{row_label(first)} {verdict}: " + "; ".join(reasons) + step)
    return _Entry(error_code(first), ot, first.rule.id, tuple(group))


def error_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """How many AppRec Errors each 8221 code gets for these findings before the cap on the
    number of Error elements: one per distinct message-level finding, one per failing
    notification (the code of its first finding). Warnings count nothing. The notification
    email reports these counts."""
    codes = [error_code(f) for f in _distinct(_message_level(findings))]
    codes += [error_code(group[0]) for group in _rows(_row_level(findings))]
    return dict(Counter(codes))


def warning_counts(findings: Sequence[Finding]) -> dict[str, int]:
    """How many findings each warning rule has, by rule id, in order of first appearance
    (the email counts them; the AppRec has no Error for a warning)."""
    return dict(Counter(f.rule.id for f in findings if f.rule.consequence is Consequence.WARN))


def _summary(rule_ids: Sequence[str], entries: Sequence[_Entry], kommune: str | None) -> _Entry:
    """One Error for the `entries` left out past the cap: their count, the notifications they
    concern (the first named) and where the full list is. One rule, or (`rule_ids` > 1) the
    rules that share the last Error."""
    findings = [f for e in entries for f in e.findings]
    rows = _rows([f for f in findings if concerns_row(f)])
    codes = Counter(e.code for e in entries)
    code = codes.most_common(1)[0][0]
    what = f"{len(entries)} feil til"
    if len(rule_ids) == 1:
        what = f"{rule_ids[0]}: {what}"
    else:
        spread = ", ".join(f"{r}: {n}" for r, n in Counter(e.rule for e in entries).most_common())
        what = f"{what} etter andre regler ({spread})"
    where = " er ikke listet i denne kvitteringen"
    if rows:
        where += f"; de gjelder {len(rows)} notifikasjoner, blant dem:"
        head = _masked(what) + where
        return _Entry(
            code,
            _listing(head, [row_label(r[0]) for r in rows[:20]], error_list_text(kommune)),
            rule_ids[0],
            tuple(findings),
        )
    return _Entry(
        code, _cut(_masked(what) + where + ". " + error_list_text(kommune)), rule_ids[0], ()
    )


def _cap(entries: list[_Entry], max_errors: int, kommune: str | None) -> list[_Entry]:
    """At most `max_errors` entries: the first ones in order, then one per rule of those
    left out (the least frequent rules share the last one when there is no room)."""
    if len(entries) <= max_errors:
        return entries
    # rules among entries[i:], for every i: the most entries kept that leave room for them
    rules_from = [0] * (len(entries) + 1)
    seen: set[str] = set()
    for i in range(len(entries) - 1, -1, -1):
        seen.add(entries[i].rule)
        rules_from[i] = len(seen)
    keep = next((k for k in range(max_errors - 1, -1, -1) if k + rules_from[k] <= max_errors), 0)
    left = entries[keep:]
    by_rule: dict[str, list[_Entry]] = {}
    for e in left:
        by_rule.setdefault(e.rule, []).append(e)
    ranked = sorted(by_rule, key=lambda r: -len(by_rule[r]))  # stable: first seen first
    room = max_errors - keep
    own, shared = (ranked, []) if len(ranked) <= room else (ranked[: room - 1], ranked[room - 1 :])
    summaries = [_summary([r], by_rule[r], kommune) for r in own]
    if shared:
        summaries.append(_summary(shared, [e for r in shared for e in by_rule[r]], kommune))
    return [*entries[:keep], *summaries]


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
    entries = [_message_entry(g) for g in _groups(message_level)]
    entries += [_row_entry(g) for g in _rows(row_level)]
    capped = _cap(entries, max_errors, _kommune(findings))
    return ReceiptOutcome(status=status, errors=tuple(e.error() for e in capped))
