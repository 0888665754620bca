"""The business envelope: MsgHead v1.2 reading and checks (pure, no I/O)."""

from app.msghead.checks import DEFAULT_CLOCK_SKEW, check_msghead, msgid_duplicate
from app.msghead.model import (
    MSGHEAD_NS,
    Code,
    ConversationRef,
    Ident,
    MsgHead,
    MsgHeadReading,
    Organisation,
)
from app.msghead.parse import read_msghead
from app.msghead.rules import RULES

__all__ = [
    "DEFAULT_CLOCK_SKEW",
    "MSGHEAD_NS",
    "RULES",
    "Code",
    "ConversationRef",
    "Ident",
    "MsgHead",
    "MsgHeadReading",
    "Organisation",
    "check_msghead",
    "msgid_duplicate",
    "read_msghead",
]
