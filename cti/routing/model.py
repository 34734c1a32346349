"""The trunk map: every legacy number, its unit and how it is integrated.

Treatments follow Yuncheng's four modes (运政发〔2019〕25号) plus the lines
left out of the integration:

- ``merged`` (直接合并): the old number plays a short "moved to 12345" notice
  and joins the 12345 queue during its transition window; after the window it
  plays a retirement notice (or whatever ``after_window`` says).
- ``remote_seat`` (设置远端座席, 双线并行): the 12345 agents and the unit's
  remote seat(s) ring in parallel; the first to answer takes the call.
- ``interconnected`` (对接联通): the same mechanics for utilities, whose own
  line answers in parallel; the unit gets the call record by webhook.
- ``emergency`` (话务转接): 110, 119, 120, 122, 12122 are never routed into
  12345; they are one-key transfer targets with their trunk dial strings.
- ``excluded`` (暂不纳入): not integrated; a caller who reaches one through the
  12345 platform hears which number to call, and agents get them as guidance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

TREATMENTS = ("merged", "remote_seat", "interconnected", "emergency", "excluded")
# each treatment's 整合方式, as the integration documents (运政发〔2019〕25号) and trunk_map.yaml name it
TREATMENT_NAMES = {"merged": "直接合并", "remote_seat": "设置远端座席", "interconnected": "对接联通",
                   "emergency": "话务转接", "excluded": "暂不纳入"}
AFTER_WINDOW = ("retired_notice", "notice_then_queue", "queue")

# Actions, what the dialplan is asked to do with the call:
NOTICE_THEN_QUEUE = "notice_then_queue"  # play the moved notice, then the 12345 queue
RETIRED_NOTICE = "retired_notice"  # play "this number is no longer in use, call 12345", hang up
PARALLEL_RING = "parallel_ring"  # ring the 12345 queue and the unit's seats together
GUIDANCE = "guidance"  # play which number to call instead, hang up
NOT_ROUTED = "not_routed"  # an emergency number: straight out on its trunk, never into 12345
QUEUE = "queue"  # the 12345 line itself (no menu, GB/T 33358), or an unknown number (fail safe)


@dataclass(frozen=True, slots=True)
class Window:
    """A transition period (过渡期), both dates inclusive, in the map's time zone."""

    start: date
    end: date

    def contains(self, moment: datetime, zone: ZoneInfo) -> bool:
        return self.start <= moment.astimezone(zone).date() <= self.end

    def ended(self, moment: datetime, zone: ZoneInfo) -> bool:
        return self.ended_on(moment.astimezone(zone).date())

    def ended_on(self, day: date) -> bool:
        """Whether the transition is over on ``day`` (a local date): the router's test and the ledger's."""
        return day > self.end

    def end_instant(self, zone: ZoneInfo) -> datetime:
        """The first moment after the window."""
        return datetime.combine(self.end + timedelta(days=1), time(), zone)


@dataclass(frozen=True, slots=True)
class LegacyNumber:
    number: str
    unit: str  # the unit's id
    treatment: str
    window: Window | None = None  # merged numbers
    after_window: str = "retired_notice"
    prompt: str = ""  # overrides the treatment's prompt


@dataclass(frozen=True, slots=True)
class Unit:
    id: str
    name: str
    treatment: str
    numbers: tuple[LegacyNumber, ...]
    seats: tuple[str, ...] = ()  # remote seats' dial strings (remote_seat, interconnected)
    dial: str = ""  # trunk dial string of an emergency line
    guidance: str = ""  # what agents tell callers for an excluded line
    webhook: str = ""  # where an interconnected unit receives call records
    prompt: str = ""


@dataclass(frozen=True, slots=True)
class Hotline:
    number: str = "12345"
    queue: str = "q12345"


@dataclass(frozen=True, slots=True)
class Prompts:
    """The prompt played for each treatment, unless a unit or number names its own."""

    moved: str = "moved-to-12345"  # 您所拨打的电话业务已转移到12345市民服务热线，请稍候
    retired: str = "number-retired"  # 该号码已停止使用，请拨打12345
    parallel_ring: str = ""  # remote seats ring without a notice


@dataclass(frozen=True, slots=True)
class TrunkMap:
    hotline: Hotline
    units: tuple[Unit, ...]
    timezone: str = "Asia/Shanghai"
    ring_timeout: int = 30  # seconds of parallel ringing before the call falls back to the 12345 queue
    prompts: Prompts = field(default_factory=Prompts)
    source: str = ""
    numbers: dict[str, LegacyNumber] = field(default_factory=dict, compare=False)
    units_by_id: dict[str, Unit] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for unit in self.units:
            self.units_by_id.setdefault(unit.id, unit)
            for entry in unit.numbers:
                self.numbers.setdefault(entry.number, entry)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def unit(self, unit_id: str) -> Unit:
        return self.units_by_id[unit_id]

    def by_treatment(self, treatment: str) -> list[Unit]:
        return [u for u in self.units if u.treatment == treatment]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the router decided for a call to ``number`` at a moment."""

    number: str
    unit: str | None  # the unit's name
    unit_id: str | None
    treatment: str  # one of TREATMENTS, or "hotline" / "unknown"
    action: str
    prompt: str | None
    targets: tuple[str, ...]  # "queue:q12345" or dial strings
    ring_timeout: int | None = None
    note: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.number, "unit": self.unit, "unit_id": self.unit_id, "treatment": self.treatment,
            "action": self.action, "prompt": self.prompt, "targets": list(self.targets),
            "ring_timeout": self.ring_timeout, "note": self.note,
        }
