"""A fake Active Directory at the ldap3 connection boundary.

ldap3's ``MOCK_SYNC`` strategy (with the offline AD 2012 R2 schema) keeps entries in
memory and evaluates filters and the paged-results control, but it answers like no
real AD for group membership: it returns every ``member`` value at once, ignores
``member;range=…`` requests, accepts duplicate adds and reports a missing value on
delete with result 1. :class:`FakeAd` installs a strategy that replays what AD
(2008+) really does, so :class:`~sync.targets.ldap.LdapTarget` runs its real code
path (requests encoded and decoded by ldap3) against these shapes:

- ranged retrieval: a read of ``member`` on a group with more than 1,500 values
  (MaxValRange) returns no ``member`` but ``member;range=0-1499``; asking for
  ``member;range=1500-*`` returns ``member;range=1500-2999``; the last slice is
  ``member;range=3000-*``. A group of 1,500 or fewer returns plain ``member``.
- adding a present member fails the whole request with 68 entryAlreadyExists
  (``00000562: UpdErr: … problem 6005 (ENTRY_EXISTS)``), removing an absent one with
  53 unwillingToPerform (``00000561: SvcErr: … problem 5003 (WILL_NOT_PERFORM)``),
  and adding a DN that names no object with 32 noSuchObject (problem 2001); the
  permissive-modify control turns the first two into success. The result codes for
  stale values are parameters, since Microsoft also documents 20
  attributeOrValueExists (problem 1006) for values already present.
- every modify and search is recorded for request-shape assertions; ``busy`` and
  ``busy_after`` make modifies answer 51 busy; ``protected`` members cannot be removed
  (53, as for a user's primary group); ``range_fault`` breaks follow-up range reads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ldap3 import MOCK_SYNC, OFFLINE_AD_2012_R2, Connection, Server
from ldap3.operation.modify import modify_request_to_dict
from ldap3.protocol.convert import build_controls_list
from ldap3.strategy.mockSync import MockSyncStrategy
from ldap3.utils.ciDict import CaseInsensitiveDict
from ldap3.utils.conv import to_raw
from ldap3.utils.dn import safe_dn

from sync.targets import ldap3_import  # noqa: F401  (imports ldap3 without pyasn1's deprecation warnings)
from sync.targets.ldap_session import connection_options
from sync.targets.ldap_settings import LdapSettings

MAX_VALUE_RANGE = 1500
PERMISSIVE_MODIFY_OID = "1.2.840.113556.1.4.1413"
ENTRY_EXISTS = (68, "00000562: UpdErr: DSID-031A11E2, problem 6005 (ENTRY_EXISTS), data 0\n")
WILL_NOT_PERFORM = (53, "00000561: SvcErr: DSID-031A1254, problem 5003 (WILL_NOT_PERFORM), data 0\n")
ATT_OR_VALUE_EXISTS = (20, "00002083: AtrErr: DSID-03151904, #1:\n\t0: 00002083: DSID-03151904, problem 1006 "
                           "(ATT_OR_VALUE_EXISTS), data 0, Att 1f (member):len 2\n")
NO_SUCH_ATTRIBUTE = (16, "00002085: AtrErr: DSID-03152BF8, #1:\n\t0: 00002085: DSID-03152BF8, problem 1001 "
                         "(NO_ATTRIBUTE_OR_VAL), data 0, Att 1f (member)\n")
NO_OBJECT = (32, "0000208D: NameErr: DSID-03100288, problem 2001 (NO_OBJECT), data 0, best match of:\n\t''\n")
BUSY = (51, "00002024: SvcErr: DSID-02080D7A, problem 5001 (BUSY), data 0\n")
_RANGE = re.compile(r"range=([0-9]+)-([0-9]+|\*)\Z", re.IGNORECASE)


@dataclass(frozen=True)
class ModifyRecord:
    dn: str
    changes: list[tuple[int, str, list[str]]]  # (operation, attribute, values); 0 add, 1 delete, 2 replace
    controls: tuple[str, ...]


@dataclass(frozen=True)
class SearchRecord:
    base: str
    scope: int
    filter: str
    attributes: tuple[str, ...]


@dataclass
class FakeAd:
    """An AD domain in memory; :meth:`connect` is a connection factory for LdapTarget."""

    stale_add: tuple[int, str] = ENTRY_EXISTS
    stale_delete: tuple[int, str] = WILL_NOT_PERFORM
    honour_permissive: bool = True
    domain: str = "DC=corp,DC=example,DC=com"
    modifies: list[ModifyRecord] = field(default_factory=list)
    searches: list[SearchRecord] = field(default_factory=list)
    busy: int = 0  # answer the next N modify requests with 51 busy
    busy_after: int | None = None  # answer every modify after the first N with 51 busy
    protected: set[str] = field(default_factory=set)  # lower-case DNs whose removal AD refuses with 53
    range_fault: str | None = None  # follow-up range reads: "deleted" (32) or "restart" (slice 0 again)

    def __post_init__(self) -> None:
        self.server = Server("dc1.corp.example.com", get_info=OFFLINE_AD_2012_R2)
        self.users_dn = f"OU=Staff,{self.domain}"
        self.groups_dn = f"OU=Groups,{self.domain}"
        self.group_dn = f"CN=Walk-in Scheduling,{self.groups_dn}"
        self.service_dn = f"CN=svc-walkin,OU=Service Accounts,{self.domain}"
        self.password = "S3rvice-pass"
        self.lock = threading.Lock()
        self._seed = self._connection()
        self._seed.strategy.add_entry(self.service_dn, {
            "objectClass": ["user"], "sAMAccountName": "svc-walkin", "userPassword": self.password})
        self.add_group(self.group_dn, [])

    def settings(self, **overrides: object) -> LdapSettings:
        """LdapSettings of the ``ad`` flavour pointing at this domain."""
        values: dict[str, object] = {
            "urls": ["ldaps://dc1.corp.example.com"], "flavour": "ad", "bind_dn": self.service_dn,
            "bind_password": self.password, "people_base": self.users_dn, "match_attribute": "sAMAccountName",
            "retry_backoff_base": 0.0,
        }
        values.update(overrides)
        return LdapSettings(**values)

    def _connection(self, settings: LdapSettings | None = None) -> Connection:
        # The target's own connection options, so the fake runs them as production does.
        options = connection_options(settings or self.settings())
        conn = Connection(self.server, user=self.service_dn, password=self.password, client_strategy=MOCK_SYNC,
                          **options)
        strategy = _AdStrategy(conn, self)
        conn.strategy = strategy
        conn.send = strategy.send
        conn.open = strategy.open
        conn.get_response = strategy.get_response
        conn.post_send_single_response = strategy.post_send_single_response
        conn.post_send_search = strategy.post_send_search
        return conn

    def factory(self, settings: LdapSettings) -> Callable[[], Connection]:
        """A connection factory for ``LdapTarget(settings, connection_factory=…)``."""

        def connect() -> Connection:
            conn = self._connection(settings)
            conn.open()
            if not conn.bind()[0]:
                raise RuntimeError("fake AD refused the service account")
            return conn

        return connect

    def add_user(self, name: str, *, sam: str | None = None, employee_id: str | None = None) -> str:
        dn = f"CN={name},{self.users_dn}"
        attributes = {"objectClass": ["user"], "sAMAccountName": sam or name.lower().replace(" ", ".")}
        if employee_id is not None:
            attributes["employeeID"] = employee_id
        if not self._seed.strategy.add_entry(dn, attributes):
            raise ValueError(f"cannot add {dn}")
        return dn

    def add_users(self, count: int, prefix: str = "User") -> list[str]:
        """Add ``count`` users at once (straight into the DIT: ldap3's add_entry parses
        each DN twice and would make a 3,500-user domain take seconds)."""
        dns = []
        with self.server.dit_lock:
            for i in range(count):
                name, sam = f"{prefix} {i:05d}", f"{prefix.lower()}{i:05d}"
                dn = f"CN={name},{self.users_dn}"
                entry = CaseInsensitiveDict()
                entry["objectClass"] = [b"top", b"person", b"organizationalPerson", b"user"]
                entry["cn"] = [name.encode()]
                entry["sAMAccountName"] = [sam.encode()]
                entry["entryDN"] = [dn.encode()]
                self.server.dit[dn] = entry
                dns.append(dn)
        return dns

    def add_group(self, dn: str, members: list[str]) -> str:
        attributes = {"objectClass": ["group"], "sAMAccountName": dn.split(",")[0][3:]}
        if not self._seed.strategy.add_entry(dn, attributes):
            raise ValueError(f"cannot add {dn}")
        self.set_members(members, dn)
        return dn

    def set_members(self, members: list[str], dn: str | None = None) -> None:
        """Set the group's members directly (test set-up)."""
        entry = self.server.dit[safe_dn(dn or self.group_dn)]
        if members:
            entry["member"] = [to_raw(m) for m in members]
        else:
            entry.pop("member", None)

    def members(self, dn: str | None = None) -> list[str]:
        """The group's members as stored (no ranges)."""
        entry = self.server.dit[safe_dn(dn or self.group_dn)]
        return [v.decode() for v in entry.get("member", [])]


