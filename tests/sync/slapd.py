"""A real, throw-away OpenLDAP ``slapd`` for the LDAP target tests.

:class:`Slapd` builds a cn=config directory with ``slapadd -n0`` from a generated
LDIF (core, cosine and inetorgperson schemas; one MDB database), loads a base DIT
with ``slapadd``, and runs ``slapd`` in the foreground on free loopback ports:

- ``ldap://127.0.0.1:<port>`` (StartTLS offered),
- ``ldaps://127.0.0.1:<tls_port>``,
- ``ldapi://<socket>`` where SASL EXTERNAL maps this process's uid/gid to the rootdn
  (which may also change cn=config: :meth:`Slapd.requiring`).

The TLS certificates come from a CA generated for the run (``ca_file``).
:meth:`stop` and :meth:`start` stop and restart the server on the same ports with the
same data, for fault tests; :meth:`reset` restores the base DIT between tests
without a restart.
"""

from __future__ import annotations

import datetime
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import ldap3
from ldap3 import MODIFY_REPLACE

from sync.targets import ldap3_import  # noqa: F401  (imports ldap3 without pyasn1's deprecation warnings)
from sync.targets.ldap_filters import rdn

from .certificates import write_certificates
from .processes import terminate


def child_dn(attribute: str, value: str, parent: str) -> str:
    """The DN of the entry named ``attribute=value`` directly below ``parent``."""
    return f"{rdn(attribute, value)},{parent}"

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
LDAPADD = "/usr/bin/ldapadd"
LDAPDELETE = "/usr/bin/ldapdelete"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "inetorgperson")

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "admin-secret"
PEOPLE_DN = f"ou=people,{SUFFIX}"
GROUPS_DN = f"ou=groups,{SUFFIX}"
GROUP_DN = f"cn=walkin,{GROUPS_DN}"
PLACEHOLDER_DN = f"cn=placeholder,{SUFFIX}"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-secret"
PERMISSIVE_MODIFY_OID = "1.2.840.113556.1.4.1413"


def missing_tools() -> str | None:
    """Why slapd cannot run here, or ``None`` when it can."""
    for tool in (SLAPD, SLAPADD, LDAPADD, LDAPDELETE):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (apt-get install slapd ldap-utils)"
    for name in SCHEMAS:
        if not (SCHEMA_DIR / f"{name}.ldif").is_file():
            return f"schema {SCHEMA_DIR / name}.ldif is missing (package slapd)"
    if not (MODULE_DIR / "back_mdb.so").is_file() and not (MODULE_DIR / "back_mdb.la").is_file():
        return f"{MODULE_DIR}/back_mdb.so is missing (package slapd)"
    return None


