"""Signed checkpoints of the audit chain: ``{seq, hash, at, count}`` of the chain's
head, signed with Ed25519 and written outside the database, one new file each.

The chain alone shows an entry changed, removed from the middle, inserted or
moved; it cannot show its newest entries removed, or the whole chain rebuilt by
someone who can write the database and recompute hashes. A checkpoint can: it was
signed with a key the database does not hold, and it says how long the chain was
and what its hash was at that point (sync/verification.py compares).
"""

from __future__ import annotations

import base64
import errno
import hashlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from connector.store.chain import head, instant
from connector.store.database import Store

from .audit_settings import AuditSettings

log = logging.getLogger("walkin.audit")

SUFFIX = ".checkpoint.json"


class AuditProblem(ValueError):
    """A key, checkpoint or export file the audit commands cannot use (one line at the
    ``walkin`` boundary, connector/cli.py)."""


class KeyProblem(AuditProblem):
    """A key file that is missing, unreadable or not an Ed25519 key of the kind asked for."""


class CheckpointProblem(AuditProblem):
    """A checkpoint file that cannot be read as one."""


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """:raises KeyProblem: naming the file and what is wrong with it."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):  # not PEM, not a private key, or encrypted
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"{path} is not an Ed25519 private key (PEM, unencrypted; `walkin audit keygen` makes one)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The public key in ``path`` (PEM), or the public half of a private key there.

    :raises KeyProblem: naming the file and what is wrong with it."""
    data = _read(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        return load_private_key(path).public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise KeyProblem(f"{path} is not an Ed25519 public key (PEM)")
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise KeyProblem(f"cannot read {path}: {exc.strerror or exc}") from None


def key_id(key: Ed25519PublicKey) -> str:
    """A short name of a public key: the first 16 hex digits of its raw bytes' SHA-256."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keygen(path: Path) -> Ed25519PublicKey:
    """A new private key in ``path`` (mode 0600, never over an existing file) and its
    public half in ``path`` + ``.pub``. :raises FileExistsError: either file exists."""
    public_path = Path(f"{path}.pub")
    for existing in (p for p in (path, public_path) if p.exists()):  # before either is made: none left half-done
        raise FileExistsError(errno.EEXIST, "exists", str(existing))
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _create(path, private, 0o600)
    _create(public_path, public, 0o644)
    return key.public_key()


def _create(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at ``at``: ``count`` entries, the newest ``seq`` with ``hash``."""

    seq: int
    hash: str
    at: str  # ISO 8601 instant, as the chain writes it
    count: int
    key: str = ""  # key_id of the key that signed it
    signature: str = ""  # base64 of the Ed25519 signature over signed_bytes()
    source: str = ""  # the file it was read from

    def signed_bytes(self) -> bytes:
        """What is signed: the four fields as sorted, compact JSON."""
        return orjson.dumps(
            {"seq": self.seq, "hash": self.hash, "at": self.at, "count": self.count}, option=orjson.OPT_SORT_KEYS
        )

    def signed_by(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(base64.b64decode(self.signature, validate=True), self.signed_bytes())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "seq": self.seq,
                "hash": self.hash,
                "at": self.at,
                "count": self.count,
                "key": self.key,
                "signature": self.signature,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @property
    def name(self) -> str:
        return Path(self.source).name if self.source else f"seq {self.seq}"


def sign(key: Ed25519PrivateKey, *, seq: int, hash: str, at: datetime, count: int) -> Checkpoint:
    unsigned = Checkpoint(seq=seq, hash=hash, at=instant(at), count=count)
    signature = base64.b64encode(key.sign(unsigned.signed_bytes())).decode("ascii")
    return Checkpoint(seq, hash, unsigned.at, count, key=key_id(key.public_key()), signature=signature)


def write(folder: Path, checkpoint: Checkpoint) -> Path:
    """The checkpoint as a new read-only file in ``folder`` (``O_EXCL``: never over
    another one), and as one log line — the log is a second place outside the database.

    :returns: the file written."""
    stamp = checkpoint.at.replace("-", "").replace(":", "")
    path = folder / f"{checkpoint.seq:012d}-{stamp}-{socket.gethostname()}-{os.getpid()}{SUFFIX}"
    try:
        _create(path, checkpoint.to_json() + b"\n", 0o444)
    except OSError as exc:
        raise CheckpointProblem(f"cannot write a checkpoint in {folder}: {exc.strerror or exc}") from None
    log.info("audit checkpoint %s %s", path.name, checkpoint.to_json().decode())
    return path


def read_all(folder: Path) -> list[Checkpoint]:
    """Every checkpoint in ``folder``, oldest seq first.

    :raises CheckpointProblem: a file that is not a checkpoint, or the folder unreadable."""
    try:
        paths = sorted(p for p in folder.iterdir() if p.name.endswith(SUFFIX))
    except OSError as exc:
        raise CheckpointProblem(f"cannot read the checkpoints in {folder}: {exc.strerror or exc}") from None
    out = [_parse(p) for p in paths]
    return sorted(out, key=lambda c: (c.seq, c.at))


def _parse(path: Path) -> Checkpoint:
    try:
        data = orjson.loads(path.read_bytes())
        return Checkpoint(
            seq=int(data["seq"]),
            hash=str(data["hash"]),
            at=str(data["at"]),
            count=int(data["count"]),
            key=str(data.get("key", "")),
            signature=str(data["signature"]),
            source=str(path),
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CheckpointProblem(f"{path} is not a readable checkpoint") from None


# ------------------------------------------------------------- the writer


class Checkpointer:
    """Checkpoints the chain in the store: after every run that added entries, and at
    least every ``checkpoint_seconds`` whatever happened (so a checkpoint's absence
    for longer says something too)."""

    def __init__(self, settings: AuditSettings, store: Store) -> None:
        if settings.signing_key_path is None or settings.checkpoint_dir is None:
            raise ValueError("checkpoints need WALKIN_AUDIT__SIGNING_KEY_PATH and WALKIN_AUDIT__CHECKPOINT_DIR")
        self._key = load_private_key(settings.signing_key_path)
        self._folder = settings.checkpoint_dir
        self._every = timedelta(seconds=settings.checkpoint_seconds)
        self._store = store
        self.last: Checkpoint | None = None
        self._last_at: datetime | None = None

    def write_now(self, now: datetime) -> Checkpoint:
        """Sign and write the chain's head as it is now."""
        with self._store.connection_read() as conn:
            seq, hash_ = head(conn)
        # seq counts from 1 without gaps: the chain up to it holds seq entries.
        self.last = sign(self._key, seq=seq, hash=hash_, at=now, count=seq)
        write(self._folder, self.last)
        self._last_at = now
        return self.last

    def after(self, now: datetime, *, ran: bool) -> Checkpoint | None:
        """A checkpoint if one is due: ``ran`` (runs just ended) and the chain grew
        since the last one, or ``checkpoint_seconds`` have gone by."""
        if self._last_at is None or now - self._last_at >= self._every:
            return self.write_now(now)
        if not ran:
            return None
        with self._store.connection_read() as conn:
            seq, _ = head(conn)
        if self.last is not None and seq == self.last.seq:
            return None
        return self.write_now(now)
