"""Request shapes Microsoft Entra ID sends, as recorded in
``shared/docs/entra-scim.md``: the default form and the ``aadOptscim062020`` form."""

from __future__ import annotations

import json

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ADSCIM_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def create_user(user_name: str, external_id: str, *, legacy: bool = False) -> dict:
    """POST /Users as Entra sends it; ``legacy`` adds the nulls and the malformed
    enterprise URN of older payloads."""
    body = {
        "schemas": [CORE, ENTERPRISE],
        "externalId": external_id,
        "userName": user_name,
        "active": True,
        "displayName": "Barbara Jensen",
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Barbara Jensen", "familyName": "Jensen", "givenName": "Barbara"},
        "roles": [],
        ENTERPRISE: {"employeeNumber": "701984", "department": "Counseling"},
        WALKIN: {"jobCode": "OP01", "locationCode": "0123", "assignmentStartDate": "2024-08-01"},
    }
    if legacy:
        body["schemas"].append("urn:ietf:params:scim:schemas:extension:enterprise:2.0User")
        body["urn:ietf:params:scim:schemas:extension:enterprise:2.0User"] = {"costCenter": None}
        body["nickName"] = None
        body["title"] = None
        body["phoneNumbers"] = None
    return body


def patch(*operations: dict, with_id: str | None = None) -> dict:
    body: dict = {"schemas": [PATCH], "Operations": list(operations)}
    if with_id:
        body["id"] = with_id  # seen from Entra: a top-level id in the PatchOp body
    return body


def op(name: str, path: str | None, value=None, *, flag: bool) -> dict:
    """One operation; the default form capitalises the op, the flag form does not."""
    out: dict = {"op": name.lower() if flag else name.capitalize()}
    if path is not None:
        out["path"] = path
    if value is not None:
        out["value"] = value
    return out


def disable(flag: bool) -> dict:
    # Entra sends active as the string "False" by default, a boolean with the flag.
    return patch(op("replace", "active", False if flag else "False", flag=flag))


def create_group(display_name: str, external_id: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", ADSCIM_GROUP],
        "externalId": external_id,
        "displayName": display_name,
        "meta": {"resourceType": "Group"},
    }


def add_members(ids: list[str], flag: bool) -> dict:
    return patch(op("add", "members", [{"$ref": None, "value": i} for i in ids], flag=flag))


def remove_members(ids: list[str], flag: bool) -> dict:
    if flag:
        return patch(*[op("remove", f'members[value eq "{i}"]', flag=True) for i in ids])
    return patch(op("remove", "members", [{"$ref": None, "value": i} for i in ids], flag=False))


def filter_query(expr: str) -> str:
    """Entra's validator sends spaces as '+'."""
    return "filter=" + expr.replace(" ", "+").replace('"', "%22")


def dumps(body: dict) -> str:
    return json.dumps(body)
