"""What each filterable SCIM attribute path is stored in (lower-cased paths)."""

from __future__ import annotations

from connector.scim.filters import Child, Column, FieldMap, Kind
from connector.scim.schema import Urn

from .models import CertificationRow, GroupRow, MemberRow, UserEmailRow, UserRow

_ENT = Urn.ENTERPRISE.value.lower() + ":"
_WALKIN = Urn.WALKIN.value.lower() + ":"

_groups_of_user = Child(
    link=lambda: MemberRow.member_id == UserRow.id,
    table=MemberRow,
    subs={"value": Column(MemberRow.group_id, Kind.EXACT)},
)

USER_FIELDS = FieldMap({
    "id": Column(UserRow.id, Kind.EXACT),
    "externalid": Column(UserRow.external_id, Kind.EXACT),
    "username": Column(UserRow.user_name),
    "displayname": Column(UserRow.display_name),
    "nickname": Column(UserRow.nick_name),
    "title": Column(UserRow.title),
    "usertype": Column(UserRow.user_type),
    "active": Column(UserRow.active, Kind.BOOL),
    "name.formatted": Column(UserRow.name_formatted),
    "name.familyname": Column(UserRow.name_family),
    "name.givenname": Column(UserRow.name_given),
    "meta.created": Column(UserRow.created, Kind.DATETIME),
    "meta.lastmodified": Column(UserRow.last_modified, Kind.DATETIME),
    "emails": Child(
        link=lambda: UserEmailRow.user_id == UserRow.id,
        table=UserEmailRow,
        subs={
            "value": Column(UserEmailRow.value),
            "type": Column(UserEmailRow.type),
            "primary": Column(UserEmailRow.primary, Kind.BOOL),
        },
    ),
    "groups": _groups_of_user,
    _ENT + "employeenumber": Column(UserRow.employee_number),
    _ENT + "department": Column(UserRow.department),
    _ENT + "costcenter": Column(UserRow.cost_center),
    _ENT + "organization": Column(UserRow.organization),
    _ENT + "division": Column(UserRow.division),
    _ENT + "manager.value": Column(UserRow.manager_id, Kind.EXACT),
    _ENT + "manager": Column(UserRow.manager_id, Kind.EXACT),
    _WALKIN + "jobcode": Column(UserRow.job_code),
    _WALKIN + "locationcode": Column(UserRow.location_code),
    _WALKIN + "assignmentstartdate": Column(UserRow.assignment_start),
    _WALKIN + "certifications": Child(
        link=lambda: CertificationRow.user_id == UserRow.id,
        table=CertificationRow,
        subs={
            "course": Column(CertificationRow.course),
            "kind": Column(CertificationRow.kind),
            "completedon": Column(CertificationRow.completed_on),
        },
        default="course",
    ),
})

GROUP_FIELDS = FieldMap({
    "id": Column(GroupRow.id, Kind.EXACT),
    "externalid": Column(GroupRow.external_id, Kind.EXACT),
    "displayname": Column(GroupRow.display_name),
    "meta.created": Column(GroupRow.created, Kind.DATETIME),
    "meta.lastmodified": Column(GroupRow.last_modified, Kind.DATETIME),
    "members": Child(
        link=lambda: MemberRow.group_id == GroupRow.id,
        table=MemberRow,
        subs={"value": Column(MemberRow.member_id, Kind.EXACT), "type": Column(MemberRow.member_type, Kind.EXACT)},
    ),
})

# Conditions on the member table alone, for ``remove members[type eq "User"]``.
MEMBER_FIELDS = FieldMap({
    "value": Column(MemberRow.member_id, Kind.EXACT),
    "type": Column(MemberRow.member_type, Kind.EXACT),
})

# Sorting (RFC 7644 §3.4.2.3) on single-valued attributes only.
USER_SORT = {k: v.column for k, v in USER_FIELDS.fields.items() if isinstance(v, Column)}
GROUP_SORT = {k: v.column for k, v in GROUP_FIELDS.fields.items() if isinstance(v, Column)}
