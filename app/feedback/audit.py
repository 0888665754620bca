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
- a "–" share: den = 0; a "<5" share: den >= 1 (otherwise it would be "–");
- a hidden count or share: nothing (a "–" goes with a hidden count it would give as 0).

Then, for every protected expression (each suppressed count's variable; the numerator,
denominator or complement of a share from 1 to 4; a table's declared complements from 1 to 4)
it minimises and maximises the expression over that system (HiGHS, through `highspy`) and
rounds inwards to integers. A cell passes when its range covers 1 to 4 (a true value from 1
to 4: the reader learns no more than "<5") or is at least `WIDTH` wide (any other value). The
linear relaxation's range contains the integer one, so it is a bound, not the exact range: a
reader solving the integer problem may narrow a cell further than this audit sees (rarely, and
never below what the relaxation allows plus the rounding to integers).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
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
        if status is Status.NONE:  # "–": no denominator
            out.append(Constraint(share.den, 0, 0, key))
            continue
        if status is Status.HIDDEN:  # "skjult" says nothing (also where "–" was hidden)
            continue
        out.append(Constraint(share.den, 1, None, key))  # it would be "–" otherwise
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


def passes(
    value: int, lo: float, hi: float, within: tuple[float, float] = (-math.inf, math.inf)
) -> bool:
    """Wide enough: covering 1 to 4 for a true value from 1 to 4, else 5 wide; or as wide as
    `within` (what the table's structure alone allows, e.g. a rule listed "av
    notifikasjoner" has at least one) where that is narrower."""
    floor, ceiling = within
    if small(value):
        return lo <= max(1, floor) and hi >= min(LIMIT - 1, ceiling)
    return hi - lo >= min(WIDTH, ceiling - floor)


# The decisions run in worker threads (asyncio.to_thread); rather than rely on separate
# HiGHS instances being safe side by side, every use of HiGHS takes this lock (the GIL
# serialises the Python around it anyway: the threads are for the event loop, not for speed)
_HIGHS = threading.RLock()


def _settled() -> tuple[object, ...]:
    import highspy

    s = highspy.HighsModelStatus
    return (s.kOptimal, s.kUnbounded, s.kUnboundedOrInfeasible)


class _System:
    """The constraints loaded once into a HiGHS model; each bound is a re-solve with another
    objective from the previous basis (a fraction of a millisecond for a page's system)."""

    def __init__(self, constraints: list[Constraint], variables: list[str]) -> None:
        import highspy
        import numpy as np

        self.index = {v: i for i, v in enumerate(variables)}
        self.n = n = len(variables)
        self.h: Any = highspy.Highs()  # type: ignore[no-untyped-call]
        h = self.h
        h.setOptionValue("output_flag", False)
        h.setOptionValue("presolve", "off")  # tiny systems; keeps "unbounded" unambiguous
        inf = highspy.kHighsInf
        h.addVars(n, np.zeros(n), np.full(n, inf))
        self.figures: list[str | None] = []
        for c in constraints:
            coefs: dict[int, float] = {}
            for v, coef in c.expr.items():
                coefs[self.index[v]] = coefs.get(self.index[v], 0.0) + coef
            h.addRow(
                -inf if c.lo is None else float(c.lo),
                inf if c.hi is None else float(c.hi),
                len(coefs),
                np.array(list(coefs), dtype=np.int32),
                np.array(list(coefs.values()), dtype=np.float64),
            )
            self.figures.append(c.figure)
        self.columns = np.arange(n, dtype=np.int32)

    def relax(self, rows: list[int]) -> None:
        import highspy

        for i in rows:
            self.h.changeRowBounds(i, -highspy.kHighsInf, highspy.kHighsInf)

    def vector(self, expr: Expr, sign: float = 1.0) -> list[float]:
        c = [0.0] * self.n
        for v, coef in expr.items():
            c[self.index[v]] += sign * coef
        return c

    def optimise(self, expr: Expr, sign: float) -> tuple[float, set[str], list[float] | None]:
        """min (sign=1) or -max (sign=-1) of expr, the figures whose constraints bind (their
        dual values are not zero), and the optimal point (None when unbounded)."""
        import highspy
        import numpy as np

        h = self.h
        h.changeColsCost(self.n, self.columns, np.array(self.vector(expr, sign)))
        h.run()
        status = h.getModelStatus()
        if status not in _settled():  # a warm start that went nowhere: solve afresh
            h.clearSolver()
            h.run()
            status = h.getModelStatus()
        if status in (
            highspy.HighsModelStatus.kUnbounded,
            highspy.HighsModelStatus.kUnboundedOrInfeasible,  # never infeasible: see below
        ):
            return -math.inf, set(), None
        if status != highspy.HighsModelStatus.kOptimal:
            # the true values satisfy every constraint, so this is a bug, never the data
            raise RuntimeError(f"disclosure audit: HiGHS says {h.modelStatusToString(status)}")
        solution = h.getSolution()
        binding = {
            figure
            for figure, dual in zip(self.figures, solution.row_dual, strict=True)
            if figure is not None and abs(dual) > 1e-9
        }
        return float(h.getInfo().objective_function_value), binding, list(solution.col_value)


def _key(expr: Expr) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((v, c) for v, c in expr.items() if c != 0))


def _int_range(low: float, high: float) -> tuple[float, float]:
    lo = math.ceil(low - _EPS) if math.isfinite(low) else low
    hi = math.floor(high + _EPS) if math.isfinite(high) else high
    return lo, hi


