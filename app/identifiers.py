"""Norwegian identifiers: fødselsnummer, D-nummer, H-nummer, synthetic test identities and
organisation numbers (DOMAIN.md §2.6).

python-stdnum gives the classic check digits and the organisation number; it lacks the 2032
rule (first check digit k..k+3), H-nummer dates, synthetic test identities (month + 80) and a
clock-free validation, which this module adds. Pure functions, no clock: a birth date in the
future is not checked here (the caller has `now` if it cares).
"""

from __future__ import annotations

import datetime
import functools
import random
import re
from dataclasses import dataclass
from enum import StrEnum

from stdnum.no import fodselsnummer as _fnr
from stdnum.no import orgnr as _orgnr

_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
_DIGITS = frozenset("0123456789")


class IdKind(StrEnum):
    FNR = "fnr"  # fødselsnummer
    DNR = "dnr"  # D-nummer: first digit + 4
    HNR = "hnr"  # H-nummer: month + 40


class IdProblem(StrEnum):
    """Why a person identifier is not valid."""

    LENGTH = "length"  # not 11 characters
    NOT_DIGITS = "not_digits"
    DATE = "date"  # the date part (after D/H/synthetic offsets) is not a real date
    CHECKSUM = "checksum"


class CheckRule(StrEnum):
    CLASSIC = "classic"  # check digit 1 = k (before 2032)
    RULE_2032 = "2032"  # check digit 1 is k+1, k+2 or k+3 (mod 11): only valid from 2032 rules


@dataclass(frozen=True, slots=True)
class PersonId:
    number: str
    kind: IdKind
    synthetic: bool  # Skatteetaten's test identities: month + 80; never a real person
    birth_date: datetime.date
    check_rule: CheckRule


def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(w * (ord(c) - 48) for w, c in zip(weights, digits, strict=False))


# Weighted sums over the ASCII codes of the digits (`number.encode()`), unrolled: these run
# once per notification, 100 000 times for a large message. A digit's code is its value + 48,
# so each sum is corrected by 48 x the sum of the weights (45 and 41).
def _first_check(d: bytes) -> int:
    """Classic first check digit value 0..10 (10 = no valid classic digit)."""
    s = 3 * d[0] + 7 * d[1] + 6 * d[2] + d[3] + 8 * d[4] + 9 * d[5] + 4 * d[6] + 5 * d[7] + 2 * d[8]
    return (11 - (s - 48 * 45) % 11) % 11


def _second_check(d: bytes) -> int:
    s = (
        5 * d[0] + 4 * d[1] + 3 * d[2] + 2 * d[3] + 7 * d[4]
        + 6 * d[5] + 5 * d[6] + 4 * d[7] + 3 * d[8] + 2 * d[9]
    )  # fmt: skip
    return (11 - (s - 48 * 41) % 11) % 11


def first_check_digits(number: str, *, rule_2032: bool = True) -> tuple[int, ...]:
    """The allowed first check digits for the first nine digits of `number`, classic one first.

    Classic: k = 11 - (Σ d·w mod 11), 11 -> 0, 10 -> none. From 2032 also k+1, k+2, k+3 (mod 11).
    """
    k = (11 - _weighted(number[:9], _W1) % 11) % 11
    candidates = [(k + i) % 11 for i in range(4 if rule_2032 else 1)]
    return tuple(c for c in candidates if c != 10)


def second_check_digit(number: str) -> int | None:
    """The second check digit for the first ten digits, or None when it would be 10."""
    value = int(_fnr.calc_check_digit2(number[:10]))
    return None if value == 10 else value


def _century(yy: int, individual: int) -> int | None:
    # Skatteetaten's individual-number ranges (same as stdnum.no.fodselsnummer.get_birth_date).
    if individual < 500:
        return 1900 + yy
    if individual < 750 and yy >= 54:
        return 1800 + yy
    if yy < 40:
        return 2000 + yy
    if individual >= 900:
        return 1900 + yy
    return None


