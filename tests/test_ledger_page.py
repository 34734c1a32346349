"""The number ledger's page (/ledger) on the demo in headless Chromium: the demo prints its address, anyone
opens it without signing in, on a phone (a card per number, nothing wider than the screen) and on a desktop
screen; another day shows the statuses of that day, the search narrows the list (screenshots looked at)."""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from cti.demo import Demo, DemoOptions
from cti.settings import Settings, WebSettings
from tests.conftest import REPO_PATHS
from tests.test_demo import started

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).parent.parent / "build" / "screenshots"
PHONE = {"width": 390, "height": 844}
SCREEN = {"width": 1366, "height": 768}


@asynccontextmanager
async def demo_of_the_shipped_map(tmp_path: Path) -> AsyncIterator[Demo]:
    """``cti demo --rate 0`` on the project's own configuration (Yuncheng's 58 numbers)."""
    async with started(Demo(Settings(web=WebSettings(port=0), paths=REPO_PATHS),
                            DemoOptions(rate=0, seed=7, workdir=tmp_path / "demo", transfer_share=0)), 30) as demo:
        yield demo


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup does)")
async def test_the_demo_shows_the_ledger_to_anyone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    playwright = pytest.importorskip("playwright.async_api")
    async with demo_of_the_shipped_map(tmp_path):
        printed = re.search(r"^  number ledger   (http://\S+/ledger) +\(public: no sign-in\)$", capsys.readouterr().out,
                            re.MULTILINE)
        assert printed is not None
        url = printed.group(1)
        SHOTS.mkdir(parents=True, exist_ok=True)
        async with playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            errors: list[str] = []
            signed: list[str] = []
            phone = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")
            page = await phone.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda r: signed.append(r.url) if "authorization" in r.headers else None)
            await page.goto(url + "?at=2020-07-01")
            await page.wait_for_selector("body[data-loaded='2020-07-01']", timeout=15_000)
            assert await page.locator("#ledger tbody tr").count() == 58
            first = page.locator("#ledger tbody tr").nth(2)
            assert (await first.inner_text()).split() == [
                "12312", "市商务局", "直接合并", "2019-12-31", "至", "2020-06-30", "已停用", "12345"]
            # on a phone each line of a card has its heading before it (the table's head is hidden)
            assert await first.evaluate("row => [...row.cells].map(c => getComputedStyle(c, '::before').content)") == [
                '"原号码"', '"所属单位"', '"整合方式"', '"过渡期"', '"当日状态"', '"请拨打"']
            assert await page.is_hidden("#ledger thead")
            assert "2020-07-01 共 58 个号码" in await page.inner_text("#summary")
            width, screen = await page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            assert width <= screen, "wider than the phone"
            await page.screenshot(path=str(SHOTS / "ledger-phone.png"))

            await page.fill("#at", "2020-03-01")
            await page.dispatch_event("#at", "change")
            await page.wait_for_selector("body[data-loaded='2020-03-01']", timeout=15_000)
            assert page.url.endswith("/ledger?at=2020-03-01")
            assert "过渡期 7 个" in await page.inner_text("#summary")
            assert await page.get_attribute("#csv", "href") == "/api/ledger?at=2020-03-01&format=csv"
            await page.fill("#find", "市场监管")
            assert await page.locator("#ledger tbody tr").count() == 5
            await page.fill("#find", "12339")
            assert "国家安全举报请拨打12339" in await page.inner_text("#ledger tbody")

            desk = await (await browser.new_context(viewport=SCREEN)).new_page()
            desk.on("pageerror", lambda error: errors.append(str(error)))
            await desk.goto(url + "?at=2020-03-01")
            await desk.wait_for_selector("body[data-loaded='2020-03-01']", timeout=15_000)
            assert await desk.is_visible("#ledger thead")
            await desk.screenshot(path=str(SHOTS / "ledger-1366.png"))
            refused = await (await browser.new_context()).new_page()
            await refused.goto(url + "?at=2020-02-30")
            await refused.wait_for_selector("#error:not([hidden])", timeout=15_000)
            assert await refused.inner_text("#error") == "查询失败：日期“2020-02-30”不存在，请按“年-月-日”选择日期"
            await refused.screenshot(path=str(SHOTS / "ledger-refused.png"))
            await browser.close()
        assert errors == [] and signed == []
