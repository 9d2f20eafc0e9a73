"""The admin API's errors: RFC 9457 problem details (``application/problem+json``),
translated here, once, from what the layers below raise — a lever's refusal, an
unknown entitlement, a person named ambiguously, a bad mapping upload, a body or
query that does not validate. Nothing else in the admin API builds an error body."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Blueprint, Response
from pydantic import ValidationError

from connector.jsontext import dumps_utf8
from connector.scim.errors import ScimError
from mappings.loading import MappingError
from sync.levers import Conflict, Forbidden, Invalid, LeverError, NotFound
from sync.lookup import AmbiguousUser
from sync.reports import UnknownEntitlement

PROBLEM_JSON = "application/problem+json"


class ApiError(Exception):
    """An error the admin API answers with its own status."""

    status = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(ApiError):
    status = 400


class Unauthenticated(ApiError):
    """No admin token, or one that is unknown, expired or revoked."""

    status = 401


class Refused(ApiError):
    """The token's role does not allow this, or the person is outside an approver's locations."""

    status = 403


class Missing(ApiError):
    status = 404


def problem(status: int, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem: ``type`` about:blank, so ``title`` is the status's phrase."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    response = Response(dumps_utf8(body), status=status, mimetype=PROBLEM_JSON)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="walkin-admin"'
    return response


_LEVER_STATUS: dict[type[LeverError], int] = {Invalid: 400, NotFound: 404, Conflict: 409, Forbidden: 403}


def _lever_status(error: LeverError) -> int:
    for kind, status in _LEVER_STATUS.items():
        if isinstance(error, kind):
            return status
    return 400


def _validation_problems(error: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(part) for part in item["loc"]) or "(body)", "problem": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]


def install(blueprint: Blueprint) -> None:
    """Translate, on the admin blueprint, every error its handlers may meet."""

    @blueprint.errorhandler(ApiError)
    def _api(error: ApiError) -> Response:
        return problem(error.status, error.detail, **error.extra)

    @blueprint.errorhandler(LeverError)
    def _lever(error: LeverError) -> Response:  # a lever refused: nothing was changed
        return problem(_lever_status(error), str(error))

    @blueprint.errorhandler(UnknownEntitlement)
    def _entitlement(error: UnknownEntitlement) -> Response:
        return problem(400, str(error))

    @blueprint.errorhandler(AmbiguousUser)
    def _ambiguous(error: AmbiguousUser) -> Response:
        candidates = [{"id": c.id, "user_name": c.user_name, "external_id": c.external_id} for c in error.candidates]
        return problem(409, f"'{error.user}' names {len(candidates)} users; give the id of one", candidates=candidates)

    @blueprint.errorhandler(MappingError)
    def _mapping(error: MappingError) -> Response:
        return problem(400, "the mapping is not valid", problems=error.problems[:100])

    @blueprint.errorhandler(ValidationError)
    def _invalid(error: ValidationError) -> Response:
        return problem(400, "the request is not valid", problems=_validation_problems(error))

    @blueprint.errorhandler(ScimError)
    def _body(error: ScimError) -> Response:  # connector.api.http.json_body's: not JSON, too large
        return problem(error.status, error.detail)
