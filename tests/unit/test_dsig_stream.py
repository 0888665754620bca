"""The business document's enveloped ds:Signature verified as a stream gives exactly the
verdict of xmlsec on the tree (`verify_document(parse_xml_file(...))`), or None where the
stream path steps aside."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import io
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
import xmlsec
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from app.core.xmlparse import XmlRejected, parse_xml, parse_xml_file
from app.dev.devpki import DevPki, dev_pki
from app.dev.sample import build_sample, wrap_in_msghead
from app.intake import rules as intake_rules
from app.intake import stages
from app.security import dsig_stream, rules, xmldsig
from app.security.dsig_stream import CHUNK_BYTES, verify_document_stream
from app.security.keys import KeyPair
from app.security.xmldsig import DS_NS, DocumentSignature, sign_document
from tests.budgets import examples

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
DS = f"{{{DS_NS}}}"
T = xmlsec.constants
# Small chunks put chunk boundaries inside tags, texts and the signature.
CHUNKS = (CHUNK_BYTES, 1, 61, 512)

RICH = """<m:Doc xmlns:m="urn:example:m" xmlns="urn:example:d" xmlns:unused="urn:example:u"
 xmlns:a="urn:example:a" a:id="r1" plain="v&#9;w&#10;x&#13;y &amp; &lt; &gt; &quot; '">
  <Head lang="no">Blåbær &amp; &lt;tekst&gt; med "anførsel" og 'apostrof'&#13;</Head>
  <m:Body xmlns:a="urn:example:a" xmlns:b="urn:example:b">
    <Item b:kind="x" a:kind="y" kind="z">én</Item>
    <Inner xmlns=""><Leaf xmlns:m="urn:example:m2" m:x="1">tab&#9;nl&#10;cr&#13;</Leaf>
      <Deep xmlns="urn:example:d"><Deeper>data</Deeper></Deep></Inner>
    <b:Item xmlns:unused="urn:example:u">tail test</b:Item>tail &amp; &lt; text
    <Text>a&lt;&amp;&gt;b</Text>
  </m:Body>
</m:Doc>"""


@pytest.fixture(scope="session")
def pki() -> DevPki:
    return dev_pki(NOW)


def tree_verdict(data: bytes) -> DocumentSignature:
    return xmldsig.verify_document(parse_xml_file(io.BytesIO(data), huge=True))


def stream_verdict(data: bytes, chunk: int = CHUNK_BYTES) -> DocumentSignature | None:
    return verify_document_stream(io.BytesIO(data), chunk_bytes=chunk)


def same_verdict(data: bytes, chunks: tuple[int, ...] = CHUNKS) -> DocumentSignature:
    """The tree's verdict, after checking that the stream gives it at every chunk size."""
    expected = tree_verdict(data)
    for chunk in chunks:
        assert stream_verdict(data, chunk) == expected, f"chunk {chunk}"
    return expected


def rule_ids(verdict: DocumentSignature) -> list[str]:
    return [f.rule.id for f in verdict.findings]


def sign(
    root: etree._Element,
    key_pair: KeyPair,
    *,
    signed_info: Any = T.TransformInclC14N,  # xmlsec's transform type has no public name
    reference: tuple[Any, ...] = (T.TransformEnveloped, T.TransformInclC14N),
    digest: Any = T.TransformSha256,
    template: Callable[[bytes], bytes] | None = None,
) -> bytes:
    """`root` with an enveloped signature as its last child, by an xmlsec template
    (serialised, edited by `template` and parsed again before signing, when given)."""
    root = copy.deepcopy(root)
    sig = xmlsec.template.create(root, signed_info, T.TransformRsaSha256, ns="ds")
    ref = xmlsec.template.add_reference(sig, digest, uri="")
    for transform in reference:
        xmlsec.template.add_transform(ref, transform)
    key_info = xmlsec.template.ensure_key_info(sig)
    xmlsec.template.x509_data_add_certificate(xmlsec.template.add_x509_data(key_info))
    root.append(sig)
    if template is not None:
        root = parse_xml(template(etree.tostring(root)))
        sig = root[-1]
    ctx = xmlsec.SignatureContext()
    ctx.key = xmldsig._signing_key(key_pair)
    ctx.sign(sig)
    return etree.tostring(root)


