"""Key files of signed commands: make each site's two Ed25519 key pairs, and load keys for signing and verifying.

Layout, one folder per site under a keys folder (``lifeline keys create --dir DIR --site S``)::

    DIR/S/control.key   private, mode 0600: the API signs the site's commands with it
    DIR/S/control.pub   public: the site's edge agent verifies commands with it
    DIR/S/site.key      private, mode 0600: the site's edge agent signs its results with it
    DIR/S/site.pub      public: the API verifies the site's results with it

Private keys are PEM PKCS#8 (unencrypted: the file mode protects them, as with SSH host keys), public keys PEM
SubjectPublicKeyInfo. A private key file that group or others may access is refused, with the file named.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from telemetry.signing import SigningKey, VerifyKey, key_id

__all__ = [
    "PRIVATE_MODE",
    "KeyFileError",
    "NewKey",
    "SiteKeyFiles",
    "create_site_keys",
    "load_signing_key",
    "load_verify_key",
]

PRIVATE_MODE = 0o600
_SITE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")  # telemetry.models.Id: also keeps a site id a plain folder name
_MAX_KEY_FILE = 64 * 1024


class KeyFileError(ValueError):
    """A key file that is missing, unreadable, not an Ed25519 key, or not protected; the text names the file."""


@dataclass(frozen=True, slots=True)
class SiteKeyFiles:
    """Where one site's key files are under a keys folder."""

    folder: Path

    @classmethod
    def of(cls, keys_dir: Path, site: str) -> SiteKeyFiles:
        if not _SITE.match(site):
            raise KeyFileError(f"site {site!r} is no valid site id (lowercase letters, digits, '_', '.', '-')")
        return cls(keys_dir / site)

    @property
    def control_private(self) -> Path:
        return self.folder / "control.key"

    @property
    def control_public(self) -> Path:
        return self.folder / "control.pub"

    @property
    def site_private(self) -> Path:
        return self.folder / "site.key"

    @property
    def site_public(self) -> Path:
        return self.folder / "site.pub"


@dataclass(frozen=True, slots=True)
class NewKey:
    """One key pair after ``create_site_keys``: whose, which, its public fingerprint, and whether it was made now."""

    site: str
    role: str  # "control" or "site"
    kid: str
    created: bool
    public_path: Path


def create_site_keys(keys_dir: Path, sites: Sequence[str]) -> list[NewKey]:
    """Make the control and site key pairs of ``sites`` that do not exist yet; existing keys are kept, never
    overwritten. A missing public file is written again from its private key; a public file without its private
    key is an error (that folder holds another party's copy: making a new pair would not match it)."""
    out: list[NewKey] = []
    for site in sites:
        files = SiteKeyFiles.of(keys_dir, site)
        files.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for role, private, public in (
            ("control", files.control_private, files.control_public),
            ("site", files.site_private, files.site_public),
        ):
            out.append(_create_pair(site, role, private, public))
    return out


def _create_pair(site: str, role: str, private_path: Path, public_path: Path) -> NewKey:
    created = False
    if private_path.exists():
        key = load_signing_key(private_path)
    elif public_path.exists():
        raise KeyFileError(
            f"{public_path}: a public key without its private key {private_path.name}: not making a "
            "new pair that would not match it (remove the public file to make one)"
        )
    else:
        key = SigningKey.of(Ed25519PrivateKey.generate())
        pem = key.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        _write_new(private_path, pem, PRIVATE_MODE)  # 0600 from the first byte: never chmod after writing
        created = True
    public_pem = key.private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    if public_path.exists():
        if load_verify_key(public_path).kid != key.kid:
            raise KeyFileError(
                f"{public_path}: does not match its private key {private_path.name} (key {key.kid}); not overwritten"
            )
    else:
        _write_new(public_path, public_pem, 0o644)
    return NewKey(site, role, key.kid, created, public_path)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (O_EXCL: never over an existing file), write, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _read(path: Path, *, private: bool) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())  # the mode of the file opened, not of whatever the path names a moment later
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if private and st.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: private key file is accessible by group or others (mode "
                f"{stat.S_IMODE(st.st_mode):04o}); it must be 0600: chmod 600 {path}"
            )
        return f.read(_MAX_KEY_FILE)


def load_signing_key(path: Path) -> SigningKey:
    """A private Ed25519 key from a PEM file that only its owner may read; KeyFileError names the file."""
    data = _read(path, private=True)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}, not an Ed25519 private key")
    return SigningKey.of(key)


def load_verify_key(path: Path) -> VerifyKey:
    """A public Ed25519 key from a PEM file; KeyFileError names the file."""
    data = _read(path, private=False)
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}, not an Ed25519 public key")
    return VerifyKey(key, key_id(key))
