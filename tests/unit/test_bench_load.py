"""bench.load's helpers (no timings: what they parse and count)."""

from __future__ import annotations

import os

import pytest

from bench.load import Floor, cpu_seconds, parse_openssl_speed, peak_rss_mb

OPENSSL_3 = """\
                   sign    verify    encrypt   decrypt   sign/s verify/s  encr./s  decr./s
rsa  2048 bits 0.000658s 0.000019s 0.000021s 0.000645s   1519.8  52631.6  47619.0   1550.4
"""
OPENSSL_1_1 = """\
                  sign    verify    sign/s verify/s
rsa 2048 bits 0.000702s 0.000021s   1424.5  47619.0
"""


@pytest.mark.parametrize(("output", "signs"), [(OPENSSL_3, 1519.8), (OPENSSL_1_1, 1424.5)])
def test_openssl_speed_output_gives_signs_per_second(output: str, signs: float) -> None:
    assert parse_openssl_speed(output) == signs


def test_openssl_speed_without_an_rsa_line_is_refused() -> None:
    with pytest.raises(ValueError, match="rsa 2048"):
        parse_openssl_speed("Doing 2048 bits private rsa's for 3s\n")


def test_the_floor_divides_all_cores_signs_by_three_per_message() -> None:
    assert Floor(sign_per_core=1500.0, cores=2).messages_per_second == 1000.0


def test_this_process_has_cpu_time_and_a_peak_rss() -> None:
    sum(i * i for i in range(200_000))
    assert cpu_seconds(os.getpid()) > 0
    assert peak_rss_mb(os.getpid()) > 1
