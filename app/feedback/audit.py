"""The disclosure audit of the public feedback: can a reader narrow down a suppressed cell
from everything else the same page publishes? Pure, no I/O (docs/feedback.md).

A `Table` describes one municipality's figures of one year and environment as a linear system:
non-negative integer variables with their true values (and latent ones without, such as the
users of a service type within one user group), the relations that hold between them whatever
the data (`structure`: the groups add up to the users, the months to the messages, ...), the
counts and the shares a page shows. A `Publication` says what became of each figure: shown,
"<5", hidden ("skjult") or "–" (no denominator). `audit` turns that into what a reader knows:

- a shown count: the variable equals its value;
- a "<5" count: the variable lies from 1 to 4 (0 is shown as 0);
- a shown share p (per cent, one decimal) of num/den: p - 0.05 <= 100 num/den <= p + 0.05, a
  linear constraint in (num, den) since p is a constant; and den >= 1;
- a "–" share: den = 0; a suppressed share: den >= 1 (otherwise it would be "–");
- a hidden count: nothing.

Then, for every protected expression (each suppressed count's variable; the numerator,
denominator or complement of a share from 1 to 4; a table's declared complements from 1 to 4)
it minimises and maximises the expression over that system (`scipy.optimize.linprog`, HiGHS)
and rounds inwards to integers. A cell passes when its range covers 1 to 4 (a true value from 1
to 4: the reader learns no more than "<5") or is at least `WIDTH` wide (any other value). The
linear relaxation's range contains the integer one, so it is a bound, not the exact range: a
reader solving the integer problem may narrow a cell further than this audit sees (rarely, and
never below what the relaxation allows plus the rounding to integers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

LIMIT = 5  # counts from 1 to LIMIT - 1 are small
WIDTH = 5  # a hidden cell must stay at least this wide
_EPS = 1e-6
_SLACK = 1e-7  # the rounding of shares, loosened by this much against floating point

Expr = Mapping[str, float]  # variable -> coefficient


class Status(StrEnum):
    SHOWN = "shown"
    SMALL = "small"  # "<5"
    HIDDEN = "hidden"  # "skjult"
    NONE = "none"  # "–": a share without a denominator


@dataclass(frozen=True, slots=True)
class Constraint:
    """lo <= expr <= hi (either side may be open); `figure` names the published figure it
    comes from (None: a relation that holds whatever the data)."""

    expr: Expr
    lo: float | None = None
    hi: float | None = None
    figure: str | None = None


@dataclass(frozen=True, slots=True)
class Share:
    key: str
    num: Expr
    den: Expr
    # counts whose suppression takes this share with it (the share would give them back)
    follows: tuple[str, ...] = ()


@dataclass(slots=True)
class Table:
    """One page's figures (or one independent part of them) as a linear system."""

    values: dict[str, int]  # the observed variables and their true values
    latent: set[str] = field(default_factory=set)  # variables without a known value
    structure: list[Constraint] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)  # variables shown as counts
    totals: set[str] = field(default_factory=set)  # counts to keep shown where possible
    shares: dict[str, Share] = field(default_factory=dict)
    complements: dict[str, Expr] = field(default_factory=dict)  # further sensitive sums

    def value(self, expr: Expr) -> float:
        return sum(c * self.values[v] for v, c in expr.items())

    def relate(self, expr: Expr, lo: float | None = None, hi: float | None = None) -> None:
        """Add a relation between the observed variables, when the data satisfy it (so a
        relation that does not hold in some corner of the data never makes the system
        infeasible: the audit is then only less strict)."""
        if not all(v in self.values for v in expr):
            self.structure.append(Constraint(dict(expr), lo, hi))
            return
        value = self.value(expr)
        if (lo is None or value >= lo - _EPS) and (hi is None or value <= hi + _EPS):
            self.structure.append(Constraint(dict(expr), lo, hi))


@dataclass(slots=True)
class Publication:
    counts: dict[str, Status]
    shares: dict[str, Status]


@dataclass(frozen=True, slots=True)
class Finding:
    """A protected expression a reader can narrow down: its true value and the integer range
    consistent with the publication, and the figures whose constraints bind that range."""

    label: str
    value: int
    lo: float
    hi: float
    binding: frozenset[str]


def small(n: float) -> bool:
    return 0 < n < LIMIT


def share_value(table: Table, share: Share) -> float | None:
    """The share in per cent as published (one decimal), None without a denominator."""
    den = table.value(share.den)
    if den <= 0:
        return None
    return round(100.0 * table.value(share.num) / den, 1)


def share_parts(table: Table, share: Share) -> dict[str, Expr]:
    """The share's numerator, denominator and complement: from 1 to 4, any of them is a small
    cell that the share must not give back."""
    complement = dict(share.den)
    for v, c in share.num.items():
        complement[v] = complement.get(v, 0.0) - c
    return {
        f"{share.key}:num": share.num,
        f"{share.key}:den": share.den,
        f"{share.key}:complement": complement,
    }


