"""``cti serve``: the AMI link, the call pipeline and the record store, wired together."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from cti.agents.board import AgentBoard
from cti.agi.server import AgiCall, FastAgiServer
from cti.ami.client import AmiClient
from cti.ami.clock import ReceiveClock
from cti.ami.message import AmiMessage
from cti.bus import make_bus
from cti.calls.channels import LINKEDID
from cti.calls.crossings import Crossings
from cti.calls.events import CallFromNode, IvrFinished, RouteDecided, event_from_data
from cti.calls.record import CallRecord
from cti.calls.tracker import CallTracker, NoteFactory
from cti.cases.service import CaseService
from cti.configuration import Configuration, load_configuration
from cti.desk.actions import Desk
from cti.hotspots.service import HotspotService
from cti.ivr.engine import Outcome
from cti.leader import Leadership
from cti.nodes import Node, Nodes
from cti.pipeline import CallPipeline
from cti.resync import Resync
from cti.routing.model import Decision
from cti.routing.router import decide
from cti.settings import AmiSettings, Settings
from cti.stats.live import Thresholds
from cti.store.database import Database
from cti.store.journal import CallJournal
from cti.store.leases import LeaseStore
from cti.store.writer import RecordWriter
from cti.web.api import WebContext
from cti.web.app import make_app, start_web
from cti.web.hotspot_api import HOTSPOTS
from cti.web.hub import PopHub
from cti.web.metrics import Readings, registry
from cti.web.wallboard import Wallboard
from cti.webhooks import WebhookSender, call_ended
from cti.yamlconfig import ConfigError

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: Settings, database: Database, configuration: Configuration, *,
                 softphone: Callable[[str, str], bool] | None = None) -> None:
        self.settings = settings
        self.database = database
        store = database.calls
        self.configuration = configuration
        self.writer = RecordWriter(store, batch_size=settings.database.batch_size,
                                   flush_interval=settings.database.flush_interval)
        links = settings.ami.links()
        self.board = AgentBoard(configuration.directory, home=links[0].systemname)
        self.nodes = Nodes([self._node(link) for link in links])
        first = self.nodes.first
        self.ami, self.tracker, self.pipeline = first.ami, first.tracker, first.pipeline  # the one node, mostly
        self.journal = CallJournal(store, self.nodes.live_calls, settings.database.flush_interval)
        self.webhooks = WebhookSender(database.outbox, settings.webhooks)
        self.agi = FastAgiServer(self.route, lambda: self.configuration.flows,
                                 on_decision=self._decided, on_outcome=self._ivr_finished, on_node=self._from_node)
        self.crossings = Crossings()  # a call's parts on two nodes, one record
        self.agi_port = 0
        self.desk = Desk(self.nodes, self.nodes.live, lambda: self.configuration, sleep=asyncio.sleep,
                         note=lambda event: self._note("", event.linkedid, lambda _: event))
        self.resyncs = {node.name: Resync(node.ami, node.pipeline, self.board, self.desk, self.route, node=node.name,
                                          boot_timeout=settings.ami.boot_timeout, on_done=self._linked)
                        for node in self.nodes}
        self.resync = self.resyncs[first.name]
        self.cases = CaseService(database.cases, lambda: self.configuration.catalogue, settings.zone,
                                 originate=lambda fields: self.nodes.for_originate().send(fields), sms=settings.sms)
        self.hub = PopHub(lambda: self.configuration.directory, self.nodes.live,
                          lambda caller: self.database.calls.calls(caller_number=caller, limit=10),
                          lambda caller: self.database.cases.find(caller_number=caller, limit=10), zone=settings.zone)
        board = settings.wallboard
        self.wallboard = Wallboard(
            self.hub, self.board, self.nodes.live_calls, lambda: self.configuration.directory,
            self.nodes.up, settings.zone,
            Thresholds(board.alert_answer_rate, board.alert_wait, board.alert_min_calls), self.nodes.live,
            window=board.alert_window * 60, interval=board.interval)
        for node in self.nodes:
            node.pipeline.subscribe(self.crossings.on_events)
            node.pipeline.subscribe(self.hub.on_events)
            node.pipeline.subscribe(self.wallboard.on_events)
        self.web = make_app(WebContext(
            database=database, desk=self.desk, board=self.board, hub=self.hub, live=self.nodes.live,
            live_calls=self.nodes.live_calls, configuration=lambda: self.configuration, reload=self.reload,
            cases=self.cases, metrics=lambda: generate_latest(self._metrics),
            zone=settings.zone, recording_file=self.recording_file, link_up=self.nodes.up,
            softphone=softphone, forwarded_for=settings.web.forwarded_for, wallboard=self.wallboard,
            sms=settings.sms))
        self.hotspots = HotspotService(database.engine, database.outbox, lambda: self.configuration.catalogue.alerts,
                                       settings.zone, notify=self._alert)
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"  # this process, to its peers
        self.bus = make_bus(settings.database.url, self.instance, self._from_peer)
        self.leader = Leadership(LeaseStore(database.engine), self.instance,
                                 [self.cases.run, self._deliver_webhooks, self.hotspots.run])
        self.web[HOTSPOTS] = self.hotspots
        self.web_port = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics = registry(self.readings)

    def _node(self, link: AmiSettings) -> Node:
        """A node's tracker, pipeline and link; its messages are told apart by its name."""
        name = link.systemname
        tracker = CallTracker(link.inbound_contexts, link.outbound_contexts,
                              hotline_contexts=link.hotline_contexts, names=self._name_of)
        client = AmiClient(link, lambda message: self._on_ami_message(name, message),
                           on_connected=lambda: self.resyncs[name](), on_lost=lambda: self._lost(name))
        return Node(name, client, tracker, CallPipeline(tracker, ReceiveClock(), self._finished))

    def _note(self, uniqueid: str, linkedid: str, make: NoteFactory) -> None:
        """An event from outside AMI (FastAGI, the desk) into the timeline of its call, on the node the
        call's ids name; the other instances are told, so that whichever writes the record has it."""
        self._apply_note(uniqueid, linkedid, make)
        event = make(linkedid)
        self.bus.publish("note", {"uniqueid": uniqueid, "linkedid": linkedid, "kind": event.kind, "at": event.at,
                                  "data": event.data()})

    def _apply_note(self, uniqueid: str, linkedid: str, make: NoteFactory) -> None:
        self.nodes.of(uniqueid or linkedid).pipeline.note(uniqueid, linkedid, make)

    def _alert(self, message: dict[str, Any]) -> None:
        """A hotspot alert (the lease holder's sweep): to this instance's desks and the others'."""
        self.hub.on_alert(message)
        self.bus.publish("alert", message)

    def _from_peer(self, kind: str, body: dict[str, Any]) -> None:
        """What another instance tells (cti.bus)."""
        if kind == "alert":
            self.hub.on_alert(body)
        elif kind == "note":
            event = event_from_data(str(body["kind"]), str(body["linkedid"]), float(body["at"]), dict(body["data"]))
            self._apply_note(str(body["uniqueid"]), str(body["linkedid"]),
                             lambda linkedid: dataclasses.replace(event, linkedid=linkedid))
        else:
            log.warning("bus: unknown message kind %r from a peer", kind)

    async def _deliver_webhooks(self, stop: asyncio.Event) -> None:
        """A duty of the lease holder (cti.leader): deliver the outbox until ``stop``."""
        self.webhooks.start()
        await stop.wait()
        await self.webhooks.close()
        self.webhooks = WebhookSender(self.database.outbox, self.settings.webhooks)  # for the next tenure

    def readings(self) -> Readings:
        """The service's counts, for /api/metrics."""
        return Readings(
            ami_up=self.nodes.up(), ami_messages=self.nodes.messages,
            live_calls=self.nodes.calls, records_written=self.writer.written,
            records_waiting=self.writer.backlog, pops_sent=self.hub.sent, desks_open=len(self.hub.connections),
            agi_sessions=self.agi.sessions, webhooks_delivered=self.webhooks.delivered,
            webhooks_waiting=self.webhooks.backlog, cases_waiting=self.cases.backlog,
            webhooks_failed=self.webhooks.failed, webhooks_pending=self.webhooks.pending_by_unit(),
            webhooks_oldest=self.webhooks.oldest_by_unit(), webhooks_dead=dict(self.webhooks.dead),
            agents=dict(Counter(status.state for status in self.board.all())))

    def _on_ami_message(self, name: str, message: AmiMessage) -> None:
        node = self.nodes.named(name)
        assert node is not None
        node.pipeline.on_message(message)
        self.cases.on_ami_message(message)
        self.resyncs[name].on_message(message)
        changed = self.board.feed(message, node.pipeline.clock(message), name)
        if changed:
            self.hub.on_agent(changed)
            self.wallboard.on_agent(changed)

    def _name_of(self, device: str) -> str:
        """The agent or remote seat behind a device, for records and cases (agents.yaml)."""
        person = self.configuration.directory.by_phone(device)
        return person.name if person is not None else ""

    def recording_file(self, recording: str) -> Path | None:
        """The file cti can read for a recording Asterisk wrote below recordings.directory, else None."""
        pbx = Path(self.settings.recordings.directory)
        local = Path(self.settings.recordings.local_directory or self.settings.recordings.directory)
        try:
            relative = Path(recording).relative_to(pbx)
        except ValueError:
            return None
        path = (local / relative).resolve()
        return path if path.is_relative_to(local.resolve()) else None

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _finished(self, record: CallRecord) -> None:
        """A node's call ended; a call's part on one of two nodes waits for the other (cti.calls.crossings)."""
        for whole in self.crossings.finished(record, time.monotonic()):
            self._ended(whole)

    async def _let_go(self, finished: asyncio.Event) -> None:
        """Every second: a call's part whose other part has not come in time is recorded as it is."""
        while not finished.is_set():
            for record in self.crossings.expired(time.monotonic()):
                self._ended(record)
            await asyncio.sleep(1)

    def _ended(self, record: CallRecord) -> None:
        """A call ended: store it, give it a case (or put it on the missed-call list), and share it
        with its unit when the unit is interconnected (its webhook message is stored with the record)."""
        unit = self.configuration.trunk_map.units_by_id.get(record.unit_id) if record.unit_id else None
        if unit is not None and unit.webhook:
            self._spawn(self._share(record, unit.webhook, unit.id))
        else:
            self.writer.put(record)
        self.cases.call_ended(record)
        self.wallboard.finished(record)

    async def _share(self, record: CallRecord, url: str, unit_id: str) -> None:
        """The record, with the message its unit gets: the caller masked when the agent made the call's case
        confidential while it lasted (a case made so after the call ended is too late for this message)."""
        try:
            confidential = record.linkedid in await self.database.cases.confidential_calls([record.linkedid])
        except Exception:  # the database is away: not knowing, the caller stays with the hotline
            log.warning("could not tell whether call %s is confidential; its unit gets the caller masked",
                        record.linkedid, exc_info=True)
            confidential = True
        self.writer.put(record, [call_ended(url, unit_id, record, self.settings.zone, confidential=confidential)])

    def route(self, number: str, at: datetime) -> Decision:
        return decide(self.configuration.trunk_map, number, at)

    def reload(self) -> bool:
        """Re-read the integrators' files; on any problem keep the last good configuration."""
        try:
            configuration = load_configuration(self.settings)
        except ConfigError as exc:
            log.error("configuration reload refused, keeping the last good one:\n%s", exc)
            return False
        self.configuration = configuration
        self.board.use_directory(configuration.directory)
        log.info("configuration reloaded: %s", configuration.summary())
        return True

    def _decided(self, call: AgiCall, decision: Decision, at: float) -> None:
        """The route decision joins the call's timeline; it is also all cti will know of a call that
        comes and goes while the AMI link is down (caller, number, time, the recording's file)."""
        self._note(call.uniqueid, call.linkedid, lambda linkedid: RouteDecided(
            linkedid, at, decision.number, decision.unit or "", decision.unit_id or "", decision.treatment,
            decision.action, call.caller, call.caller_name, call.recording))

    def _from_node(self, call: AgiCall, origin: str, at: float) -> None:
        """[from-node]: another node sent this call through the trunk between nodes, naming its part there; the
        far part takes the near part's number, unit and treatment (the screen-pop) and joins its record."""
        if not LINKEDID.fullmatch(origin):
            log.warning("FastAGI node: channel %s gave %r as the Linkedid of its call on the other node (the "
                        "X-CTI-Linkedid header): not one; the call is recorded on its own", call.channel, origin[:80])
            return
        near = self.nodes.live(origin)
        self._note(call.uniqueid, call.linkedid, lambda linkedid: CallFromNode(
            linkedid, at, origin, *((near.dialled_number, near.unit, near.unit_id, near.treatment) if near else ())))

    def _ivr_finished(self, call: AgiCall, flow: str, outcome: Outcome, at: float) -> None:
        self._note(call.uniqueid, call.linkedid, lambda linkedid: IvrFinished(
            linkedid, at, flow, outcome.next, dict(outcome.answers), outcome.hung_up))
        case_id = call.env.get("agi_arg_3", "")
        if flow == "survey" and case_id.isdigit():
            self._spawn(self._survey_answered(int(case_id), dict(outcome.answers), call.linkedid))

    async def _survey_answered(self, case_id: int, answers: dict[str, str], linkedid: str) -> None:
        try:
            await self.cases.survey_answered(case_id, answers, linkedid)
        except Exception:
            log.exception("recording the survey answer of case %d failed", case_id)

    def _linked(self) -> None:
        """A node's resync is done: the PBX link is up when every node's is."""
        up = self.nodes.up()
        self.hub.on_link(up=up)
        self.wallboard.on_link(up=up)

    def _lost(self, name: str) -> None:
        node = self.nodes.named(name)
        assert node is not None
        self.resyncs[name].on_lost()
        node.pipeline.on_link_lost(time.time())
        self.hub.on_link(up=False)
        self.wallboard.on_link(up=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; an AMI login refusal ends it with AmiLoginError."""
        for call in await self.database.calls.in_progress():  # before the first channel list
            self.nodes.of(call.linkedid).tracker.remember([call])
        await self.wallboard.initialise(self.database.engine)  # today's figures, before a call ends
        self.wallboard.start()
        self.writer.start()
        self.journal.start()
        self.agi_port = await self.agi.start(self.settings.agi.host, self.settings.agi.port)
        runner, self.web_port = await start_web(self.web, self.settings.web.host, self.settings.web.port)
        links = [asyncio.create_task(node.ami.run(), name=f"ami-link {node.name}".strip()) for node in self.nodes]
        finished = asyncio.Event()
        telling = asyncio.create_task(self.bus.run(finished), name="bus")
        leading = asyncio.create_task(self.leader.run(finished), name="leader")  # the sweeps, callbacks, webhooks
        intake = asyncio.create_task(self.cases.intake(finished), name="case-intake")
        letting_go = asyncio.create_task(self._let_go(finished), name="crossings")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait([*links, stopping], return_when=asyncio.FIRST_COMPLETED)
            for link in links:
                if link.done():
                    link.result()  # raises the login error
        finally:
            stopping.cancel()
            finished.set()
            await runner.cleanup()
            await self.wallboard.close()
            await self.agi.close()
            for node in self.nodes:
                await node.ami.close()
            await asyncio.wait(links, timeout=2)
            for link in links:
                link.cancel()
            # a sweep or a case being opened finishes its database work before the database closes
            await asyncio.wait([leading, intake, telling, *self._tasks], timeout=6)
            for task in (leading, intake, telling, letting_go):
                task.cancel()
            for record in self.crossings.expired(float("inf")):  # parts still held: recorded as they are
                self._ended(record)
            await self.journal.close()
            await self.writer.close()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """``cti serve``: refuses to start on a bad configuration (ConfigError); SIGHUP reloads it."""
    configuration = load_configuration(settings)
    log.info("configuration: %s (files: %s)", configuration.summary(), settings.files)
    database = await Database.open(settings.database.url, zone=settings.zone)  # the tallies' local hours
    try:
        service = Service(settings, database, configuration)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, service.reload)
        await service.run(stop)
    finally:
        await database.close()
