"""Who is running a command, for audit trails."""

from __future__ import annotations

import os
import pwd


def os_user() -> str:
    """The account running the command, from the OS (not $USER, which anyone can set)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (containers)
        return f"uid:{os.getuid()}"