def signed_rich(pki: DevPki) -> bytes:
    return etree.tostring(sign_document(parse_xml(RICH.encode()), pki.municipality.signing))


# --- valid documents --------------------------------------------------------------------------


def test_a_document_signed_by_sign_document_verifies(pki: DevPki) -> None:
    verdict = same_verdict(signed_rich(pki))
    assert verdict.valid
    assert verdict.signer == pki.municipality.signing.certificate


@pytest.mark.parametrize(
    ("signed_info", "reference"),
    [
        (T.TransformExclC14N, (T.TransformEnveloped, T.TransformInclC14N)),
        (T.TransformInclC14N, (T.TransformEnveloped, T.TransformExclC14N)),
        (T.TransformExclC14N, (T.TransformEnveloped, T.TransformExclC14N)),
        (T.TransformInclC14N, (T.TransformEnveloped,)),
    ],
    ids=["exc-signedinfo", "exc-reference", "exc-both", "default-c14n"],
)
def test_each_canonicalisation_verifies(
    pki: DevPki, signed_info: object, reference: tuple[object, ...]
) -> None:
    data = sign(
        parse_xml(RICH.encode()),
        pki.municipality.signing,
        signed_info=signed_info,
        reference=reference,
    )
    assert same_verdict(data).valid


@pytest.mark.parametrize(
    "digest", [T.TransformSha1, T.TransformSha384, T.TransformSha512], ids=["1", "384", "512"]
)
def test_each_digest_method_verifies(pki: DevPki, digest: object) -> None:
    data = sign(parse_xml(RICH.encode()), pki.municipality.signing, digest=digest)
    assert same_verdict(data).valid


def test_comments_pis_and_cdata_around_and_inside_the_root_are_not_signed(pki: DevPki) -> None:
    data = signed_rich(pki)
    data = b'<?xml version="1.0" encoding="UTF-8"?>\n<!--before--><?pi before?>\n' + data
    data = data.replace(b"<Inner", b"<!-- inside --><?pi inside?><Inner", 1)
    data = data.replace(b"a&lt;&amp;&gt;b", b"<![CDATA[a<&>b]]>", 1)
    data += b"\n<!--after-->\n<?pi after?>\n"
    assert b"CDATA" in data
    assert same_verdict(data).valid


def test_a_signed_processing_instruction_does_not_verify_either_way(pki: DevPki) -> None:
    # Signed with the PI in the tree; the hardened parser drops it before verifying.
    root = etree.fromstring(RICH.replace("<Head", "<?keep me?><Head").encode())
    data = etree.tostring(sign_document(root, pki.municipality.signing))
    assert rule_ids(same_verdict(data)) == [rules.MSG_SIG_INVALID.id]


def test_an_iso_8859_1_document_verifies(pki: DevPki) -> None:
    root = parse_xml(RICH.encode())
    signed = sign_document(root, pki.municipality.signing)
    data = etree.tostring(signed, encoding="ISO-8859-1", xml_declaration=True)
    assert isinstance(data, bytes)
    assert same_verdict(data).valid


def test_the_signature_first_in_the_root_verifies_with_either_canonicalisation(
    pki: DevPki,
) -> None:
    for reference in (T.TransformInclC14N, T.TransformExclC14N):
        data = sign(
            parse_xml(RICH.encode()),
            pki.municipality.signing,
            reference=(T.TransformEnveloped, reference),
        )
        root = parse_xml(data)
        root.insert(0, root[-1])  # enveloped: where it stands is not signed
        assert same_verdict(etree.tostring(root)).valid


# --- tampered documents -----------------------------------------------------------------------

