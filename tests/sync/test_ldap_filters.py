"""Filters and DNs built by sync/targets/ldap_filters.py: no value changes their meaning."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ldap3.operation.search import MATCH_EQUAL, parse_filter
from pydantic import ValidationError

from sync.targets import ldap3_import  # noqa: F401  (imports ldap3 without pyasn1's deprecation warnings)
from sync.targets.ldap_filters import (
    check_attribute,
    equality,
    fold_key,
    match_any,
    match_any_chunks,
    normalise_dn,
    parse_dn,
    parse_range,
    ranged,
    rdn,
)
from sync.targets.ldap_settings import LdapSettings

from .slapd import child_dn

NASTY = ["*", "a*", "*)(uid=*", "a(b)", ")(|(uid=*", "a\\b", "\\2a", "a\x00b", "\x00", "a,b", "a+b", "a=b",
         "#x", " lead", "trail ", "é", "Ünïcødé 漢字", "a;b", 'a"b', "a<b>", "(&)", "\\", "a\\", "(", ")"]


# ------------------------------------------------------------ an independent RFC 4515 reader


def read_filter(text: str) -> tuple:
    """Parse an RFC 4515 filter into ('|'|'&', [...]), ('!', f), ('=', attr, bytes),
    ('present', attr) or ('substring', attr, raw) — written for these tests, so the
    checks do not trust the code under test or ldap3's lenient parser."""
    node, end = _read(text.encode(), 0)
    if end != len(text.encode()):
        raise ValueError(f"trailing text after filter: {text!r}")
    return node


def _read(data: bytes, i: int) -> tuple[tuple, int]:
    if data[i:i + 1] != b"(":
        raise ValueError("expected (")
    i += 1
    head = data[i:i + 1]
    if head in (b"|", b"&"):
        i += 1
        parts = []
        while data[i:i + 1] == b"(":
            part, i = _read(data, i)
            parts.append(part)
        if data[i:i + 1] != b")":
            raise ValueError("expected ) after set")
        return (head.decode(), parts), i + 1
    if head == b"!":
        part, i = _read(data, i + 1)
        if data[i:i + 1] != b")":
            raise ValueError("expected ) after not")
        return ("!", part), i + 1
    equal = data.index(b"=", i)
    attr = data[i:equal].decode()
    j = equal + 1
    value = bytearray()
    star = False
    while data[j:j + 1] != b")":
        if j >= len(data):
            raise ValueError("unterminated item")
        char = data[j:j + 1]
        if char == b"\\":
            value += bytes.fromhex(data[j + 1:j + 3].decode())
            j += 3
        elif char in (b"(", b"\x00"):
            raise ValueError("unescaped ( or NUL in a value")
        else:
            star = star or char == b"*"
            value += char
            j += 1
    raw = data[equal + 1:j]
    if star:
        return (("present", attr) if raw == b"*" else ("substring", attr, bytes(raw))), j + 1
    return ("=", attr, bytes(value)), j + 1


def equalities(values: list[str], attribute: str = "uid") -> tuple:
    terms = [("=", attribute, v.encode()) for v in values]
    return terms[0] if len(terms) == 1 else ("|", terms)


# ------------------------------------------------------------ filters


@pytest.mark.parametrize("value", NASTY, ids=repr)
def test_equality_matches_exactly_the_value(value):
    """(uid=<value>) is one equality assertion on the whole value, whatever it contains."""
    assert read_filter(equality("uid", value)) == ("=", "uid", value.encode())


def test_match_any_is_one_equality_per_value():
    """(|(uid=a)(uid=b)…) holds exactly one equality per value, in order."""
    assert read_filter(match_any("uid", NASTY)) == equalities(NASTY)


def test_match_any_escapes_filter_metacharacters():
    """The five RFC 4515 metacharacters are hex-escaped; nothing else is touched."""
    assert match_any("uid", ["*", "a(b)", "a\\b", "a\x00b", "é"]) == (
        "(|(uid=\\2a)(uid=a\\28b\\29)(uid=a\\5cb)(uid=a\\00b)(uid=é))")


def test_ldap3_reads_the_same_filter():
    """ldap3's own filter parser (what goes on the wire) sees one equality per value."""
    tree = parse_filter(match_any("uid", NASTY), None, auto_escape=False, auto_encode=True, validator=None,
                        check_names=False)
    terms = tree.elements[0].elements
    assert [t.tag for t in terms] == [MATCH_EQUAL] * len(NASTY)
    assert all(t.assertion["attr"] == "uid" for t in terms)


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=8))
def test_any_values_keep_their_meaning(values):
    """Property: for arbitrary text, the filter asserts equality with exactly those values."""
    assert read_filter(match_any("uid", values)) == equalities(values)


def test_match_any_refuses_no_values():
    """An empty (|) would match nothing on one server and be an error on another."""
    with pytest.raises(ValueError):
        match_any("uid", [])


