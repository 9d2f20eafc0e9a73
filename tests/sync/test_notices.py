"""Email reminders and notices, exactly once, through a real SMTP server on loopback
(aiosmtpd), driven by the shared fake clock over the policy's §8 district: the
60/30/7-day reminders, the school-year end, a role change, a departure and rehire,
the approvers' digest, overdue grants, held removals — and two workers draining the
outbox while the SMTP server stops mid-batch."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner
from pydantic import SecretStr
from sqlalchemy import delete, func, select

from connector.cli import main
from connector.store.models import AuditRow, HoldingRow, NoticeRow
from sync.notices import NoticeKind
from sync.notices.delivery import deliver, plan_today
from sync.notices.settings import SmtpSecurity
from sync.reconcile import SyncContext
from sync.targets.memory import MemoryTarget
from sync.worker import Worker
from tests.conftest import AUTH
from tests.integration import examples
from tests.sync.test_reconcile import GROUP, mapping_with_groups

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
PRINCIPAL = "principal.p@district.org"


def denver(day: str, hour: int = 9) -> datetime:
    """``hour`` o'clock in Denver on ``day`` (winter: UTC-7; summer: UTC-6 — close enough to stay that day)."""
    return datetime.fromisoformat(f"{day}T{hour + 7:02d}:00:00+00:00").astimezone(UTC)


class Mailbox:
    """aiosmtpd's handler: every message accepted, kept."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for rcpts, m in self.messages if address in rcpts]

    def subjects(self, address: str) -> list[str]:
        return [subject(m) for m in self.to(address)]


def subject(message: Message) -> str:
    return str(message["Subject"]).strip()  # unfolded (a long subject is folded after "Subject:")


def text_of(message: Message) -> str:
    return next(part.get_content() for part in message.walk() if part.get_content_type() == "text/plain")


def html_of(message: Message) -> str:
    return next(part.get_content() for part in message.walk() if part.get_content_type() == "text/html")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Smtp:
    """A real SMTP server on a loopback port, which can be stopped and started again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mailbox = Mailbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp():
    server = Smtp()
    server.start()
    yield server
    server.stop()


def email(name: str) -> str:
    return examples.user_name(name)


class District:
    """The §8 district, with work emails and a principal at 0789, decided on the memory target."""

    def __init__(self, client, store, settings, clock, smtp: Smtp):
        self.client, self.store, self.settings, self.clock = client, store, settings, clock
        n = settings.notify
        n.enabled, n.smtp_host, n.smtp_port, n.security = True, "127.0.0.1", smtp.port, SmtpSecurity.NONE
        n.sender, n.helpdesk, n.administrators = "walkin@district.org", "helpdesk@district.org", ["dots@district.org"]
        n.retry_seconds, n.timeout_seconds = 1, 5
        self.ids = examples.load(client, store)
        for name in self.ids:
            self.patch(name, {"op": "add", "path": "emails",
                              "value": [{"value": email(name), "type": "work", "primary": True}]})
        r = client.post("/scim/v2/Users", headers=AUTH, json={
            "userName": PRINCIPAL, "active": True, "emails": [{"value": PRINCIPAL, "type": "work"}],
            examples.WALKIN: {"jobCode": "3001", "locationCode": "0789", "assignmentStartDate": "2020-08-01"}})
        assert r.status_code == 201
        settings.sync.target = "ldap"
        directory = {email(n): f"uid={n},ou=people" for n in examples.PEOPLE}
        self.target = MemoryTarget({GROUP: set()}, directory)
        self.ctx = SyncContext(store, settings, mapping_with_groups(), self.target, "ldap", clock=clock)
        self.workers = [Worker(self.ctx, name="w1")]

    def patch(self, name: str, *operations: dict) -> None:
        r = self.client.patch(f"/scim/v2/Users/{self.ids[name]}", headers=AUTH,
                              json={"schemas": [PATCH], "Operations": list(operations)})
        assert r.status_code == 200, r.get_json()

    def settle(self) -> None:
        """The worker, round after round, until nothing is left to do."""
        for _ in range(50):
            if not self.workers[0].step():
                return
        raise AssertionError("the worker never settled")

    def on(self, day: str) -> None:
        self.clock.set(denver(day))
        self.settle()

    def outbox(self, kind: NoticeKind) -> list[NoticeRow]:
        with self.store.session_read() as s:
            return s.scalars(select(NoticeRow).where(NoticeRow.kind == kind.value).order_by(NoticeRow.id)).all()


