"""``/Users`` and ``/Groups`` (RFC 7644 §3.3–§3.6): thin handlers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from connector.provisioning import Provisioning, Query
from connector.scim import render
from connector.scim.errors import InvalidSyntax, InvalidValue
from connector.scim.schema import GROUP, USER, ResourceKind, Urn

from .http import base_url, json_body, no_content, scim_response

bp = Blueprint("resources", __name__)


def service() -> Provisioning:
    return current_app.extensions["walkin.provisioning"]


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise InvalidValue(f"'{name}' must be an integer, got {value!r}")
    try:
        return max(-(2**31), min(int(value), 2**31))
    except (TypeError, ValueError):
        raise InvalidValue(f"'{name}' must be an integer, got {value!r}") from None


def _str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if not isinstance(value, str):
        raise InvalidValue(f"'{name}' must be a string")
    return value


def _args() -> dict[str, str]:
    """The query parameters (first value of each) as a plain dict: looking up a
    missing key in Werkzeug's MultiDict raises and catches an HTTP exception."""
    return request.args.to_dict()


def _query(params: Any) -> Query:
    get = params.get
    return Query(
        filter=_str(get("filter"), "filter"),
        start_index=_int(get("startIndex"), "startIndex") or 1,
        count=_int(get("count"), "count"),
        sort_by=_str(get("sortBy"), "sortBy"),
        sort_order=_str(get("sortOrder"), "sortOrder"),
        attributes=_str(get("attributes"), "attributes"),
        excluded=_str(get("excludedAttributes"), "excludedAttributes"),
    )


def _list(kinds: tuple[ResourceKind, ...], query: Query) -> Response:
    page = service().search(kinds, query, base_url())
    return scim_response(
        {
            "schemas": [Urn.LIST.value],
            "totalResults": page.total,
            "startIndex": page.start_index,
            "itemsPerPage": len(page.resources),
            "Resources": page.resources,
        }
    )


def _projection(kind: ResourceKind):
    args = _args()
    return render.projection(kind, args.get("attributes"), args.get("excludedAttributes"))


def _get(kind: ResourceKind, written) -> Response:
    match = request.headers.get("If-None-Match")
    if (match and written.etag in [t.strip() for t in match.split(",")]) or match == "*":
        return Response(status=304, headers={"ETag": written.etag})
    return scim_response(written.resource, etag=written.etag)


def _created(written) -> Response:
    return scim_response(written.resource, 201, etag=written.etag, location=written.resource["meta"]["location"])


@bp.post("/.search")
def search_all() -> Response:
    return _list((USER, GROUP), _query(_search_body()))


# ------------------------------------------------------------------ Users


@bp.get("/Users")
def list_users() -> Response:
    return _list((USER,), _query(_args()))


@bp.post("/Users/.search")
def search_users() -> Response:
    return _list((USER,), _query(_search_body()))


@bp.post("/Users")
def create_user() -> Response:
    return _created(service().create_user(json_body(), base_url()))


@bp.get("/Users/<user_id>")
def get_user(user_id: str) -> Response:
    return _get(USER, service().get_user(user_id, base_url(), _projection(USER)))


@bp.put("/Users/<user_id>")
def replace_user(user_id: str) -> Response:
    written = service().replace_user(user_id, json_body(), base_url(), request.headers.get("If-Match"))
    return scim_response(written.resource, etag=written.etag)


@bp.patch("/Users/<user_id>")
def patch_user(user_id: str) -> Response:
    written = service().patch_user(user_id, json_body(), base_url(), request.headers.get("If-Match"), _projection(USER))
    return scim_response(written.resource, etag=written.etag)


@bp.delete("/Users/<user_id>")
def delete_user(user_id: str) -> Response:
    service().delete_user(user_id, request.headers.get("If-Match"))
    return no_content()


# ----------------------------------------------------------------- Groups


@bp.get("/Groups")
def list_groups() -> Response:
    return _list((GROUP,), _query(_args()))


@bp.post("/Groups/.search")
def search_groups() -> Response:
    return _list((GROUP,), _query(_search_body()))


@bp.post("/Groups")
def create_group() -> Response:
    return _created(service().create_group(json_body(), base_url()))


@bp.get("/Groups/<group_id>")
def get_group(group_id: str) -> Response:
    return _get(GROUP, service().get_group(group_id, base_url(), _projection(GROUP)))


@bp.put("/Groups/<group_id>")
def replace_group(group_id: str) -> Response:
    written = service().replace_group(group_id, json_body(), base_url(), request.headers.get("If-Match"))
    return scim_response(written.resource, etag=written.etag)


@bp.patch("/Groups/<group_id>")
def patch_group(group_id: str) -> Response:
    # 204 unless the client asks for the resource (RFC 7644 §3.5.2; Entra advises 204).
    wants = "attributes" in request.args or "excludedAttributes" in request.args
    written = service().patch_group(
        group_id, json_body(), base_url(), request.headers.get("If-Match"), _projection(GROUP) if wants else None
    )
    if written.resource:
        return scim_response(written.resource, etag=written.etag)
    return no_content(written.etag)


@bp.delete("/Groups/<group_id>")
def delete_group(group_id: str) -> Response:
    service().delete_group(group_id, request.headers.get("If-Match"))
    return no_content()


def _search_body() -> dict:
    """A SearchRequest body (RFC 7644 §3.4.3)."""
    body = json_body()
    if not isinstance(body, dict):
        raise InvalidSyntax("a search request must be a JSON object")
    schemas = body.get("schemas")
    if schemas is not None and Urn.SEARCH.value not in (schemas if isinstance(schemas, list) else []):
        raise InvalidSyntax(f"'schemas' must contain {Urn.SEARCH.value}")
    return body
