"""The one place that builds LDAP filters, DNs and attribute descriptions.

Every value put in a filter goes through :func:`ldap3.utils.conv.escape_filter_chars`
(RFC 4515 §3: ``*``, ``(``, ``)``, ``\\`` and NUL become ``\\2a``, ``\\28``, ``\\29``,
``\\5c``, ``\\00``), and every value put in a DN through
:func:`ldap3.utils.dn.escape_rdn` (RFC 4514 §2.4), so no input can change what a
filter selects or which entry a DN names. Attribute names come from settings, never
from people, and are checked against the RFC 4512 §1.4 ``descr`` / ``numericoid``
grammar all the same.

DN comparison rule (:func:`normalise_dn`): DNs are parsed per RFC 4514 (escapes and
``\\HH`` hex pairs decoded), attribute types are lower-cased, values are lower-cased
with runs of spaces collapsed and outer spaces dropped (the ``caseIgnoreMatch``
behaviour of ``uid``, ``cn``, ``ou``, ``dc`` and of AD's naming attributes, RFC 4518
§2.6.1), the AVAs of a multi-valued RDN are sorted, and the result is re-escaped with
``escape_rdn`` with no spaces around separators. Two DNs naming the same entry
therefore normalise to the same string whatever their case or escaping style.

Matching keys (``uid=…`` values of people) compare by
:func:`connector.store.keys.fold_key` (re-exported here): RFC 4518's mapping, NFKC,
case folding and insignificant spaces, the folding the store's unique person keys use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator

from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

# Matching keys fold in one place, shared with the store (its unique person keys).
from connector.store.keys import fold_key  # noqa: F401  (re-exported)

from . import ldap3_import  # noqa: F401  (must precede the ldap3 imports)

#: A filter every entry matches (RFC 4512 §4.5.1: objectClass is always present).
ANY_ENTRY = "(objectClass=*)"

_DESCR = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
_NUMERICOID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+\Z")
_RANGE = re.compile(r"(?P<attribute>[^;]+);range=(?P<low>[0-9]+)-(?P<high>[0-9]+|\*)\Z", re.IGNORECASE)
_HEX = frozenset("0123456789abcdefABCDEF")
_NEEDS_ESCAPE = re.compile(r'[\\,+"<>;=\x00]|\A[ #]| \Z')


def check_attribute(attribute: str) -> str:
    """``attribute`` if it is a valid attribute type name (``uid``, ``2.5.4.3``).

    :raises ValueError: anything else, e.g. ``uid=*)(cn`` or ``member;range=0-*``.
    """
    if not (_DESCR.match(attribute) or _NUMERICOID.match(attribute)):
        raise ValueError(f"not an attribute type name: {attribute!r}")
    return attribute


def equality(attribute: str, value: str) -> str:
    """``(attribute=value)`` with the value escaped (RFC 4515 §3)."""
    return f"({check_attribute(attribute)}={escape_filter_chars(value)})"


def match_any(attribute: str, values: Iterable[str]) -> str:
    """``(|(uid=a)(uid=b)…)`` matching entries whose ``attribute`` equals any value.

    :raises ValueError: no values (an empty ``(|)`` matches nothing on some servers
        and is a syntax error on others).
    """
    terms = [equality(attribute, value) for value in values]
    if not terms:
        raise ValueError("match_any needs at least one value")
    return terms[0] if len(terms) == 1 else "(|" + "".join(terms) + ")"


def match_any_chunks(
    attribute: str, values: Iterable[str], *, max_values: int = 200, max_chars: int = 16_384
) -> Iterator[tuple[str, list[str]]]:
    """Split ``values`` into ``(match_any filter, values)`` pairs of bounded size.

    Each filter holds at most ``max_values`` values and, unless one escaped value is
    longer on its own, at most ``max_chars`` characters (servers cap request sizes:
    OpenLDAP's ``sockbuf_max_incoming_auth``, AD's MaxReceiveBuffer).
    """
    check_attribute(attribute)
    if max_values < 1 or max_chars < 1:
        raise ValueError("max_values and max_chars must be positive")
    chunk: list[str] = []
    size = 3  # "(|" + ")"
    for value in values:
        term = len(equality(attribute, value))
        if chunk and (len(chunk) >= max_values or size + term > max_chars):
            yield match_any(attribute, chunk), chunk
            chunk, size = [], 3
        chunk.append(value)
        size += term
    if chunk:
        yield match_any(attribute, chunk), chunk


def escape_dn_value(value: str) -> str:
    """An attribute value escaped for use in a DN (RFC 4514 §2.4).

    ``escape_rdn`` writes NUL as a backslash followed by a raw NUL, which RFC 4514
    does not allow (NUL must be the hex pair ``\\00``), so that one is rewritten; and it
    escapes a value of one space twice, so that one is written here.
    """
    if not _NEEDS_ESCAPE.search(value):  # the common case, and escape_rdn's result too
        return value
    if value == " ":  # escape_rdn escapes a lone space twice (leading, then trailing): "\\\\ "
        return "\\ "
    return escape_rdn(value).replace("\\\x00", "\\00")


def rdn(attribute: str, value: str) -> str:
    """``attribute=value`` with the value escaped."""
    return f"{check_attribute(attribute)}={escape_dn_value(value)}"


def ranged(attribute: str, low: int) -> str:
    """The attribute description asking AD for values from index ``low`` on
    (``member;range=1500-*``), as AD's ranged retrieval expects."""
    return f"{check_attribute(attribute)};range={int(low)}-*"


def parse_range(description: str) -> tuple[str, int, int | None] | None:
    """``("member", 0, 1499)`` for ``member;range=0-1499``; ``high`` is ``None`` for
    the last slice (``…-*``). ``None`` when ``description`` carries no range option."""
    match = _RANGE.match(description)
    if match is None:
        return None
    high = match["high"]
    return match["attribute"], int(match["low"]), None if high == "*" else int(high)


# ------------------------------------------------------------------ DN parsing


def parse_dn(dn: str) -> list[list[tuple[str, str, bool]]]:
    """The RDNs of ``dn``, most specific first; each a list of ``(type, value, hex)``.

    Values are unescaped (``\\,`` → ``,``, ``\\C3\\A9`` → ``é``); ``hex`` is true for a
    ``#``-prefixed BER value, kept as its hex text. Written for the DNs servers
    return: ``ldap3.utils.dn.parse_dn`` rejects valid ones such as ``uid=a=b`` or
    ``uid=a#b`` (RFC 4514 only requires a *leading* ``#`` to be escaped).

    :raises ValueError: not a DN.
    """
    if not dn or not dn.strip():
        raise ValueError("empty DN")
    if "\\" not in dn and "#" not in dn and '"' not in dn:
        return _parse_plain_dn(dn)
    rdns: list[list[tuple[str, str, bool]]] = []
    avas: list[tuple[str, str, bool]] = []
    i, n = 0, len(dn)
    while True:
        equal = dn.find("=", i)
        if equal < 0:
            raise ValueError(f"no '=' in RDN of {dn!r}")
        attr_type = dn[i:equal].strip()
        if not attr_type or not (_DESCR.match(attr_type) or _NUMERICOID.match(attr_type)):
            raise ValueError(f"bad attribute type {attr_type!r} in {dn!r}")
        value, is_hex, i = _parse_value(dn, equal + 1)
        avas.append((attr_type, value, is_hex))
        if i >= n:
            rdns.append(avas)
            return rdns
        separator = dn[i]
        i += 1
        if separator in ",;":
            rdns.append(avas)
            avas = []
        if i >= n:
            raise ValueError(f"DN ends with a separator: {dn!r}")


def _parse_plain_dn(dn: str) -> list[list[tuple[str, str, bool]]]:
    """parse_dn for a DN without escapes or hex values (most DNs): plain splitting."""
    rdns = []
    for part in dn.replace(";", ",").split(","):
        avas = []
        for ava in part.split("+"):
            attr_type, equal, value = ava.partition("=")
            attr_type = attr_type.strip()
            if not equal or not (_DESCR.match(attr_type) or _NUMERICOID.match(attr_type)):
                raise ValueError(f"bad RDN {part!r} in {dn!r}")
            avas.append((attr_type, value.strip(" "), False))
        rdns.append(avas)
    return rdns


def _parse_value(dn: str, i: int) -> tuple[str, bool, int]:
    """Parse one attribute value starting at ``i``; return it and the index of the
    separator that ended it (or ``len(dn)``)."""
    n = len(dn)
    while i < n and dn[i] == " ":
        i += 1
    if i < n and dn[i] == "#":  # BER-encoded value (RFC 4514 §2.4)
        end = i + 1
        while end < n and dn[end] in _HEX:
            end += 1
        text = dn[i + 1 : end]
        if not text or len(text) % 2:
            raise ValueError(f"bad hex value in {dn!r}")
        while end < n and dn[end] == " ":
            end += 1
        if end < n and dn[end] not in ",;+":
            raise ValueError(f"bad hex value in {dn!r}")
        return text.lower(), True, end
    buf = bytearray()
    kept = 0  # length of buf up to the last escaped character
    while i < n and dn[i] not in ",;+":
        char = dn[i]
        if char == "\\":
            pair = dn[i + 1 : i + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                buf += bytes.fromhex(pair)
                i += 3
            elif i + 1 < n:
                buf += dn[i + 1].encode()
                i += 2
            else:
                raise ValueError(f"DN ends with a lone backslash: {dn!r}")
            kept = len(buf)
        else:
            buf += char.encode()
            i += 1
    while len(buf) > kept and buf.endswith(b" "):  # unescaped trailing spaces are not part of the value
        del buf[-1]
    try:
        return buf.decode("utf-8"), False, i
    except UnicodeDecodeError as exc:
        raise ValueError(f"DN value is not UTF-8: {dn!r}") from exc


# A DN of single-valued RDNs whose values hold only letters, digits, ``_.@-`` and single
# inner spaces (nearly every DN a directory hands out): nothing in it is escaped,
# folded or reordered, so its normal form is its lower-case form. ASCII classes on
# purpose: with re.IGNORECASE, [a-z] would also match the Kelvin sign.
_PLAIN_VALUE = r"[A-Za-z0-9_.@-]+(?: [A-Za-z0-9_.@-]+)*"
_PLAIN_DN = re.compile(rf"[A-Za-z][A-Za-z0-9-]*={_PLAIN_VALUE}(?:,[A-Za-z][A-Za-z0-9-]*={_PLAIN_VALUE})*\Z")


@functools.lru_cache(maxsize=1 << 18)  # the same members are normalised at every read
def normalise_dn(dn: str) -> str:
    """The comparable form of ``dn`` (see the module docstring for the rule).

    :raises ValueError: not a DN.
    """
    if _PLAIN_DN.match(dn):
        return dn.lower()
    return _normalise_parsed(dn)


def _normalise_parsed(dn: str) -> str:
    """:func:`normalise_dn` the long way: parse, fold, sort, re-escape."""
    parts = []
    for avas in parse_dn(dn):
        normal = sorted(
            (attr_type.lower(), value if is_hex else _fold_dn_value(value), is_hex) for attr_type, value, is_hex in avas
        )
        parts.append("+".join(f"{t}=#{v}" if is_hex else f"{t}={escape_dn_value(v)}" for t, v, is_hex in normal))
    return ",".join(parts)


def _fold_dn_value(value: str) -> str:
    """A DN attribute value as :func:`normalise_dn` compares it: runs of spaces
    collapsed, outer spaces dropped, lower-cased (RFC 4518 §2.6.1). Narrower than
    :func:`fold_key` on purpose: DNs keep the comparison the entry cache and the
    members already read were normalised with."""
    folded = re.sub(" +", " ", value).strip(" ") if " " in value else value
    return folded.lower()
