"""The store CA and broker certificate; expiry is caught before connecting, with a date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509

from floorwalker.errors import ConfigError
from floorwalker.tls import check_certificate, check_certificate_pem, issue_server_cert, make_store_ca

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def test_server_certificate_is_signed_by_the_store_ca(tmp_path: Path) -> None:
    ca_path = make_store_ca(tmp_path, "demo-store", now=NOW)
    server_path = issue_server_cert(tmp_path, ["store.local"], now=NOW, days=30)
    ca = check_certificate(ca_path, NOW)
    server = check_certificate(server_path, NOW + dt.timedelta(days=29))
    assert server.issuer == ca.subject
    server.verify_directly_issued_by(ca)  # raises if the signature does not check out
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "store.local" in names.get_values_for_type(x509.DNSName)
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0


def test_expired_certificate_names_file_and_date(tmp_path: Path) -> None:
    path = make_store_ca(tmp_path, "demo-store", now=NOW, days=10)
    with pytest.raises(ConfigError) as err:
        check_certificate(path, NOW + dt.timedelta(days=11))
    assert str(err.value).startswith(f"{path}: certificate expired on 2026-12-03")


def test_not_yet_valid_certificate_points_at_the_clock(tmp_path: Path) -> None:
    path = make_store_ca(tmp_path, "demo-store", now=NOW)
    with pytest.raises(ConfigError, match="check this device's clock"):
        check_certificate(path, NOW - dt.timedelta(days=1))


@pytest.mark.parametrize(("content", "problem"), [(None, "no such certificate file"), (b"junk", "not a PEM")])
def test_unreadable_certificates(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "ca.crt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=problem):
        check_certificate(path, NOW)


@pytest.mark.parametrize(
    ("days_later", "problem"),
    [
        (11, "the CA in gw-1's credentials: certificate expired on 2026-12-03"),
        (-1, "the CA in gw-1's credentials: certificate is not valid before 2026-11-23"),
    ],
)
def test_a_ca_carried_in_credentials_is_checked_the_same(
    tmp_path: Path, days_later: int, problem: str
) -> None:
    pem = make_store_ca(tmp_path, "demo-store", now=NOW, days=10).read_text()
    assert check_certificate_pem(pem, "the CA in gw-1's credentials", NOW).subject
    with pytest.raises(ConfigError, match=problem):
        check_certificate_pem(pem, "the CA in gw-1's credentials", NOW + dt.timedelta(days=days_later))
    with pytest.raises(ConfigError, match="the CA in gw-1's credentials: not a PEM certificate"):
        check_certificate_pem("junk", "the CA in gw-1's credentials", NOW)
