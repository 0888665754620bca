"""The enveloped ds:Signature of a large business document (MsgHead), verified while the
document streams by, without a tree of the whole document (issue 11: that tree was most of a
large message's memory).

The verdict is the one `xmldsig.verify_document` gives on the parsed tree: the same profile
checks run on a copy of the small ds:Signature subtree, and the cryptography xmlsec would do
is done here: the reference digest over the canonical form of the document without the
signature (enveloped-signature), hashed chunk by chunk, and RSA over the canonical
SignedInfo, with the key of the certificate the checks return.

The document is fed to the hardened pull parser in chunks. After each chunk, the elements
that are complete (a later sibling has begun, or an ancestor is complete) are canonicalised by
libxml2's C14N and dropped, so the tree holds about one chunk; only the elements still open
along the document's rightmost path have their tags, texts and tails written here. Inclusive
C14N: the complete siblings are moved, tails and all, under a wrapper element that has their
parent's namespaces in scope and canonicalised in one call, the wrapper's tags cut off.
Exclusive C14N: each complete subtree is canonicalised as a copy and its apex's declarations
rewritten against those its output ancestors rendered; where the subtree alone cannot tell,
it is written element by element. (lxml's C14N of an element in place is not used: it
renders `xmlns=""` on grandchildren whose default namespace is declared above the element.)

Anything outside this (a DOCTYPE, XML that does not parse, transforms in another order, an
xml:* attribute the canonical SignedInfo would inherit, base64 xmlsec might read
differently, a relative namespace URI, more than PROLOG_BYTES before the root, any
unexpected exception...) makes `verify_document_stream` answer None: the caller then takes
the tree path. It never guesses a verdict.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import IO

import xmlsec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree

from app.core.xmlparse import pull_parser
from app.security import xmldsig
from app.security.xmldsig import (
    C14N_2001,
    DS_NS,
    ENVELOPED,
    EXC_C14N,
    RSA_SHA1,
    RSA_SHA256,
    DocumentShape,
    DocumentSignature,
)

CHUNK_BYTES = 1 << 16
# Bounds on what a hostile document can make the stream path hold: the bytes before the
# root's start tag (read twice, so kept), the namespace URIs tracked for moving subtrees,
# and the exclusive apex declarations remembered per open element.
PROLOG_BYTES = 1 << 20
MAX_URIS = 4096
MAX_APEXES = 256

_DS = f"{{{DS_NS}}}"
_SIGNATURE = f"{_DS}Signature"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
_DIGESTS = {
    "http://www.w3.org/2000/09/xmldsig#sha1": "sha1",
    "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}
_SIGNATURE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    RSA_SHA256: hashes.SHA256,
    RSA_SHA1: hashes.SHA1,
}
# The start tag of a canonical subtree's apex: its name, then its namespace declarations
# (C14N writes them before the attributes, and never a `"` inside a value).
_APEX = re.compile(rb'<([^\s>]+)((?: xmlns(?::[^\s=]+)?="[^"]*")*)')
_DECLARATION = re.compile(rb' xmlns(?::([^\s=]+))?="([^"]*)"')
_BASE64_SPACE = re.compile(r"[ \t\r\n]+")
# libxml2's C14N (so xmlsec's verdict) fails on a namespace URI without a scheme
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


class _Unhandled(Exception):
    """The document is outside what the stream path handles: use the tree path."""


@dataclass(frozen=True, slots=True)
class _Params:
    """How the reference digest is computed: C14N variant and hash."""

    exclusive: bool
    digest: str


_ASSUMED = _Params(exclusive=False, digest="sha256")  # sign_document's, and NAV's


class _Restart(Exception):
    def __init__(self, params: _Params) -> None:
        super().__init__()
        self.params = params


@dataclass(slots=True)
class _Seen:
    """The first ds:Signature child of the root: a copy, its shape, its canonical SignedInfo
    (None when it could not be had), and how its reference digest must be computed."""

    element: etree._Element
    shape: DocumentShape
    signed_info: bytes | None
    params: _Params | None


# C14N's escaping of text and of attribute values (where `>` stays, and tab, LF and CR would
# otherwise be normalised away by a parser reading the canonical form).
_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"})
_ATTRIBUTE_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", '"': "&quot;", "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}
)


def _text(value: str) -> bytes:
    return value.translate(_TEXT_ESCAPES).encode()


def _attribute(value: str) -> bytes:
    return value.translate(_ATTRIBUTE_ESCAPES).encode()


def _declaration(prefix: bytes, uri: bytes) -> bytes:
    # libxml2 writes namespace URIs unescaped (a `"` would switch its quotes): refuse those.
    if b'"' in uri:
        raise _Unhandled("quote in a namespace URI")
    return b' xmlns="' + uri + b'"' if not prefix else b" xmlns:" + prefix + b'="' + uri + b'"'


def _declarations(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(_declaration(p, u) for p, u in sorted(pairs))


def _split(clark: str) -> tuple[str, str]:
    if clark[:1] == "{":
        uri, local = clark[1:].split("}", 1)
        return uri, local
    return "", clark


def _c14n(el: etree._Element, *, exclusive: bool) -> bytes:
    """C14N of a subtree as a document subset: all namespaces in scope (inclusive) or those
    used (exclusive) declared at its apex. Of a copy: lxml's C14N of an element in place
    renders `xmlns=""` on grandchildren whose default namespace is declared above it."""
    return etree.tostring(copy.copy(el), method="c14n", exclusive=exclusive)


def _in_scope(el: etree._Element) -> dict[bytes, bytes]:
    """Prefix ('' for the default) -> URI of the namespaces in scope; `xmlns=""` is none."""
    return {(p or "").encode(): u.encode() for p, u in el.nsmap.items() if p or u}


@dataclass(slots=True)
class _Frame:
    """An element still open along the rightmost path, whose tags are written here.
    `context`: inclusive, the namespaces in scope at it; exclusive, those rendered in effect."""

    element: etree._Element
    qname: bytes
    context: dict[bytes, bytes]
    complete: bool
    text_done: bool = False
    needles: tuple[bytes, ...] = ()
    cache: dict[tuple[bytes, bool], bytes] = field(default_factory=dict)
    wrapper: etree._Element | None = None


class _Canonicaliser:
    """C14N (1.0 or exclusive, without comments) of the document minus the root's
    ds:Signature children, fed to `sink` piece by piece as the tree grows."""

    def __init__(self, params: _Params, sink: hashlib._Hash) -> None:
        self._exclusive = params.exclusive
        self._params = params
        self._update = sink.update
        self._frames: list[_Frame] = []
        self.signatures = 0
        self.seen: _Seen | None = None
        self._prefixes: dict[str, str] = {}  # URI -> the one prefix bound to it so far
        self._movable = True

    def declared(self, prefix: str, uri: str) -> None:
        """A namespace declaration the parser has read. lxml rebinds a node moved to another
        parent by URI (and drops its own declarations of URIs in scope there), so subtrees
        are moved only while no URI has been bound to two prefixes in the document."""
        if uri and not _ABSOLUTE_URI.match(uri):
            raise _Unhandled("a relative namespace URI")
        if not self._movable:
            return
        if self._prefixes.setdefault(uri, prefix) != prefix or len(self._prefixes) > MAX_URIS:
            self._movable = False  # too many URIs to track: written element by element
            self._prefixes.clear()

    def start(self, root: etree._Element) -> None:
        self._push(root, {}, complete=False)

    def advance(self, *, final: bool) -> None:
        """Write everything that is complete now (all of it when `final`)."""
        frames = self._frames
        parent_complete = final
        for frame in frames:
            frame.complete = parent_complete = (
                frame.complete or parent_complete or frame.element.getnext() is not None
            )
        while frames:
            top = frames[-1]
            el = top.element
            child = next(iter(el), None)
            if not top.text_done:
                if child is None and not top.complete:
                    return  # the text may still grow
                if el.text:
                    self._update(_text(el.text))
                top.text_done = True
            if child is None:
                if not top.complete:
                    return
                self._update(b"</" + top.qname + b">")
                frames.pop()
                if frames:
                    self._done(frames[-1].element, el)
                continue
            if not self._exclusive and self._movable and self._batch(top):
                continue
            if not isinstance(child.tag, str):
                raise _Unhandled("an entity reference")
            child_complete = top.complete or child.getnext() is not None
            if len(frames) == 1 and child.tag == _SIGNATURE:
                if not child_complete:
                    return
                self._signature(el, child)
                self._done(el, child)
            elif child_complete and self._exclusive and self._whole(child, top):
                self._done(el, child)
            else:  # still open (so the last child), or to be written element by element
                self._push(child, top.context, complete=child_complete)

    def _batch(self, top: _Frame) -> bool:
        """Inclusive C14N of the frame's complete children and their tails, up to a root's
        ds:Signature, in one call: they are moved under a wrapper that has the frame's
        namespaces in scope, so libxml2 renders them as inside the document. False when
        there are none."""
        kids = list(top.element)
        if not top.complete:
            kids.pop()  # the last one is still open
        if len(self._frames) == 1:
            for index, kid in enumerate(kids):
                if kid.tag == _SIGNATURE:
                    del kids[index:]
                    break
        if not kids:
            return False
        if any(not isinstance(kid.tag, str) for kid in kids):
            raise _Unhandled("an entity reference")
        wrapper = top.wrapper
        if wrapper is None:
            wrapper = top.wrapper = _wrapper(top.context)
        wrapper.extend(kids)  # moves them, tails too
        try:
            out = etree.tostring(wrapper, method="c14n", exclusive=False)
        except etree.C14NError as exc:
            raise _Unhandled("C14N failed") from exc
        finally:
            del wrapper[:]
        self._update(_unwrapped(out))
        return True

    def _done(self, parent: etree._Element, child: etree._Element) -> None:
        """Write the tail of a written child and drop it."""
        if child.tail:
            self._update(_text(child.tail))
        self._drop(parent, child)

    @staticmethod
    def _drop(parent: etree._Element, child: etree._Element) -> None:
        # a written subtree leaves the tree at once: memory stays one chunk's tree
        child.clear()
        parent.remove(child)

    # --- elements written here --------------------------------------------------------------

    def _push(self, el: etree._Element, parent: dict[bytes, bytes], *, complete: bool) -> None:
        attributes: list[tuple[str, str, str, str]] = []
        utilised: list[tuple[bytes, bytes]] = []
        for index, (key, value) in enumerate(el.attrib.items(), start=1):
            if not isinstance(key, str) or not isinstance(value, str):
                raise _Unhandled("attribute")
            uri, local = _split(key)
            qname = local
            if uri:
                # lxml names attributes by URI; the canonical form uses the document's prefix
                qname = str(el.xpath(f"name(@*[{index}])"))
                prefix, _, rest = qname.rpartition(":")
                if rest != local or not prefix:
                    raise _Unhandled("attribute order")
                if prefix != "xml":
                    utilised.append((prefix.encode(), uri.encode()))
            attributes.append((uri, local, qname, value))
        uri, _ = _split(el.tag)
        prefix = el.prefix or ""
        qname = f"{prefix}:{el.tag.rsplit('}', 1)[1]}" if prefix else _split(el.tag)[1]
        in_scope = _in_scope(el)
        if self._exclusive:
            utilised.append((prefix.encode(), uri.encode()))
            rendered = {p: u for p, u in utilised if parent.get(p, b"" if not p else None) != u}
            context = {**parent, **rendered}
            pairs = list(rendered.items())
        else:
            pairs = [(p, u) for p, u in in_scope.items() if parent.get(p) != u]
            if b"" not in in_scope and parent.get(b""):
                pairs.append((b"", b""))
            context = in_scope
        for p, u in in_scope.items():
            _declaration(p, u)  # refuses a URI libxml2 would quote otherwise
        start = b"<" + qname.encode() + _declarations(pairs)
        for _, _, name, value in sorted(attributes):
            start += b" " + name.encode() + b'="' + _attribute(value) + b'"'
        self._update(start + b">")
        needles = tuple(_declaration(p, u) for p, u in context.items() if u)
        self._frames.append(
            _Frame(
                el, qname.encode(), context, complete, needles=needles if self._exclusive else ()
            )
        )

    # --- complete subtrees, written by libxml2 ----------------------------------------------

    def _whole(self, el: etree._Element, parent: _Frame) -> bool:
        """Write a complete subtree in exclusive C14N; False when it must be written element
        by element."""
        try:
            out = _c14n(el, exclusive=True)
        except etree.C14NError as exc:
            raise _Unhandled("C14N failed") from exc
        apex = _APEX.match(out)
        if apex is None or out.startswith(b" xmlns", apex.end()):
            raise _Unhandled("a declaration libxml2 wrote otherwise")
        end = apex.end()
        name, declared = apex.group(1), apex.group(2)
        prefixed = b":" in name
        # Inside the document, a namespace an output ancestor above the apex rendered is not
        # rendered again, and an unprefixed element below a prefixed apex needs xmlns=""
        # when a default is in effect: libxml2 on the subtree alone knows neither.
        if prefixed and parent.context.get(b""):
            return False
        if any(out.find(needle, end) >= 0 for needle in parent.needles):
            return False
        key = (declared, prefixed)
        fixed = parent.cache.get(key)
        if fixed is None:
            fixed = _exclusive_apex(declared, prefixed, parent.context)
            if len(parent.cache) >= MAX_APEXES:
                parent.cache.clear()  # children each declaring something else: no reuse
            parent.cache[key] = fixed
        self._update(b"<" + name + fixed)
        self._update(memoryview(out)[end:])
        return True

    # --- the signature ----------------------------------------------------------------------

    def _signature(self, root: etree._Element, sig: etree._Element) -> None:
        self.signatures += 1
        if self.signatures > 1:
            return
        kept = copy.deepcopy(sig)
        shape = xmldsig.check_document_shape(kept)
        params = _reference_params(kept)
        signed_info = None
        if shape.verifiable:
            signed_info = _canonical_signed_info(root, sig)
        self.seen = _Seen(kept, shape, signed_info, params)
        if shape.verifiable and params is None:
            raise _Unhandled("reference transforms")
        if shape.verifiable and params is not None and params != self._params:
            raise _Restart(params)


def _exclusive_apex(declared: bytes, prefixed: bool, rendered: dict[bytes, bytes]) -> bytes:
    """The apex's namespace declarations inside the document, from those libxml2 wrote for
    it as a root (those it uses; no default when it is unprefixed and in no namespace)."""
    pairs = [(p or b"", u) for p, u in _DECLARATION.findall(declared)]
    kept = [(p, u) for p, u in pairs if rendered.get(p, b"" if not p else None) != u]
    empty = not prefixed and not any(not p for p, _ in pairs) and bool(rendered.get(b""))
    return (b' xmlns=""' if empty else b"") + b"".join(_declaration(p, u) for p, u in kept)


def _wrapper(scope: dict[bytes, bytes]) -> etree._Element:
    """An element whose namespaces in scope are `scope`, to render children under."""
    nsmap = {(p.decode() or None): u.decode() for p, u in scope.items()}
    return etree.Element("w", nsmap=nsmap)  # type: ignore[arg-type]


def _unwrapped(out: bytes) -> bytes:
    """The canonical wrapper's content: its start and end tags cut off."""
    start = _APEX.match(out)
    if start is None or not out.startswith(b">", start.end()) or not out.endswith(b"</w>"):
        raise _Unhandled("wrapper")
    return out[start.end() + 1 : -4]


