"""`kpr-mottak send`: wraps a MsgHead as a municipality's EPJ would (sign, gzip, encrypt, ebXML),
posts it and summarises the reply. `send_message` and `summarize_reply` are plain functions so
tests can drive them without a terminal; the command only parses options, prints and chooses
the exit code: 0 OK, 1 OK with errors in parts, 2 rejected (or a MessageError, or bad input).
"""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

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


def print_reply(summary: ReplySummary, message_id: str) -> None:
    console.print(escape(f"sent MessageId {message_id}: HTTP {summary.http_status}"))
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
) -> None:
    """Send a MsgHead as a municipality's EPJ would (signed, encrypted ebXML) and print the
    Acknowledgment and the AppRec (or the MessageError). Exit codes as `validate`."""
    if amqp:
        raise typer.Exit(send_amqp(file, url, from_her, to_her, pki_dir, timeout))
    try:
        keys = load_send_keys(pki_dir, sign=sign, encrypt=encrypt)
    except (OSError, ValueError) as exc:
        err.print(f"[red]cannot load keys from {escape(str(pki_dir))}: {escape(str(exc))}[/]")
        err.print("create a development PKI with `kpr-mottak dev-pki`, or pass --pki-dir")
        raise typer.Exit(2) from None
    msghead = file.read_bytes()

    async def run() -> Sent:
        async with httpx.AsyncClient(timeout=timeout) as client:
            return await send_message(
                client,
                url,
                msghead,
                keys,
                from_her=from_her,
                to_her=to_her,
                cpa_id=cpa_id,
                gzip=gzip,
            )

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


from app.cli.amqp import send_amqp  # noqa: E402


def register(app: typer.Typer) -> None:
    """Add `send` to the `kpr-mottak` app."""
    app.command("send")(send)
