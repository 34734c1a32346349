"""The knowledge base's routes (知识库): search and list articles, read one, write, review, its versions, and the
article an agent answered a case with.

Agents read what is published and valid today; an integrator of a unit reads and writes its unit's articles in
every state (another unit's are not found: 404); supervisors and admins read everything, write, and review
(审核, 发布, 停用). Titles and pieces of bodies come as HTML in title_html and snippet_html, escaped, the
matched words in <mark>: the page puts nothing else of an article into its markup.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from cti.kb.files import TAG_SPLIT
from cti.kb.model import BODY, EDITORS, MOVES, NOTE, REVIEWERS, STATES, TITLE, UNIT, Viewer
from cti.kb.service import KnowledgeBase, article_json, hit_json, version_json
from cti.web import schemas
from cti.web.api import ctx, routes
from cti.web.case_api import CASE_PARAM, NO_CASE, _case
from cti.web.routes import ANYONE, ApiError, Call, Field
from cti.web.schemas import array, choice, integer, nullable, number, obj, ref, text, time

ARTICLE_ID = 2**31 - 1
ARTICLE_PARAM = {"article_id": Field(int, min=1, max=ARTICLE_ID, description="the article's id", example=1)}
NO_ARTICLE = "no_such_article: no article of that id the user may read (an agent: none published and valid today; " \
             "an integrator: none of its unit's)"
WRITING = ("forbidden: an integrator writes only its own unit's articles, one bound to no unit none; "
           "invalid: valid_to before valid_from, a tag too long, too many tags; unknown_unit")
CHANGED = "conflict: the article changed meanwhile (version), reload it; unchanged: nothing to change"
DAY = Field(max_length=10, format="date", description="YYYY-MM-DD, inclusive (the service's days)")
TAGS = Field(max_length=700, description="tags, separated by commas or semicolons: 公积金,提取")
_FIELDS = {"unit": Field(max_length=UNIT, description="a unit of GET /api/units; empty: the hotline's own "
                                                      "(an integrator: its own unit, the default)"),
           "tags": TAGS, "valid_from": DAY, "valid_to": DAY}

_ARTICLE_FIELDS: dict[str, schemas.Schema] = {
    "id": integer(), "unit": text("the unit maintaining it (empty: the hotline's own)"), "title": text(),
    "tags": array(text()), "valid_from": nullable(text(format="date")), "valid_to": nullable(text(format="date")),
    "state": choice(STATES), "state_name": text("the state in Chinese"),
    "version": integer("every change makes the next version"), "author": text("who wrote the current text"),
    "reviewed_by": text("who made the last review move"), "created_at": time(), "updated_at": time()}
COMPONENTS = {
    "KbArticle": obj({**_ARTICLE_FIELDS, "body": text("plain text (Markdown's lists and line breaks as written)")},
                     "A knowledge-base article (知识库)"),
    "KbHit": obj({**_ARTICLE_FIELDS, "score": number("how well it answers the query (higher: better; 0 in a "
                                                     "list without one)"),
                  "title_html": text("the title as HTML: escaped, the query's words in <mark>"),
                  "snippet_html": text("a piece of the body as HTML, where the query's words are: escaped, they "
                                       "in <mark>")},
                 "An article found or listed, without its body"),
    "KbVersion": obj({
        "version": integer(), "change": choice(("create", "edit", *MOVES)), "at": time(), "actor": text(),
        "note": text(), "state": choice(STATES), "unit": text(), "title": text(), "body": text(),
        "tags": array(text()), "valid_from": nullable(text(format="date")),
        "valid_to": nullable(text(format="date"))}, "An article as it was after one change"),
    "CaseArticle": obj({"case": integer(), "article": integer(), "version": integer("the version read"),
                        "title": text()}, "An article recorded in a case's timeline (its event: action article)"),
}
schemas.COMPONENTS.update(COMPONENTS)


def _kb(call: Call) -> KnowledgeBase:
    return KnowledgeBase(ctx(call).database.kb, ctx(call).zone)


def viewer(call: Call) -> Viewer:
    return Viewer(call.user.role, call.user.id, call.user.unit_id or None)


def _article_id(call: Call) -> int:
    try:
        value = int(call.path("article_id"))
    except ValueError:
        raise ApiError(404, "no_such_article", f"no article {call.path('article_id')!r}") from None
    if not 1 <= value <= ARTICLE_ID:
        raise ApiError(404, "no_such_article", f"no article {value}")
    return value


def _fields(call: Call) -> dict[str, Any]:
    """The body's article fields, typed: days as dates, tags as a list, the unit known to the catalogue."""
    body: dict[str, Any] = call.body
    fields: dict[str, Any] = {}
    for name in ("title", "body"):
        if name in body:
            fields[name] = body[name]
    for name in ("valid_from", "valid_to"):
        if name in body:
            try:
                fields[name] = date.fromisoformat(body[name])
            except ValueError:
                raise ApiError(422, "invalid", "invalid body", {"fields": {name: "expected YYYY-MM-DD"}}) from None
    if "tags" in body:
        fields["tags"] = [t for t in TAG_SPLIT.split(body["tags"]) if t.strip()]
    if "unit" in body:
        if body["unit"] not in ctx(call).configuration().catalogue.units:
            raise ApiError(422, "unknown_unit", f"no unit {body['unit']!r} in the dispatch catalogue")
        fields["unit"] = body["unit"]
    return fields


# -- articles ---------------------------------------------------------------------------------------------

