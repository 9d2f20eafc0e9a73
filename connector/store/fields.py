"""What each filterable SCIM attribute path is stored in (lower-cased paths)."""

from __future__ import annotations

from connector.scim.filter_sql import Child, Column, FieldMap, Kind
from connector.scim.schema import Urn

from .models import CertificationRow, GroupRow, MemberRow, UserEmailRow, UserRow

# Table columns, not ORM attributes: a filter is compiled on every request, and
# plain columns build expressions and cache keys several times faster.
_user, _email, _cert, _group, _member = (
    m.__table__.c for m in (UserRow, UserEmailRow, CertificationRow, GroupRow, MemberRow)
)

_ENT = Urn.ENTERPRISE.value.lower() + ":"
_WALKIN = Urn.WALKIN.value.lower() + ":"

_groups_of_user = Child(
    link=lambda: _member.member_id == _user.id,
    table=MemberRow.__table__,
    subs={"value": Column(_member.group_id, Kind.EXACT)},
)

USER_FIELDS = FieldMap(
    {
        "id": Column(_user.id, Kind.EXACT),
        "externalid": Column(_user.external_id, Kind.EXACT),
        "username": Column(_user.user_name),
        "displayname": Column(_user.display_name),
        "nickname": Column(_user.nick_name),
        "title": Column(_user.title),
        "usertype": Column(_user.user_type),
        "active": Column(_user.active, Kind.BOOL),
        "name.formatted": Column(_user.name_formatted),
        "name.familyname": Column(_user.name_family),
        "name.givenname": Column(_user.name_given),
        "meta.created": Column(_user.created, Kind.DATETIME),
        "meta.lastmodified": Column(_user.last_modified, Kind.DATETIME),
        "emails": Child(
            link=lambda: _email.user_id == _user.id,
            table=UserEmailRow.__table__,
            subs={
                "value": Column(_email.value),
                "type": Column(_email.type),
                "primary": Column(_email.primary, Kind.BOOL),
            },
        ),
        "groups": _groups_of_user,
        _ENT + "employeenumber": Column(_user.employee_number),
        _ENT + "department": Column(_user.department),
        _ENT + "costcenter": Column(_user.cost_center),
        _ENT + "organization": Column(_user.organization),
        _ENT + "division": Column(_user.division),
        _ENT + "manager.value": Column(_user.manager_id, Kind.EXACT),
        _ENT + "manager": Column(_user.manager_id, Kind.EXACT),
        _WALKIN + "jobcode": Column(_user.job_code),
        _WALKIN + "locationcode": Column(_user.location_code),
        _WALKIN + "assignmentstartdate": Column(_user.assignment_start),
        _WALKIN + "certifications": Child(
            link=lambda: _cert.user_id == _user.id,
            table=CertificationRow.__table__,
            subs={
                "course": Column(_cert.course),
                "kind": Column(_cert.kind),
                "completedon": Column(_cert.completed_on),
            },
            default="course",
        ),
    }
)

GROUP_FIELDS = FieldMap(
    {
        "id": Column(_group.id, Kind.EXACT),
        "externalid": Column(_group.external_id, Kind.EXACT),
        "displayname": Column(_group.display_name),
        "meta.created": Column(_group.created, Kind.DATETIME),
        "meta.lastmodified": Column(_group.last_modified, Kind.DATETIME),
        "members": Child(
            link=lambda: _member.group_id == _group.id,
            table=MemberRow.__table__,
            subs={"value": Column(_member.member_id, Kind.EXACT), "type": Column(_member.member_type, Kind.EXACT)},
        ),
    }
)

# Conditions on the member table alone, for ``remove members[type eq "User"]``.
MEMBER_FIELDS = FieldMap(
    {
        "value": Column(_member.member_id, Kind.EXACT),
        "type": Column(_member.member_type, Kind.EXACT),
    }
)

# Sorting (RFC 7644 §3.4.2.3) on single-valued attributes only.
USER_SORT = {k: v.column for k, v in USER_FIELDS.fields.items() if isinstance(v, Column)}
GROUP_SORT = {k: v.column for k, v in GROUP_FIELDS.fields.items() if isinstance(v, Column)}