@pytest.fixture
def district(client, store, settings, clock, smtp):
    d = District(client, store, settings, clock, smtp)
    d.settle()  # the first run: decisions stored, nobody told of access they always had
    return d


def test_the_first_run_tells_nobody(district, smtp):
    """Stored decisions made for the first time are no change: no granted notice to A, C, E, K."""
    assert district.outbox(NoticeKind.GRANTED) == [] and district.outbox(NoticeKind.LOST) == []
    assert [subject(m) for _, m in smtp.mailbox.messages] == [
        "1 staff at 0789 (Example High School) wait for your Walk-in Scheduling approval"]


def test_reminders_at_60_30_and_7_days_exactly_once(district, smtp):
    """A (valid through 2027-06-30) is reminded on 2027-05-01, 2027-05-31 and 2027-06-23, once each,
    however often the worker runs; the quiz still renews; the school year's end is named."""
    a = email("A")
    for day in ("2027-04-30", "2027-05-01", "2027-05-02", "2027-05-31", "2027-06-01", "2027-06-23", "2027-06-24"):
        district.on(day)
    subjects = smtp.mailbox.subjects(a)
    assert subjects == ["Your Walk-in Scheduling access ends after 2027-06-30 unless you recertify"] * 3
    texts = [text_of(m) for m in smtp.mailbox.to(a)]
    assert ["60 days from today" in texts[0], "30 days from today" in texts[1], "7 days from today" in texts[2]] == [
        True] * 3
    assert all("the recertification quiz" in t and "end of the school year" in t for t in texts)
    assert [r.occasion for r in district.outbox(NoticeKind.REMINDER) if r.person_id == district.ids["A"]] == [
        "2027-06-30:60", "2027-06-30:30", "2027-06-30:7"]
    with district.store.session_read() as s:
        audited = s.scalars(select(AuditRow.detail).where(AuditRow.action == "notify", AuditRow.person_id ==
                                                          district.ids["A"])).all()
    assert len(audited) == 3 and all(a in line and "Message-ID <walkin-notice-" in line for line in audited)


def test_a_late_worker_still_sends_the_point_it_missed(district, smtp):
    """Down on the 60-day mark, up at 45 days: the 60-day reminder is sent then, and nothing twice."""
    district.on("2027-05-16")
    assert len(smtp.mailbox.to(email("A"))) == 1 and "45 days from today" in text_of(smtp.mailbox.to(email("A"))[0])


def test_school_year_end_loss_says_why_and_what_regains_it(district, smtp):
    """On 2027-07-01 A's certification has expired: the loss notice says so and that the full
    eLearning (not the quiz) regains it; sent once, after A is out of the group."""
    district.on("2027-07-01")
    district.on("2027-07-02")
    lost = [m for m in smtp.mailbox.to(email("A")) if subject(m) == "You have lost Walk-in Scheduling access"]
    assert len(lost) == 1
    text = text_of(lost[0])
    assert "because your certification expired" in text
    assert "omplete the full Walk-In Scheduling Certification eLearning — the recertification quiz is not enough" in text
    assert "your certification expired" in html_of(lost[0]) and "<li>" in html_of(lost[0])
    assert "uid=A,ou=people" not in district.target.groups[GROUP]


def test_role_change_loss_names_the_approver_to_ask(district, smtp):
    """A moves to 0789 (a new assignment): lost, with no approval for 0789; the notice says exactly
    what regains it — the full eLearning (a loss makes the quiz not enough) and the approval of
    0789's principal. P's digest does not list A until A has taken the course."""
    district.clock.set(denver("2026-12-01"))
    district.patch("A", {"op": "replace", "path": f"{examples.WALKIN}:locationCode", "value": "0789"},
                   {"op": "replace", "path": f"{examples.WALKIN}:assignmentStartDate", "value": "2026-12-01"})
    district.settle()
    lost = [m for m in smtp.mailbox.to(email("A")) if "lost" in subject(m)]
    assert len(lost) == 1
    assert ("Complete the full Walk-In Scheduling Certification eLearning — the recertification quiz is not enough "
            "to regain access — and ask the principal or manager of 0789 (Example High School) to approve you."
            ) in text_of(lost[0])
    district.on("2026-12-02")
    digests = [text_of(m) for m in smtp.mailbox.to(PRINCIPAL) if "wait for your" in subject(m)]
    assert all(email("G") in d and email("A") not in d for d in digests)
    district.clock.set(denver("2026-12-02", 10))
    district.patch("A", {"op": "add", "path": f"{examples.WALKIN}:certifications",
                         "value": [{"course": examples.COURSE, "kind": "full", "completedOn": "2026-12-02"}]})
    district.on("2026-12-03")
    assert email("A") in text_of(smtp.mailbox.to(PRINCIPAL)[-1])


