"""Discovery endpoints (RFC 7644 §4): exactly what this service supports."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from connector.scim.errors import NotFound
from connector.scim.schema import RESOURCE_KINDS, SCHEMAS, Urn

from .http import base_url, scim_response

bp = Blueprint("discovery", __name__)


def _list(resources: list[dict]) -> Response:
    return scim_response(
        {
            "schemas": [Urn.LIST.value],
            "totalResults": len(resources),
            "startIndex": 1,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }
    )


@bp.get("/ServiceProviderConfig")
def service_provider_config() -> Response:
    settings = current_app.config["WALKIN_SETTINGS"]
    return scim_response(
        {
            "schemas": [Urn.SPC.value],
            "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": settings.scim.max_page_size},
            "changePassword": {"supported": False},
            "sort": {"supported": True},
            "etag": {"supported": True},
            "authenticationSchemes": [
                {
                    "type": "oauthbearertoken",
                    "name": "Bearer token",
                    "description": "A long-lived bearer token in the Authorization header (Entra's 'Secret Token').",
                    "primary": True,
                }
            ],
            "meta": {"resourceType": "ServiceProviderConfig", "location": f"{base_url()}/ServiceProviderConfig"},
        }
    )


@bp.get("/ResourceTypes")
def resource_types() -> Response:
    base = base_url()
    return _list([k.to_dict(f"{base}/ResourceTypes/{k.name}") for k in RESOURCE_KINDS.values()])


@bp.get("/ResourceTypes/<name>")
def resource_type(name: str) -> Response:
    kind = RESOURCE_KINDS.get(name)
    if kind is None:
        raise NotFound(f"no resource type {name}")
    return scim_response(kind.to_dict(f"{base_url()}/ResourceTypes/{kind.name}"))


@bp.get("/Schemas")
def schemas() -> Response:
    base = base_url()
    return _list([s.to_dict(f"{base}/Schemas/{s.id}") for s in SCHEMAS.values()])


@bp.get("/Schemas/<path:schema_id>")
def schema(schema_id: str) -> Response:
    found = SCHEMAS.get(schema_id)
    if found is None:
        raise NotFound(f"no schema {schema_id}")
    return scim_response(found.to_dict(f"{base_url()}/Schemas/{found.id}"))
