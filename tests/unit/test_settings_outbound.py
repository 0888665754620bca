"""KPR_OUTBOUND_ALLOW_PRIVATE: unset means private targets only in dev; set, it decides.
KPR_OUTBOUND_CA_FILE: a file that must be there."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.platform.settings import Env, Settings


@pytest.mark.parametrize(
    ("value", "dev", "test"),
    [(None, True, False), ("", True, False), ("true", True, True), ("false", False, False)],
)
def test_private_targets_are_allowed_only_in_dev_unless_set(
    monkeypatch: pytest.MonkeyPatch, value: str | None, dev: bool, test: bool
) -> None:
    if value is None:
        monkeypatch.delenv("KPR_OUTBOUND_ALLOW_PRIVATE", raising=False)
    else:
        monkeypatch.setenv("KPR_OUTBOUND_ALLOW_PRIVATE", value)
    assert Settings(_env_file=None, env=Env.DEV).outbound_private_allowed is dev
    assert Settings(_env_file=None, env=Env.TEST).outbound_private_allowed is test


def test_the_caps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="crl_max_bytes"):
        Settings(_env_file=None, crl_max_bytes=0)
    with pytest.raises(ValueError, match="ocsp_max_bytes"):
        Settings(_env_file=None, ocsp_max_bytes=0)


def test_the_outbound_ca_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="KPR_OUTBOUND_CA_FILE"):
        Settings(_env_file=None, outbound_ca_file=tmp_path / "missing.pem")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert Settings(_env_file=None, outbound_ca_file=str(ca)).outbound_ca_file == ca
    assert Settings(_env_file=None, outbound_ca_file="").outbound_ca_file is None
