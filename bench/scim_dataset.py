"""Deterministic, realistic SCIM payloads for the SCIM benchmark (bench_scim.py).

``build(n_users, seed)`` returns the same users and groups every time it is called
with the same arguments, so the benchmark process, the server processes and the
load-generator processes can each rebuild the dataset instead of passing it around.

Users are SCIM payloads shaped like Entra's POST /Users (core + enterprise +
walkin extension); every user carries a fixed id so that both servers store the
same resources under the same ids and the client knows them without asking.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WALKIN = "urn:ietf:params:scim:schemas:extension:walkin:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

DOMAIN = "district.org"
APPROVAL_GROUPS = 200
BIG_GROUP_SIZE = 50_000
BIG_GROUP_NAME = "WalkIn-All-Staff"

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Margaret", "Donald", "Ashley", "Steven", "Kimberly", "Andrew", "Emily", "Paul", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda", "Brian", "Melissa", "George", "Deborah", "Timothy", "Stephanie", "Ronald", "Rebecca", "Jason", "Sharon", "Edward", "Laura", "Jeffrey", "Cynthia", "Ryan", "Dorothy", "Jacob", "Amy", "Gary", "Kathleen", "Nicholas", "Angela", "Eric", "Shirley", "Jonathan", "Emma", "Stephen", "Brenda", "Larry", "Pamela", "Justin", "Nicole", "Scott", "Anna", "Brandon", "Samantha", "Benjamin", "Katherine", "Samuel", "Christine", "Gregory", "Debra", "Alexander", "Rachel", "Patrick", "Carolyn", "Frank", "Janet", "Raymond", "Maria", "Jack", "Olivia", "Dennis", "Heather", "Jerry", "Helen", "Tyler", "Catherine", "Aaron", "Diane", "Jose", "Julie", "Adam", "Victoria", "Nathan", "Joyce", "Henry", "Lauren", "Zachary", "Kelly", "Douglas", "Christina", "Peter", "Ruth", "Kyle", "Joan", "Noah", "Virginia", "Ethan", "Judith", "Jeremy", "Evelyn", "Walter", "Hannah", "Christian", "Andrea", "Keith", "Megan", "Roger", "Cheryl", "Terry", "Jacqueline", "Austin", "Madison", "Sean", "Teresa", "Gerald", "Abigail", "Carl", "Sophia", "Harold", "Martha", "Dylan", "Sara", "Arthur", "Gloria", "Lawrence", "Janice", "Jordan", "Kathryn", "Jesse", "Ann", "Bryan", "Isabella", "Billy", "Judy", "Bruce", "Charlotte", "Gabriel", "Julia", "Joe", "Grace", "Logan", "Amber", "Alan", "Alice", "Juan", "Jean", "Albert", "Denise", "Willie", "Frances", "Elijah", "Danielle", "Wayne", "Marilyn", "Randy", "Natalie", "Vincent", "Beverly", "Mason", "Diana", "Roy", "Brittany", "Ralph", "Theresa", "Bobby", "Kayla", "Russell", "Alexis", "Bradley", "Doris", "Philip", "Lori", "Eugene", "Tiffany"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Vazquez", "Hansen", "Peters", "Santos", "Hart", "Bradley", "Knight"]
# (title, job code, weight, works at a school)
ROLES = [
    ("Office Professional", "OP210", 20, True),
    ("School Counselor", "SC340", 10, True),
    ("Teacher", "TE100", 45, True),
    ("Paraprofessional", "PP120", 8, True),
    ("Principal", "PR500", 4, True),
    ("Analyst", "AN700", 13, False),
]
DEPARTMENTS = ["Instruction", "Student Services", "Operations", "Information Technology", "Human Resources",
               "Finance", "Special Education", "Transportation"]
SCHOOLS = [f"{n:04d}" for n in range(1, 201)]
CENTRAL = [f"C{n}" for n in range(100, 121)]
COURSES = ["Walk-In Scheduling Certification", "Elementary Scheduling Certification",
           "Secondary Scheduling Certification"]
AT = date(2026, 11, 29)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _certifications(rng: random.Random) -> list[dict]:
    out: list[dict] = []
    if rng.random() >= 0.6:
        return out
    for course in COURSES if rng.random() < 0.3 else COURSES[:1]:
        day = _day(rng, date(2019, 8, 1), AT)
        out.append({"course": course, "kind": "full", "completedOn": day.isoformat()})
        for _ in range(rng.choice([0, 0, 1, 2])):
            day = day + timedelta(days=rng.randrange(200, 700))
            out.append({"course": course, "kind": rng.choice(["recert", "recert", "full"]),
                        "completedOn": day.isoformat()})
    return out


def user_payload(rng: random.Random, index: int, *, tag: str = "") -> dict:
    """One Entra-shaped POST /Users body (no id). ``index`` makes userName,
    externalId and employeeNumber unique; ``tag`` separates users made during a run."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    title, job, _, at_school = rng.choices(ROLES, weights=[r[2] for r in ROLES])[0]
    user_name = f"{first}.{last}{tag}{index}@{DOMAIN}".lower()
    return {
        "schemas": [CORE_USER, ENTERPRISE, WALKIN],
        "externalId": f"{tag}{_uuid(rng)}",
        "userName": user_name,
        "active": True,
        "displayName": f"{first} {last}",
        "title": title,
        "emails": [{"primary": True, "type": "work", "value": user_name}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": f"{first} {last}", "familyName": last, "givenName": first},
        "roles": [],
        ENTERPRISE: {"employeeNumber": f"{tag}{100000 + index}", "department": rng.choice(DEPARTMENTS)},
        WALKIN: {
            "jobCode": job,
            "locationCode": rng.choice(SCHOOLS if at_school else CENTRAL),
            "assignmentStartDate": _day(rng, date(2012, 8, 1), AT).isoformat(),
            "certifications": _certifications(rng),
        },
    }


@dataclass
class Group:
    id: str
    payload: dict          # POST /Groups body, without members
    member_ids: list[str]  # user ids


@dataclass
class Dataset:
    n_users: int
    seed: int
    user_ids: list[str] = field(default_factory=list)
    user_names: list[str] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)  # payloads, aligned with user_ids
    groups: list[Group] = field(default_factory=list)
    big_group: Group | None = None
    outside_big: list[str] = field(default_factory=list)  # user ids not in the big group