TAMPERINGS: dict[str, Callable[[bytes], bytes]] = {
    "text": lambda d: d.replace(b">data<", b">date<"),
    "attribute changed": lambda d: d.replace(b'kind="z"', b'kind="q"'),
    "attribute added": lambda d: d.replace(b'<Head lang="no"', b'<Head lang="no" x="1"'),
    "attribute removed": lambda d: d.replace(b' lang="no"', b""),
    "element added": lambda d: d.replace(b"<Deeper>", b"<Deeper><New/>"),
    "element removed": lambda d: d.replace(b"<Deeper>data</Deeper>", b""),
    "whitespace": lambda d: d.replace(b"\n    <Text>", b"\n     <Text>"),
    "carriage return": lambda d: d.replace(b"cr&#13;", b"cr&#10;"),
    "namespace prefix": lambda d: d.replace(b"<b:Item", b"<c:Item xmlns:c='urn:example:b'").replace(
        b"</b:Item>", b"</c:Item>"
    ),
    "namespace URI": lambda d: d.replace(b'xmlns:b="urn:example:b"', b'xmlns:b="urn:example:c"'),
    "undeclaration": lambda d: d.replace(b'<Inner xmlns="">', b"<Inner>"),
    "unused declaration": lambda d: d.replace(b"<Text>", b'<Text xmlns:z="urn:z">'),
    "signature value": lambda d: _flip_base64(d, b"SignatureValue"),
    "digest value": lambda d: _flip_base64(d, b"DigestValue"),
}


