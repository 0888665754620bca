"""The EDI channel's command line and its task without a mailbox server (first tier):
`send --smtp` mails a sample through a real relay (aiosmtpd) and that very mail is answered by
the intake; the task logs a mailbox it cannot reach and goes on (issue 25)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.cli.root import app as cli
from app.dev.devpki import DevPki
from app.edi.handler import EdiIntake
from app.edi.runner import EdiRunner, start_edi
from app.platform.settings import Settings
from tests.integration.edi_servers import free_port, running_relay
from tests.integration.edi_support import (
    PILOT_BOX,
    edi_settings,
    edi_state,
    register_municipality,
)
from tests.integration.messages import msghead

Sessions = async_sessionmaker[AsyncSession]
runner = CliRunner()


async def test_send_smtp_mails_a_message_the_intake_answers(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    settings = edi_settings(settings_with_pki, tmp_path)
    await register_municipality(settings, sessions, "mailto:kommune@edi.test")
    sample = tmp_path / "m.xml"
    sample.write_bytes(msghead())
    with running_relay() as relay:
        args = ["send", str(sample), "--smtp", PILOT_BOX, "--url", f"smtp://127.0.0.1:{relay.port}"]
        result = await asyncio.to_thread(
            runner.invoke, cli, [*args, "--pki-dir", str(settings.pki_dir)]
        )
        assert result.exit_code == 0, result.output
        [(_, recipients, raw)] = relay.taken()
    assert recipients == [PILOT_BOX]
    box = next(b for b in settings.edi_mailboxes if b.address == PILOT_BOX)
    handled = await EdiIntake(edi_state(settings, sessions)).handle(raw, box)
    assert handled.reply == "queued"


@pytest.mark.databases("sqlite")
def test_send_smtp_needs_an_address_and_a_relay(
    settings_with_pki: Settings, tmp_path: Path
) -> None:
    sample = tmp_path / "m.xml"
    sample.write_bytes(msghead())
    pki = ["--pki-dir", str(settings_with_pki.pki_dir)]
    no_address = runner.invoke(
        cli, ["send", str(sample), "--smtp", "x", "--url", "smtp://127.0.0.1:1", *pki]
    )
    assert no_address.exit_code == 2
    assert "EDI address" in no_address.output
    away = f"smtp://127.0.0.1:{free_port()}"
    no_relay = runner.invoke(cli, ["send", str(sample), "--smtp", PILOT_BOX, "--url", away, *pki])
    assert no_relay.exit_code == 2
    assert "could not mail" in no_relay.output


@pytest.mark.databases("sqlite")
def test_edi_commands_without_mailboxes_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPR_ENV", "test")
    monkeypatch.setenv("KPR_EDI_MAILBOXES", "")
    monkeypatch.setenv("KPR_EDI_LISTEN", "")
    for command in ("poll", "listen"):
        result = runner.invoke(cli, ["edi", command])
        assert result.exit_code == 2
        assert "Neither KPR_EDI_MAILBOXES nor KPR_EDI_LISTEN is set" in result.output


async def test_a_mailbox_that_cannot_be_reached_holds_up_nothing(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path
) -> None:
    away = free_port()
    settings = edi_settings(settings_with_pki, tmp_path, away)
    state = edi_state(settings, sessions)
    edi = EdiRunner(state, interval=0.01)
    await edi.round()  # both mailboxes refused: logged, no exception
    stop = asyncio.Event()
    task = asyncio.create_task(edi.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    unknown = settings.model_copy(update={"edi_credentials_file": tmp_path / "none"})
    (tmp_path / "none").write_text("other@edi.test:x\n")
    report = await EdiRunner(edi_state(unknown, sessions)).poll(settings.edi_mailboxes[0])
    assert (report.read, report.kept) == (0, 0)


async def test_the_task_starts_only_when_configured(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path
) -> None:
    assert start_edi(edi_state(settings_with_pki, sessions)) is None
    task = start_edi(edi_state(edi_settings(settings_with_pki, tmp_path, free_port()), sessions))
    assert task is not None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_message_over_http_is_answered_by_mail_when_its_cpa_says_mailto(
    settings_with_pki: Settings, sessions: Sessions, tmp_path: Path, pki: DevPki
) -> None:
    """Issue 26's mailto: channel with syncReplyMode none: an empty 200 over HTTP, then the
    stored reply by mail through the EDI relay, from KPR's first EDI address."""
    from app.dev.client import read_reply
    from app.main import create_app
    from app.replies.sender import deliver_due
    from app.state import AppState as State
    from tests.integration.messages import epj_message, post

    with running_relay() as relay:
        settings = edi_settings(
            settings_with_pki,
            tmp_path,
            free_port(),
            edi_smtp_url=f"smtp://127.0.0.1:{relay.port}",
            edi_poll_seconds=3600.0,
        )
        await register_municipality(settings, sessions, "mailto:kommune@edi.test")
        application = create_app(settings)
        async with application.router.lifespan_context(application):
            state: State = application.state.kpr
            assert state.reply_mailer is not None
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://kpr.test") as c:
                answer = await post(c, epj_message(pki))
            assert (answer.status_code, answer.content) == (200, b"")
            for _ in range(200):  # the server's own reply loop may deliver it first
                await deliver_due(state)
                if relay.taken():
                    break
                await asyncio.sleep(0.1)
        [(sender, recipients, raw)] = relay.taken()
    assert (sender, recipients) == (PILOT_BOX, ["kommune@edi.test"])
    head, _, body = raw.partition(b"\r\n\r\n")
    content_type = next(
        line.split(b":", 1)[1].strip().decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-type:")
    )
    reply = read_reply(body, content_type)
    assert reply.signed
    assert not reply.signature_findings
    assert reply.header is not None
    assert reply.header.acknowledgment is not None
