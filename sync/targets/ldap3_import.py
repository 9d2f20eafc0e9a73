"""Import ldap3 once, quietly: every module of this package that uses ldap3 imports
this first.

ldap3 2.9.1 (the last release) imports ``tagMap`` and ``typeMap`` from
``pyasn1.codec.ber.encoder``, names pyasn1 0.6.1 deprecated in favour of ``TAG_MAP``
and ``TYPE_MAP``; the warning is raised once, at import, and is no fault of ours.
Under ``-W error`` (our test configuration) it would make ``import ldap3`` fail, so
exactly those two warnings are silenced while ldap3 is imported.

ldap3 reads responses ``SOCKET_SIZE`` bytes at a time (4 KiB by default) and appends
each read to a bytes buffer: copying the buffer again at every read. The
``member`` attribute of a 90,000-member group is a 4 MB response: a thousand reads,
gigabytes copied, about 1.5 s in a fresh process. Reads of 1 MiB make that a handful
(measured: 1.9 s → 0.5 s for the first read of such a group).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"(tagMap|typeMap) is deprecated", category=DeprecationWarning)
    import ldap3

ldap3.set_config_parameter("SOCKET_SIZE", 1 << 20)
