"""``cti demo``: the whole system on one machine with no Asterisk.

A simulated Asterisk 22 (cti.sim) runs the shipped dialplan and speaks AMI and
FastAGI to a real ``cti serve`` on a fresh SQLite database; citizens call the
hotline and the legacy numbers of trunk_map.yaml; the agents of agents.yaml
log into their queues through AMI, as the desk would, and answer as robots
until a person signs in at the desk — then that agent's calls wait for the
person's 接听 button. Now and then a robot agent hands a citizen to 110 with
the desk's one-key transfer, so transfers show in the records too. Robots also
work the cases: an agent completes the case cti opened for a robot-answered
call and dispatches it (or answers it directly), the unit signs and replies,
and cti's callbacks reach the simulated citizens, who answer the survey.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cti.agents.directory import Agent
from cti.auth import new_password
from cti.calls.events import CallAnswered, CallEvent
from cti.cases.model import CATEGORIES, Case
from cti.configuration import load_configuration
from cti.kb import files
from cti.kb.model import Viewer
from cti.kb.service import KnowledgeBase
from cti.service import Service
from cti.settings import AgiSettings, RecordingSettings, Settings
from cti.sim.traffic import TrafficMix, arrivals
from cti.sim.world import World
from cti.store.database import Database

log = logging.getLogger(__name__)
KNOWLEDGE = "knowledge"  # the sample articles, beside trunk_map.yaml (cti/sample/knowledge in a wheel)


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    rate: float = 0.05  # citizens' calls per second; 0: none generated (tests place their own)
    scale: float = 1.0  # simulated seconds per real second, inverted: 0.05 runs twenty times faster
    duration: float | None = None  # seconds; None: until interrupted
    seed: int | None = None
    workdir: Path | None = None  # database and recordings; a fresh temporary folder when None
    transfer_share: float = 0.05  # robot-answered calls handed to 110


class Demo:
    def __init__(self, settings: Settings, options: DemoOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.secret = secrets.token_hex(8)  # the simulated PBX's AMI password, for this run only
        workdir = options.workdir or Path(tempfile.mkdtemp(prefix="cti-demo-"))
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        configuration = load_configuration(settings)
        catalogue = configuration.catalogue  # the demo's day is short: callbacks at any hour, sweeps often
        self.configuration = dataclasses.replace(configuration, catalogue=dataclasses.replace(
            catalogue, sweep_seconds=5.0 * options.scale,
            callback=dataclasses.replace(catalogue.callback, hours=("00:00", "23:59"), retry_minutes=1)))
        prompts = settings.path(settings.paths.prompts) / settings.paths.prompt_language
        recordings = str(workdir / "recordings")  # the simulated PBX's CTI_RECORDINGS, and cti's
        self.world = World(self.configuration, agi_url="agi://127.0.0.1:9", prompts=prompts, secret=self.secret,
                           recordings=recordings, zone=settings.zone, seed=options.seed, attended=self._attended,
                           scale=options.scale)
        self.settings = dataclasses.replace(
            settings,
            ami=dataclasses.replace(settings.ami, host="127.0.0.1", port=0, username="cti", secret=self.secret),
            agi=AgiSettings(host="127.0.0.1", port=0),
            database=dataclasses.replace(settings.database, url=f"sqlite:///{workdir / 'demo.db'}"),
            recordings=RecordingSettings(directory=recordings))
        self.service: Service | None = None
        self.sign_ins: list[tuple[str, str, str]] = []  # (user, password, role)

    def _attended(self, agent_id: str) -> bool:
        return self.service is not None and self.service.hub.present(agent_id)

    async def run(self, stop: asyncio.Event, *, ready: asyncio.Event | None = None) -> None:
        ami_port = await self.world.start()
        self.settings = dataclasses.replace(self.settings, ami=dataclasses.replace(self.settings.ami, port=ami_port))
        database = await Database.open(self.settings.database.url)
        try:
            await self._users(database)
            await self._knowledge(database)
            self.service = Service(self.settings, database, self.configuration, softphone=self.world.answer)
            self.service.pipeline.subscribe(self._robots_transfer)
            service_stop = asyncio.Event()
            running = asyncio.create_task(self.service.run(service_stop))
            try:
                await self._wait_for_service(running)
                self.world.dialplan.agi_url = f"agi://127.0.0.1:{self.service.agi_port}"
                for agent in self.configuration.directory.agents:
                    await self.service.desk.log_in(agent)
                self._announce()
                mix = TrafficMix(rate=self.options.rate, talk=(10.0, 40.0), patience=(30.0, 120.0))
                if self.options.rate > 0:
                    self.world.pbx.spawn(self._robots_work_cases(stop))
                calls = arrivals(self.configuration.trunk_map, mix, self.rng) if self.options.rate > 0 else iter(())
                traffic = asyncio.create_task(self.world.traffic(calls))
                if ready is not None:
                    ready.set()
                stopping = asyncio.create_task(stop.wait())
                await asyncio.wait([running, stopping], timeout=self.options.duration,
                                   return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                traffic.cancel()
                await self.world.hang_up_everyone()  # the citizens still on the line: their records are written too
                await asyncio.sleep(0.5)  # their last events reach cti
            finally:
                service_stop.set()
                try:
                    await running
                finally:
                    await self.world.close()  # the PBX goes last, so that cti does not see its link drop
        finally:
            await database.close()

    async def _wait_for_service(self, running: asyncio.Task[None]) -> None:
        assert self.service is not None
        while not (self.service.ami.connected.is_set() and self.service.agi_port and self.service.web_port):
            if running.done():
                running.result()  # raises why it stopped
            await asyncio.sleep(0.05)

    async def _knowledge(self, database: Database) -> None:
        """The sample articles (knowledge/), published: what the desk suggests as calls ring and agents type."""
        folder = self.settings.path(KNOWLEDGE)
        if not folder.is_dir():  # a deployment's own settings, without the sample: a demo without articles
            return
        done = await KnowledgeBase(database.kb, self.settings.zone).load(
            Viewer("admin", "cti-demo"), files.read(folder), publish=True)
        log.info("knowledge base: %d sample articles published", done.published)

    async def _users(self, database: Database) -> None:
        for agent in self.configuration.directory.agents[:2]:
            password = new_password()
            await database.users.add(agent.id, agent.name, "agent", password, agent.id)
            self.sign_ins.append((agent.id, password, "agent"))
        password = new_password()
        await database.users.add("supervisor", "值班长 Supervisor", "supervisor", password)
        self.sign_ins.append(("supervisor", password, "supervisor"))
        for supervisor in self.configuration.directory.supervisors[:1]:  # with a phone: listen, whisper, barge
            password = new_password()
            await database.users.add(supervisor.id, supervisor.name, "supervisor", password)
            self.sign_ins.append((supervisor.id, password, "supervisor"))

    def _announce(self) -> None:
        assert self.service is not None
        web = f"http://{self.settings.web.host}:{self.service.web_port}/"
        calling = (f"with citizens calling (about {self.options.rate * 60:.0f} calls a minute)" if self.options.rate > 0
                   else "and no citizens calling (--rate 0)")
        lines = [
            "", f"cti demo: a simulated Asterisk 22 and cti, {calling}", "",
            f"  desk            {web}",
            f"  wallboard       {web}wallboard   (sign in as a supervisor)",
            f"  number ledger   {web}ledger      (public: no sign-in)",
            f"  API document    {web}api/openapi.json",
            f"  AMI (simulated) 127.0.0.1:{self.settings.ami.port}  user cti, secret {self.secret}",
            f"  FastAGI         127.0.0.1:{self.service.agi_port}",
            f"  database        {self.settings.database.url}", "",
            "  sign-ins:"]
        lines += [f"    {user:<11} {password}   ({role})" for user, password, role in self.sign_ins]
        lines += ["", "  Sign in as an agent: that agent's calls now ring on your desk; press 接听 to answer,",
                  "  110 to hand the citizen over. A supervisor lands on the wallboard (监听, 耳语, 强插 through",
                  "  9001's phone). Records: cti calls --db " + self.settings.database.url,
                  "  Ctrl-C stops.", ""]
        print("\n".join(lines), flush=True)

    def _robots_transfer(self, events: Sequence[CallEvent]) -> None:
        """Now and then a robot agent presses the desk's 110 key a few seconds into the call."""
        for event in events:
            if isinstance(event, CallAnswered) and self.rng.random() < self.options.transfer_share:
                agent = self._agent(event.answered_by)
                if agent is not None and not self._attended(agent.id):
                    self.world.pbx.spawn(self._transfer_later(event.linkedid, agent))

    def _agent(self, phone: str) -> Agent | None:
        person = self.configuration.directory.by_phone(phone)
        return person if isinstance(person, Agent) else None

    async def _transfer_later(self, linkedid: str, agent: Agent) -> None:
        await asyncio.sleep(self.rng.uniform(3, 8))
        assert self.service is not None
        try:
            await self.service.desk.transfer(linkedid, "110", "blind", agent)
        except Exception as exc:  # the citizen hung up first: nothing to hand over
            log.info("demo: robot transfer of %s not done: %s", linkedid, exc)

    async def _robots_work_cases(self, stop: asyncio.Event) -> None:
        """Move the robots' cases on, a step every few (simulated) seconds."""
        assert self.service is not None
        cases = self.service.cases
        while not stop.is_set():
            await asyncio.sleep(5.0 * self.options.scale)
            try:
                for case in await cases.store.find(states=("accepted", "dispatched", "in_progress"), limit=200):
                    await self._robot_step(case)
            except Exception as exc:  # a person acted on the same case meanwhile: the robot lets it be
                log.info("demo: robot case step skipped: %s", exc)

    async def _robot_step(self, case: Case) -> None:
        assert self.service is not None
        cases = self.service.cases
        age = (cases.clock() - case.created_at).total_seconds() / self.options.scale
        if case.state == "accepted" and case.auto and age > 5:
            category = self.rng.choice(list(CATEGORIES))
            await cases.update_details(case.id, {"category": category, "content": self.rng.choice(CONCERNS)},
                                       "robot", "agent")
            line = self.configuration.trunk_map.numbers.get(case.legacy_number)
            if category == "consultation" and self.rng.random() < 0.6:
                await cases.act(case.id, "answer", {"reply": "已当场解答"}, "robot", "agent")
            else:
                unit = line.unit if line and line.unit in self.configuration.catalogue.units else self.rng.choice(
                    sorted(self.configuration.catalogue.units))
                await cases.act(case.id, "dispatch", {"unit": unit}, "robot", "agent")
        elif case.state == "dispatched" and age > 15:
            await cases.act(case.id, "sign", {}, f"robot:{case.unit}", "unit")
        elif case.state == "in_progress" and age > 30:
            await cases.act(case.id, "reply", {"reply": "已办理，并与来电人沟通"}, f"robot:{case.unit}", "unit")


CONCERNS = ["小区夜间施工噪音扰民", "路灯不亮已有一周", "咨询社保卡补办所需材料", "供暖温度不达标",
            "公交线路调整后站点太远", "餐馆油烟影响居民", "建议增设便民停车位", "举报商家缺斤短两", "燃气费缴纳咨询",
            "自来水水质发黄"]
