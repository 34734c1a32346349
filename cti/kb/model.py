"""The knowledge base (知识库), pure: an article, its review states, the moves between them and who may make
them, and who sees what.

An article belongs to a unit (a handling unit of the dispatch catalogue; "" for the hotline's own), which
maintains it: that unit's integrator writes it through the API, a supervisor reviews and publishes it. Agents
read only what is published and valid on the day (valid_from..valid_to, inclusive, in the service's zone).

Every change is a new version (cti.store.kb keeps each as a row). An edit of the text puts the article back to
draft, whatever its state: text nobody reviewed never reaches an agent. (The published text is not kept live
meanwhile: a unit that changes a rule takes the old one down by changing it, which is what a rule change is.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cti.refusal import Refusal

STATES = ("draft", "reviewed", "published", "retired")
STATE_NAMES = {"draft": "草稿", "reviewed": "已审核", "published": "已发布", "retired": "已停用"}
EDITORS = ("supervisor", "admin", "integrator")
REVIEWERS = ("supervisor", "admin")
# the limits of an article's fields: within their columns (cti.store.models), the body within reason
TITLE, BODY, UNIT, TAG, TAGS, NOTE = 200, 20_000, 64, 32, 20, 500


class KbError(Refusal):
    """A refused knowledge-base operation (cti.refusal)."""


@dataclass(frozen=True, slots=True)
class Move:
    action: str
    sources: tuple[str, ...]
    target: str
    summary: str


MOVES: dict[str, Move] = {move.action: move for move in (
    Move("review", ("draft",), "reviewed", "审核通过: the text was checked"),
    Move("publish", ("draft", "reviewed"), "published", "发布: agents see it (a draft is reviewed at once)"),
    Move("retire", ("draft", "reviewed", "published"), "retired", "停用: agents no longer see it"),
    Move("redraft", ("reviewed", "published", "retired"), "draft", "退回草稿: to be changed and reviewed again"),
)}


@dataclass(frozen=True, slots=True)
class Article:
    id: int
    unit: str
    title: str
    body: str
    tags: tuple[str, ...] = ()
    valid_from: date | None = None
    valid_to: date | None = None
    state: str = "draft"
    version: int = 1
    author: str = ""  # who wrote the current text
    created_at: datetime | None = None
    updated_at: datetime | None = None
    reviewed_by: str = ""  # who moved it last (review, publish, retire)

    def valid_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)

    def shown_to_agents(self, day: date) -> bool:
        return self.state == "published" and self.valid_on(day)


@dataclass(frozen=True, slots=True)
class Version:
    """One version of an article: the whole of it as it was after a change."""

    article_id: int
    version: int
    change: str  # create, edit, or a move of MOVES
    at: datetime
    actor: str
    article: Article
    note: str = ""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads or writes: a role of cti.auth.ROLES, the unit an integrator acts for, a name for the history."""

    role: str
    user: str
    unit: str | None = None

    @property
    def editor(self) -> bool:
        return self.role in EDITORS

    def sees(self, article: Article, day: date) -> bool:
        """Whether ``article`` exists for this viewer (an article they may not see is not found, not forbidden:
        its existence says nothing)."""
        if self.role in REVIEWERS:
            return True
        if self.role == "integrator":
            return self.unit is not None and article.unit == self.unit
        return article.shown_to_agents(day)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a list or a search of a viewer covers: store filters, made here so that every path uses them."""

    units: tuple[str, ...] | None = None  # None: every unit
    states: tuple[str, ...] | None = None  # None: every state
    valid_on: date | None = None  # only the articles valid on the day


def scope(viewer: Viewer, day: date, *, unit: str | None = None, state: str | None = None) -> Scope:
    """The articles ``viewer`` may list or search, narrowed to ``unit`` and ``state`` when asked. Agents: the
    published ones valid on ``day``; an integrator: its unit's, in every state; supervisors and admins: all."""
    if viewer.role == "integrator":
        if viewer.unit is None or (unit is not None and unit != viewer.unit):
            return Scope(units=(), states=None)  # nothing: another unit's are not its to see
        return Scope(units=(viewer.unit,), states=(state,) if state else None)
    units = (unit,) if unit is not None else None
    if viewer.role in REVIEWERS:
        return Scope(units=units, states=(state,) if state else None)
    if state not in (None, "published"):
        return Scope(units=(), states=None)
    return Scope(units=units, states=("published",), valid_on=day)


