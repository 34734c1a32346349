"""Feature codes a phone dials while bridged: features.conf's [applicationmap].

Each entry is ``name => dtmf,activate_on,app[,app_data[,moh_class]]`` or, the newer
syntax, ``name => dtmf,activate_on,app(app_data)[,moh_class]`` (main/features_config.c,
applicationmap_handler). A channel may use the entries its ``DYNAMIC_FEATURES``
names ('#'-separated); dialling an entry's digits runs its application on the
channel itself (``self``) or on its bridged peer (``peer``). Of the applications,
the simulator has the one asterisk-conf/ maps: BlindTransfer(exten[,context]),
whose context defaults to the channel's own (apps/app_blind_transfer.c).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cti.sim import control
from cti.sim.pbx import Channel, Pbx


@dataclass(frozen=True)
class FeatureApp:
    name: str
    dtmf: str
    on_self: bool
    app: str
    data: str


def separate_args(text: str) -> list[str]:
    """ast_app_separate_args: split on commas outside parentheses and double quotes."""
    args, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")" and depth:
            depth -= 1
        elif not quoted and not depth and char == ",":
            args.append(current.strip())
            current = ""
            continue
        current += char
    args.append(current.strip())
    return args


def applicationmap(text: str) -> dict[str, FeatureApp]:
    """The [applicationmap] entries of a features.conf text, by name; invalid ones are left out, as
    Asterisk leaves them (with a warning)."""
    entries: dict[str, FeatureApp] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        heading = re.fullmatch(r"\[([^\]]+)\].*", line)
        if heading:
            section = heading.group(1)
            continue
        if section != "applicationmap" or "=" not in line:
            continue
        name, _, value = line.partition("=")
        args = separate_args(value.lstrip(">").strip()) + ["", ""]
        dtmf, activate_on, app, data = args[0], args[1].split("/", 1)[0], args[2], args[3]
        if not dtmf or not activate_on or not app:
            continue
        if "(" in app:  # the new syntax: app(data)
            app, _, rest = app.partition("(")
            data = rest[:rest.rfind(")")] if ")" in rest else rest
        elif '"' in data:
            data = data.strip('"')
        if activate_on.lower() not in ("self", "caller", "peer", "callee"):
            continue
        entries[name.strip()] = FeatureApp(name.strip(), dtmf, activate_on.lower() in ("self", "caller"),
                                           app.strip(), data)
    return entries


def load(path: Path) -> dict[str, FeatureApp]:
    return applicationmap(path.read_text(encoding="utf-8"))


def press(pbx: Pbx, channel: Channel, digits: str, features: dict[str, FeatureApp]) -> bool:
    """A bridged phone dials ``digits``: when they are one of the channel's DYNAMIC_FEATURES, its
    application runs (True); otherwise they are just tones (False). Nothing of it shows over AMI to a user
    without the dtmf class: the first sign is what the application does (X3: the BlindTransfer event)."""
    bridge = channel.bridge
    if bridge is None:
        return False
    enabled = [name for name in channel.variables.get("DYNAMIC_FEATURES", "").split("#") if name]
    item = next((features[name] for name in enabled if name in features and features[name].dtmf == digits), None)
    if item is None:
        return False
    target = channel if item.on_self else next((c for c in bridge.channels if c is not channel), None)
    if target is None:
        return False
    if item.app.lower() == "blindtransfer":
        args = separate_args(item.data) + [""]
        exten, context = args[0], args[1] or target.context  # BlindTransfer(exten[,context])
        if exten:
            control.blind_transfer(pbx, target, context, exten)
    return True