@pytest.mark.parametrize("attribute", ["uid=*)(cn", "uid)", "", "1uid", "member;range=0-*", "u id", "uid*"])
def test_attribute_names_are_checked(attribute):
    """Attribute names are descr or numericoid (RFC 4512 §1.4), so a typo cannot inject."""
    with pytest.raises(ValueError):
        equality(attribute, "x")


@pytest.mark.parametrize("attribute", ["uid", "employeeID", "sAMAccountName", "x-custom-1", "2.5.4.3"])
def test_valid_attribute_names(attribute):
    """Valid names pass unchanged."""
    assert check_attribute(attribute) == attribute


def test_chunks_bound_values_and_length():
    """match_any_chunks keeps every value once, ≤ max_values per filter and ≤ max_chars."""
    values = [f"user{i:04d}" for i in range(1000)] + ["x" * 50] * 3
    chunks = list(match_any_chunks("uid", values, max_values=200, max_chars=3000))
    assert [v for _, chunk in chunks for v in chunk] == values
    assert all(len(chunk) <= 200 and len(f) <= 3000 for f, chunk in chunks)
    assert all(read_filter(f) == equalities(chunk) for f, chunk in chunks)


def test_chunk_with_one_long_value():
    """A single value longer than max_chars still gets its own filter."""
    chunks = list(match_any_chunks("uid", ["a", "b" * 100, "c"], max_chars=50))
    assert [chunk for _, chunk in chunks] == [["a"], ["b" * 100], ["c"]]


# ------------------------------------------------------------ DNs


@pytest.mark.parametrize("value", NASTY, ids=repr)
def test_child_dn_names_exactly_one_rdn(value):
    """uid=<value>,<parent> parses back to the value as one RDN below the parent."""
    dn = child_dn("uid", value, "ou=people,dc=example,dc=org")
    assert parse_dn(dn) == [[("uid", value, False)],
                            [("ou", "people", False)], [("dc", "example", False)], [("dc", "org", False)]]


@given(st.text(min_size=1, max_size=20))
def test_any_rdn_value_round_trips(value):
    """Property: escaping then parsing gives the value back, as a single AVA."""
    assert parse_dn(rdn("cn", value)) == [[("cn", value, False)]]


def test_nul_is_escaped_as_hex_pair():
    """RFC 4514 wants NUL as \\00 (escape_rdn writes a backslash and a raw NUL)."""
    assert rdn("uid", "a\x00b") == "uid=a\\00b"


@pytest.mark.parametrize(("left", "right"), [
    ("uid=Alice,ou=People,dc=Example,dc=org", "uid=alice,ou=people,dc=example,dc=org"),
    ("UID=alice, ou=people, dc=example, dc=org", "uid=alice,ou=people,dc=example,dc=org"),
    ("uid=a\\2Cb,dc=x", "uid=a\\,b,dc=x"),
    ("uid=a\\5Cb,dc=x", "uid=a\\\\b,dc=x"),
    ("uid=\\C3\\89lodie,dc=x", "uid=élodie,dc=x"),
    ("cn=B+uid=a,dc=x", "uid=A+cn=b,dc=x"),
    ("uid=a=b,dc=x", "uid=a\\=b,dc=x"),
    ("uid=\\23x,dc=x", "uid=\\#x,dc=x"),
    ("uid=a  b,dc=x", "uid=a b,dc=x"),
    ("CN=Walk-in Scheduling,OU=Groups,DC=corp", "cn=walk-in scheduling,ou=groups,dc=corp"),
], ids=["case", "spaces", "hex-comma", "hex-backslash", "hex-utf8", "multi-valued-rdn", "equals", "hash",
        "inner-spaces", "ad-style"])
def test_normalise_dn_equates_spellings(left, right):
    """Spellings of one DN normalise to the same string."""
    assert normalise_dn(left) == normalise_dn(right)


@pytest.mark.parametrize(("left", "right"), [
    ("uid=a\\,b,dc=x", "uid=a,b=,dc=x"),
    ("uid=a\\+b,dc=x", "uid=a+b=,dc=x"),
    ("uid=ab,dc=x", "uid=a\\00b,dc=x"),
    ("uid=alice,ou=people,dc=x", "uid=alice,ou=staff,dc=x"),
], ids=["escaped-comma", "escaped-plus", "nul", "other-ou"])
def test_normalise_dn_keeps_different_dns_apart(left, right):
    """Escaped separators and NUL stay part of the value."""
    assert normalise_dn(left) != normalise_dn(right)


@given(st.text(min_size=1, max_size=20).filter(lambda v: v.strip(" ")))
def test_normalise_is_idempotent(value):
    """Property: normalising twice changes nothing."""
    once = normalise_dn(child_dn("uid", value, "dc=example,dc=org"))
    assert normalise_dn(once) == once


@pytest.mark.parametrize("dn", ["", "   ", "uid", "=x", "uid=a,", "uid=a\\", "uid=#zz", "u id=a", "uid=\\FF"])
def test_normalise_dn_refuses_non_dns(dn):
    """Malformed DNs raise ValueError."""
    with pytest.raises(ValueError):
        normalise_dn(dn)


