"""Whether a process id is still running: for leftovers named after the process that made them."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Signal 0 probes without signalling; EPERM means it exists under another user."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
