"""The wallboard: its figures (cti.stats.live) against cti.stats.measures over hand-made call mixes, today's
counters started from the SQL and grown live, the window's rate and the alerts; the WebSocket's snapshot and
updates on a running service, for supervisors and admins only, against the document."""

from __future__ import annotations

import dataclasses
import random
from datetime import date, timedelta
from pathlib import Path

import aiohttp

from cti.agents.board import AgentStatus
from cti.agents.directory import Agent, Directory, Seat
from cti.calls.record import CallRecord, LiveCall
from cti.cases.stats import period
from cti.stats.calls import call_sums
from cti.stats.live import Alerts, LiveFigures, Thresholds, day_bounds
from cti.stats.rows import total
from cti.store.database import Database
from cti.web.wallboard import BoardView, parts
from tests.contract import Contract
from tests.desk_harness import running_desk
from tests.fakeami import Session
from tests.test_api_contract import strict_pops
from tests.test_desk import CALL, member_event, p5_with_pause
from tests.test_stats import DAY1, ZONE, call, expected, mix

MORNING = (DAY1 + timedelta(hours=9)).timestamp()


def day_one(records: list[CallRecord]) -> list[CallRecord]:
    start, end = day_bounds(MORNING, ZONE)
    return [r for r in records if start <= r.arrived_at < end]


def test_todays_figures_are_the_measures() -> None:
    """Every call of the mix fed as it ends: the day's row is the independent count's, to the last figure;
    the calls of other days are not in it."""
    figures = LiveFigures(ZONE)
    figures.start(MORNING - 3600)
    for record in sorted(mix(), key=lambda r: r.ended_at):
        if record.ended_at < day_bounds(MORNING, ZONE)[1]:
            figures.add(record)
    right = expected(day_one(mix()), lambda r: "total")["total"]
    assert figures.today(MORNING) == dataclasses.replace(right, key="2026-11-09")
    assert (right.asked, right.offered, right.answered_in_15s) == (8, 7, 3)  # 1-8 (14: the day before); 4 short
    # a new day starts from nothing
    assert figures.today(day_bounds(MORNING, ZONE)[1] + 1).asked == 0


async def test_started_from_the_sql_then_live(sqlite_db: Database) -> None:
    """Half the day in the database at start (cti.stats.calls' sums), the rest as it ends: the same row as
    all of it counted by measures."""
    records = day_one(mix())
    stored, later = records[::2], records[1::2]
    await sqlite_db.calls.save(stored)
    since, until = period(date(2026, 11, 9), date(2026, 11, 9), ZONE)
    figures = LiveFigures(ZONE)
    figures.start(MORNING, total(await call_sums(sqlite_db.engine, "total", ZONE, since, until)))
    for record in later:
        figures.add(record)
    right = expected(records, lambda r: "total")["total"]
    assert figures.today(MORNING) == dataclasses.replace(right, key="2026-11-09")


def test_a_call_of_yesterday_ending_today_counts_yesterday() -> None:
    midnight = day_bounds(MORNING, ZONE)[1]
    figures = LiveFigures(ZONE)
    figures.start(midnight - 60)
    late = call(1, DAY1 + timedelta(hours=23, minutes=59), answer=3.0, agent="PJSIP/agent1001", talk=600.0)
    assert late.ended_at > midnight
    assert figures.add(late) is False
    assert figures.today(midnight + 700).asked == 0


def live(n: int, arrived: float, *, queued: float | None = None, answered: float | None = None) -> LiveCall:
    return LiveCall(f"{arrived}.{n}", "inbound", f"1390000{n:04d}", "", "12345", "", "", "hotline", arrived,
                    "q12345" if queued else "", answered, "PJSIP/agent1001" if answered else "", "PJSIP/c", "",
                    queued_at=queued)


def test_the_window_counts_what_is_decided() -> None:
    """The last 30 minutes: finished offered calls, live answered ones (in time or not), live waits past
    15 s (late whatever comes); a wait under 15 s is undecided; a short abandon and older calls are out."""
    now = MORNING + 3600
    figures = LiveFigures(ZONE, window=1800)
    figures.start(now)
    at = DAY1 + timedelta(hours=9, minutes=40)  # 20 minutes ago
    figures.add(call(1, at, answer=10.0, agent="PJSIP/agent1001"))  # in time
    figures.add(call(2, at, wait=30.0))  # abandoned
    figures.add(call(3, at, wait=2.0))  # short abandon: nowhere
    figures.add(call(4, at - timedelta(minutes=20), answer=1.0, agent="PJSIP/agent1001"))  # 40 minutes ago: out
    calls = [live(5, now - 100, queued=now - 98, answered=now - 90),  # answered after 8 s
             live(6, now - 100, queued=now - 99, answered=now - 50),  # after 49 s
             live(7, now - 40, queued=now - 38),  # waiting 38 s: late already
             live(8, now - 10, queued=now - 8)]  # waiting 8 s: undecided
    window = figures.window(now, calls)
    assert (window.offered, window.answered_in_15s, window.undecided) == (5, 2, 1)
    assert window.rate == 0.4