def test_ranged_attribute_descriptions():
    """ranged() asks AD for the next slice; parse_range() reads the returned one."""
    assert ranged("member", 1500) == "member;range=1500-*"
    assert parse_range("member;range=0-1499") == ("member", 0, 1499)
    assert parse_range("Member;Range=3000-*") == ("Member", 3000, None)
    assert parse_range("member") is None
    assert parse_range("member;binary") is None


@pytest.mark.parametrize(("value", "insensitive", "expected"), [
    ("Alice", True, "alice"), ("Alice", False, "Alice"), ("  a   b ", True, "a b"), ("ÉLODIE", True, "élodie"),
])
def test_fold_key(value, insensitive, expected):
    """Keys compare like caseIgnoreMatch / caseExactMatch (insignificant spaces dropped)."""
    assert fold_key(value, case_insensitive=insensitive) == expected


# ------------------------------------------------------------ settings


def test_settings_defaults():
    """Minimal settings: permissive modify on, batch 500, page 1000."""
    s = LdapSettings(urls=["ldap://dc1"], people_base="ou=people,dc=example,dc=org")
    assert (s.use_permissive_modify, s.batch_size, s.page_size, s.member_attribute) == (True, 500, 1000, "member")
    assert not LdapSettings(urls=["ldap://dc1"], people_base="x", permissive_modify=False).use_permissive_modify


@pytest.mark.parametrize("overrides", [
    {"urls": []}, {"urls": ["http://dc1"]}, {"flavour": "novell"}, {"batch_size": 0},
    {"bind_password": "x"}, {"urls": ["ldaps://dc1"], "start_tls": True}, {"people_filter": "objectClass=x"},
    {"unknown": 1}, {"sasl_mechanism": "GSSAPI"},
], ids=["no-url", "http", "flavour", "batch", "password-without-dn", "ldaps+starttls", "filter", "extra", "sasl"])
def test_settings_refuse_mistakes(overrides):
    """Settings mistakes stop start-up."""
    values = {"urls": ["ldap://dc1"], "people_base": "ou=people,dc=example,dc=org"} | overrides
    with pytest.raises(ValidationError):
        LdapSettings(**values)


def test_settings_fields_are_documented():
    """Every field carries its attribute docstring (shown by the CLI and docs)."""
    assert all(f.description for f in LdapSettings.model_fields.values())


def test_a_value_of_one_space_round_trips():
    """ldap3's escape_rdn escapes a lone space twice; ours writes it once (found by hypothesis)."""
    from sync.targets.ldap_filters import parse_dn, rdn

    assert rdn("cn", " ") == "cn=\\ "
    assert parse_dn(rdn("cn", " ")) == [[("cn", " ", False)]]


_VALUE_PIECES = st.sampled_from(["a", "B", "0", "-", ".", "_", "@", " ", "  ", "#", "#0a", "=", "+", ",", ";", "\\",
                                 "\\2C", '"', "<", "é", "\u212a", "\u0130", "\x00"])
_DN_RDNS = st.lists(
    st.tuples(st.sampled_from(["uid", "CN", "ou", "dc", "u id", "2.5.4.3", ""]),
              st.lists(_VALUE_PIECES, max_size=5).map("".join)).map(lambda ava: "=".join(ava)),
    min_size=1, max_size=4)


@settings(max_examples=500, deadline=None, database=None)
@given(st.tuples(_DN_RDNS, st.sampled_from([",", ";", "+", ", "])).map(lambda parts: parts[1].join(parts[0])))
@example("uid=#a,dc=x")  # a leading '#' starts a hex value
@example("uid= a,dc=x")  # outer spaces are dropped
@example("uid=a+cn=b,dc=x")  # multi-valued RDNs are sorted
@example("uid=\u212aelvin,dc=x")  # the Kelvin sign lower-cases to ASCII 'k'
@example("uid=a\\,b,dc=x")
def test_plain_dn_shortcut_agrees_with_the_parser(dn):
    """Property: the lower-case shortcut for plain DNs gives exactly what parsing
    gives, and refuses exactly what parsing refuses."""
    from sync.targets.ldap_filters import _normalise_parsed

    try:
        expected = _normalise_parsed(dn)
    except ValueError:
        with pytest.raises(ValueError):
            normalise_dn.__wrapped__(dn)
        return
    assert normalise_dn.__wrapped__(dn) == expected


@pytest.mark.parametrize("dn", ["uid=Alice Smith,OU=People,dc=example,dc=org", "cn=walk-in_1@x.org,dc=corp",
                                "uid=a,dc=x"])
def test_plain_dns_take_the_shortcut(dn):
    """Common DNs normalise to their lower-case form (and agree with the parser)."""
    from sync.targets.ldap_filters import _normalise_parsed

    assert normalise_dn.__wrapped__(dn) == dn.lower() == _normalise_parsed(dn)
