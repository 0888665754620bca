"""`kpr-mottak send`: wraps a MsgHead as a municipality's EPJ would (sign, gzip, encrypt, ebXML),
posts it and summarises the reply. `send_message` and `summarize_reply` are plain functions so
tests can drive them without a terminal; the command only parses options, prints and chooses
the exit code: 0 OK, 1 OK with errors in parts, 2 rejected (or a MessageError, or bad input).
`--async-endpoint PORT` plays an MSH whose CPA asks for asynchronous replies (issue 26).
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import queue
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from cryptography import x509
from rich.markup import escape
from rich.table import Table

from app.apprec.model import AppRecStatus
from app.apprec.parse import AppRecInvalid, parse_apprec
from app.cli.tools import EXIT_CODES, KPR_HER, STATUS_STYLE, console, err
from app.core.xmlparse import XmlRejected
from app.platform.settings import DEV_PKI_DIR
from app.security.keys import KeyPair, load_certificate, load_key_pair

# --- send ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplySummary:
    http_status: int
    ack_ref: str | None  # Acknowledgment RefToMessageId
    ack_timestamp: datetime.datetime | None
    errors: tuple[tuple[str, str, str | None], ...]  # MessageError (errorCode, severity, desc)
    apprec_status: str | None
    apprec_errors: tuple[tuple[str, str | None], ...]  # (code, OT)
    problems: tuple[str, ...]  # the reply itself could not be read or verified
    exit_code: int


def summarize_reply(
    status_code: int, body: bytes, content_type: str, decryption: tuple[KeyPair, ...]
) -> ReplySummary:
    """Read a kpr-mottak reply: Acknowledgment, MessageError and the (decrypted) AppRec."""
    from app.dev.client import read_reply

    problems: list[str] = []
    if not content_type.startswith("multipart/"):
        text = body[:300].decode("utf-8", "replace")
        return ReplySummary(
            status_code, None, None, (), None, (), (f"HTTP {status_code}: {text}",), 2
        )
    reply = read_reply(body, content_type, decryption=decryption)
    problems.extend(f"{f.rule.id}: {f.detail}" for f in reply.findings)
    problems.extend(f"signature: {f.rule.id}: {f.detail}" for f in reply.signature_findings)
    header = reply.header
    ack = header.acknowledgment if header is not None else None
    errors = tuple(
        (e.error_code, e.severity, e.description) for e in (header.errors if header else ())
    )
    apprec_status: str | None = None
    apprec_errors: tuple[tuple[str, str | None], ...] = ()
    if reply.apprec is not None:
        try:
            parsed = parse_apprec(reply.apprec)
            apprec_status = parsed.status
            apprec_errors = tuple((e.code, e.ot) for e in parsed.errors)
        except AppRecInvalid as exc:
            problems.append(f"AppRec: {exc}")
    elif header is not None and not errors:
        problems.append("the reply carries no AppRec we could read (wrong decryption key?)")
    if errors and any(e[1] == "Error" for e in errors):
        code = 2
    elif apprec_status is not None:
        try:
            code = EXIT_CODES[AppRecStatus(apprec_status)]
        except ValueError:
            code = 2
    else:
        code = 2
    return ReplySummary(
        status_code,
        ack.ref_to_message_id if ack is not None else None,
        ack.timestamp if ack is not None else None,
        errors,
        apprec_status,
        apprec_errors,
        tuple(problems),
        code,
    )


_NO_REPLY = ReplySummary(200, None, None, (), None, (), (), 0)


def print_reply(summary: ReplySummary, message_id: str, *, received_at: str | None = None) -> None:
    if received_at is None:
        console.print(escape(f"sent MessageId {message_id}: HTTP {summary.http_status}"))
    else:  # the reply came as a message of its own (issue 26)
        console.print(escape(f"the reply to {message_id} arrived at {received_at}"))
    if summary.ack_ref is not None:
        when = summary.ack_timestamp.isoformat() if summary.ack_timestamp else "?"
        console.print(
            f"[green]Acknowledgment[/] RefToMessageId {escape(summary.ack_ref)} at {when}"
        )
    for code, severity, description in summary.errors:
        console.print(
            f"[red]MessageError[/] {escape(code)} ({escape(severity)}): {escape(description or '')}"
        )
    if summary.apprec_status is not None:
        try:
            status = AppRecStatus(summary.apprec_status)
            label = f"[{STATUS_STYLE[status]}]{status.value} {status.dn}[/]"
        except ValueError:
            label = escape(summary.apprec_status)
        console.print(f"AppRec status {label}")
        if summary.apprec_errors:
            table = Table("code", "OT")
            for code, ot in summary.apprec_errors:
                table.add_row(escape(code), escape(ot or ""))
            console.print(table)
    for problem in summary.problems:
        err.print(f"[yellow]{escape(problem)}[/]")


@dataclass(frozen=True, slots=True)
class SendKeys:
    signing: KeyPair | None  # the municipality's signing key (MsgHead and envelope)
    encrypt_to: x509.Certificate | None  # KPR's encryption certificate
    decryption: tuple[KeyPair, ...]  # the municipality's encryption key, to read the AppRec


def load_send_keys(pki_dir: Path, *, sign: bool, encrypt: bool) -> SendKeys:
    """The municipality's signing and decryption keys and KPR's encryption certificate from a
    dev PKI directory (files written by `kpr-mottak dev-pki`)."""

    def pair(name: str) -> KeyPair:
        return load_key_pair(
            (pki_dir / f"{name}.key").read_bytes(), (pki_dir / f"{name}.crt").read_bytes()
        )

    signing = pair("municipality-signing") if sign else None
    encrypt_to = (
        load_certificate((pki_dir / "kpr-encryption.crt").read_bytes()) if encrypt else None
    )
    decryption = (pair("municipality-encryption"),) if encrypt else ()
    return SendKeys(signing, encrypt_to, decryption)


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str
    summary: ReplySummary
    # an empty 200: the sender's CPA asks for the reply as a message of its own (issue 26)
    asynchronous: bool = False


async def send_message(
    client: httpx.AsyncClient,
    url: str,
    msghead: bytes,
    keys: SendKeys,
    *,
    from_her: str,
    to_her: str = KPR_HER,
    cpa_id: str = "kpr-pilot",
    gzip: bool = False,
) -> Sent:
    """Build the ebXML message as an EPJ would, post it and read the reply."""
    from app.dev.client import SendOptions, build_epj_message

    signing, encrypt_to = keys.signing, keys.encrypt_to
    options = SendOptions(
        from_her=from_her,
        to_her=to_her,
        cpa_id=cpa_id,
        sign_document=signing is not None,
        gzip=gzip,
    )
    built = build_epj_message(msghead, options, signing=signing, encrypt_to=encrypt_to)
    response = await client.post(url, content=built.body, headers=built.http_headers)
    if response.status_code == 200 and not response.content:
        return Sent(built.message_id, _NO_REPLY, asynchronous=True)
    summary = summarize_reply(
        response.status_code,
        response.content,
        response.headers.get("content-type", ""),
        keys.decryption,
    )
    return Sent(built.message_id, summary)


def send(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A MsgHead XML")
    ],
    url: Annotated[
        str, typer.Option("--url", help="The receiver, e.g. http://127.0.0.1:8080/ebms")
    ],
    from_her: Annotated[str, typer.Option("--from-her", help="Our (sender) HER-id")] = "8000001",
    to_her: Annotated[str, typer.Option("--to-her", help="KPR's HER-id")] = KPR_HER,
    cpa_id: Annotated[str, typer.Option("--cpa-id", help="CPA id")] = "kpr-pilot",
    pki_dir: Annotated[
        Path, typer.Option("--pki-dir", envvar="KPR_PKI_DIR", help="Dev PKI directory")
    ] = DEV_PKI_DIR,
    encrypt: Annotated[bool, typer.Option("--encrypt/--no-encrypt", help="CMS-encrypt")] = True,
    sign: Annotated[
        bool, typer.Option("--sign/--no-sign", help="Sign MsgHead and envelope")
    ] = True,
    gzip: Annotated[bool, typer.Option("--gzip", help="gzip before encrypting")] = False,
    timeout: Annotated[float, typer.Option(help="HTTP timeout in seconds")] = 120.0,
    amqp: Annotated[
        bool, typer.Option("--amqp", help="Over AMQP 1.0 the Helsenorge way; --url amqp://…")
    ] = False,
    async_endpoint: Annotated[
        int | None,
        typer.Option(
            "--async-endpoint",
            min=1,
            max=65535,
            help="Play an MSH whose CPA says syncReplyMode none: listen on this loopback port "
            "(the endpoint in the CPA KPR holds) and print the reply that is POSTed there",
        ),
    ] = None,
    smtp: Annotated[
        str | None, typer.Option("--smtp", help="EDI: mail to this address via --url smtp://…")
    ] = None,
) -> None:
    """Send a MsgHead as a municipality's EPJ would (signed, encrypted ebXML) and print the
    Acknowledgment and the AppRec (or the MessageError). Exit codes as `validate`."""
    if amqp:
        raise typer.Exit(send_amqp(file, url, from_her, to_her, pki_dir, timeout))
    keys = _keys_or_exit(pki_dir, sign=sign, encrypt=encrypt)
    if smtp is not None:
        edi = (from_her, to_her, cpa_id)
        raise typer.Exit(send_smtp(file, url, smtp, edi, keys.signing, keys.encrypt_to, timeout))
    run = functools.partial(
        _post_once, url, file.read_bytes(), keys, timeout, (from_her, to_her, cpa_id), gzip=gzip
    )
    if async_endpoint is not None:
        raise typer.Exit(_send_async(run, async_endpoint, url, keys, timeout))
    try:
        sent = asyncio.run(run())
    except httpx.HTTPError as exc:
        err.print(f"[red]could not post to {escape(url)}: {escape(str(exc))}[/]")
        raise typer.Exit(2) from None
    except XmlRejected as exc:  # nothing was sent: the MsgHead could not be read to sign it
        err.print(f"[red]{escape(str(file))} is not a readable MsgHead: {escape(str(exc))}[/]")
        err.print("check the file with `kpr-mottak validate`, or make one with `kpr-mottak sample`")
        raise typer.Exit(2) from None
    print_reply(sent.summary, sent.message_id)
    raise typer.Exit(sent.summary.exit_code)


def _keys_or_exit(pki_dir: Path, *, sign: bool, encrypt: bool) -> SendKeys:
    try:
        return load_send_keys(pki_dir, sign=sign, encrypt=encrypt)
    except (OSError, ValueError) as exc:
        err.print(f"[red]cannot load keys from {escape(str(pki_dir))}: {escape(str(exc))}[/]")
        err.print("create a development PKI with `kpr-mottak dev-pki`, or pass --pki-dir")
        raise typer.Exit(2) from None


async def _post_once(
    url: str,
    msghead: bytes,
    keys: SendKeys,
    http_timeout: float,
    parties: tuple[str, str, str],  # from HER-id, to HER-id, CPA id
    *,
    gzip: bool,
) -> Sent:
    from_her, to_her, cpa_id = parties
    async with httpx.AsyncClient(timeout=http_timeout) as client:
        return await send_message(
            client, url, msghead, keys, from_her=from_her, to_her=to_her, cpa_id=cpa_id, gzip=gzip
        )


def _send_async(
    run: Callable[[], Coroutine[Any, Any, Sent]],
    port: int,
    url: str,
    keys: SendKeys,
    timeout: float,
) -> int:
    """Post while listening on `port`; print the reply that arrives there, then return the
    signed Acknowledgment for it to KPR, as an MSH does. The exit code as `send`'s."""
    from app.dev.replyendpoint import reply_endpoint

    with reply_endpoint(port) as endpoint:
        try:
            sent = asyncio.run(run())
        except httpx.HTTPError as exc:
            err.print(f"[red]could not post to {escape(url)}: {escape(str(exc))}[/]")
            return 2
        if not sent.asynchronous:  # the CPA KPR holds says synchronous
            print_reply(sent.summary, sent.message_id)
            err.print("[yellow]the reply came in the HTTP exchange, not to the endpoint[/]")
            return sent.summary.exit_code
        console.print(f"sent MessageId {escape(sent.message_id)}: HTTP 200, empty")
        console.print(f"waiting for the reply at {escape(endpoint.url)} …")
        try:
            posted = endpoint.next(timeout)
        except queue.Empty:
            err.print(f"[red]no reply reached {escape(endpoint.url)} within {timeout:g} s[/]")
            return 2
    summary = summarize_reply(200, posted.body, posted.content_type, keys.decryption)
    print_reply(summary, sent.message_id, received_at=endpoint.url)
    console.print(escape(acknowledge(url, posted.body, posted.content_type, keys, timeout)))
    return summary.exit_code


def acknowledge(url: str, body: bytes, content_type: str, keys: SendKeys, timeout: float) -> str:
    """The signed Acknowledgment of a reply, posted to KPR (what the sender's MSH does)."""
    from app.dev.client import read_reply
    from app.ebxml.build import build_acknowledgment
    from app.security.xmldsig import envelope_signer

    header = read_reply(body, content_type).header
    if header is None:
        return "the reply could not be read: not acknowledged"
    ack = build_acknowledgment(
        header,
        message_id=f"{uuid.uuid4()}@epj.example",
        timestamp=datetime.datetime.now(datetime.UTC),
        sign=envelope_signer(keys.signing),
    )
    try:
        answer = httpx.post(url, content=ack.body, headers=ack.http_headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return f"the Acknowledgment could not be posted: {exc}"
    return (
        f"Acknowledgment {ack.message_id} for {header.message_id} sent: HTTP {answer.status_code}"
    )


from app.cli.amqp import send_amqp  # noqa: E402
from app.cli.edi import send_smtp  # noqa: E402


def register(app: typer.Typer) -> None:
    """Add `send` to the `kpr-mottak` app."""
    app.command("send")(send)
