"""`kpr-mottak validate`, `sample` and `send`.

validate and sample run through the CLI (CliRunner) on generated samples; send's pieces
(keys from the dev PKI directory, building, posting, reading and printing the reply) run
against the ASGI app with a real database, and the command's own failure paths through the CLI.
The end-to-end `send` through a real uvicorn socket lives in tests/e2e.
"""

from __future__ import annotations

import datetime
import io
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree
from typer.testing import CliRunner

from app.apprec import AppRecStatus, AppRecVersion, parse_apprec
from app.apprec.model import KPR_NAME
from app.cli import sample as cli_sample
from app.cli import send as cli_send
from app.cli import tools as cli_tools
from app.cli.root import app
from app.content.iplos import NS
from app.dev.devpki import DevPki, write_dev_pki
from app.dev.sample import build_sample, wrap_in_msghead
from app.platform.settings import Settings
from tests.integration.conftest import on_a_socket

# validate, sample, send: the intake's SQL runs on both in its own tests
pytestmark = pytest.mark.databases("sqlite")

runner = CliRunner()
KOMMUNE = "0301"


def fids_in(data: bytes) -> set[str]:
    return {m.decode() for m in re.findall(rb'\bfid="([^"]+)"', data)}


def make_sample(tmp_path: Path, name: str, *args: str) -> Path:
    out = tmp_path / name
    r = runner.invoke(
        app, ["sample", "--notifications", "5", "--kommune", KOMMUNE, "--out", str(out), *args]
    )
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env, relative paths land in tmp
    monkeypatch.delenv("KPR_REPORTING_CALENDAR", raising=False)
    monkeypatch.delenv("KPR_PKI_DIR", raising=False)


# --- validate --------------------------------------------------------------------------------


# The sample reports 2018; a calendar that still takes 2018 keeps the check quiet.
ON_TIME = '{"2018": {"deadline": "2099-01-15", "correction_deadline": "2099-03-21"}}'


def test_validate_a_valid_msghead_exits_0_and_writes_an_ok_apprec(tmp_path: Path) -> None:
    path = make_sample(tmp_path, "ok.xml")
    r = runner.invoke(app, ["validate", str(path), "--reporting-calendar", ON_TIME])
    assert r.exit_code == 0, r.output
    assert "ingen funn" in r.output
    apprec = parse_apprec((tmp_path / "ok.apprec.xml").read_bytes())
    assert apprec.status_code is AppRecStatus.OK
    assert apprec.errors == ()
    assert apprec.sender.id == "131725"
    assert apprec.receiver.id == "8000001"
    assert apprec.original.msg_type == "KPR_IPL"
    assert apprec.version is AppRecVersion.V1_1


def test_validate_row_errors_exit_1_and_never_print_a_fid(tmp_path: Path) -> None:
    path = make_sample(tmp_path, "rows.xml", "--fault", "IPL-FID-INVALID")
    r = runner.invoke(app, ["validate", str(path), "--apprec-out", "receipt.xml"])
    assert r.exit_code == 1, r.output
    assert "IPL-FID-INVALID" in r.output
    receipt = (tmp_path / "receipt.xml").read_bytes()
    apprec = parse_apprec(receipt)
    assert apprec.status_code is AppRecStatus.OK_ERROR_IN_PART
    assert [e.code for e in apprec.errors] == ["E31"]
    fids = fids_in(path.read_bytes())
    assert len(fids) == 5
    for fid in fids:
        assert fid not in r.output
        assert fid.encode() not in receipt


def test_validate_a_rejected_message_exits_2(tmp_path: Path) -> None:
    path = make_sample(tmp_path, "bad.xml", "--fault", "IPL-FID-MISSING")
    r = runner.invoke(app, ["validate", str(path)])
    assert r.exit_code == 2, r.output
    apprec = parse_apprec((tmp_path / "bad.apprec.xml").read_bytes())
    assert apprec.status_code is AppRecStatus.REJECTED
    assert [e.code for e in apprec.errors] == ["E30"]
    assert (apprec.errors[0].ot or "").startswith("IPL-FID-MISSING: ")


