"""The benchmarks' helpers on tiny inputs (the benchmarks themselves are run by hand; no test
here measures or asserts on time)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.content.iplos import validate_melding
from app.content.model import ContentContext
from app.dev.devpki import DevPki, dev_pki
from app.ebxml.mime import parse_body
from app.security.cms import open_payload
from app.security.xmldsig import verify_document, verify_envelope
from bench import percentile, ratio
from bench.bare_app import make_app
from bench.intake import KOMMUNER, Keys, build_messages, last_guid
from bench.validate import content_context, write_files

# the second tier (`make test-all`): the benchmarks' smoke tests
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki() -> DevPki:
    return dev_pki(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))


def keys_of(pki: DevPki) -> Keys:
    from cryptography.hazmat.primitives import serialization

    return Keys(
        pki.municipality.signing,
        pki.municipality.encryption,
        pki.kpr.encryption.certificate.public_bytes(serialization.Encoding.PEM),
    )


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 50) == 2.5
    assert percentile(list(map(float, range(1, 101))), 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0


def test_percentile_refuses_empty_input_and_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_ratio_of_zero_reference_is_infinite() -> None:
    assert ratio(2.0, 4.0) == 0.5
    assert ratio(1.0, 0.0) == float("inf")


def test_message_factory_builds_signed_encrypted_chained_messages(pki: DevPki) -> None:
    built = build_messages(keys_of(pki), 4, senders=2, notifications=2)
    assert len({m.message_id for m in built}) == 4
    contents = []
    for i, m in enumerate(built):
        mime = parse_body(m.body, m.content_type, max_parts=8).message
        assert mime is not None
        assert verify_envelope(mime.soap, mime.attachment_map).valid
        opened = open_payload(mime.attachments[0].data, (pki.kpr.encryption,))
        assert opened.content is not None
        doc = verify_document(opened.content)
        assert doc.present
        assert doc.findings == ()
        assert f"<Id>{8000001 + i % 2}</Id>".encode() in opened.content
        contents.append(opened.content)
    # sender 0's second message continues its first one's chain and løpenummer
    assert f'notifikasjonForrigeGUID="{last_guid(contents[0])}"'.encode() in contents[2]
    assert b'notifikasjonLopeNr="3"' in contents[2]
    assert f'kommuneNr="{KOMMUNER[1]}"'.encode() in contents[1]


def test_message_factory_refuses_more_senders_than_municipalities(pki: DevPki) -> None:
    with pytest.raises(ValueError, match="senders"):
        build_messages(keys_of(pki), 1, senders=len(KOMMUNER) + 1)


def test_last_guid_needs_a_notification() -> None:
    with pytest.raises(ValueError, match="notifikasjonGUID"):
        last_guid(b"<Melding/>")


async def test_bare_app_answers_ebms_with_the_fixed_reply() -> None:
    import httpx

    app = make_app(b"R" * 10, "multipart/related; boundary=x")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        r = await client.post("/ebms", content=b"x" * 100_000)
        assert r.status_code == 200
        assert r.content == b"R" * 10
        assert r.headers["content-type"] == "multipart/related; boundary=x"
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/ebms")).status_code == 404


def test_validate_bench_files_are_a_valid_melding_and_its_msghead(tmp_path: Path) -> None:
    melding, msghead = write_files(tmp_path, 5)
    ctx = content_context()
    assert isinstance(ctx, ContentContext)
    result = validate_melding(melding.read_bytes(), ctx)
    assert result.findings == ()
    assert len(result.notifications) == 5
    assert msghead.read_bytes().count(b"<Notifikasjon") == 5


def test_envelope_bench_cases_are_refused_or_verified_as_labelled(pki: DevPki) -> None:
    from bench.envelope import before_authentication, cases, element_count

    built = cases(pki)
    assert [c.refused for c in built] == [False, True, True, False]
    for case in built:
        assert before_authentication(case.built) is case.refused, case.name
    worst = built[-1].built
    mime = parse_body(worst.body, worst.content_type).message
    assert mime is not None
    assert verify_envelope(mime.soap, mime.attachment_map).valid  # xmlsec runs it all
    assert element_count(worst.soap) > 200


def test_large_bench_reads_peak_rss_and_the_reference_pipeline(tmp_path: Path) -> None:
    import os
    import shutil

    from bench.large import cpu_seconds, peak_rss_mb, reference_seconds

    rss = peak_rss_mb(os.getpid())
    assert rss is not None
    assert rss > 1
    assert peak_rss_mb(2**22 + 7) is None  # no such process
    used = cpu_seconds(os.getpid())
    assert used is not None
    sum(i * i for i in range(3_000_000))  # some CPU of this process's own
    later = cpu_seconds(os.getpid())
    assert later is not None
    assert later > used
    assert cpu_seconds(2**22 + 7) is None
    if not all(shutil.which(t) for t in ("openssl", "gunzip", "xmllint")):
        pytest.skip("openssl, gunzip or xmllint not installed")
    from app.dev.client import prepare_payload
    from app.dev.devpki import write_dev_pki
    from app.dev.sample import build_sample, wrap_in_msghead

    pki = dev_pki(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    write_dev_pki(tmp_path / "pki", pki)
    head = wrap_in_msghead(
        build_sample(3, "0301", seed=1), 8000001, 131725, "m-1", datetime.now(UTC)
    )
    payload = prepare_payload(
        head, signing=None, encrypt_to=pki.kpr.encryption.certificate, gzip=True
    )
    seconds = reference_seconds(tmp_path, payload.data, tmp_path / "pki")
    assert seconds is not None
    assert seconds >= 0


def test_dsig_stream_bench_children_verify_a_small_signed_msghead(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.dsig_stream import child, write_signed

    path = write_signed(tmp_path, 3)
    for mode in ("tree", "stream"):
        assert child(mode, path) == 0
        assert '"valid": true' in capsys.readouterr().out


def test_bench_store_stores_what_the_intake_stores_and_the_floor_writes_its_rows(
    tmp_path: Path,
) -> None:
    """`bench.store` on 30 notifications: every step runs (the message's notifications end
    up in the history and the register, with their episodes), and the floor writes its rows
    into the same schema."""
    import asyncio
    import sqlite3

    from app.platform.settings import Settings
    from app.register.keys import load_protector
    from bench.intake import database
    from bench.store import STEPS, checked, floor_sqlite, report, store_once

    protector = load_protector(Settings(pki_dir=tmp_path / "pki"))
    sample = tmp_path / "melding.xml"
    content, _ = checked(sample, 30)
    assert len(content.notifications) == 30
    with database(tmp_path, None) as url:
        steps = asyncio.run(store_once(url, content, protector, sample))
        path = url.split("///", 1)[1]
        db = sqlite3.connect(path)
        counts = [
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("iplos_notification", "notifikasjon", "episode")
        ]
        db.close()
    assert list(steps) == list(STEPS)
    assert counts[0] == counts[1] == 30
    assert counts[2] > 0
    floor_dir = tmp_path / "floor"
    floor_dir.mkdir()
    with database(floor_dir, None) as url:
        asyncio.run(store_once(url, content, protector, sample, only_message=True))
        path = url.split("///", 1)[1]
        floor_sqlite(Path(path), 40)
        db = sqlite3.connect(path)
        written = [
            db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("notifikasjon", "hendelse", "episode", "iplos_notification")
        ]
        db.close()
    assert written == [40, 40, 40, 0]
    assert all(rss > 0 for _, _, rss in steps.values())  # each step's own peak RSS
    table = report([steps], 1.0, 300.0, "SQLite, 30 notifications", 0.5)
    assert "| store_melding |" in table
    assert "| (content check, once) | 1.00 | | 300 |" in table
    assert "floor" in table
