"""The desk page in real headless Chromium (Debian's), against the running service.

The browser runs in New York at 1366×768, as a desk on a small screen in another zone: every time on the
page must be the service's (Asia/Shanghai), every word Chinese, and pop, transfer keys and case form must
fit without scrolling. Chinese renders with Debian's fonts-noto-cjk (scripts/setup installs it)."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cti.auth_throttle import SignInThrottle, ThrottlePolicy
from cti.calls.record import CallRecord
from cti.cases.model import MissedCall
from cti.sim.phones import Citizen
from cti.web.api import CONTEXT
from tests.conftest import REPO
from tests.desk_harness import PASSWORD, running_desk
from tests.fakeami import Session, first_index, transcript, until
from tests.test_demo import records, running
from tests.test_desk import AGENT_CHANNEL, CALL, p5_with_pause

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup does)")
# The flags a sandboxed machine with no network needs (see the env notes): no sandbox as root,
# and none of Chromium's own background connections.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SERVICE_ZONE = ZoneInfo("Asia/Shanghai")  # settings' timezone
BROWSER_ZONE = "America/New_York"  # thirteen hours off: a time shown in the browser's zone cannot pass
SCREEN = {"width": 1366, "height": 768}
# the API's codes and Asterisk's words the page must never show as text (they stay in title attributes)
ENGLISH_CODES = ("logged_out", "ready", "paused", "in_use", "ringing", "on_hold", "unavailable", "idle", "busy",
                 "up", "down", "Normal Clearing", "consultation", "request", "complaint", "report", "suggestion",
                 "blind", "attended", "conference", "answered", "noanswer", "failed", "cancel", "hangup",
                 "unauthorized", "too_many_attempts", "not_your_call", "pbx_refused", "invalid", "accepted",
                 "dispatched", "remote_seat", "merged", "excluded", "emergency", "none", "Sign in", "Ready", "Pause")


async def sign_in(browser, base: str, user: str, password: str):  # type: ignore[no-untyped-def]
    """A new page on the desk (1366×768, the browser in New York), the sign-in form filled and sent."""
    context = await browser.new_context(viewport=SCREEN, timezone_id=BROWSER_ZONE)
    page = await context.new_page()
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


def wall(at: datetime) -> str:
    """A time as the page shows it: the service's wall clock, the year only when it is not this one."""
    local = at.astimezone(SERVICE_ZONE)
    return local.strftime("%m-%d %H:%M" if local.year == datetime.now(SERVICE_ZONE).year else "%Y-%m-%d %H:%M")


def near_now(shown: str, slack: float = 5.0) -> bool:
    """Whether an HH:MM[:SS] shown on the page is the service's time now (the browser's is 13 hours off)."""
    now = datetime.now(SERVICE_ZONE)
    parts = [int(p) for p in shown.split(":")]
    at = now.replace(hour=parts[0], minute=parts[1], second=parts[2] if len(parts) > 2 else 0, microsecond=0)
    off = abs((now - at).total_seconds()) % 86400
    return min(off, 86400 - off) <= slack + (0 if len(parts) > 2 else 60)


