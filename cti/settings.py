"""Service settings: a YAML file, overridden by the environment.

Containers configure through the environment, so ``CTI_AMI_HOST``,
``CTI_AMI_PORT``, ``CTI_AMI_USER``, ``CTI_AMI_SECRET`` and ``CTI_DB_URL`` win
over the file, and with no file at all the defaults plus the environment are
enough. The AMI secret belongs in the environment, not in the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cti.calls.tracker import HOTLINE_CONTEXTS, INBOUND_CONTEXTS
from cti.yamlconfig import ConfigError, Problem, YamlDoc, build

DEFAULT_FILE = "cti.yaml"


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """One Asterisk node of several (ami.nodes). ``name`` is the node's systemname (asterisk.conf), which
    Asterisk puts before every Uniqueid and Linkedid: it is checked at each login. Its secret comes
    from CTI_AMI_SECRET_<NAME> (upper case, "-" and "." as "_"), else CTI_AMI_SECRET."""

    name: str
    host: str
    port: int = 5038
    username: str = ""  # empty: ami.username
    secret: str = ""


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "cti"
    secret: str = ""
    action_timeout: float = 5.0  # seconds an action may wait for its response
    liveness_interval: float = 10.0  # silence after which the link is probed with a Ping
    liveness_timeout: float = 5.0  # the Ping's answer must come within this
    reconnect_min: float = 0.5  # first reconnect delay; doubles up to reconnect_max, with jitter
    reconnect_max: float = 30.0
    # where the carrier trunk's calls arrive, and those another node sends through the trunk between nodes
    inbound_contexts: tuple[str, ...] = INBOUND_CONTEXTS
    # where the dialplan takes an inbound call next: after a restart the channel list finds it there
    hotline_contexts: tuple[str, ...] = HOTLINE_CONTEXTS
    boot_timeout: float = 30.0  # how long the resync waits for a (re)starting Asterisk's FullyBooted
    outbound_contexts: tuple[str, ...] = ("callback",)  # where callbacks to citizens are dialled
    pbx_timezone: str = "UTC"  # zone of CEL EventTime values, for replays
    systemname: str = ""  # when set, the login checks that Asterisk's systemname is this (CoreSettings)
    nodes: tuple[NodeSettings, ...] = ()  # several Asterisk nodes; empty: the one of host and port

    def links(self) -> tuple[AmiSettings, ...]:
        """The settings of each node's link: the nodes' own, the rest shared; one link without nodes."""
        if not self.nodes:
            return (self,)
        return tuple(dataclasses.replace(self, host=node.host, port=node.port, systemname=node.name,
                                         username=node.username or self.username,
                                         secret=node.secret or self.secret, nodes=())
                     for node in self.nodes)


def node_secret_variable(name: str) -> str:
    """The environment variable that holds a node's AMI secret."""
    return "CTI_AMI_SECRET_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


@dataclass(frozen=True, slots=True)
class AgiSettings:
    host: str = "127.0.0.1"  # where the FastAGI service listens for Asterisk
    port: int = 4573


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str = "127.0.0.1"  # the desk, the API and the screen-pop WebSocket
    port: int = 8345
    # behind a reverse proxy: throttle sign-ins by the address the proxy appends to X-Forwarded-For,
    # not by the proxy's own; never set it when clients reach cti directly (they could forge it)
    forwarded_for: bool = False


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    directory: str = "/var/spool/asterisk/monitor/cti"  # where Asterisk writes (MixMonitor File=)
    local_directory: str = ""  # where cti reads the same files; empty: the same path (same machine)


@dataclass(frozen=True, slots=True)
class PathSettings:
    """Where the integrators' files are; relative to the settings file (or the working directory)."""

    trunk_map: str = "trunk_map.yaml"
    agents: str = "agents"
    ivr_flows: str = "ivr_flows"
    prompts: str = "recordings/prompts"
    prompt_language: str = "zh"
    cases: str = "cases.yaml"  # the dispatch catalogue and case rules (optional)


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = "sqlite:///cti.db"
    batch_size: int = 200  # call records written per transaction at most
    flush_interval: float = 0.2  # seconds a finished record may wait for its batch


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """Delivery of the units' webhooks from the outbox (cti.webhooks)."""

    timeout: float = 30.0  # seconds a unit's system may take to answer one POST
    retry_min: float = 1.0  # a failing unit is tried again after this, doubling…
    retry_max: float = 300.0  # …up to this, with jitter
    give_up_after_days: float = 7.0  # undelivered this long: dead (kept and listed, retried only by hand)
    keep_delivered_days: float = 30.0  # delivered messages are purged after this; 0 keeps them


