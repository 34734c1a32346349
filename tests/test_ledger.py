"""The number ledger (号码台账): its rows on known days of Yuncheng's map (6-month transition) and Jinan's
(1 month), the same status as the router's decision on every day around the windows, nothing private in
it; GET /api/ledger as JSON and CSV without a sign-in, against the document; cti ledger."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from cti.routing.ledger import FIELDS, STATUSES, LedgerRow, ledger, ledger_json
from cti.routing.model import NOTICE_THEN_QUEUE, PARALLEL_RING, QUEUE, RETIRED_NOTICE, TrunkMap
from cti.routing.router import decide
from cti.routing.trunkmap import load_trunk_map
from tests.conftest import REPO
from tests.contract import Contract
from tests.desk_harness import running_desk
from tests.fakeami import Session
from tests.test_api_contract import checked
from tests.test_cli import cti, repo_settings

YUNCHENG = load_trunk_map(REPO / "trunk_map.yaml")
JINAN = load_trunk_map(REPO / "examples" / "jinan" / "trunk_map.yaml")


def row(trunk_map: TrunkMap, number: str, day: date) -> LedgerRow:
    [found] = [r for r in ledger(trunk_map, day) if r.number == number]
    return found


def test_yuncheng_inside_and_after_its_six_month_transition() -> None:
    inside = row(YUNCHENG, "12312", date(2020, 3, 1))
    assert inside == LedgerRow(number="12312", unit="市商务局", mode="merged", mode_name="直接合并",
                               window_start=date(2019, 12, 31), window_end=date(2020, 6, 30), status="transition",
                               status_name="过渡期", call_instead="12345", guidance="")
    assert row(YUNCHENG, "12312", date(2020, 6, 30)).status == "transition"  # the last day is in it
    after = row(YUNCHENG, "12312", date(2020, 7, 1))
    assert (after.status, after.status_name, after.call_instead) == ("retired", "已停用", "12345")
    assert after.window_end == date(2020, 6, 30)


def test_jinan_inside_and_after_its_one_month_transition() -> None:
    assert {r.status for r in ledger(JINAN, date(2018, 6, 15)) if r.mode == "merged"} == {"transition"}
    after = ledger(JINAN, date(2018, 7, 1))
    assert {r.status for r in after if r.mode == "merged"} == {"retired"}
    assert [(r.number, r.unit) for r in after][:3] == [("12315", "市市场监管局"), ("12365", "市市场监管局"),
                                                       ("12331", "市市场监管局")]
    assert [(r.number, r.status, r.call_instead) for r in after if r.mode == "emergency"] == [
        ("110", "separate", "110"), ("119", "separate", "119"), ("120", "separate", "120")]


def test_every_mode_of_yuncheng_on_a_day() -> None:
    rows = ledger(YUNCHENG, date(2026, 1, 1))
    assert len(rows) == len(YUNCHENG.numbers) == 58
    assert [r.number for r in rows] == list(YUNCHENG.numbers)  # the map's order
    by_mode = {(r.mode, r.mode_name, r.status) for r in rows}
    assert by_mode == {("merged", "直接合并", "retired"), ("remote_seat", "设置远端座席", "parallel"),
                       ("interconnected", "对接联通", "parallel"), ("emergency", "话务转接", "separate"),
                       ("excluded", "暂不纳入", "guidance")}
    gas = row(YUNCHENG, "2062626", date(2026, 1, 1))
    assert (gas.unit, gas.call_instead, gas.window_start) == ("经纬燃气", "12345", None)
    party = row(YUNCHENG, "12371", date(2026, 1, 1))
    assert (party.call_instead, party.guidance) == ("12371", "组织工作举报请拨打12380；党员服务请拨打12371")
    assert {r.status_name for r in rows} == {STATUSES[r.status] for r in rows}


def test_after_window_forwarding_no_window_and_a_guidance_naming_another_number(tmp_path: Path) -> None:
    path = tmp_path / "trunk_map.yaml"
    path.write_text("""\
