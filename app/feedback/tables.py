"""The feedback's aggregate tables (migration 0016). Written only by `app.feedback.refresh`,
read only by `app.feedback.figures`. Nothing here identifies a person: counts per
municipality, reporting year and environment, and national medians of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base, UtcDateTime, utcnow


class FeedbackKommune(Base):
    """One municipality's headline figures for one reporting year in one environment."""

    __tablename__ = "feedback_kommune"

    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    kommune_nr: Mapped[str] = mapped_column(String(4), primary_key=True)
    messages: Mapped[int] = mapped_column(BigInteger, default=0)
    readable: Mapped[int] = mapped_column(BigInteger, default=0)
    first_readable_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_readable_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    accepted: Mapped[int] = mapped_column(BigInteger, default=0)  # notifications stored
    failed: Mapped[int] = mapped_column(BigInteger, default=0)  # notifications with an error
    top_rule: Mapped[str | None] = mapped_column(String(60))  # most frequent failing rule
    refreshed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class FeedbackCount(Base):
    """A figure of one municipality: `kind` is users | tjeneste | item | rule_error |
    rule_warn | month; `key` the user group, service type code, item, rule id or month
    (YYYY-MM); `value` the count and `total` its denominator where it has one."""

    __tablename__ = "feedback_count"

    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    kommune_nr: Mapped[str] = mapped_column(String(4), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)


class FeedbackMedian(Base):
    """The national median of a figure (as a share, or a count for months) across the
    municipalities that delivered, and how many there were."""

    __tablename__ = "feedback_median"

    environment: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    median: Mapped[float] = mapped_column(Float)
    kommuner: Mapped[int] = mapped_column(Integer)


class FeedbackState(Base):
    """The refresh's watermark: messages up to `watermark` (by id) are in the aggregates;
    `generation` moves on with every refresh that changed them (the pages' ETag)."""

    __tablename__ = "feedback_state"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    watermark: Mapped[int] = mapped_column(BigInteger, default=0)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    refreshed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
