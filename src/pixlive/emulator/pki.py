"""The certificates an API Pix deployment needs, made for one machine.

One CA signs all of them: the emulator's server certificate (what pixlive's PSP client
trusts), the emulator's client certificate (what it presents when it delivers a webhook),
the merchant's client certificate (what pixlive presents to the PSP) and a server
certificate for `pixlive serve --tls-cert` (what the emulator's deliveries trust).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA = "ca.pem"
SERVER = "psp-server"  # the emulator's TLS server (API and locations)
PSP_CLIENT = "psp-client"  # the emulator's client certificate for webhook deliveries
MERCHANT_CLIENT = "merchant-client"  # pixlive's certificate towards the PSP
MERCHANT_SERVER = "merchant-server"  # pixlive serve --tls-cert, reached by deliveries
CREDENTIALS = "credentials.json"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str
    chave: str


def _key() -> rsa.RSAPrivateKey:
    # RSA, not EC: the location's JWS is RS256, signed with the server's key.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pixlive psp-emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _sans(names: tuple[str, ...]) -> list[x509.GeneralName]:
    found: list[x509.GeneralName] = []
    for name in names:
        try:
            found.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            found.append(x509.DNSName(name))
    return found


def _issue(
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    common_name: str,
    *,
    server: bool,
    days: int,
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_sans(LOOPBACK_NAMES)), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def init_dir(where: Path, *, chave: str, days: int = 365) -> Credentials:
    """Writes a CA, the four certificates with their keys, and an OAuth2 client into `where`."""
    where.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    now = dt.datetime.now(dt.UTC)
    ca_name = _name("pixlive psp-emulator CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (where / CA).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    for stem, common_name, server in (
        (SERVER, "psp-emulator", True),
        (PSP_CLIENT, "psp-emulator webhook", False),
        (MERCHANT_CLIENT, "merchant", False),
        (MERCHANT_SERVER, "merchant webhook", True),
    ):
        cert, key = _issue(ca_cert, ca_key, common_name, server=server, days=days)
        (where / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path = where / f"{stem}.key"
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
    credentials = Credentials(
        client_id="Client_Id_" + secrets.token_hex(8),
        client_secret="Client_Secret_" + secrets.token_hex(16),
        chave=chave,
    )
    path = where / CREDENTIALS
    path.write_text(json.dumps(credentials.__dict__, indent=2) + "\n")
    path.chmod(0o600)
    return credentials


def load_credentials(where: Path) -> Credentials:
    data = json.loads((where / CREDENTIALS).read_text())
    return Credentials(data["client_id"], data["client_secret"], data["chave"])


def common_name(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""
