"""Settings of the audit chain's signed checkpoints (the ``audit`` section of
:class:`connector.settings.Settings`, ``WALKIN_AUDIT__…``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator


class AuditSettings(BaseModel):
    """Where the chain's checkpoints are signed and kept (sync/checkpoints.py).
    Neither set: no checkpoints are written (``walkin audit verify`` still checks
    the chain itself)."""

    signing_key_path: Path | None = None
    """An Ed25519 private key, PEM (PKCS#8, unencrypted; ``walkin audit keygen``
    makes one): signs every checkpoint. Readable by the worker only (mode 0600);
    its public half is what an auditor verifies with."""

    checkpoint_dir: Path | None = None
    """The folder the checkpoints are written to, one new file each, never
    overwritten: outside the database, ideally on storage the database's owner
    cannot rewrite (another host's mount, a WORM bucket's sync, ``chattr +a``)."""

    checkpoint_seconds: int = Field(default=3600, ge=60)
    """The worker writes a checkpoint after every run that added entries, and at
    least this often otherwise."""

    @field_validator("signing_key_path")
    @classmethod
    def _check_key(cls, value: Path | None) -> Path | None:
        """A readable Ed25519 private key: a wrong path stops start-up, not the first run."""
        if value is None:
            return None
        from .checkpoints import KeyProblem, load_private_key

        try:
            load_private_key(value)
        except KeyProblem as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("checkpoint_dir")
    @classmethod
    def _check_dir(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_dir():
            raise ValueError(f"{value} is not a folder")
        return value

    @model_validator(mode="after")
    def _both_or_neither(self) -> AuditSettings:
        if (self.signing_key_path is None) != (self.checkpoint_dir is None):
            missing = "signing_key_path" if self.signing_key_path is None else "checkpoint_dir"
            raise ValueError(f"checkpoints need a signing key and a folder: set WALKIN_AUDIT__{missing.upper()} too")
        return self

    @property
    def checkpoints(self) -> bool:
        """Whether checkpoints are written."""
        return self.signing_key_path is not None and self.checkpoint_dir is not None