def _latest_year(yy: int, month: int, day: int, on: datetime.date | None) -> int | None:
    """The 2032 rule's century (docs/rules.md, Decisions): the year ending in `yy` that gives
    the latest real date not after `on`, at most two centuries before `on`'s. Without `on`
    19yy, or 20yy when only that year has the date (29 February 00)."""
    candidates: tuple[int, ...]
    if on is None:
        candidates = (1900 + yy, 2000 + yy)
    else:
        top = on.year - on.year % 100 + yy
        candidates = (top, top - 100, top - 200)
    for year in candidates:
        try:
            born = datetime.date(year, month, day)
        except ValueError:
            continue
        if on is None or born <= on:
            return year
    return None


def _decode_date(
    d: bytes, *, new_kind: bool, may_be_new: bool, on: datetime.date | None
) -> tuple[IdKind, bool, datetime.date] | None:
    """From the number's ASCII digits (`number.encode()`): its kind, whether synthetic, and
    the birth date. `new_kind`: the number is of the 2032 kind, whose individual number tells
    no century. `may_be_new`: it may be (a classic first check digit is also a 2032 one), so
    it is of that kind when the old century table cannot place it."""
    day = 10 * d[0] + d[1] - 528  # 528 = 11 x 48: the ASCII codes' offset
    month = 10 * d[2] + d[3] - 528
    yy = 10 * d[4] + d[5] - 528
    individual = 100 * d[6] + 10 * d[7] + d[8] - 111 * 48
    kind = IdKind.FNR
    synthetic = False
    if day > 40:
        kind, day = IdKind.DNR, day - 40
    if month > 80:
        synthetic, month = True, month - 80
    elif month > 40:
        if kind is IdKind.DNR:
            return None  # D and H at once does not exist
        kind, month = IdKind.HNR, month - 40
    year = None if new_kind else _century(yy, individual)
    if year is None and kind is IdKind.HNR and not new_kind:
        # H-numbers are assigned by the health service, not from the population register's
        # individual-number ranges: 750-899 occurs with any year. Read such a year as 19yy
        # (20yy would be in the future).
        year = 1900 + yy
    elif year is None and (new_kind or may_be_new):
        # The 2032 rule: the individual number no longer tells the century, and nobody is
        # born after the event (docs/rules.md, Decisions).
        year = _latest_year(yy, month, day, on)
    if year is None:
        return None
    try:
        return kind, synthetic, datetime.date(year, month, day)
    except ValueError:
        return None


def check_person_id(
    number: str, *, rule_2032: bool = True, on: datetime.date | None = None
) -> PersonId | IdProblem:
    """Validate an 11-digit fødselsnummer, D-nummer or H-nummer (real or synthetic).

    `rule_2032=True` accepts both the classic and the 2032 first check digit, and reads a
    number of the new kind (a first check digit only the 2032 rule allows, or an individual
    number the old century table does not place) with the century that gives the latest
    birth date not after `on`, the event's date (docs/rules.md, Decisions). Without `on` such
    a number is read as 19yy.
    """
    if len(number) != 11:
        return IdProblem.LENGTH
    if not (number.isascii() and number.isdigit()):  # 0-9 only: the ASCII digits
        return IdProblem.NOT_DIGITS
    d = number.encode()  # ASCII digits (checked above)
    classic = _first_check(d)
    offset = (d[9] - 48 - classic) % 11  # 0: classic rule; 1..3: only the 2032 rule
    decoded = _decode_date(
        d, new_kind=rule_2032 and 0 < offset < 4, may_be_new=rule_2032 and offset == 0, on=on
    )
    if decoded is None:
        return IdProblem.DATE
    if offset > (3 if rule_2032 else 0) or _second_check(d) != d[10] - 48:
        return IdProblem.CHECKSUM
    kind, synthetic, birth = decoded
    rule = CheckRule.CLASSIC if offset == 0 else CheckRule.RULE_2032
    return PersonId(number, kind, synthetic, birth, rule)  # positional: once per notification


def is_valid_person_id(number: str, *, rule_2032: bool = True) -> bool:
    return isinstance(check_person_id(number, rule_2032=rule_2032), PersonId)