def test_departure_and_rehire(district, smtp):
    """A leaves (inactive): no loss notice by default; rehired and approved again after the full
    course, A is told access is granted — once."""
    district.clock.set(denver("2026-12-01"))
    district.patch("A", {"op": "replace", "path": "active", "value": False})
    district.settle()
    assert [m for m in smtp.mailbox.to(email("A")) if "lost" in subject(m)] == []
    assert [r.status for r in district.outbox(NoticeKind.LOST)] == ["skipped"]
    district.clock.set(denver("2026-12-08"))
    district.patch("A", {"op": "replace", "path": "active", "value": True},
                   {"op": "add", "path": f"{examples.WALKIN}:certifications",
                    "value": [{"course": examples.COURSE, "kind": "full", "completedOn": "2026-12-08"}]})
    district.settle()
    granted = [m for m in smtp.mailbox.to(email("A")) if subject(m) == "You now have Walk-in Scheduling access"]
    assert len(granted) == 1 and "You have access" in text_of(granted[0])
    district.on("2026-12-09")
    assert len([m for m in smtp.mailbox.to(email("A")) if "now have" in subject(m)]) == 1


def test_loss_to_inactive_when_the_district_wants_it(district, smtp):
    """With loss_to_inactive, the departing person is told why: their record is no longer active."""
    district.settings.notify.loss_to_inactive = True
    district.clock.set(denver("2026-12-01"))
    district.patch("A", {"op": "replace", "path": "active", "value": False})
    district.settle()
    lost = [m for m in smtp.mailbox.to(email("A")) if "lost" in subject(m)]
    assert len(lost) == 1 and "no longer active" in text_of(lost[0])


def test_approvers_digest_overdue_and_held(district, smtp):
    """P is sent the daily digest for 0789 (G waits for approval) once a day; an entitled person
    without a directory entry past two business days goes to the help desk; a held removal to
    the administrators, once per run."""
    assert text_of(smtp.mailbox.to(PRINCIPAL)[0]).count(email("G")) == 1
    district.settle()
    assert len(smtp.mailbox.to(PRINCIPAL)) == 1
    # E has no directory entry any more: entitled, never granted in this directory.
    del district.target.directory[email("E")]
    district.target.groups[GROUP].discard("uid=E,ou=people")
    with district.store.session_write() as s:
        s.execute(delete(HoldingRow).where(HoldingRow.person_id == district.ids["E"]))
    district.on("2026-12-03")
    overdue = smtp.mailbox.to("helpdesk@district.org")
    assert len(overdue) == 1 and email("E") in text_of(overdue[0])
    district.settings.sync.max_removals, district.settings.sync.guard_floor = 0, 0
    district.clock.set(denver("2026-12-03", 11))
    district.patch("C", {"op": "replace", "path": "active", "value": False})
    district.settle()
    held = smtp.mailbox.to("dots@district.org")
    assert len(held) == 1 and email("C") in text_of(held[0]) and "--allow-removals" in text_of(held[0])
    district.on("2026-12-04")
    assert len(smtp.mailbox.to("dots@district.org")) == 1


def test_a_kind_turned_off_is_recorded_not_sent(district, smtp):
    """Reminders turned off: recorded as skipped with the reason, never sent."""
    district.settings.notify.disabled = [NoticeKind.REMINDER]
    district.on("2027-05-01")
    assert smtp.mailbox.to(email("A")) == []
    skipped = [r for r in district.outbox(NoticeKind.REMINDER) if r.person_id == district.ids["A"]]
    assert [r.status for r in skipped] == ["skipped"] and "turned off" in skipped[0].detail


