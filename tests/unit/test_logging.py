"""Logs never carry person identifiers, and errors are located without their messages."""

from __future__ import annotations

import json

import pytest

from app.platform.logs import configure_logging, error_location, get_logger


def test_fid_like_numbers_are_masked_in_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    get_logger("t").info(
        "test.event", detail="fid 01854403784 og 018544 03784", nested={"v": ["01854403784"]}
    )
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert "01854403784" not in json.dumps(line)
    assert "018544 03784" not in json.dumps(line)
    assert line["detail"] == "fid *********** og ***********"
    assert line["nested"] == {"v": ["***********"]}


def test_other_numbers_are_left_alone(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    get_logger("t").info("test.event", her_id=8000001, message_id="123456789012")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["her_id"] == 8000001
    assert line["message_id"] == "123456789012"


def test_error_location_names_frames_not_the_message() -> None:
    def fails() -> None:
        raise ValueError("secret value 01854403784")

    try:
        fails()
    except ValueError as exc:
        where = error_location(exc)
    assert where
    assert where[-1].endswith(" fails")
    assert "test_logging.py" in where[-1]
    assert all("secret" not in w for w in where)


def test_a_log_stream_that_fails_never_fails_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    configure_logging("json")
    broken = io.StringIO()
    broken.close()
    monkeypatch.setattr(sys, "stderr", broken)
    get_logger("t").info("test.event", n=1)  # must not raise


def test_logs_follow_the_current_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    configure_logging("json")
    sink = io.StringIO()
    monkeypatch.setattr(sys, "stderr", sink)
    get_logger("t").info("test.followed")
    assert "test.followed" in sink.getvalue()


def test_error_location_leads_with_our_own_frames() -> None:
    import json as json_lib

    try:
        json_lib.loads("{")
    except ValueError as exc:
        where = error_location(exc)
    assert "test_logging.py" in where[0]
    assert where[-1] != where[0]  # the innermost (library) frame closes the list