def _wrapped(el: etree._Element, scope: dict[bytes, bytes]) -> bytes:
    """Inclusive C14N of a copy of `el` under a wrapper whose namespaces in scope are
    `scope`: `el` as it renders inside the document (without its tail)."""
    wrapper = _wrapper(scope)
    inner = copy.copy(el)
    inner.tail = None
    wrapper.append(inner)
    return _unwrapped(etree.tostring(wrapper, method="c14n", exclusive=False))


def _plain(sig: etree._Element) -> bool:
    """The ds:Signature is laid out as xmlsec reads it, with nothing in it whose reading we
    would have to second-guess (InclusiveNamespaces, other KeyInfo, Objects, HMAC lengths)."""
    kids = list(sig)
    names = [k.tag.removeprefix(_DS) if isinstance(k.tag, str) else "" for k in kids]
    if names not in (["SignedInfo", "SignatureValue"], ["SignedInfo", "SignatureValue", "KeyInfo"]):
        return False
    if len(kids[1]):
        return False
    for data in kids[2] if len(kids) == 3 else ():
        if data.tag != f"{_DS}X509Data" or any(
            c.tag != f"{_DS}X509Certificate" or len(c) for c in data
        ):
            return False
    info = list(kids[0])
    if [k.tag for k in info] != [
        f"{_DS}{n}" for n in ("CanonicalizationMethod", "SignatureMethod", "Reference")
    ] or any(len(k) for k in info[:2]):
        return False
    ref = list(info[2])
    if ref and ref[0].tag == f"{_DS}Transforms":
        transforms = list(ref.pop(0))
        if not transforms or any(t.tag != f"{_DS}Transform" or len(t) for t in transforms):
            return False
    return [k.tag for k in ref] == [f"{_DS}DigestMethod", f"{_DS}DigestValue"] and not any(
        len(k) for k in ref
    )


