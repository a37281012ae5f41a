"""The report publisher: a finished campaign's signed vehicle version manifest, queued and sent.

``queue`` builds the manifest from the record's result and each ECU's exact signed report (the
inventory's), signs it with the gateway key and puts it in the on-disk outbox (named by campaign
and result, so a restart never queues it twice); ``flush`` sends what waits whenever the vehicle
is online, with the outbox's retry waits while the server is away (``reports.py``).
"""

from __future__ import annotations

import threading

import nacl.signing
from otalink.host.gateway.campaign import reports as rep
from otalink.host.gateway.campaign.clock import Clock
from otalink.host.gateway.campaign.events import EventLog
from otalink.host.gateway.campaign.inventory import Inventory
from otalink.host.gateway.campaign.machine import Machine
from otalink.host.gateway.campaign.record import CampaignRecord
from otalink.host.gateway.config import AgentConfig

FLUSH_TIMEOUT_S = 3.0


class Publisher:
    """Signs, queues and sends the vehicle reports of finished campaigns."""

    def __init__(
        self,
        config: AgentConfig,
        machine: Machine,
        inventory: Inventory,
        events: EventLog,
        clock: Clock,
    ) -> None:
        self._config = config
        self._machine = machine
        self._inventory = inventory
        self._events = events
        self._clock = clock
        self._outbox = rep.Outbox(config.state_dir, config.server_url, config.vehicle_id)
        self._key: nacl.signing.SigningKey | None = None
        self._lock = threading.Lock()

    def queue(self, rec: CampaignRecord) -> None:
        """Sign the manifest of the finished campaign ``rec`` and queue it (idempotent)."""
        with self._lock:
            if self._key is None:
                self._key = rep.load_or_create_key(self._config.gateway_key_path)
            key = self._key
        entries = [
            rep.ecu_entry(r.ecu_id, r.body, r.sig, r.verified)
            for r in self._inventory.signed_reports()
        ]
        if rec.result is not None:
            result = rec.result.model_dump(mode="json")
        else:
            result = {"state": rec.state.value, "reason": rec.reason}
        manifest = rep.build_manifest(
            self._config.vehicle_id, rec.campaign_id, result, entries, self._clock.now()
        )
        env = rep.sign_manifest(manifest, key)
        self._outbox.enqueue(env, rep.report_name(rec.campaign_id, rec.state.value))
        self._machine.update(report_queued=True)
        self._events.append("report_queued", {"campaign_id": rec.campaign_id})

    def flush(self) -> None:
        """Send the queued reports if their retry wait is over (call while online)."""
        res = self._outbox.flush_due(self._clock.monotonic(), timeout=FLUSH_TIMEOUT_S)
        if res is not None and res[0]:
            self._events.append("reports_sent", {"count": res[0]})
