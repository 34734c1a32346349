"""The knowledge base in the database: articles as they are now (kb_articles), every version of them
(kb_versions) and the search index (kb_search, cti.store.search_index), written in one transaction with each
change. A change is saved only if the article has not changed since it was read (its ``version``): two editors
at once cannot both win; the second gets a clear conflict."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import table as sql_table
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from cti.cases.model import CaseEvent
from cti.kb import text as kb_text
from cti.kb.model import Article, KbError, Scope, Version
from cti.store.models import CaseEventRow, KbArticleRow, KbVersionRow
from cti.store.search_index import TABLE

ARTICLE = ("unit", "title", "body", "tags", "valid_from", "valid_to", "state")
WEIGHTS = (10.0, 4.0, 1.0)  # bm25's weights of the title, the tags and the body
CANDIDATES = 200  # the best matches by FTS5 alone a search looks among first (SQLite)
_fts = sql_table(TABLE, column("rowid"), column("article_id"), column("document"))


class KbStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name

    # -- writing ------------------------------------------------------------------------------------------

    async def create(self, article: Article, version: Version) -> Article:
        [created] = await self.create_many([(article, version)])
        return created

    async def create_many(self, articles: Sequence[tuple[Article, Version]]) -> list[Article]:
        """New articles (their ids given here) with their first versions, in one transaction."""
        if not articles:
            return []
        async with self._sessions.begin() as session:
            ids = list(await session.scalars(
                insert(KbArticleRow).returning(KbArticleRow.id, sort_by_parameter_order=True),
                [_values(a) for a, _ in articles]))
            created = [dataclasses.replace(a, id=i) for (a, _), i in zip(articles, ids, strict=True)]
            await session.execute(insert(KbVersionRow), [
                _version_values(dataclasses.replace(v, article_id=i, article=a))
                for (_, v), i, a in zip(articles, ids, created, strict=True)])
            await self._index(session, created)
        return created

    async def save(self, before: Article, after: Article, version: Version) -> Article:
        """Write a change, if nobody changed the article since ``before`` was read."""
        async with self._sessions.begin() as session:
            result = await session.execute(update(KbArticleRow).where(
                KbArticleRow.id == before.id, KbArticleRow.version == before.version).values(**_values(after)))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise KbError("conflict", f"article {before.id} was changed by someone else meanwhile; reload it")
            await session.execute(insert(KbVersionRow), [_version_values(version)])
            if any(getattr(before, n) != getattr(after, n) for n in ("title", "tags", "body")):
                await self._index(session, [after])
        return after

    async def _index(self, session: AsyncSession, articles: Sequence[Article]) -> None:
        ids = [a.id for a in articles]
        rows = [(a.id, kb_text.index_text(a.title), kb_text.index_text(*a.tags), kb_text.index_text(a.body))
                for a in articles]
        if self._dialect == "sqlite":
            await session.execute(delete(_fts).where(_fts.c.rowid.in_(ids)))
            await session.execute(sql_text(f"INSERT INTO {TABLE} (rowid, title, tags, body) "
                                           "VALUES (:id, :title, :tags, :body)"),
                                  [{"id": i, "title": t, "tags": g, "body": b} for i, t, g, b in rows])
        else:
            await session.execute(delete(_fts).where(_fts.c.article_id.in_(ids)))
            await session.execute(sql_text(f"INSERT INTO {TABLE} (article_id, document) "
                                           "VALUES (:id, CAST(:document AS tsvector))"),
                                  [{"id": i, "document": kb_text.tsvector(t, g, b)} for i, t, g, b in rows])

    async def attach(self, event: CaseEvent) -> None:
        """An article used for a case, in the case's timeline: an event that moves nothing (the case's own
        columns and version stay as they are, so nobody editing the case meanwhile is refused for it)."""
        async with self._sessions.begin() as session:
            session.add(CaseEventRow(case_id=event.case_id, at=event.at, actor=event.actor, role=event.role,
                                     action=event.action, from_state=event.from_state, to_state=event.to_state,
                                     details=event.details))

    # -- reading ------------------------------------------------------------------------------------------

    async def get(self, article_id: int) -> Article | None:
        async with self._sessions() as session:
            row = await session.get(KbArticleRow, article_id)
        return _article(row) if row is not None else None

    async def named(self, unit: str, title: str) -> Article | None:
        """The article of ``unit`` titled ``title`` (the lowest id if several): what an import updates."""
        query = select(*KbArticleRow.__table__.c).where(KbArticleRow.unit == unit, KbArticleRow.title == title)
        async with self._sessions() as session:
            row = (await session.execute(query.order_by(KbArticleRow.id).limit(1))).first()
        return _article(row) if row is not None else None

    async def versions(self, article_id: int) -> list[Version]:
        query = select(KbVersionRow).where(KbVersionRow.article_id == article_id).order_by(KbVersionRow.version)
        async with self._sessions() as session:
            return [_version(r) for r in await session.scalars(query)]

    async def find(self, scope: Scope, *, limit: int = 50, offset: int = 0) -> list[Article]:
        """The articles of ``scope``, the latest changed first."""
        if scope.units == ():
            return []
        query = _scoped(select(*KbArticleRow.__table__.c), scope)
        query = query.order_by(KbArticleRow.updated_at.desc(), KbArticleRow.id.desc()).limit(limit).offset(offset)
        async with self._sessions() as session:
            return [_article(row) for row in await session.execute(query)]

    async def search(self, scope: Scope, terms: Sequence[str], *, limit: int = 10) -> list[tuple[Article, float]]:
        """The articles of ``scope`` holding any of ``terms`` (cti.kb.text.query_words), the best first, with
        their scores (higher: better; each backend's own scale)."""
        if scope.units == () or not terms:
            return []
        if self._dialect == "sqlite":
            match = kb_text.fts5_match(terms)
            if not match:
                return []
            # the best CANDIDATES by FTS5 alone first (a sort of rowids and scores, no article read), then those
            # in scope: a common word matches thousands of articles, and joining each to its row to filter and
            # sort it was most of a search's time. Too few left in scope: every match, as before.
            found = await self._ranked(scope, self._fts5(match, CANDIDATES), limit)
            if len(found) < limit:
                found = await self._ranked(scope, self._fts5(match, None), limit)
            return [(article, -rank) for article, rank in found]  # bm25: lower is better
        wanted = kb_text.tsquery(terms)
        if not wanted:
            return []
        query_words = bindparam("query", wanted, type_=TSQUERY)
        rank = func.ts_rank(_fts.c.document, query_words, 1)  # 1: divided by 1 + the log of its length, as bm25
        matches = select(_fts.c.article_id.label("id"), rank.label("rank")).where(
            _fts.c.document.op("@@")(query_words)).subquery()
        return [(article, rank) for article, rank in await self._ranked(scope, matches, limit, best_high=True)]

    @staticmethod
    def _fts5(match: str, limit: int | None) -> Any:
        rank = func.bm25(literal_column(TABLE), *WEIGHTS)
        query = select(_fts.c.rowid.label("id"), rank.label("rank")).where(
            literal_column(TABLE).op("MATCH")(bindparam("match", match))).order_by(rank)
        return (query.limit(limit) if limit is not None else query).subquery()

    async def _ranked(self, scope: Scope, matches: Any, limit: int, *,
                      best_high: bool = False) -> list[tuple[Article, float]]:
        """The articles of ``scope`` among ``matches`` (id, rank), the best ``limit``."""
        order = matches.c.rank.desc() if best_high else matches.c.rank
        query = select(*KbArticleRow.__table__.c, matches.c.rank).select_from(
            matches.join(KbArticleRow, KbArticleRow.id == matches.c.id)).order_by(order)
        async with self._sessions() as session:
            rows = list(await session.execute(_scoped(query, scope).limit(limit)))
        return [(_article(row), float(row.rank)) for row in rows]


def _scoped(query: Select[Any], scope: Scope) -> Select[Any]:
    if scope.units is not None:
        query = query.where(KbArticleRow.unit.in_(list(scope.units)))
    if scope.states is not None:
        query = query.where(KbArticleRow.state.in_(list(scope.states)))
    if scope.valid_on is not None:
        day = scope.valid_on
        conditions: list[ColumnElement[bool]] = [
            or_(KbArticleRow.valid_from.is_(None), KbArticleRow.valid_from <= day),
            or_(KbArticleRow.valid_to.is_(None), KbArticleRow.valid_to >= day)]
        query = query.where(*conditions)
    return query


def _values(article: Article) -> dict[str, Any]:
    return {name: getattr(article, name) for name in ARTICLE} | {
        "tags": list(article.tags), "version": article.version, "author": article.author,
        "reviewed_by": article.reviewed_by, "created_at": article.created_at, "updated_at": article.updated_at}


def _article(row: Any) -> Article:
    return Article(row.id, row.unit, row.title, row.body, tuple(row.tags), _day(row.valid_from),
                   _day(row.valid_to), row.state, row.version, row.author, row.created_at, row.updated_at,
                   row.reviewed_by)


def _day(value: Any) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def _version_values(version: Version) -> dict[str, Any]:
    a = version.article
    return {"article_id": version.article_id, "version": version.version, "change": version.change,
            "at": version.at, "actor": version.actor, "note": version.note,
            **{name: getattr(a, name) for name in ARTICLE}, "tags": list(a.tags)}


def _version(row: KbVersionRow) -> Version:
    article = Article(row.article_id, row.unit, row.title, row.body, tuple(row.tags), row.valid_from, row.valid_to,
                      row.state, row.version, row.actor if row.change in ("create", "edit") else "", None, row.at)
    return Version(row.article_id, row.version, row.change, row.at, row.actor, article, row.note)