def parse_ddmmyy(value: str) -> datetime.date | None:
    """A birth date written ddmmyy (IPLOS typeID 9). The century is unknown: a date is valid
    when it exists in 19yy or 20yy (29 February needs a leap year in one of them)."""
    if len(value) != 6 or not _DIGITS.issuperset(value):
        return None
    day, month, yy = int(value[0:2]), int(value[2:4]), int(value[4:6])
    for century in (2000, 1900):
        try:
            return datetime.date(century + yy, month, day)
        except ValueError:
            continue
    return None


@functools.lru_cache(maxsize=4096)
def is_valid_orgnr(value: str) -> bool:
    """A 9-digit Norwegian organisation number: first digit 8 or 9 (the Enhetsregisteret
    assigns no others; 000000000 passes mod 11 but is no number) and a valid mod-11 check
    digit. Cached: a message repeats the same few numbers."""
    return (
        len(value) == 9
        and value[0] in "89"
        and _DIGITS.issuperset(value)
        and _orgnr.checksum(value) == 0
    )


PERSON_ID_MASK = "***********"
_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
# A hexadecimal token of 16 or more characters with at least one letter: a digest or an id
# (a request id, a reply's MessageId), never a person's number. Without this a digit run in
# it would be cut out, and a log line could no longer be found by its request id.
_HEX_ID = r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{16,}(?![0-9A-Za-z])"
# A GUID or a hex token (kept whole), else any run of 10 or more digits (one digit short of a
# fødselsnummer still identifies; one match, so a longer run is masked whole), else 11 digits
# written split after the birth date ("018544 03784", also with "." or "-").
_PERSON_ID_LIKE = re.compile(rf"(?P<kept>{_GUID}|{_HEX_ID})|\d{{10,}}|\d{{6}}[\s.-]?\d{{5}}")


def _mask_runs(text: str) -> str:
    return _PERSON_ID_LIKE.sub(lambda m: m.group("kept") or PERSON_ID_MASK, text)


def mask_person_ids(text: str, *, keep: str | None = None) -> str:
    """`text` with everything that could be a fødselsnummer masked: the one rule for every
    text that leaves the service (logs, AppRec, email, schema errors). GUIDs and hexadecimal
    ids stay whole.

    `keep` is an identifier the reader needs whole (a brukerNr, a MessageId of digits): it is
    shown as it is unless it is a valid person number."""
    if keep and not is_valid_person_id(keep):
        return keep.join(_mask_runs(part) for part in text.split(keep))
    return _mask_runs(text)


# --- generators (tests and samples only: synthetic numbers never belong to a real person) ---


def synthetic_person_id(
    rng: random.Random,
    *,
    kind: IdKind = IdKind.FNR,
    birth_date: datetime.date | None = None,
    rule_2032: bool = False,
) -> str:
    """A valid synthetic (month + 80) identity of `kind`. With `rule_2032` the first check
    digit is one that only the 2032 rule accepts."""
    if kind is IdKind.HNR:
        raise ValueError("H-nummer has no synthetic variant (month + 40 and + 80 collide)")
    while True:
        born = birth_date or datetime.date(1940, 1, 1) + datetime.timedelta(
            days=rng.randrange(0, 365 * 80)
        )
        yy = born.year % 100
        if born.year < 2000:
            individual = rng.randrange(0, 500)
        elif born.year < 2040:
            individual = rng.randrange(500, 1000)
        else:
            raise ValueError("birth year out of range")
        day = born.day + (40 if kind is IdKind.DNR else 0)
        base = f"{day:02d}{born.month + 80:02d}{yy:02d}{individual:03d}"
        allowed = first_check_digits(base, rule_2032=True)
        classic = (11 - _weighted(base, _W1) % 11) % 11
        choices = [c for c in allowed if (c != classic) == rule_2032]
        if not choices:
            continue
        ten = base + str(rng.choice(choices))
        k2 = second_check_digit(ten)
        if k2 is None:
            continue
        return ten + str(k2)


def synthetic_orgnr(rng: random.Random) -> str:
    """A 9-digit number starting with 8 or 9 with a valid check digit (made up: it may or may
    not be registered)."""
    while True:
        base = str(rng.randrange(80_000_000, 100_000_000))
        # checksum() weighs the last digit by 1: pick the digit that makes the sum 0 mod 11.
        check = (-_orgnr.checksum(base + "0")) % 11
        if check < 10:
            return base + str(check)
