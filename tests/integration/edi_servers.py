"""Real mail servers for the EDI tests (second tier, marker `mail`): Dovecot from Debian's
packages, serving IMAP and POP3 on loopback, with its own configuration, passwd-file accounts
and maildirs in a temporary directory, run as an unprivileged user; and an aiosmtpd relay that
keeps what it is given. No tests here."""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ACCOUNTS = {"kpr-pilot": "pilot-secret", "kpr-test": "test-secret"}
STARTUP_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def write_tls(directory: Path) -> Path:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it; returns the CA file."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("kpr test mail CA"))
        .issuer_name(_name("kpr test mail CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "ca.pem"


@dataclass
class Dovecot:
    port: int  # imap:// (plain, loopback)
    tls_port: int  # imaps://
    ca_file: Path
    directory: Path
    pop3_port: int  # pop3:// (plain, loopback)
    pop3_tls_port: int  # pop3s://

    def port_of(self, scheme: str) -> int:
        ports = {"imap": self.port, "imaps": self.tls_port, "pop3": self.pop3_port}
        return ports.get(scheme, self.pop3_tls_port)

    def session(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        imap.login(user, ACCOUNTS[user])
        imap.select("INBOX")
        return imap

    def deliver(self, user: str, raw: bytes) -> None:
        imap = self.session(user)
        try:
            status, _ = imap.append("INBOX", None, None, raw)
            assert status == "OK"
        finally:
            imap.logout()

    def count(self, user: str) -> int:
        imap = self.session(user)
        try:
            _, data = imap.uid("SEARCH", "UNDELETED")
            return len((data[0] or b"").split())
        finally:
            imap.logout()


def _run_as() -> tuple[str, str, int, int]:
    """Dovecot refuses to run its login processes as root: then it runs as `nobody`."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return entry.pw_name, str(os.getgid()), entry.pw_uid, os.getgid()
    nobody = pwd.getpwnam("nobody")
    return "nobody", str(nobody.pw_gid), nobody.pw_uid, nobody.pw_gid


def _config(d: Path, user: str, uid: int, gid: int, ports: tuple[int, int, int, int]) -> str:
    port, tls_port, pop3_port, pop3_tls_port = ports
    return f"""\
protocols = imap pop3
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{d}/server.pem
ssl_key = <{d}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = #{gid}
default_login_user = {user}
first_valid_uid = {min(uid, 500)}
first_valid_gid = {min(gid, 500)}
mail_location = maildir:{d}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3_tls_port}
  }}
}}
service anvil {{
  chroot =
}}
"""


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text() if log.exists() else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError("dovecot did not start listening")


@contextlib.contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        raise RuntimeError(
            "dovecot is not installed: apt-get install -y dovecot-imapd dovecot-pop3d"
        )
    user, _, uid, gid = _run_as()
    # not under pytest's tmp_path: its parents are closed to another user
    directory = Path(tempfile.mkdtemp(prefix="kpr-dovecot-"))
    ports = (free_port(), free_port(), free_port(), free_port())
    ca_file = write_tls(directory)
    (directory / "passwd").write_text(
        "".join(f"{name}:{{PLAIN}}{password}\n" for name, password in ACCOUNTS.items())
    )
    config = directory / "dovecot.conf"
    config.write_text(_config(directory, user, uid, gid, ports))
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, uid, gid)
    process = subprocess.Popen(
        [binary, "-F", "-c", str(config)],
        user=uid,
        group=gid,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for port in ports:
            _wait_listening(port, process, directory / "dovecot.log")
        yield Dovecot(ports[0], ports[1], ca_file, directory, ports[2], ports[3])
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Relay:
    """aiosmtpd: keeps every mail it is given (the EDI relay our replies leave by)."""

    port: int = 0
    mails: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        with self._lock:
            content = envelope.original_content or b""
            self.mails.append((str(envelope.mail_from), list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"

    def taken(self) -> list[tuple[str, list[str], bytes]]:
        with self._lock:
            return list(self.mails)


@contextlib.contextmanager
def running_relay() -> Iterator[Relay]:
    relay = Relay(port=free_port())
    controller = Controller(relay, hostname="127.0.0.1", port=relay.port, decode_data=False)
    controller.start()
    try:
        yield relay
    finally:
        controller.stop()
