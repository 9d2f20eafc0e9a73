"""SCIM errors (RFC 7644 §3.12): one class per status/scimType, one body builder."""

from __future__ import annotations

from typing import ClassVar

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict:
    """The RFC 7644 §3.12 error body: of every :class:`ScimError`, and of the errors
    answered without one (gunicorn's own rejections, the bare 500)."""
    # RFC 7644 §3.12: "status" is a string.
    body = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


class ScimError(Exception):
    """Base of every error answered with an RFC 7644 §3.12 body."""

    status: ClassVar[int] = 400
    scim_type: ClassVar[str | None] = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def to_body(self) -> dict:
        return error_body(self.status, self.detail, self.scim_type)


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


class Unauthorized(ScimError):
    status = 401


class NotFound(ScimError):
    status = 404


class MethodNotAllowed(ScimError):
    status = 405


class PreconditionFailed(ScimError):
    status = 412


class PayloadTooLarge(ScimError):
    status = 413