def _reference_params(sig: etree._Element) -> _Params | None:
    """How the one reference's digest is computed, when it is a form we compute."""
    if not _plain(sig):
        return None
    ref = sig.find(f"{_DS}SignedInfo/{_DS}Reference")
    assert ref is not None
    algs = [t.get("Algorithm") for t in ref.findall(f"{_DS}Transforms/{_DS}Transform")]
    method = ref.find(f"{_DS}DigestMethod")
    digest = _DIGESTS.get(method.get("Algorithm") or "") if method is not None else None
    if digest is None:
        return None
    if algs in ([ENVELOPED], [ENVELOPED, C14N_2001]):
        return _Params(exclusive=False, digest=digest)
    if algs == [ENVELOPED, EXC_C14N]:
        return _Params(exclusive=True, digest=digest)
    return None  # another order or repetition: xmlsec's reading of it is the tree path's


def _movable_signed_info(
    info: etree._Element, sig: etree._Element, scope: dict[bytes, bytes]
) -> bool:
    """SignedInfo can move under a wrapper unchanged (see `_Canonicaliser.declared`): no
    declarations of its own, only ds: elements under its one prefix, no prefixed
    attributes, and no other prefix bound to the ds namespace."""
    same = all(
        el.prefix == info.prefix and not any(str(k).startswith("{") for k in el.attrib)
        for el in info.iter()
    )
    return same and info.nsmap == sig.nsmap and list(scope.values()).count(DS_NS.encode()) == 1


