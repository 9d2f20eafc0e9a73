"""A real, throw-away Samba AD domain controller for the AD-flavour target tests.

Active Directory behaves differently from OpenLDAP where membership is concerned
(AD's result codes for stale values, linked ``member`` values that follow a
renamed entry, ranged retrieval); :class:`SambaDc` gives the tests a real
implementation of it, as shared/docs/directories.md describes ("A real Active
Directory implementation for tests"):

- :meth:`SambaDc.provision` runs ``samba-tool domain provision`` once (about 8 s) into
  a template directory, starts it once to add what the tests need (7–11 s; OU=People with
  :data:`PEOPLE` and :data:`BULK` numbered users; OU=Groups with the empty
  :data:`GROUP_DN` and :data:`LARGE_GROUP_DN` holding every numbered user, more
  than AD's MaxValRange of 1,500 values), and stops it;
- :meth:`SambaDc.fresh` stops the running instance, if any, and starts a new one
  from a copy of the template (``cp -a``; only ``etc/smb.conf`` holds absolute
  paths, and it is rewritten): one process (``samba -i -M single``) serving LDAP
  only, bound to a free loopback address ``127.0.0.N`` (N ≥ 2; Samba's ports are
  fixed), LDAPS with a certificate for that address signed by a CA made for the
  instance (:attr:`SambaDc.ca_file`).

The certificates are valid from ten years before the machine's clock to ten
years after it: the tests' ``walkin`` child processes run on the tests' frozen
clock, days to months before the machine's, and CI runs the suite again with the
machine's clock moved more than a year ahead (tests/faketime).
"""

from __future__ import annotations

import datetime
import os
import random
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import ldap3
from ldap3 import MODIFY_REPLACE
from ldap3.core.exceptions import LDAPCommunicationError, LDAPException
from ldap3.utils.dn import escape_rdn

from sync.targets import ldap3_import  # noqa: F401  (imports ldap3 without pyasn1's deprecation warnings)
from sync.targets.ldap_session import VerifyingTls

from .certificates import write_certificates
from .processes import terminate

SAMBA = "/usr/sbin/samba"
SAMBA_TOOL = "/usr/bin/samba-tool"

#: The environment of samba-tool and samba. ldb opens its modules (all of AD's
#: logic) with RTLD_DEEPBIND, which makes them call libc's clock directly rather
#: than a preloaded libfaketime's: without this, a Samba started by a suite running
#: on a moved clock (.ci/run) stamps whenCreated and answers currentTime with the
#: machine's real time while everything else runs on the moved one.
SAMBA_ENV = {"LDB_MODULES_DISABLE_DEEPBIND": "1"}

REALM = "DISTRICT.TEST"
DOMAIN = "DISTRICT"
BASE_DN = "DC=district,DC=test"
ADMIN_DN = f"CN=Administrator,CN=Users,{BASE_DN}"
ADMIN_PASSWORD = "Walkin-Adm1n-Secret"  # meets AD's default complexity rules
PEOPLE_DN = f"OU=People,{BASE_DN}"
GROUPS_DN = f"OU=Groups,{BASE_DN}"
GROUP_DN = f"CN=Walk-in Scheduling,{GROUPS_DN}"
LARGE_GROUP_DN = f"CN=Walk-in Everyone,{GROUPS_DN}"
#: What AD deployments filter people searches with, so groups and computers sharing
#: a sAMAccountName never match.
PEOPLE_FILTER = "(&(objectCategory=person)(objectClass=user))"

#: Named users in the template (sAMAccountName; CN = the name capitalised).
PEOPLE = ("ann", "bea", "cal", "dee", "dee.lee", "eve")
#: Numbered users ``u0000``… in the template, all members of LARGE_GROUP_DN.
BULK = 1600


def bulk_name(i: int) -> str:
    return f"u{i:04d}"


def missing_tools() -> str | None:
    """Why a Samba DC cannot run here, or ``None`` when it can."""
    for tool in (SAMBA, SAMBA_TOOL):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (apt-get install samba)"
    if os.geteuid() != 0:
        return "a Samba DC runs as root here (it binds the fixed LDAP ports 389 and 636)"
    return None


def free_address() -> str:
    """A loopback address ``127.0.0.N`` (N ≥ 2) on which nothing listens on Samba's
    ports (389, 636, 3268, 3269); tried in random order, so that test sessions
    running side by side rarely pick the same one."""
    for n in random.sample(range(2, 255), 253):
        address = f"127.0.0.{n}"
        if all(_bindable(address, port) for port in (636, 389, 3268, 3269)):
            return address
    raise SambaError("no free loopback address 127.0.0.2–254 for Samba's ports")