units:
  - {id: a, name: 甲局, mode: merged, numbers: ["96301"], window: {start: 2026-01-01, end: 2026-01-31},
     after_window: notice_then_queue}
  - {id: b, name: 乙局, mode: merged, numbers: ["96302"], window: {start: 2026-01-01, end: 2026-01-31},
     after_window: queue}
  - {id: c, name: 丙局, mode: merged, numbers: ["96303"]}
  - {id: d, name: 丁局, mode: excluded, numbers: ["2345678"], guidance: 请改拨12388, prompt: guidance-12388}
  - {id: e, name: 戊局, mode: excluded, numbers: ["2345679"], guidance: 请咨询窗口, prompt: guidance-12388}
""", encoding="utf-8")
    trunk_map = load_trunk_map(path)
    statuses = {r.number: (r.status, r.call_instead) for r in ledger(trunk_map, date(2026, 2, 1))}
    assert statuses == {"96301": ("forwarded", "12345"), "96302": ("forwarded", "12345"),
                        "96303": ("forwarded", "12345"), "2345678": ("guidance", "12388"),
                        "2345679": ("guidance", "2345679")}
    assert row(trunk_map, "96301", date(2025, 12, 1)).status == "transition"  # the router forwards before it too
    assert_agrees_with_the_router(trunk_map, date(2025, 12, 25), date(2026, 2, 5))


def assert_agrees_with_the_router(trunk_map: TrunkMap, first: date, last: date) -> None:
    """On every day from ``first`` to ``last``, each number's status is what the router does with its calls."""
    expected = {"transition": {NOTICE_THEN_QUEUE}, "retired": {RETIRED_NOTICE},
                "forwarded": {NOTICE_THEN_QUEUE, QUEUE}, "parallel": {PARALLEL_RING}, "separate": {"not_routed"},
                "guidance": {"guidance"}}
    day = first
    while day <= last:
        for moment in (time(0, 0), time(23, 59)):  # the window's days are whole local days
            at = datetime.combine(day, moment, trunk_map.zone)
            for entry in ledger(trunk_map, day):
                decision = decide(trunk_map, entry.number, at)
                assert decision.action in expected[entry.status], (day, entry.number, entry.status, decision)
                assert decision.treatment == entry.mode
                if entry.status == "transition":
                    assert "ended" not in decision.note
        day += timedelta(days=1)


@pytest.mark.parametrize(("trunk_map", "first", "last"), [
    (YUNCHENG, date(2019, 12, 25), date(2020, 7, 5)), (JINAN, date(2018, 5, 25), date(2018, 7, 5))])
def test_the_status_is_the_routers_on_every_day(trunk_map: TrunkMap, first: date, last: date) -> None:
    assert_agrees_with_the_router(trunk_map, first, last)


def test_nothing_internal_is_in_the_ledger() -> None:
    """No seat, dial string, prompt, webhook or unit id: only what the public may read."""
    assert FIELDS == tuple(LedgerRow.__slots__)
    document = json.dumps(ledger_json(YUNCHENG, date(2020, 3, 1)), ensure_ascii=False)
    internal = {s for u in YUNCHENG.units for s in u.seats} | {u.dial for u in YUNCHENG.units if u.dial}
    internal |= {u.prompt for u in YUNCHENG.units if u.prompt} | {n.prompt for n in YUNCHENG.numbers.values()
                                                                  if n.prompt}
    internal |= {YUNCHENG.hotline.queue, "PJSIP", "@carrier", "guidance-", "chuangjian", "market-regulation"}
    assert len(internal) > 40
    assert [s for s in internal if s in document] == []


# -- the API -------------------------------------------------------------------------------------

