"""The admin API's operations, each declared once — method, path, the permission it
needs, its query and body models, its responses — by :meth:`Api.operation`. The same
declaration registers the Flask route, is checked by :func:`authorize` before every
request, and becomes the OpenAPI document (connector/admin/openapi.py): a route
cannot exist undescribed, nor be reached without its permission being checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, g, request
from pydantic import BaseModel
from werkzeug.routing import IntegerConverter

from connector.api.http import json_body
from connector.metrics import AuthFailure, Credential, auth_failed

from .errors import BadRequest, Refused, Unauthenticated
from .roles import Caller, Needs, Permission
from .tokens import authenticate

#: The largest id a path may name: overrides, runs and tokens have 32-bit ids on
#: PostgreSQL (INTEGER; a run a minute would take 4,000 years to pass it).
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<id:name>``: a row id, 1 to :data:`MAX_ID` — a larger one names nothing (404)
    instead of overflowing the database driver."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        super().__init__(url_map, min=1, max=MAX_ID)


@dataclass(frozen=True)
class Operation:
    name: str
    method: str
    rule: str
    """The Flask rule (``/runs/<id:run_id>/release``)."""
    needs: Needs
    summary: str
    description: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    responses: dict[int, str] = field(default_factory=dict)
    """Status → the name of the response's schema (connector/admin/schemas.py)."""
    csv: bool = False
    """Also answers ``text/csv`` (``format=csv``)."""
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Path parameters that take one of a few values (a report's name)."""

    def permission(self, view_args: dict) -> Permission:
        return self.needs(view_args) if callable(self.needs) else self.needs


class Api:
    """The admin blueprint and the operations declared on it."""

    def __init__(self, blueprint: Blueprint) -> None:
        self.blueprint = blueprint
        self.operations: dict[str, Operation] = {}

    def operation(
        self,
        method: str,
        rule: str,
        *,
        needs: Needs,
        responses: dict[int, str],
        query: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        csv: bool = False,
        choices: dict[str, tuple[str, ...]] | None = None,
    ) -> Callable:
        """Declare the decorated function as an operation. It is called with the
        path's arguments and, when declared, ``query=`` and ``body=`` validated."""

        def register(view: Callable) -> Callable:
            doc = (view.__doc__ or view.__name__).strip()
            summary, _, rest = doc.partition("\n\n")
            op = Operation(
                view.__name__,
                method,
                rule,
                needs,
                " ".join(summary.split()),
                rest.strip(),
                query,
                body,
                responses,
                csv,
                choices or {},
            )
            self.operations[op.name] = op

            def handle(**view_args: Any) -> Any:
                if op.query is not None:
                    view_args["query"] = _query(op.query)
                elif request.args:
                    raise BadRequest(f"{method} {request.path} takes no query parameters")
                if op.body is not None:
                    view_args["body"] = op.body.model_validate(json_body())
                return view(**view_args)

            self.blueprint.add_url_rule(rule, endpoint=op.name, view_func=handle, methods=[method])
            return view

        return register

    def authorize(self) -> None:
        """Before every admin request: the token, then the route's permission for its
        role, then (for an approver) the locations it reaches. Fails closed: a route
        with no declared operation is refused."""
        caller = _caller()
        endpoint = (request.endpoint or "").rpartition(".")[2]
        op = self.operations.get(endpoint)
        if op is None:
            raise Refused("this route declares no permission")
        permission = op.permission(request.view_args or {})
        if not caller.may(permission):
            raise Refused(f"a {caller.role.value} token may not do this (it needs the '{permission.value}' permission)")
        g.admin_caller = caller


def caller() -> Caller:
    """The request's caller, as :meth:`Api.authorize` found it."""
    return g.admin_caller


def _caller() -> Caller:
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        auth_failed(Credential.ADMIN, AuthFailure.MISSING)
        raise Unauthenticated("an admin API token is required (Authorization: Bearer wka_…)")
    service = current_app.extensions["walkin.admin"]
    with service.store.session_read() as session:
        found = authenticate(session, presented.strip(), service.clock.now())
        if found is None:
            auth_failed(Credential.ADMIN, AuthFailure.INVALID)
            raise Unauthenticated("the admin API token is not valid (unknown, expired or revoked)")
        return service.scoped(session, found)


def _query(model: type[BaseModel]) -> BaseModel:
    repeated = sorted(key for key, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise BadRequest(f"query parameter {', '.join(repeated)} given more than once")
    return model.model_validate(request.args.to_dict())
