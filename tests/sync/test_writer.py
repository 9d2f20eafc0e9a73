"""The run's writer (sync/writer.py) and a full run writing while it decides."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

import sync.reconcile as reconcile_module
from connector.store.models import AuditRow, SyncRunRow
from sync.ledger import AuditAction, AuditEntry, AuditResult, RunStatus
from sync.planner import Action, Change
from sync.reconcile import SyncContext, reconcile
from sync.targets.base import TargetUnavailable, WriteResult
from sync.targets.memory import MemoryTarget
from sync.writer import Writer
from tests.sync import people as P
from tests.sync.test_reconcile import GROUP, audit, dn, mapping_with_groups


class RecordingTarget(MemoryTarget):
    """The in-memory target, remembering each write call and, optionally, failing one."""

    def __init__(self, *args, write_batch: int = 1, fail_call: int | None = None,
                 fail_with: type[Exception] = TargetUnavailable, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.write_batch = write_batch
        self.calls: list[tuple[str, list[str], str]] = []  # (op, members, thread name)
        self.fail_call, self.fail_with = fail_call, fail_with

    def _call(self, op: str, group: str, members: list[str]) -> WriteResult:
        self.calls.append((op, list(members), threading.current_thread().name))
        if len(self.calls) == self.fail_call:
            raise self.fail_with("the directory went away")
        write = super().add_members if op == "add" else super().remove_members
        return write(group, members)

    def add_members(self, group, members, *, current=None):
        return self._call("add", group, members)

    def remove_members(self, group, members, *, current=None):
        return self._call("remove", group, members)


def change(action: Action, member: str) -> Change:
    return Change(action, member, member, None)


def entry(c: Change, action: AuditAction, result: AuditResult, detail: str | None) -> AuditEntry:
    return AuditEntry(action, result, person_id=c.person_id, member=c.member, detail=detail)


class ListRecorder:
    """The writer's recorder, keeping what it is told in lists (these tests are
    about the writer; tests/sync/test_crashes.py covers the store side)."""

    entry = staticmethod(entry)
    failed = False

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.settled: list[tuple[str, bool | None]] = []
        self.deferred: list[str] = []

    def pend(self, changes) -> None:
        self.pending.extend(c.member for c in changes)

    def settle(self, settled) -> None:
        self.settled.extend((s.change.member, s.applied) for s in settled)

    settle_soon = settle

    def defer(self, settled) -> None:
        self.deferred.extend(s.change.member for s in settled)


def writer_for(target: MemoryTarget, current: set[str] | None = None) -> Writer:
    return Writer(target, GROUP, current, ListRecorder(), lambda message: None)


def grants(*members: str) -> list[Change]:
    return [change(Action.GRANT, m) for m in members]


def test_adds_wait_for_a_whole_request_and_go_before_the_removals():
    target = RecordingTarget(groups={GROUP: {"x", "y"}}, write_batch=3)
    writer = writer_for(target, {"x", "y"})
    writer.add(grants("a", "b"))  # not a whole request yet
    writer.add(grants("c", "d"))  # a, b, c go; d waits
    writer.remove([change(Action.REVOKE, "x")])  # d goes first, then the removal
    writer.add(grants("e"))
    writer.finish()
    assert [(op, members) for op, members, _ in target.calls] == [
        ("add", ["a", "b", "c"]), ("add", ["d"]), ("remove", ["x"]), ("add", ["e"])]
    assert {thread for _, _, thread in target.calls} == {"walkin-writer"}
    assert target.groups[GROUP] == {"a", "b", "c", "d", "e", "y"}
    assert (writer.added, writer.removed, writer.failures, writer.stopped) == (5, 1, [], False)
    assert [(e.member, e.action, e.result) for e in writer.entries] == [
        *((m, AuditAction.GRANT, AuditResult.OK) for m in "abcd"), ("x", AuditAction.REVOKE, AuditResult.OK),
        ("e", AuditAction.GRANT, AuditResult.OK)]


def test_after_the_directory_goes_away_nothing_more_is_attempted_and_every_change_is_accounted_for():
    target = RecordingTarget(groups={GROUP: {"x"}}, write_batch=2, fail_call=1)
    writer = writer_for(target, {"x"})
    writer.add(grants("a", "b", "c", "d", "e"))  # a-d in one call (whole requests), e held back
    writer.remove([change(Action.REVOKE, "x")])
    writer.finish()
    assert [members for _, members, _ in target.calls] == [["a", "b", "c", "d"]]
    assert target.groups[GROUP] == {"x"}
    assert writer.stopped and (writer.added, writer.removed, len(writer.failures)) == (0, 0, 6)
    assert [(e.member, e.result, e.detail) for e in writer.entries] == [
        *((m, AuditResult.FAILED, "grant: not written: the directory went away") for m in "abcd"),
        ("e", AuditResult.FAILED, "grant: not attempted, the directory is unavailable"),
        ("x", AuditResult.FAILED, "revoke: not attempted, the directory is unavailable"),
    ]


def test_a_failure_part_way_keeps_what_was_confirmed_and_skips_the_rest(monkeypatch):
    import sync.writer as writer_module

    monkeypatch.setattr(writer_module, "WRITE_CHUNK", 2)
    target = RecordingTarget(groups={GROUP: {"x"}}, write_batch=1, fail_call=2)
    writer = writer_for(target, {"x"})
    writer.add(grants("a", "b", "c", "d", "e"))
    writer.remove([change(Action.REVOKE, "x")])
    writer.finish()
    assert [members for _, members, _ in target.calls] == [["a", "b"], ["c", "d"]]
    assert target.groups[GROUP] == {"a", "b", "x"}
    results = [(e.member, e.result, e.detail) for e in writer.entries]
    assert results == [
        ("a", AuditResult.OK, None), ("b", AuditResult.OK, None),
        ("c", AuditResult.FAILED, "grant: not written: the directory went away"),
        ("d", AuditResult.FAILED, "grant: not written: the directory went away"),
        ("e", AuditResult.FAILED, "grant: not attempted, the directory is unavailable"),
        ("x", AuditResult.FAILED, "revoke: not attempted, the directory is unavailable"),
    ]
    assert writer.added == 2 and writer.stopped and len(writer.failures) == 4


def test_an_unexpected_error_in_the_target_is_recorded_as_failed_never_as_done(caplog):
    target = RecordingTarget(groups={GROUP: set()}, fail_call=1, fail_with=KeyError)
    writer = writer_for(target)
    writer.add(grants("a"))
    writer.finish()
    assert writer.stopped and writer.added == 0 and target.groups[GROUP] == set()
    assert [(e.result, e.detail) for e in writer.entries] == [
        (AuditResult.FAILED, "grant: not written: 'the directory went away'")]
    assert "failed unexpectedly" in caplog.text


# ---------------------------------------------------------------- a full run writing as it decides


@pytest.fixture
def target():
    return RecordingTarget(groups={GROUP: set()}, directory={f"u{i}": dn(f"u{i}") for i in range(20)},
                           write_batch=2)


@pytest.fixture
def ctx(store, settings, target, clock):
    settings.sync.target = "ldap"
    return SyncContext(store, settings, mapping_with_groups(), target, "ldap", clock=clock)


@pytest.fixture
def six(client):
    """u0 … u5, all entitled."""
    ids = [P.create(client, P.person(f"u{i}")) for i in range(6)]
    P.approvers(client, "0123", ids)
    return ids


def test_a_full_run_writes_the_first_adds_before_it_has_decided_everyone(ctx, target, store, six, monkeypatch):
    monkeypatch.setattr(reconcile_module, "PEOPLE_CHUNK", 2)
    loads: list[int] = []  # how many write calls had been made when each chunk of people was read
    real_load = reconcile_module.load_people

    def load(*args, **kwargs):
        if loads:  # wait for the previous chunk's adds (a whole request of 2) to reach the directory
            for _ in range(200):
                if target.calls:
                    break
                threading.Event().wait(0.01)
        loads.append(len(target.calls))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(reconcile_module, "load_people", load)
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.OK and result.counts["added"] == 6
    assert loads[0] == 0 and loads[-1] >= 1  # the last chunk was read after the first adds were written
    assert [len(members) for _, members, _ in target.calls] == [2, 2, 2]
    assert target.groups[GROUP] == {dn(f"u{i}") for i in range(6)}
    assert sorted(a[1] for a in audit(store)) == [f"u{i}" for i in range(6)]


def test_a_directory_failure_while_deciding_records_the_adds_already_written(ctx, target, store, six, monkeypatch):
    """Chunk 1's adds are written; resolving chunk 2 fails: the run is failed, says
    how far it got, and its audit holds exactly the confirmed grants."""
    monkeypatch.setattr(reconcile_module, "PEOPLE_CHUNK", 2)
    real_resolve = target.resolve
    seen = {"n": 0}

    def resolve(people):
        seen["n"] += 1
        if seen["n"] == 2:
            for _ in range(200):  # let chunk 1's adds reach the directory first
                if target.calls:
                    break
                threading.Event().wait(0.01)
            raise TargetUnavailable("search timed out")
        return real_resolve(people)

    monkeypatch.setattr(target, "resolve", resolve)
    result = reconcile(ctx, "walkin")
    assert result.status is RunStatus.FAILED
    assert result.detail.endswith("stopped after 2 adds")
    written = target.groups[GROUP]
    assert len(written) == 2  # the first chunk's two people (the survey's order, not user names)
    trail = audit(store)
    assert [a[0] for a in trail] == ["grant", "grant", "refused"] and all(a[2] != "failed" for a in trail)
    assert {dn(a[1]) for a in trail[:2]} == written
    with store.session_read() as s:
        run = s.scalars(select(SyncRunRow)).one()
        assert (run.status, run.counts) == ("failed", {"added": 2, "failed": 0})
    ctx.target.resolve = real_resolve
    second = reconcile(ctx, "walkin")  # the directory is back: the next run converges
    assert second.status is RunStatus.OK and second.counts["added"] == 4
    assert target.groups[GROUP] == {dn(f"u{i}") for i in range(6)}


def test_an_unexpected_error_while_deciding_still_records_what_was_written(ctx, target, store, six, monkeypatch):
    monkeypatch.setattr(reconcile_module, "PEOPLE_CHUNK", 2)
    real_decide = reconcile_module.decide_all
    calls = {"n": 0}

    def decide(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            for _ in range(200):
                if target.calls:
                    break
                threading.Event().wait(0.01)
            raise RuntimeError("a defect in the policy")
        return real_decide(*args, **kwargs)

    monkeypatch.setattr(reconcile_module, "decide_all", decide)
    with pytest.raises(RuntimeError, match="a defect"):
        reconcile(ctx, "walkin")
    written = target.groups[GROUP]
    assert len(written) == 2
    with store.session_read() as s:
        run = s.scalars(select(SyncRunRow)).one()
        assert run.status == "failed" and run.counts["added"] == 2
        assert {dn(r.user_name) for r in s.scalars(select(AuditRow).where(AuditRow.result == "ok"))} == written


class BlockingTarget(RecordingTarget):
    """Its second write call waits until the test lets it go."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def _call(self, op, group, members):
        if len(self.calls) == 1:
            assert self.release.wait(10), "the test never released the write"
        return super()._call(op, group, members)