def test_validate_a_bare_melding_uses_the_content_check(tmp_path: Path) -> None:
    ok = make_sample(tmp_path, "melding.xml", "--no-msghead")
    assert etree.QName(etree.parse(str(ok)).getroot()).namespace == NS
    r = runner.invoke(app, ["validate", str(ok), "--apprec-version", "1.0"])
    assert r.exit_code == 0, r.output
    assert "Melding" in r.output
    apprec = parse_apprec((tmp_path / "melding.apprec.xml").read_bytes())
    assert apprec.version is AppRecVersion.V1_0
    assert apprec.status_code is AppRecStatus.OK
    assert apprec.original.msg_type == "KPR_IPL"

    bad = make_sample(tmp_path, "melding-bad.xml", "--no-msghead", "--fault", "IPL-FID-MISSING")
    r = runner.invoke(app, ["validate", str(bad)])
    assert r.exit_code == 2, r.output
    apprec = parse_apprec((tmp_path / "melding-bad.apprec.xml").read_bytes())
    assert [e.code for e in apprec.errors] == ["E30"]


def test_validate_a_file_that_is_not_xml_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"\x00\x01 this is not XML")
    r = runner.invoke(app, ["validate", "notes.txt"])  # the cwd is tmp_path
    assert r.exit_code == 2
    assert "notes.txt is not XML" in " ".join(r.output.split())
    apprec = parse_apprec((tmp_path / "notes.apprec.xml").read_bytes())
    assert apprec.status_code is AppRecStatus.REJECTED
    assert [e.code for e in apprec.errors] == ["T01"]


def test_validate_a_truncated_melding_is_not_xml(tmp_path: Path) -> None:
    make_sample(tmp_path, "cut.xml", "--no-msghead", "--fault", "IPL-NOT-XML")
    r = runner.invoke(app, ["validate", "cut.xml"])
    assert r.exit_code == 2
    assert "cut.xml is not XML" in " ".join(r.output.split())
    apprec = parse_apprec((tmp_path / "cut.apprec.xml").read_bytes())
    assert [e.code for e in apprec.errors] == ["T01"]
    assert (apprec.errors[0].ot or "").startswith("IPL-NOT-XML: ")


def test_validate_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    r = runner.invoke(app, ["validate", str(tmp_path / "nowhere.xml")])
    assert r.exit_code == 2
    assert not (tmp_path / "nowhere.apprec.xml").exists()


def test_validate_kommune_restricts_the_municipalities(tmp_path: Path) -> None:
    path = make_sample(tmp_path, "ok.xml")
    assert runner.invoke(app, ["validate", str(path), "--kommune", KOMMUNE]).exit_code == 0
    r = runner.invoke(app, ["validate", str(path), "--kommune", "4601"])
    assert r.exit_code == 2, r.output
    assert "IPL-KOMMUNE-NOT-ALLOWED" in r.output


def test_validate_production_refuses_synthetic_identities(tmp_path: Path) -> None:
    path = make_sample(tmp_path, "ok.xml")
    r = runner.invoke(app, ["validate", str(path), "--production"])
    assert r.exit_code == 2, r.output  # every notification dropped: the message is rejected
    apprec = parse_apprec((tmp_path / "ok.apprec.xml").read_bytes())
    assert apprec.status_code is AppRecStatus.REJECTED
    assert [e.code for e in apprec.errors] == ["X99"] + ["E31"] * 5


def test_validate_msghead_to_another_receiver_is_rejected(tmp_path: Path) -> None:
    path = make_sample(tmp_path, "other.xml", "--receiver-her", "122612")
    r = runner.invoke(app, ["validate", str(path)])
    assert r.exit_code == 2, r.output
    assert "MSGHEAD-RECEIVER-UNKNOWN" in r.output
    r = runner.invoke(app, ["validate", str(path), "--receiver", "122612"])
    assert r.exit_code == 0, r.output
    assert parse_apprec((tmp_path / "other.apprec.xml").read_bytes()).sender.id == "122612"


def test_validate_document_sniffs_the_root_without_parsing_everything() -> None:
    melding = build_sample(2, KOMMUNE)
    root = cli_tools.sniff_root(melding)
    assert root is not None
    assert (root.namespace, root.localname) == (NS, "Melding")
    assert cli_tools.sniff_root(b"") is None
    assert cli_tools.sniff_root(b"<a><b>") is not None  # the start is enough
    assert cli_tools.sniff_root(b"<a/><b/>") is not None  # trailing junk is the check's job
    assert cli_tools.sniff_root(b"garbage") is None


# --- sample ----------------------------------------------------------------------------------