def _flip_base64(data: bytes, element: bytes) -> bytes:
    start = data.index(b"<ds:" + element + b">") + len(element) + 5
    end = data.index(b"</ds:" + element, start)
    raw = bytearray(base64.b64decode(data[start:end]))
    raw[len(raw) // 2] ^= 1
    return data[:start] + base64.b64encode(bytes(raw)) + data[end:]


@pytest.mark.parametrize("tamper", list(TAMPERINGS), ids=list(TAMPERINGS))
def test_a_tampered_document_fails_either_way(pki: DevPki, tamper: str) -> None:
    data = signed_rich(pki)
    changed = TAMPERINGS[tamper](data)
    assert changed != data
    assert rule_ids(same_verdict(changed)) == [rules.MSG_SIG_INVALID.id]


def test_another_certificate_in_keyinfo_fails_either_way(pki: DevPki) -> None:
    data = signed_rich(pki)
    ours = base64.b64encode(pki.municipality.signing.certificate.public_bytes(_DER))
    other = base64.b64encode(pki.kpr.signing.certificate.public_bytes(_DER))
    root = parse_xml(data)
    cert = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    assert cert is not None
    assert "".join((cert.text or "").split()) == ours.decode()
    cert.text = other.decode()
    verdict = same_verdict(etree.tostring(root))
    assert rule_ids(verdict) == [rules.MSG_SIG_INVALID.id]
    assert verdict.signer == pki.kpr.signing.certificate


# --- shapes: findings without cryptography, and what is left to the tree ------------------------


def test_an_unsigned_document_is_not_present() -> None:
    assert same_verdict(RICH.encode()) == DocumentSignature(False, (), None)


def test_two_signatures_are_one_too_many(pki: DevPki) -> None:
    root = parse_xml(signed_rich(pki))
    root.append(copy.deepcopy(root[-1]))
    assert rule_ids(same_verdict(etree.tostring(root))) == [rules.MSG_SIG_MALFORMED.id]


def test_a_signature_below_the_root_is_not_present(pki: DevPki) -> None:
    root = parse_xml(signed_rich(pki))
    root[0].append(root[-1])
    assert not same_verdict(etree.tostring(root)).present


def test_a_weak_digest_is_a_finding_either_way(pki: DevPki) -> None:
    data = signed_rich(pki).replace(
        b"http://www.w3.org/2001/04/xmlenc#sha256", b"http://www.w3.org/2001/04/xmldsig-more#md5"
    )
    assert rule_ids(same_verdict(data)) == [rules.MSG_SIG_ALGORITHM.id]


def test_the_transforms_in_another_order_are_left_to_the_tree(pki: DevPki) -> None:
    enveloped = b'<ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>'
    c14n = b'<ds:Transform Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
    data = signed_rich(pki)
    assert enveloped + b"\n" + c14n in data
    data = data.replace(enveloped + b"\n" + c14n, c14n + b"\n" + enveloped)
    assert tree_verdict(data).present
    assert stream_verdict(data) is None


def test_a_doctype_is_left_to_the_tree() -> None:
    data = b'<!DOCTYPE Doc [<!ENTITY e "x">]>' + RICH.encode()
    assert stream_verdict(data) is None
    with pytest.raises(XmlRejected):
        tree_verdict(data)


@pytest.mark.parametrize("data", [b"", b"not xml", b"<a><b></a>", b"<a/><b/>"])
def test_what_does_not_parse_is_left_to_the_tree(data: bytes) -> None:
    assert stream_verdict(data) is None


def test_an_xml_attribute_the_signed_info_would_inherit_is_left_to_the_tree(
    pki: DevPki,
) -> None:
    root = parse_xml(RICH.encode())
    root.set("{http://www.w3.org/XML/1998/namespace}lang", "no")
    data = etree.tostring(sign_document(root, pki.municipality.signing))
    assert stream_verdict(data) is None
    assert tree_verdict(data).valid


def test_a_restart_needs_a_seekable_source(pki: DevPki) -> None:
    data = sign(
        parse_xml(RICH.encode()),
        pki.municipality.signing,
        reference=(T.TransformEnveloped, T.TransformExclC14N),
    )

    class OneWay(io.RawIOBase):
        def __init__(self) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            return self._data.readinto(buffer)

    assert verify_document_stream(io.BufferedReader(OneWay())) is None
    assert stream_verdict(data) == tree_verdict(data)


def test_one_uri_under_two_prefixes_still_verifies(pki: DevPki) -> None:
    # lxml rebinds moved nodes by URI: the stream path then writes each element itself.
    doc = RICH.replace('<Head lang="no">', '<Head xmlns:alias="urn:example:a" alias:x="1">')
    assert same_verdict(signed_rich_of(doc, pki)).valid
    doc = RICH.replace('xmlns:unused="urn:example:u"', 'xmlns:unused="urn:example:m"', 1)
    assert same_verdict(signed_rich_of(doc, pki)).valid


def signed_rich_of(doc: str, pki: DevPki) -> bytes:
    return etree.tostring(sign_document(parse_xml(doc.encode()), pki.municipality.signing))


# --- random trees -------------------------------------------------------------------------------

_URIS = ("urn:t:a", "urn:t:b", "urn:t:c")
_PREFIXES = ("p", "q", None)
_TEXTS = st.text(alphabet="ab \t\n\r&<>\"'æ€", max_size=5)


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> etree._Element:
    uri = draw(st.sampled_from((*_URIS, "")))
    prefix = draw(st.sampled_from(_PREFIXES)) if uri else None
    nsmap: dict[str | None, str] = {prefix: uri} if uri else {}
    if draw(st.booleans()):
        extra = draw(st.sampled_from(("p", "q", "u")))
        nsmap.setdefault(extra, draw(st.sampled_from(_URIS)))
    tag = f"{{{uri}}}{draw(st.sampled_from('xyz'))}" if uri else draw(st.sampled_from("xyz"))
    el = etree.Element(tag, nsmap=nsmap)  # type: ignore[arg-type]
    for name in draw(st.lists(st.sampled_from("abc"), unique=True, max_size=3)):
        space = draw(st.sampled_from(("", *_URIS)))
        el.set(f"{{{space}}}{name}" if space else name, draw(_TEXTS))
    el.text = draw(_TEXTS) or None
    if depth < 3:
        for child in draw(st.lists(trees(depth + 1), max_size=3)):
            child.tail = draw(_TEXTS) or None
            el.append(child)
    return el


@settings(max_examples=examples(40))
@given(
    tree=trees(),
    exclusive=st.booleans(),
    mutate=st.sampled_from(("none", "text", "attribute", "tail")),
    chunk=st.sampled_from((1, 7, 64, CHUNK_BYTES)),
)
def test_random_trees_get_the_tree_verdict(
    pki: DevPki, tree: etree._Element, exclusive: bool, mutate: str, chunk: int
) -> None:
    c14n = T.TransformExclC14N if exclusive else T.TransformInclC14N
    data = sign(
        parse_xml(etree.tostring(tree)),
        pki.municipality.signing,
        signed_info=c14n,
        reference=(T.TransformEnveloped, c14n),
    )
    root = parse_xml(data)
    target = root[0] if len(root) > 1 else root  # root[-1] is the signature
    if mutate == "tail" and target is root:
        mutate = "text"
    if mutate == "text":
        target.text = (target.text or "") + "!"
    elif mutate == "attribute":
        target.set("zz", "1")
    elif mutate == "tail":
        target.tail = (target.tail or "") + " "
    data = etree.tostring(root)
    expected = tree_verdict(data)
    assert expected.valid == (mutate == "none")
    assert stream_verdict(data, chunk) == expected


# --- at scale, and real messages ----------------------------------------------------------------


def _msghead(notifications: int) -> bytes:
    melding = build_sample(notifications, "0301", seed=3)
    return wrap_in_msghead(melding, 8000001, 131725, str(uuid.uuid4()), NOW.replace(tzinfo=None))


@pytest.fixture(scope="module")
def large_msghead(pki: DevPki) -> bytes:
    head = _msghead(2_000)
    return etree.tostring(sign_document(parse_xml(head, huge=True), pki.municipality.signing))


def test_a_large_msghead_verifies(large_msghead: bytes, pki: DevPki) -> None:
    assert len(large_msghead) > 1_000_000
    verdict = same_verdict(large_msghead, chunks=(CHUNK_BYTES, 4096))
    assert verdict.valid
    assert verdict.signer == pki.municipality.signing.certificate


def test_a_large_msghead_tampered_at_its_end_fails(large_msghead: bytes) -> None:
    at = large_msghead.rindex(b"notifikasjonLopeNr=")
    changed = large_msghead[:at] + large_msghead[at:].replace(b'LopeNr="', b'LopeNr="9', 1)
    assert rule_ids(same_verdict(changed, chunks=(CHUNK_BYTES,))) == [rules.MSG_SIG_INVALID.id]


def _reference_msgheads(reference_dir: Path) -> list[Path]:
    found = []
    for path in sorted(reference_dir.rglob("*.xml")):
        try:
            root = parse_xml(path.read_bytes(), huge=True)
        except XmlRejected:
            continue
        if etree.QName(root).localname == "MsgHead" and root.find(f"{DS}Signature") is not None:
            found.append(path)
    return found


def test_every_signed_reference_msghead_gets_the_tree_verdict(reference_dir: Path) -> None:
    paths = _reference_msgheads(reference_dir)
    assert paths, "no signed MsgHead under the reference folder"
    for path in paths:
        data = path.read_bytes()
        verdict = same_verdict(data)
        assert verdict.present, path


# --- the intake ---------------------------------------------------------------------------------


def _intake_signature(data: bytes) -> object:
    with tempfile.TemporaryFile() as spool:
        spool.write(data)
        return stages._document_signature(
            spool, size=len(data), cms_signer=None, encrypted=True, requires_signing=True
        )


def _no_tree(document: object) -> DocumentSignature:
    raise AssertionError("the tree path ran")


def test_the_intake_verifies_a_large_payload_as_a_stream(
    large_msghead: bytes, pki: DevPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(large_msghead) >= stages.DSIG_STREAM_MIN_BYTES
    monkeypatch.setattr(xmldsig, "verify_document", _no_tree)
    result = _intake_signature(large_msghead)
    assert result == stages._DocumentSignature(signer=pki.municipality.signing.certificate)


def test_the_intake_rejects_a_tampered_large_payload_from_the_stream(
    large_msghead: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(xmldsig, "verify_document", _no_tree)
    at = large_msghead.index(b"notifikasjonLopeNr=")
    changed = large_msghead[:at] + large_msghead[at:].replace(b'LopeNr="', b'LopeNr="9', 1)
    result = _intake_signature(changed)
    assert isinstance(result, stages._DocumentSignature)
    assert [f.rule.id for f in result.findings] == [rules.MSG_SIG_INVALID.id]


def test_the_intake_keeps_small_payloads_on_the_tree(
    pki: DevPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_stream(source: IO[bytes], **kwargs: object) -> None:
        raise AssertionError("the stream path ran")

    monkeypatch.setattr(stages, "verify_document_stream", no_stream)
    result = _intake_signature(signed_rich(pki))
    assert result == stages._DocumentSignature(signer=pki.municipality.signing.certificate)


def test_the_intake_falls_back_to_the_tree_and_keeps_its_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stages, "DSIG_STREAM_MIN_BYTES", 0)
    calls: list[object] = []
    real = dsig_stream.verify_document_stream

    def spy(source: IO[bytes], **kwargs: int) -> DocumentSignature | None:
        calls.append(source)
        return real(source, **kwargs)

    monkeypatch.setattr(stages, "verify_document_stream", spy)
    undecryptable = _intake_signature(b"\x00 not xml")
    assert undecryptable == stages._DocumentSignature(undecryptable=True)
    unsigned = _intake_signature(RICH.encode())
    assert isinstance(unsigned, stages._DocumentSignature)
    assert [f.rule.id for f in unsigned.findings] == [intake_rules.DOCUMENT_UNSIGNED.id]
    assert len(calls) == 2


_DER = serialization.Encoding.DER


def test_a_wrong_guess_from_the_last_bytes_costs_a_pass_not_the_verdict(pki: DevPki) -> None:
    decoy = f"<Note>Transforms {xmldsig.EXC_C14N} Transforms</Note>"
    doc = RICH.replace("</m:Doc>", decoy + "</m:Doc>")
    root = parse_xml(signed_rich_of(doc, pki))
    root.insert(0, root[-1])  # the signature first, the decoy last
    assert same_verdict(etree.tostring(root)).valid


# --- review findings ----------------------------------------------------------------------------

_RSA_OID = bytes.fromhex("06092a864886f70d0101010500")  # rsaEncryption, NULL parameters


def _unknown_key_oid(data: bytes) -> bytes:
    """`data` with its KeyInfo certificate's public key algorithm an OID cryptography lacks."""
    root = parse_xml(data, huge=True)
    cert = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    assert cert is not None
    der = base64.b64decode("".join((cert.text or "").split()))
    assert der.count(_RSA_OID) == 1
    cert.text = base64.b64encode(der.replace(_RSA_OID, _RSA_OID[:-3] + b"\x63\x05\x00")).decode()
    return etree.tostring(root)


def test_an_unknown_public_key_algorithm_is_a_verdict_not_an_exception(pki: DevPki) -> None:
    data = _unknown_key_oid(signed_rich(pki))
    expected = tree_verdict(data)
    assert rule_ids(expected) == [rules.MSG_SIG_INVALID.id]
    for chunk in CHUNKS:
        assert stream_verdict(data, chunk) in (expected, None)


def test_the_intake_answers_a_large_payload_with_an_unknown_key_algorithm(
    large_msghead: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _unknown_key_oid(large_msghead)
    assert len(data) >= stages.DSIG_STREAM_MIN_BYTES
    expected = tree_verdict(data)
    result = _intake_signature(data)
    assert result == stages._DocumentSignature(signer=expected.signer, findings=expected.findings)

    def broken(source: IO[bytes], **kwargs: object) -> None:
        raise RuntimeError("a stream path bug")

    monkeypatch.setattr(stages, "verify_document_stream", broken)
    assert _intake_signature(data) == result


either_c14n = pytest.mark.parametrize("exclusive", [False, True], ids=["inclusive", "exclusive"])
_DS_URI = DS_NS.encode()
# Declarations below SignedInfo of a URI already in scope under another prefix (or none):
# lxml drops them from a copy moved under a wrapper; xmlsec's C14N in the document renders them.
SIGNED_INFO_DECLARATIONS: dict[str, tuple[bytes, bytes]] = {
    "ds2 on Reference": (b"<ds:Reference ", b"<ds:Reference xmlns:ds2='" + _DS_URI + b"' "),
    "ds2 on DigestValue": (b"<ds:DigestValue>", b"<ds:DigestValue xmlns:ds2='" + _DS_URI + b"'>"),
    "default ds on DigestValue": (
        b"<ds:DigestValue>",
        b"<ds:DigestValue xmlns='" + _DS_URI + b"'>",
    ),
    "m2 on DigestValue": (b"<ds:DigestValue>", b"<ds:DigestValue xmlns:m2='urn:example:m'>"),
    "a2 on Transforms": (b"<ds:Transforms>", b"<ds:Transforms xmlns:a2='urn:example:a'>"),
    "ds2:DigestValue": (b"<ds:DigestValue>", b"<ds2:DigestValue xmlns:ds2='" + _DS_URI + b"'>"),
}


@either_c14n
@pytest.mark.parametrize("case", list(SIGNED_INFO_DECLARATIONS), ids=list(SIGNED_INFO_DECLARATIONS))
def test_declarations_below_signed_info_get_the_tree_verdict_or_none(
    pki: DevPki, case: str, exclusive: bool
) -> None:
    old, new = SIGNED_INFO_DECLARATIONS[case]

    def declare(data: bytes) -> bytes:
        data = _open_digest_value(data)
        assert old in data
        data = data.replace(old, new, 1)
        if new.startswith(b"<ds2:DigestValue"):
            data = data.replace(b"</ds:DigestValue>", b"</ds2:DigestValue>", 1)
        return data

    signed, resigned = _declared_after_and_before_signing(pki, exclusive, declare)
    assert tree_verdict(resigned).valid
    for data in (signed, resigned):
        if exclusive:  # a copy of SignedInfo keeps them: the stream renders it
            same_verdict(data, chunks=(CHUNK_BYTES, 1, 61))
        else:  # a copy moved under a wrapper loses them: the stream steps aside
            assert all(stream_verdict(data, chunk) is None for chunk in (CHUNK_BYTES, 1, 61))


@either_c14n
def test_a_redundant_declaration_below_signed_info_still_verifies(
    pki: DevPki, exclusive: bool
) -> None:
    # RICH's default namespace, declared again: C14N renders it nowhere
    def declare(data: bytes) -> bytes:
        return _open_digest_value(data).replace(
            b"<ds:DigestValue>", b"<ds:DigestValue xmlns='urn:example:d'>", 1
        )

    signed, resigned = _declared_after_and_before_signing(pki, exclusive, declare)
    assert same_verdict(signed).valid
    assert same_verdict(resigned).valid


def _declared_after_and_before_signing(
    pki: DevPki, exclusive: bool, declare: Callable[[bytes], bytes]
) -> tuple[bytes, bytes]:
    """RICH signed with SignedInfo in that C14N, `declare` applied to the signed document
    (the signature no longer matches) and to the template (it does)."""
    c14n = T.TransformExclC14N if exclusive else T.TransformInclC14N
    signed = sign(parse_xml(RICH.encode()), pki.municipality.signing, signed_info=c14n)
    resigned = sign(
        parse_xml(RICH.encode()), pki.municipality.signing, signed_info=c14n, template=declare
    )
    return declare(signed), resigned


def _open_digest_value(data: bytes) -> bytes:
    # an xmlsec template's DigestValue is empty
    return data.replace(b"<ds:DigestValue/>", b"<ds:DigestValue></ds:DigestValue>", 1)


RELATIVE_NAMESPACES: dict[str, tuple[bytes, bytes]] = {
    "on Signature": (b"<ds:Signature ", b"<ds:Signature xmlns:q='rel' "),
    "on SignedInfo": (b"<ds:SignedInfo>", b"<ds:SignedInfo xmlns:q='rel'>"),
    "on Reference": (b"<ds:Reference ", b"<ds:Reference xmlns:q='rel' "),
    "on SignatureValue": (b"<ds:SignatureValue>", b"<ds:SignatureValue xmlns:q='rel'>"),
    "on KeyInfo": (b"<ds:KeyInfo>", b"<ds:KeyInfo xmlns:q='rel'>"),
    "default on X509Data": (b"<ds:X509Data>", b"<ds:X509Data xmlns='rel'>"),
    "on the root": (b"<m:Doc ", b"<m:Doc xmlns:q='rel' "),
    "in the content": (b"<Deeper>", b"<Deeper xmlns:q='../rel'>"),
    "used in the content": (b"<Deeper>data</Deeper>", b"<q:Deeper xmlns:q='rel'>data</q:Deeper>"),
    "default in the content": (b"<Text>", b"<Text xmlns='rel'>"),
}


@either_c14n
@pytest.mark.parametrize("case", list(RELATIVE_NAMESPACES), ids=list(RELATIVE_NAMESPACES))
def test_a_relative_namespace_uri_is_left_to_the_tree(
    pki: DevPki, case: str, exclusive: bool
) -> None:
    # libxml2's C14N refuses one anywhere in the document: xmlsec cannot verify
    old, new = RELATIVE_NAMESPACES[case]
    c14n = T.TransformExclC14N if exclusive else T.TransformInclC14N
    signed = sign(
        parse_xml(RICH.encode()),
        pki.municipality.signing,
        signed_info=c14n,
        reference=(T.TransformEnveloped, c14n),
    )
    assert old in signed
    data = signed.replace(old, new, 1)
    assert rule_ids(tree_verdict(data)) == [rules.MSG_SIG_INVALID.id]
    for chunk in (*CHUNKS, 7):
        assert stream_verdict(data, chunk) is None, f"chunk {chunk}"


class _Unseekable(io.BytesIO):
    def seekable(self) -> bool:
        return False


def test_a_long_prolog_is_left_to_the_tree_and_a_short_one_is_not(pki: DevPki) -> None:
    data = signed_rich(pki)
    comments = b"<!--x-->" * (dsig_stream.PROLOG_BYTES // 4)  # twice the bound
    assert tree_verdict(comments + data).valid
    assert verify_document_stream(_Unseekable(comments + data)) is None
    assert stream_verdict(comments + data) is None
    assert stream_verdict(comments + data, 4096) is None
    short = b"<!--x-->" * 1000 + data
    same_verdict(short, chunks=(CHUNK_BYTES, 4096))
    assert verify_document_stream(_Unseekable(short)) == tree_verdict(short)


def test_the_namespace_uris_tracked_stay_capped(pki: DevPki) -> None:
    writer = dsig_stream._Canonicaliser(dsig_stream._ASSUMED, hashlib.sha256())
    for index in range(dsig_stream.MAX_URIS * 2):
        writer.declared("p", f"urn:n{index}")
        assert len(writer._prefixes) <= dsig_stream.MAX_URIS
    assert not writer._movable
    many = "".join(f'<x xmlns:p="urn:n{i}" p:a="{i}"/>' for i in range(dsig_stream.MAX_URIS + 1))
    data = signed_rich_of(RICH.replace("<Head", many + "<Head", 1), pki)
    assert same_verdict(data, chunks=(CHUNK_BYTES, 4096)).valid


def test_the_exclusive_apexes_remembered_stay_capped(
    pki: DevPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = "".join(f'<x xmlns:p="urn:n{i}" p:a="{i}"/>' for i in range(dsig_stream.MAX_APEXES * 3))
    data = sign(
        parse_xml(RICH.replace("<Head", many + "<Head", 1).encode()),
        pki.municipality.signing,
        reference=(T.TransformEnveloped, T.TransformExclC14N),
    )
    whole = dsig_stream._Canonicaliser._whole
    sizes: list[int] = []

    def spy(self: Any, el: etree._Element, parent: Any) -> bool:
        sizes.append(len(parent.cache))
        return whole(self, el, parent)

    monkeypatch.setattr(dsig_stream._Canonicaliser, "_whole", spy)
    assert same_verdict(data, chunks=(CHUNK_BYTES, 4096)).valid
    assert len(sizes) > dsig_stream.MAX_APEXES * 3
    assert max(sizes) <= dsig_stream.MAX_APEXES