async def test_the_api_without_a_sign_in(tmp_path: Path) -> None:
    contract = Contract()
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        inside = await checked(desk, contract, "GET", "/api/ledger?at=2020-03-01")
        assert inside == ledger_json(YUNCHENG, date(2020, 3, 1))
        assert inside["at"] == "2020-03-01" and inside["hotline"] == "12345" and len(inside["numbers"]) == 58
        assert inside["numbers"][2] == {
            "number": "12312", "unit": "市商务局", "mode": "merged", "mode_name": "直接合并",
            "window_start": "2019-12-31", "window_end": "2020-06-30", "status": "transition", "status_name": "过渡期",
            "call_instead": "12345", "guidance": ""}
        after = await checked(desk, contract, "GET", "/api/ledger?at=2020-07-01&format=json")
        assert after["numbers"][2]["status"] == "retired"
        today = await checked(desk, contract, "GET", "/api/ledger")
        assert today["at"] == datetime.now(YUNCHENG.zone).date().isoformat()

        async with desk.http.get(desk.base + "/api/ledger?at=2020-07-01&format=csv") as reply:
            assert reply.status == 200 and reply.content_type == "text/csv" and reply.charset == "utf-8"
            assert 'filename="ledger-2020-07-01.csv"' in reply.headers["Content-Disposition"]
            raw = await reply.read()
        contract.answer("GET", "/api/ledger", 200, "text/csv", raw)
        assert raw.startswith("\ufeff".encode())  # Excel reads the Chinese as UTF-8
        table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        assert table[0] == list(FIELDS) and len(table) == 59
        assert table[3] == ["12312", "市商务局", "merged", "直接合并", "2019-12-31", "2020-06-30", "retired", "已停用",
                            "12345", ""]
        assert table[-1][:2] == ["12310", "市委编办"] and table[-1][4:6] == ["", ""]

        for at, why in (("2020-02-30", "not a day: day is out of range for month"),
                        ("yesterday", "a day YYYY-MM-DD"), ("2020-3-1", "a day YYYY-MM-DD")):
            refused = await checked(desk, contract, "GET", f"/api/ledger?at={at}", expect=422)
            assert refused["error"]["code"] == "invalid" and refused["error"]["details"] == {"fields": {"at": why}}
        refused = await checked(desk, contract, "GET", "/api/ledger?at=2020-02-30", expect=422)
        assert refused["error"]["message"] == "invalid query: at '2020-02-30': day is out of range for month"
        refused = await checked(desk, contract, "GET", "/api/ledger?format=xlsx", expect=422)
        assert refused["error"]["details"] == {"fields": {"format": "one of json, csv"}}

        async with desk.http.get(desk.base + "/ledger") as reply:
            assert reply.status == 200 and "号码台账" in await reply.text()
        for asset in ("ledger.js", "ledger.css"):
            async with desk.http.get(desk.base + "/static/" + asset) as reply:
                assert reply.status == 200, asset


# -- the command ----------------------------------------------------------------------------------

def test_cti_ledger(tmp_path: Path) -> None:
    settings = str(repo_settings(tmp_path))
    table = cti("--settings", settings, "ledger", "--at", "2020-07-01", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "58 numbers on 2020-07-01 (Asia/Shanghai)" and len(lines) == 60
    assert lines[4] == "12312     市商务局                   直接合并     2019-12-31 to 2020-06-30 已停用     12345"
    assert lines[-1].split() == ["12310", "市委编办", "暂不纳入", "—", "暂不纳入", "12310"]
    inside = cti("--settings", settings, "ledger", "--at", "2020-03-01", "--format", "json", cwd=tmp_path)
    assert json.loads(inside.stdout) == ledger_json(YUNCHENG, date(2020, 3, 1))
    listed = cti("--settings", settings, "ledger", "--at", "2020-03-01", "--format", "csv", cwd=tmp_path)
    rows = list(csv.reader(io.StringIO(listed.stdout)))
    assert rows[0] == list(FIELDS) and rows[3][6] == "transition" and len(rows) == 59
    today = cti("--settings", settings, "ledger", "--format", "json", cwd=tmp_path)
    assert json.loads(today.stdout)["at"] == datetime.now(YUNCHENG.zone).date().isoformat()
    for bad in ("2020-02-30", "tomorrow"):
        refused = cti("--settings", settings, "ledger", "--at", bad, cwd=tmp_path)
        assert refused.returncode == 2 and refused.stderr.startswith(f'cti: --at "{bad}": expected YYYY-MM-DD')
    jinan = cti("--settings", str(REPO / "examples" / "jinan" / "cti.yaml"), "ledger", "--at", "2018-06-15",
                cwd=tmp_path)
    assert jinan.returncode == 0, jinan.stderr
    assert jinan.stdout.count("过渡期") == 7 and "已停用" not in jinan.stdout
