"""Prometheus metrics of a running service, read from its parts when scraped.

Nothing on the call path counts for the metrics' sake: the pipeline, the hub,
the writer, FastAGI and the webhooks already keep their counts (the webhook
outbox as its sender last read it, at most a second ago); a collector
reads them (and the agent board) at scrape time, through prometheus-client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


@dataclass(frozen=True, slots=True)
class Readings:
    ami_up: bool
    ami_messages: int
    live_calls: int
    records_written: int
    records_waiting: int
    pops_sent: int
    desks_open: int
    agi_sessions: int
    webhooks_delivered: int
    webhooks_waiting: int
    cases_waiting: int  # ended calls waiting to be given their case
    agents: dict[str, int]  # wallboard state -> agents in it
    webhooks_failed: int = 0  # attempts that failed
    webhooks_pending: dict[str, int] = field(default_factory=dict)  # unit -> messages waiting
    webhooks_oldest: dict[str, float] = field(default_factory=dict)  # unit -> seconds its oldest has waited
    webhooks_dead: dict[str, int] = field(default_factory=dict)  # unit -> messages given up


class ServiceCollector(Collector):
    def __init__(self, read: Callable[[], Readings]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        r = self._read()
        yield GaugeMetricFamily("cti_ami_up", "1 while the AMI link to Asterisk is logged in", value=int(r.ami_up))
        yield CounterMetricFamily("cti_ami_messages", "AMI messages read", value=r.ami_messages)
        yield GaugeMetricFamily("cti_live_calls", "citizen calls in progress", value=r.live_calls)
        yield CounterMetricFamily("cti_call_records_written", "call records stored", value=r.records_written)
        yield GaugeMetricFamily("cti_call_records_waiting", "finished calls not yet stored", value=r.records_waiting)
        yield CounterMetricFamily("cti_pops_sent", "messages sent to desks", value=r.pops_sent)
        yield GaugeMetricFamily("cti_desks_open", "desk WebSocket connections", value=r.desks_open)
        yield CounterMetricFamily("cti_agi_sessions", "FastAGI sessions served", value=r.agi_sessions)
        yield CounterMetricFamily("cti_webhooks_delivered", "webhook messages delivered to units",
                                  value=r.webhooks_delivered)
        yield GaugeMetricFamily("cti_webhooks_waiting", "webhook messages not yet delivered", value=r.webhooks_waiting)
        yield CounterMetricFamily("cti_webhook_attempts_failed", "webhook attempts that failed (retried later)",
                                  value=r.webhooks_failed)
        # by unit, not by URL: a webhook's URL may carry the unit's credentials
        yield _by_unit("cti_webhooks_pending", "webhook messages not yet delivered, by unit", r.webhooks_pending)
        yield _by_unit("cti_webhooks_oldest_pending_seconds", "how long the oldest undelivered webhook message "
                       "of each unit has waited", r.webhooks_oldest)
        yield _by_unit("cti_webhooks_dead", "webhook messages given up (kept; an admin may retry them), by unit",
                       r.webhooks_dead)
        yield GaugeMetricFamily("cti_cases_waiting", "ended calls waiting for their case", value=r.cases_waiting)
        agents = GaugeMetricFamily("cti_agents", "agents by wallboard state", labels=["state"])
        for state, count in sorted(r.agents.items()):
            agents.add_metric([state], count)
        yield agents


def _by_unit(name: str, documentation: str, values: dict[str, int] | dict[str, float]) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation, labels=["unit"])
    for unit, value in sorted(values.items()):
        gauge.add_metric([unit], value)
    return gauge


def registry(read: Callable[[], Readings]) -> CollectorRegistry:
    made = CollectorRegistry(auto_describe=True)
    made.register(ServiceCollector(read))
    return made