def test_alerts_are_raised_once_and_cleared() -> None:
    figures = LiveFigures(ZONE)
    now = MORNING
    figures.start(now)
    alerts = Alerts(Thresholds(answer_rate=0.8, wait=60, min_calls=3), ZONE)
    slow = [live(n, now - 120, queued=now - 119, answered=now - 60) for n in range(3)]  # 59 s each: late
    raised = alerts.check(now, figures.window(now, slow), [75.0, 10.0])
    assert [(a["id"], a["state"], a["severity"]) for a in raised] == [
        ("wallboard.answer_rate", "raised", "warning"), ("wallboard.long_wait", "raised", "critical")]
    assert raised[0]["title"] == "近30分钟15秒接通率 0%，低于 80%"
    assert raised[1]["title"] == "1 位来电人等候超过 60 秒，最长 75 秒"
    assert raised[0]["at"].endswith("+08:00")
    assert alerts.check(now + 1, figures.window(now + 1, slow), [76.0]) == []  # still so: not sent again
    fast = [live(n, now - 30, queued=now - 29, answered=now - 25) for n in range(20)]
    cleared = alerts.check(now + 2, figures.window(now + 2, slow + fast), [])
    assert [(a["id"], a["state"]) for a in cleared] == [("wallboard.answer_rate", "cleared"),
                                                         ("wallboard.long_wait", "cleared")]
    # too few calls to judge: no alert
    assert Alerts(Thresholds(min_calls=10), ZONE).check(now, figures.window(now, slow), []) == []