async def visible_english(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The English codes in the page's visible text."""
    text = await page.evaluate("document.body.innerText")
    return [code for code in ENGLISH_CODES if re.search(rf"(?<![A-Za-z_]){re.escape(code)}(?![A-Za-z_])", text)]


async def fits(page) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    return tuple(await page.evaluate("""[document.documentElement.scrollHeight, innerHeight,
                                         document.documentElement.scrollWidth, innerWidth]"""))


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
        assert await page.inner_text("#who") == "王芳 · 工号 1001"
        assert await page.inner_text("#agent-state") == "未签入"
        assert await page.get_attribute("#agent-state", "title") == "logged_out"
        assert near_now(await page.inner_text("#clock"))  # the service's clock, not New York's

        await page.click("#login")
        await until(lambda: desk.server.actions("QueueAdd"), what="QueueAdd from the desk")
        assert desk.server.actions("QueueAdd")[0]["Interface"] == "PJSIP/agent1001"

        await desk.route("12369", CALL)
        start.set()  # the citizen calls 12369; agent1001's phone rings
        await page.wait_for_selector("#pop.ringing, #pop.answered")
        assert await page.inner_text("#pop-caller") == "13800000043"
        assert await page.inner_text("#pop-name") == "Citizen"
        assert await page.inner_text("#pop-dialled") == "12369"
        assert await page.inner_text("#pop-treatment") == "远端座席（双线并行）"
        assert near_now(await page.inner_text("#messages li time"))  # the log's time: the service's too
        await page.wait_for_selector("#pop.answered")
        assert await page.is_visible("#hangup")
        # the caller's earlier call, at the service's wall time (New York's would be 13 hours earlier)
        arrived = wall(datetime.fromtimestamp(1795200000.0, UTC))
        assert (await page.inner_text("#history li")).startswith(f"▶ 录音 {arrived} 拨打 12315")
        await page.click("#history button[data-play='1795200000.1']")  # recorded: it plays
        await page.wait_for_function("document.getElementById('player').src.startsWith('blob:')")
        duration = await page.evaluate("""new Promise(done => { const p = document.getElementById('player');
            if (p.readyState >= 1) done(p.duration); else p.onloadedmetadata = () => done(p.duration); })""")
        assert 2.5 < duration < 4.0  # survey-thanks.wav, about 3.1 s at 8 kHz
        await page.screenshot(path=str(tmp_path / "desk-answered.png"))

        await page.check("input[name=kind][value=blind]")
        await page.click("#targets button[data-target='110']")
        await until(lambda: desk.server.actions("BlindTransfer"), what="the one-key transfer")
        [transfer] = desk.server.actions("BlindTransfer")
        assert (transfer["Channel"], transfer["Context"], transfer["Exten"]) == (AGENT_CHANNEL, "emergency", "110")
        await page.wait_for_selector("#messages li:has-text('转接请求：盲转 → 110 市公安局')")

        talk.set()  # the rest of the call: Asterisk's BlindTransfer, then the citizen hangs up
        await page.wait_for_selector("#messages li:has-text('已转接（盲转）→ 110 市公安局')")
        await page.wait_for_selector("#pop.idle")
        assert "通话结束（正常挂机）" in await page.inner_text("#pop-title")
        assert "Normal Clearing" in (await page.get_attribute("#pop-title", "title") or "")
        assert await visible_english(page) == []
        await page.close()


def ringing_p5() -> Session:
    """P5 held while agent1001's phone rings: the pop stays ringing, the link up."""
    ringing = transcript("P5_sip_agent_blind_110")
    answer = first_index(ringing, b"Event: DialEnd", b"DialStatus: ANSWER", b"DestChannel: PJSIP/agent1001")
    ringing.script = ringing.script[:answer]
    ringing.gate = asyncio.Event()
    ringing.close_at_end = False
    return ringing


async def test_a_ringing_pop_transfer_keys_and_a_filled_case_form_fit_1366x768(tmp_path: Path, browser) -> None:
    """With the shipped configuration (53 units, five emergency keys, the excluded lines): a ringing call
    popped, the form filled, nothing scrolls; every word is Chinese; the unit search narrows the list; the
    excluded lines' guidance is on the page; a saved case shows in the earlier cases at once."""
    session = ringing_p5()
    async with running_desk(tmp_path, [session]) as desk:
        await desk.database.users.add("1001", "王芳", "agent", PASSWORD, "1001")
        before = await desk.service.cases.open(caller_number="13800000043", category="report", actor="1002",
                                               content="举报河道排污（上周）", role="agent")
        page = await sign_in(browser, desk.base, "1001", PASSWORD)
        await page.wait_for_selector("#guidance-list dt")
        await until(lambda: desk.service.hub.present("1001"), what="the desk's socket")
        # the excluded lines: number -> what to tell the caller
        guidance = await page.inner_text("#guidance")
        assert "12388" in guidance and "纪检监察举报请拨打12388" in guidance
        assert "12380 / 12371" in guidance and "12339" in guidance
        # the pause reasons are agents.yaml's
        assert await page.eval_on_selector_all("#pause-reason option", "os => os.map(o => o.value)") == [
            "小休", "用餐", "培训", "会议", "整理工单"]

        await desk.route("12369", CALL)
        session.gate.set()
        await page.wait_for_selector("#pop.ringing")
        await page.wait_for_selector(f"#history-cases li[data-case='{before.id}']")
        assert await page.input_value("#case-caller") == "13800000043"
        assert await page.input_value("#case-name") == "Citizen"  # from the PBX; the agent corrects it
        assert (await page.inner_text(f"#history-cases li[data-case='{before.id}']")).startswith(
            f"#{before.id} {wall(before.created_at)} 举报 · 已受理")

        # the unit search narrows the 53 units by any part of the name
        units = len(desk.service.configuration.catalogue.units)
        assert units >= 50
        assert await page.locator("#case-unit option").count() == units + 1  # and "not dispatched"
        await page.fill("#case-unit-search", "人民政府")
        shown = await page.eval_on_selector_all("#case-unit option", "os => os.slice(1).map(o => o.text)")
        assert 10 <= len(shown) < units and all("人民政府" in name for name in shown)
        await page.fill("#case-unit-search", "生态环境")
        assert await page.eval_on_selector_all("#case-unit option", "os => os.map(o => o.value)") == [
            "", "ecology-environment"]
        assert await page.input_value("#case-unit") == "ecology-environment"  # one match: chosen

        await page.fill("#case-name", "张先生")
        await page.check("input[name=category][value=complaint]")
        await page.fill("#case-content", "河道有人倾倒建筑垃圾，已经三天了。\n每天夜里十点以后有货车来倒。\n"
                                          "希望尽快清理并查处。")
        await page.fill("#case-location", "盐湖区解放路桥下")
        assert await page.evaluate("document.getElementById('case-content').clientHeight") >= 160  # 8 lines and more
        height, inner_height, width, inner_width = await fits(page)
        assert height <= inner_height and width <= inner_width, f"the desk scrolls at 1366×768: {height}, {width}"
        for selector in ("#pop", "#targets button[data-target='12122']", "#case-save", "#guidance"):
            box = await page.locator(selector).bounding_box()
            assert box is not None and box["y"] + box["height"] <= 768 and box["x"] + box["width"] <= 1366, selector
        assert await page.locator("#targets button.emergency").count() == 5
        await page.screenshot(path=str(tmp_path / "desk-ringing-1366x768.png"))
        assert await visible_english(page) == []

        # an error of the API in the agent's words: a number that is not one
        await page.fill("#case-caller", "1380000004x")
        await page.click("#case-save")
        await page.wait_for_selector("#case-result:has-text('填写有误：来电号码应为电话号码')")
        assert (await page.get_attribute("#case-result", "title") or "").startswith("invalid:")
        await page.fill("#case-caller", "13800000043")
        await page.click("#case-save")
        await page.wait_for_selector("#case-result:has-text('已派单，承办：市生态环境局')")
        saved = [c for c in await desk.database.cases.find() if c.id != before.id]
        assert [(c.caller_name, c.category, c.unit, c.state) for c in saved] == [
            ("张先生", "complaint", "ecology-environment", "dispatched")]
        # the earlier cases show the new one at once, with the one before
        item = page.locator(f"#history-cases li[data-case='{saved[0].id}']")
        await item.wait_for()
        assert (await item.inner_text()).startswith(
            f"#{saved[0].id} {wall(saved[0].created_at)} 投诉 · 已派单 · 市生态环境局")
        assert await page.locator(f"#history-cases li[data-case='{before.id}']").count() == 1
        assert await page.input_value("#case-content") == "" and await page.input_value("#case-unit") == ""
        assert (await fits(page))[0] <= 768
        await page.screenshot(path=str(tmp_path / "desk-saved-1366x768.png"))
        assert await visible_english(page) == []
        await page.close()


async def test_refusals_at_sign_in_are_in_chinese(tmp_path: Path, browser) -> None:
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        await desk.database.users.add("1001", "王芳", "agent", PASSWORD, "1001")
        # a minute's wait after the fifth failure, so that the page's sixth attempt is refused however slow
        desk.service.web[CONTEXT].throttle = SignInThrottle(ThrottlePolicy(first_delay=60), clock=time.monotonic)
        page = await sign_in(browser, desk.base, "1001", "not the password")
        await page.wait_for_selector("#signin-error:has-text('工号或密码错误')")
        assert await page.get_attribute("#signin-error", "title") == "unauthorized: wrong user or password"
        assert await page.is_hidden("#desk")
        for _ in range(4):  # five failures in all: the next attempt must wait
            await desk.request("POST", "/api/session", expect=401, json={"user": "1001", "password": "nope"})
        await page.click("#signin-button")
        await page.wait_for_selector("#signin-error:has-text('登录失败次数过多，请')")
        assert re.fullmatch(r"登录失败次数过多，请 \d+ 秒后再试", await page.inner_text("#signin-error"))
        assert await visible_english(page) == []
        await page.close()


async def answer(page) -> None:  # type: ignore[no-untyped-def]
    """Press 接听 until the call is answered (a slow click waits for the queue's next ring)."""
    while not await page.is_visible("#pop.answered"):
        if await page.is_visible("#answer"):
            await page.click("#answer")
        await asyncio.sleep(0.05)


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
        assert await page.is_hidden("#answer") and await page.is_hidden("#hangup")
        demo.world.call("12369", Citizen("13900000011", "市民", talk_seconds=60, patience=600))
        await page.wait_for_selector("#pop.ringing #answer:not([hidden])", timeout=10000)
        assert await page.inner_text("#pop-dialled") == "12369"
        await answer(page)
        assert await page.is_hidden("#answer")
        await page.check("input[name=kind][value=blind]")
        await page.click("#targets button[data-target='110']")
        await page.wait_for_selector("#messages li:has-text('已转接（盲转）→ 110 市公安局')", timeout=10000)
        assert await visible_english(page) == []
        await page.close()


async def test_on_the_demo_the_hang_up_button_ends_the_call(tmp_path: Path, browser) -> None:
    """挂断 sends AMI Hangup on the agent's leg: the simulated PBX ends it, the dialplan's Queue() returns
    and hangs up the citizen, and the call's record is written."""
    async with running(tmp_path) as demo:
        assert demo.service is not None
        await demo.service.desk.log_out(demo.configuration.directory.get("1002"))
        user, password, _ = demo.sign_ins[0]
        page = await sign_in(browser, f"http://127.0.0.1:{demo.service.web_port}", user, password)
        await until(lambda: demo.service is not None and demo.service.hub.present("1001"), what="the desk's socket")
        demo.world.call("12345", Citizen("13900000021", "市民", talk_seconds=600, patience=600))
        await page.wait_for_selector("#pop.ringing", timeout=10000)
        await answer(page)
        await page.wait_for_selector("#hangup:not([hidden])")
        await page.click("#hangup")
        await page.wait_for_selector("#pop.idle", timeout=10000)
        assert "通话结束（正常挂机）" in await page.inner_text("#pop-title")
        await page.wait_for_selector("#messages li:has-text('已挂断')")
        [record] = await records(demo, 1)
        assert (record.caller_number, record.answered_by, record.hangup_cause) == (
            "13900000021", "PJSIP/agent1001", 16)
        assert record.ended_at - record.answered_at < 60  # ended by the button, not by the citizen's 600 s
        await until(lambda: not demo.world.pbx.channels, what="every channel gone")
        assert demo.service.tracker.live(record.linkedid) is None
        await page.screenshot(path=str(tmp_path / "desk-hung-up.png"))
        assert await visible_english(page) == []
        await page.close()


async def test_on_the_demo_the_case_form_saves_and_tasks_are_worked_off(tmp_path: Path, browser) -> None:
    """The pop fills the case form's caller; saving opens the case for the call and dispatches
    it; a missed call waits in the task list until the agent says it was called back."""
    async with running(tmp_path) as demo:
        assert demo.service is not None
        await demo.service.desk.log_out(demo.configuration.directory.get("1002"))
        missed_at = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)
        await demo.service.database.cases.add_missed(MissedCall(
            "8.1", "13900000031", "", "12345", missed_at, 35.0))
        user, password, _ = demo.sign_ins[0]
        page = await sign_in(browser, f"http://127.0.0.1:{demo.service.web_port}", user, password)
        await page.wait_for_selector("#missed li[data-missed='8.1']")
        assert (await page.inner_text("#missed li[data-missed='8.1']")).startswith(
            f"{wall(missed_at)} 13900000031 拨打 12345，等候 35 秒")  # 09:00 in Shanghai, not 20:00 in New York
        await page.wait_for_selector("#case-unit option[value='market-regulation']", state="attached")
        await until(lambda: demo.service is not None and demo.service.hub.present("1001"), what="the desk's socket")
        demo.world.call("12345", Citizen("13900000032", "市民", talk_seconds=120, patience=600))
        await page.wait_for_selector("#pop.ringing", timeout=10000)
        assert await page.input_value("#case-caller") == "13900000032"
        await answer(page)
        await page.check("input[name=category][value=complaint]")
        await page.fill("#case-content", "楼下餐馆油烟扰民")
        await page.fill("#case-location", "盐湖区解放路")
        await page.select_option("#case-unit", "market-regulation")
        await page.click("#case-save")
        await page.wait_for_selector("#case-result:has-text('已派单')")
        [case] = await demo.service.database.cases.find()
        assert (case.caller_number, case.category, case.unit, case.state) == (
            "13900000032", "complaint", "market-regulation", "dispatched")
        await page.wait_for_selector(f"#history-cases li[data-case='{case.id}']")
        [linkedid] = await demo.service.database.cases.calls_of(case.id)
        assert demo.service.tracker.live(linkedid) is not None  # the call still on the desk
        await page.click("#missed li[data-missed='8.1'] button:has-text('已回拨')")
        await page.wait_for_selector("#missed li[data-missed='8.1']", state="detached")
        assert [m.linkedid for m in await demo.service.database.cases.missed(states=("called_back",))] == ["8.1"]
        assert timedelta(0) <= datetime.now(UTC) - case.created_at < timedelta(minutes=5)
        await page.close()


