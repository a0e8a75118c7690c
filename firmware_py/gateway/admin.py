"""The box's own commands asking the running gateway: one HTTP request over its admin socket
(``<state dir>/admin.sock``, mode 0600: the pairing button, the ENET bridge). The routes are
served by ``vci gateway`` (firmware_py/cli/gateway_commands.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware_py.config import ADMIN_SOCKET
from firmware_py.errors import ConfigError
from firmware_py.i18n import N_

TIMEOUT = 10.0
"""seconds for one request (the gateway answers the admin socket at once; none waits on the car)"""


def admin_request(
    state_dir: Path, method: str, path: str, body: Any = None, *, timeout: float = TIMEOUT
) -> tuple[int, Any]:
    """(HTTP status, JSON body) of one request to the gateway running with ``state_dir``.
    Raises :class:`ConfigError` when no gateway answers there (no socket, or a stale one)."""
    sock_path = state_dir / ADMIN_SOCKET
    not_running = ConfigError(
        N_("no gateway is running with state directory {state_dir}"),
        values={"state_dir": state_dir},
        hint=N_("Start it: vci gateway"),
    )
    if not sock_path.exists():
        raise not_running  # before aiohttp is imported: every local job asks (vci identify ...)

    import asyncio

    import aiohttp

    async def call() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(sock_path)),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as session,
            session.request(method, f"http://box{path}", json=body) as resp,
        ):
            return resp.status, await resp.json()

    try:
        return asyncio.run(call())
    except (aiohttp.ClientConnectionError, OSError, TimeoutError) as err:
        raise not_running from err
    except (aiohttp.ClientResponseError, ValueError) as err:  # not JSON: not our gateway's answer
        raise ConfigError(
            N_("the gateway's admin socket {sock_path} gave an answer that is not JSON: {err}"),
            values={"sock_path": sock_path, "err": err},
            hint=N_("Check what vci gateway logs"),
        ) from err
