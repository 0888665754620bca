"""How a rule's share of a municipality's figures is counted, for the pages (`assembly`) and
the disclosure audit (`disclosure`) alike."""

from __future__ import annotations


def rule_share_parts(value: int, total: int, received: int, messages: int) -> tuple[int, int]:
    """A rule's numerator and denominator: the notifications it concerns of those received,
    or, for a rule about whole messages, the messages."""
    if value > 0 or total == 0:
        return value, received
    return total, messages