# -- the wallboard ---------------------------------------------------------------------------------

BOARD_SCREENS = {"1920x1080": {"width": 1920, "height": 1080}, "1366x768": SCREEN}


async def overlapping(page) -> list[str]:  # type: ignore[no-untyped-def]
    """The board's boxes (tiles, cards, agents) that overlap one another, or stick out of the window."""
    return list(await page.evaluate("""() => {
        const found = [];
        const boxes = (selector) => [...document.querySelectorAll(selector)].map((e) => [e, e.getBoundingClientRect()]);
        const apart = (a, b) => a.right <= b.left + 0.5 || b.right <= a.left + 0.5 || a.bottom <= b.top + 0.5
            || b.bottom <= a.top + 0.5;
        for (const selector of [".tile", ".main > .card, .side > .card", "#agents .agent"]) {
            const list = boxes(selector);
            const name = (e) => e.id || e.className;
            list.forEach(([e, r], i) => {
                if (r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5) found.push(`${name(e)} out`);
                list.slice(i + 1).forEach(([f, s]) => { if (!apart(r, s)) found.push(`${name(e)} ${name(f)}`); });
            });
        }
        return found;
    }"""))


async def test_on_the_demo_the_wallboard_is_live(tmp_path: Path, browser) -> None:
    """A supervisor signing in at the desk lands on the wallboard: both agents on calls (callers masked), two
    callers waiting, every word Chinese, nothing overlapping or scrolling at 1920×1080 and 1366×768; a new
    caller appears without a reload, a reload (a reconnect) shows the board again, 监听 rings the
    supervisor's phone; an agent signing in at /wallboard lands on the desk."""
    async with running(tmp_path, scale=1.0) as demo:  # in real time: the board's timers run from the PBX's times
        assert demo.service is not None
        base = f"http://127.0.0.1:{demo.service.web_port}"
        supervisor = next((u, p) for u, p, role in demo.sign_ins if role == "supervisor" and u != "supervisor")
        for n in range(4):  # 1001 and 1002 answer two; two wait
            demo.world.call("12345", Citizen(f"1390000{n:04d}", "市民", talk_seconds=6000, patience=6000))
            await asyncio.sleep(0.3)
        shots, waiting = {}, 2
        for name, screen in BOARD_SCREENS.items():
            context = await browser.new_context(viewport=screen, timezone_id=BROWSER_ZONE)
            page = await context.new_page()
            await page.goto(base + "/")
            await page.fill("#user", supervisor[0])
            await page.fill("#password", supervisor[1])
            await page.click("#signin-button")
            await page.wait_for_url(base + "/wallboard")
            await page.wait_for_selector("#board:not([hidden])")
            await page.wait_for_function("document.querySelectorAll('#agents .agent .call').length === 2",
                                         timeout=15000)
            await page.wait_for_function(f"document.querySelectorAll('#queue li[data-linkedid]').length === {waiting}",
                                         timeout=15000)
            await asyncio.sleep(1.2)  # a timer's tick
            assert await page.inner_text("#pbx") == "已连接"
            assert re.fullmatch(r"139\*+000[0-3] → 12345\s+\d\d:\d\d",
                                (await page.inner_text("#agents .agent .call")).strip()), \
                await page.inner_text("#agents .agent .call")
            assert await page.inner_text("#t-waiting b") == str(waiting)
            assert await visible_english(page) == []
            scroll_height, height, scroll_width, width = await fits(page)
            assert scroll_height <= height and scroll_width <= width
            assert await overlapping(page) == []
            shots[name] = tmp_path / f"wallboard-{name}.png"
            await page.screenshot(path=str(shots[name]))
            if name == "1920x1080":
                demo.world.call("12345", Citizen("13900000099", "市民", talk_seconds=6000, patience=6000))
                await page.wait_for_function("document.querySelector('#t-waiting b').textContent === '3'",
                                             timeout=10000)
                await page.reload()  # a reconnect: the board whole again
                await page.wait_for_function("document.querySelector('#t-waiting b').textContent === '3'",
                                             timeout=10000)
                await page.click("#agents .agent .spy button[data-mode=listen]")
                await page.wait_for_selector("#status:has-text('请接听您的话机')", timeout=10000)
                waiting = 3
            await context.close()
        agent, password, _ = demo.sign_ins[0]
        context = await browser.new_context(viewport=SCREEN, timezone_id=BROWSER_ZONE)
        page = await context.new_page()
        await page.goto(base + "/wallboard")
        await page.fill("#user", agent)
        await page.fill("#password", password)
        await page.click("#signin-button")
        await page.wait_for_url(base + "/")
        await page.wait_for_selector("#desk:not([hidden])")
        await context.close()


