"""``python -m tests.faketime offset LOCAL [ZONE]``: print libfaketime's FAKETIME
offset for that wall time (used by .ci/run)."""

import sys

from tests.faketime import offset_to

if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "offset":
        sys.exit("usage: python -m tests.faketime offset YYYY-MM-DDTHH:MM[:SS] [ZONE]")
    print(offset_to(*sys.argv[2:]))