def check_write(viewer: Viewer, unit: str) -> None:
    """Whether ``viewer`` may write an article of ``unit`` (KbError 403 when not)."""
    if not viewer.editor:
        raise KbError("forbidden", f"{viewer.role}s read the knowledge base; they do not write it", 403)
    if viewer.role == "integrator":
        if viewer.unit is None:
            raise KbError("forbidden", "this integrator acts for no unit: it writes no articles", 403)
        if unit != viewer.unit:
            raise KbError("forbidden", f"an integrator writes its own unit's articles ({viewer.unit}), not {unit!r}",
                          403)


def check_days(valid_from: date | None, valid_to: date | None) -> None:
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise KbError("invalid", f"valid_to {valid_to} is before valid_from {valid_from}", 422)


def clean_tags(tags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Tags trimmed, each once, in order; too many or too long ones are refused (422)."""
    seen: dict[str, None] = {}
    for tag in tags:
        text = " ".join(str(tag).split())
        if len(text) > TAG:
            raise KbError("invalid", f"a tag has at most {TAG} characters: {text[:40]!r}", 422)
        if text:
            seen.setdefault(text, None)
    if len(seen) > TAGS:
        raise KbError("invalid", f"at most {TAGS} tags", 422)
    return tuple(seen)


def create(viewer: Viewer, at: datetime, *, unit: str, title: str, body: str, tags: tuple[str, ...] = (),
           valid_from: date | None = None, valid_to: date | None = None) -> tuple[Article, Version]:
    """A new draft (id 0: the store gives it one) and its first version."""
    check_write(viewer, unit)
    check_days(valid_from, valid_to)
    article = Article(0, unit, title.strip(), body.strip(), clean_tags(tags), valid_from, valid_to, "draft", 1,
                      viewer.user, at, at)
    if not article.title or not article.body:
        raise KbError("invalid", "an article needs a title and a body", 422)
    return article, Version(0, 1, "create", at, viewer.user, article)


EDITABLE = ("title", "body", "tags", "valid_from", "valid_to", "unit")


def edit(article: Article, viewer: Viewer, at: datetime, changes: dict[str, Any]) -> tuple[Article, Version]:
    """The article with ``changes`` (fields of EDITABLE), back to draft when its text changed; KbError
    ``unchanged`` when nothing would change."""
    check_write(viewer, article.unit)
    values = {k: v for k, v in changes.items() if k in EDITABLE}
    if "tags" in values:
        values["tags"] = clean_tags(values["tags"])
    for name in ("title", "body"):
        if name in values:
            values[name] = str(values[name]).strip()
            if not values[name]:
                raise KbError("invalid", f"an article needs a {name}", 422)
    if "unit" in values:
        check_write(viewer, values["unit"])  # an integrator gives no article away
    after = dataclasses.replace(article, **values)
    check_days(after.valid_from, after.valid_to)
    if after == article:
        raise KbError("unchanged", "nothing to change: the article is already so")
    text_changed = any(getattr(after, n) != getattr(article, n) for n in ("title", "body", "tags", "unit"))
    after = dataclasses.replace(after, version=article.version + 1, author=viewer.user, updated_at=at,
                                state="draft" if text_changed else article.state)
    return after, Version(article.id, after.version, "edit", at, viewer.user, after)


def move(article: Article, action: str, viewer: Viewer, at: datetime, note: str = "") -> tuple[Article, Version]:
    """A review move (MOVES) by a supervisor or admin."""
    step = MOVES.get(action)
    if step is None:
        raise KbError("unknown_action", f"no review action {action!r}; actions: {', '.join(MOVES)}", 422)
    if viewer.role not in REVIEWERS:
        raise KbError("forbidden", "supervisors and admins review, publish and retire articles", 403)
    if article.state not in step.sources:
        raise KbError("illegal_transition", f"article {article.id} is {article.state}: {action} takes an article "
                                            f"that is {' or '.join(step.sources)}")
    after = dataclasses.replace(article, state=step.target, version=article.version + 1, updated_at=at,
                                reviewed_by=viewer.user)
    return after, Version(article.id, after.version, action, at, viewer.user, after, note)
