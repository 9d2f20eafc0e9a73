"""One full reconcile of the ``walkin`` entitlement in a fresh process, for
bench_reconcile.py; settings come from the environment (``WALKIN_*``), as for
``walkin sync``. Prints one JSON object on the last line of stdout.

    python bench/reconcile_child.py [--kind full] [--profile FILE.pstats] [--tracemalloc]

Timing: wall time of ``reconcile(ctx, "walkin", kind=…)`` only (imports, mapping load
and store/target construction are reported apart). Phases are measured by wrapping the
functions ``sync.reconcile`` calls (module attributes and the target's methods, patched
here — nothing under sync/ is edited):

    load_people      sync.people.load_people (store read + user_to_facts for everyone)
    cache_read       ledger.cached_entries (and the approval groups)
    stored_decisions sync.decisions.fingerprint/bases/survey + sync.reconcile._survey
                     (one query over users, stored decisions and the entry cache:
                     which stored decisions hold; generators, timed step by step);
                     stored_decisions.extras is the part
                     reading memberships, loss dates and overrides
    decide           mappings.policy.decide_all, summed over people
    resolve          sync.reconcile._resolve (cache check; directory searches when cold)
    read_group       target.read_members (the one complete read of the group; a
                     full run reads it in a thread while its survey starts, so this
                     overlaps stored_decisions and is not in the sum below)
    plan             sync.planner.plan
    guard            sync.reconcile._guard (deletion guard; one store read)
    ledger_write     ledger.start_run/write_audit/record_losses/store_entries/
                     forget_entries/finish_run, decisions.save/forget
    commit           SQLAlchemy transaction commits
    writer_wait      sync.writer.Writer.join: the run waiting for the writes it
                     handed over
    other            the rest of reconcile()'s wall time (the phases above are the
                     run's own thread: they add up to the wall time)
    read_group       (see above)
    apply            target.add_members + target.remove_members, in the writer
                     thread: it overlaps the phases above (a full run writes its adds
                     while it decides the next people), so it is not in their sum

Sub-timers (already inside the phases above): ``ldap:<operation>`` is the time spent in
``LdapSession.run`` per operation kind (request encoding, the round trip, response
decoding); ``apply.group_reread`` is ``LdapTarget._read_values`` called from inside
add/remove_members (each write call reads the whole group again);
``apply.evidence_digest`` is ``ledger.evidence_digest`` (one per audit entry).
RSS (VmRSS) is sampled after each phase call; ``peak_rss_mb`` is VmHWM, this
process's own high-water mark. Not ru_maxrss: Linux carries that across fork and
exec, so it would report the benchmark parent's size at the fork (the parent holds
the data set and maps the store file) instead of the reconcile's.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import sys
import threading
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


LDAP_OPS = ("read members", "resolve people", "modify", "check member", "find")


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", default="full")
    parser.add_argument("--profile", help="write cProfile stats of reconcile() here")
    parser.add_argument("--tracemalloc", action="store_true", help="also report Python-heap peak (slow)")
    parser.add_argument("--no-phases", action="store_true", help="no wrappers (pure wall time)")
    parser.add_argument("--memory", action="store_true",
                        help="tracemalloc: Python-heap peak and retained size per phase, and the top "
                             "allocation sites inside load_people (slow; not for timing)")
    args = parser.parse_args()

    started = time.perf_counter()
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("sync/**/*.py"), *ROOT.glob("mappings/*.py"), *ROOT.glob("mappings/*.yaml")]):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    code = digest.hexdigest()[:16]
    import sqlalchemy.orm.session as sa_session

    import sync.ledger as ledger
    import sync.reconcile as rec
    from connector.settings import Settings
    from sync.context import build_context

    ctx = build_context(Settings())
    target = ctx.target
    setup_s = time.perf_counter() - started
    rss_before = rss_mb()

    times: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    rss_after: dict[str, float] = {}
    local = threading.local()  # the phase stack of each thread (the writer thread has its own)

    def stack() -> list[str]:
        if not hasattr(local, "stack"):
            local.stack = []
        return local.stack

    heap: dict[str, dict] = {}
    window: list[tuple[float, float]] = []  # (start, end) of each modify request
    main = threading.current_thread()

    def timed(name: str, fn, *, sample_rss: bool = True):
        if inspect.isgeneratorfunction(fn):  # time the work done at each step, not the body of the loop over it
            def steps(*a, **k):
                it = fn(*a, **k)
                while True:
                    nested = name in stack()  # a generator of the same phase drives this one: counted there
                    stack().append(name)
                    t = time.perf_counter()
                    try:
                        item = next(it)
                    except StopIteration:
                        return
                    finally:
                        stack().pop()
                        if not nested:
                            times[name] += time.perf_counter() - t
                            calls[name] += 1
                    yield item
            return steps

        def wrapper(*a, **k):
            label = name
            stack().append(label)
            tracing = args.memory and sample_rss and len(stack()) == 1 and threading.current_thread() is main
            if tracing:
                tracemalloc.reset_peak()
                before = tracemalloc.get_traced_memory()[0]
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                times[label] += time.perf_counter() - t
                calls[label] += 1
                stack().pop()
                if sample_rss:
                    rss_after[label] = rss_mb()
                if tracing:
                    current, peak = tracemalloc.get_traced_memory()
                    entry = heap.setdefault(label, {"peak_mb": 0.0})
                    entry["peak_mb"] = round(max(entry["peak_mb"], peak / 2**20), 1)
                    entry["before_mb"] = round(before / 2**20, 1)
                    entry["after_mb"] = round(current / 2**20, 1)
        return wrapper

    sites: dict[str, list] = {}

    def top_sites(snapshot, limit: int = 12) -> list:
        stats = snapshot.statistics("lineno")
        return [{"site": f"{Path(st.traceback[0].filename).name}:{st.traceback[0].lineno}",
                 "mb": round(st.size / 2**20, 1), "blocks": st.count} for st in stats[:limit]]

    if args.memory:
        import sync.people as people_module

        tracemalloc.start(1)
        real_overrides = people_module._overrides

        def overrides_then_snapshot(*a, **k):  # users, memberships and losses are all loaded here
            out = real_overrides(*a, **k)
            label = "load_people: rows read, before facts (first call)"
            if label not in sites:  # a chunked reconcile calls it once per chunk: one snapshot is enough
                sites[label] = top_sites(tracemalloc.take_snapshot())
            return out
        people_module._overrides = overrides_then_snapshot
        real_load = rec.load_people

        def load_then_snapshot(*a, **k):
            out = real_load(*a, **k)
            label = "load_people: returned (people retained; first call)"
            if label not in sites:
                sites[label] = top_sites(tracemalloc.take_snapshot())
            return out
        rec.load_people = load_then_snapshot
        real_plan = rec.plan

        def plan_then_snapshot(*a, **k):  # a full run's last plan: everyone decided, nothing written yet
            if k.get("full"):
                sites["plan: everyone decided (the full plan)"] = top_sites(tracemalloc.take_snapshot())
            return real_plan(*a, **k)
        rec.plan = plan_then_snapshot

    wrapped: list[str] = []
    missing: list[str] = []

    def wrap(owner, attr: str, label: str, **kw) -> None:
        """Time ``owner.attr`` as ``label`` if it exists (sync/ is edited by others: names come and go)."""
        fn = getattr(owner, attr, None)
        where = f"{getattr(owner, '__name__', type(owner).__name__)}.{attr}"
        if fn is None:
            missing.append(where)
            return
        setattr(owner, attr, timed(label, fn, **kw))
        wrapped.append(where)

    if not args.no_phases:
        import sync.people as people_mod

        for fn in ("_users", "_approval_groups", "approval_groups", "_memberships", "_losses", "_overrides"):
            if hasattr(people_mod, fn):
                wrap(people_mod, fn, f"load_people.{fn.lstrip('_')}", sample_rss=False)
        wrap(people_mod, "user_to_facts", "load_people.user_to_facts", sample_rss=False)
        wrap(rec, "approval_groups", "cache_read")
        wrap(rec, "load_people", "load_people")
        wrap(ledger, "cached_entries", "cache_read")
        import sync.decisions as decisions_mod

        for fn in ("fingerprint", "bases"):
            wrap(decisions_mod, fn, "stored_decisions")
        wrap(decisions_mod, "survey", "stored_decisions")
        wrap(rec, "_survey", "stored_decisions")
        wrap(decisions_mod, "_extras", "stored_decisions.extras", sample_rss=False)
        wrap(decisions_mod, "save", "ledger_write")
        wrap(decisions_mod, "forget", "ledger_write")
        wrap(rec, "decide_all", "decide", sample_rss=False)
        wrap(rec, "_resolve", "resolve")
        wrap(target, "read_members", "read_group")
        wrap(rec, "plan", "plan")
        wrap(rec, "_guard", "guard")
        wrap(target, "add_members", "apply")
        wrap(target, "remove_members", "apply")
        import sync.writer as writer_mod

        wrap(writer_mod.Writer, "join", "writer_wait")
        import sync.recorder as recorder_mod

        wrap(recorder_mod.Recorder, "pend", "pend")
        wrap(recorder_mod.Recorder, "settle", "settle", sample_rss=False)
        for fn in ("start_run", "write_audit", "record_losses", "store_entries", "forget_entries", "finish_run"):
            wrap(ledger, fn, "ledger_write")
        wrap(ledger, "evidence_digest", "apply.evidence_digest", sample_rss=False)
        # every complete group read; those made inside add/remove_members are re-reads
        real_read_values = target._read_values

        def read_values(group):
            label = "apply.group_reread" if "apply" in stack() else "read_group.values"
            t = time.perf_counter()
            try:
                return real_read_values(group)
            finally:
                times[label] += time.perf_counter() - t
                calls[label] += 1
        target._read_values = read_values
        session = target._session
        real_run = session.run

        def run(description, operation):
            op = "ldap:" + next((p for p in LDAP_OPS if description.startswith(p)), description)
            t = time.perf_counter()
            try:
                return real_run(description, operation)
            finally:
                end = time.perf_counter()
                times[op] += end - t
                calls[op] += 1
                if op == "ldap:modify":
                    window.append((t, end))
        session.run = run
        real_commit = sa_session.SessionTransaction.commit

        def commit(self, *a, **k):
            t = time.perf_counter()
            try:
                return real_commit(self, *a, **k)
            finally:
                times["commit"] += time.perf_counter() - t
                calls["commit"] += 1
        sa_session.SessionTransaction.commit = commit

    if args.tracemalloc and not args.memory:
        tracemalloc.start()
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    import gc

    gc_time = [0.0, 0.0]  # seconds in collections, seconds in full (generation 2) collections
    gc_count = [0, 0]
    gc_start = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            gc_start[0] = time.perf_counter()
            return
        spent = time.perf_counter() - gc_start[0]
        gc_time[0] += spent
        gc_count[0] += 1
        if info.get("generation") == 2:
            gc_time[1] += spent
            gc_count[1] += 1
    gc.callbacks.append(on_gc)
    c0 = time.process_time()
    t0 = time.perf_counter()
    result = rec.reconcile(ctx, "walkin", kind=args.kind)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    gc.callbacks.remove(on_gc)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    heap_peak = None
    if args.tracemalloc or args.memory:
        heap_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    rss_end = rss_mb()
    target.close()
    ctx.store.dispose()

    top = ["load_people", "cache_read", "stored_decisions", "decide", "resolve", "plan", "guard", "pend",
           "ledger_write", "commit", "writer_wait"]
    phases = {k: round(times[k], 4) for k in top if k in times}
    if phases:
        phases["other"] = round(wall - sum(phases.values()), 4)
        for k in ("read_group", "apply", "settle"):  # in threads of their own, overlapping the phases above
            phases[k] = round(times[k], 4)
    subs = {k: round(v, 4) for k, v in times.items() if k not in phases}
    print(json.dumps({
        "code_sha256": code,
        "wrapped": wrapped,
        "missing": missing,
        "status": result.status.value,
        "counts": result.counts,
        "plan": {"adds": len(result.plan.adds), "removes": len(result.plan.removes),
                 "unresolved": len(result.plan.unresolved), "kept": result.plan.kept},
        "detail": result.detail,
        "wall_s": round(wall, 4),
        "setup_s": round(setup_s, 4),
        "cpu_s": round(cpu, 4),
        "gc": {"collections": gc_count[0], "seconds": round(gc_time[0], 3), "full_collections": gc_count[1],
               "full_seconds": round(gc_time[1], 3)},
        "phases_s": phases,
        # when the directory was being written: the first modify's start and the last
        # one's end, from the start of reconcile(); the rest of the wall time is the
        # run's head (reading, deciding the first people) and tail (recording)
        "writes_s": [round(window[0][0] - t0, 3), round(window[-1][1] - t0, 3)] if window else None,
        "sub_s": subs,
        "calls": dict(calls),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_phase_mb": {k: round(v, 1) for k, v in rss_after.items()},
        "rss_end_mb": round(rss_end, 1),
        "peak_rss_mb": round(rss_mb("VmHWM"), 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # see the docstring
        "heap_peak_mb": None if heap_peak is None else round(heap_peak, 1),
        "heap_by_phase": heap or None,
        "heap_sites": sites or None,
    }))


if __name__ == "__main__":
    main()
