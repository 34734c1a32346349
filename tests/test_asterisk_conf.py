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
    assert "AGI(${CTI_AGI}/route,${EXTEN},${CHANNEL(linkedid)})" in inbound
    assert '$["${AGISTATUS}" != "SUCCESS"]?cti-next,queue,1' in inbound
    hand_back = "\n".join(dialplan["cti-next"])
    for step in ("queue", "dial", "hangup"):  # every CTI_NEXT the IVR engine can set
        assert f"exten => {step},1," in hand_back


def test_every_emergency_line_is_a_transfer_target_and_a_feature_code() -> None:
    emergency = "\n".join(sections("extensions.conf")["emergency"])
    features = "\n".join(sections("features.conf")["applicationmap"])
    dial = '${IF($["${CTI_TRANSFER_DIAL}" = ""]?PJSIP/${EXTEN}@carrier:${CTI_TRANSFER_DIAL})},60,o)'
    assert f"exten => _1[12]X,1,Dial({dial}" in emergency  # 110, 119, 120, 122
    assert f"exten => 12122,1,Dial({dial}" in emergency
    for number in sorted(EMERGENCY_NUMBERS):
        assert f"emergency{number} => **{number},self,BlindTransfer,{number}@emergency" in features


def test_parallel_ring_dial_strings_reach_the_queue_context() -> None:
    trunk_map = load_trunk_map(REPO / "trunk_map.yaml")
    dial = _variables(decide(trunk_map, "12369", datetime.now(trunk_map.zone)))["dial"]
    local = dial.split("&")[0]
    assert local == "Local/q12345@cti-queue/n"
    assert "exten => _q.,1,Queue(${EXTEN},tT,,,900)" in sections("extensions.conf")["cti-queue"]


def test_the_queues_cti_knows_exist_in_queues_conf() -> None:
    known = {q["name"] for q in yaml.safe_load((REPO / "agents" / "queues.yaml").read_text())["queues"]}
    assert known <= set(sections("queues.conf")) - {"general"}


@pytest.mark.parametrize(("key", "value"), [("read", "system,call,agent"),
                                            ("write", "call,originate,agent,system,reporting")])
def test_the_ami_user_has_least_privilege(key: str, value: str) -> None:
    parser = ConfigParser(inline_comment_prefixes=(";",), strict=False)
    parser.read(CONF / "manager.conf")
    assert parser["cti"][key] == value
    assert not {"all", "command", "config"} & set(parser["cti"][key].split(","))
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
