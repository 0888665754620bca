"""The table of deadline extensions (migration 0022)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base, UtcDateTime, utcnow


class DeadlineExtensionRow(Base):
    """A later deadline for one municipality and reporting year (`kpr-mottak calendar
    extend`). The calendar setting stays the ordinary calendar; this is the exception."""

    __tablename__ = "deadline_extension"

    kommune_nr: Mapped[str] = mapped_column(String(4), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    until: Mapped[date] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
