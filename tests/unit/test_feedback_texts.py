"""The feedback's rule texts and its store of rendered answers."""

from __future__ import annotations

from app.feedback import http as feedback_http
from app.feedback.figures import EPJ_ADVICE, rule_text
from app.feedback.http import forget_all, remember


def test_a_rule_text_without_advice_gets_the_advice_for_its_consequence() -> None:
    text, consequence = rule_text("EBMS-MIME-BOUNDARY")
    assert consequence == "message_error"
    assert text.endswith(EPJ_ADVICE["message_error"])
    assert rule_text("NO-SUCH-RULE") == ("Regel NO-SUCH-RULE.", "warn")


def test_forget_all_empties_the_stored_answers() -> None:
    remember("etag-1", b"body", "text/plain")
    assert feedback_http._BODIES
    forget_all()
    assert not feedback_http._BODIES
