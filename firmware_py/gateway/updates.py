"""The box's side of a software update offered by the portal (docs/update.md).

Owns, in ``<state dir>/updates/``: ``offer.token`` (the last offer taken, kept so that a download
broken off by a restart or a power cut goes on when the gateway starts again) and the bundle
being fetched (update_offer.py). When the bundle is complete and verified, and no job is queued
or running, the gateway names it in ``[update] request_file``; the installer (``vci update
install``, run by root through ``vci-update.path``) takes it from there. The gateway itself has
no privilege to install or reboot. Every step is an event on the gateway's bus (``update.*``,
on the page's event socket); the page does not show them yet and they are not sent to the portal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware_py.config import UpdateConfig
from firmware_py.errors import DownloadInterrupted, StorageError, UpdateError, VciError
from firmware_py.gateway.update_offer import UpdateOffer, download, parse_offer
from firmware_py.i18n import N_

log = logging.getLogger(__name__)

RAUC_SYSTEM_CONF = Path("/etc/rauc/system.conf")
IDLE_POLL = 2.0
"""seconds between looks for a moment with no job, before the install is asked for"""
PROGRESS_EVERY = 1.0
"""seconds between progress events while downloading"""


def installed_version(cfg: UpdateConfig) -> str:
    """The release the box runs: ``[update] release_file`` (written by image/build), else the
    installed package's version (a PC)."""
    try:
        text = cfg.release_file.read_text().strip()
        if text:
            return text.split()[0]
    except OSError:
        pass
    try:
        return metadata.version("vci-gateway")
    except metadata.PackageNotFoundError:
        return "0"


def box_compatible(cfg: UpdateConfig, system_conf: Path = RAUC_SYSTEM_CONF) -> str:
    """The hardware this box's bundles must be for: ``[update] compatible``, else RAUC's
    ``compatible=`` in system.conf; "" when neither (the box takes no offers)."""
    if cfg.compatible:
        return cfg.compatible
    with contextlib.suppress(OSError):
        for line in system_conf.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "compatible":
                return value.strip()
    return ""


class Updater:
    """Takes offers, fetches the bundle in the background, asks for the install when idle."""

    def __init__(
        self,
        cfg: UpdateConfig,
        state_dir: Path,
        keys: Mapping[str, Ed25519PublicKey],
        device: str,
        gateway: Any,
    ) -> None:
        self.cfg = cfg
        self.directory = state_dir / "updates"
        self.keys = keys
        self.device = device
        self.gateway = gateway
        self.compatible = box_compatible(cfg)
        self.installed = installed_version(cfg)
        self.offer: UpdateOffer | None = None
        self.status: dict[str, Any] = {"state": "idle", "installed": self.installed}
        self._task: asyncio.Task[None] | None = None

    # -- the gateway's loop ----------------------------------------------------------------
    async def start(self) -> None:
        """Go on with an offer taken before a restart (its download, or its install request)."""
        token_file = self.directory / "offer.token"
        if not token_file.exists():
            return
        try:
            self.offered(token_file.read_text())
        except VciError as err:  # e.g. installed meanwhile: that version is no longer newer
            log.info("the kept update offer is done with: %s", err)
            self._forget()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def offered(self, token: str) -> dict[str, Any]:
        """An ``update.offer`` from the portal: checked, kept and fetched in the background.
        Raises :class:`UpdateError` (said back to the sender) when refused."""
        if not self.compatible:
            raise UpdateError(
                N_(
                    "this box takes no updates: it has no RAUC system (/etc/rauc/system.conf) and no [update] compatible"
                ),
                hint=N_("Update a PC installation with pip; see docs/update.md"),
            )
        offer = parse_offer(
            token, self.keys, device=self.device, compatible=self.compatible,
            installed=self.installed,
        )  # fmt: skip
        if self.offer == offer and self._task is not None and not self._task.done():
            return self.state()  # delivered twice: already under way
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / "offer.token.tmp"
        tmp.write_text(token.strip())
        os.replace(tmp, self.directory / "offer.token")
        if self._task is not None:
            self._task.cancel()
        self.offer = offer
        self._set("offered", version=offer.version, size=offer.size)
        self._task = asyncio.get_running_loop().create_task(self._run(offer))
        return self.state()

    def state(self) -> dict[str, Any]:
        return dict(self.status)

    # -- the work ----------------------------------------------------------------------------
    async def _run(self, offer: UpdateOffer) -> None:
        import aiohttp

        last = [0.0]

        def progress(have: int, size: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY or have == size:
                last[0] = now
                self._set(
                    "downloading", version=offer.version, bytes=have, size=size,
                    percent=round(100 * have / size, 1),
                )  # fmt: skip

        try:
            async with aiohttp.ClientSession() as session:
                bundle = await download(
                    offer, self.directory, session=session,
                    stall_timeout=self.cfg.stall_timeout, progress=progress,
                )  # fmt: skip
        except asyncio.CancelledError:
            raise
        except (UpdateError, StorageError) as err:
            # the .part is kept where it can go on (a broken link, a full disk); a refused or
            # damaged bundle was discarded. The offer stays for the next start unless final.
            if isinstance(err, UpdateError) and not isinstance(err, DownloadInterrupted):
                self._forget()
            self._set("failed", version=offer.version, error=err.to_dict())
            log.warning("update %s: %s", offer.version, err)
            return
        self._set("downloaded", version=offer.version, bundle=bundle.name)
        while self.gateway.runner.active():  # never installed during a job
            await asyncio.sleep(IDLE_POLL)
        self._request_install(bundle)
        self._set("install_requested", version=offer.version, bundle=bundle.name)
        # on stdout like the gateway's other milestones (journald keeps it)
        print(f"update {offer.version} downloaded and verified: install requested", flush=True)

    def _request_install(self, bundle: Path) -> None:
        target = self.cfg.request_file
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(f"{bundle}\n")
        os.replace(tmp, target)  # the path unit sees a whole request or none

    def _forget(self) -> None:
        """The offer is done with (installed, or refused for good): its bundle leaves the data
        partition too."""
        (self.directory / "offer.token").unlink(missing_ok=True)
        for old in self.directory.glob("*.raucb*"):
            old.unlink(missing_ok=True)

    def _set(self, state: str, **data: Any) -> None:
        self.status = {"state": state, "installed": self.installed, **data}
        self.gateway.bus.publish(f"update.{state}", dict(self.status))