def _canonical_signed_info(root: etree._Element, sig: etree._Element) -> bytes | None:
    """SignedInfo in C14N as xmlsec computes it in the document: libxml2 renders it with the
    namespaces in scope from the root, as a document subset. The xml:* attributes inclusive
    C14N 1.0 would inherit are not rendered that way: None then, and for anything else odd."""
    info = sig.find(f"{_DS}SignedInfo")
    method = info.find(f"{_DS}CanonicalizationMethod") if info is not None else None
    alg = method.get("Algorithm") if method is not None else None
    if info is None or alg not in (C14N_2001, EXC_C14N):
        return None
    exclusive = alg == EXC_C14N
    for el in info.iterdescendants(etree.Element) if not exclusive else ():
        parent = el.getparent()
        if parent is not None and el.nsmap != parent.nsmap:
            # lxml drops a moved node's declarations of URIs in scope under the wrapper,
            # which xmlsec renders (a declaration that leaves nsmap as is renders nowhere)
            return None
    if not exclusive and any(str(k).startswith(_XML_NS) for el in (root, sig) for k in el.attrib):
        return None
    scope = _in_scope(info)
    if not exclusive and not _movable_signed_info(info, sig, scope):
        return None
    try:
        if exclusive:
            return _c14n(info, exclusive=True)
        # A document subset's apex renders every namespace in scope, not just new ones.
        out = _wrapped(info, scope)
    except (etree.C14NError, _Unhandled):
        return None
    apex = _APEX.match(out)
    if apex is None or out.startswith(b" xmlns", apex.end()):
        return None
    empty = b' xmlns=""' if apex.group(2).startswith(b' xmlns=""') else b""
    if empty:
        return None  # an undeclared default in scope at SignedInfo: not worth a rule here
    return b"<" + apex.group(1) + _declarations(list(scope.items())) + out[apex.end() :]


