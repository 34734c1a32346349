"""The router's decision for every mode, and the edges of a transition window."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cti.routing.router import decide, guidance_list
from cti.routing.trunkmap import load_trunk_map
from tests.conftest import REPO

SHANGHAI = ZoneInfo("Asia/Shanghai")
YUNCHENG = load_trunk_map(REPO / "trunk_map.yaml")
IN_WINDOW = datetime(2020, 3, 2, 10, 0, tzinfo=SHANGHAI)


def test_the_map_holds_every_line_of_the_attachment() -> None:
    by_mode = {mode: sum(len(u.numbers) for u in YUNCHENG.by_treatment(mode))
               for mode in ("merged", "remote_seat", "interconnected", "emergency", "excluded")}
    # 7 merged, 16 remote-seat lines (12315 with four more numbers), 19 utility lines, 5 emergency, 7 excluded
    assert by_mode == {"merged": 7, "remote_seat": 20, "interconnected": 19, "emergency": 5, "excluded": 7}
    assert len(YUNCHENG.units) == 51


@pytest.mark.parametrize(("number", "expected"), [
    ("2666110", dict(unit="市创建办", treatment="merged", action="notice_then_queue", prompt="moved-to-12345",
                     targets=["queue:q12345"])),
    ("12315", dict(unit="市市场监管局", treatment="remote_seat", action="parallel_ring", prompt=None,
                   targets=["queue:q12345", "PJSIP/seat-12315"])),
    ("12365", dict(unit="市市场监管局", treatment="remote_seat", action="parallel_ring", prompt=None,
                   targets=["queue:q12345", "PJSIP/seat-12315"])),
    ("2860001", dict(unit="市热力公司", treatment="interconnected", action="parallel_ring", prompt=None,
                     targets=["queue:q12345", "PJSIP/2860001@carrier"])),
    ("120", dict(unit="市卫健委", treatment="emergency", action="not_routed", prompt=None,
                 targets=["PJSIP/120@carrier"])),
    ("12122", dict(unit="高速交警", treatment="emergency", action="not_routed", prompt=None,
                   targets=["PJSIP/12122@carrier"])),
    ("12371", dict(unit="市委组织部", treatment="excluded", action="guidance", prompt="guidance-12371", targets=[])),
    ("12345", dict(unit=None, treatment="hotline", action="queue", prompt=None, targets=["queue:q12345"])),
    ("88888888", dict(unit=None, treatment="unknown", action="queue", prompt=None, targets=["queue:q12345"])),
])
def test_decision_for_every_mode(number: str, expected: dict) -> None:
    decision = decide(YUNCHENG, number, IN_WINDOW).to_json()
    assert {key: decision[key] for key in expected} == expected


@pytest.mark.parametrize(("moment", "action"), [
    (datetime(2020, 6, 29, 12, 0, tzinfo=SHANGHAI), "notice_then_queue"),  # the day before the end
    (datetime(2020, 6, 30, 0, 0, tzinfo=SHANGHAI), "notice_then_queue"),  # the last day, first minute
    (datetime(2020, 6, 30, 23, 59, 59, tzinfo=SHANGHAI), "notice_then_queue"),  # the last day, last second
    (datetime(2020, 7, 1, 0, 0, tzinfo=SHANGHAI), "retired_notice"),  # the day after
    (datetime(2020, 6, 30, 15, 59, tzinfo=UTC), "notice_then_queue"),  # 23:59 in Shanghai
    (datetime(2020, 6, 30, 16, 0, tzinfo=UTC), "retired_notice"),  # still 30 June in UTC, 1 July in Shanghai
    (datetime(2019, 12, 1, 9, 0, tzinfo=SHANGHAI), "notice_then_queue"),  # before the start: forwarded too
])
def test_window_edges_in_asia_shanghai(moment: datetime, action: str) -> None:
    decision = decide(YUNCHENG, "12312", moment)
    assert decision.action == action
    assert decision.prompt == ("number-retired" if action == "retired_notice" else "moved-to-12345")


def test_after_the_window_is_configurable_per_number(tmp_path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("""
units:
  - id: water
    name: 市水务局
    mode: merged
    window: {start: 2024-01-01, end: 2024-01-31}
    numbers:
      - "96116"
      - {number: "96117", after_window: notice_then_queue}
      - {number: "96118", after_window: queue, window: {start: 2024-01-01, end: 2024-03-31}}
""", encoding="utf-8")
    trunk_map = load_trunk_map(path)
    after = datetime(2024, 2, 15, tzinfo=SHANGHAI)
    assert [decide(trunk_map, n, after).action for n in ("96116", "96117", "96118")] == [
        "retired_notice", "notice_then_queue", "notice_then_queue"]
    later = datetime(2024, 4, 1, tzinfo=SHANGHAI)
    assert decide(trunk_map, "96118", later).action == "queue"


def test_the_guidance_list_for_agents() -> None:
    assert guidance_list(YUNCHENG)[4] == {"unit": "市委组织部", "numbers": "12380, 12371",
                                          "guidance": "组织工作举报请拨打12380；党员服务请拨打12371"}
    assert [g["numbers"] for g in guidance_list(YUNCHENG)] == [
        "12339", "12388", "12309", "12368", "12380, 12371", "12310"]


def test_the_jinan_example_merges_everything_for_one_month() -> None:
    jinan = load_trunk_map(REPO / "examples" / "jinan" / "trunk_map.yaml")
    merged = [n for n in jinan.numbers.values() if n.treatment == "merged"]
    assert merged and all(n.window is not None and (n.window.end - n.window.start).days == 29 for n in merged)
    assert {n for n in jinan.numbers if jinan.numbers[n].treatment == "emergency"} == {"110", "119", "120"}
    assert decide(jinan, "12319", datetime(2018, 6, 15, tzinfo=SHANGHAI)).action == "notice_then_queue"
    assert decide(jinan, "12319", datetime(2018, 7, 1, tzinfo=SHANGHAI)).action == "retired_notice"