def test_smtp_outage_with_two_workers_delivers_each_message_exactly_once(district, smtp, store):
    """Forty notices pending; the SMTP server refuses after five, then is down altogether; nothing is
    lost and nothing marked sent that was not; with the server back, two workers drain the outbox
    concurrently and every message arrives exactly once."""
    from sync.notices import outbox

    rows = [outbox.new(NoticeKind.HELD, "admins", f"held:test{i}", "walkin", district.clock.now(),
                       payload={"run_id": 1000 + i, "removals": [{"user_name": f"u{i}", "member": "m",
                                                                  "reasons": "X", "guard": "g"}]})
            for i in range(40)]
    with store.connection_write() as conn:
        assert outbox.enqueue(conn, rows) == 40
        assert outbox.enqueue(conn, rows) == 0  # once ever
    district.settings.notify.per_minute = 1000
    before = len(smtp.mailbox.messages)
    accept = smtp.mailbox.handle_DATA

    async def refuse_after_five(server, session, envelope):
        if len(smtp.mailbox.messages) - before >= 5:
            return "451 4.3.0 try again later"
        return await accept(server, session, envelope)

    smtp.mailbox.handle_DATA = refuse_after_five
    first = deliver(district.ctx, "w1")
    assert (first.sent, first.failed) == (5, 1)
    smtp.stop()
    district.clock.advance(timedelta(minutes=5))
    assert deliver(district.ctx, "w1").failed == 1  # connection refused: still pending
    with store.session_read() as s:
        marked = s.scalar(select(func.count()).select_from(NoticeRow).where(NoticeRow.kind == "held",
                                                                             NoticeRow.status == "sent"))
    assert marked == 5 == len(smtp.mailbox.messages) - before
    smtp.mailbox.handle_DATA = accept
    smtp.start()
    district.clock.advance(timedelta(hours=1))
    workers = [threading.Thread(target=lambda n=n: [deliver(district.ctx, n) for _ in range(5)]) for n in ("w1", "w2")]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ids = [m["Message-ID"] for _, m in smtp.mailbox.messages if subject(m).startswith("Run 1")]
    assert len(ids) == 40 and len(set(ids)) == 40
    with store.session_read() as s:
        assert s.scalar(select(func.count()).select_from(NoticeRow).where(NoticeRow.kind == "held",
                                                                           NoticeRow.status == "pending")) == 0


def test_rate_limit_per_minute(district, smtp, store):
    """At most per_minute messages in any minute, across rounds; the rest wait for the next minute."""
    from sync.notices import outbox

    district.settings.notify.per_minute = 3
    district.clock.advance(timedelta(minutes=2))  # the fixture's digest is out of the window
    rows = [outbox.new(NoticeKind.HELD, "admins", f"held:rate{i}", "walkin", district.clock.now(),
                       payload={"run_id": 2000 + i, "removals": []}) for i in range(7)]
    with store.connection_write() as conn:
        outbox.enqueue(conn, rows)
    before = len(smtp.mailbox.messages)
    assert deliver(district.ctx, "w1").sent == 3
    assert deliver(district.ctx, "w1").sent == 0
    district.clock.advance(timedelta(seconds=61))
    assert deliver(district.ctx, "w1").sent == 3
    assert len(smtp.mailbox.messages) - before == 6


def test_notify_dry_run_previews_and_sends_nothing(district, smtp, monkeypatch):
    """`walkin notify --dry-run` on 2027-05-01 lists A's reminder with its recipient; nothing is written or sent."""
    monkeypatch.setenv("WALKIN_DATABASE_URL", district.settings.database_url)
    monkeypatch.setenv("WALKIN_SYNC__TARGET", "memory")
    monkeypatch.setenv("WALKIN_NOTIFY__ENABLED", "true")
    district.clock.set(denver("2027-05-01"))
    before = (len(smtp.mailbox.messages), len(district.outbox(NoticeKind.REMINDER)))
    result = CliRunner().invoke(main, ["notify", "--dry-run"], obj=district.clock)
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith(f"reminder\t{district.ids['A']}"))
    assert email("A") in line and "ends after 2027-06-30" in line
    assert result.output.strip().splitlines()[-1].endswith("to send")
    assert (len(smtp.mailbox.messages), len(district.outbox(NoticeKind.REMINDER))) == before