def test_sample_writes_a_message_that_validates(tmp_path: Path) -> None:
    out = tmp_path / "big.xml"
    r = runner.invoke(
        app,
        [
            "sample",
            "--notifications",
            "12000",
            "--kommune",
            KOMMUNE,
            "--seed",
            "3",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "12000 notifications" in r.output
    r = runner.invoke(app, ["validate", str(out), "--kommune", KOMMUNE])
    assert r.exit_code == 0, r.output
    assert "12000 notifikasjoner" in r.output


def test_streamed_msghead_equals_the_wrapped_sample() -> None:
    gen = datetime.datetime(2018, 11, 20, 12, 0)
    msg_id = str(uuid.uuid4())
    out = io.BytesIO()
    seen: list[int] = []
    cli_sample.write_sample_file(
        out,
        2500,
        KOMMUNE,
        faults=("IPL-BYDEL-FORMAT",),
        seed=5,
        msg_id=msg_id,
        gen_date=gen,
        on_notifications=seen.append,
    )
    melding = build_sample(2500, KOMMUNE, ("IPL-BYDEL-FORMAT",), seed=5)
    assert out.getvalue() == wrap_in_msghead(melding, 8000001, 131725, msg_id, gen)
    assert sum(seen) == 2500


def test_sample_with_an_unknown_fault_exits_2_listing_the_valid_ones(tmp_path: Path) -> None:
    out = tmp_path / "x.xml"
    r = runner.invoke(
        app,
        [
            "sample",
            "--notifications",
            "3",
            "--kommune",
            KOMMUNE,
            "--fault",
            "IPL-NOPE",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 2
    assert "IPL-NOPE" in r.output
    assert "IPL-LOPENR-ORDER" in r.output
    assert not out.exists()


def test_sample_refuses_a_fault_it_cannot_place(tmp_path: Path) -> None:
    out = tmp_path / "x.xml"
    args = ["--notifications", "1", "--kommune", KOMMUNE, "--fault", "IPL-LOPENR-ORDER"]
    r = runner.invoke(app, ["sample", *args, "--out", str(out)])
    assert r.exit_code == 2
    assert "two notifications" in r.output
    assert not out.exists()


def test_sample_to_stdout_without_msghead() -> None:
    r = runner.invoke(app, ["sample", "--notifications", "4", "--kommune", "4601", "--no-msghead"])
    assert r.exit_code == 0, r.output
    root = etree.fromstring(r.stdout_bytes)
    assert etree.QName(root).localname == "Melding"
    assert len(root.findall(f"{{{NS}}}Notifikasjon")) == 4
    assert root.find(f"{{{NS}}}Kommune").get("kommuneNr") == "4601"  # type: ignore[union-attr]


# --- send ------------------------------------------------------------------------------------


def _msghead(*faults: str, seed: int = 9, start_lopenr: int = 1) -> bytes:
    out = io.BytesIO()
    cli_sample.write_sample_file(
        out, 4, KOMMUNE, faults=faults, seed=seed, start_lopenr=start_lopenr
    )
    return out.getvalue()


async def test_send_valid_message_gets_ack_and_ok_apprec(
    intake: httpx.AsyncClient, settings_with_pki: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = cli_send.load_send_keys(settings_with_pki.pki_dir, sign=True, encrypt=True)
    sent = await cli_send.send_message(intake, "/ebms", _msghead(), keys, from_her="8000001")
    s = sent.summary
    assert s.http_status == 200
    assert s.problems == ()
    assert s.ack_ref == sent.message_id
    assert s.ack_timestamp is not None
    assert s.errors == ()
    assert s.apprec_status == "1"
    assert s.exit_code == 0
    cli_send.print_reply(s, sent.message_id)
    printed = capsys.readouterr().out
    assert f"RefToMessageId {sent.message_id}" in printed
    assert "AppRec status 1 OK" in printed


async def test_send_gzip_with_row_errors_exits_1(
    intake: httpx.AsyncClient, settings_with_pki: Settings
) -> None:
    keys = cli_send.load_send_keys(settings_with_pki.pki_dir, sign=True, encrypt=True)
    sent = await cli_send.send_message(
        intake, "/ebms", _msghead("IPL-TJENESTETYPE-CODE"), keys, from_her="8000001", gzip=True
    )
    s = sent.summary
    assert s.ack_ref == sent.message_id
    assert s.apprec_status == "3"
    assert [code for code, _ in s.apprec_errors] == ["T99"]
    assert "IPL-TJENESTETYPE-CODE" in (s.apprec_errors[0][1] or "")
    assert s.exit_code == 1


async def test_send_unsigned_plaintext_gets_a_message_error_and_exit_2(
    intake: httpx.AsyncClient, settings_with_pki: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = cli_send.load_send_keys(settings_with_pki.pki_dir, sign=False, encrypt=False)
    assert keys.signing is None
    assert keys.encrypt_to is None
    sent = await cli_send.send_message(intake, "/ebms", _msghead(), keys, from_her="8000001")
    s = sent.summary
    assert s.errors, s
    assert s.errors[0][1] == "Error"
    assert s.apprec_status is None
    assert s.exit_code == 2
    cli_send.print_reply(s, sent.message_id)
    assert "MessageError" in capsys.readouterr().out


def test_summarize_a_non_ebxml_reply_exits_2() -> None:
    s = cli_send.summarize_reply(502, b"Bad gateway", "text/plain", ())
    assert s.exit_code == 2
    assert s.problems == ("HTTP 502: Bad gateway",)


def test_send_without_a_pki_exits_2_with_a_hint(tmp_path: Path) -> None:
    msghead = tmp_path / "m.xml"
    msghead.write_bytes(_msghead())
    r = runner.invoke(
        app,
        [
            "send",
            str(msghead),
            "--url",
            "http://127.0.0.1:9/ebms",
            "--pki-dir",
            str(tmp_path / "none"),
        ],
    )
    assert r.exit_code == 2
    assert "dev-pki" in r.output


@pytest.mark.parametrize("content", [b"", b"<MsgHead", b"not xml"])
def test_send_of_a_file_that_is_no_xml_exits_2_and_sends_nothing(
    tmp_path: Path, pki: DevPki, content: bytes
) -> None:
    write_dev_pki(tmp_path / "pki", pki)
    msghead = tmp_path / "m.xml"
    msghead.write_bytes(content)
    r = runner.invoke(
        app,
        [
            "send",
            str(msghead),
            "--url",
            "http://127.0.0.1:9/ebms",
            "--pki-dir",
            str(tmp_path / "pki"),
        ],
    )
    assert r.exit_code == 2
    said = " ".join(r.output.split())  # rich wraps long lines
    assert "is not a readable MsgHead" in said
    assert "kpr-mottak validate" in said
    assert "Traceback" not in r.output


def test_send_to_a_closed_port_exits_2(tmp_path: Path, pki: DevPki) -> None:
    write_dev_pki(tmp_path / "pki", pki)
    msghead = tmp_path / "m.xml"
    msghead.write_bytes(_msghead())
    r = runner.invoke(
        app,
        [
            "send",
            str(msghead),
            "--url",
            "http://127.0.0.1:9/ebms",
            "--pki-dir",
            str(tmp_path / "pki"),
            "--timeout",
            "5",
        ],
    )
    assert r.exit_code == 2
    assert "could not post" in r.output


@pytest.fixture
def served(settings_with_pki: Settings, demo_party: int) -> Iterator[str]:
    """The app on a real socket (uvicorn in a thread, port chosen by the OS)."""
    with on_a_socket(settings_with_pki) as url:
        yield f"{url}/ebms"


def test_send_command_through_a_real_socket(
    served: str, settings_with_pki: Settings, tmp_path: Path
) -> None:
    ok = tmp_path / "ok.xml"
    ok.write_bytes(_msghead())
    pki_dir = str(settings_with_pki.pki_dir)
    r = runner.invoke(app, ["send", str(ok), "--url", served, "--pki-dir", pki_dir])
    assert r.exit_code == 0, r.output
    assert "Acknowledgment" in r.output
    assert "AppRec status 1 OK" in r.output

    rows = tmp_path / "rows.xml"
    # the municipality's next message: new notifications, so only the faulty one is dropped
    rows.write_bytes(_msghead("IPL-FID-INVALID", seed=10, start_lopenr=5))
    r = runner.invoke(app, ["send", str(rows), "--url", served, "--pki-dir", pki_dir, "--gzip"])
    assert r.exit_code == 1, r.output
    assert "E31" in r.output
    assert not any(fid in r.output for fid in fids_in(rows.read_bytes()))


def test_validate_judges_configured_years_like_a_production_address(tmp_path: Path) -> None:
    path = make_sample(tmp_path, "late.xml")
    r = runner.invoke(app, ["validate", str(path), "--reporting-calendar", ""])
    assert r.exit_code == 0, r.output
    assert "IPL-CALENDAR" not in r.output  # no configured year: nothing to judge
    calendar = '{"2018": {"deadline": "2019-01-15", "correction_deadline": "2019-03-21"}}'
    r = runner.invoke(app, ["validate", str(path), "--reporting-calendar", calendar])
    assert r.exit_code == 0, r.output  # a warning: still status 1
    assert "IPL-CALENDAR-AFTER-CORRECTION" in r.output


def test_sample_says_where_a_context_fault_shows(tmp_path: Path) -> None:
    out = tmp_path / "s.xml"
    r = runner.invoke(
        app,
        [
            "sample",
            "--notifications",
            "2",
            "--kommune",
            KOMMUNE,
            "--fault",
            "IPL-FID-SYNTHETIC",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "IPL-FID-SYNTHETIC shows only on a production address" in r.output


def test_sample_makes_identical_resends_and_sequences_over_messages(tmp_path: Path) -> None:
    same = ("--seed", "4", "--msg-id", "m-1", "--gen-date", "2018-11-20T12:00:00")
    first = make_sample(tmp_path, "a.xml", *same).read_bytes()
    again = make_sample(tmp_path, "b.xml", *same).read_bytes()
    assert first == again  # an identical resend, byte for byte
    last_guid = re.findall(rb'notifikasjonGUID="([^"]+)"', first)[-1].decode()
    nxt = make_sample(
        tmp_path, "c.xml", "--seed", "5", "--start-lopenr", "6", "--previous-guid", last_guid
    ).read_bytes()
    assert b'notifikasjonLopeNr="6"' in nxt
    assert f'notifikasjonForrigeGUID="{last_guid}"'.encode() in nxt
    r = runner.invoke(app, ["validate", str(tmp_path / "c.xml")])
    assert r.exit_code == 0, r.output  # offline, with no history: a valid message
    tz = make_sample(tmp_path, "tz.xml", "--fault", "tz-date").read_bytes()
    assert b'hendelseDato="2018-01-01+01:00"' in tz
    r = runner.invoke(app, ["validate", str(tmp_path / "tz.xml")])
    assert r.exit_code == 0, r.output
    bad = runner.invoke(app, ["sample", "--notifications", "1", "--kommune", KOMMUNE,
                              "--gen-date", "yesterday"])  # fmt: skip
    assert bad.exit_code == 2
    assert "--gen-date" in bad.output


# --- issue 8: the offline validate shows what the server answers -----------------------------


def test_validate_names_kpr_in_the_apprec_as_the_server_does(tmp_path: Path) -> None:
    path = make_sample(tmp_path, "ok.xml")
    runner.invoke(app, ["validate", str(path), "--reporting-calendar", ON_TIME])
    apprec = parse_apprec((tmp_path / "ok.apprec.xml").read_bytes())
    assert apprec.sender.name == KPR_NAME == "Kommunalt pasient- og brukerregister (KPR)"


@pytest.mark.parametrize(
    ("fault", "exit_code", "status", "shown"),
    [
        ("MSGHEAD-GENDATE-FUTURE", 0, AppRecStatus.OK, "MSGHEAD-GENDATE-FUTURE"),
        ("IPL-HENDELSEDATO-FUTURE", 0, AppRecStatus.OK, "IPL-HENDELSEDATO-FUTURE"),
        ("two-events", 0, AppRecStatus.OK, "ingen funn"),
        ("IPL-XSD-ROW", 1, AppRecStatus.OK_ERROR_IN_PART, "IPL-XSD-ROW"),
        ("IPL-ALL-DROPPED", 2, AppRecStatus.REJECTED, "IPL-ALL-DROPPED"),
        ("brukernr-digits", 1, AppRecStatus.OK_ERROR_IN_PART, "IPL-FID-INVALID"),
    ],
)
def test_sample_faults_of_issue_8_show_in_the_offline_validate(
    tmp_path: Path, fault: str, exit_code: int, status: AppRecStatus, shown: str
) -> None:
    path = make_sample(tmp_path, "f.xml", "--fault", fault)
    r = runner.invoke(app, ["validate", str(path), "--reporting-calendar", ON_TIME])
    assert r.exit_code == exit_code, r.output
    assert shown in r.output
    apprec = parse_apprec((tmp_path / "f.apprec.xml").read_bytes())
    assert apprec.status_code is status
    ots = " ".join(e.ot or "" for e in apprec.errors)
    if fault == "IPL-XSD-ROW":
        assert "Skjemafeil i /Melding/Notifikasjon[5]/TjenesteStart/Bruker/@brukerNr" in ots
        assert "linje" not in ots
    if fault == "brukernr-digits":
        # kept with its error (issue 21)
        assert re.search(r"brukerNr 1[0-9]{11}, løpenummer \d+\) er lagret, men har feil", ots), ots


def test_sample_gendate_future_needs_a_msghead(tmp_path: Path) -> None:
    r = runner.invoke(
        app,
        [
            *("sample", "--notifications", "2", "--kommune", KOMMUNE, "--no-msghead"),
            *("--fault", "MSGHEAD-GENDATE-FUTURE"),
        ],
    )
    assert r.exit_code == 2
    assert "needs --msghead" in r.output
