"""The desk's knowledge base in real headless Chromium (Debian's), against the running service: as a call to
12369 rings, the desk lists the ecology bureau's articles; as the agent types the case content, it suggests
articles with the matched words marked; the agent reads one, cites it, saves the case, and the article is in
the case's timeline. The desk still fits 1366×768 without scrolling."""

from __future__ import annotations

from pathlib import Path

from cti.kb import files
from cti.kb.model import Viewer
from cti.kb.service import KnowledgeBase
from tests.conftest import REPO
from tests.desk_harness import PASSWORD, running_desk
from tests.fakeami import until
from tests.test_desk import CALL, p5_with_pause
from tests.test_desk_browser import browser, fits, sign_in, visible_english  # noqa: F401 - browser: a fixture

SCREENSHOT = Path(__file__).parent.parent / "build" / "kb-desk.png"  # looked at when the desk changes


async def test_the_desk_suggests_articles_as_it_rings_and_as_the_agent_types(tmp_path: Path, browser) -> None:  # noqa: F811
    session, start, talk = p5_with_pause()
    async with running_desk(tmp_path, [session]) as desk:
        kb = KnowledgeBase(desk.database.kb, desk.service.settings.zone)
        await kb.load(Viewer("admin", "test"), files.read(REPO / "knowledge"), publish=True)
        await kb.create(Viewer("admin", "test"), unit="ecology-environment", title="<b>未发布</b>的草稿", body="草稿")
        await desk.database.users.add("1001", "王芳", "agent", PASSWORD, "1001")
        page = await sign_in(browser, desk.base, "1001", PASSWORD)
        await page.wait_for_selector("#desk:not([hidden])")
        await page.click("#login")
        await until(lambda: desk.server.actions("QueueAdd"), what="QueueAdd from the desk")

        await desk.route("12369", CALL)
        start.set()  # the citizen calls 12369, the ecology bureau's old number
        await page.wait_for_selector("#kb-list li[data-article]")
        assert await page.inner_text("#kb-of") == "· 市生态环境局"
        assert [t.strip() for t in await page.locator("#kb-list .kb-title").all_inner_texts()] == [
            "夜间施工噪音扰民怎么处理"]  # the unit's published articles only: not the draft

        await page.wait_for_selector("#pop.answered")
        await page.fill("#case-content", "来电人反映楼下工地晚上一直施工，太吵了")
        await page.wait_for_function("document.getElementById('kb-of').textContent.includes('与诉求相关')")
        first = page.locator("#kb-list li[data-article]").first
        assert await first.locator(".kb-title mark").all_inner_texts() == ["施工", "噪音", "扰民"]
        await page.fill("#kb-search", "网上买的东西能退吗")
        await page.wait_for_function("document.getElementById('kb-of').textContent.includes('查找结果')")
        await page.wait_for_function(
            "document.querySelector('#kb-list .kb-title').textContent.startsWith('网购商品七日无理由退货')")
        await page.fill("#kb-search", "夜间施工")
        await page.wait_for_function(
            "document.querySelector('#kb-list .kb-title').textContent.startsWith('夜间施工噪音扰民')")
        await page.click("#kb-list li[data-article]")
        await page.wait_for_selector("#kb-article:not([hidden])")
        assert (await page.inner_text("#kb-title")) == "夜间施工噪音扰民怎么处理"
        assert "22 时至次日 6 时" in await page.inner_text("#kb-body")
        await page.click("#kb-use")
        await page.wait_for_selector("#case-articles .chip")
        assert (await page.inner_text("#case-articles .chip")).startswith("夜间施工噪音扰民怎么处理")
        assert await visible_english(page) == []
        height, inner, width, inner_width = await fits(page)
        assert height <= inner and width <= inner_width, "the desk fits 1366×768 without scrolling"
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT))

        await page.click("#case-save")
        await page.wait_for_function("document.getElementById('case-result').textContent.includes('已保存')")
        await page.wait_for_function("document.getElementById('case-articles').hidden")
        [case] = await desk.database.cases.find(limit=1)
        events = await desk.database.cases.events(case.id)
        assert [(e.action, e.details["title"]) for e in events if e.action == "article"] == [
            ("article", "夜间施工噪音扰民怎么处理")]
        talk.set()
