"""The admin API's OpenAPI 3.1 document, built from the operations as declared
(operations.py), their pydantic query and body models, and the response schemas
(schemas.py): the document cannot drift from the routes."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from pydantic import BaseModel

from . import PREFIX
from .operations import MAX_ID, Api, Operation
from .roles import GRANTS, Permission
from .schemas import RESPONSES

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "The request is not valid (a parameter, the body, an unknown entitlement).",
    401: "No admin API token, or one that is unknown, expired or revoked.",
    403: "The token's role does not allow this, or the person is outside an approver's locations.",
    404: "Nothing by that name or id.",
    409: "The request contradicts the current state (ended already, not held, named ambiguously).",
}
_DESCRIBED = {200: "OK", 201: "Created", 202: "Accepted: the worker acts on it within seconds"}


def template(rule: str, choices: dict[str, tuple[str, ...]] | None = None) -> tuple[str, list[dict]]:
    """The OpenAPI path template of a Flask rule, and its path parameters."""
    params = []
    for converter, name in _PARAM.findall(rule):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 1, "maximum": MAX_ID} if converter == "id" else {"type": "string"}
        )
        if choices and name in choices:
            schema["enum"] = list(choices[name])
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _PARAM.sub(r"{\2}", rule), params


def _roles(permission: Permission) -> str:
    return ", ".join(role.value for role, grants in GRANTS.items() if permission in grants)


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict]:
    schema = model.model_json_schema(ref_template=_REF)
    schemas.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            param["description"] = description
        out.append(param)
    return out


def _operation(op: Operation, schemas: dict[str, Any]) -> dict:
    _, path_params = template(op.rule, op.choices)
    if isinstance(op.needs, Permission):
        who = f"Needs the '{op.needs.value}' permission (roles: {_roles(op.needs)})."
    else:
        who = (
            "The access reports (members, pending, waiting, expiring) need 'read' "
            f"(roles: {_roles(Permission.READ)}); the others 'read_district' "
            f"(roles: {_roles(Permission.READ_DISTRICT)})."
        )
    entry: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "description": "\n\n".join(part for part in (op.description, who) if part),
        "x-walkin-permission": op.needs.value if isinstance(op.needs, Permission) else "read or read_district",
        "parameters": path_params + (_query_parameters(op.query, schemas) if op.query else []),
        "responses": {},
    }
    if op.body is not None:
        schema = op.body.model_json_schema(ref_template=_REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[op.body.__name__] = schema
        entry["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=op.body.__name__)}}},
        }
    for status, name in op.responses.items():
        content = {"application/json": {"schema": {"$ref": _REF.format(model=name)}}}
        if op.csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        entry["responses"][str(status)] = {"description": _DESCRIBED[status], "content": content}
    problem = {"application/problem+json": {"schema": {"$ref": _REF.format(model="Problem")}}}
    for status, description in _ERRORS.items():
        entry["responses"][str(status)] = {"description": description, "content": problem}
    return entry


@cache
def document(api: Api) -> dict:
    """The document (built once per app: the operations do not change after start-up)."""
    schemas: dict[str, Any] = dict(RESPONSES)
    paths: dict[str, dict] = {}
    for op in api.operations.values():
        path, _ = template(op.rule)
        paths.setdefault(PREFIX + path, {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "walkin admin API",
            "version": "1",
            "description": (
                "Who has access to IC Walk-in Scheduling and why, what is late, who waits for whom, what expires; "
                "overrides, approval records, what-if, sync one person now, release held removals. "
                "Dates are YYYY-MM-DD (district days); instants ISO 8601 in UTC. Errors are RFC 9457 problem details."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"adminToken": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin API token from `walkin admin-token create` (not a SCIM token).",
                }
            },
        },
    }
