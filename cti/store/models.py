"""Database tables. SQLite (the embedded default) and PostgreSQL share them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, DateTime, ForeignKey, Index, String, Text, TypeDecorator, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cti.store import search_index


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zones: without this, an aware time would be stored with
    its offset silently dropped."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class CallRow(Base):
    """One citizen call, written once when it ends."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(16))
    caller_number: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str] = mapped_column(String(128))
    dialled_number: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(128))
    unit_id: Mapped[str] = mapped_column(String(64))
    treatment: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(64))
    arrived_at: Mapped[datetime]
    queued_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime]
    queue_wait: Mapped[float | None]
    talk_time: Mapped[float | None]
    answered_by: Mapped[str] = mapped_column(String(128))
    answered_by_name: Mapped[str] = mapped_column(String(128))
    answered_channel: Mapped[str] = mapped_column(String(128))
    transfers: Mapped[list[Any]]
    legs: Mapped[list[Any]]
    hangup_cause: Mapped[int | None]
    hangup_cause_text: Mapped[str] = mapped_column(String(128))
    recording: Mapped[str] = mapped_column(String(512))
    estimated: Mapped[bool]

    __table_args__ = (
        Index("ix_calls_caller_arrived", "caller_number", "arrived_at"),
        Index("ix_calls_dialled_arrived", "dialled_number", "arrived_at"),
        Index("ix_calls_arrived", "arrived_at"),
        Index("ix_calls_unit_arrived", "unit_id", "arrived_at"),  # a unit's integrator reads its own calls
    )


class CallTallyRow(Base):
    """Running tallies of the call measures (cti.stats.tallies): per local hour and queue ("queue"), per local
    day and unit ("unit"), per local day and agent ("agent"), in the zone of TallyZoneRow CALL_TALLIES, added to in the
    transaction that writes the calls (CallStore.save), rebuilt from the calls when the zone changes. Waits are
    kept in whole milliseconds (what cti.stats.measures.wait_of counts), so that their sums are exact."""

    __tablename__ = "call_tallies"

    grouping: Mapped[str] = mapped_column(String(8), primary_key=True)  # queue | unit | agent
    starts_at: Mapped[datetime] = mapped_column(primary_key=True)  # the local hour's (queue) or day's start
    key: Mapped[str] = mapped_column(String(128), primary_key=True)  # the queue, unit_id or answered_by
    day: Mapped[str] = mapped_column(String(10))  # local YYYY-MM-DD
    hour: Mapped[str] = mapped_column(String(2))  # local 00-23 ("" for a day's row)
    name: Mapped[str] = mapped_column(String(128))  # the unit's or agent's name (the greatest seen)
    asked: Mapped[int]
    short_abandons: Mapped[int]
    answered: Mapped[int]
    answered_in_15s: Mapped[int]
    wait_ms: Mapped[int] = mapped_column(BigInteger)  # the offered calls' waits
    max_wait_ms: Mapped[int | None]
    answer_wait_ms: Mapped[int] = mapped_column(BigInteger)
    talk_sum: Mapped[float]
    talked: Mapped[int]


class TallyZoneRow(Base):
    """The zone the tallies' local hours and days are in: one row for the call tallies (CALL_TALLIES), one for
    the case tallies (CASE_TALLIES); none: no tallies yet, they are made from the calls or cases. (The table's
    name is from when it held the call tallies' zone alone.)"""

    __tablename__ = "call_tally_zone"

    id: Mapped[int] = mapped_column(primary_key=True)  # CALL_TALLIES or CASE_TALLIES
    zone: Mapped[str] = mapped_column(String(64))
    built_at: Mapped[datetime]


CALL_TALLIES, CASE_TALLIES = 1, 2


class AlertRow(Base):
    """A risk alert (cti.hotspots): raised once, kept while found again, cleared once; those not cleared are the
    alerts in force, read back at start so that a restart raises none of them again. One row per alert (the same
    thing found again after it cleared is raised anew in its row)."""

    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Detection.id
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]
    since: Mapped[datetime]
    raised_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_alerts_cleared", "cleared_at", "raised_at"),)