@dataclass(frozen=True, slots=True)
class SmsSettings:
    """The SMS gateway (cases by SMS, cti.cases.channels). Its secret belongs in the environment
    (CTI_SMS_SECRET), as does a gateway URL with credentials in it (CTI_SMS_GATEWAY)."""

    secret: str = ""  # the HMAC-SHA256 key both sign with; empty: POST /api/sms/inbound answers 404
    gateway: str = ""  # where the SMS to citizens are POSTed (through the webhook outbox); empty: none is sent
    number: str = "12345"  # the number they are sent from
    max_skew: float = 300.0  # seconds a signed request's X-CTI-Timestamp may be from cti's clock


@dataclass(frozen=True, slots=True)
class WallboardSettings:
    """The wallboard's alerts (README: The wallboard)."""

    alert_answer_rate: float = 0.8  # the 15-second answer rate of the window below this: an alert
    alert_wait: float = 60.0  # seconds: a caller waiting longer is an alert
    alert_window: float = 30.0  # minutes the rate is taken over
    alert_min_calls: int = 10  # the rate is judged once this many calls of the window are decided
    interval: float = 0.2  # seconds between two updates of the board at most (changes are coalesced)


@dataclass(frozen=True, slots=True)
class Settings:
    ami: AmiSettings = field(default_factory=AmiSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    web: WebSettings = field(default_factory=WebSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    recordings: RecordingSettings = field(default_factory=RecordingSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    wallboard: WallboardSettings = field(default_factory=WallboardSettings)
    sms: SmsSettings = field(default_factory=SmsSettings)
    timezone: str = "Asia/Shanghai"  # how times are shown
    source: str = field(default="defaults", compare=False)
    # with no settings file: the folder the paths are relative to ("": the working directory)
    folder: str = field(default="", compare=False)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def path(self, relative: str) -> Path:
        """A configured path, relative to the settings file's folder when there is one."""
        base = Path(self.source).parent if self.source != "defaults" else Path(self.folder)
        return base / relative

    @property
    def files(self) -> str:
        """Where the integrators' files are read from, in words (for ``cti check`` and the log)."""
        if self.source != "defaults":
            return f"relative to {self.source}"
        if self.folder:
            return f"the sample shipped with cti, {self.folder}"
        return "the working directory"


def sample_folder() -> Path | None:
    """The sample configuration shipped with cti (trunk_map.yaml, agents/, ivr_flows/, recordings/prompts/,
    cases.yaml, asterisk-conf/): ``cti/sample/`` in an installed wheel (setup.py copies it there), the
    repository's root in a checkout or an editable install; None when neither has it."""
    package = Path(__file__).resolve().parent
    for folder in (package / "sample", package.parent):
        if (folder / PathSettings().trunk_map).is_file():
            return folder
    return None


_ENVIRONMENT = {
    "CTI_AMI_HOST": ("ami", "host", str),
    "CTI_AMI_PORT": ("ami", "port", int),
    "CTI_AMI_USER": ("ami", "username", str),
    "CTI_AMI_SECRET": ("ami", "secret", str),
    "CTI_DB_URL": ("database", "url", str),
    "CTI_AGI_HOST": ("agi", "host", str),
    "CTI_AGI_PORT": ("agi", "port", int),
    "CTI_WEB_HOST": ("web", "host", str),
    "CTI_WEB_PORT": ("web", "port", int),
    "CTI_SMS_SECRET": ("sms", "secret", str),
    "CTI_SMS_GATEWAY": ("sms", "gateway", str),
}


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (or ``$CTI_SETTINGS``, or ./cti.yaml when present) and apply the environment.

    With no settings file the integrators' files are read from the working directory when it holds
    a trunk_map.yaml, else from the sample shipped with cti (:func:`sample_folder`)."""
    environ = os.environ if environ is None else environ
    chosen = path or environ.get("CTI_SETTINGS")
    if chosen is None and Path(DEFAULT_FILE).exists():
        chosen = DEFAULT_FILE
    settings = Settings()
    if chosen is not None:
        doc = YamlDoc.load(chosen)
        problems: list[Problem] = []
        built = build(Settings, doc.data, doc, (), problems)
        if built is None:
            raise ConfigError(problems)
        settings = dataclasses.replace(built, source=str(chosen))
    elif not Path(settings.paths.trunk_map).exists():
        # no settings and no trunk map here (an installed cti run from anywhere): the shipped sample
        sample = sample_folder()
        if sample is not None:
            settings = dataclasses.replace(settings, folder=str(sample))
    settings = _apply_environment(settings, environ)
    _check(settings)
    return settings


def _apply_environment(settings: Settings, environ: Mapping[str, str]) -> Settings:
    # each section a different dataclass, chosen by name at run time
    sections: dict[str, Any] = {"ami": settings.ami, "agi": settings.agi, "web": settings.web,
                                "database": settings.database, "sms": settings.sms}
    problems = []
    for variable, (section, key, kind) in _ENVIRONMENT.items():
        if variable not in environ:
            continue
        raw = environ[variable]
        try:
            value = kind(raw)
        except ValueError:
            problems.append(Problem("environment", None, variable, f"expected an integer, got {raw!r}"))
            continue
        sections[section] = dataclasses.replace(sections[section], **{key: value})
    if problems:
        raise ConfigError(problems)
    ami = sections["ami"]
    nodes = tuple(dataclasses.replace(node, secret=environ.get(node_secret_variable(node.name), node.secret))
                  for node in ami.nodes)
    sections["ami"] = dataclasses.replace(ami, nodes=nodes)
    return dataclasses.replace(settings, ami=sections["ami"], agi=sections["agi"], web=sections["web"],
                               database=sections["database"], sms=sections["sms"])


def _check(settings: Settings) -> None:
    problems = []
    where = settings.source
    for key, zone in (("timezone", settings.timezone), ("ami.pbx_timezone", settings.ami.pbx_timezone)):
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(Problem(where, None, key, f"unknown time zone {zone!r}"))
    problems += _node_problems(where, settings.ami.nodes)
    for key, port in (("ami.port", settings.ami.port), ("agi.port", settings.agi.port),
                      ("web.port", settings.web.port), *((f"ami.nodes[{i}].port", node.port)
                                                         for i, node in enumerate(settings.ami.nodes))):
        if not 0 <= port < 65536:
            problems.append(Problem(where, None, key, f"{port} is not a TCP port"))
    if not settings.database.url.split(":", 1)[0].startswith(("sqlite", "postgresql", "postgres")):
        problems.append(Problem(where, None, "database.url",
                                "expected a sqlite:/// or postgresql:// URL, got " + repr(settings.database.url)))
    hooks = settings.webhooks
    for key, value in (("timeout", hooks.timeout), ("retry_min", hooks.retry_min),
                       ("give_up_after_days", hooks.give_up_after_days)):
        if not value > 0:
            problems.append(Problem(where, None, f"webhooks.{key}", f"expected more than 0, got {value}"))
    if hooks.retry_max < hooks.retry_min:
        problems.append(Problem(where, None, "webhooks.retry_max",
                                f"{hooks.retry_max} is less than retry_min ({hooks.retry_min})"))
    if hooks.keep_delivered_days < 0:
        problems.append(Problem(where, None, "webhooks.keep_delivered_days",
                                f"expected 0 (keep) or more, got {hooks.keep_delivered_days}"))
    board = settings.wallboard
    if not 0 <= board.alert_answer_rate <= 1:
        problems.append(Problem(where, None, "wallboard.alert_answer_rate",
                                f"a fraction from 0 to 1 (0.8 is 80%), got {board.alert_answer_rate}"))
    for key, value in (("alert_wait", board.alert_wait), ("alert_window", board.alert_window),
                       ("interval", board.interval)):
        if not value > 0:
            problems.append(Problem(where, None, f"wallboard.{key}", f"expected more than 0, got {value}"))
    if board.alert_min_calls < 1:
        problems.append(Problem(where, None, "wallboard.alert_min_calls",
                                f"expected 1 or more, got {board.alert_min_calls}"))
    if settings.sms.gateway and not settings.sms.gateway.startswith(("http://", "https://")):
        problems.append(Problem(where, None, "sms.gateway", "an http:// or https:// URL"))
    if not settings.sms.max_skew > 0:
        problems.append(Problem(where, None, "sms.max_skew", f"expected more than 0, got {settings.sms.max_skew}"))
    if problems:
        raise ConfigError(problems)


SYSTEMNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def _node_problems(where: str, nodes: tuple[NodeSettings, ...]) -> list[Problem]:
    """Each node named once, by a name Asterisk's systemname can be and nothing else can be taken for
    (a Uniqueid is "<systemname>-<seconds>.<n>": a name that is another's start plus "-" would be ambiguous)."""
    problems = []
    names = [node.name for node in nodes]
    for i, name in enumerate(names):
        if not SYSTEMNAME.fullmatch(name):
            problems.append(Problem(where, None, f"ami.nodes[{i}].name",
                                    f"{name!r} is not a systemname: letters, digits, '_', '.', '-', up to 32"))
        elif name in names[:i]:
            problems.append(Problem(where, None, f"ami.nodes[{i}].name", f"{name!r} names two nodes"))
        elif other := next((n for n in names if n != name and name.startswith(n + "-")), None):
            problems.append(Problem(where, None, f"ami.nodes[{i}].name",
                                    f"{name!r} starts with node {other!r} and a '-': their call ids would mix"))
    return problems
