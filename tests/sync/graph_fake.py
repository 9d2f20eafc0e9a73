"""A stateful fake of the Microsoft Graph endpoints the Entra target uses, answering
with Graph's real shapes, plus the Entra sign-in endpoints msal calls.

:class:`FakeGraph` holds users and groups and answers ``handle(method, url, headers,
body)`` like Graph would: paged member lists with an opaque ``@odata.nextLink``,
``$batch`` answers ``{"responses": [{"id", "status", "headers", "body"}]}``, the 400
"One or more added object references already exist …" of a PATCH holding a present
member, 404 ``Request_ResourceNotFound`` naming the missing object — and, for a DELETE
of a member reference the group does not hold, naming the group, exactly as when the
group itself is gone (Graph's real answer: microsoftgraph/microsoft-graph-docs#9191,
"it says groups itself does not exist") —, error bodies
``{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}``,
401 ``InvalidAuthenticationToken`` for an expired token, and 429 + ``Retry-After``
beyond a write budget. Faults are queued with :meth:`FakeGraph.fail` (for a request
inside a ``$batch`` or for the ``POST /$batch`` itself).

:meth:`FakeGraph.register` serves it through ``responses``; the bench serves
:meth:`FakeGraph.handle` over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit

ROOT = "https://graph.test/v1.0"
LOGIN = "https://login.microsoftonline.com"
TENANT = "6b2d7f52-93a4-4c5e-9f7e-1f0e8d4a2b11"
ALREADY = "One or more added object references already exist for the following modified properties: 'members'."

_USER_FILTER = re.compile(r"^(\w+) (eq|in) (.+)$")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


@dataclass
class Reply:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str, **headers: str) -> Reply:
    """A Graph error answer."""
    inner = {"date": "2026-11-29T19:00:00", "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}
    return Reply(status, {"error": {"code": code, "message": message, "innerError": inner}}, headers)


def not_found(object_id: str) -> Reply:
    return error(404, "Request_ResourceNotFound",
                 f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present.")


def throttled(seconds: int = 2) -> Reply:
    return error(429, "TooManyRequests", "Too many requests. Please try again later.", **{"Retry-After": str(seconds)})


def unavailable(status: int = 503) -> Reply:
    return error(status, "serviceNotAvailable", "The service is temporarily unavailable. Please retry later.")


@dataclass
class Fault:
    method: str
    pattern: re.Pattern
    reply: Reply | Callable[[], Reply]
    times: int
    after: int = 0


class FakeGraph:
    """Users and groups of a tenant behind Graph's group-membership endpoints."""

    def __init__(self, *, root: str = ROOT, page_size: int = 100, write_limit: int | None = None,
                 window: float = 150.0, clock: Callable[[], float] | None = None) -> None:
        self.root = root.rstrip("/")
        self.page_size = page_size
        self.users: dict[str, dict[str, str]] = {}  # object id → properties
        self.groups: dict[str, set[str]] = {}
        self.hidden: dict[str, int] = {}  # object id → answers still "does not exist" (replication lag)
        self.tokens: set[str] = set()
        self.issued = 0
        self.token_requests: list[dict[str, str]] = []  # form fields of each token request
        self.faults: list[Fault] = []
        self.doomed: dict[str, int] = {}  # group id → member removals it still answers before it is deleted
        self.log: list[tuple[str, str]] = []  # (method, path) of every request and batch item handled
        self.write_limit, self.window, self.clock = write_limit, window, clock
        self._writes: deque[float] = deque()
        self.throttled = 0
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ arranging

    def add_user(self, upn: str, *, employee_id: str | None = None, object_id: str | None = None) -> str:
        object_id = object_id or str(uuid.uuid4())
        self.users[object_id] = {"id": object_id, "userPrincipalName": upn,
                                 **({"employeeId": employee_id} if employee_id else {})}
        return object_id

    def add_group(self, members: set[str] | None = None, *, group_id: str | None = None) -> str:
        group_id = group_id or str(uuid.uuid4())
        self.groups[group_id] = set(members or ())
        return group_id

    def delete_group_after(self, gid: str, removals: int) -> None:
        """Delete group ``gid`` (an administrator, mid-run) once ``removals`` more member
        removals from it have been answered; those after find no group."""
        self.doomed[gid] = removals

    def fail(self, method: str, path: str, reply: Reply | Callable[[], Reply], times: int = 1, *,
             after: int = 0) -> None:
        """Answer ``times`` requests ``method`` whose path matches ``path`` (a regex) with
        ``reply``, once ``after`` such requests have been answered normally."""
        self.faults.append(Fault(method, re.compile(path), reply, times, after))

    def issue_token(self) -> str:
        self.issued += 1
        token = f"token-{self.issued}"
        self.tokens.add(token)
        return token

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def calls(self, method: str, path: str = "") -> int:
        """Requests and batch items handled with ``method`` whose path contains ``path``."""
        return sum(1 for m, p in self.log if m == method and path in p)

    # ------------------------------------------------------------------ answering

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes | str | None) -> Reply:
        with self.lock:
            auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
            if auth.removeprefix("Bearer ") not in self.tokens:
                reply = error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
                reply.headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
                return reply
            parts = urlsplit(url)
            path = parts.path.removeprefix(urlsplit(self.root).path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            payload = json.loads(body) if body else None
            if method == "POST" and path == "/$batch":
                self.log.append((method, path))
                return self._fault(method, path) or self._batch(payload or {}, headers)
            return self._one(method, path, query, headers, payload)

    def _fault(self, method: str, path: str) -> Reply | None:
        """The queued fault's answer to this request, if one is due."""
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.pattern.search(path):
                if fault.after > 0:
                    fault.after -= 1
                    return None
                fault.times -= 1
                return fault.reply() if callable(fault.reply) else fault.reply
        return None

    def _one(self, method: str, path: str, query: dict, headers: dict, payload: dict | None) -> Reply:
        self.log.append((method, path))
        faulted = self._fault(method, path)
        if faulted is not None:
            return faulted
        if (method in ("PATCH", "DELETE") or (method == "POST" and path.endswith("/$ref"))) and self._over_budget():
            self.throttled += 1
            return throttled(max(1, int(self._writes[0] + self.window - self.clock()) + 1))
        for route_method, pattern, handler in self._routes():
            match = pattern.fullmatch(path)
            if route_method == method and match:
                return handler(*match.groups(), query=query, headers=headers, payload=payload)
        return error(400, "BadRequest", f"Resource not found for the segment '{path}'.")

    def _routes(self):
        return [
            ("GET", re.compile(r"/groups/([^/]+)/members/microsoft\.graph\.user"), self._members),
            ("GET", re.compile(r"/groups/([^/]+)"), self._group),
            ("PATCH", re.compile(r"/groups/([^/]+)"), self._patch),
            ("POST", re.compile(r"/groups/([^/]+)/members/\$ref"), self._post_ref),
            ("DELETE", re.compile(r"/groups/([^/]+)/members/([^/]+)/\$ref"), self._delete),
            ("GET", re.compile(r"/users"), self._users),
        ]

    def _over_budget(self) -> bool:
        if self.write_limit is None or self.clock is None:
            return False
        now = self.clock()
        while self._writes and self._writes[0] <= now - self.window:
            self._writes.popleft()
        if len(self._writes) >= self.write_limit:
            return True
        self._writes.append(now)
        return False

    def _batch(self, payload: dict, headers: dict) -> Reply:
        requests = payload.get("requests", [])
        if len(requests) > 20:
            return error(400, "BadRequest", "Number of requests in a batch exceeds the limit of 20.")
        answers = []
        for item in requests:
            parts = urlsplit(item["url"])
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            reply = self._one(item["method"], parts.path, query, {**headers, **item.get("headers", {})},
                              item.get("body"))
            answer = {"id": item["id"], "status": reply.status,
                      "headers": {"Content-Type": "application/json", **reply.headers} if reply.body else reply.headers}
            if reply.body is not None:
                answer["body"] = reply.body
            answers.append(answer)
        answers.reverse()  # Graph does not promise the order of the answers
        return Reply(200, {"responses": answers})

    def _exists(self, object_id: str) -> bool:
        if self.hidden.get(object_id, 0) > 0:
            self.hidden[object_id] -= 1
            return False
        return object_id in self.users

    def _members(self, gid: str, *, query: dict, headers: dict, payload: object) -> Reply:
        if gid not in self.groups:
            return not_found(gid)
        members = sorted(self.groups[gid] & set(self.users))
        wanted = query.get("$filter")
        if wanted is not None:
            if headers.get("ConsistencyLevel") != "eventual" or query.get("$count") != "true":
                return error(400, "Request_UnsupportedQuery", "Unsupported Query.")
            ids = {v.replace("''", "'") for v in _LITERAL.findall(wanted)}
            members = [m for m in members if m in ids]
        top = min(int(query.get("$top", self.page_size)), 999)
        offset = int(base64.b64decode(query["$skiptoken"]).decode().split(":")[1]) if "$skiptoken" in query else 0
        page = {"@odata.context": f"{self.root}/$metadata#users(id)",
                "value": [{"@odata.type": "#microsoft.graph.user", "id": m} for m in members[offset:offset + top]]}
        if wanted is not None:
            page["@odata.count"] = len(members)
        if offset + top < len(members):
            token = base64.b64encode(f"RFNwdAIAAQAAA:{offset + top}".encode()).decode()
            again = {k: v for k, v in query.items() if k != "$skiptoken"} | {"$top": str(top), "$skiptoken": token}
            page["@odata.nextLink"] = (f"{self.root}/groups/{gid}/members/microsoft.graph.user?"
                                       + urlencode(again, quote_via=quote, safe="$'(),"))
        return Reply(200, page)

    def _group(self, gid: str, *, query: dict, headers: dict, payload: object) -> Reply:
        if gid not in self.groups:
            return not_found(gid)
        return Reply(200, {"@odata.context": f"{self.root}/$metadata#groups(id)/$entity", "id": gid})

    def _patch(self, gid: str, *, query: dict, headers: dict, payload: dict | None) -> Reply:
        if gid not in self.groups:
            return not_found(gid)
        refs = (payload or {}).get("members@odata.bind", [])
        if len(refs) > 20:
            return error(400, "Request_BadRequest", "The request exceeds the maximum of 20 members to add.")
        ids = [ref.rsplit("/", 1)[-1] for ref in refs]
        for object_id in ids:
            if not self._exists(object_id):
                return not_found(object_id)
        if any(object_id in self.groups[gid] for object_id in ids):
            return error(400, "Request_BadRequest", ALREADY)
        self.groups[gid].update(ids)
        return Reply(204)

    def _post_ref(self, gid: str, *, query: dict, headers: dict, payload: dict | None) -> Reply:
        if gid not in self.groups:
            return not_found(gid)
        object_id = str((payload or {}).get("@odata.id", "")).rsplit("/", 1)[-1]
        if not self._exists(object_id):
            return not_found(object_id)
        if object_id in self.groups[gid]:
            return error(400, "Request_BadRequest", ALREADY)
        self.groups[gid].add(object_id)
        return Reply(204)

    def _delete(self, gid: str, mid: str, *, query: dict, headers: dict, payload: object) -> Reply:
        if self.doomed.get(gid) == 0:
            del self.doomed[gid], self.groups[gid]
        if gid not in self.groups:
            return not_found(gid)
        if gid in self.doomed:
            self.doomed[gid] -= 1
        if mid not in self.groups[gid]:
            return not_found(gid)  # the group's id, not the member's: see the module doc
        self.groups[gid].discard(mid)
        return Reply(204)

    def _users(self, *, query: dict, headers: dict, payload: object) -> Reply:
        match = _USER_FILTER.match(query.get("$filter", ""))
        if not match or match[1] not in ("userPrincipalName", "employeeId"):
            return error(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified.")
        prop, operator, rest = match.groups()
        values = [v.replace("''", "'").casefold() for v in _LITERAL.findall(rest)]
        if operator == "in" and len(values) > 15:
            return error(400, "Request_UnsupportedQuery", "Too many child clauses specified in search filter "
                                                          "expression containing 'OR' operators: 16. Max allowed: 15.")
        rows = [u for u in self.users.values() if u.get(prop, "").casefold() in values]
        fields = ["id", *query.get("$select", "id").split(",")]
        return Reply(200, {"@odata.context": f"{self.root}/$metadata#users({query.get('$select', 'id')})",
                           "value": [{k: u.get(k) for k in dict.fromkeys(fields)} for u in rows]})

    # ------------------------------------------------------------------ serving

    def register(self, rsps, *, tenant: str = TENANT, login: str = LOGIN,
                 token_reply: Callable[[], tuple[int, dict]] | None = None) -> None:
        """Serve this fake and the tenant's sign-in endpoints through ``responses``;
        ``token_reply`` replaces the token endpoint's answer (status, JSON body)."""
        host = re.escape(self.root.split("/v1.0")[0])

        def graph(request):
            reply = self.handle(request.method, request.url, dict(request.headers), request.body)
            return reply.status, reply.headers, json.dumps(reply.body) if reply.body is not None else ""

        for method in ("GET", "POST", "PATCH", "DELETE"):
            rsps.add_callback(method, re.compile(host + r"/.*"), callback=graph)
        authority = f"{login}/{tenant}"
        rsps.add(rsps.GET, f"{authority}/v2.0/.well-known/openid-configuration", json={
            "token_endpoint": f"{authority}/oauth2/v2.0/token",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "issuer": f"{login}/{tenant}/v2.0",
            "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
        })

        def token(request):
            self.token_requests.append(dict(parse_qsl(request.body)))
            status, body = token_reply() if token_reply else (200, {
                "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                "access_token": self.issue_token()})
            return status, {}, json.dumps(body)

        rsps.add_callback(rsps.POST, f"{authority}/oauth2/v2.0/token", callback=token)


class FakeClock:
    """Monotonic seconds that only move when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def graph_settings(**overrides: object):
    """Settings of a target talking to the fake (client secret, UPN lookups, short waits)."""
    from sync.targets.graph_settings import GraphSettings

    values: dict[str, object] = {
        "tenant_id": TENANT, "client_id": "0e4c5b38-6a9e-4a51-8d1c-7d3e0f9b2a64", "client_secret": "not-a-secret",
        "graph_url": ROOT, "match": "userPrincipalName", "retry_attempts": 5, "consistency_window": 10.0,
    }
    values.update(overrides)
    return GraphSettings(**values)


def graph_target(clock: FakeClock | None = None, **overrides: object):
    """A GraphTarget on the fake whose waits only move ``clock`` (backoff at its maximum)."""
    from sync.targets.graph import GraphTarget

    clock = clock or FakeClock()
    return GraphTarget(graph_settings(**overrides), sleep=clock.sleep, clock=clock, jitter=lambda: 1.0)


@dataclass
class GraphEnv:
    """A fake Graph served through ``responses``, and a clock for targets talking to it."""

    fake: FakeGraph
    rsps: object
    clock: FakeClock

    def target(self, **overrides: object):
        return graph_target(self.clock, **overrides)

    def graph_requests(self) -> int:
        """HTTP requests that reached Graph (sign-in requests not counted)."""
        return sum(1 for call in self.rsps.calls if call.request.url.startswith(self.fake.root.split("/v1.0")[0]))


@contextmanager
def serve_graph(*, token_reply: Callable[[], tuple[int, dict]] | None = None, **fake_options: object):
    """A :class:`GraphEnv` for the duration of the block (every other host is refused)."""
    import responses

    clock = FakeClock()
    fake_options.setdefault("clock", clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeGraph(**fake_options)
        fake.register(rsps, token_reply=token_reply)
        yield GraphEnv(fake, rsps, clock)
