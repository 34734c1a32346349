"""asterisk-conf/ is linted, and agrees with cti's own configuration."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from configparser import ConfigParser
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from cti.agi.server import _variables
from cti.routing.router import decide
from cti.routing.trunkmap import EMERGENCY_NUMBERS, load_trunk_map
from cti.settings import AmiSettings
from tests.conftest import REPO

CONF = REPO / "asterisk-conf"


def sections(name: str) -> dict[str, list[str]]:
    """Section name -> its lines, comments stripped (Asterisk's .conf, repeated sections merged)."""
    found: dict[str, list[str]] = {}
    current = None
    for raw in (CONF / name).read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        header = re.match(r"^\[([^\]]+)\]", line)
        if header:
            current = found.setdefault(header.group(1), [])
        elif line and current is not None:
            current.append(line)
    return found


def test_the_dialplan_passes_asterisklint() -> None:
    lint = shutil.which("asterisklint", path=str(Path(sys.executable).parent)) or "asterisklint"
    result = subprocess.run([lint, "dialplan-check", str(CONF / "extensions.conf")], capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_inbound_calls_ask_cti_and_fall_back_to_the_queue() -> None:
    dialplan = sections("extensions.conf")
    inbound = "\n".join(dialplan[AmiSettings().inbound_contexts[0]])
    assert "AGI(${CTI_AGI}/route,${EXTEN},${CHANNEL(linkedid)},${CTI_RECORDING})" in inbound
    assert '$["${AGISTATUS}" != "SUCCESS"]?cti-next,queue,1' in inbound
    # what cti reads back with Getvar after a restart (cti/resync.py), set before the AGI
    before_agi = inbound.split("AGI(", 1)[0]
    for variable in ("Set(CTI_DIALLED=${EXTEN})", "Set(__CTI_CITIZEN_NUM=${CALLERID(num)})",
                     "Set(__CTI_CITIZEN_NAME=${CALLERID(name)})", "Set(__CTI_RECORDING=${CTI_RECORDINGS}/"):
        assert variable in before_agi
    hand_back = "\n".join(dialplan["cti-next"])
    for step in ("queue", "dial", "hangup"):  # every CTI_NEXT the IVR engine can set
        assert f"exten => {step},1," in hand_back


def test_every_emergency_line_is_a_transfer_target_and_a_feature_code() -> None:
    emergency = "\n".join(sections("extensions.conf")["emergency"])
    features = "\n".join(sections("features.conf")["applicationmap"])
    # b(): the citizen's identity set on the line's own channel before it is called, I: no later update
    dial = ('${IF($["${CTI_TRANSFER_DIAL}" = ""]?PJSIP/${EXTEN}@carrier:${CTI_TRANSFER_DIAL})},60,'
            'oIb(cti-as-citizen^s^1))')
    assert f"exten => _1[12]X,1,Dial({dial}" in emergency  # 110, 119, 120, 122
    assert f"exten => 12122,1,Dial({dial}" in emergency
    for number in sorted(EMERGENCY_NUMBERS):
        # features.conf: <name> => <DTMF>,<ActivateOn>,<Application>(<arguments>); BlindTransfer's are
        # (exten,context): "BlindTransfer,110@emergency" sent the citizen to a missing "110@emergency"
        line = next(x for x in features.splitlines() if x.startswith(f"emergency{number} =>"))
        digits, activate_on, application = (part.strip() for part in line.split("=>", 1)[1].split(",", 2))
        assert (digits, activate_on) == (f"**{number}", "self")
        assert re.fullmatch(r"BlindTransfer\((?P<exten>[0-9]+),(?P<context>[a-z-]+)\)", application), line
        assert application == f"BlindTransfer({number},emergency)"
    # whoever hands the citizen over, the line is shown the citizen's own number (the agent's consultation
    # call of an attended transfer showed the agent's, trace X2): PJSIP sends the connected line as From/PAI
    assert "Dial(${CTI_TRANSFER_DIAL},60,oIb(cti-as-citizen^s^1))" in "\n".join(sections("extensions.conf")["cti-seat"])
    as_citizen = "\n".join(sections("extensions.conf")["cti-as-citizen"])
    assert "Set(CONNECTEDLINE(num,i)=${CTI_CITIZEN_NUM})" in as_citizen and "ExecIf" not in as_citizen
    # an AMI Atxfer dials its Exten as DTMF: every transfer target is reached at digits
    assert "exten => 0,1," in "\n".join(sections("extensions.conf")["cti-seat"])


def test_every_answered_call_is_recorded_by_the_dialplan() -> None:
    """Queue's 7th argument is the gosub run on the answering member (Asterisk 21 dropped the macro
    argument before it); Dial's U() the same on a seat that answers; [cti-record] skips Local halves."""
    dialplan = sections("extensions.conf")
    assert "Queue(${IF($[\"${CTI_QUEUE}\" = \"\"]?${HOTLINE_QUEUE}:${CTI_QUEUE})},tT,,,900,,cti-record)" in \
        "\n".join(dialplan["cti-next"])
    assert "Dial(${CTI_DIAL},${CTI_DIAL_TIMEOUT},tToU(cti-record))" in "\n".join(dialplan["cti-next"])
    assert "exten => _q.,1,Queue(${EXTEN},tT,,,900,,cti-record)" in "\n".join(dialplan["cti-queue"])
    record = "\n".join(dialplan["cti-record"])
    assert '"${CUT(CHANNEL(name),/,1)}" = "Local"' in record and "MixMonitor(${CTI_RECORDING},b)" in record


def test_the_transfer_features_need_no_sound_but_the_shipped_prompts() -> None:
    """An attended transfer aborts when transferannouncesound cannot be played; the shipped zh prompts
    are all it may need (Asterisk's English sound packages are not installed)."""
    general = {k.strip(): v.split(";", 1)[0].strip() for k, _, v in
               (line.partition("=") for line in sections("features.conf")["general"])}
    prompts = REPO / "recordings" / "prompts" / "zh"
    for option in ("transferannouncesound", "xfersound", "xferfailsound", "transferretrysound",
                   "transferinvalidsound"):
        sound = general[option]
        assert sound == "" or (sound.startswith("cti/") and (prompts / f"{sound[4:]}.wav").is_file()), option
    for endpoint in ("carrier", "agent-phone"):
        assert "language = zh" in sections("pjsip.conf")[endpoint]


def test_parallel_ring_dial_strings_reach_the_queue_context() -> None:
    trunk_map = load_trunk_map(REPO / "trunk_map.yaml")
    dial = _variables(decide(trunk_map, "12369", datetime.now(trunk_map.zone)))["dial"]
    local = dial.split("&")[0]
    assert local == "Local/q12345@cti-queue/n"
    assert "exten => _q.,1,Queue(${EXTEN},tT,,,900,,cti-record)" in sections("extensions.conf")["cti-queue"]


def test_the_queues_cti_knows_exist_in_queues_conf() -> None:
    known = {q["name"] for q in yaml.safe_load((REPO / "agents" / "queues.yaml").read_text())["queues"]}
    assert known <= set(sections("queues.conf")) - {"general"}


@pytest.mark.parametrize(("key", "value"), [("read", "system,call,agent"),
                                            ("write", "call,originate,agent,reporting")])
def test_the_ami_user_has_least_privilege(key: str, value: str) -> None:
    """Write: no "system" (Originate of System/Exec needs it), no "command" (the CLI), no "config"."""
    parser = ConfigParser(inline_comment_prefixes=(";",), strict=False)
    parser.read(CONF / "manager.conf")
    assert parser["cti"][key] == value
    assert not {"all", "command", "config"} & set(parser["cti"][key].split(","))
    assert "system" not in parser["cti"]["write"].split(",")
    assert parser["general"]["timestampevents"] == "yes"
    assert parser["general"]["bindaddr"] == "127.0.0.1"


def test_the_callback_survey_gets_its_case_and_the_call_is_not_taken_for_inbound() -> None:
    """cti originates the survey into [cti-survey] with CTI_CASE; the AGI's third argument is the case
    the answer belongs to (cti.service reads agi_arg_3). The context is neither inbound nor the
    hotline's outbound callback context, so the survey call is not a citizen's call record."""
    survey = sections("extensions.conf")["cti-survey"]
    assert any("AGI(${CTI_AGI}/survey,${EXTEN},${CHANNEL(linkedid)},${CTI_CASE})" in line for line in survey)
    settings = AmiSettings()
    assert "cti-survey" not in settings.inbound_contexts + settings.outbound_contexts


def test_supervisors_spy_through_their_phone_in_cti_spy() -> None:
    """[cti-spy]: one extension per mode, ChanSpy on the whole channel name cti puts in CTI_SPY (u), quiet (q),
    leaving when the agent's leg or everything spied on is gone (E, S); whisper w, barge B, listen neither.
    Reached by an Originate to a context (write class originate): ChanSpy is not an Originate Application, and
    the cti user has no "system". Every supervisor's phone of agents.yaml is an endpoint of pjsip.conf."""
    from cti.desk.actions import SPY_CONTEXT, SPY_MODES
    from cti.sim.dialplans import SPY_OPTIONS

    spy = sections("extensions.conf")[SPY_CONTEXT]
    options = {"listen": "qESu", "whisper": "qESuw", "barge": "qESuB"}
    assert set(SPY_MODES) == set(options) == set(SPY_OPTIONS) and SPY_OPTIONS == options
    for mode, flags in options.items():
        assert f'exten => {mode},1,GotoIf($["${{CTI_SPY}}" = ""]?done)' in spy
        at = spy.index(f'exten => {mode},1,GotoIf($["${{CTI_SPY}}" = ""]?done)')
        assert spy[at + 1:at + 3] == [f"same => n,ChanSpy(${{CTI_SPY}},{flags})", "same => n(done),Hangup()"]
    assert sum(line.startswith("exten => ") for line in spy) == len(options)  # nothing else to originate into
    settings = AmiSettings()
    assert SPY_CONTEXT not in settings.inbound_contexts + settings.outbound_contexts + settings.hotline_contexts
    endpoints = sections("pjsip.conf")
    supervisors = yaml.safe_load((REPO / "agents" / "agents.yaml").read_text(encoding="utf-8"))["supervisors"]
    assert supervisors
    for supervisor in supervisors:
        name = supervisor["device"].removeprefix("PJSIP/")
        assert f"aors = {name}" in endpoints[name] and f"username = {name}" in endpoints[name]
