"""Background tasks that must not die silently: :func:`supervised` runs a coroutine function as a
task; when it fails, the error is logged with its traceback and the function is started again
(after a pause that grows with repeated failures, at most ``max_pause`` seconds). Only
cancellation ends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def _run(
    fn: Callable[[], Awaitable[None]], name: str, first_pause: float, max_pause: float
) -> None:
    pause = first_pause
    while True:
        try:
            await fn()
            log.error("background task %r returned; starting it again", name)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %r failed; starting it again in %.1f s", name, pause)
        await asyncio.sleep(pause)
        pause = min(max_pause, pause * 2)


def supervised(
    fn: Callable[[], Awaitable[None]],
    name: str,
    *,
    first_pause: float = 0.5,
    max_pause: float = 30.0,
) -> asyncio.Task[None]:
    """A task that runs ``fn()`` again whenever it fails or returns (see the module)."""
    return asyncio.create_task(_run(fn, name, first_pause, max_pause), name=name)
