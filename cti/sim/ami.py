"""The simulated PBX's Asterisk Manager Interface over TCP.

As Asterisk 22 does it (traces S9, S10 and the rest): a banner line; actions
refused before Login ("Permission denied"); a wrong secret answered after a
pause and the connection closed; events written only to sessions whose user
may read their class, stamped when timestampevents is on; every response
before the events its action causes; Asterisk's own error texts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cti.sim import control
from cti.sim.pbx import Channel, Pbx
from cti.sim.snapshot import UNKNOWN, Fields, event_text, list_item_text, response_text

log = logging.getLogger(__name__)
BANNER = b"Asterisk Call Manager/11.0.0\r\n"


@dataclass(frozen=True)
class AmiUser:
    secret: str
    read: frozenset[str] = frozenset({"system", "call", "agent"})  # the shipped manager.conf
    write: frozenset[str] = frozenset({"call", "originate", "agent", "reporting"})


# The write classes Asterisk 22 registers each action with; a user needs any one of them
# (main/manager.c process_message; app_queue.c, app_mixmonitor.c, app_senddtmf.c, app_confbridge.c).
ACTION_CLASSES: dict[str, frozenset[str]] = {
    "originate": frozenset({"originate"}), "redirect": frozenset({"call"}), "blindtransfer": frozenset({"call"}),
    "atxfer": frozenset({"call"}), "playdtmf": frozenset({"call"}), "setvar": frozenset({"call"}),
    "getvar": frozenset({"call", "reporting"}), "hangup": frozenset({"system", "call"}),
    "mixmonitor": frozenset({"system"}), "stopmixmonitor": frozenset({"system", "call"}),
    "coreshowchannels": frozenset({"system", "reporting"}), "coresettings": frozenset({"system", "reporting"}),
    "queueadd": frozenset({"agent"}),
    "queueremove": frozenset({"agent"}), "queuepause": frozenset({"agent"}),
    "confbridgelist": frozenset({"reporting"}), "command": frozenset({"command"}),
}
# Registered by app_queue, which a restarting Asterisk loads after it accepts logins (R4b)
APP_QUEUE_ACTIONS = frozenset({"queuestatus", "queueadd", "queueremove", "queuepause", "queuesummary",
                               "queuepenalty", "queuelog", "queuereload", "queuereset", "queuerule",
                               "queuememberringinuse", "queuechangeprioritycaller", "queuewithdrawcaller"})
EVERY_CLASS = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
                         "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security",
                         "message"})  # write = all (main/manager.c perms[])
# Originate of these applications (a substring, any case) or with these words in its data needs
# "system" as well (main/manager.c, originate_app_permissions).
SYSTEM_APPS = ("agi", "dbdeltree", "exec", "externalivr", "mixmonitor", "originate", "reload", "system")
SYSTEM_DATA = ("CURL", "DB", "EVAL", "FILE", "ODBC", "REALTIME", "SHELL")


@dataclass(eq=False)
class Session:
    writer: asyncio.StreamWriter
    user: AmiUser | None = None
    events: bool = True
    closed: bool = False

    def send(self, data: bytes) -> None:
        if not self.closed and not self.writer.is_closing():
            self.writer.write(data)


@dataclass
class Request:
    fields: dict[str, str]
    variables: list[str] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name.lower(), default)

    @property
    def action_id(self) -> str:
        return self.get("actionid")


Handler = Callable[["AmiServer", Session, Request], bytes | Awaitable[bytes]]


class AmiServer:
    def __init__(self, pbx: Pbx, users: dict[str, AmiUser], *, timestamps: bool = True,
                 auth_delay: float = 1.0) -> None:
        self.pbx = pbx
        self.users = users
        self.timestamps = timestamps
        self.auth_delay = auth_delay
        self.sessions: set[Session] = set()
        self._server: asyncio.Server | None = None
        self._address = ("127.0.0.1", 0)
        pbx.sinks.append(self._broadcast)
        pbx.lifecycle.append(self._lifecycle)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        self._address = (host, bound)
        return bound

    async def _lifecycle(self, step: str) -> None:
        """An Asterisk restart: its manager drops every session and stops listening (a client's connect
        is refused, R4b), then listens again on the same address."""
        if step == "stopped":
            for session in list(self.sessions):
                _close(session)
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
        elif step == "started" and self._server is None:
            self._server = await asyncio.start_server(self._serve, *self._address)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.closed = True
            session.writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    def _broadcast(self, name: str, privilege: str, fields: Fields) -> None:
        stamp = self.pbx.now() if self.timestamps else None
        data = None
        for session in self.sessions:
            if session.user is not None and session.events and privilege in session.user.read:
                data = data or event_text(name, privilege, fields, stamp, self.pbx.systemname)
                session.send(data)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer)
        self.sessions.add(session)
        writer.write(BANNER)
        try:
            while not session.closed:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                request = _parse(raw)
                if request.get("action").lower() == "login":
                    await self._login(session, request)
                    continue
                self.pbx.answering()
                try:
                    reply = self._handle(session, request)
                    if not isinstance(reply, bytes):  # a synchronous action: its events come first
                        self.pbx.answered()
                        reply = await reply
                finally:
                    if isinstance(reply, bytes):  # else the action failed and there is nothing to send
                        session.send(reply)
                    self.pbx.answered()
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the simulator is shutting down
            pass
        finally:
            session.closed = True
            self.sessions.discard(session)
            writer.close()

    async def _login(self, session: Session, request: Request) -> None:
        user = self.users.get(request.get("username"))
        if user is None or user.secret != request.get("secret"):
            await asyncio.sleep(self.auth_delay * self.pbx.scale)
            session.send(response_text("Error", request.action_id, "Authentication failed"))
            session.closed = True  # Asterisk closes the connection (S9)
            session.writer.close()
            return
        session.user = user
        session.events = request.get("events", "on").lower() not in ("off", "no")
        session.send(response_text("Success", request.action_id, "Authentication accepted"))
        uptime = str(int(self.pbx.now() - self.pbx.boot))
        if "system" in user.read and self.pbx.fully_booted:  # written to the session itself: no Timestamp
            session.send(event_text("FullyBooted", "system", [("Uptime", uptime), ("LastReload", uptime),
                                                                ("Status", "Fully Booted")],
                                    systemname=self.pbx.systemname))

    def _handle(self, session: Session, request: Request) -> bytes | Awaitable[bytes]:
        name = request.get("action")
        if not name:
            return response_text("Error", request.action_id, "Missing action in request")
        if session.user is None:
            return response_text("Error", request.action_id, "Permission denied")
        handler = ACTIONS.get(name.lower())
        if handler is None or (name.lower() in APP_QUEUE_ACTIONS and not self.pbx.fully_booted):
            return response_text("Error", request.action_id, f"Invalid/unknown command: {name}. "
                                 "Use Action: ListCommands to show available commands.")
        needed = ACTION_CLASSES.get(name.lower(), frozenset())
        if needed and not needed & session.user.write:
            return response_text("Error", request.action_id, "Permission denied")
        return handler(self, session, request)


def _parse(raw: bytes) -> Request:
    request = Request({})
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key == "variable":
            request.variables.append(value)
        request.fields.setdefault(key, value)
    return request


# -- actions -------------------------------------------------------------------------

def _channel(server: AmiServer, request: Request, header: str = "channel") -> Channel | None:
    return server.pbx.find(request.get(header))


def ping(server: AmiServer, session: Session, request: Request) -> bytes:
    stamp = f"{server.pbx.now():.6f}"
    return response_text("Success", request.action_id, None, [("Ping", "Pong"), ("Timestamp", stamp)])


def core_settings(server: AmiServer, session: Session, request: Request) -> bytes:
    """manager.c action_coresettings, its fields in its order (SystemName empty when the system is unnamed)."""
    return response_text("Success", request.action_id, None, [
        ("AMIversion", "11.0.0"), ("AsteriskVersion", "22.10.1"), ("SystemName", server.pbx.systemname),
        ("CoreMaxCalls", "0"), ("CoreMaxLoadAvg", "0.000000"), ("CoreRunUser", "asterisk"),
        ("CoreRunGroup", "asterisk"), ("CoreMaxFilehandles", "0"), ("CoreRealTimeEnabled", "No"),
        ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"), ("SoundsSearchCustomDir", "No")])


def logoff(server: AmiServer, session: Session, request: Request) -> bytes:
    server.pbx.after_response(lambda: _close(session))
    return response_text("Goodbye", request.action_id, "Thanks for all the fish.")


def _close(session: Session) -> None:
    session.closed = True
    session.writer.close()


def hangup(server: AmiServer, session: Session, request: Request) -> bytes:
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, "No such channel")
    cause = int(request.get("cause") or 16)
    server.pbx.after_response(lambda: server.pbx.spawn(server.pbx.hangup(channel, cause, request=True)))
    return response_text("Success", request.action_id, "Channel Hungup")


def redirect(server: AmiServer, session: Session, request: Request) -> bytes:
    if not request.get("channel"):
        return response_text("Error", request.action_id, "Channel not specified")
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, f"Channel does not exist: {request.get('channel')}")
    moves = [(channel, request.get("context"), request.get("exten"))]
    extra = _channel(server, request, "extrachannel")
    if extra is not None:
        moves.append((extra, request.get("extracontext") or request.get("context"),
                      request.get("extraexten") or request.get("exten")))
    control.redirect(server.pbx, moves)
    return response_text("Success", request.action_id, "Dual Redirect successful" if extra else "Redirect successful")


def blind_transfer(server: AmiServer, session: Session, request: Request) -> bytes:
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, "Channel specified does not exist")
    error = control.blind_transfer(server.pbx, channel, request.get("context"), request.get("exten"))
    return response_text("Error" if error else "Success", request.action_id, error or "Transfer succeeded")


def atxfer(server: AmiServer, session: Session, request: Request) -> bytes:
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, "Channel specified does not exist")
    control.atxfer(server.pbx, channel, request.get("context"), request.get("exten"))
    return response_text("Success", request.action_id, "Atxfer successfully queued")


def play_dtmf(server: AmiServer, session: Session, request: Request) -> bytes:
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, "Channel not found")
    digits = server.pbx.dtmf.setdefault(channel.name, "") + request.get("digit")
    server.pbx.dtmf[channel.name] = digits[-2:]
    if digits[-2:] in ("*2", "*1"):  # features.conf atxfercomplete / atxferabort
        server.pbx.dtmf[channel.name] = ""
        complete = digits[-2:] == "*2"
        server.pbx.after_response(lambda: control.finish_atxfer(server.pbx, channel, complete))
    return response_text("Success", request.action_id, "DTMF successfully queued")


def originate(server: AmiServer, session: Session, request: Request) -> bytes | Awaitable[bytes]:
    """Async: "queued" now, an OriginateResponse event later. Otherwise the response
    waits for the outcome: queued once answered, "Originate failed" if not (S10)."""
    target = request.get("channel")
    if not target:
        return response_text("Error", request.action_id, "Channel not specified")
    if not _originate_permitted(request, session):
        return response_text("Error", request.action_id, "Originate Access Forbidden: app or data blacklisted")
    caller = _callerid(request.get("callerid"))
    variables = dict(v.split("=", 1) for v in request.variables if "=" in v)
    asynchronous = request.get("async").lower() in ("true", "yes", "1")
    job = control.originate(server.pbx, target, context=request.get("context"), exten=request.get("exten"),
                            application=request.get("application"), data=request.get("data"), caller=caller,
                            timeout=float(request.get("timeout") or 30000) / 1000, action_id=request.action_id,
                            variables=variables, report=asynchronous)
    if not asynchronous:
        return _originate_now(job, request.action_id)
    server.pbx.after_response(lambda: server.pbx.spawn(job))
    return response_text("Success", request.action_id, "Originate successfully queued")


def _originate_permitted(request: Request, session: Session) -> bool:
    application, data = request.get("application").lower(), request.get("data")
    if not application or (session.user is not None and "system" in session.user.write):
        return True
    return not (any(word in application for word in SYSTEM_APPS) or any(word in data for word in SYSTEM_DATA))


async def _originate_now(job: Awaitable[Channel | None], action_id: str) -> bytes:
    if await job is None:
        return response_text("Error", action_id, "Originate failed")
    return response_text("Success", action_id, "Originate successfully queued")


def command(server: AmiServer, session: Session, request: Request) -> bytes:
    """The CLI over AMI: only what an admin checks first, the version; Asterisk's words otherwise (S10)."""
    line = request.get("command").strip()
    if line == "core show version":
        return response_text("Success", request.action_id, "Command output follows",
                             [("Output", "Asterisk 22.10.1 (simulated by cti)")])
    first = " ".join(line.split()[:2])
    return response_text("Error", request.action_id, "Command output follows", [
        ("Output", f"No such command '{line}' (type 'core show help {first}' for other possible commands)")])