def published(table: Table, pub: Publication) -> list[Constraint]:
    """What a reader knows from the publication, besides the table's structure."""
    out: list[Constraint] = []
    for var in table.counts:
        status = pub.counts[var]
        if status is Status.SHOWN:
            value = table.values[var]
            out.append(Constraint({var: 1.0}, value, value, var))
        elif status is Status.SMALL:
            out.append(Constraint({var: 1.0}, 1, LIMIT - 1, var))
    for key, share in table.shares.items():
        status = pub.shares[key]
        if status is Status.NONE:
            out.append(Constraint(share.den, 0, 0, key))
            continue
        out.append(Constraint(share.den, 1, None, key))
        if status is Status.SHOWN:
            p = share_value(table, share)
            assert p is not None
            for bound, sign in ((p + 0.05, -1.0), (p - 0.05, 1.0)):
                expr = {v: 100.0 * c for v, c in share.num.items()}
                for v, c in share.den.items():
                    expr[v] = expr.get(v, 0.0) - bound * c
                # sign * (100 num - bound den) >= -slack
                out.append(Constraint({v: sign * c for v, c in expr.items()}, -_SLACK, None, key))
    return out


def protected(table: Table, pub: Publication) -> dict[str, tuple[Expr, int]]:
    """The expressions a reader must not narrow down, with their true values."""
    out: dict[str, tuple[Expr, int]] = {}
    for var in table.counts:
        if pub.counts[var] in (Status.SMALL, Status.HIDDEN):
            out[var] = ({var: 1.0}, table.values[var])
    for share in table.shares.values():
        for label, expr in share_parts(table, share).items():
            value = table.value(expr)
            if small(value):
                out[label] = (expr, round(value))
    for label, expr in table.complements.items():
        value = table.value(expr)
        if small(value):
            out[label] = (expr, round(value))
    return out


def passes(value: int, lo: float, hi: float) -> bool:
    if small(value):
        return lo <= 1 and hi >= LIMIT - 1
    return hi - lo >= WIDTH


class _System:
    """The constraints as the matrices linprog takes, built once per audit."""

    def __init__(self, constraints: list[Constraint], variables: list[str]) -> None:
        import numpy as np

        self.index = {v: i for i, v in enumerate(variables)}
        eq_rows: list[list[float]] = []
        eq_b: list[float] = []
        ub_rows: list[list[float]] = []
        ub_b: list[float] = []
        self.eq_figures: list[str | None] = []
        self.ub_figures: list[str | None] = []
        n = len(variables)
        for c in constraints:
            row = [0.0] * n
            for v, coef in c.expr.items():
                row[self.index[v]] += coef
            if c.lo is not None and c.hi is not None and c.lo == c.hi:
                eq_rows.append(row)
                eq_b.append(c.lo)
                self.eq_figures.append(c.figure)
                continue
            if c.hi is not None:
                ub_rows.append(row)
                ub_b.append(c.hi)
                self.ub_figures.append(c.figure)
            if c.lo is not None:
                ub_rows.append([-x for x in row])
                ub_b.append(-c.lo)
                self.ub_figures.append(c.figure)
        self.n = n
        self.a_eq = np.array(eq_rows) if eq_rows else None
        self.b_eq = np.array(eq_b) if eq_rows else None
        self.a_ub = np.array(ub_rows) if ub_rows else None
        self.b_ub = np.array(ub_b) if ub_rows else None

    def optimise(self, expr: Expr, sign: float) -> tuple[float, set[str]]:
        """min (sign=1) or -max (sign=-1) of expr, and the figures whose constraints bind."""
        from scipy.optimize import linprog

        c = [0.0] * self.n
        for v, coef in expr.items():
            c[self.index[v]] += sign * coef
        res: Any = linprog(
            c,
            A_ub=self.a_ub,
            b_ub=self.b_ub,
            A_eq=self.a_eq,
            b_eq=self.b_eq,
            bounds=(0, None),
            method="highs",
        )
        if res.status == 3:  # unbounded
            return -math.inf, set()
        if res.status != 0:
            raise RuntimeError(f"disclosure audit: the published system is not solvable: {res}")
        binding: set[str] = set()
        for figures, marginals in (
            (self.eq_figures, res.eqlin.marginals if self.a_eq is not None else ()),
            (self.ub_figures, res.ineqlin.marginals if self.a_ub is not None else ()),
        ):
            for figure, m in zip(figures, marginals, strict=True):
                if figure is not None and abs(m) > 1e-9:
                    binding.add(figure)
        return float(res.fun), binding


def bounds(
    table: Table, pub: Publication, exprs: Mapping[str, Expr]
) -> dict[str, tuple[float, float, frozenset[str]]]:
    """The integer range of each expression consistent with the publication, and the figures
    binding it."""
    constraints = [*table.structure, *published(table, pub)]
    variables = sorted({*table.values, *table.latent})
    system = _System(constraints, variables)
    out: dict[str, tuple[float, float, frozenset[str]]] = {}
    for label, expr in exprs.items():
        low, bind_low = system.optimise(expr, 1.0)
        neg_high, bind_high = system.optimise(expr, -1.0)
        lo = math.ceil(low - _EPS) if math.isfinite(low) else -math.inf
        hi = math.floor(-neg_high + _EPS) if math.isfinite(neg_high) else math.inf
        out[label] = (lo, hi, frozenset(bind_low | bind_high))
    return out


def audit(table: Table, pub: Publication) -> list[Finding]:
    """Every protected expression that a reader can narrow down too far."""
    targets = protected(table, pub)
    if not targets:
        return []
    found = bounds(table, pub, {label: expr for label, (expr, _v) in targets.items()})
    out = []
    for label, (_expr, value) in targets.items():
        lo, hi, binding = found[label]
        if not passes(value, lo, hi):
            out.append(Finding(label, value, lo, hi, binding))
    return out
