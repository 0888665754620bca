"""What an unauthenticated envelope can cost: the ebMS XPath worst case, next to a normal
message, in one run.

    python -m bench.envelope [--repeat 5] [--uncapped 2000]

Issue 9: libxmlsec evaluates the profile's XPath filter once per node of the envelope, so its
cost grows with the square of the element count; an 88 KB envelope with 20 000 empty elements
in its Body took 40 s of CPU before it was refused as an invalid signature. The intake now
checks the SOAP part's size, element count, depth and blocks before xmlsec sees it. Measured,
each the median of `--repeat` runs of what the intake does before it knows the sender
(`read_transport`: MIME, the shape check, parse, schema; then `verify_envelope` when the
envelope got that far):

- `reference`: a normal signed and encrypted message (3 notifications);
- `bait 20000`: the issue's envelope, 20 000 empty elements in the Body (refused by size);
- `bait under byte cap`: as many empty elements as fit under the byte cap (refused by count);
- `worst accepted shape`: the most elements the shape check lets through (eb:Description
  elements in the MessageHeader up to the element cap), validly signed, so xmlsec runs the
  XPath over all of them: the most an outsider can make the signature check cost;
- `uncapped N` (for scale, not reachable through the intake): `verify_envelope` directly on an
  envelope with N empty Body elements, what the caps save.

Each is printed with its ratio to the reference.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from lxml import etree

from app.dev.client import SendOptions, build_ebxml, prepare_payload
from app.dev.devpki import DevPki, dev_pki
from app.dev.sample import build_sample, wrap_in_msghead
from app.ebxml.build import BuiltMessage
from app.ebxml.envelope import EB_NS, MAX_SOAP_BYTES, MAX_SOAP_ELEMENTS
from app.ebxml.mime import parse_body
from app.intake import stages
from app.security import xmldsig
from bench import ratio

PILOT = {"131725": "pilot"}


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    built: BuiltMessage
    refused: bool  # expected: refused by the shape check before xmlsec


def _message(pki: DevPki, edit: Callable[[etree._Element], None] | None = None) -> BuiltMessage:
    head = wrap_in_msghead(
        build_sample(3, "0301"), 8000001, 131725, str(uuid.uuid4()), datetime.now(UTC)
    )
    payload = prepare_payload(
        head, signing=pki.municipality.signing, encrypt_to=pki.kpr.encryption.certificate
    )

    def sign(root: etree._Element, parts: Mapping[str, bytes]) -> etree._Element:
        if edit is not None:
            edit(root)
        return xmldsig.sign_envelope(root, parts, pki.municipality.signing)

    return build_ebxml(payload, SendOptions(from_her="8000001"), None, sign=sign)


def with_body_elements(built: BuiltMessage, count: int) -> BuiltMessage:
    """The message with `count` empty elements appended to SOAP:Body after signing."""
    soap = built.soap.replace(b"</SOAP:Body>", b"<e/>" * count + b"</SOAP:Body>")
    body = built.body.replace(built.soap, soap)
    return BuiltMessage(body, built.content_type, soap, built.message_id, built.soap_content_id)


def element_count(soap: bytes) -> int:
    return sum(1 for _ in etree.fromstring(soap).iter(etree.Element))


def descriptions_filling_the_cap(pki: DevPki) -> BuiltMessage:
    """A validly signed envelope with as many elements as the shape check accepts."""
    base = element_count(_message(pki).soap)
    # Each signature adds the same elements whatever the header holds; the pre-parse count
    # is an upper bound that also counts the XML declaration.
    room = MAX_SOAP_ELEMENTS - base - 1

    def fill(root: etree._Element) -> None:
        mh = root.find(f".//{{{EB_NS}}}MessageHeader")
        assert mh is not None
        for i in range(room):  # after DuplicateElimination, where the schema has them
            d = etree.SubElement(mh, f"{{{EB_NS}}}Description")
            d.set("{http://www.w3.org/XML/1998/namespace}lang", "no")
            d.text = str(i)

    return _message(pki, fill)


def cases(pki: DevPki) -> list[Case]:
    normal = _message(pki)
    under_cap = (MAX_SOAP_BYTES - len(normal.soap)) // len(b"<e/>") - 1
    return [
        Case("reference (normal message)", normal, refused=False),
        Case("bait 20000 (issue 9)", with_body_elements(normal, 20_000), refused=True),
        Case(f"bait {under_cap} (under byte cap)", with_body_elements(normal, under_cap), True),
        Case("worst accepted shape", descriptions_filling_the_cap(pki), refused=False),
    ]


def before_authentication(built: BuiltMessage) -> bool:
    """What the intake does for anyone: read the transport, then verify the envelope
    signature if the shape check let it through. True when refused before xmlsec."""
    transport = stages.read_transport(
        built.body,
        built.content_type,
        receivers=PILOT,
        now=datetime.now(UTC),
        max_parts=16,
        max_header_bytes=16 * 1024,
    )
    if transport.header is None or transport.findings:
        return True
    assert transport.mime is not None
    xmldsig.verify_envelope(transport.mime.soap, transport.mime.attachment_map)
    return False


def uncapped_verify(built: BuiltMessage) -> None:
    mime = parse_body(built.body, built.content_type).message
    assert mime is not None
    xmldsig.verify_envelope(mime.soap, mime.attachment_map)


def median_seconds(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--uncapped", type=int, default=2000)
    args = parser.parse_args(argv)
    pki = dev_pki(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    rows: list[tuple[str, int, int, str, float]] = []
    reference: float | None = None
    for case in cases(pki):
        refused = before_authentication(case.built)
        if refused is not case.refused:
            raise SystemExit(f"{case.name}: refused={refused}, expected {case.refused}")
        seconds = median_seconds(partial(before_authentication, case.built), args.repeat)
        reference = seconds if reference is None else reference
        outcome = "refused before xmlsec" if refused else "xmlsec verified"
        rows.append(
            (case.name, len(case.built.soap), element_count(case.built.soap), outcome, seconds)
        )
    if args.uncapped:
        bait = with_body_elements(_message(pki), args.uncapped)
        seconds = median_seconds(lambda: uncapped_verify(bait), max(1, min(args.repeat, 3)))
        rows.append(
            (
                f"uncapped {args.uncapped} (xmlsec directly)",
                len(bait.soap),
                element_count(bait.soap),
                "not reachable",
                seconds,
            )
        )
    assert reference is not None
    print(f"{'case':40} {'SOAP bytes':>10} {'elements':>9} {'ms':>9} {'x ref':>7}  outcome")
    for name, size, elements, outcome, seconds in rows:
        print(
            f"{name:40} {size:>10} {elements:>9} {seconds * 1000:>9.2f} "
            f"{ratio(seconds, reference):>7.2f}  {outcome}"
        )


if __name__ == "__main__":
    main()
