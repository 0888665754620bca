"""Decisions the service makes where the standards leave a choice, rendered into docs/rules.md
("Decisions"). Each names the rules it concerns and the code that carries it out; the text is
what a municipality or an EPJ vendor needs to know."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    title: str
    rules: tuple[str, ...]  # the rule ids it concerns
    text: str
    where: str  # the code that carries it out


DECISIONS: tuple[Decision, ...] = (
    Decision(
        title="Fødselsnumre of the 2032 kind: the century from the event's date",
        rules=("IPL-FID-INVALID",),
        text="From 2032 Skatteetaten may give the first check digit the values k+1, k+2 and k+3 "
        "(mod 11) besides the classic k, and the individual number no longer tells the "
        "century or the sex. A number is read as one of the new kind when its first check "
        "digit is one only the new rule allows, or when its check digit is the classic one but "
        "the old century table (individual number and year) does not place it (a new number "
        "may have the classic digit too). Its birth date is then the day and month it shows in "
        "the year ending in its two year digits that gives the latest date not after the "
        "earliest hendelseDato of the notification (nobody is born after the event it is "
        "reported for), at most two centuries back; without an event date, 19yy. A number "
        "the old table places and whose first check digit is the classic one is read by the "
        "old table, as before. Example: the synthetic 15867580074 (individual number 800, "
        "year 75, first check digit k+1) in a 2033 event is born 15 June 1975, and is "
        "accepted.",
        where="app/identifiers.py check_person_id(on=...)",
    ),
    Decision(
        title="Municipality numbers are judged against the reporting year's list",
        rules=("IPL-KOMMUNE-YEAR", "IPL-KOMMUNE-NOT-ALLOWED"),
        text="Each reporting year has SSB's list in force that year (Klass 131: 2018 with 422 "
        "municipalities, 2020 with 356, 2024 with 357; an imported list for a year wins over "
        "the shipped one). A notification's reporting year is the year of its latest event "
        "(never after the year the message arrives). When a message's kommuneNr is not in the "
        "list of a year its notifications report for, it is a warning (IPL-KOMMUNE-YEAR), "
        "never a rejection: the Annotations check only its form (handling 9). The warning names "
        "the number in force from SSB's change list (1 January 2024: 113 renumbered one to "
        "one, e.g. Halden 3001 -> 3101) or, for Ålesund 1507, that it was split in 1508 "
        "Ålesund and 1580 Haram and has no single successor. A party registered for a "
        "municipality may report under its number before or after a one-to-one renumbering "
        "(not across a split). Coverage, the feedback and the reminders list a year's "
        "municipalities under that year's numbers; in coverage and the reminders a message "
        "sent under the other number of a one-to-one renumbering counts for the year's "
        "number (the feedback's figures stay under the number the message was sent with).",
        where="app/kommuner/years.py, app/content/iplos/kommune_year.py, app/query/renumbered.py",
    ),
)
