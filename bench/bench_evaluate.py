"""Benchmark ``walkin evaluate`` end to end on realistic person facts.

Generates PEOPLE facts lines (default 100,000) into a temporary file, then runs
``python -m mappings.cli evaluate`` as a subprocess, once for every entitlement of the
shipped mapping and once with ``--entitlement walkin``, and prints people/s and
decisions/s (wall clock, including interpreter start-up and the mapping load; the
fastest of --repeat runs, with its CPU time, since other work on the machine slows
single runs).

    python bench/bench_evaluate.py [--people 100000] [--target 20000] [--repeat 3]

Exits 1 when a run falls below the target decisions/s.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

AT = date(2026, 11, 29)
COURSES = {
    "walkin": "Walk-In Scheduling Certification",
    "elementary_scheduling": "Elementary Scheduling Certification",
    "secondary_scheduling": "Secondary Scheduling Certification",
}
# (role, weight, works at a school)
ROLES = [
    ("Office Professional", 20, True),
    ("School Counselor", 10, True),
    ("Teacher", 45, True),
    ("Paraprofessional", 8, True),
    ("Principal", 4, True),
    ("Analyst", 13, False),
]
SCHOOLS = [f"{n:04d}" for n in range(1, 201)]
CENTRAL = [f"C{n}" for n in range(100, 121)]


def _day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _completions(rng: random.Random, course: str) -> list[dict[str, str]]:
    """A full course, then renewals (mostly quizzes) until someone stops renewing."""
    day = _day(rng, date(2019, 8, 1), date(2025, 6, 30))
    found = [{"course": course, "kind": "full", "completed_on": day.isoformat()}]
    while day < AT - timedelta(days=250) and rng.random() < 0.9:
        day += timedelta(days=rng.randrange(200, 480))  # now and then too late
        kind = "full" if rng.random() < 0.15 else "recert"
        found.append({"course": course, "kind": kind, "completed_on": day.isoformat()})
    return found


def person(rng: random.Random) -> dict[str, object]:
    """One person's facts, shaped like the connector's facts for a real district."""
    role, _, at_school = rng.choices(ROLES, weights=[weight for _, weight, _ in ROLES])[0]
    location = rng.choice(SCHOOLS if at_school else CENTRAL)
    start = _day(rng, date(2012, 8, 1), AT)
    certifications: list[dict[str, str]] = []
    approvals: list[dict[str, str]] = []
    lost: dict[str, str] = {}
    overrides: list[dict[str, str]] = []
    # Office staff and counselors are who the access is for: most of them hold it.
    usual = role in ("Office Professional", "School Counselor")
    if rng.random() < (0.85 if usual else 0.3):
        certifications += _completions(rng, COURSES["walkin"])
        for name in ("elementary_scheduling", "secondary_scheduling"):
            if rng.random() < 0.3:
                certifications += _completions(rng, COURSES[name])
    if rng.random() < (0.9 if usual else 0.3):
        for _ in range(rng.choice([1, 1, 1, 2])):
            approved = _day(rng, start - timedelta(days=400), AT + timedelta(days=10))
            place = location if rng.random() < 0.85 else rng.choice(SCHOOLS)
            approvals.append(
                {"entitlement": "walkin", "location": place, "approved_on": approved.isoformat(), "approver": f"principal-{place}"}
            )
    if rng.random() < 0.1:
        lost["walkin"] = _day(rng, date(2024, 7, 1), AT).isoformat()
    if rng.random() < 0.01:
        overrides.append(
            {
                "entitlement": rng.choice(list(COURSES)),
                "effect": rng.choice(["grant", "deny"]),
                "until": _day(rng, AT - timedelta(days=60), AT + timedelta(days=200)).isoformat(),
                "reason": "ticket INC-" + str(rng.randrange(10**6)),
                "by": "admin@example.org",
            }
        )
    return {
        "id": f"{rng.getrandbits(128):032x}",
        "active": rng.random() < 0.95,
        "role": role,
        "location": location,
        "location_type": "school" if at_school else "central",
        "assignment_start": start.isoformat(),
        "certifications": certifications,
        "approvals": approvals,
        "lost_access_on": lost,
        "overrides": overrides,
    }


def write_facts(path: Path, people: int, seed: int = 3) -> None:
    """Write ``people`` facts lines to ``path``."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(people):
            out.write(json.dumps(person(rng)) + "\n")


def run(facts: Path, extra: list[str]) -> tuple[float, float, int, int]:
    """Run evaluate as a subprocess; return (wall s, CPU s, decisions written, entitled)."""
    command = [sys.executable, "-m", "mappings.cli", "evaluate", str(facts), "--at", AT.isoformat(), *extra]
    with tempfile.TemporaryFile("w+b") as out:
        cpu_before = _children_cpu()
        started = time.perf_counter()
        subprocess.run(command, stdout=out, check=True, cwd=Path(__file__).resolve().parents[1])
        seconds = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
        out.seek(0)
        decisions = entitled = 0
        for line in out:
            decisions += 1
            entitled += b'"entitled":true' in line
    return seconds, cpu, decisions, entitled


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--target", type=float, default=20_000, help="minimum decisions/s (wall clock)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the fastest counts")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        facts = Path(tmp) / "facts.jsonl"
        write_facts(facts, args.people)
        size = facts.stat().st_size / 1e6
        print(f"{args.people:,} people, {size:.1f} MB of facts, --at {AT.isoformat()}, best of {args.repeat}")
        for label, extra in (("all entitlements", []), ("--entitlement walkin", ["--entitlement", "walkin"])):
            seconds, cpu, decisions, entitled = min(run(facts, extra) for _ in range(args.repeat))
            rate = decisions / seconds
            failed |= rate < args.target
            print(
                f"{label:>22}: {decisions:,} decisions ({entitled:,} entitled) in {seconds:.2f} s "
                f"(CPU {cpu:.2f} s) = {args.people / seconds:,.0f} people/s, {rate:,.0f} decisions/s "
                f"[{decisions / cpu:,.0f} decisions per CPU-second]"
                f"{'' if rate >= args.target else f'  BELOW TARGET {args.target:,.0f}'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