@routes.add("GET", "/api/kb/articles", roles=ANYONE,
            summary="Search the knowledge base (q: as the agent types it, Chinese segmented by jieba), the best "
                    "first, the matched words marked; without q, the articles latest changed first. An agent: the "
                    "published ones valid today; an integrator: its unit's, in every state",
            query={"q": Field(max_length=200, description="what to look for", example="公积金怎么提取"),
                   "unit": Field(max_length=UNIT, description="only this unit's (the dialled number's, as a call "
                                                              "rings)"),
                   "state": Field(choices=STATES, description="only in this state (agents: published only)"),
                   "limit": Field(int, min=1, max=50, description="how many (default 10)"),
                   "offset": Field(int, min=0, max=100_000, description="how many to skip, without q (default 0)")},
            response=array(ref("KbHit")), errors={403: "forbidden: an integrator bound to no unit reads no articles"})
async def kb_articles(call: Call) -> list[dict[str, Any]]:
    q, who = call.query, viewer(call)
    if who.role == "integrator" and who.unit is None:
        raise ApiError(403, "forbidden", "this integrator acts for no unit: it reads no articles")
    kb = _kb(call)
    if q.get("q", "").strip():
        hits = await kb.search(who, q["q"], unit=q.get("unit"), state=q.get("state"), limit=q.get("limit", 10))
    else:
        hits = await kb.list(who, unit=q.get("unit"), state=q.get("state"), limit=q.get("limit", 10),
                             offset=q.get("offset", 0))
    return [hit_json(h, kb.zone) for h in hits]


@routes.add("POST", "/api/kb/articles", roles=EDITORS,
            summary="Write an article (a draft, to be reviewed and published by a supervisor); an integrator "
                    "writes its own unit's",
            body={"title": Field(required=True, max_length=TITLE, description="what an agent looks for"),
                  "body": Field(required=True, max_length=BODY, line=False, description="the answer, plain text"),
                  **_FIELDS},
            response=ref("KbArticle"), errors={403: WRITING, 422: WRITING})
async def kb_create(call: Call) -> dict[str, Any]:
    who, fields = viewer(call), _fields(call)
    fields.setdefault("unit", who.unit if who.role == "integrator" and who.unit else "")
    article = await _kb(call).create(who, **fields)
    return article_json(article, ctx(call).zone)


@routes.add("GET", "/api/kb/articles/{article_id}", roles=ANYONE, summary="An article, whole",
            params=ARTICLE_PARAM, response=ref("KbArticle"), errors={404: NO_ARTICLE})
async def kb_article(call: Call) -> dict[str, Any]:
    return article_json(await _kb(call).get(viewer(call), _article_id(call)), ctx(call).zone)


@routes.add("PATCH", "/api/kb/articles/{article_id}", roles=EDITORS,
            summary="Change an article: a new version; a change of its text (title, body, tags, unit) puts it back "
                    "to draft, to be reviewed again",
            body={"title": Field(max_length=TITLE), "body": Field(max_length=BODY, line=False), **_FIELDS,
                  "version": Field(int, min=1, max=ARTICLE_ID, description="the version the change was made on: "
                                                                          "refused (409) if it is no longer")},
            params=ARTICLE_PARAM, response=ref("KbArticle"),
            errors={404: NO_ARTICLE, 403: WRITING, 422: WRITING, 409: CHANGED})
async def kb_edit(call: Call) -> dict[str, Any]:
    article = await _kb(call).edit(viewer(call), _article_id(call), _fields(call), call.body.get("version"))
    return article_json(article, ctx(call).zone)


@routes.add("POST", "/api/kb/articles/{article_id}/review", roles=REVIEWERS,
            summary="Review an article: " + "; ".join(f"{m.action} ({', '.join(m.sources)} → {m.target})"
                                                      for m in MOVES.values()),
            body={"action": Field(required=True, choices=tuple(MOVES), description="the move"),
                  "note": Field(max_length=NOTE, line=False, description="why, kept with the version"),
                  "version": Field(int, min=1, max=ARTICLE_ID, description="the version reviewed: refused (409) "
                                                                          "if it is no longer")},
            params=ARTICLE_PARAM, response=ref("KbArticle"),
            errors={404: NO_ARTICLE, 409: f"illegal_transition: the article's state does not allow it; {CHANGED}"})
async def kb_review(call: Call) -> dict[str, Any]:
    article = await _kb(call).move(viewer(call), _article_id(call), call.body["action"], call.body.get("note", ""),
                                   call.body.get("version"))
    return article_json(article, ctx(call).zone)


@routes.add("GET", "/api/kb/articles/{article_id}/versions", roles=EDITORS,
            summary="Every version of an article, the first first (an integrator: of its unit's)",
            params=ARTICLE_PARAM, response=array(ref("KbVersion")), errors={404: NO_ARTICLE})
async def kb_versions(call: Call) -> list[dict[str, Any]]:
    return [version_json(v, ctx(call).zone) for v in await _kb(call).versions(viewer(call), _article_id(call))]


# -- the article a case was answered with ---------------------------------------------------------------------

@routes.add("POST", "/api/cases/{case_id}/articles", roles=("agent", "supervisor"),
            summary="Record the article used to answer a case: an event of the case's timeline (action article, "
                    "details: article, version, title); the case itself is unchanged",
            body={"article": Field(int, required=True, min=1, max=ARTICLE_ID, description="the article's id")},
            params=CASE_PARAM, response=ref("CaseArticle"), errors={404: f"{NO_CASE}; {NO_ARTICLE}"})
async def case_article(call: Call) -> dict[str, Any]:
    case = await _case(call)
    article = await _kb(call).attach(viewer(call), call.body["article"], case.id, case.state)
    return {"case": case.id, "article": article.id, "version": article.version, "title": article.title}