class _AdStrategy(MockSyncStrategy):
    """MOCK_SYNC answering membership requests the way AD does (see the module doc)."""

    def __init__(self, connection: Connection, ad: FakeAd) -> None:
        super().__init__(connection)
        self.thread_safe = True  # operations return (status, result, response, request) like SAFE_SYNC
        self.ad = ad

    def _execute_search(self, request):
        requested = [str(a) for a in request["attributes"]]
        self.ad.searches.append(SearchRecord(str(request["base"]), int(request["scope"]), str(request["filter"]),
                                             tuple(requested)))
        ranges: dict[str, int] = {}
        plain: list[str] = []
        for name in requested:
            base, _, options = name.partition(";")
            match = _RANGE.match(options)
            if match:
                ranges[base.lower()] = int(match[1])
                plain.append(base)
            else:
                plain.append(name)
        if ranges and self.ad.range_fault == "deleted":
            return [], _result(*NO_OBJECT)
        if self.ad.range_fault == "restart":
            ranges.clear()
        responses, result = super()._execute_search(dict(request, attributes=plain))
        for response in responses:
            for attribute in response["attributes"]:
                name = attribute["type"]
                values = attribute["vals"]
                if name.lower() not in ranges and len(values) <= MAX_VALUE_RANGE:
                    continue
                low = ranges.get(name.lower(), 0)
                end = min(len(values), low + MAX_VALUE_RANGE)
                high = "*" if end >= len(values) else str(end - 1)
                attribute["type"] = f"{name};range={low}-{high}"
                attribute["vals"] = values[low:end]
        return responses, result

    def mock_modify(self, request_message, controls):
        request = modify_request_to_dict(request_message)
        # Encode the controls as a real strategy would (this rejects malformed ones).
        built = build_controls_list(controls)
        oids = tuple(str(c["controlType"]) for c in built) if built is not None else ()
        changes = [(int(c["operation"]), str(c["attribute"]["type"]), [to_raw(v) for v in c["attribute"]["value"]])
                   for c in request["changes"]]
        dn = safe_dn(str(request["entry"]))
        self.ad.modifies.append(ModifyRecord(dn, [(op, a, [v.decode() for v in vs]) for op, a, vs in changes], oids))
        if any(attribute.lower() != "member" for _, attribute, _ in changes):
            return super().mock_modify(request_message, controls)
        with self.ad.lock:
            if self.ad.busy:
                self.ad.busy -= 1
                return _result(*BUSY)
            if self.ad.busy_after is not None and len(self.ad.modifies) > self.ad.busy_after:
                return _result(*BUSY)
            dit = self.connection.server.dit
            if dn not in dit:
                return _result(*NO_OBJECT)
            permissive = PERMISSIVE_MODIFY_OID in oids and self.ad.honour_permissive
            members = {v.lower(): v for v in dit[dn].get("member", [])}
            for operation, _, values in changes:
                for value in values:
                    key = value.lower()
                    if operation == 0:
                        if key in members:
                            if permissive:
                                continue
                            return _result(*self.ad.stale_add)
                        if safe_dn(value.decode()) not in dit:
                            return _result(*NO_OBJECT)
                        members[key] = value
                    elif operation == 1:
                        if key.decode() in self.ad.protected:  # e.g. the member's primary group
                            return _result(*WILL_NOT_PERFORM)
                        if key not in members:
                            if permissive:
                                continue
                            return _result(*self.ad.stale_delete)
                        del members[key]
                    else:  # replace: what a sync tool must never send
                        members = {v.lower(): v for v in values}
            if members:
                dit[dn]["member"] = list(members.values())
            else:  # AD returns no attribute rather than an empty one
                dit[dn].pop("member", None)
            return _result(0, "")


def _result(code: int, message: str) -> dict:
    return {"resultCode": code, "matchedDN": "", "diagnosticMessage": message, "referral": None}
