"""SCIM errors (RFC 7644 §3.12): one class per status/scimType, one body builder."""

from __future__ import annotations

from typing import ClassVar

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(Exception):
    """Base of every error answered with an RFC 7644 §3.12 body."""

    status: ClassVar[int] = 400
    scim_type: ClassVar[str | None] = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def to_body(self) -> dict:
        # RFC 7644 §3.12: "status" is a string.
        body = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


class BadRequest(ScimError):
    status = 400


class InvalidFilter(ScimError):
    status, scim_type = 400, "invalidFilter"


class TooMany(ScimError):
    status, scim_type = 400, "tooMany"


class Uniqueness(ScimError):
    status, scim_type = 409, "uniqueness"


class Mutability(ScimError):
    status, scim_type = 400, "mutability"


class InvalidSyntax(ScimError):
    status, scim_type = 400, "invalidSyntax"


class InvalidPath(ScimError):
    status, scim_type = 400, "invalidPath"


class NoTarget(ScimError):
    status, scim_type = 400, "noTarget"


class InvalidValue(ScimError):
    status, scim_type = 400, "invalidValue"


class InvalidVersion(ScimError):
    status, scim_type = 400, "invalidVers"


class Unauthorized(ScimError):
    status = 401


class Forbidden(ScimError):
    status = 403


class NotFound(ScimError):
    status = 404


class MethodNotAllowed(ScimError):
    status = 405


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413


class UnsupportedMediaType(ScimError):
    status = 415


class NotImplementedFeature(ScimError):
    status = 501
