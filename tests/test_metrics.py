"""/api/metrics: Prometheus's text format, parsed back by prometheus-client's own parser, with the
running service's counts after a captured call (P5) went through it."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.desk_harness import running_desk
from tests.fakeami import transcript, until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_show_the_service_at_work(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [transcript("P5_sip_agent_blind_110")]) as desk:
        supervisor = await desk.user("boss", "supervisor")
        agent = await desk.user("1001", "agent", "1001")
        await until(lambda: desk.service.writer.written == 1, what="the P5 call stored")
        async with desk.http.get(desk.base + "/api/metrics",
                                 headers={"Authorization": f"Bearer {supervisor}"}) as reply:
            assert reply.status == 200 and reply.content_type == "text/plain"
            found = samples(await reply.text())
        await desk.request("GET", "/api/metrics", agent, expect=403)
        await desk.request("GET", "/api/metrics", expect=401)
    assert found[("cti_ami_up", ())] == 1
    assert found[("cti_ami_messages_total", ())] > 100
    assert found[("cti_call_records_written_total", ())] == 1
    assert found[("cti_live_calls", ())] == 0
    agents = {labels[0][1]: value for (name, labels), value in found.items() if name == "cti_agents"}
    assert sum(agents.values()) == 2 and agents["logged_out"] >= 1  # agents.yaml's two; P5 saw 1001's queue
    assert ("cti_webhooks_waiting", ()) in found and ("cti_cases_waiting", ()) in found