def test_the_day_plan_is_once_a_day(district):
    """A new day plans that day's digests (0789 for G, 0123 for H); planning again that day adds nothing."""
    district.clock.set(denver("2026-12-15"))
    assert plan_today(district.ctx, ["walkin"]) == 2
    assert plan_today(district.ctx, ["walkin"]) == 0
    assert {r.about for r in district.outbox(NoticeKind.APPROVAL_NEEDED) if r.occasion == "2026-12-15"} == {
        "0789", "0123"}


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1, made with openssl for this test."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


def _starttls_server(certificate, mailbox: Mailbox, port: int) -> Controller:
    key, cert = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=(auth_data.login, auth_data.password) == (b"walkin", b"s3cret-relay"))

    controller = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
                            auth_required=True, authenticator=authenticate)
    controller.start()
    return controller


def test_starttls_and_authentication(district, certificate, caplog):
    """Over STARTTLS with the relay's password the message is accepted; a wrong password or a server
    without STARTTLS leaves it pending (never sent in the clear), and no log carries the password."""
    from sync.notices import outbox
    from sync.notices.mailer import MailError, Message, send

    n = district.settings.notify
    mailbox, port = Mailbox(), free_port()
    controller = _starttls_server(certificate, mailbox, port)
    try:
        n.smtp_port, n.security, n.ca_file = port, SmtpSecurity.STARTTLS, certificate[1]
        n.username, n.password = "walkin", SecretStr("s3cret-relay")
        message = Message(("dots@district.org",), "hello", "text", "<p>html</p>", "<walkin-test-1@district.org>")
        send(n, message)
        assert [rcpts for rcpts, _ in mailbox.messages] == [["dots@district.org"]]
        n.password = SecretStr("wrong")
        n.timeout_seconds = 2
        with pytest.raises(MailError):  # 535 (aiosmtpd may also stall smtplib's next mechanism: a timeout)
            send(n, message)
        assert len(mailbox.messages) == 1
        n.ca_file = None  # the system's CAs do not know this certificate
        n.password = SecretStr("s3cret-relay")
        with pytest.raises(MailError, match="CERTIFICATE_VERIFY_FAILED"):
            send(n, message)
    finally:
        controller.stop()
    plain = Smtp()
    plain.start()
    try:
        n.smtp_port, n.ca_file = plain.port, certificate[1]
        rows = [outbox.new(NoticeKind.HELD, "admins", "held:tls", "walkin", district.clock.now(),
                           payload={"run_id": 1, "removals": []})]
        with district.store.connection_write() as conn:
            outbox.enqueue(conn, rows)
        assert deliver(district.ctx, "w1").failed == 1  # STARTTLS not offered: refused, not sent in the clear
        assert plain.mailbox.messages == []
    finally:
        plain.stop()
    assert "s3cret-relay" not in caplog.text and "STARTTLS" in caplog.text


def test_the_district_replaces_a_template(district, smtp, tmp_path):
    """A reminder.txt in WALKIN_NOTIFY__TEMPLATE_DIR replaces the shipped one; the HTML stays shipped."""
    (tmp_path / "reminder.txt").write_text("Subject: Recertify by {{ valid_through }}\nDear {{ name }}: "
                                          "{{ days_left }} days.\n")
    district.settings.notify.template_dir = tmp_path
    district.on("2027-05-01")
    reminder = smtp.mailbox.to(email("A"))[0]
    assert subject(reminder) == "Recertify by 2027-06-30" and "60 days." in text_of(reminder)
    assert "Walk-In Scheduling certification is valid through" in html_of(reminder)


def test_a_role_change_loss_says_the_role_does_not_qualify(district, smtp):
    """A becomes an Analyst at the central office C100: the loss notice says the role or location
    no longer qualifies."""
    district.clock.set(denver("2026-12-01"))
    district.patch("A", {"op": "replace", "path": f"{examples.WALKIN}:jobCode", "value": "4001"},
                   {"op": "replace", "path": f"{examples.WALKIN}:locationCode", "value": "C100"},
                   {"op": "replace", "path": f"{examples.WALKIN}:assignmentStartDate", "value": "2026-12-01"})
    district.settle()
    lost = [m for m in smtp.mailbox.to(email("A")) if "lost" in subject(m)]
    assert len(lost) == 1 and "your role or location changed to one this access is not for" in text_of(lost[0])
    assert "Analyst" in text_of(lost[0])
