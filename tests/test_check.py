"""cti check: every broken map is reported with its exact message and location."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import chinese_calendar
import pytest

from cti.configuration import calendar_warning, load_configuration
from cti.settings import PathSettings, Settings, load_settings
from cti.yamlconfig import ConfigError
from tests.conftest import REPO

AGENTS = """\
agents:
  - {id: "1001", name: 王芳, device: PJSIP/agent1001, queues: [q12345]}
"""
GOOD_UNITS = """\
hotline: {number: "12345", queue: q12345}
units:
  - id: market-regulation
    name: 市市场监管局
    mode: remote_seat
    numbers: ["12315"]
    seats: [PJSIP/seat-12315]
"""


def workspace(tmp_path: Path, trunk_map: str, queues: str | None = None) -> Settings:
    """A copy of the project's configuration with ``trunk_map`` as its map."""
    shutil.copytree(REPO / "ivr_flows", tmp_path / "ivr_flows")
    shutil.copytree(REPO / "agents", tmp_path / "agents")
    (tmp_path / "recordings").mkdir()
    shutil.copytree(REPO / "recordings" / "prompts", tmp_path / "recordings" / "prompts")
    (tmp_path / "trunk_map.yaml").write_text(trunk_map, encoding="utf-8")
    (tmp_path / "agents" / "agents.yaml").write_text(AGENTS, encoding="utf-8")
    if queues is not None:
        (tmp_path / "agents" / "queues.yaml").write_text(queues, encoding="utf-8")
    return Settings(source=str(tmp_path / "cti.yaml"), paths=PathSettings())


def problems(settings: Settings) -> list[str]:
    with pytest.raises(ConfigError) as failed:
        load_configuration(settings)
    base = str(Path(settings.source).parent) + "/"
    return [str(p).replace(base, "") for p in failed.value.problems]


