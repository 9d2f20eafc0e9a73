"""How person keys compare: the one folding of the values that find directory entries.

A person key (``sync.person_key``: userName by default) is looked up in the
directory's matching attribute (``uid``, ``sAMAccountName``, ``userPrincipalName``,
``employeeNumber``, ``employeeID``, ``mail``). Those attributes compare with
``caseIgnoreMatch``-like rules in OpenLDAP and AD: two values differing only in case,
in surrounding or repeated spaces, or in Unicode compatibility forms (fullwidth
letters, a no-break space) name the same entry. The store keeps each user's key in
this folded form under a unique index, so no two users can ever reach one entry by
their keys; the LDAP and memory targets group the people of a resolve by the same
function.

The folding follows the string preparation of RFC 4518 (§2):

1. **Map** (§2.2): soft hyphens, zero-width spaces and joiners, variation selectors,
   the object replacement character and every other control character are mapped
   to nothing; tab, line feed, vertical tab, form feed, carriage return, next line
   and every space, line or paragraph separator (``Zs``, ``Zl``, ``Zp``: no-break,
   en, em, ideographic … spaces) to a space.
2. **Normalise** with Unicode NFKC (§2.3): fullwidth ``ｂｊｅｎｓｅｎ`` is ``bjensen``.
3. **Case fold** (§2.4 for ``caseIgnoreMatch``) with :meth:`str.casefold` (Unicode full
   case folding), normalised with NFKC again, as folding can leave a string that is
   not in NFKC.
4. **Insignificant spaces** (§2.6.1): spaces around the value are dropped and every
   inner run of spaces becomes one.

The folding is at least as coarse as the directories' own rules: any two values
OpenLDAP or AD holds to be equal fold to the same key. It is slightly coarser than
some: OpenLDAP tells ``straße`` from ``strasse`` and ``bjen\\u00adsen`` (a soft
hyphen) from ``bjensen``; the store refuses the second of such a pair too — better a
409 than one entry for two people.

Pure and dependency-free (the LDAP target imports it, the connector never imports
ldap3).
"""

from __future__ import annotations

import unicodedata

#: What the folding depends on: when it changes (a new rule here, or a Python whose
#: Unicode tables are newer), the store folds every key again at start-up.
FOLDING = f"rfc4518-nfkc-casefold-1/unicode-{unicodedata.unidata_version}"


def _table() -> dict[int, str | None]:
    nothing = [
        0x00AD,
        0x1806,
        0x034F,
        *range(0x180B, 0x180E),
        *range(0xFE00, 0xFE10),
        0xFFFC,
        0x200B,
        # RFC 4518 §2.2's complete list of the other control code points:
        *range(0x0000, 0x0009),
        *range(0x000E, 0x0020),
        *range(0x007F, 0x0085),
        *range(0x0086, 0x00A0),
        0x06DD,
        0x070F,
        0x180E,
        *range(0x200C, 0x2010),
        *range(0x202A, 0x202F),
        *range(0x2060, 0x2064),
        *range(0x206A, 0x2070),
        0xFEFF,
        *range(0xFFF9, 0xFFFC),
        *range(0x1D173, 0x1D17B),
        0xE0001,
        *range(0xE0020, 0xE0080),
    ]
    # Tab … carriage return, next line, and the Zs, Zl and Zp code points (a test
    # checks this list against the Unicode database of the running Python).
    space = [
        *range(0x0009, 0x000E),
        0x0085,
        0x0020,
        0x00A0,
        0x1680,
        *range(0x2000, 0x200B),
        0x2028,
        0x2029,
        0x202F,
        0x205F,
        0x3000,
    ]
    return {**dict.fromkeys(nothing), **dict.fromkeys(space, " ")}


_MAP = _table()


def fold_key(value: str, *, case_insensitive: bool = True) -> str:
    """The comparable form of a person key (see the module docstring).

    :param case_insensitive: fold case (``caseIgnoreMatch``). The store always does;
        the LDAP target passes its ``match_case_insensitive`` setting.
    :returns: the folded value; ``""`` for a value of spaces and invisible characters.
    """
    if value.isascii() and value.isprintable():  # the common case: only spaces to fold
        folded = " ".join(value.split()) if " " in value else value
        return folded.lower() if case_insensitive else folded
    text = unicodedata.normalize("NFKC", value.translate(_MAP))
    if case_insensitive:
        text = unicodedata.normalize("NFKC", text.casefold())
    # NFKC and case folding can make a space out of a compatibility character; the
    # insignificant-space step comes last so the result is already in its final form.
    return " ".join(part for part in text.translate(_MAP).split(" ") if part)
