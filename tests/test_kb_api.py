"""The knowledge base's routes against a running service (fake Asterisk, SQLite, HTTP): a unit's integrator
writes its own articles only, a supervisor reviews and publishes, agents find the published ones as they type
and record the one used in the case's timeline; refusals in the one error shape. ``kb_contract`` is the
contract test's round of every route (tests/test_api_contract.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cti.kb import files
from cti.kb.model import Viewer
from cti.kb.service import KnowledgeBase
from tests.conftest import REPO
from tests.desk_harness import running_desk
from tests.fakeami import Session


async def test_units_write_their_own_supervisors_publish_agents_find(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        boss = await desk.user("boss", "supervisor")
        await desk.database.users.add("gjj", "公积金中心", "integrator", unit_id="housing-fund")
        fund = await desk.database.users.issue_token("gjj", "unit", None)
        await desk.database.users.add("water", "首创水务", "integrator", unit_id="shouchuang-water")
        water = await desk.database.users.issue_token("water", "unit", None)
        loose = await desk.user("crm", "integrator")

        written = await desk.request("POST", "/api/kb/articles", fund, json={
            "title": "租房提取住房公积金", "body": "无房职工租房可以提取。\n每年一次。", "tags": "公积金，提取; 租房",
            "valid_from": "2026-01-01"})
        assert (written["unit"], written["state"], written["state_name"], written["tags"], written["author"]) == (
            "housing-fund", "draft", "草稿", ["公积金", "提取", "租房"], "gjj")
        article = written["id"]
        refused = await desk.request("POST", "/api/kb/articles", fund, expect=403,
                                     json={"title": "x", "body": "y", "unit": "shouchuang-water"})
        assert refused["error"]["code"] == "forbidden"
        await desk.request("POST", "/api/kb/articles", agent, expect=403, json={"title": "x", "body": "y"})
        await desk.request("POST", "/api/kb/articles", loose, expect=403, json={"title": "x", "body": "y"})
        assert (await desk.request("POST", "/api/kb/articles", boss, expect=422, json={
            "title": "x", "body": "y", "unit": "nowhere"}))["error"]["code"] == "unknown_unit"
        assert (await desk.request("POST", "/api/kb/articles", boss, expect=422, json={
            "title": "x", "body": "y", "valid_from": "2026-02-30"}))["error"]["details"]["fields"] == {
            "valid_from": "expected YYYY-MM-DD"}

        # another unit's article is not found, for reading or writing; a draft is not an agent's
        await desk.request("GET", f"/api/kb/articles/{article}", water, expect=404)
        await desk.request("PATCH", f"/api/kb/articles/{article}", water, expect=404, json={"body": "改"})
        await desk.request("GET", f"/api/kb/articles/{article}", agent, expect=404)
        assert await desk.request("GET", "/api/kb/articles?q=公积金", agent) == []
        assert await desk.request("GET", "/api/kb/articles", water) == []
        await desk.request("GET", "/api/kb/articles", loose, expect=403)
        assert [a["id"] for a in await desk.request("GET", "/api/kb/articles?state=draft", fund)] == [article]

        # the unit cannot publish; the supervisor reviews and publishes
        await desk.request("POST", f"/api/kb/articles/{article}/review", fund, expect=403, json={"action": "publish"})
        await desk.request("POST", f"/api/kb/articles/{article}/review", boss, json={"action": "review"})
        stale = await desk.request("POST", f"/api/kb/articles/{article}/review", boss, expect=409,
                                   json={"action": "publish", "version": 1})
        assert stale["error"]["code"] == "conflict"
        published = await desk.request("POST", f"/api/kb/articles/{article}/review", boss,
                                       json={"action": "publish", "version": 2, "note": "已核对"})
        assert (published["state"], published["version"], published["reviewed_by"]) == ("published", 3, "boss")
        again = await desk.request("POST", f"/api/kb/articles/{article}/review", boss, expect=409,
                                   json={"action": "publish"})
        assert again["error"]["code"] == "illegal_transition"

        # the agent finds it as they type, the words marked, and reads it
        [hit] = await desk.request("GET", "/api/kb/articles?q=" + "公积金怎么取出来", agent)
        assert hit["id"] == article and "body" not in hit and hit["score"] > 0
        assert hit["title_html"] == "租房<mark>提取</mark>住房<mark>公积金</mark>"
        assert [a["id"] for a in await desk.request("GET", "/api/kb/articles?unit=housing-fund", agent)] == [article]
        assert await desk.request("GET", "/api/kb/articles?unit=shouchuang-water", agent) == []
        whole = await desk.request("GET", f"/api/kb/articles/{article}", agent)
        assert whole["body"] == "无房职工租房可以提取。\n每年一次。"
        await desk.request("GET", f"/api/kb/articles/{article}/versions", agent, expect=403)

        # the unit changes it: a new version, a draft again, gone from the agents' search until published
        changed = await desk.request("PATCH", f"/api/kb/articles/{article}", fund,
                                     json={"body": "无房职工租房可以提取，每年一次。", "version": 3})
        assert (changed["state"], changed["version"]) == ("draft", 4)
        assert await desk.request("GET", "/api/kb/articles?q=公积金", agent) == []
        unchanged = await desk.request("PATCH", f"/api/kb/articles/{article}", fund, expect=409,
                                       json={"body": "无房职工租房可以提取，每年一次。"})
        assert unchanged["error"]["code"] == "unchanged"
        versions = await desk.request("GET", f"/api/kb/articles/{article}/versions", fund)
        assert [(v["version"], v["change"], v["state"], v["actor"]) for v in versions] == [
            (1, "create", "draft", "gjj"), (2, "review", "reviewed", "boss"), (3, "publish", "published", "boss"),
            (4, "edit", "draft", "gjj")]
        assert versions[2]["note"] == "已核对" and versions[0]["body"] != versions[3]["body"]
        await desk.request("GET", f"/api/kb/articles/{article}/versions", water, expect=404)
        await desk.request("POST", f"/api/kb/articles/{article}/review", boss, json={"action": "publish"})

        # the article used for a case, in the case's timeline
        case = await desk.service.cases.open(caller_number="13800000001", category="consultation",
                                             content="咨询租房提取公积金", actor="1001", role="agent")
        used = await desk.request("POST", f"/api/cases/{case.id}/articles", agent, json={"article": article})
        assert used == {"case": case.id, "article": article, "version": 5, "title": "租房提取住房公积金"}
        events = (await desk.request("GET", f"/api/cases/{case.id}", agent))["events"]
        assert (events[-1]["action"], events[-1]["actor"], events[-1]["details"]) == (
            "article", "1001", {"article": article, "version": 5, "title": "租房提取住房公积金"})
        assert (await desk.request("GET", f"/api/cases/{case.id}", agent))["version"] == case.version  # untouched
        await desk.request("POST", f"/api/cases/{case.id}/articles", agent, expect=404, json={"article": 999})
        await desk.request("POST", "/api/cases/999/articles", agent, expect=404, json={"article": article})
        await desk.request("POST", f"/api/cases/{case.id}/articles", fund, expect=403, json={"article": article})


async def test_a_title_is_html_only_where_cti_marked_it(tmp_path: Path) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        agent = await desk.user("1001", "agent", "1001")
        boss = await desk.user("boss", "supervisor")
        made = await desk.request("POST", "/api/kb/articles", boss, json={
            "title": "<img src=x onerror=alert(1)>燃气泄漏", "body": "<script>alert(1)</script>关闭阀门，开窗通风"})
        await desk.request("POST", f"/api/kb/articles/{made['id']}/review", boss, json={"action": "publish"})
        [hit] = await desk.request("GET", "/api/kb/articles?q=燃气", agent)
        assert hit["title_html"] == "&lt;img src=x onerror=alert(1)&gt;<mark>燃气</mark>泄漏"
        assert "<script>" not in hit["snippet_html"] and "&lt;script&gt;" in hit["snippet_html"]


Checked = Callable[..., Awaitable[Any]]


async def kb_contract(desk: Any, contract: Any, checked: Checked, agent: str, supervisor: str, unit: str,
                      loose: str, case_id: int) -> None:
    """Every knowledge-base route once or more, its answers checked against the document by ``checked``
    (tests/test_api_contract.py): ``unit`` is ecology-environment's integrator, ``loose`` one of no unit."""
    c = contract
    kb = KnowledgeBase(desk.database.kb, desk.service.settings.zone)
    await kb.load(Viewer("admin", "cli:test"), files.read(REPO / "knowledge" / "noise-night.md"), publish=True)
    mine = await checked(desk, c, "POST", "/api/kb/articles", unit, json={
        "title": "夜间施工噪音投诉", "body": "记录工地位置和时段", "tags": "噪音", "valid_from": "2026-01-01"})
    await checked(desk, c, "POST", "/api/kb/articles", unit, expect=403,
                  json={"title": "x", "body": "y", "unit": "market-regulation"})
    await checked(desk, c, "POST", "/api/kb/articles", agent, expect=403, json={"title": "x", "body": "y"})
    await checked(desk, c, "POST", "/api/kb/articles", supervisor, expect=422, json={"title": "x"})
    await checked(desk, c, "POST", "/api/kb/articles", supervisor, expect=400, data=b"{")
    await checked(desk, c, "GET", "/api/kb/articles?q=工地晚上施工太吵", agent)
    await checked(desk, c, "GET", "/api/kb/articles?unit=ecology-environment&limit=5", agent)
    await checked(desk, c, "GET", "/api/kb/articles?state=draft", unit)
    await checked(desk, c, "GET", "/api/kb/articles", loose, expect=403)
    await checked(desk, c, "GET", "/api/kb/articles?limit=0", agent, expect=422)
    await checked(desk, c, "GET", "/api/kb/articles", expect=401)
    await checked(desk, c, "GET", f"/api/kb/articles/{mine['id']}", unit)
    await checked(desk, c, "GET", f"/api/kb/articles/{mine['id']}", agent, expect=404)
    path = f"/api/kb/articles/{mine['id']}"
    await checked(desk, c, "PATCH", path, unit, json={"body": "记录工地位置、时段", "version": 1})
    await checked(desk, c, "PATCH", path, unit, expect=409, json={"body": "x", "version": 1})
    await checked(desk, c, "PATCH", f"/api/kb/articles/{mine['id']}", agent, expect=403, json={"body": "x"})
    await checked(desk, c, "POST", f"/api/kb/articles/{mine['id']}/review", supervisor, json={"action": "publish"})
    await checked(desk, c, "POST", f"/api/kb/articles/{mine['id']}/review", supervisor, expect=409,
                  json={"action": "publish"})
    await checked(desk, c, "POST", f"/api/kb/articles/{mine['id']}/review", unit, expect=403,
                  json={"action": "retire"})
    await checked(desk, c, "POST", f"/api/kb/articles/{mine['id']}/review", supervisor, expect=422,
                  json={"action": "burn"})
    await checked(desk, c, "GET", f"/api/kb/articles/{mine['id']}/versions", unit)
    await checked(desk, c, "GET", "/api/kb/articles/999999/versions", supervisor, expect=404)
    await checked(desk, c, "POST", f"/api/cases/{case_id}/articles", agent, json={"article": mine["id"]})
    await checked(desk, c, "POST", f"/api/cases/{case_id}/articles", agent, expect=404, json={"article": 999999})
