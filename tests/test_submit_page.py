"""The public web form (/submit) in headless Chromium at a phone's size: a citizen sends a request without
signing in and sees only the case number and what happens next (what they wrote gone from the screen); the
desk then lists it, with its 网页 badge, among the requests to take, and 认领 takes it (screenshots looked at)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.desk_harness import PASSWORD, running_desk
from tests.fakeami import Session
from tests.test_desk_browser import browser, fits, sign_in  # noqa: F401 - browser: the fixture
from tests.test_ledger_page import CHROMIUM, PHONE, SHOTS

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup does)")
CONTENT = "金雀山路某小区门口井盖缺失，夜里有人差点掉下去，请尽快处理"


async def test_a_citizen_sends_a_request_from_a_phone(tmp_path: Path, browser) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    async with running_desk(tmp_path, [Session(close_at_end=False)]) as desk:
        SHOTS.mkdir(parents=True, exist_ok=True)
        phone = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
        page = await phone.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(desk.base + "/submit")
        box = await page.locator(".trap").bounding_box()  # the field for robots is not for people: off the screen
        assert box is not None and box["x"] + box["width"] <= 0
        await page.click("#send")  # nothing filled: said in Chinese, nothing sent
        assert await page.inner_text("#error") == "请填写诉求内容。"
        await page.click("label:has(input[value=request])")
        await page.fill("#content", CONTENT)
        await page.fill("#location", "兰山区金雀山路")
        await page.fill("#caller_number", "139 0000 0001")
        await page.fill("#caller_name", "王小明")
        await page.screenshot(path=str(SHOTS / "submit-phone-filled.png"), full_page=True)
        _, _, width, screen = await fits(page)
        assert width <= screen, "wider than the phone"
        await page.click("#send")
        await page.wait_for_selector("#done:not([hidden])", timeout=10_000)
        reference = await page.inner_text("#reference")
        shown = await page.evaluate("document.body.innerText")
        assert "工作人员将在3分钟内响应" in shown
        for written in (CONTENT, "王小明", "13900000001", "金雀山路"):
            assert written not in shown
        assert await page.input_value("#content") == ""  # the form was emptied too
        await page.screenshot(path=str(SHOTS / "submit-phone-done.png"), full_page=True)
        [case] = await desk.database.cases.find(reference=reference)
        assert (case.channel, case.category, case.caller_number, case.content) == (
            "web", "request", "13900000001", CONTENT)

        await desk.database.users.add("1001", "1001", "agent", PASSWORD, "1001")
        agent = await sign_in(browser, desk.base, "1001", PASSWORD)
        agent.on("pageerror", lambda error: errors.append(str(error)))
        item = agent.locator(f"#requests li[data-case='{case.id}']")
        await item.wait_for(timeout=10_000)
        assert (await item.locator(".channel").inner_text()) == "网页"
        height, inner, _, _ = await fits(agent)
        assert height <= inner, "the desk scrolls"
        await agent.screenshot(path=str(SHOTS / "submit-desk-request.png"))
        await item.locator("button").dispatch_event("click")  # the list may be drawn again meanwhile
        await agent.wait_for_selector("#requests li.muted", timeout=10_000)
        taken = await desk.database.cases.get(case.id)
        assert taken is not None and taken.taken_by == "1001"
        assert f"工单号 {reference}" in await agent.inner_text("#messages")
        assert errors == []
