"""The desk page in real headless Chromium (Debian's), against the running service."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cti.calls.record import CallRecord
from cti.cases.model import MissedCall
from cti.sim.phones import Citizen
from tests.conftest import REPO
from tests.desk_harness import PASSWORD, running_desk
from tests.fakeami import until
from tests.test_demo import running
from tests.test_desk import AGENT_CHANNEL, p5_with_pause

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup does)")
# The flags a sandboxed machine with no network needs (see the env notes): no sandbox as root,
# and none of Chromium's own background connections.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


async def sign_in(browser, base: str, user: str, password: str):  # type: ignore[no-untyped-def]
    """A new page on the desk, the sign-in form filled and sent."""
    page = await browser.new_page()
    await page.goto(base + "/")
    await page.fill("#user", user)
    await page.fill("#password", password)
    await page.click("#signin-button")
    return page


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    async with playwright.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


async def test_the_desk_shows_a_pop_and_sends_a_transfer(tmp_path: Path, browser) -> None:
    session, start, talk = p5_with_pause()
    async with running_desk(tmp_path, [session]) as desk:
        await desk.database.users.add("1001", "王芳", "agent", PASSWORD, "1001")
        earlier = tmp_path / "monitor" / "2026" / "11" / "20" / "1795200000.1.wav"
        earlier.parent.mkdir(parents=True)
        earlier.write_bytes((REPO / "recordings" / "prompts" / "zh" / "survey-thanks.wav").read_bytes())
        await desk.database.calls.save([CallRecord(
            linkedid="1795200000.1", direction="inbound", caller_number="13800000043", caller_name="Citizen",
            dialled_number="12315", arrived_at=1795200000.0, ended_at=1795200100.0, answered_at=1795200010.0,
            answered_by="PJSIP/agent1001", answered_by_name="王芳", recording=str(earlier))])
        page = await sign_in(browser, desk.base, "1001", PASSWORD)
        await page.wait_for_selector("#desk:not([hidden])")
        await page.wait_for_selector("#targets button[data-target='110']")
        assert await page.inner_text("#who") == "王芳 (1001)"

        await page.click("#login")
        await until(lambda: desk.server.actions("QueueAdd"), what="QueueAdd from the desk")
        assert desk.server.actions("QueueAdd")[0]["Interface"] == "PJSIP/agent1001"

        start.set()  # the citizen calls 12369; agent1001's phone rings
        await page.wait_for_selector("#pop.ringing, #pop.answered")
        assert await page.inner_text("#pop-caller") == "13800000043 (Citizen)"
        assert await page.inner_text("#pop-dialled") == "12369"
        await page.wait_for_selector("#pop.answered")
        await page.click("#history button[data-play='1795200000.1']")  # the caller's earlier call, recorded
        await page.wait_for_function("document.getElementById('player').src.startsWith('blob:')")
        duration = await page.evaluate("""new Promise(done => { const p = document.getElementById('player');
            if (p.readyState >= 1) done(p.duration); else p.onloadedmetadata = () => done(p.duration); })""")
        assert 2.5 < duration < 4.0  # survey-thanks.wav, about 3.1 s at 8 kHz
        await page.screenshot(path=str(tmp_path / "desk.png"), full_page=True)

        await page.select_option("#kind", "blind")
        await page.click("#targets button[data-target='110']")
        await until(lambda: desk.server.actions("BlindTransfer"), what="the one-key transfer")
        [transfer] = desk.server.actions("BlindTransfer")
        assert (transfer["Channel"], transfer["Context"], transfer["Exten"]) == (AGENT_CHANNEL, "emergency", "110")
        await page.wait_for_selector("#messages li:has-text('转接请求 blind → 110')")

        talk.set()  # the rest of the call: Asterisk's BlindTransfer, then the citizen hangs up
        await page.wait_for_selector("#pop.idle")
        assert "通话结束" in await page.inner_text("#pop-title")
        await page.close()


async def test_a_wrong_password_is_refused_on_the_page(tmp_path: Path, browser) -> None:
    async with running_desk(tmp_path, [p5_with_pause()[0]]) as desk:
        await desk.database.users.add("1001", "王芳", "agent", PASSWORD, "1001")
        page = await sign_in(browser, desk.base, "1001", "not the password")
        await page.wait_for_selector("#signin-error:has-text('wrong user or password')")
        assert await page.is_hidden("#desk")
        await page.close()


async def test_on_the_demo_a_person_answers_with_the_desk_softphone(tmp_path: Path, browser) -> None:
    """cti demo: the desk page pops the simulated citizen's call, the 接听 button answers
    it on the simulated PBX, and the 110 key hands the citizen over."""
    async with running(tmp_path) as demo:
        assert demo.service is not None
        await demo.service.desk.log_out(demo.configuration.directory.get("1002"))
        user, password, _ = demo.sign_ins[0]
        page = await sign_in(browser, f"http://127.0.0.1:{demo.service.web_port}", user, password)
        await page.wait_for_selector("#desk:not([hidden])")
        await until(lambda: demo.service is not None and demo.service.hub.present("1001"), what="the desk's socket")
        assert await page.is_hidden("#answer")
        demo.world.call("12369", Citizen("13900000011", "市民", talk_seconds=60, patience=600))
        await page.wait_for_selector("#pop.ringing #answer:not([hidden])", timeout=10000)
        assert await page.inner_text("#pop-dialled") == "12369"
        while not await page.is_visible("#pop.answered"):  # a slow click waits for the queue's next ring
            if await page.is_visible("#answer"):
                await page.click("#answer")
            await asyncio.sleep(0.05)
        assert await page.is_hidden("#answer")
        await page.select_option("#kind", "blind")
        await page.click("#targets button[data-target='110']")
        await page.wait_for_selector("#messages li:has-text('已转接 blind → 110')", timeout=10000)
        await page.close()


async def test_on_the_demo_the_case_form_saves_and_tasks_are_worked_off(tmp_path: Path, browser) -> None:
    """The pop fills the case form's caller; saving opens the case for the call and dispatches
    it; a missed call waits in the task list until the agent says it was called back."""
    async with running(tmp_path) as demo:
        assert demo.service is not None
        await demo.service.desk.log_out(demo.configuration.directory.get("1002"))
        await demo.service.database.cases.add_missed(MissedCall(
            "8.1", "13900000031", "", "12345", datetime(2026, 11, 21, 1, 0, tzinfo=UTC), 35.0))
        user, password, _ = demo.sign_ins[0]
        page = await sign_in(browser, f"http://127.0.0.1:{demo.service.web_port}", user, password)
        await page.wait_for_selector("#missed li[data-missed='8.1']")
        await page.wait_for_selector("#case-unit option[value='market-regulation']", state="attached")
        await until(lambda: demo.service is not None and demo.service.hub.present("1001"), what="the desk's socket")
        demo.world.call("12345", Citizen("13900000032", "市民", talk_seconds=120, patience=600))
        await page.wait_for_selector("#pop.ringing", timeout=10000)
        assert await page.input_value("#case-caller") == "13900000032"
        while not await page.is_visible("#pop.answered"):
            if await page.is_visible("#answer"):
                await page.click("#answer")
            await asyncio.sleep(0.05)
        await page.select_option("#case-category", "complaint")
        await page.fill("#case-content", "楼下餐馆油烟扰民")
        await page.fill("#case-location", "盐湖区解放路")
        await page.select_option("#case-unit", "market-regulation")
        await page.click("#case-save")
        await page.wait_for_selector("#case-result:has-text('已派单')")
        [case] = await demo.service.database.cases.find()
        assert (case.caller_number, case.category, case.unit, case.state) == (
            "13900000032", "complaint", "market-regulation", "dispatched")
        [linkedid] = await demo.service.database.cases.calls_of(case.id)
        assert demo.service.tracker.live(linkedid) is not None  # the call still on the desk
        await page.click("#missed li[data-missed='8.1'] button:has-text('已回拨')")
        await page.wait_for_selector("#missed li[data-missed='8.1']", state="detached")
        assert [m.linkedid for m in await demo.service.database.cases.missed(states=("called_back",))] == ["8.1"]
        await page.close()
