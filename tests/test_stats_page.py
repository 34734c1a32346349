"""The statistics page (/stats) and the routes it reads: hotspots, alerts, the category × district table, by role
and unit, against the document; the page in headless Chromium, its charts drawn, Chinese rendered."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cti.cases.model import Case, CaseEvent
from tests.contract import Contract
from tests.desk_harness import PASSWORD, running_desk
from tests.fakeami import Session
from tests.test_api_contract import checked, signed_in

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).parent.parent / "build" / "screenshots"


async def seed(desk) -> None:  # type: ignore[no-untyped-def]
    """A burst main in 盐湖区 this hour (6 callers), earlier cases over the month, one dispatched to the water
    company."""
    now = datetime.now(UTC)
    rows = [(now - timedelta(minutes=10 + i), f"1380000{i:04}", "解放路爆管，家里停水", "山西省运城市盐湖区解放路",
             "request", "") for i in range(6)]
    places = ["盐湖区", "永济市", "临猗县", "河津市", "盐湖区北城街道", "闻喜县"]
    texts = ["夜间施工噪音扰民", "路灯不亮已有一周", "供暖温度不达标", "咨询社保卡补办所需材料", "小区垃圾无人清运"]
    categories = ["complaint", "request", "consultation", "suggestion", "report"]
    for i in range(60):
        rows.append((now - timedelta(days=i % 20, hours=i % 7), f"1390000{i:04}", texts[i % 5], places[i % 6],
                     categories[i % 5], "yuncheng-water" if i % 10 == 0 else ""))
    for at, caller, content, location, category, unit in rows:
        case = Case(id=0, caller_number=caller, caller_name="", category=category, content=content, created_at=at,
                    created_by="1001", location=location, unit=unit)
        await desk.database.cases.create(case, CaseEvent(0, at, "1001", "agent", "create", "", "accepted"))


async def test_the_routes_by_role_and_unit(tmp_path: Path) -> None:
    contract = Contract()
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        await seed(desk)
        supervisor = await signed_in(desk, contract, "9001", "supervisor")
        agent = await signed_in(desk, contract, "1001", "agent", "1001")
        await desk.database.users.add("water", "自来水公司", "integrator", PASSWORD, unit_id="yuncheng-water")
        water = str((await checked(desk, contract, "POST", "/api/session",
                                   json={"user": "water", "password": PASSWORD}))["token"])
        await desk.database.users.add("nobody", "无单位", "integrator", PASSWORD)
        nobody = str((await checked(desk, contract, "POST", "/api/session",
                                    json={"user": "nobody", "password": PASSWORD}))["token"])
        for path in ("/api/hotspots", "/api/alerts", "/api/stats/heat"):
            await checked(desk, contract, "GET", path, agent, expect=403)
        await checked(desk, contract, "GET", "/api/alerts", water, expect=403)
        for path in ("/api/hotspots", "/api/stats/heat"):
            await checked(desk, contract, "GET", path, nobody, expect=403)

        heat = await checked(desk, contract, "GET", "/api/stats/heat", supervisor)
        assert sum(r["total"] for r in heat["rows"]) == 66
        assert heat["rows"][0]["place"] == "盐湖区" and heat["rows"][0]["counts"]["request"] >= 6
        own = await checked(desk, contract, "GET", "/api/stats/heat", water)
        assert sum(r["total"] for r in own["rows"]) == 6  # its own 6 cases only
        found = await checked(desk, contract, "GET", "/api/hotspots", supervisor)
        bursts = [h for h in found["hotspots"] if h["kind"] == "burst"]
        assert len(bursts) == 1 and bursts[0]["details"]["callers"] == 6 and "停水" in bursts[0]["details"]["words"]
        assert (await checked(desk, contract, "GET", "/api/hotspots", water))["hotspots"] == []
        await checked(desk, contract, "GET", "/api/stats/heat?from=2026-13-01", supervisor, expect=422)

        await desk.service.hotspots.sweep()  # the service's own sweep may have been first: raised once either way
        alerts = await checked(desk, contract, "GET", "/api/alerts", supervisor)
        assert sorted(a["kind"] for a in alerts) == ["burst", "spike"]
        assert {a["state"] for a in alerts} == {"raised"}
        async with desk.http.get(desk.base + "/stats") as reply:
            assert reply.status == 200 and "统计分析" in await reply.text()
        async with desk.http.get(desk.base + "/static/vendor/echarts.min.js") as reply:
            assert reply.status == 200 and len(await reply.read()) > 500_000


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup does)")
async def test_the_page_in_chromium(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    contract = Contract()
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        await seed(desk)
        await signed_in(desk, contract, "9001", "supervisor")
        await desk.service.hotspots.sweep()
        async with playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = await (await browser.new_context(viewport={"width": 1366, "height": 900})).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(desk.base + "/stats")
            await page.fill("#user", "9001")
            await page.fill("#password", PASSWORD)
            await page.click("#signin-form button")
            await page.wait_for_selector("body[data-loaded=yes]", timeout=15_000)
            await page.wait_for_timeout(1200)  # the charts' animation
            assert not await page.is_visible("#signin")
            assert await page.locator("#trend canvas").count() == 1
            assert await page.locator("#heat canvas").count() == 1
            assert "停水" in await page.inner_text("#alerts")
            assert "停水" in await page.inner_text("#hotspots")
            # the heat table drew: its canvas is not blank
            drawn = await page.evaluate("""() => {
                const c = document.querySelector('#heat canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let colours = new Set();
                for (let i = 0; i < d.length; i += 4 * 97) colours.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]);
                return colours.size;
            }""")
            assert drawn > 10
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "stats.png"), full_page=True)
            await browser.close()
        assert errors == []
