"""The figures as CSV for analysts (`;`-separated, UTF-8 with BOM so spreadsheets read the
Norwegian letters): the same published cells as the pages, suppressed ones as "<5"/"skjult".
Every text cell is escaped against formula injection (app/core/spreadsheet.py)."""

from __future__ import annotations

from app.core.spreadsheet import sheet
from app.feedback.figures import Figure, KommuneFeedback, Median, Overview, OverviewRow


def _v(f: Figure | Median) -> str:
    if f.value is None:
        return f.text
    return f"{f.value:g}"


def overview_csv(o: Overview, rows: list[OverviewRow]) -> str:
    out, w = sheet()
    w.writerow(
        [
            "aar",
            "miljo",
            "kommunenr",
            "kommune",
            "fylke",
            "lesbar_melding",
            "meldinger",
            "notifikasjoner_tatt_imot",
            "andel_med_feil_prosent",
            "hyppigste_regel",
            "rettidighet",
            "forste_lesbare",
            "etter_kostra",
        ]
    )
    for r in rows:
        w.writerow(
            [
                o.year,
                o.environment.value,
                r.kommune_nr,
                r.name,
                r.fylke_name,
                "ja" if r.readable else "nei",
                _v(r.messages),
                _v(r.accepted),
                _v(r.error_share),
                r.top_rule or "",
                r.timeliness.value,
                r.first_readable.isoformat() if r.first_readable else "",
                "ja" if r.after_kostra else "nei",
            ]
        )
    return out.getvalue()


def kommune_csv(k: KommuneFeedback) -> str:
    """One row per figure: section, key, name, value, national median."""
    out, w = sheet()
    w.writerow(["aar", "miljo", "kommunenr", "del", "nokkel", "navn", "verdi", "median"])
    base = [k.year, k.environment.value, k.kommune_nr]
    w.writerow([*base, "oversikt", "meldinger", "Meldinger", _v(k.messages), _v(k.messages_median)])
    w.writerow(
        [*base, "oversikt", "tatt_imot", "Notifikasjoner tatt imot", _v(k.accepted),
         _v(k.accepted_median)]
    )  # fmt: skip
    w.writerow(
        [*base, "oversikt", "andel_feil", "Andel med feil (%)", _v(k.error_share),
         _v(k.error_share_median)]
    )  # fmt: skip
    users_on = k.users_on.strftime("%d.%m.%Y")
    w.writerow([*base, "oversikt", "brukere", f"Brukere {users_on}", _v(k.users), ""])
    for g in k.user_groups:
        w.writerow([*base, "brukergruppe", g.key, g.label, _v(g.users), ""])
        w.writerow([*base, "brukergruppe_andel", g.key, g.label, _v(g.share), _v(g.median)])
    for s in k.services:
        w.writerow([*base, "tjenestetype", s.tjeneste_type, s.name, _v(s.users), ""])
        w.writerow(
            [*base, "tjenestetype_andel", s.tjeneste_type, s.name, _v(s.share), _v(s.median)]
        )
        stopped = [*base, "tjenestetype_midlertidig_stopp", s.tjeneste_type, s.name]
        w.writerow([*stopped, _v(s.stopped), ""])
    for i in k.items:
        w.writerow([*base, "utfylling", i.key, f"{i.item} ({i.of})", _v(i.filled), _v(i.median)])
    for m in k.months:
        w.writerow([*base, "meldinger_per_maaned", m.month, m.month, _v(m.messages), _v(m.median)])
    for r in k.rules:
        w.writerow([*base, "regel", r.rule_id, r.consequence, _v(r.share), _v(r.median)])
    return out.getvalue()