BROKEN = {
    "duplicate-number": (GOOD_UNITS + """\
  - id: consumer-complaints
    name: 消费者投诉
    mode: merged
    numbers: ["12365", "12315"]
""", ["trunk_map.yaml:11: units[1].numbers[1]: duplicate number 12315 (already mapped at line 6)"]),
    "emergency-mapped-as-retired": ("""\
units:
  - id: police
    name: 市公安局
    mode: merged
    numbers: ["110"]
    window: {start: 2020-01-01, end: 2020-01-31}
""", ["trunk_map.yaml:5: units[0].numbers[0]: 110 is an emergency number: it stays separate "
      "(mode: emergency) and is never retired"]),
    "window-ends-before-it-starts": ("""\
units:
  - id: commerce
    name: 市商务局
    mode: merged
    numbers: ["12312"]
    window:
      start: 2020-06-01
      end: 2020-05-31
""", ["trunk_map.yaml:8: units[0].window.end: the window ends (2020-05-31) before it starts (2020-06-01)"]),
    "unknown-queue": ("""\
hotline:
  number: "12345"
  queue: q12354
units:
  - {id: commerce, name: 市商务局, mode: merged, numbers: ["12312"]}
""", ["trunk_map.yaml:3: hotline.queue: unknown queue 'q12354' (agents/queues.yaml defines q12345)"]),
    "unknown-prompt": ("""\
units:
  - id: court
    name: 市中级人民法院
    mode: excluded
    numbers: ["12368"]
    guidance: 诉讼服务请拨打12368
    prompt: guidance-12386
""", ["trunk_map.yaml:7: units[0].prompt: unknown prompt 'guidance-12386' (not in recordings/prompts/zh)"]),
    "remote-seat-without-dial-string": ("""\
units:
  - id: tax
    name: 市税务局
    mode: remote_seat
    numbers: ["12366"]
""", ["trunk_map.yaml:2: units[0]: a remote_seat unit needs the dial string of at least one seat (seats:)"]),
    "seat-that-is-not-a-dial-string": (GOOD_UNITS.replace("[PJSIP/seat-12315]", "[seat-12315]"),
                                       ["trunk_map.yaml:7: units[0].seats[0]: 'seat-12315' is not a dial string "
                                        "(TECH/resource, e.g. PJSIP/12369@dept)"]),
    # one mistake, one message: the typo, not also the key it misspells as missing
    "typo-in-a-key": (GOOD_UNITS.replace("numbers:", "numbrs:"),
                      ["trunk_map.yaml:6: units[0].numbrs: unknown key (did you mean 'numbers'?)"]),
    "typo-in-a-required-key": (GOOD_UNITS.replace("seats:", "seat:"),
                               ["trunk_map.yaml:7: units[0].seat: unknown key (did you mean 'seats'?)"]),
    "typo-in-a-mode": (GOOD_UNITS.replace("mode: remote_seat", "mode: remote-seat"),
                       ["trunk_map.yaml:5: units[0].mode: unknown mode 'remote-seat' (did you mean 'remote_seat'?); "
                        "one of merged, remote_seat, interconnected, emergency, excluded"]),
    "emergency-mapped-as-retired-with-its-dial": ("""\
units:
  - {id: police, name: 市公安局, mode: merged, numbers: ["110"], dial: PJSIP/110@carrier}
""", ["trunk_map.yaml:2: units[0].numbers[0]: 110 is an emergency number: it stays separate "
      "(mode: emergency) and is never retired"]),
    "impossible-date": (GOOD_UNITS + """\
  - id: commerce
    name: 市商务局
    mode: merged
    numbers: ["12312"]
    window: {start: 2020-01-01, end: 2020-02-30}
""", ["trunk_map.yaml:12: units[1].window.end: '2020-02-30' is not a date: day is out of range for month"]),
    "key-given-twice": (GOOD_UNITS + """\
  - id: commerce
    name: 市商务局
    mode: merged
    numbers: ["12312"]
    name: 商务局
""", ["trunk_map.yaml:12: units[1].name: given twice (first at line 9)"]),
    "emergency-without-dial": ("""\
units:
  - {id: fire, name: 市消防支队, mode: emergency, numbers: ["119"]}
""", ["trunk_map.yaml:2: units[0]: an emergency line needs the trunk dial string its transfers use (dial:)"]),
    "not-yaml": ("units:\n  - id: [x\n",
                 ["trunk_map.yaml:3: not valid YAML: expected ',' or ']', but got '<stream end>'"]),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_maps(case: str, tmp_path: Path) -> None:
    text, expected = BROKEN[case]
    assert problems(workspace(tmp_path, text)) == expected


def test_a_good_map_passes(tmp_path: Path) -> None:
    configuration = load_configuration(workspace(tmp_path, GOOD_UNITS))
    assert configuration.summary() == ("1 units and 1 numbers, 1 queue(s), 1 agents and 0 remote seats, "
                                       "0 supervisor phone(s), 7 IVR flows, 15 prompts, 1 units cases go to")


def test_broken_flows_and_queues(tmp_path: Path) -> None:
    settings = workspace(tmp_path, GOOD_UNITS, queues="queues:\n  - nmae: q12345\n")
    (tmp_path / "ivr_flows" / "guidance.yaml").write_text(
        "steps:\n  - answer\n  - play: guidance-{numbr}\n  - hangupp\n", encoding="utf-8")
    (tmp_path / "ivr_flows" / "survey.yaml").unlink()
    (tmp_path / "ivr_flows" / "queue.yaml").write_text("steps:\n  - queue: q12345\n  - play: survey-thanks\n",
                                                        encoding="utf-8")
    assert problems(settings) == [
        "agents/queues.yaml:2: queues[0].nmae: unknown key (did you mean 'name'?)",
        "ivr_flows/guidance.yaml:4: steps[2].hangupp: unknown key (did you mean 'hangup'?)",
        "ivr_flows/guidance.yaml:3: steps[1]: unknown variable {numbr}; known: prompt, queue, dial, dial_timeout, "
        "number, unit, treatment, fallback",
        "ivr_flows/queue.yaml:2: steps[0]: a queue, dial or hangup step ends the flow: nothing may follow",
        "ivr_flows/queue.yaml:3: steps[1]: a flow must end by handing the call back: queue, dial or hangup",
    ]
    # and once the flows are fixed, the missing survey is named
    shutil.copy(REPO / "ivr_flows" / "guidance.yaml", tmp_path / "ivr_flows" / "guidance.yaml")
    shutil.copy(REPO / "ivr_flows" / "queue.yaml", tmp_path / "ivr_flows" / "queue.yaml")
    (tmp_path / "agents" / "queues.yaml").write_text("queues:\n  - name: q12345\n", encoding="utf-8")
    assert problems(settings) == ["ivr_flows: missing flow survey.yaml (the survey action needs it)"]


def test_cti_check_command(tmp_path: Path) -> None:
    workspace(tmp_path, BROKEN["duplicate-number"][0])
    (tmp_path / "cti.yaml").write_text("{}\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "cti.cli", "--settings", "cti.yaml", "check"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "trunk_map.yaml:11: units[1].numbers[1]: duplicate number 12315 (already mapped at line 6)",
        "cti: 1 problem(s) in the configuration"]
    (tmp_path / "trunk_map.yaml").write_text(GOOD_UNITS, encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "cti.cli", "--settings", "cti.yaml", "check"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert run.stdout.startswith("ok: 1 units and 1 numbers")


def test_the_shipped_configuration_is_clean() -> None:
    settings = Settings(source=str(REPO / "cti.yaml"))
    assert load_configuration(settings).summary() == (
        "51 units and 58 numbers, 1 queue(s), 2 agents and 2 remote seats, 1 supervisor phone(s), 7 IVR flows, "
        "15 prompts, 53 units cases go to")


def test_agents_and_seats_are_checked(tmp_path: Path) -> None:
    settings = workspace(tmp_path, GOOD_UNITS)
    (tmp_path / "agents" / "agents.yaml").write_text("""\
agents:
  - {id: "1001", name: 王芳, device: PJSIP/agent1001, queues: [q12345, q12315]}
  - {id: "1001", name: 李强, device: PJSIP/agent1001, queues: [q12345]}
seats:
  - {id: seat-12369, name: 远端座席, device: seat-12369, unit: ecology}
supervisors:
  - {id: "9001", name: 张敏, device: PJSIP/agent1001}
  - {id: "1001", name: 班长, device: "PJSIP/supervisor9001,PJSIP/x"}
""", encoding="utf-8")
    assert problems(settings) == [
        "agents/agents.yaml:2: agents[0].queues[1]: unknown queue 'q12315'",
        "agents/agents.yaml:3: agents[1].id: duplicate id '1001' (also at line 2)",
        "agents/agents.yaml:3: agents[1].device: PJSIP/agent1001 is already at line 2",
        "agents/agents.yaml:5: seats[0].device: 'seat-12369' is not a dial string (TECH/resource, e.g. "
        "PJSIP/12369@dept)",
        "agents/agents.yaml:5: seats[0].unit: unknown unit 'ecology' (not an id in the trunk map)",
        "agents/agents.yaml:7: supervisors[0].device: PJSIP/agent1001 is already at line 2",
        "agents/agents.yaml:8: supervisors[1].id: duplicate id '1001' (also at line 2)",
        "agents/agents.yaml:8: supervisors[1].device: 'PJSIP/supervisor9001,PJSIP/x' holds ',': one device, "
        "TECH/resource, with no Dial() options or separators",
    ]


def test_the_case_rules_are_checked(tmp_path: Path) -> None:
    settings = workspace(tmp_path, GOOD_UNITS + """\
  - {id: police-110, name: 市公安局, mode: emergency, numbers: ["110"], dial: PJSIP/110@carrier}
""")
    cases = tmp_path / "cases.yaml"
    cases.write_text("""\
deadlines: {complaint: 7, gossip: 3}
calendar:
  holidays: [2027-01-01, soon]
""", encoding="utf-8")
    assert problems(settings) == [
        "cases.yaml:1: deadlines.gossip: unknown key; known keys: consultation, request, complaint, report, "
        "suggestion",
        "cases.yaml:3: calendar.holidays[1]: expected a date (YYYY-MM-DD), got 'soon'",
    ]
    cases.write_text("""\
deadlines: {complaint: 0}
return_within: -1
callback:
  mode: robot
  dial: PJSIP/carrier
  hours: ["9am", "20:00"]
units:
  - {id: district-a}
  - {id: market-regulation, webhook: ftp://x, deadlines: {report: -2}}
  - {id: market-regulation}
  - {id: police-110}
""", encoding="utf-8")
    assert problems(settings) == [
        "cases.yaml:2: return_within: must not be negative",
        "cases.yaml:1: deadlines.complaint: a deadline is a positive number of working days",
        "cases.yaml:4: callback.mode: must be auto or agent, not 'robot'",
        "cases.yaml:5: callback.dial: 'PJSIP/carrier': {number} (the caller's number) once, and no other field",
        'cases.yaml:6: callback.hours: two times of day, e.g. ["09:00", "20:00"]',
        "cases.yaml:8: units[0].id: unit 'district-a' is not in the trunk map: give it a name",
        "cases.yaml:9: units[1].webhook: a webhook is an http:// or https:// URL",
        "cases.yaml:9: units[1].deadlines.report: a deadline is a positive number",
        "cases.yaml:10: units[2].id: duplicate unit 'market-regulation' (also units[1])",
        "cases.yaml:11: units[3].id: unit 'police-110' is an emergency line, not a handling unit",
    ]


def test_numbers_stay_as_written(tmp_path: Path) -> None:
    """YAML 1.1 reads an unquoted 01234567 as the octal 342391: here it is the number written."""
    settings = workspace(tmp_path, GOOD_UNITS.replace('["12315"]', '[01234567, +8612315, 12316]'))
    numbers = load_configuration(settings).trunk_map.numbers
    assert list(numbers) == ["01234567", "+8612315", "12316"]
    (tmp_path / "cti.yaml").write_text("ami:\n  port: 05038\n  action_timeout: 0x10\n", encoding="utf-8")
    with pytest.raises(ConfigError) as failed:  # a field that wants an integer refuses it by name, not 2590
        load_settings(tmp_path / "cti.yaml", environ={})
    assert [str(p).replace(f"{tmp_path}/", "") for p in failed.value.problems] == [
        "cti.yaml:2: ami.port: expected an integer, got '05038'",
        "cti.yaml:3: ami.action_timeout: expected a number, got '0x10'"]


def test_traps_in_every_file_are_located(tmp_path: Path) -> None:
    settings = workspace(tmp_path, GOOD_UNITS)
    (tmp_path / "agents" / "agents.yaml").write_text("""\
agents:
  - id: "1001"
    name: 王芳
    device: PJSIP/agent1001
    queues: [q12345]
    id: "1002"
""", encoding="utf-8")
    (tmp_path / "cases.yaml").write_text("calendar:\n  holidays: [2027-02-30, 2027-13-01]\n", encoding="utf-8")
    assert problems(settings) == [
        "agents/agents.yaml:6: agents[0].id: given twice (first at line 2)",
        "cases.yaml:2: calendar.holidays[0]: '2027-02-30' is not a date: day is out of range for month",
        "cases.yaml:2: calendar.holidays[1]: '2027-13-01' is not a date: month must be in 1..12",
    ]


def test_check_and_serve_report_an_impossible_date_instead_of_crashing(tmp_path: Path) -> None:
    workspace(tmp_path, GOOD_UNITS + "  - {id: x, name: 某局, mode: merged, numbers: [\"12312\"], "
                                     "window: {start: 2020-01-01, end: 2020-02-30}}\n")
    (tmp_path / "cti.yaml").write_text("{}\n", encoding="utf-8")
    expected = ["trunk_map.yaml:8: units[1].window.end: '2020-02-30' is not a date: day is out of range for month",
                "cti: 1 problem(s) in the configuration"]
    for command in ("check", "serve"):
        run = subprocess.run([sys.executable, "-m", "cti.cli", "--settings", "cti.yaml", command], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60)
        assert (run.returncode, run.stderr.splitlines()) == (2, expected), run.stderr


def test_a_deadline_past_the_known_calendar_is_warned(tmp_path: Path) -> None:
    settings = workspace(tmp_path, GOOD_UNITS)
    configuration = load_configuration(settings)
    last = max(chinese_calendar.holidays).year  # the last year the installed chinese_calendar knows
    assert calendar_warning(configuration, settings, date(last, 12, 1)) is None
    warning = calendar_warning(configuration, settings, date(last, 12, 28))  # + 7 working days (complaints)
    assert warning == (f"{tmp_path}/cases.yaml: warning: deadlines set today ({last}-12-28) run up to 7 working "
                       f"days, into {last + 1}, a year chinese_calendar does not know (it knows up to {last}): "
                       f"there they count Monday-Friday; add {last + 1}'s holidays and make-up days (调休) to "
                       "cases.yaml (calendar: {holidays: [...], workdays: [...]})")
    (tmp_path / "cases.yaml").write_text(f"deadlines: {{complaint: 3, report: 3}}\ncalendar:\n"
                                         f"  holidays: [{last + 1}-01-01]\n", encoding="utf-8")
    configuration = load_configuration(settings)  # the overrides know the year: no warning
    assert calendar_warning(configuration, settings, date(last, 12, 28)) is None
    (tmp_path / "cases.yaml").write_text("units:\n  - {id: market-regulation, deadlines: {request: 30}}\n",
                                         encoding="utf-8")
    configuration = load_configuration(settings)  # a unit's own deadline is the longest
    assert "up to 30 working days" in (calendar_warning(configuration, settings, date(last, 12, 1)) or "")


def test_dial_strings_are_one_device_with_no_dial_options(tmp_path: Path) -> None:
    """Review: a comma in a seat's dial string replaces Dial()'s timeout and options (no o, no b(): 110 shown
    the agent, not the citizen), an & rings a device of someone else's; both passed cti check."""
    emergency = '  - {id: police-110, name: 市公安局, mode: emergency, numbers: ["110"], dial: PJSIP/110@carrier}\n'
    settings = workspace(tmp_path, GOOD_UNITS.replace("[PJSIP/seat-12315]", '["PJSIP/seat-12315,1,U(evil^x)"]')
                         + emergency.replace("PJSIP/110@carrier", '"PJSIP/110@carrier,1,G(x)"'))
    options = "one device, TECH/resource, with no Dial() options or separators"
    assert problems(settings) == [
        f"trunk_map.yaml:7: units[0].seats[0]: 'PJSIP/seat-12315,1,U(evil^x)' holds ',': {options}",
        f"trunk_map.yaml:8: units[1].dial: 'PJSIP/110@carrier,1,G(x)' holds ',': {options}"]
    settings = workspace(tmp_path / "next", GOOD_UNITS + emergency)
    (tmp_path / "next" / "agents" / "agents.yaml").write_text("""\
agents:
  - {id: "1001", name: "王芳\\u0085", device: "PJSIP/agent1001&PJSIP/attacker@evil.example", queues: [q12345]}
""", encoding="utf-8")
    (tmp_path / "next" / "cases.yaml").write_text("callback: {dial: \"PJSIP/{number}@{trunk}\"}\n", encoding="utf-8")
    found = problems(settings)
    assert [p.replace("next/", "") for p in found] == [
        "agents/agents.yaml:2: agents[0].name: '王芳\\x85': one line of printable text",
        f"agents/agents.yaml:2: agents[0].device: 'PJSIP/agent1001&PJSIP/attacker@evil.example' holds '&': {options}",
        "cases.yaml:1: callback.dial: 'PJSIP/{number}@{trunk}': {number} (the caller's number) once, and no "
        "other field",
    ]


def test_a_control_character_in_any_file_is_refused_where_it_is(tmp_path: Path) -> None:
    """Review: a name with CR LF passed cti check; the AMI guard stopped it, as a 500, at the first login."""
    settings = workspace(tmp_path, GOOD_UNITS)
    (tmp_path / "agents" / "agents.yaml").write_text(
        'agents:\n  - {id: "1001", name: "王芳\\r\\nAction: Originate", device: PJSIP/agent1001, queues: [q12345]}\n',
        encoding="utf-8")
    assert problems(settings) == [
        "agents/agents.yaml:2: agents[0].name: holds the control character U+000D; only tabs and line breaks"]