def _base64(el: etree._Element | None) -> bytes:
    if el is None or len(el):
        raise _Unhandled("not a base64 leaf")
    try:
        return base64.b64decode(_BASE64_SPACE.sub("", el.text or ""), validate=True)
    except ValueError as exc:
        raise _Unhandled("base64 xmlsec may read otherwise") from exc


def _verified(seen: _Seen, digest: bytes) -> bool:
    """What xmlsec would answer for a verifiable signature: the reference digest and the
    RSA signature over the canonical SignedInfo, with the key of the signer certificate."""
    signer, method = seen.shape.signer, seen.shape.method
    if seen.signed_info is None or signer is None or method is None:
        raise _Unhandled("SignedInfo not canonicalised here")
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise _Unhandled("not an RSA key")
    sig = seen.element
    value = _base64(sig.find(f"{_DS}SignatureValue"))
    expected = _base64(sig.find(f"{_DS}SignedInfo/{_DS}Reference/{_DS}DigestValue"))
    if len(value) != (key.key_size + 7) // 8:
        raise _Unhandled("signature length")
    try:
        xmldsig.xmlsec_key(signer)
    except xmlsec.Error:
        return False  # xmlsec cannot load the certificate: it cannot verify either
    if not hmac.compare_digest(digest, expected):
        return False
    try:
        key.verify(value, seen.signed_info, padding.PKCS1v15(), _SIGNATURE_HASHES[method]())
    except InvalidSignature:
        return False
    return True


