"""Access tokens for Microsoft Graph (OAuth 2.0 client credentials through msal).

:class:`MsalTokens` asks msal's ``ConfidentialClientApplication`` for an app-only
token (``acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])``).
msal keeps the token in its in-memory cache and fetches a new one shortly before it
expires, so calling :meth:`MsalTokens.token` before every request costs nothing.
:meth:`MsalTokens.token` with ``refresh=True`` drops the cached token first: Graph
answers 401 ``InvalidAuthenticationToken`` when a token was revoked or expired early.

Failures are translated here: a refusal (msal returns ``error`` and
``error_description`` instead of ``access_token``, or cannot load the certificate) is
:class:`TargetAuthError`; the sign-in service not answering is
:class:`TargetUnavailable`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

import jwt
import msal
import requests

from .base import TargetAuthError, TargetUnavailable
from .graph_settings import GraphSettings

log = logging.getLogger(__name__)


class TokenProvider(Protocol):
    """Where the target gets its bearer tokens (tests inject a fake)."""

    def token(self, *, refresh: bool = False) -> str:
        """A valid access token; with ``refresh``, not the one handed out before.

        :raises TargetAuthError: the credentials were refused.
        :raises TargetUnavailable: the sign-in service could not be reached.
        """


def client_credential(settings: GraphSettings) -> str | dict[str, str]:
    """msal's ``client_credential``: the secret, or the certificate's key and thumbprint."""
    if settings.certificate is None:  # GraphSettings then holds a client_secret
        return settings.client_secret.get_secret_value() if settings.client_secret else ""
    path = Path(settings.certificate.private_key_path)
    try:
        key = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetAuthError(f"cannot read the certificate's private key {path}: {exc}") from exc
    credential = {"private_key": key, "thumbprint": settings.certificate.thumbprint}
    if settings.certificate.passphrase is not None:
        credential["passphrase"] = settings.certificate.passphrase.get_secret_value()
    return credential


class MsalTokens:
    """App-only tokens from msal; the msal application is built on first use."""

    def __init__(self, settings: GraphSettings, *, app: Any | None = None) -> None:
        """:param app: an msal ``ConfidentialClientApplication`` (or anything with its
        ``acquire_token_for_client`` and ``token_cache``) to use instead of building one."""
        self.settings = settings
        self._app = app

    def _application(self) -> Any:
        if self._app is None:
            s = self.settings
            try:
                self._app = msal.ConfidentialClientApplication(
                    s.client_id,
                    client_credential=client_credential(s),
                    authority=s.authority,
                    # The authority is configured, not user input: skip the instance
                    # discovery request msal would otherwise send for unknown hosts.
                    instance_discovery=False,
                    timeout=(s.connect_timeout, s.read_timeout),
                )
            except requests.RequestException as exc:
                raise TargetUnavailable(f"cannot reach {s.authority_host}: {exc}") from exc
            except (ValueError, TypeError, jwt.PyJWTError) as exc:
                # msal: the tenant's OpenID configuration was refused, or the key is unusable
                raise TargetAuthError(f"cannot use the credentials for {s.authority}: {exc}") from exc
        return self._app

    def token(self, *, refresh: bool = False) -> str:
        app = self._application()
        if refresh:
            cache = app.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(entry)
        try:
            result = app.acquire_token_for_client(scopes=[self.settings.scope])
        except requests.RequestException as exc:
            raise TargetUnavailable(f"cannot reach {self.settings.authority_host}: {exc}") from exc
        except (ValueError, TypeError, jwt.PyJWTError) as exc:  # msal or PyJWT cannot use the key
            raise TargetAuthError(f"cannot sign the token request: {exc}") from exc
        token = (result or {}).get("access_token")
        if not token:
            error = (result or {}).get("error", "no access_token")
            description = (result or {}).get("error_description", "")
            if error in ("temporarily_unavailable", "server_error"):
                raise TargetUnavailable(f"{self.settings.authority_host} answered {error}: {description}")
            raise TargetAuthError(f"{error}: {description}".rstrip(": "))
        return token
