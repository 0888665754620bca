"""The EDI channel's table (issue 25), `edi_outbox`: defined in `app/replies/models.py` beside
the other reply outbox, so the API can show and resend reply mails without importing the EDI
transport (which sits above the intake)."""

from app.replies.models import EdiOutbox

__all__ = ["EdiOutbox"]