DROPPING = """() => {  // a socket that loses the next window.drop wallboard updates, counting the sockets opened
    window.sockets = 0;
    window.drop = 0;
    const Native = WebSocket;
    window.WebSocket = class extends Native {
        constructor(...args) {
            super(...args);
            window.sockets += 1;
            let handler = null;
            Object.defineProperty(this, "onmessage", { set(f) { handler = f; }, get() { return handler; } });
            this.addEventListener("message", (event) => {
                if (window.drop > 0 && JSON.parse(event.data).type === "wallboard_update") { window.drop -= 1; return; }
                if (handler) handler(event);
            });
        }
    };
}"""


async def test_the_wallboard_applies_updates_and_refetches_on_a_gap(tmp_path: Path, browser) -> None:
    """The board open with no call: an agent's new call shows from the updates alone (no new socket); an update
    lost on the way (the next one's number skips) makes the board reconnect for a snapshot, and the second
    agent's call shows; the page then is what the page reloaded shows."""
    async with running(tmp_path, scale=1.0) as demo:
        assert demo.service is not None
        base = f"http://127.0.0.1:{demo.service.web_port}"
        supervisor = next((u, p) for u, p, role in demo.sign_ins if role == "supervisor" and u != "supervisor")
        context = await browser.new_context(viewport=SCREEN, timezone_id=BROWSER_ZONE)
        page = await context.new_page()
        await page.add_init_script(f"({DROPPING})()")
        await page.goto(base + "/wallboard")
        await page.fill("#user", supervisor[0])
        await page.fill("#password", supervisor[1])
        await page.click("#signin-button")
        await page.wait_for_selector("#board:not([hidden])")
        await page.wait_for_function("document.querySelectorAll('#agents .agent').length === 2")
        assert await page.evaluate("document.querySelectorAll('#agents .agent .call').length") == 0
        demo.world.call("12345", Citizen("13900000001", "市民", talk_seconds=6000, patience=6000))
        await page.wait_for_function("document.querySelectorAll('#agents .agent .call').length === 1", timeout=15000)
        assert await page.evaluate("window.sockets") == 1
        await page.evaluate("window.drop = 1")
        demo.world.call("12345", Citizen("13900000002", "市民", talk_seconds=6000, patience=6000))
        await page.wait_for_function("document.querySelectorAll('#agents .agent .call').length === 2", timeout=15000)
        await page.wait_for_function("window.drop === 0 && window.sockets === 2", timeout=10000)
        calls = sorted(await page.eval_on_selector_all("#agents .agent .call", "(es) => es.map((e) => e.title)"))
        assert [re.fullmatch(r"139\*+000[12] → 12345 · 通话", c) is not None for c in calls] == [True, True], calls
        await asyncio.sleep(1.5)  # whatever updates follow
        shown = await page.inner_text("#agents")
        await page.reload()  # the board whole from a snapshot
        await page.wait_for_function("document.querySelectorAll('#agents .agent .call').length === 2",
                                     timeout=15000)
        assert re.sub(r"\d\d:\d\d", "", await page.inner_text("#agents")) == re.sub(r"\d\d:\d\d", "", shown)
        await context.close()