def _callerid(value: str) -> tuple[str, str]:
    if "<" in value:
        name, _, rest = value.partition("<")
        return rest.rstrip(">").strip(), name.strip().strip('"') or "<unknown>"
    return (value or "<unknown>"), "<unknown>"


def mixmonitor(server: AmiServer, session: Session, request: Request) -> bytes:
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, "No such channel")
    control.mixmonitor(server.pbx, channel, request.get("file"))
    return response_text("Success", request.action_id)


def stop_mixmonitor(server: AmiServer, session: Session, request: Request) -> bytes:
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, "No such channel")
    server.pbx.after_response(lambda: server.pbx.event("MixMonitorStop", channel))
    return response_text("Success", request.action_id)


def setvar(server: AmiServer, session: Session, request: Request) -> bytes:
    if not request.get("variable"):
        return response_text("Error", request.action_id, "No variable specified")
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, "No such channel")
    server.pbx.set_variable(channel, request.get("variable"), request.get("value"))
    return response_text("Success", request.action_id, "Variable Set")


def getvar(server: AmiServer, session: Session, request: Request) -> bytes:
    channel = _channel(server, request)
    if channel is None:
        return response_text("Error", request.action_id, "No such channel")
    name = request.get("variable")
    return response_text("Success", request.action_id, None, [("Variable", name),
                                                             ("Value", channel.variables.get(name, ""))])


