"""The knowledge base's operations, for the API, ``cti kb`` and the demo: the rules of cti.kb.model, the words
of cti.kb.text, the store of cti.store.kb. Days are the service's (an article valid to 2026-06-30 is valid that
whole day in its zone)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cti.cases.model import CaseEvent
from cti.kb import model
from cti.kb import text as kb_text
from cti.kb.files import Draft
from cti.kb.model import STATE_NAMES, Article, KbError, Version, Viewer
from cti.store.kb import KbStore


@dataclass(frozen=True, slots=True)
class Hit:
    """An article found, with its title and a piece of its body as HTML: escaped, the matched words in <mark>."""

    article: Article
    score: float
    title_html: str
    snippet_html: str


@dataclass(frozen=True, slots=True)
class Imported:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    published: int = 0


def now_utc() -> datetime:
    return datetime.now(UTC)


class KnowledgeBase:
    def __init__(self, store: KbStore, zone: ZoneInfo, clock: Callable[[], datetime] = now_utc) -> None:
        self.store = store
        self.zone = zone
        self.clock = clock

    def today(self) -> date:
        return self.clock().astimezone(self.zone).date()

    async def get(self, viewer: Viewer, article_id: int) -> Article:
        """The article, or KbError 404 when there is none the viewer may see."""
        article = await self.store.get(article_id)
        if article is None or not viewer.sees(article, self.today()):
            raise KbError("no_such_article", f"no article {article_id}", 404)
        return article

    async def create(self, viewer: Viewer, **fields: Any) -> Article:
        article, version = model.create(viewer, self.clock(), **fields)
        return await self.store.create(article, version)

    async def edit(self, viewer: Viewer, article_id: int, changes: dict[str, Any],
                   expected_version: int | None = None) -> Article:
        article = await self.get(viewer, article_id)
        _expect(article, expected_version)
        after, version = model.edit(article, viewer, self.clock(), changes)
        return await self.store.save(article, after, version)

    async def move(self, viewer: Viewer, article_id: int, action: str, note: str = "",
                   expected_version: int | None = None) -> Article:
        article = await self.get(viewer, article_id)
        _expect(article, expected_version)
        after, version = model.move(article, action, viewer, self.clock(), note)
        return await self.store.save(article, after, version)

    async def versions(self, viewer: Viewer, article_id: int) -> list[Version]:
        if not viewer.editor:
            raise KbError("forbidden", "the versions of an article are for its editors and reviewers", 403)
        await self.get(viewer, article_id)
        return await self.store.versions(article_id)

    async def search(self, viewer: Viewer, query: str, *, unit: str | None = None, state: str | None = None,
                     limit: int = 10) -> list[Hit]:
        """The articles the viewer may read that best answer ``query``, the best first."""
        terms = kb_text.query_words(query)
        scope = model.scope(viewer, self.today(), unit=unit, state=state)
        found = await self.store.search(scope, terms, limit=limit)
        return [Hit(a, score, kb_text.highlight(a.title, terms), kb_text.snippet(a.body, terms)) for a, score in found]

    async def list(self, viewer: Viewer, *, unit: str | None = None, state: str | None = None, limit: int = 50,
                   offset: int = 0) -> list[Hit]:
        """The articles the viewer may read, the latest changed first (as hits with nothing marked)."""
        scope = model.scope(viewer, self.today(), unit=unit, state=state)
        articles = await self.store.find(scope, limit=limit, offset=offset)
        return [Hit(a, 0.0, kb_text.highlight(a.title, ()), kb_text.snippet(a.body, ())) for a in articles]

    async def attach(self, viewer: Viewer, article_id: int, case_id: int, case_state: str) -> Article:
        """Record in a case's timeline that the agent answered with the article (its version as read)."""
        article = await self.get(viewer, article_id)
        role = "agent" if viewer.role == "agent" else "supervisor"
        await self.store.attach(CaseEvent(case_id, self.clock(), viewer.user, role, "article", case_state, case_state,
                                          {"article": article.id, "version": article.version,
                                           "title": article.title}))
        return article

    async def load(self, viewer: Viewer, drafts: Sequence[Draft], *, publish: bool = False,
                   unit: str | None = None) -> Imported:
        """Articles from files: a new title of a unit is created, a known one edited when its file differs;
        ``publish`` publishes each created or changed one at once (a reviewer's import: the demo's sample)."""
        created, updated, unchanged, published = 0, 0, 0, 0
        for draft in drafts:
            owner = unit if unit is not None else draft.unit
            fields: dict[str, Any] = {"unit": owner, "title": draft.title, "body": draft.body, "tags": draft.tags,
                                      "valid_from": draft.valid_from, "valid_to": draft.valid_to}
            existing = await self.store.named(owner, draft.title)
            try:
                if existing is None:
                    article = await self.create(viewer, **fields)
                    created += 1
                else:
                    article = await self.edit(viewer, existing.id, fields)
                    updated += 1
            except KbError as exc:
                if exc.code != "unchanged":
                    raise KbError(exc.code, f"{draft.source}: {exc.message}", exc.status) from None
                unchanged += 1
                continue
            if publish:
                await self.move(viewer, article.id, "publish", f"imported from {draft.source}")
                published += 1
        return Imported(created, updated, unchanged, published)


def _expect(article: Article, version: int | None) -> None:
    if version is not None and version != article.version:
        raise KbError("conflict", f"article {article.id} is at version {article.version}, not {version}: "
                                  "someone changed it meanwhile; reload it")


def article_json(article: Article, zone: ZoneInfo) -> dict[str, Any]:
    data = dataclasses.asdict(article)
    data["tags"] = list(article.tags)
    data["state_name"] = STATE_NAMES[article.state]
    for name in ("valid_from", "valid_to"):
        data[name] = data[name].isoformat() if data[name] else None
    for name in ("created_at", "updated_at"):
        data[name] = data[name].astimezone(zone).isoformat() if data[name] else None
    return data


def hit_json(hit: Hit, zone: ZoneInfo) -> dict[str, Any]:
    data = article_json(hit.article, zone)
    del data["body"]  # a list is read at a glance: the piece of it is enough, GET {id} has it whole
    return data | {"score": round(hit.score, 6), "title_html": hit.title_html, "snippet_html": hit.snippet_html}


def version_json(version: Version, zone: ZoneInfo) -> dict[str, Any]:
    a = version.article
    return {"version": version.version, "change": version.change, "at": version.at.astimezone(zone).isoformat(),
            "actor": version.actor, "note": version.note, "state": a.state, "unit": a.unit, "title": a.title,
            "body": a.body, "tags": list(a.tags), "valid_from": a.valid_from.isoformat() if a.valid_from else None,
            "valid_to": a.valid_to.isoformat() if a.valid_to else None}