def bounds(
    table: Table, pub: Publication, exprs: Mapping[str, Expr]
) -> dict[str, tuple[float, float, frozenset[str]]]:
    """The integer range of each expression consistent with the publication, and the figures
    binding it."""
    system = _System(
        [*table.structure, *published(table, pub)], sorted({*table.values, *table.latent})
    )
    out: dict[str, tuple[float, float, frozenset[str]]] = {}
    for label, expr in exprs.items():
        low, bind_low, _ = system.optimise(expr, 1.0)
        neg_high, bind_high, _ = system.optimise(expr, -1.0)
        out[label] = (*_int_range(low, -neg_high), frozenset(bind_low | bind_high))
    return out


class Auditor:
    """The audit of one table as its publication changes: the system is built once, and
    hiding a figure frees the rows it published (`protect` hides figure after figure)."""

    def __init__(self, table: Table, pub: Publication) -> None:
        import numpy as np

        self.table, self.pub = table, pub
        with _HIGHS:
            self.system = _System(
                [*table.structure, *published(table, pub)], sorted({*table.values, *table.latent})
            )
        self.rows: dict[str, list[int]] = {}
        for i, figure in enumerate(self.system.figures):
            if figure is not None:
                self.rows.setdefault(figure, []).append(i)
        self._np = np
        self._spans: dict[tuple[tuple[str, float], ...], list[float]] = {}
        self._passed: set[tuple[tuple[str, float], ...]] = set()
        self._points: list[list[float]] = []
        self._base: _System | None = None

    def _structural(self, expr: Expr) -> tuple[float, float]:
        """The integer range of `expr` under the structure alone (nothing published): what
        no suppression can widen. Only asked for an expression that fails."""
        if self._base is None:
            self._base = _System(
                list(self.table.structure), sorted({*self.table.values, *self.table.latent})
            )
        low = self._base.optimise(expr, 1.0)[0]
        high = -self._base.optimise(expr, -1.0)[0]
        return _int_range(low, high)

    def hide(self, figure: str) -> None:
        """Suppress a shown figure, or turn a "<5" count into "skjult"; the shares that
        follow a hidden count go with it."""
        table, pub = self.table, self.pub
        if figure in pub.counts:
            pub.counts[figure] = Status.HIDDEN
            for key, share in table.shares.items():
                if figure in share.follows and pub.shares[key] is Status.SHOWN:
                    self.hide(key)
                elif figure in share.den and pub.shares[key] is Status.NONE:
                    self.hide(key)  # "–" would say the hidden count is 0
        else:
            pub.shares[figure] = Status.HIDDEN
        with _HIGHS:
            self.system.relax(self.rows.pop(figure, []))

    def findings(self) -> list[Finding]:
        with _HIGHS:
            return self._findings()

    def _open(self) -> dict[tuple[tuple[str, float], ...], tuple[Expr, int, list[str]]]:
        """The protected expressions not passed yet, each once, with its value and labels."""
        unique: dict[tuple[tuple[str, float], ...], tuple[Expr, int, list[str]]] = {}
        for label, (expr, value) in protected(self.table, self.pub).items():
            k = _key(expr)
            if k not in self._passed:
                unique.setdefault(k, (expr, value, []))[2].append(label)
        return unique

    def _findings(self) -> list[Finding]:
        """Every protected expression that a reader can narrow down too far.

        Each optimum is a point consistent with the publication: the values of the other
        expressions there widen what is known of their ranges, and an expression whose range
        is already wide enough at the points found needs no program of its own (the ranges
        only grow with more points, and the test only asks for enough width). Hiding only
        frees constraints, so the points found stay consistent and an expression that passed
        keeps passing: a later call solves only for the others."""
        np, system = self._np, self.system
        unique = self._open()
        if not unique:
            return []
        keys = list(unique)
        for k in keys:
            self._spans.setdefault(k, [math.inf, -math.inf])
        matrix = np.array([system.vector(unique[k][0]) for k in keys])

        def learn(point: list[float] | None, new: bool = True) -> None:
            if point is None:
                return
            if new:
                self._points.append(point)
            at = matrix @ np.array(point)
            for i, k in enumerate(keys):
                span = self._spans[k]
                span[0], span[1] = min(span[0], at[i]), max(span[1], at[i])

        for point in self._points:  # still consistent after hiding: seen by new expressions
            learn(point, new=False)
        # two programs that push every open expression down, and up, at once: most of them
        # are then seen to be wide enough without a program of their own
        together = _sum(expr for expr, _v, _l in unique.values())
        learn(system.optimise(together, 1.0)[2])
        learn(system.optimise(together, -1.0)[2])
        out: list[Finding] = []
        for k in keys:
            expr, value, labels = unique[k]
            span = self._spans[k]
            if passes(value, *_int_range(*span)):
                self._passed.add(k)
                continue
            minimum, bind_low, at_low = system.optimise(expr, 1.0)
            learn(at_low)
            span[0] = minimum
            if passes(value, *_int_range(*span)):
                self._passed.add(k)
                continue
            neg_max, bind_high, at_high = system.optimise(expr, -1.0)
            learn(at_high)
            span[1] = -neg_max
            lo, hi = _int_range(*span)
            if passes(value, lo, hi) or passes(value, lo, hi, self._structural(expr)):
                self._passed.add(k)
            else:
                binding = frozenset(bind_low | bind_high)
                out.extend(Finding(label, value, lo, hi, binding) for label in labels)
        return out


def _sum(exprs: Iterable[Expr]) -> dict[str, float]:
    """The expressions added up, coefficient by coefficient."""
    total: dict[str, float] = {}
    for expr in exprs:
        for v, c in expr.items():
            total[v] = total.get(v, 0.0) + c
    return total


def audit(table: Table, pub: Publication) -> list[Finding]:
    """Every protected expression of `table` that `pub` lets a reader narrow down too far."""
    return Auditor(table, pub).findings()