async def test_the_board_over_the_websocket(tmp_path: Path) -> None:
    """A supervisor's socket gets the board whole after hello, then its updates: an agent's pause, the call
    they take (the caller masked), its end in today's figures; an admin's too; an agent's never. All as the
    document says. /wallboard is the page."""
    contract = Contract()
    session, start, talk = p5_with_pause()
    async with running_desk(tmp_path, [session]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        supervisor = await desk.user("sup", "supervisor")
        admin = await desk.user("root", "admin")
        async with desk.http.get(desk.base + "/wallboard") as page:
            assert page.status == 200 and "实时监控" in await page.text()
        async with desk.socket(supervisor) as board, desk.socket(agent) as mine, desk.socket(admin) as other:
            snapshot = await board.next("wallboard")
            assert [a["agent_id"] for a in snapshot["agents"]] == ["1001", "1002"]
            assert [s["id"] for s in snapshot["seats"]] == ["seat-12369", "seat-12315"]
            assert snapshot["queue"]["waiting"] == 0 and snapshot["pbx"] == "up"
            assert snapshot["thresholds"] == {"answer_rate": 0.8, "wait": 60.0, "min_calls": 10}
            assert snapshot["today"]["asked"] == 0
            await other.next("wallboard")
            desk.server._writers[0].write(member_event("QueueMemberPause", "1", "培训"))
            update = await board.next("wallboard_update")
            assert [(a["agent_id"], a["state"], a["reason"]) for a in update["agents"]] == [("1001", "paused", "培训")]
            desk.server._writers[0].write(member_event("QueueMemberPause", "0", ""))
            await desk.route("12369", CALL)
            start.set()
            await mine.next("answered")

            async def on_call() -> dict:
                while True:
                    update = await board.next("wallboard_update")
                    mine_now = {a["agent_id"]: a for a in update["agents"]}.get("1001")
                    if mine_now and mine_now["call"]:
                        return mine_now["call"]
            taken = await on_call()
            assert taken["linkedid"] == CALL and taken["caller"] == "138****0043"
            assert taken["dialled_number"] == "12369" and taken["answered_at"] > taken["arrived_at"]
            talk.set()
            while (await board.next("wallboard_update", timeout=10))["today"]["asked"] == 0:
                pass
            await board.drain()
            await mine.drain()
            await other.drain()
        assert "wallboard" not in [m["type"] for m in mine.seen]
        assert "wallboard_update" not in [m["type"] for m in mine.seen]
        strict_pops(contract, board.seen)
        strict_pops(contract, other.seen)
        # numbered on from the snapshot, one by one; an update holds only the parts that changed
        board_seen = [m for m in board.seen if m["type"] in ("wallboard", "wallboard_update")]
        numbers = [m["seq"] for m in board_seen]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert any("today" not in m for m in board_seen[1:])
        # a new socket (a reconnect) gets the board again, the call ended and counted, numbered as the last update
        async with desk.socket(supervisor) as again:
            fresh = await again.next("wallboard")
            assert fresh["today"]["asked"] == 1 and all(a["call"] is None for a in fresh["agents"])
            assert fresh["seq"] >= numbers[-1]
            strict_pops(contract, again.seen)


async def test_the_page_is_served_to_anyone_and_the_data_only_to_supervisors(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        async with aiohttp.ClientSession() as http, http.get(desk.base + "/static/wallboard.js") as script:
            assert script.status == 200
        integrator = await desk.user("crm", "integrator")
        async with desk.socket(integrator) as socket:
            assert "wallboard" not in await socket.drain()


# -- the incremental view ---------------------------------------------------------------------------

PEOPLE = Directory(tuple(Agent(f"10{n:02d}", f"坐席{n}", f"PJSIP/agent10{n:02d}", ("q12345",)) for n in range(8)),
                   (Seat("seat-12369", "远端座席", "PJSIP/seat-12369", "ecology"),))
PHONES = [p.device for p in (*PEOPLE.agents, *PEOPLE.seats)]


class Sources:
    """What the tracker and the agent board would say, moved by hand."""

    def __init__(self) -> None:
        self.calls: dict[str, LiveCall] = {}
        self.statuses = {a.id: AgentStatus(a.id, a.name, a.device, a.queues, False, "", "idle", 0.0)
                         for a in PEOPLE.agents}

    def view(self) -> BoardView:
        return BoardView(lambda: list(self.statuses.values()), self.statuses.get, self.calls.get,
                         lambda: list(self.calls.values()), lambda: PEOPLE)

    def step(self, rng: random.Random, at: float) -> tuple[list[str], list[str], bool]:
        """One random happening: the calls and people it marks changed, and whether no event said it."""
        busy = {c.answered_by for c in self.calls.values() if c.agent_channel}
        waiting = [c for c in self.calls.values() if c.answered_at is None]
        talking = [c for c in self.calls.values() if c.answered_at is not None]
        kind = rng.choice(["arrive", "arrive", "answer", "answer", "end", "pause", "silent"])
        if kind == "answer" and waiting and (free := [p for p in PHONES if p not in busy]):
            call, phone = rng.choice(waiting), rng.choice(free)
            self.calls[call.linkedid] = dataclasses.replace(call, answered_at=at, answered_by=phone,
                                                            agent_channel=phone + "-1")
            person = PEOPLE.by_phone(phone)
            assert person is not None
            if person.id in self.statuses:
                self.statuses[person.id] = dataclasses.replace(self.statuses[person.id], phone="in_use", since=at)
            return [call.linkedid], [person.id], False
        if kind == "end" and self.calls:
            call = self.calls.pop(rng.choice(sorted(self.calls)))
            person = PEOPLE.by_phone(call.answered_by)
            if person is not None and person.id in self.statuses:
                self.statuses[person.id] = dataclasses.replace(self.statuses[person.id], phone="idle", since=at)
                return [call.linkedid], [person.id], False
            return [call.linkedid], [], False
        if kind == "pause":
            agent = rng.choice(sorted(self.statuses))
            status = self.statuses[agent]
            self.statuses[agent] = dataclasses.replace(status, paused=not status.paused, reason="培训", since=at)
            return [], [agent], False
        if kind == "silent" and talking:  # what the tracker changes with no event: the agent's leg goes
            call = rng.choice(talking)
            self.calls[call.linkedid] = dataclasses.replace(call, agent_channel="", caller_number="13900009999")
            return [], [], True
        n = len(self.calls) + int(at)
        linkedid = f"{at}.{n}"
        unit, unit_id = rng.choice([("生态环境局", "ecology"), ("市场监管局", "market")])
        self.calls[linkedid] = LiveCall(linkedid, "inbound", f"1390000{n % 10000:04d}", "", "12345", unit,
                                        unit_id, "hotline", at, "q12345", None, "", "PJSIP/c", "",
                                        queued_at=at + 0.5)
        return [linkedid], [], False


def test_deltas_applied_are_a_fresh_snapshot() -> None:
    """A board kept from what was marked changed, its changes applied to a copy as a client does, equals a
    view built whole from the same sources, after each of 400 random happenings (calls arriving, answered by
    an agent or the seat, ending; pauses; a change no event says, found by the tick's comparison)."""
    for seed in range(5):
        rng, sources = random.Random(seed), Sources()
        view = sources.view()
        view.rebuild()
        client = {"agents": dict(view.agents), "seats": dict(view.seats)}
        for n in range(400):
            calls, people, silent = sources.step(rng, MORNING + n)
            for linkedid in calls:
                view.call_changed(linkedid)
            for person in people:
                view.person_changed(person)
            if silent:
                view.reconcile()
            if rng.random() < 0.6:  # coalesced: several happenings in one update
                continue
            agents, seats = view.changes()
            client["agents"].update((a["agent_id"], a) for a in agents)
            client["seats"].update((s["id"], s) for s in seats)
            fresh = sources.view()
            fresh.rebuild()
            assert client == {"agents": fresh.agents, "seats": fresh.seats}, (seed, n)
            assert parts(list(view.calls.values())) == parts(list(sources.calls.values()))
        assert any(a["call"] for a in client["agents"].values())


def test_a_view_not_built_follows_nothing() -> None:
    """Nobody looks: nothing is marked; the first look builds it whole (every agent and seat is new)."""
    sources = Sources()
    view = sources.view()
    view.call_changed("x")
    view.person_changed("1000")
    assert not view.built
    agents, seats = view.changes()
    assert view.built and [a["agent_id"] for a in agents] == [a.id for a in PEOPLE.agents] and len(seats) == 1
    assert view.changes() == ([], [])
    view.forget()
    assert not view.built and view.calls == {}