class LeaseRow(Base):
    """Who runs a duty that must run once among several cti instances (the case sweep and callbacks, the
    webhooks' delivery, the hotspot sweep: cti.leader), until when; taken over once it has expired."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    taken_at: Mapped[datetime]  # when the holder took it (not renewed): how long it has held it


class CaseTallyRow(Base):
    """Running tallies of the case measures (cti.stats.case_tallies): per local day of opening and unit
    ("unit"), category ("category") or legacy number ("legacy_number"), in the zone of TallyZoneRow
    CASE_TALLIES, moved in the transaction that writes each case (CaseStore), rebuilt from the cases when the
    zone changes."""

    __tablename__ = "case_tallies"

    grouping: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # local YYYY-MM-DD the cases were opened
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the unit, category or legacy number
    cases: Mapped[int]
    closed: Mapped[int]
    replied: Mapped[int]
    on_time: Mapped[int]
    late: Mapped[int]  # replied late and out of the unit's hands: overdue for good
    satisfied: Mapped[int]
    basically_satisfied: Mapped[int]
    unsatisfied: Mapped[int]
    unreachable: Mapped[int]
    first_call_resolved: Mapped[int]
    dispatched: Mapped[int]
    returned: Mapped[int]
    rehandled: Mapped[int]
    escalated: Mapped[int]
    media_cases: Mapped[int] = mapped_column(server_default=text("0"))  # by SMS or the web (revision 0003)
    answered_3min: Mapped[int] = mapped_column(server_default=text("0"))  # of those, answered within 3 minutes


class SmsInboundRow(Base):
    """A text the SMS gateway reported, by its message id: written with what it made (a case, or a survey's
    answer), so that the same message reported twice makes it once."""

    __tablename__ = "sms_inbound"

    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))  # case, survey
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))


class CallEventRow(Base):
    """The timeline of a call: its domain events in order."""

    __tablename__ = "call_events"

    linkedid: Mapped[str] = mapped_column(
        String(64), ForeignKey("calls.linkedid", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]]


class CallInProgressRow(Base):
    """A call cti follows, as it last knew it (cti.calls.record.LiveCall's fields): what a restarted cti
    knows of a call that ended while it was not running. Removed with the call's record."""

    __tablename__ = "calls_in_progress"

    linkedid: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class UserRow(Base):
    """Someone who signs in: an agent, a supervisor, an admin, or an integrator's system."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    agent_id: Mapped[str | None] = mapped_column(String(64))  # the agents.yaml id an agent works as
    unit_id: Mapped[str | None] = mapped_column(String(64))  # the unit an integrator's system acts for
    created_at: Mapped[datetime]
    disabled: Mapped[bool]


class TokenRow(Base):
    """An API token; only its SHA-256 digest is kept."""

    __tablename__ = "api_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked: Mapped[bool]
    last_used_at: Mapped[datetime | None]  # written at most once a minute (cti.store.users.LAST_USE_PRECISION)


class CaseRow(Base):
    """A case (工单); its columns are the fields of cti.cases.model.Case."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    caller_number: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(256))
    legacy_number: Mapped[str] = mapped_column(String(64))
    confidential: Mapped[bool]
    auto: Mapped[bool]
    state: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(64))
    dispatched_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    extension_days: Mapped[int]
    extension_request: Mapped[dict[str, Any] | None]
    reply: Mapped[str] = mapped_column(Text)
    replied_at: Mapped[datetime | None]
    on_time: Mapped[bool | None]
    satisfaction: Mapped[str] = mapped_column(String(16))
    rehandled: Mapped[int]
    reminded: Mapped[bool]
    overdue_notices: Mapped[int]
    last_notice_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    callback_attempts: Mapped[int]
    next_callback_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]
    merged_into: Mapped[int | None]
    version: Mapped[int]
    # revision 0003: the cases of 0.1.0 and 0002 came by phone and have no case number
    channel: Mapped[str] = mapped_column(String(8), server_default=text("'phone'"))
    reference: Mapped[str | None] = mapped_column(String(16))
    taken_at: Mapped[datetime | None]
    taken_by: Mapped[str] = mapped_column(String(64), server_default=text("''"))

    __table_args__ = (
        Index("ix_cases_reference", "reference", unique=True),  # the citizen's case number, looked up by it
        Index("ix_cases_state_due", "state", "due_at"),
        Index("ix_cases_caller", "caller_number", "created_at"),
        Index("ix_cases_unit_created", "unit", "created_at"),
        Index("ix_cases_created", "created_at"),
    )


