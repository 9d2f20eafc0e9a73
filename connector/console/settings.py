"""The admin console's settings (``WALKIN_CONSOLE__…``): the district's OpenID Connect
provider (Entra ID), how its claims map to walkin's roles, and the session's limits."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

from connector.admin.roles import AdminRole


class ConsoleSettings(BaseModel):
    """Sign-in with OpenID Connect (authorization code + PKCE). The console is off
    until ``issuer``, ``client_id`` and ``session_secret`` are set."""

    issuer: str | None = None
    """The provider's issuer URL; its ``/.well-known/openid-configuration`` is read
    (Entra: ``https://login.microsoftonline.com/TENANT/v2.0``)."""
    client_id: str | None = None
    client_secret: SecretStr | None = None
    session_secret: SecretStr | None = None
    """Signs the session cookie: 32 random bytes or more, the same in every process."""
    role_claims: dict[str, AdminRole] = Field(
        default_factory=lambda: {
            "Walkin.Admin": AdminRole.ADMIN,
            "Walkin.HelpDesk": AdminRole.VIEWER,
            "Walkin.Approver": AdminRole.APPROVER,
        }
    )
    """Values of the ID token's ``roles`` (Entra app roles) or ``groups`` claim → walkin's role."""
    username_claim: str = "preferred_username"
    """The claim that names the person's SCIM userName (an approver's own record)."""
    idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    absolute_hours: int = Field(default=10, ge=1, le=7 * 24)
    cookie_secure: bool = True
    """Send the session cookie over HTTPS only (browsers treat http://localhost as secure too)."""

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.client_id and self.session_secret)
