"""TLS material for `agentbox serve`: a self-signed loopback certificate, made once and reused.

Azure SDKs build `https://` URLs themselves and azure-core refuses bearer tokens over plain
http, so a local server that Azure clients can reach must speak TLS (spec §3.4, §5.1). The
certificate names 127.0.0.1 and localhost; clients trust it through `REQUESTS_CA_BUNDLE`,
`SSL_CERT_FILE` or `curl --cacert`.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)
# Renew a little before the end so a long-running server does not cross the expiry date.
RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path


def ensure_self_signed(directory: Path) -> TlsFiles:
    """The certificate and key under `directory`, created on first use and reused while valid."""
    files = TlsFiles(cert=directory / "cert.pem", key=directory / "key.pem")
    if files.cert.exists() and files.key.exists() and _still_valid(files.cert):
        return files
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(
        files.key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    files.cert.write_bytes(_certificate(key).public_bytes(serialization.Encoding.PEM))
    return files


def _still_valid(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc - RENEW_BEFORE > datetime.datetime.now(datetime.UTC)


def _certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    # Self-signed and marked as a CA, like `openssl req -x509`, so the file can serve as its own
    # trust anchor in a CA bundle; the SANs are what clients actually match the host against.
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "agentbox local"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "agentbox"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret so that it is never readable by others, not even for a moment."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