class CaseEventRow(Base):
    """Every transition of a case: who did what, when, from which state to which."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_case_events_action", "action", "case_id"),)  # the cases returned (退单率)


class CaseCallRow(Base):
    """A call that belongs to a case (the first, later ones from the same caller, its callbacks)."""

    __tablename__ = "case_calls"

    linkedid: Mapped[str] = mapped_column(String(64), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    linked_at: Mapped[datetime]


class MissedCallRow(Base):
    """A citizen's call nobody answered (abandoned in the queue, or rung out): to be called back."""

    __tablename__ = "missed_calls"

    linkedid: Mapped[str] = mapped_column(String(64), primary_key=True)
    caller_number: Mapped[str] = mapped_column(String(64))
    caller_name: Mapped[str] = mapped_column(String(128))
    dialled_number: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    waited: Mapped[float | None]
    state: Mapped[str] = mapped_column(String(16))  # open, called_back, unreachable
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None]

    __table_args__ = (Index("ix_missed_state_at", "state", "at"), Index("ix_missed_at", "at"))


class WebhookOutboxRow(Base):
    """A message to a unit's system (cti.store.outbox): written with what it reports, delivered
    from here by cti.webhooks, kept as delivered (purged after webhooks.keep_delivered_days) or dead."""

    __tablename__ = "webhook_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    destination: Mapped[str] = mapped_column(Text)  # the URL POSTed to
    unit: Mapped[str] = mapped_column(String(64))  # the unit's id, for lists and metrics
    event: Mapped[str] = mapped_column(String(64))  # call.ended, case.dispatch…
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    body: Mapped[str] = mapped_column(Text)  # the JSON, as sent
    headers: Mapped[dict[str, Any]]  # X-CTI-… headers sent with it
    created_at: Mapped[datetime]
    attempts: Mapped[int]
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]  # given up after webhooks.give_up_after_days; kept, retried only by hand

    __table_args__ = (
        # the sender reads only the undelivered rows: they stay a small index however many were delivered
        Index("ix_webhook_outbox_pending", "destination", "next_attempt_at",
              sqlite_where=text("delivered_at IS NULL AND dead_at IS NULL"),
              postgresql_where=text("delivered_at IS NULL AND dead_at IS NULL")),
        Index("ix_webhook_outbox_dead", "unit", sqlite_where=text("dead_at IS NOT NULL"),
              postgresql_where=text("dead_at IS NOT NULL")),
        Index("ix_webhook_outbox_delivered", "delivered_at"),
        {"sqlite_autoincrement": True},  # an id in the logs and the admin list never names two messages
    )


class KbArticleRow(Base):
    """A knowledge-base article (cti.kb.model.Article) as it is now; every version in kb_versions. Its words are
    in the search index, kb_search (cti.store.search_index: FTS5 or tsvector, outside these models)."""

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit: Mapped[str] = mapped_column(String(64))  # a handling unit's id; "" for the hotline's own
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[Any]]
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))  # draft, reviewed, published, retired
    version: Mapped[int]
    author: Mapped[str] = mapped_column(String(64))
    reviewed_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_kb_articles_state_unit", "state", "unit"),
        Index("ix_kb_articles_unit_updated", "unit", "updated_at"),
    )


class KbVersionRow(Base):
    """Every version of an article, the whole of it: written with each change (create, edit, review move)."""

    __tablename__ = "kb_versions"

    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    change: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[Any]]
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))


# the search index is raw DDL (an FTS5 virtual table has no SQLAlchemy model): made and dropped with the articles
event.listen(KbArticleRow.__table__, "after_create", search_index.create_listener)
event.listen(KbArticleRow.__table__, "before_drop", search_index.drop_listener)