def _stream(source: IO[bytes], params: _Params, chunk_bytes: int) -> DocumentSignature:
    """One pass over the document; raises _Restart when the signature wants other params."""
    sink = hashlib.new(params.digest)
    writer = _Canonicaliser(params, sink)
    head: list[bytes] = []
    read = 0
    scout = pull_parser()
    root_tag: str | None = None
    while root_tag is None:  # the root's name, so the parser reports the root alone
        if read >= PROLOG_BYTES:
            raise _Unhandled("a long prolog")
        chunk = source.read(chunk_bytes)
        if not chunk:
            raise _Unhandled("no root element")
        read += len(chunk)
        head.append(chunk)
        scout.feed(chunk)
        for _, first in scout.read_events():
            if not isinstance(first, etree._Element) or not isinstance(first.tag, str):
                raise _Unhandled("root")
            root_tag = first.tag
            break
    del scout
    parser = pull_parser(tag=root_tag, namespaces=True)
    started = False
    chunks = iter(head)
    while True:
        chunk = next(chunks, None) or source.read(chunk_bytes)
        if not chunk:
            break
        parser.feed(chunk)
        for _, el in parser.read_events():
            if isinstance(el, tuple):  # start-ns: (prefix, URI)
                writer.declared(str(el[0]), str(el[1]))
                continue
            if not started and isinstance(el, etree._Element):
                doctype: str = getattr(el.getroottree().docinfo, "doctype", "")
                if doctype:
                    raise _Unhandled("DOCTYPE")
                writer.start(el)
                started = True
        if started:
            writer.advance(final=False)
    parser.close()
    if not started:
        raise _Unhandled("no root element")
    writer.advance(final=True)
    if writer.signatures == 0:
        return DocumentSignature(present=False, findings=(), signer=None)
    if writer.signatures > 1:
        return xmldsig.several_document_signatures(writer.signatures)
    seen = writer.seen
    assert seen is not None
    if not seen.shape.verifiable:
        return xmldsig.document_verdict(seen.shape, verified=False)
    if seen.params is None:
        raise _Unhandled("reference transforms")
    return xmldsig.document_verdict(seen.shape, _verified(seen, sink.digest()))


_TAIL_BYTES = 1 << 15
_DIGEST_METHOD = re.compile(rb"DigestMethod\s+Algorithm\s*=\s*[\"']([^\"']+)")


def _guess(source: IO[bytes], start: int) -> _Params:
    """How the reference digest is likely computed, from the document's last bytes (where
    the enveloped signature usually stands): a right guess saves a second pass, a wrong one
    costs it (the signature read while streaming decides)."""
    end = source.seek(0, 2)
    source.seek(max(start, end - _TAIL_BYTES))
    tail = source.read()
    source.seek(start)
    transforms = tail.split(b"Transforms")
    method = _DIGEST_METHOD.search(tail)
    digest = _DIGESTS.get(method.group(1).decode("ascii", "replace")) if method else None
    return _Params(
        exclusive=len(transforms) >= 3 and EXC_C14N.encode() in transforms[-2],
        digest=digest or _ASSUMED.digest,
    )


def verify_document_stream(
    source: IO[bytes], *, chunk_bytes: int = CHUNK_BYTES
) -> DocumentSignature | None:
    """`xmldsig.verify_document` of the document read from `source` (from its current
    position) as a stream, `chunk_bytes` at a time; None when the document is outside what
    the stream path handles, and then the caller verifies the tree."""
    start = source.tell() if source.seekable() else None
    params = _ASSUMED if start is None else _guess(source, start)
    for _ in range(2):
        try:
            return _stream(source, params, chunk_bytes)
        except _Restart as restart:
            if start is None:
                return None
            source.seek(start)
            params = restart.params
        except Exception:  # anything unforeseen (a key type cryptography lacks...): the tree judges
            return None
    return None  # pragma: no cover - a second pass has the params the signature asks for
