"""Delta updates in the campaign (issue 13): the BMS gets a patch from the factory release; when
the ECU refuses the patch the installer falls back to the full image at once (downloading it
then), records why, and the update still succeeds. (The main scenario, ``test_scenarios``,
shows the patch accepted.)"""

from __future__ import annotations

from pathlib import Path

from otalink.host.gateway.api.client import ApiClient
from otalink.host.sim.demo.scenarios import READY, Ctx, _available
from otalink.host.sim.demo.stack import OLD_VERSION

from tests.sim.demo.conftest import StackFactory


def test_refused_patch_falls_back_to_the_full_image(make_stack: StackFactory) -> None:
    stack = make_stack(factory=True)
    with ApiClient(stack.url) as api:
        ctx = Ctx(stack, api)
        details = _available(ctx)
        bms = next(e for e in details.ecus if e.ecu_id == "bms")
        assert bms.delta_from == OLD_VERSION and bms.delivery.endswith(f"delta from {OLD_VERSION}")
        assert bms.delivery_size != bms.size and bms.target not in bms.delivery
        # the patch is downloaded deflated: a small part of the full image over the network
        assert bms.delivery_size * 10 < bms.size
        body = next(e for e in details.ecus if e.ecu_id == "body")
        assert body.delivery.endswith("full image") and body.delivery_size == body.size
        assert details.download_size == sum(e.delivery_size for e in details.ecus)
        api.post("/download")
        ctx.wait_state(*READY)
        rec = stack.agent.machine.record()
        patch = Path(rec.images["bms"])
        downloads = patch.parent
        assert not (downloads / bms.target).exists()  # only the patch was downloaded
        data = bytearray(patch.read_bytes())
        data[0] ^= 0x10  # the patch's header: a form the ECU does not apply (E_PATCH)
        patch.write_bytes(bytes(data))
        api.post("/install", {"confirm": True})
        st = ctx.wait_state("succeeded", "failed_rolled_back", "failed_needs_service")
        assert st.state == "succeeded", st.reason
        p = ctx.status().install.ecus["bms"]
        assert p.delivery_reason is not None and p.delivery_reason.startswith("delta.refused:")
        assert p.delivery is not None and p.delivery.endswith("full image")
        assert (downloads / bms.target).exists()  # fetched when the patch was refused
        versions = {e["ecu_id"]: e["version"] for e in api.get("/ecus")}
        assert versions == {"bms": "2.0.0", "body": "2.0.0", "adas": "2.0.0"}
