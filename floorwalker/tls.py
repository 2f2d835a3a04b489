"""A store's own certificate authority and the broker's TLS certificate.

``floorwalker provision tls --hostname store-12.local`` makes, in the secrets directory:
``ca.key``/``ca.crt`` (the store CA, EC P-256) and ``server.key``/``server.crt`` for the
broker's TLS listener, signed by that CA, valid for the given host names and 127.0.0.1.
Devices verify the broker with the CA: ``floorwalker provision`` puts its certificate into
each device's credentials file (``ca_pem``), so that file alone is what a device needs.
:func:`check_certificate` is what a device runs before connecting, so an expired
certificate is one clear line naming where it came from and the date instead of a TLS
handshake failure.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from floorwalker.errors import ConfigError

CA_CERT: Final = "ca.crt"
CA_KEY: Final = "ca.key"
SERVER_CERT: Final = "server.crt"
SERVER_KEY: Final = "server.key"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def make_store_ca(directory: Path, store: str, *, now: dt.datetime, days: int = 5 * 365) -> Path:
    """Create the store CA (key and self-signed certificate); return the certificate path."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Floorwalker store CA {store}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / CA_KEY, key)
    (directory / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / CA_CERT


def issue_server_cert(
    directory: Path, hostnames: Sequence[str], *, now: dt.datetime, days: int = 825
) -> Path:
    """Sign a broker certificate for ``hostnames`` (and 127.0.0.1) with the store CA."""
    ca_cert = _load_cert(directory / CA_CERT)
    try:
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(
            f"{directory / CA_KEY}: no store CA key; run `floorwalker provision tls` first"
        ) from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{directory / CA_KEY}: not an EC private key")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "localhost")])
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(directory / SERVER_KEY, key)
    (directory / SERVER_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / SERVER_CERT


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such certificate file") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM certificate ({exc})") from None


def check_certificate(path: Path, now: dt.datetime) -> x509.Certificate:
    """Load a certificate and refuse one that is expired or not yet valid, naming file and date."""
    return _check_validity(_load_cert(path), str(path), now)


def check_certificate_pem(pem: str, source: str, now: dt.datetime) -> x509.Certificate:
    """Like :func:`check_certificate`, for a certificate's text; ``source`` names where it came from."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise ConfigError(f"{source}: not a PEM certificate ({exc})") from None
    return _check_validity(cert, source, now)


def _check_validity(cert: x509.Certificate, source: str, now: dt.datetime) -> x509.Certificate:
    if now > cert.not_valid_after_utc:
        raise ConfigError(
            f"{source}: certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
            "renew it with `floorwalker provision tls`, then provision the device again"
        )
    if now < cert.not_valid_before_utc:
        raise ConfigError(
            f"{source}: certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
            "check this device's clock"
        )
    return cert