def core_show_channels(server: AmiServer, session: Session, request: Request) -> bytes:
    action_id = request.action_id
    out = [_list_start(action_id, "Channels will follow")]
    channels = list(server.pbx.channels.values())
    for channel in channels:
        seconds = int((time.monotonic() - channel.created) / server.pbx.scale)
        out.append(list_item_text("CoreShowChannel", [("ActionID", action_id)] + channel.fields() + [
            ("Application", channel.app), ("ApplicationData", channel.app_data),
            ("Duration", f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"),
            ("BridgeId", channel.bridge.uniqueid if channel.bridge else "")]))
    out.append(list_item_text("CoreShowChannelsComplete", [("ActionID", action_id), ("EventList", "Complete"),
                                                           ("ListItems", str(len(channels)))]))
    return b"".join(out)


def queue_status(server: AmiServer, session: Session, request: Request) -> bytes:
    action_id = request.action_id
    wanted = request.get("queue")
    out = [_list_start(action_id, "Queue status will follow")]
    items = 0
    for queue in server.pbx.queues.values():
        if wanted and queue.name != wanted:
            continue
        talk = int(queue.talk_total / queue.completed) if queue.completed else 0
        out.append(list_item_text("QueueParams", [
            ("Queue", queue.name), ("Max", "0"), ("Strategy", queue.strategy), ("Calls", str(len(queue.waiting))),
            ("Holdtime", str(int(queue.hold_total / queue.completed) if queue.completed else 0)),
            ("TalkTime", str(talk)), ("Completed", str(queue.completed)), ("Abandoned", str(queue.abandoned)),
            ("ServiceLevel", "0"), ("ServicelevelPerf", "0.0"), ("ServicelevelPerf2", "0.0"), ("Weight", "0"),
            ("ActionID", action_id)]))
        items += 1
        for member in queue.members:
            fields = dict(queue.member_fields(member))
            out.append(list_item_text("QueueMember", [
                ("Queue", queue.name), ("Name", member.name), ("Location", member.interface),
                ("StateInterface", member.interface), ("Membership", fields["Membership"]), ("Penalty", "0"),
                ("CallsTaken", str(member.calls_taken)), ("LastCall", str(member.last_call)), ("LastPause", "0"),
                ("LoginTime", str(member.login_time)), ("InCall", fields["InCall"]), ("Status", str(member.status)),
                ("Paused", fields["Paused"]), ("PausedReason", member.reason), ("Wrapuptime", "0"),
                ("ActionID", action_id)]))
            items += 1
        for position, entry in enumerate(queue.waiting, 1):
            channel = entry.channel
            out.append(list_item_text("QueueEntry", [
                ("Queue", queue.name), ("Position", str(position)), ("Channel", channel.name),
                ("Uniqueid", channel.uniqueid), ("CallerIDNum", _queue_party(channel.caller_number)),
                ("CallerIDName", _queue_party(channel.caller_name)),
                ("ConnectedLineNum", _queue_party(channel.connected_number)),
                ("ConnectedLineName", _queue_party(channel.connected_name)),
                ("Wait", str(int((time.monotonic() - entry.joined) / server.pbx.scale))), ("Priority", "0"),
                ("ActionID", action_id)]))
            items += 1
    out.append(list_item_text("QueueStatusComplete", [("ActionID", action_id), ("EventList", "Complete"),
                                                      ("ListItems", str(items))]))
    return b"".join(out)


def _queue_party(value: str) -> str:
    """app_queue writes a party it does not have as "unknown" (S_COR(…, "unknown"), R3), not "<unknown>"."""
    return "unknown" if value in (UNKNOWN, "") else value


def _list_start(action_id: str, message: str) -> bytes:
    return f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\nMessage: {message}\r\n\r\n".encode()


def queue_add(server: AmiServer, session: Session, request: Request) -> bytes:
    queue = server.pbx.queues.get(request.get("queue"))
    if not request.get("queue") or not request.get("interface"):
        return response_text("Error", request.action_id, "'Queue' not specified." if not request.get("queue")
                             else "'Interface' not specified.")
    if queue is None:
        return response_text("Error", request.action_id, "Unable to add interface to queue: No such queue")
    if queue.member(request.get("interface")) is not None:
        return response_text("Error", request.action_id, "Unable to add interface: Already there")
    paused = request.get("paused").lower() in ("true", "yes", "1")
    server.pbx.after_response(lambda: queue.add(request.get("interface"), request.get("membername"), paused,
                                                request.get("reason")))
    return response_text("Success", request.action_id, "Added interface to queue")


def queue_remove(server: AmiServer, session: Session, request: Request) -> bytes:
    queue = server.pbx.queues.get(request.get("queue"))
    if queue is None:
        return response_text("Error", request.action_id, "Unable to remove interface from queue: No such queue")
    member = queue.member(request.get("interface"))
    if member is None:
        return response_text("Error", request.action_id, "Unable to remove interface: Not there")
    server.pbx.after_response(lambda: queue.remove(member))
    return response_text("Success", request.action_id, "Removed interface from queue")


def queue_pause(server: AmiServer, session: Session, request: Request) -> bytes:
    if not request.get("interface") or not request.get("paused"):
        return response_text("Error", request.action_id, "Need 'Interface' and 'Paused' parameters.")
    paused = request.get("paused").lower() in ("true", "yes", "1")
    found = [(q, m) for q in server.pbx.queues.values()
             if (not request.get("queue") or q.name == request.get("queue"))
             and (m := q.member(request.get("interface"))) is not None]
    if not found:
        return response_text("Error", request.action_id, "Interface not found")
    server.pbx.after_response(lambda: [q.pause(m, paused, request.get("reason")) for q, m in found])
    return response_text("Success", request.action_id,
                         "Interface paused successfully" if paused else "Interface unpaused successfully")


def confbridge_list(server: AmiServer, session: Session, request: Request) -> bytes:
    action_id = request.action_id
    bridge = server.pbx.rooms.get(request.get("conference"))
    out = [_list_start(action_id, "Confbridge user list will follow")]
    members = bridge.channels if bridge is not None else []
    for channel in members:
        seconds = int((time.monotonic() - channel.created) / server.pbx.scale)
        out.append(list_item_text("ConfbridgeList", [
            ("ActionID", action_id), ("Conference", request.get("conference")), ("Admin", "No"),
            ("MarkedUser", "No"), ("WaitMarked", "No"), ("EndMarked", "No"), ("EndMarkedAny", "No"),
            ("Waiting", "No"), ("Muted", "No"), ("Talking", "No"), ("AnsweredTime", str(seconds))]
            + channel.fields()))
    out.append(list_item_text("ConfbridgeListComplete", [("ActionID", action_id), ("EventList", "Complete"),
                                                         ("ListItems", str(len(members)))]))
    return b"".join(out)


ACTIONS: dict[str, Handler] = {
    "ping": ping, "coresettings": core_settings, "logoff": logoff,
    "hangup": hangup, "redirect": redirect, "blindtransfer": blind_transfer,
    "atxfer": atxfer, "playdtmf": play_dtmf, "originate": originate, "mixmonitor": mixmonitor,
    "stopmixmonitor": stop_mixmonitor, "setvar": setvar, "getvar": getvar,
    "coreshowchannels": core_show_channels, "queuestatus": queue_status, "queueadd": queue_add,
    "queueremove": queue_remove, "queuepause": queue_pause, "confbridgelist": confbridge_list,
    "command": command,
}