def _ephemeral_range() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, outside the
    kernel's ephemeral range.

    The fault tests reconnect again and again to a stopped slapd; to a port in the
    ephemeral range, such a connect can be given that very port as its source and
    connect the socket to itself (TCP self-connect): the client then reads its own
    bind request back, and the port stays taken, so slapd cannot start again.
    """
    ephemeral = _ephemeral_range()
    candidates = [p for p in range(20000, 32000) if p not in ephemeral] or list(range(1024, 20000))
    for port in random.sample(candidates, min(200, len(candidates))):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SlapdError("no free TCP port outside the ephemeral range")


class SlapdError(RuntimeError):
    """slapd could not be set up or started."""


class Slapd:
    """One slapd process and its data directory."""

    suffix = SUFFIX
    root_dn = ROOT_DN
    root_password = ROOT_PASSWORD
    people_dn = PEOPLE_DN
    groups_dn = GROUPS_DN
    group_dn = GROUP_DN
    placeholder_dn = PLACEHOLDER_DN
    reader_dn = READER_DN  # may read everything, write nothing
    reader_password = READER_PASSWORD

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.config_dir = workdir / "slapd.d"
        self.data_dir = workdir / "data"
        self.log_path = workdir / "slapd.log"
        self.socket_path = workdir / "ldapi"
        self.ca_file = str(workdir / "ca.pem")
        self.port = free_port()
        self.tls_port = free_port()
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None
        self._admin: ldap3.Connection | None = None

    # ------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ldapi_url(self) -> str:
        return "ldapi://" + quote(str(self.socket_path), safe="")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------ lifecycle

    def setup(self) -> None:
        """Write certificates and cn=config, and load the base DIT (slapd not running)."""
        self.config_dir.mkdir(parents=True)
        self.data_dir.mkdir(parents=True)
        self._write_certificates()
        config = self.workdir / "config.ldif"
        config.write_text(self._config_ldif())
        self._run([SLAPADD, "-n0", "-F", str(self.config_dir), "-l", str(config)])
        base = self.workdir / "base.ldif"
        base.write_text(self._base_ldif())
        self._run([SLAPADD, "-F", str(self.config_dir), "-b", SUFFIX, "-l", str(base)])

    def start(self, timeout: float = 15.0) -> None:
        """Start slapd (again) on the same ports with the same data; return when it answers."""
        if self.running:
            return
        if self.socket_path.exists():
            self.socket_path.unlink()
        listeners = f"{self.url}/ {self.ldaps_url}/ {self.ldapi_url}/"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [SLAPD, "-d", "0", "-h", listeners, "-F", str(self.config_dir)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._reap()
                raise SlapdError(f"slapd exited at start-up; see {self.log_path}:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                with socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.5):
                    pass
                if self.socket_path.exists():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise SlapdError(f"slapd did not answer within {timeout} s; see {self.log_path}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop slapd cleanly (SIGTERM, then SIGKILL after 10 s); data is kept."""
        self._drop_admin()
        if self._process is None:
            return
        terminate(self._process)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ------------------------------------------------------------ data

    def admin(self) -> ldap3.Connection:
        """A connection bound as the rootdn (for test set-up and checks, not the target)."""
        if self._admin is None or self._admin.closed:
            self._admin = ldap3.Connection(
                ldap3.Server(self.url, get_info=ldap3.NONE),
                user=ROOT_DN,
                password=ROOT_PASSWORD,
                auto_bind=True,
                raise_exceptions=True,
                receive_timeout=30,
            )
        return self._admin

    def _drop_admin(self) -> None:
        if self._admin is not None:
            try:
                self._admin.unbind()
            except ldap3.core.exceptions.LDAPException:
                pass
            self._admin = None

    def reset(self) -> None:
        """Empty ou=people and ou=groups and recreate the walk-in group holding only
        the placeholder (a few requests; no restart)."""
        conn = self.admin()
        doomed: list[str] = []
        for base in (PEOPLE_DN, GROUPS_DN):
            conn.search(base, "(objectClass=*)", ldap3.LEVEL, attributes=[ldap3.NO_ATTRIBUTES])
            doomed.extend(entry["dn"] for entry in conn.response)
        if len(doomed) > 20:  # ldapdelete is ten times faster than ldap3 for many entries
            self._client(LDAPDELETE, "".join(f"{dn}\n" for dn in doomed))
        else:
            for dn in doomed:
                conn.delete(dn)
        self.add_group(GROUP_DN, [PLACEHOLDER_DN])

    @contextmanager
    def requiring(self, **values: str) -> Iterator[None]:
        """Ask more of clients until the block ends: ``olcSecurity`` or ``olcRequires``
        values of the main database, e.g. ``requiring(olcSecurity="simple_bind=128")``
        (a simple bind then needs TLS). Changed in cn=config over ldapi:// with SASL
        EXTERNAL, which those settings do not hold back."""
        conn = ldap3.Connection(ldap3.Server(self.ldapi_url, get_info=ldap3.NONE), authentication=ldap3.SASL,
                                sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="", raise_exceptions=True,
                                auto_bind=True)
        database = "olcDatabase={1}mdb,cn=config"
        try:
            conn.modify(database, {name: [(MODIFY_REPLACE, [value])] for name, value in values.items()})
            yield
        finally:
            conn.modify(database, {name: [(MODIFY_REPLACE, [])] for name in values})
            conn.unbind()

    def add_group(self, dn: str, members: list[str]) -> str:
        cn = dn.split(",", 1)[0].split("=", 1)[1]
        self.admin().add(dn, ["groupOfNames"], {"cn": cn, "member": members})
        return dn

    def add_person(self, uid: str | list[str], *, rdn_value: str | None = None, parent: str = PEOPLE_DN) -> str:
        """Add an inetOrgPerson with the given uid value(s); return its DN.

        The RDN is ``uid=<first uid>`` unless ``rdn_value`` is given (then ``cn=<rdn_value>``).
        """
        uids = [uid] if isinstance(uid, str) else uid
        if rdn_value is None:
            dn = child_dn("uid", uids[0], parent)
            cn = uids[0] or "person"
        else:
            dn = child_dn("cn", rdn_value, parent)
            cn = rdn_value
        self.admin().add(dn, ["inetOrgPerson"], {"cn": cn, "sn": "Test", "uid": uids})
        return dn

    def add_people(self, uids: list[str]) -> list[str]:
        """Add many people at once (with ldapadd); return their DNs."""
        dns = [child_dn("uid", uid, PEOPLE_DN) for uid in uids]
        if any(not uid.isprintable() or uid != uid.strip() for uid in uids):
            return [self.add_person(uid) for uid in uids]
        self._client(LDAPADD, "".join(
            f"dn: {dn}\nobjectClass: inetOrgPerson\ncn: {uid}\nsn: Test\nuid: {uid}\n\n" for dn, uid in zip(dns, uids)
        ))
        return dns

    def _client(self, tool: str, stdin: str) -> None:
        """Run an ldap-utils client bound as the rootdn, feeding it ``stdin``."""
        done = subprocess.run([tool, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
                              input=stdin, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SlapdError(f"{tool} failed ({done.returncode}): {done.stderr.strip()}")

    def member_values(self, group: str = GROUP_DN) -> list[str]:
        """The group's ``member`` values exactly as stored (read as the rootdn)."""
        conn = self.admin()
        conn.search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        return [value.decode() for value in conn.response[0]["raw_attributes"].get("member", [])]

    def set_members(self, values: list[str], group: str = GROUP_DN) -> None:
        """Set the group's members directly (test set-up only; the target never replaces)."""
        self.admin().modify(group, {"member": [(MODIFY_REPLACE, values)]})

    def supported_controls(self) -> set[str]:
        conn = self.admin()
        conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["supportedControl"])
        return {value.decode() for value in conn.response[0]["raw_attributes"].get("supportedControl", [])}

    # ------------------------------------------------------------ files

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SlapdError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _config_ldif(self) -> str:
        includes = "\n".join(f"include: file://{SCHEMA_DIR / name}.ldif" for name in SCHEMAS)
        peer = rf"gidNumber={os.getgid()}\+uidNumber={os.getuid()},cn=peercred,cn=external,cn=auth"
        return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {self.workdir}/slapd.pid
olcArgsFile: {self.workdir}/slapd.args
olcLogLevel: none
olcTLSCACertificateFile: {self.ca_file}
olcTLSCertificateFile: {self.workdir}/server.pem
olcTLSCertificateKeyFile: {self.workdir}/server-key.pem
olcAuthzRegexp: {{0}}"{peer}" "{ROOT_DN}"

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_DIR}
olcModuleLoad: {{0}}back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{includes}

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcSizeLimit: 500

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact="{ROOT_DN}" manage by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {self.data_dir}
olcSuffix: {SUFFIX}
olcRootDN: {ROOT_DN}
olcRootPW: {ROOT_PASSWORD}
olcDbMaxSize: 536870912
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: cn eq
olcAccess: {{0}}to * by * read
"""

    def _base_ldif(self) -> str:
        return f"""\
dn: {SUFFIX}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: {READER_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: reader
userPassword: {READER_PASSWORD}

dn: {PEOPLE_DN}
objectClass: organizationalUnit
ou: people

dn: {GROUPS_DN}
objectClass: organizationalUnit
ou: groups

dn: {GROUP_DN}
objectClass: groupOfNames
cn: walkin
member: {PLACEHOLDER_DN}
"""

    def _write_certificates(self) -> None:
        """A CA and a server certificate for 127.0.0.1 / localhost, valid for a day."""
        now = datetime.datetime.now(datetime.UTC)
        write_certificates(self.workdir, "127.0.0.1", not_before=now - datetime.timedelta(minutes=5),
                           not_after=now + datetime.timedelta(days=1))  # ca.pem is self.ca_file

    def remove(self) -> None:
        """Stop slapd and delete its directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
