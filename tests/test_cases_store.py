"""Cases in the database, on SQLite and PostgreSQL: a transition and its event in one
transaction, refused when someone changed the case meanwhile; lists; calls; missed calls."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from cti.cases.catalogue import default_catalogue
from cti.cases.model import Case, CaseError, CaseEvent, MissedCall
from cti.cases.service import CaseService
from cti.configuration import load_configuration
from cti.settings import Settings
from cti.store.database import Database
from tests.conftest import REPO_PATHS

AT = datetime(2026, 11, 9, 2, 0, tzinfo=UTC)
CONFIGURATION = load_configuration(Settings(paths=REPO_PATHS))


def new_case(**changes: object) -> Case:
    case = Case(id=0, caller_number="13800000001", caller_name="张伟", category="complaint", content="夜间施工噪音",
                created_at=AT, created_by="1001", location="盐湖区", legacy_number="12345")
    return dataclasses.replace(case, **changes)  # type: ignore[arg-type]


def created(case: Case) -> CaseEvent:
    return CaseEvent(0, case.created_at, case.created_by, "agent", "create", "", "accepted", {"category": "x"})


async def test_a_case_round_trips_with_every_field(database: Database) -> None:
    store = database.cases
    case = await store.create(new_case(confidential=True, extension_request={"days": 2, "reason": "核查"},
                                       due_at=AT + timedelta(days=3)), created(new_case()), "1795.1")
    assert case.id > 0
    assert await store.get(case.id) == case
    assert await store.case_of_call("1795.1") == case.id
    [event] = await store.events(case.id)
    assert (event.case_id, event.action, event.to_state, event.details) == (case.id, "create", "accepted",
                                                                            {"category": "x"})


async def test_a_transition_is_refused_when_the_case_changed_meanwhile(database: Database) -> None:
    store = database.cases
    case = await store.create(new_case(), created(new_case()))
    first = dataclasses.replace(case, state="dispatched", unit="a", version=1)
    await store.save(case, first, CaseEvent(case.id, AT, "1001", "agent", "dispatch", "accepted", "dispatched"))
    stale = dataclasses.replace(case, state="replied", version=1)
    with pytest.raises(CaseError) as refused:
        await store.save(case, stale, CaseEvent(case.id, AT, "1002", "agent", "answer", "accepted", "replied"))
    assert refused.value.code == "conflict"
    assert (await store.get(case.id)) == first
    assert [e.action for e in await store.events(case.id)] == ["create", "dispatch"]  # nothing half-written


async def test_two_people_acting_at_once_one_wins(database: Database) -> None:
    service = CaseService(database.cases, lambda: CONFIGURATION.catalogue, CONFIGURATION.trunk_map.zone)
    case = await service.open(caller_number="13800000002", category="request", content="路灯不亮", actor="1001",
                              role="agent")
    results = await asyncio.gather(
        service.act(case.id, "dispatch", {"unit": "yanhu-district"}, "1001", "agent"),
        service.act(case.id, "answer", {"reply": "已告知"}, "1002", "agent"), return_exceptions=True)
    refused = [r for r in results if isinstance(r, CaseError)]
    assert len(refused) <= 1
    final = await database.cases.get(case.id)
    assert final is not None and final.state in ("dispatched", "replied")
    assert len(await database.cases.events(case.id)) == 1 + sum(1 for r in results if isinstance(r, Case))


async def test_lists_filter_by_state_unit_caller_escalation_and_period(database: Database) -> None:
    store = database.cases
    for n, (state, unit, escalated) in enumerate([("accepted", "", False), ("dispatched", "a", False),
                                                  ("dispatched", "b", True), ("closed", "a", False)]):
        base = new_case(caller_number=f"1380000000{n}", created_at=AT + timedelta(days=n), state=state, unit=unit,
                        escalated_at=AT if escalated else None)
        await store.create(base, created(base))
    assert [c.caller_number for c in await store.find()] == [f"1380000000{n}" for n in (3, 2, 1, 0)]
    assert [c.unit for c in await store.find(states=["dispatched"])] == ["b", "a"]
    assert [c.state for c in await store.find(unit="a")] == ["closed", "dispatched"]
    assert [c.caller_number for c in await store.find(caller_number="13800000002")] == ["13800000002"]
    assert [c.unit for c in await store.find(escalated=True)] == ["b"]
    period = await store.find(created_from=AT + timedelta(days=1), created_to=AT + timedelta(days=3))
    assert [c.caller_number for c in period] == ["13800000002", "13800000001"]
    assert len(await store.find(limit=2, offset=1)) == 2


async def test_calls_join_cases_and_follow_a_merge(database: Database) -> None:
    store = database.cases
    one = await store.create(new_case(), created(new_case()), "1.1")
    two = await store.create(new_case(), created(new_case()), "2.1")
    assert await store.link_call(one.id, "1.2", AT)
    assert not await store.link_call(two.id, "1.2", AT)  # a call belongs to one case
    await store.move_calls(two.id, one.id)
    assert await store.calls_of(one.id) == ["1.1", "1.2", "2.1"]
    assert await store.calls_of(two.id) == []


async def test_missed_calls_wait_to_be_called_back(database: Database) -> None:
    store = database.cases
    for n in range(3):
        assert await store.add_missed(MissedCall(f"9.{n}", f"1390000000{n}", "", "12345", AT + timedelta(minutes=n),
                                                 30.0 + n))
    assert not await store.add_missed(MissedCall("9.0", "x", "", "12345", AT, None))  # once per call
    assert [m.linkedid for m in await store.missed()] == ["9.0", "9.1", "9.2"]  # oldest first
    resolved = await store.resolve_missed("9.1", "called_back", "1001", AT, case_id=5)
    assert resolved is not None and (resolved.state, resolved.resolved_by, resolved.case_id) == ("called_back",
                                                                                                 "1001", 5)
    assert [m.linkedid for m in await store.missed()] == ["9.0", "9.2"]
    assert [m.linkedid for m in await store.missed(states=("called_back",))] == ["9.1"]
    assert await store.resolve_missed("nope", "called_back", "1001", AT) is None
    window = await store.missed(states=("open", "called_back"), since=AT + timedelta(minutes=1),
                                until=AT + timedelta(minutes=2))
    assert [m.linkedid for m in window] == ["9.1"]


def test_the_default_catalogue_is_the_trunk_maps_handling_units() -> None:
    catalogue = default_catalogue(CONFIGURATION.trunk_map)
    treatments = {u.id: u.treatment for u in CONFIGURATION.trunk_map.units}
    assert set(catalogue.units) == {i for i, t in treatments.items() if t not in ("emergency", "excluded")}


async def test_cases_for_ended_calls_are_opened_in_one_batch(database: Database) -> None:
    store = database.cases
    desk = await store.create(new_case(), created(new_case()), "6.2")  # the desk's case for one call
    batch = [(new_case(caller_number=f"1390000{n:04d}"), created(new_case()), f"6.{n}") for n in range(5)]
    batch.append(batch[0])  # told twice
    missed = [MissedCall("6.9", "1", "", "12345", AT, None), MissedCall("6.9", "1", "", "12345", AT, None)]
    assert await store.open_for_calls(batch, missed) == 4
    for n in (0, 1, 3, 4):
        case_id = await store.case_of_call(f"6.{n}")
        case = await store.get(case_id)  # type: ignore[arg-type]
        assert case is not None and case.caller_number == f"1390000{n:04d}"
        assert [e.action for e in await store.events(case.id)] == ["create"]
    assert await store.case_of_call("6.2") == desk.id
    assert [m.linkedid for m in await store.missed()] == ["6.9"]
    assert await store.open_for_calls(batch, missed) == 0  # again: nothing new


async def test_a_batchs_case_numbers_that_are_taken_are_drawn_again_in_it(database: Database) -> None:
    """A busy day's thousands of case numbers make a clash likely in a batch of hundreds: it is drawn again
    in the batch's transaction (checked again, since a new draw may clash too), not left to fail the batch."""
    store = database.cases
    await store.create(new_case(reference="20261203-1000009"), created(new_case()))
    draws = iter(["20261203-1000009", "20261203-2000007", "20261203-3000005"])  # the first clashes again
    redrawn: list[str] = []

    def redraw(case: Case) -> Case:
        redrawn.append(case.reference or "")
        return dataclasses.replace(case, reference=next(draws))

    batch = [(new_case(reference=reference), created(new_case()), f"8.{n}")
             for n, reference in enumerate(["20261203-1000009", "20261203-4000003", "20261203-4000003"])]
    assert await store.open_for_calls(batch, [], redraw) == 3
    numbers = [(await store.get(await store.case_of_call(f"8.{n}") or 0)) for n in range(3)]
    assert sorted(c.reference or "" for c in numbers if c) == ["20261203-2000007", "20261203-3000005",
                                                                "20261203-4000003"]
    assert redrawn == ["20261203-1000009", "20261203-4000003", "20261203-1000009"]


async def test_two_instances_opening_cases_for_the_same_calls_take_turns(database: Database) -> None:
    """Every cti instance sees every call end and opens its cases: on PostgreSQL both transactions
    run at once (each its own connection), and the second must find the first's cases, not fail
    on their keys."""
    if database.engine.dialect.name == "sqlite":
        pytest.skip("SQLite is one instance's database (README: several instances need PostgreSQL)")
    store = database.cases
    for round_ in range(5):
        batch = [(new_case(caller_number=f"1390000{n:04d}"), created(new_case()), f"7.{round_}.{n}")
                 for n in range(20)]
        opened = await asyncio.gather(*(store.open_for_calls(batch, []) for _ in range(3)))
        assert sorted(opened) == [0, 0, 20]
        ids = {await store.case_of_call(f"7.{round_}.{n}") for n in range(20)}
        assert len(ids) == 20 and None not in ids
