"""Release versions the portal signs (update offers, emission limit values): numbers separated
by dots, up to four parts, compared as numbers (``2026.12`` < ``2026.12.1`` < ``2026.13``)."""

from __future__ import annotations

import re

_RELEASE = re.compile(r"^\d{1,9}(\.\d{1,9}){0,3}$")


def release_key(version: str) -> tuple[int, ...] | None:
    """``2026.11.2`` -> (2026, 11, 2, 0); None for text that is not such a version."""
    if not _RELEASE.match(version):
        return None
    parts = tuple(int(p) for p in version.split("."))
    return parts + (0,) * (4 - len(parts))
