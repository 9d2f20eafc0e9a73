"""What each admin API route accepts: its query parameters and JSON body, as pydantic
models with ``extra="forbid"`` — an unknown or misspelt parameter is a 400 naming it,
never silently ignored. The OpenAPI document is generated from these same models
(connector/admin/openapi.py), so what is described is what is checked."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mappings.calendar import FIRST_DAY, LAST_DAY
from mappings.vocabulary import Effect

MAX_PAGE = 1000
MAX_OFFSET = 10_000_000  # beyond any report of a district (and within every database integer)

# No control characters in a name, none but tab and line breaks in a text: PostgreSQL
# text cannot hold NUL, and no userName, location code or reason needs the others.
Text = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=2000, pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
    ),
]
Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


class Page(Strict):
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Rows skipped.")
    limit: int = Field(default=100, ge=1, le=MAX_PAGE, description="Rows returned at most.")


class ReportQuery(Page):
    entitlement: Name = "walkin"
    location: Name | None = Field(default=None, description="Only people at this location code.")
    role: Name | None = Field(default=None, description="Only people in this role (after the job-code table).")
    since: Day | None = Field(
        default=None, description="Period start, a district day (losses, drift, unresolved, failed)."
    )
    until: Day | None = Field(default=None, description="Period end, inclusive (default: today).")
    within_days: int | None = Field(default=None, ge=0, le=3660, description="Window in days (expiring).")
    overdue: bool = Field(default=False, description="pending: only those past their deadline.")
    format: Format = Field(default=Format.JSON, description="csv: every row (not paged), for a spreadsheet.")


class PersonQuery(Strict):
    entitlement: Name = "walkin"
    at: Day | None = Field(default=None, description="Evaluation day (default: today, district time).")


class HistoryQuery(Page):
    at: Day | None = Field(default=None, description="Only what happened by the end of this day, and access then.")


class OverrideQuery(Page):
    user: Name | None = Field(default=None, description="Only this person's (userName, externalId or id).")
    include_ended: bool = False


class ApprovalQuery(Page):
    user: Name | None = Field(default=None, description="Only this person's (userName, externalId or id).")
    location: Name | None = None
    include_withdrawn: bool = False


class RunsQuery(Page):
    entitlement: Name = "walkin"


class OverrideBody(Strict):
    user: Name = Field(description="userName, externalId or id.")
    entitlement: Name = "walkin"
    effect: Effect
    until: Day = Field(description="Last day it applies (inclusive); at most WALKIN_ADMIN__MAX_OVERRIDE_DAYS ahead.")
    reason: Text


class EndBody(Strict):
    reason: Text


class ApprovalBody(Strict):
    user: Name = Field(description="userName, externalId or id of the person approved.")
    location: Name = Field(description="The location code the approval is for.")
    entitlement: Name = "walkin"


class SimulateBody(Strict):
    at: Day | None = Field(default=None, description="Decide on this day (default: today).")
    mapping: str | None = Field(
        default=None,
        pattern=r"^[^\x00]*$",
        description="A proposed mapping's YAML text (at most WALKIN_ADMIN__MAX_SIMULATE_MAPPING_BYTES).",
    )


class ReleaseBody(Strict):
    confirm_held: int = Field(
        ge=1,
        description="How many removals the run holds, as the caller saw them: a release of a different set is refused.",
    )
