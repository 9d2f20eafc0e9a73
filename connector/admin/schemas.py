"""The admin API's response bodies as JSON Schema (2020-12, as OpenAPI 3.1 uses it):
the ``components.schemas`` of the OpenAPI document. tests/connector/test_admin_api.py
validates every response it receives against the schema its operation declares, so a
field renamed in sync/ without its schema here fails a test."""

from __future__ import annotations

from typing import Any


def _nullable(kind: str, **extra: Any) -> dict:
    return {"type": [kind, "null"], **extra}


_DATE = {"type": "string", "format": "date"}
_INSTANT = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string"}
_INT = {"type": "integer"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None, closed: bool = True) -> dict:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _page(item: str) -> dict:
    return _object(
        {
            "total": _INT,
            "offset": _INT,
            "limit": _INT,
            "next_offset": _nullable("integer"),
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        }
    )


_OVERRIDE = _object(
    {
        "id": _INT,
        "person_id": _TEXT,
        "user_name": _nullable("string"),
        "entitlement": _TEXT,
        "effect": {"enum": ["grant", "deny"]},
        "until": _DATE,
        "reason": _TEXT,
        "by": _TEXT,
        "created_at": _INSTANT,
        "ended_at": _nullable("string", format="date-time"),
        "ended_by": _nullable("string"),
        "end_reason": _nullable("string"),
    }
)

_APPROVAL = _object(
    {
        "id": _INT,
        "person_id": _TEXT,
        "user_name": _nullable("string"),
        "entitlement": _TEXT,
        "location": _TEXT,
        "approved_on": _DATE,
        "approver": _TEXT,
        "recorded_by": _TEXT,
        "recorded_at": _INSTANT,
        "withdrawn_at": _nullable("string", format="date-time"),
        "withdrawn_by": _nullable("string"),
    }
)

_RUN_FIELDS = {
    "run_id": _INT,
    "kind": _TEXT,
    "dry_run": {"type": "boolean"},
    "status": _TEXT,
    "started_at": _INSTANT,
    "duration_seconds": _nullable("number"),
    "added": _nullable("integer"),
    "removed": _nullable("integer"),
    "held": _nullable("integer"),
    "failed": _nullable("integer"),
    "unresolved": _nullable("integer"),
    "released_by_run": _nullable("integer"),
    "release_requested_by": _nullable("string"),
    "detail": _nullable("string"),
}

RESPONSES: dict[str, dict] = {
    "Problem": _object(
        {"type": _TEXT, "title": _TEXT, "status": _INT, "detail": _TEXT},
        {
            "problems": {"type": "array"},
            "candidates": {"type": "array"},
        },
    ),
    "Me": _object(
        {
            "token_id": _INT,
            "name": _TEXT,
            "role": {"enum": ["viewer", "approver", "admin"]},
            "expires_at": _INSTANT,
            "approver_id": _nullable("string"),
            "locations": {"type": ["array", "null"], "items": _TEXT},
            "permissions": {"type": "array", "items": _TEXT},
        }
    ),
    "OpenApi": _object({"openapi": _TEXT, "info": {"type": "object"}, "paths": {"type": "object"}}, closed=False),
    "ReportList": _object(
        {
            "reports": {
                "type": "array",
                "items": _object(
                    {
                        "name": _TEXT,
                        "summary": _TEXT,
                        "scope": {"enum": ["people", "district"]},
                        "allowed": {"type": "boolean"},
                    }
                ),
            }
        }
    ),
    "Report": _object(
        {
            "report": _TEXT,
            "as_of": _DATE,
            "summary": {"type": "object"},
            "columns": {"type": "array", "items": _TEXT},
            "rows": {"type": "array", "items": {"type": "object"}},
            "total": _INT,
            "offset": _INT,
            "limit": _INT,
            "next_offset": _nullable("integer"),
        },
        {"person_id": _TEXT},
    ),
    "Explanation": _object(
        {
            "person_id": _TEXT,
            "person": _TEXT,
            "entitlement": _TEXT,
            "at": _DATE,
            "entitled": {"type": "boolean"},
            "decision": {"type": "object"},
            "requirements": {
                "type": "array",
                "items": _object(
                    {"code": _TEXT, "label": _TEXT, "status": {"enum": ["pass", "fail", "n/a"]}, "evidence": _TEXT}
                ),
            },
            "next_steps": _TEXT,
            "problems": {"type": "array", "items": _TEXT},
        }
    ),
    "SyncRequested": _object(
        {"person_id": _TEXT, "user_name": _nullable("string"), "requested_at": _INSTANT, "journal_seq": _INT}
    ),
    "Override": _OVERRIDE,
    "OverridePage": _page("Override"),
    "Approval": _APPROVAL,
    "ApprovalPage": _page("Approval"),
    "ApprovalList": _object({"items": {"type": "array", "items": {"$ref": "#/components/schemas/Approval"}}}),
    "Run": _object(
        {
            **_RUN_FIELDS,
            "entitlement": _TEXT,
            "held_removals": {"type": "array", "items": {"type": "object"}},
        }
    ),
    "ReleaseRequested": _object({"run_id": _INT, "entitlement": _TEXT, "held": _INT, "requested_by": _TEXT}),
}