def _bindable(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Samba binds
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


class SambaError(RuntimeError):
    """Samba could not be provisioned or started."""


class SambaDc:
    """A provisioned Samba AD DC template and the one instance of it running at a time."""

    base_dn = BASE_DN
    admin_dn = ADMIN_DN
    admin_password = ADMIN_PASSWORD
    people_dn = PEOPLE_DN
    groups_dn = GROUPS_DN
    group_dn = GROUP_DN
    large_group_dn = LARGE_GROUP_DN

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.template = workdir / "template"
        self.instance: Path | None = None
        self.address = ""
        self.ca_file = ""
        self.timings: dict[str, float] = {}
        """Seconds spent on provisioning, populating and (the last) copy and start."""
        self._count = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None
        self._admin: ldap3.Connection | None = None

    # ------------------------------------------------------------ addresses

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://{self.address}:636"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ------------------------------------------------------------ lifecycle

    def provision(self) -> None:
        """Provision the domain into the template and add the tests' people and groups."""
        begun = time.monotonic()
        self._run([SAMBA_TOOL, "domain", "provision", "--use-rfc2307", f"--realm={REALM}", f"--domain={DOMAIN}",
                   "--server-role=dc", "--dns-backend=NONE", f"--adminpass={ADMIN_PASSWORD}", "--host-name=dc1",
                   f"--targetdir={self.template}", "-q"])
        self.timings["provision"] = time.monotonic() - begun
        begun = time.monotonic()
        self._configure(self.template)
        self.start()
        try:
            self._populate()
        finally:
            self.stop()
        self.timings["populate"] = time.monotonic() - begun

    def fresh(self) -> None:
        """Stop the running instance (deleting its copy) and start a new one from the template."""
        self.discard()
        begun = time.monotonic()
        self._count += 1
        instance = self.workdir / f"instance-{self._count}"
        self._run(["cp", "-a", str(self.template), str(instance)])
        self._configure(instance)
        self.timings["copy"] = time.monotonic() - begun
        begun = time.monotonic()
        self.start()
        self.timings["start"] = time.monotonic() - begun

    def start(self, timeout: float = 30.0) -> None:
        """Start (again) the current instance; return when an LDAPS bind succeeds."""
        if self.running:
            return
        if self.instance is None:
            raise SambaError("no Samba instance to start: call fresh() first")
        self._log = open(self.instance / "samba.log", "ab")  # noqa: SIM115 - closed in stop()
        # Interactive samba ends when its stdin does: should this process die without
        # stopping it, the kernel closes the pipe and no DC is left running.
        self._process = subprocess.Popen(
            [SAMBA, "-i", "-M", "single", "-s", str(self.instance / "etc" / "smb.conf")],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.PIPE, env={**os.environ, **SAMBA_ENV},
        )
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._reap()
                raise SambaError(f"samba exited at start-up:\n{self.log_tail()}")
            try:
                self.admin()
                return
            except (LDAPCommunicationError, OSError) as exc:  # not listening yet
                last = exc
                time.sleep(0.05)
            except BaseException:  # e.g. the bind refused
                self.stop()
                raise
        self.stop()
        raise SambaError(f"samba did not answer an LDAPS bind within {timeout} s ({last!r}):\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop Samba (SIGTERM, then SIGKILL after 10 s); the instance's data is kept."""
        self._drop_admin()
        if self._process is None:
            return
        terminate(self._process)
        self._reap()

    def discard(self) -> None:
        """Stop Samba and delete the current instance's copy (the template stays)."""
        self.stop()
        if self.instance is not None and self.instance != self.template:
            shutil.rmtree(self.instance, ignore_errors=True)
        self.instance = None

    def remove(self) -> None:
        """Stop Samba and delete everything, the template too."""
        self.discard()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _reap(self) -> None:
        if self._process is not None:
            self._process.wait()
            self._process.stdin.close()
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.instance / "samba.log").read_text(errors="replace") if self.instance else ""
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _configure(self, instance: Path) -> None:
        """Point ``instance`` at a free loopback address with certificates of its own,
        and rewrite its smb.conf so that everything Samba keeps stays inside it."""
        self.instance = instance
        self.address = free_address()
        tls = instance / "tls"
        tls.mkdir(exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ten_years = datetime.timedelta(days=3652)
        files = write_certificates(tls, self.address, not_before=now - ten_years, not_after=now + ten_years)
        self.ca_file = str(files.ca)
        for directory in ("cache", "run", "log"):
            (instance / directory).mkdir(exist_ok=True)
        (instance / "etc" / "smb.conf").write_text(f"""\
[global]
	netbios name = DC1
	realm = {REALM}
	workgroup = {DOMAIN}
	server role = active directory domain controller
	server services = ldap
	interfaces = {self.address}/8
	bind interfaces only = yes
	tls enabled = yes
	tls keyfile = {files.key}
	tls certfile = {files.certificate}
	tls cafile = {files.ca}
	private dir = {instance}/private
	lock directory = {instance}
	state directory = {instance}/state
	cache directory = {instance}/cache
	binddns dir = {instance}/bind-dns
	pid directory = {instance}/run
	ncalrpc dir = {instance}/run/ncalrpc
	winbindd socket directory = {instance}/run/winbindd
	log file = {instance}/log/samba.log
	logging = file
	idmap_ldb:use rfc2307 = yes
	# A test instance: no fsync per write (populating is four times faster).
	ldb:nosync = true
""")

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL,
                              env={**os.environ, **SAMBA_ENV})
        if done.returncode:
            raise SambaError(f"{' '.join(command[:3])} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    # ------------------------------------------------------------ data

    def admin(self) -> ldap3.Connection:
        """A connection bound as Administrator over verified LDAPS (for test set-up
        and checks, not the target)."""
        if self._admin is None or self._admin.closed:
            tls = VerifyingTls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca_file)
            server = ldap3.Server(self.ldaps_url, get_info=ldap3.NONE, tls=tls, connect_timeout=2)
            # No empty-attribute filling: ldap3's mangles ranged answers (see sync/targets/ldap_session.py).
            conn = ldap3.Connection(server, user=ADMIN_DN, password=ADMIN_PASSWORD, raise_exceptions=True,
                                    receive_timeout=30, client_strategy=ldap3.SAFE_SYNC,
                                    return_empty_attributes=False)
            try:
                conn.open()
                conn.bind()
            except BaseException:
                if conn.socket is not None:
                    conn.socket.close()
                raise
            self._admin = conn
        return self._admin

    def _drop_admin(self) -> None:
        if self._admin is not None:
            try:
                self._admin.unbind()
            except (LDAPException, OSError):
                pass
            self._admin = None

    def _populate(self) -> None:
        conn = self.admin()
        for ou in (PEOPLE_DN, GROUPS_DN):
            conn.add(ou, ["organizationalUnit"])
        for name in PEOPLE:
            self.add_user(name)
        everyone = [self.add_user(bulk_name(i)) for i in range(BULK)]
        self.add_group(GROUP_DN, [])
        self.add_group(LARGE_GROUP_DN, everyone)

    def user_dn(self, sam: str, cn: str | None = None) -> str:
        return f"CN={escape_rdn(cn or sam.capitalize())},{PEOPLE_DN}"

    def add_user(self, sam: str, *, cn: str | None = None) -> str:
        """Add a user (no password: a disabled account, which is all group
        membership needs) with this sAMAccountName and ``sam@district.test`` as
        userPrincipalName; return its DN."""
        dn = self.user_dn(sam, cn)
        self.admin().add(dn, ["user"], {"sAMAccountName": sam, "userPrincipalName": f"{sam}@{REALM.lower()}"})
        return dn

    def add_group(self, dn: str, members: list[str]) -> str:
        """Add a global security group (AD's default group type) with these members."""
        attributes: dict[str, object] = {"sAMAccountName": dn.split(",", 1)[0][3:]}
        if members:
            attributes["member"] = members
        self.admin().add(dn, ["group"], attributes)
        return dn

    def rename(self, dn: str, new_cn: str) -> str:
        """Rename an entry in place (modrdn); return its new DN."""
        self.admin().modify_dn(dn, f"CN={escape_rdn(new_cn)}")
        return f"CN={escape_rdn(new_cn)},{dn.split(',', 1)[1]}"

    def member_values(self, group: str = GROUP_DN) -> list[str]:
        """The group's ``member`` values as Samba returns them to a plain read (all of them)."""
        _, _, response, _ = self.admin().search(group, "(objectClass=*)", ldap3.BASE, attributes=["member"])
        return [value.decode() for value in response[0]["raw_attributes"].get("member", [])]

    def set_members(self, values: list[str], group: str = GROUP_DN) -> None:
        """Set the group's members directly (test set-up only; the target never replaces)."""
        self.admin().modify(group, {"member": [(MODIFY_REPLACE, values)]})