def test_a_run_stores_the_audit_of_confirmed_writes_while_it_still_writes(store, settings, client, clock,
                                                                         monkeypatch):
    """Were the run killed during its second write call, the first call's grants
    would already be in the audit trail."""
    import sync.writer as writer_module

    monkeypatch.setattr(writer_module, "WRITE_CHUNK", 2)
    settings.sync.target = "ldap"
    target = BlockingTarget(groups={GROUP: set()}, directory={f"u{i}": dn(f"u{i}") for i in range(4)})
    ctx = SyncContext(store, settings, mapping_with_groups(), target, "ldap", clock=clock)
    ids = [P.create(client, P.person(f"u{i}")) for i in range(4)]
    P.approvers(client, "0123", ids)
    results = []
    run = threading.Thread(target=lambda: results.append(reconcile(ctx, "walkin")))
    run.start()
    try:
        for _ in range(500):
            trail = audit(store)
            if trail:
                break
            threading.Event().wait(0.01)
        with store.session_read() as s:
            status = s.scalars(select(SyncRunRow.status)).one()
        assert status == "running"
        assert [a[0] for a in trail] == ["grant", "grant"] and len(target.groups[GROUP]) == 2
    finally:
        target.release.set()
        run.join(10)
    assert results and results[0].status is RunStatus.OK and results[0].counts["added"] == 4
    assert sorted(a[1] for a in audit(store)) == ["u0", "u1", "u2", "u3"]  # each grant recorded once
