"""Import ldap3 once, quietly: every module of this package that uses ldap3 imports
this first.

ldap3 2.9.1 (the last release) imports ``tagMap`` and ``typeMap`` from
``pyasn1.codec.ber.encoder``, names pyasn1 0.6.1 deprecated in favour of ``TAG_MAP``
and ``TYPE_MAP``; the warning is raised once, at import, and is no fault of ours.
Under ``-W error`` (our test configuration) it would make ``import ldap3`` fail, so
exactly those two warnings are silenced while ldap3 is imported.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"(tagMap|typeMap) is deprecated", category=DeprecationWarning)
    import ldap3  # noqa: F401
