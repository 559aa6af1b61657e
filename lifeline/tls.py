"""A local certificate authority and server certificates for the local stack's TLS (``cryptography``).

``lifeline up`` serves MQTT over TLS on loopback with a certificate of its own CA; clients verify it against the
CA file. Keys are written 0600 from the start. Existing files are kept, so clients configured once stay valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.secret import write_secret_file

VALID_DAYS = 825  # the longest server certificate life browsers and most TLS stacks still accept


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    key_cert_sign=True,
    crl_sign=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path
    crl_file: Path | None = None  # a broker's: the CA's revoked client certificates (:func:`revoke`)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lifeline local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{path}: not an EC private key")
    return key


def _signed_by(cert_path: Path, ca_cert: x509.Certificate, crl_path: Path) -> bool:
    """Whether the certificate in ``cert_path`` was issued by ``ca_cert`` (a CA made again makes its old ones void)
    and is not revoked (a revoked one is made again)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.serial_number not in _revoked_serials(crl_path)


CRL_NAME = "crl.pem"
CRL_DAYS = 3650  # a CRL past its next update is refused by OpenSSL, and with it every client: it is signed again
# at every revocation and at every ``ensure_crl`` of ``lifeline up``


def _revoked_serials(crl_path: Path) -> set[int]:
    if not crl_path.exists():
        return set()
    return {r.serial_number for r in x509.load_pem_x509_crl(crl_path.read_bytes())}


def _sign_crl(ca: tuple[Path, Path], serials: set[int]) -> Path:
    ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=CRL_DAYS))
    )
    for serial in sorted(serials):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    path = ca[0].parent / CRL_NAME
    path.write_bytes(builder.sign(_load_key(ca[1]), hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return path


def ensure_crl(ca: tuple[Path, Path]) -> Path:
    """The CA's revocation list next to its certificate (``crl.pem``), signed again now (an empty one at first): a
    broker with ``crlfile`` refuses the client certificates it lists."""
    return _sign_crl(ca, _revoked_serials(ca[0].parent / CRL_NAME))


def revoke(ca: tuple[Path, Path], cert_path: Path) -> int:
    """Add the certificate in ``cert_path`` (issued by ``ca``) to the CA's revocation list; its serial number. The
    broker reads the list when it starts: restart it (``lifeline up`` does at its next run)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca[0].read_bytes()))
    _sign_crl(ca, _revoked_serials(ca[0].parent / CRL_NAME) | {cert.serial_number})
    return int(cert.serial_number)


def common_name(cert_path: Path) -> str:
    """The common name of the certificate in ``cert_path`` (a client's: its MQTT user name)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def ensure_ca(folder: Path, name: str = "Lifeline local CA") -> tuple[Path, Path]:
    """The CA's certificate and key in ``folder`` (made if missing); returns (ca.pem, ca.key)."""
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    write_secret_file(key_path, _key_pem(key))
    folder.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def issue(
    folder: Path,
    ca: tuple[Path, Path],
    name: str,
    hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    *,
    client: bool = False,
) -> TlsFiles:
    """A certificate signed by ``ca`` for ``hosts`` (a server's) or for a client named ``name`` (its common name: a
    broker with ``use_identity_as_username`` takes it as the MQTT user name); kept if present and signed by ``ca``."""
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    ca_cert = x509.load_pem_x509_certificate(ca[0].read_bytes())
    if not (cert_path.exists() and key_path.exists() and _signed_by(cert_path, ca_cert, ca[0].parent / CRL_NAME)):
        ca_key = _load_key(ca[1])
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        alt: list[x509.GeneralName] = []
        for host in hosts:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                alt.append(x509.DNSName(host))
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alt and not client:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        write_secret_file(key_path, _key_pem(key))
        cert_path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return TlsFiles(ca[0], cert_path, key_path)
