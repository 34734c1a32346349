"""The case routes against a running service (fake Asterisk, SQLite, HTTP): an agent opens a
case for the call on their desk and dispatches it; a unit's system signs, asks for time and
replies on its own cases only and never sees a confidential caller; refusals in the one error
shape; tasks, missed calls, statistics as JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from cti.cases.model import MissedCall
from tests.desk_harness import running_desk
from tests.fakeami import until
from tests.test_desk import CALL, p5_with_pause


async def test_from_the_desk_to_the_unit_and_back(tmp_path: Path) -> None:
    session, start, talk = p5_with_pause()
    async with running_desk(tmp_path, [session]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        supervisor = await desk.user("boss", "supervisor")
        await desk.database.users.add("eco-system", "生态环境局工单系统", "integrator", unit_id="ecology-environment")
        unit = await desk.database.users.issue_token("eco-system", "unit", None)
        await desk.database.users.add("market-system", "市场监管局", "integrator", unit_id="market-regulation")
        other_unit = await desk.database.users.issue_token("market-system", "unit", None)
        reader = await desk.user("crm", "integrator")
        earlier = await desk.service.cases.open(caller_number="13800000043", category="report", actor="1002",
                                                content="举报河道排污（上周）", role="agent")
        async with desk.socket(agent) as pops:
            start.set()
            history = await pops.next("history")  # the pop lists the caller's earlier cases with their calls
            assert [(c["id"], c["category"], c["state"]) for c in history["cases"]] == [
                (earlier.id, "report", "accepted")]
            await pops.next("answered")
            # the agent fills the form during the call: caller and legacy number come from the call
            case = await desk.request("POST", "/api/cases", agent, json={
                "linkedid": CALL, "category": "complaint", "content": "河道有人倾倒垃圾", "location": "盐湖区",
                "unit": "ecology-environment", "confidential": True})
            assert (case["caller_number"], case["legacy_number"], case["state"], case["unit"]) == (
                "13800000043", "12369", "dispatched", "ecology-environment")
            assert case["category_name"] == "投诉" and case["due_at"].endswith("23:59:59+08:00")
            again = await desk.request("POST", "/api/cases", agent, expect=409, json={
                "linkedid": CALL, "category": "complaint", "content": "x"})
            assert again["error"]["message"] == f"case {case['id']} is dispatched: only an accepted case is edited"
            talk.set()
        case_id = case["id"]
        # the unit sees its case, without the confidential caller
        mine = await desk.request("GET", "/api/cases", unit)
        assert [(c["id"], c["caller_number"], c["caller_name"]) for c in mine] == [(case_id, "138****0043", "")]
        assert await desk.request("GET", "/api/cases?caller=13800000043", unit) == []  # nor found by the number
        assert [c["id"] for c in await desk.request("GET", "/api/cases?caller=13800000043", supervisor)] == [
            case_id, earlier.id]
        assert await desk.request("GET", "/api/cases", other_unit) == []
        await desk.request("GET", f"/api/cases/{case_id}", other_unit, expect=404)
        refused = await desk.request("POST", f"/api/cases/{case_id}/actions/sign", other_unit, expect=404, json={})
        assert refused["error"]["code"] == "no_such_case"
        assert (await desk.request("POST", f"/api/cases/{case_id}/actions/sign", reader, expect=403,
                                   json={}))["error"]["message"].startswith("this integrator acts for no unit")
        for path in ("/api/cases", f"/api/cases/{case_id}"):  # nor reads anyone's cases
            await desk.request("GET", path, reader, expect=403)

        # the unit's work: sign, ask for time, reply; an illegal move is refused in the one error shape
        wrong = await desk.request("POST", f"/api/cases/{case_id}/actions/reply", unit, expect=409,
                                   json={"reply": "已处理"})
        assert wrong == {"error": {"code": "illegal_transition", "message": f"cannot reply case {case_id}: it is "
                                   "dispatched (allowed from in_progress)", "details": {}}}
        await desk.request("POST", f"/api/cases/{case_id}/actions/sign", unit, json={})
        await desk.request("POST", f"/api/cases/{case_id}/actions/request_extension", unit,
                           json={"days": 2, "reason": "需现场核查"})
        denied = await desk.request("POST", f"/api/cases/{case_id}/actions/approve_extension", unit, expect=403,
                                    json={})
        assert denied["error"]["code"] == "forbidden"
        approved = await desk.request("POST", f"/api/cases/{case_id}/actions/approve_extension", supervisor,
                                      json={})
        assert approved["extension_days"] == 2
        await desk.request("POST", f"/api/cases/{case_id}/actions/reply", unit, json={"reply": "已清理河道"})
        notice = await desk.request("POST", f"/api/cases/{case_id}/actions/overdue", supervisor, expect=403,
                                    json={})
        assert "cti's own doing" in notice["error"]["message"]
        # the agent records the callback's answer
        await desk.request("POST", f"/api/cases/{case_id}/actions/callback", agent, json={})
        closed = await desk.request("POST", f"/api/cases/{case_id}/actions/satisfaction", agent,
                                    json={"satisfaction": "2"})
        assert (closed["state"], closed["satisfaction"], closed["on_time"]) == ("closed", "2", True)
        full = await desk.request("GET", f"/api/cases/{case_id}", supervisor)
        assert [e["action"] for e in full["events"]] == [
            "create", "dispatch", "sign", "request_extension", "approve_extension", "reply", "callback",
            "satisfaction"]
        assert [e["actor"] for e in full["events"]][2:4] == ["eco-system", "eco-system"]
        assert full["calls"] == [CALL] and full["caller_number"] == "13800000043"
        # when the call ended, cti did not open another case: the call has one
        await until(lambda: desk.service.tracker.live(CALL) is None, what="the call to end")
        assert len(await desk.request("GET", "/api/cases", supervisor)) == 2
        # a duplicate joins an open case only
        refused = await desk.request("POST", f"/api/cases/{earlier.id}/actions/merge", agent, expect=409,
                                     json={"into": case_id})
        assert refused["error"]["message"] == f"case {case_id} is closed: merge into an open case"


async def test_bad_input_is_named(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [p5_with_pause()[0]]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        bad = await desk.request("POST", "/api/cases", agent, expect=422, json={"category": "gossip", "content": ""})
        assert bad["error"]["details"]["fields"] == {"category": "one of consultation, request, complaint, report, "
                                                     "suggestion", "content": "required"}
        nobody = await desk.request("POST", "/api/cases", agent, expect=422,
                                    json={"category": "request", "content": "路灯"})
        assert nobody["error"]["details"]["fields"] == {"caller_number": "required without a call"}
        case = await desk.request("POST", "/api/cases", agent, json={
            "category": "request", "content": "路灯不亮", "caller_number": "13900000001"})
        nowhere = await desk.request("POST", f"/api/cases/{case['id']}/actions/dispatch", agent, expect=422,
                                     json={"unit": "atlantis"})
        assert nowhere["error"]["message"] == "no unit 'atlantis' in the dispatch catalogue"
        assert (await desk.request("POST", f"/api/cases/{case['id']}/actions/shred", agent, expect=422,
                                   json={}))["error"]["code"] == "unknown_action"
        assert (await desk.request("GET", "/api/cases/999", agent, expect=404))["error"]["code"] == "no_such_case"
        assert (await desk.request("GET", "/api/cases/abc", agent, expect=404))["error"]["code"] == "no_such_case"
        confidential = await desk.request("PATCH", f"/api/cases/{case['id']}", agent, expect=422,
                                          json={"confidential": "yes"})
        assert confidential["error"]["details"]["fields"] == {"confidential": "expected true or false"}
        edited = await desk.request("PATCH", f"/api/cases/{case['id']}", agent, json={"location": "河东街"})
        assert edited["location"] == "河东街"
        units = await desk.request("GET", "/api/units", agent)
        assert {"id": "yanhu-district", "name": "盐湖区人民政府"} in units
        assert not any(u["id"] == "police-110" for u in units)


async def test_tasks_missed_calls_and_statistics(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [p5_with_pause()[0]]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        supervisor = await desk.user("boss", "supervisor")
        await desk.database.cases.add_missed(MissedCall("7.1", "13900000007", "", "12315",
                                                        datetime(2026, 11, 20, 2, 0, tzinfo=UTC), 40.0))
        for content, category, unit in (("噪音", "complaint", "yanhu-district"), ("公交", "consultation", ""),
                                        ("路灯", "request", "yanhu-district")):
            case = await desk.request("POST", "/api/cases", agent, json={
                "category": category, "content": content, "caller_number": "13900000001", "unit": unit,
                "legacy_number": "12345"})
        answered = await desk.request("POST", f"/api/cases/{case['id'] - 1}/actions/answer", agent,
                                      json={"reply": "已告知"})
        assert answered["state"] == "replied"
        tasks = await desk.request("GET", "/api/tasks", agent)
        assert [m["linkedid"] for m in tasks["missed_calls"]] == ["7.1"]
        assert tasks["callbacks"] == []  # automated callbacks come first (cases.yaml callback.mode: auto)
        resolved = await desk.request("POST", "/api/missed/7.1", agent, json={"state": "called_back"})
        assert resolved["state"] == "called_back"
        assert (await desk.request("GET", "/api/tasks", agent))["missed_calls"] == []
        stats = await desk.request("GET", "/api/stats?by=unit", supervisor)
        assert [(r["key"], r["cases"]) for r in stats] == [("12345", 1), ("yanhu-district", 2), ("total", 3)]
        assert stats[-1]["missed_calls"] == 1 and stats[-1]["called_back"] == 1
        by_number = await desk.request("GET", "/api/stats?by=legacy_number&from=2026-11-01&to=2099-12-31",
                                       supervisor)
        assert [(r["key"], r["cases"], r["missed_calls"]) for r in by_number] == [
            ("12315", 0, 1), ("12345", 3, 0), ("total", 3, 1)]
        async with desk.http.get(desk.base + "/api/stats?by=category&format=csv",
                                 headers={"Authorization": f"Bearer {supervisor}"}) as reply:
            assert reply.status == 200 and reply.content_type == "text/csv"
            assert "attachment" in reply.headers["Content-Disposition"]
            text = await reply.text()
            assert text.startswith("\ufeff")  # a byte-order mark: Excel reads the Chinese as UTF-8
            table = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
        assert table[0][:3] == ["category", "cases", "closed"]
        assert sorted(row[0] for row in table[1:]) == ["total", "咨询", "投诉", "求助"]
        bad = await desk.request("GET", "/api/stats?by=unit&from=yesterday", supervisor, expect=422)
        assert bad["error"]["details"]["fields"] == {"from": "expected YYYY-MM-DD"}
        await desk.request("GET", "/api/stats?by=unit", agent, expect=403)
