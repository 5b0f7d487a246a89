"""Thin event handlers of the reload service: decode, call the flow, done."""

from __future__ import annotations

from typing import Any

import asyncpg

from loadbay_contracts import Envelope, FileLanded, ReloadLoaded
from loadbay_platform import outbox
from loadbay_platform.service import Resources
from loadbay_reload import reloads
from loadbay_reload.landing import landings_from_s3_notification, storable
from loadbay_reload.rejects import dead_letterer


class Handlers:
    def __init__(self, res: Resources) -> None:
        self.res = res
        self.reject = dead_letterer(res.broker, reloads.SERVICE)

    async def on_file_landed(
        self, conn: asyncpg.Connection, envelope: Envelope, event: FileLanded
    ) -> None:
        s3 = self.res.settings.s3
        await reloads.register_landing(
            conn, self.res.s3, s3.lz_bucket, s3.dlz_bucket, event, self.reject
        )

    async def on_reload_loaded(
        self, conn: asyncpg.Connection, envelope: Envelope, event: ReloadLoaded
    ) -> None:
        await reloads.finish_reload(conn, event)

    async def on_s3_notification(self, conn: asyncpg.Connection, raw: bytes) -> None:
        # Translated into file.landed events (through the outbox) so that every way of landing
        # goes through one handler, in order per dataset.
        for landed in landings_from_s3_notification(raw):
            if storable(landed.key):
                await outbox.enqueue(conn, landed, service=reloads.SERVICE)
            else:  # one odd record never holds back the others of its message
                await self.reject(landed, f"key {landed.key!r} holds a NUL or is not UTF-8")


def handler_map(h: Handlers) -> dict[type[Any], Any]:
    return {FileLanded: h.on_file_landed, ReloadLoaded: h.on_reload_loaded}