def build(n_users: int, seed: int = 20261129, *, payloads: bool = True) -> Dataset:
    """The dataset: ``n_users`` users, 200 approval groups ``WalkIn-Approvers-0001``…
    (members: about 1 in 8 users spread over them, at least 5 each), and one
    ``WalkIn-All-Staff`` group holding min(50,000, n/2) users.

    ``payloads=False`` skips keeping the user bodies (the client only needs ids
    and userNames) but draws the same random numbers, so ids stay identical.
    """
    rng = random.Random(seed * 1_000_003 + n_users)
    ds = Dataset(n_users, seed)
    for i in range(n_users):
        uid = _uuid(rng)
        body = user_payload(rng, i)
        ds.user_ids.append(uid)
        ds.user_names.append(body["userName"])
        if payloads:
            ds.users.append(body)
    grng = random.Random(seed * 7 + n_users)
    per_group = max(5, n_users // (8 * APPROVAL_GROUPS))
    for g in range(1, APPROVAL_GROUPS + 1):
        name = f"WalkIn-Approvers-{g:04d}"
        ds.groups.append(Group(
            id=_uuid(grng),
            payload={"schemas": [CORE_GROUP], "externalId": _uuid(grng), "displayName": name},
            member_ids=grng.sample(ds.user_ids, min(per_group, n_users)),
        ))
    size = min(BIG_GROUP_SIZE, n_users // 2)
    chosen = set(grng.sample(range(n_users), size))
    big = Group(
        id=_uuid(grng),
        payload={"schemas": [CORE_GROUP], "externalId": _uuid(grng), "displayName": BIG_GROUP_NAME},
        member_ids=[ds.user_ids[i] for i in sorted(chosen)],
    )
    ds.groups.append(big)
    ds.big_group = big
    ds.outside_big = [ds.user_ids[i] for i in range(n_users) if i not in chosen]
    return ds
