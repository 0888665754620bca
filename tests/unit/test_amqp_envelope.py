"""Helsenorge.Messaging's properties: the checks before the payload, the replies' properties."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.amqp.conditions import ErrorCondition
from app.amqp.envelope import (
    CONTENT_TYPE,
    Envelope,
    Refusal,
    check,
    error_reply,
    format_timestamp,
    parse_timestamp,
    queue_names,
    reply,
)
from app.amqp.link import (
    from_proton,
    receiver_address,
    sender_address,
    split_url,
    ssl_domain,
    to_proton,
)
from app.platform.settings import Env, Settings

NOW = datetime(2026, 12, 5, 22, 55, tzinfo=UTC)


def _sample(**application: str) -> Envelope:
    props = {
        "fromHerId": "8094866",
        "toHerId": "134197",
        "applicationTimeStamp": "2026-12-05T22:50:00Z",
        "cpaId": "cpa-1",
    }
    props.update(application)
    return Envelope(
        message_id="m-1",
        to="134197_async",
        subject="KPR_IPLOS",
        content_type=CONTENT_TYPE,
        application=props,
    )


def test_queue_names_and_timestamps() -> None:
    assert queue_names(134197)["async"] == "134197_async"
    assert set(queue_names(1)) == {"async", "sync", "error", "dl", "syncreply"}
    assert format_timestamp(NOW) == "2026-12-05T22:55:00Z"
    assert parse_timestamp("2026-12-05T23:55:00+01:00") == NOW
    assert parse_timestamp("2026-12-05T22:55:00") == NOW
    assert parse_timestamp("yesterday") is None


def test_a_complete_envelope_passes() -> None:
    assert check(_sample(), 10, 100) is None


def test_too_big_is_unsupported_and_names_the_limit() -> None:
    refusal = check(_sample(), 101, 100)
    assert refusal is not None
    assert refusal.condition is ErrorCondition.UNSUPPORTED_MESSAGE
    assert "100 byte" in refusal.description


@pytest.mark.parametrize("missing", ["fromHerId", "toHerId", "applicationTimeStamp"])
def test_missing_application_property_is_invalid_field_value(missing: str) -> None:
    props = dict(_sample().application)
    del props[missing]
    refusal = check(Envelope("m", subject="S", content_type=CONTENT_TYPE, application=props), 1, 9)
    assert refusal is not None
    assert refusal.condition is ErrorCondition.INVALID_FIELD_VALUE
    assert missing in refusal.description


def test_missing_subject_content_type_and_bad_time() -> None:
    bare = Envelope("m", application=dict(_sample().application))
    refusal = check(bare, 1, 9)
    assert refusal is not None
    assert "subject" in refusal.description
    assert "content-type" in refusal.description
    late = check(_sample(applicationTimeStamp="never"), 1, 9)
    assert late is not None
    assert "applicationTimeStamp" in late.description


def test_error_reply_swaps_parties_and_carries_the_condition() -> None:
    refusal = Refusal(ErrorCondition.SPOOFING_ATTACK, "Avsender stemmer ikke.")
    sent = error_reply(_sample(), "e-1", NOW, refusal)
    assert sent.subject == "KPR_IPLOS"
    assert sent.correlation_id == "m-1"
    assert sent.application["fromHerId"] == "134197"
    assert sent.application["toHerId"] == "8094866"
    assert sent.application["originalMessageId"] == "m-1"
    assert sent.application["errorCondition"] == "abuse:spoofing-attack"
    assert sent.application["receiverTimeStamp"] == "2026-12-05T22:55:00Z"
    assert sent.application["cpaId"] == "cpa-1"


def test_reply_round_trips_through_json_and_proton() -> None:
    sent = reply(_sample(), "a-1", NOW, "APPREC")
    assert Envelope.from_json(sent.as_json()) == sent
    envelope, body = from_proton(to_proton(sent, b"\x30\x80"))
    assert body == b"\x30\x80"
    assert envelope.application == sent.application
    assert envelope.content_type == CONTENT_TYPE
    assert (envelope.message_id, envelope.subject) == ("a-1", "APPREC")


def test_addresses_in_rabbitmqs_dialect(tmp_path: Path) -> None:
    assert split_url("amqps://u:p@bus:5671/ns") == ("amqps://u:p@bus:5671", "ns")
    assert sender_address("ns", "1_async") == "/exchange/ns/1_async"
    assert sender_address("", "1_async") == "/amq/queue/1_async"
    assert receiver_address("1_async") == "/amq/queue/1_async"
    assert ssl_domain("amqp://h", None) is None
    assert ssl_domain("amqps://h", None) is not None


def test_amqp_settings_parse() -> None:
    settings = Settings(
        _env_file=None,
        env=Env.TEST,
        amqp_url=" ",
        amqp_queues="134197, 131725",
    )
    assert settings.amqp_url is None
    assert settings.amqp_queues == (134197, 131725)
    with pytest.raises(ValueError, match="KPR_AMQP_QUEUES"):
        Settings(_env_file=None, env=Env.TEST, amqp_queues="abc")
