"""Convert SSB Klass 131 CSV exports into the lists the product ships.

    .venv/bin/python scripts/convert_kommuner.py ../shared/reference/kommuner/*.csv

writes app/kommuner/data/kommuner-YEAR.json (number and name per municipality, sorted), the
year taken from the file name, and for a change list (`ssb-changes-FROM-TO.csv`)
app/kommuner/data/changes-FROM-TO.json (old and new number and name, and the kind of change,
in force from 1 January TO). The shipped lists are ours, in our format; SSB's files stay
where they are.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.kommuner.ssb import parse_changes, parse_klass_131, year_from_name, years_of_changes

SOURCE = "SSB, Standard for kommuneinndeling (Klass 131), converted by kpr-mottak"
OUT = Path(__file__).resolve().parent.parent / "app" / "kommuner" / "data"


def main(paths: list[str]) -> int:
    for name in paths:
        path = Path(name)
        span = years_of_changes(path.name)
        if span is not None:
            _write_changes(path, *span)
            continue
        year = year_from_name(path.name)
        if year is None:
            print(f"{path}: no year in the file name", file=sys.stderr)
            return 2
        kommuner = parse_klass_131(path.read_bytes())
        rows = ",\n".join(
            "  " + json.dumps([k.kommune_nr, k.name], ensure_ascii=False) for k in kommuner
        )
        head = json.dumps({"year": year, "source": SOURCE}, ensure_ascii=False)[:-1]
        target = OUT / f"kommuner-{year}.json"
        target.write_text(f'{head}, "kommuner": [\n{rows}\n]}}\n', encoding="utf-8")
        print(f"{target.name}: {len(kommuner)} municipalities")
    return 0


def _write_changes(path: Path, first: int, last: int) -> None:
    changes = parse_changes(path.read_bytes())
    rows = ",\n".join(
        "  " + json.dumps([c.old, c.old_name, c.new, c.new_name, c.kind], ensure_ascii=False)
        for c in changes
    )
    head = json.dumps(
        {"from_year": first, "valid_from": f"{last}-01-01", "source": SOURCE}, ensure_ascii=False
    )[:-1]
    target = OUT / f"changes-{first}-{last}.json"
    target.write_text(f'{head}, "changes": [\n{rows}\n]}}\n', encoding="utf-8")
    print(f"{target.name}: {len(changes)} changes")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
