"""The reply's way from the sender's CPA (issue 26): channels read from a CPA, the decision,
the back-off schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.parties.channels import ReplyChannel, ReplyChannels, duration_seconds
from app.parties.spec import read_cpa
from app.registries.cppa_rest import parse_profile
from app.replies.decide import Fallback, decide, endpoint_channel, next_delay, shown_endpoint

ASYNC_CPA = Path(__file__).parents[1] / "data" / "async-http-cpa.xml"


def _demo_channels(data: bytes) -> ReplyChannels:
    spec = next(p for p in read_cpa(data, "cpa.xml") if p.her_id == 8000001)
    channels = spec.cpas[0].reply_channels
    assert channels is not None
    return channels


def test_the_test_cpa_asks_for_replies_to_its_http_endpoint() -> None:
    channels = _demo_channels(ASYNC_CPA.read_bytes())
    channel = channels.for_action("KPR_IPL", "KPR_IPL")
    assert channel == ReplyChannel(
        channel_id="demo_async_http",
        sync_reply_mode="none",
        endpoint="http://127.0.0.1:8090/ebms-replies",
        retries=3,
        retry_interval_seconds=2,
    )
    decision = decide(channels, "KPR_IPL", "KPR_IPL", mail_sender=False)
    assert decision.route is not None
    assert (decision.route.channel, decision.route.retries) == ("http", 3)
    # stored as JSON on party_cpa and read back alike
    assert ReplyChannels.from_json(channels.as_json()) == channels


def test_an_action_the_cpa_does_not_list_takes_the_default_msh_channel() -> None:
    channels = _demo_channels(ASYNC_CPA.read_bytes())
    assert channels.for_action("Other", "Other") == channels.default
    assert channels.default is not None
    assert channels.default.channel_id == "demo_async_http"


@pytest.mark.parametrize("mode", ["signalsAndResponse", "responseOnly"])
def test_a_synchronous_channel_keeps_the_reply_in_the_exchange(mode: str) -> None:
    data = ASYNC_CPA.read_bytes().replace(
        b'tp:syncReplyMode="none"', f'tp:syncReplyMode="{mode}"'.encode()
    )
    decision = decide(_demo_channels(data), "KPR_IPL", "KPR_IPL", mail_sender=True)
    assert (decision.route, decision.mode, decision.fallback) == (None, mode, None)


def test_no_registered_channels_is_synchronous_as_always() -> None:
    assert decide(None, "KPR_IPL", "KPR_IPL", mail_sender=True).route is None
    assert decide(None, "KPR_IPL", "KPR_IPL", mail_sender=True).fallback is None


@pytest.mark.parametrize(
    ("endpoint", "fallback"),
    [
        (b"", Fallback.NO_ENDPOINT),
        (b"sb.test.nhn.no/DigitalDialog/93238_async", Fallback.UNUSABLE_ENDPOINT),
        (b"ftp://files.example/in", Fallback.UNUSABLE_ENDPOINT),
        (b"mailto://kommune@edi.example.no", Fallback.NO_MAIL_SENDER),
    ],
)
def test_none_without_a_usable_endpoint_falls_back_and_says_why(
    endpoint: bytes, fallback: Fallback
) -> None:
    data = ASYNC_CPA.read_bytes().replace(b"http://127.0.0.1:8090/ebms-replies", endpoint)
    decision = decide(_demo_channels(data), "KPR_IPL", "KPR_IPL", mail_sender=False)
    assert (decision.route, decision.mode, decision.fallback) == (None, "none", fallback)


def test_a_mailto_endpoint_goes_to_the_mail_sender_when_there_is_one() -> None:
    data = ASYNC_CPA.read_bytes().replace(
        b"http://127.0.0.1:8090/ebms-replies", b"mailto:kommune@edi.example.no"
    )
    decision = decide(_demo_channels(data), "KPR_IPL", "KPR_IPL", mail_sender=True)
    assert decision.route is not None
    assert decision.route.channel == "mailto"


def test_the_reference_cpas_channels(reference_dir: Path) -> None:
    """NAV's test CPA: SMTP channel `none` (mailto, Retries 4, PT720M), HTTP channel
    `signalsAndResponse`; Helsenorge's AMQP channels name no mode (CPPA's default: none) and
    an endpoint that is no URL, so they keep the synchronous reply."""
    directory = reference_dir / "cpa"
    nav = next(
        p
        for p in read_cpa((directory / "nav-qass-35065.xml").read_bytes(), "nav")
        if p.her_id == 8141253
    )
    channels = nav.cpas[0].reply_channels
    assert channels is not None
    smtp = channels.for_action("Legemelding", "Sykmelding")
    assert smtp is not None
    assert (smtp.sync_reply_mode, smtp.retries, smtp.retry_interval_seconds) == ("none", 4, 43200)
    assert smtp.endpoint == "mailto://example@example.com"
    http = channels.for_action("HarBorgerFrikort", "EgenandelForesporsel")
    assert http is not None
    assert http.sync_reply_mode == "signalsAndResponse"
    helsenorge = read_cpa((directory / "helsenorge-CPA_93252.xml").read_bytes(), "hn")
    for party in helsenorge:
        found = party.cpas[0].reply_channels
        assert found is not None
        for _s, _a, channel in found.actions:
            decision = decide(found, _s, _a, mail_sender=True)
            assert (decision.route, decision.fallback) == (None, Fallback.UNUSABLE_ENDPOINT), (
                channel
            )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT720M", 43200),
        ("PT2S", 2),
        ("P1DT1H", 90000),
        ("PT0.5S", 0),
        ("P1M", None),
        ("", None),
        ("PT", None),
        (None, None),
    ],
)
def test_retry_interval_durations(text: str | None, seconds: int | None) -> None:
    assert duration_seconds(text) == seconds


def test_back_off_doubles_from_the_retry_interval_up_to_the_cap_then_goes_slow() -> None:
    schedule = [next_delay(n, retries=4, interval=60, cap=900, slow=3600) for n in range(1, 7)]
    assert schedule == [
        (60, False),
        (120, False),
        (240, False),
        (480, False),
        (3600, True),
        (3600, True),
    ]
    # the reference CPA's PT720M is capped by KPR_REPLY_RETRY_MAX_SECONDS
    assert next_delay(1, retries=4, interval=43200, cap=900, slow=3600) == (900, False)


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        ("https://msh.kommune.example/ebms", "http"),
        ("HTTP://127.0.0.1:8090/x", "http"),
        ("mailto:kpr@edi.nhn.no", "mailto"),
        ("mailto://example@example.com", "mailto"),
        ("mailto:not-an-address", None),
        ("http://", None),
        ("file:///etc/passwd", None),
        ("javascript:alert(1)", None),
        ("https://msh.example/" + "x" * 1000, None),  # longer than the outbox keeps
    ],
)
def test_endpoint_kinds(uri: str, kind: str | None) -> None:
    assert endpoint_channel(uri) == kind


def test_a_password_in_an_endpoint_is_never_shown() -> None:
    assert (
        shown_endpoint("https://user:secret@msh.example:8443/ebms?token=x")
        == "https://msh.example:8443/ebms"
    )


def test_a_registry_profile_without_an_agreement_carries_the_partys_channels() -> None:
    """A CPP (no CPA with KPR): its PartyInfo's channels answer the party."""
    cpa = ASYNC_CPA.read_bytes()
    start = cpa.index(b"<tp:PartyInfo")
    end = cpa.index(b"</tp:PartyInfo>") + len(b"</tp:PartyInfo>")
    cpp = (
        b'<tp:CollaborationProtocolProfile xmlns:tp="http://www.oasis-open.org/committees/'
        b'ebxml-cppa/schema/cpp-cpa-2_0.xsd" xmlns:xlink="http://www.w3.org/1999/xlink" '
        b'tp:cppid="demo-cpp" tp:version="1">'
        + cpa[start:end]
        + b"</tp:CollaborationProtocolProfile>"
    )
    agreement = parse_profile(cpp)
    assert agreement.cpa_id is None
    assert agreement.reply_channels == _demo_channels(cpa)
