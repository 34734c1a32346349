"""The cti command as an admin runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.fakeami import FIXTURES


def repo_settings(tmp_path: Path) -> Path:
    """A settings file in tmp_path that uses the project's trunk map, queues, flows and prompts."""
    path = tmp_path / "settings.yaml"
    path.write_text(f"paths:\n  trunk_map: {REPO / 'trunk_map.yaml'}\n  agents: {REPO / 'agents'}\n"
                    f"  ivr_flows: {REPO / 'ivr_flows'}\n  prompts: {REPO / 'recordings' / 'prompts'}\n",
                    encoding="utf-8")
    return path


def cti(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CTI_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "cti.cli", *args], cwd=cwd, env=environ, capture_output=True,
                          text=True, timeout=60)


def test_replay_prints_json_records_and_calls_lists_them(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cti.db'}"
    replayed = cti("replay", "--json", "--db", db, str(FIXTURES / "S3_blind_transfer_110.raw"),
                   str(FIXTURES / "S7_mixmonitor.raw"), cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    records = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert [(r["caller_number"], r["dialled_number"], r["answered_by"]) for r in records] == [
        ("13800000003", "12345", "Local/1001@agents/n"),
        ("13800000013", "12345", "Local/1001@agents/n"),
        ("13800000007", "12345", "Local/1001@agents/n")]
    first = records[0]
    for key in ("linkedid", "caller_name", "transfers", "arrived_at", "answered_at", "ended_at", "hangup_cause",
                "recording"):
        assert key in first
    assert first["transfers"][0]["target"] == "110" and first["transfers"][0]["kind"] == "blind"
    assert first["arrived_at"] == "2026-11-22T01:13:29.455+08:00"  # shown in Asia/Shanghai
    assert records[2]["recording"] == "/var/spool/asterisk/monitor/x.wav"

    listed = cti("calls", "--json", cwd=tmp_path, env={"CTI_DB_URL": db})
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line) for line in listed.stdout.splitlines()] == records[::-1]  # newest first

    table = cti("calls", cwd=tmp_path, env={"CTI_DB_URL": db})
    assert "blind→110; Normal Clearing" in table.stdout
    assert "13800000007" in table.stdout


def test_replay_twice_is_idempotent(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cti.db'}"
    for _ in range(2):
        assert cti("replay", "--db", db, str(FIXTURES / "S1_retired_number.raw"), cwd=tmp_path).returncode == 0
    listed = cti("calls", "--json", "--db", db, cwd=tmp_path)
    assert len(listed.stdout.splitlines()) == 1


def test_a_cut_transcript_says_which_calls_were_not_recorded(tmp_path: Path) -> None:
    result = cti("replay", "--db", f"sqlite:///{tmp_path / 'x.db'}",
                 str(FIXTURES / "R1_ami_client_reconnect_midcall.raw"), cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "no calls"
    assert "1 call(s) still in progress when the transcript ends, not recorded: 1795281932.37" in result.stderr


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    missing = cti("replay", str(tmp_path / "nope.raw"), cwd=tmp_path)
    assert missing.returncode == 2
    assert f"cti: {tmp_path / 'nope.raw'}: cannot read" in missing.stderr
    (tmp_path / "cti.yaml").write_text("ami:\n  prot: 5038\n", encoding="utf-8")
    typo = cti("calls", cwd=tmp_path)
    assert typo.returncode == 2
    assert typo.stderr.splitlines() == ["cti.yaml:2: ami.prot: unknown key (did you mean 'port'?)",
                                        "cti: 1 problem(s) in the configuration"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"dir": "in", "raw": "Event: X\\r\\n\\r\\n"}\nnot json\n', encoding="utf-8")
    bad = cti("--settings", str(tmp_path / "none.yaml"), "replay", str(broken), cwd=tmp_path)
    assert bad.returncode == 2 and "none.yaml: cannot read" in bad.stderr
    (tmp_path / "cti.yaml").unlink()
    bad = cti("replay", "--db", f"sqlite:///{tmp_path / 'y.db'}", str(broken), cwd=tmp_path)
    assert bad.returncode == 2 and f"{broken}:2: not a JSON object" in bad.stderr


def test_serve_with_a_wrong_secret_exits_with_the_reason(tmp_path: Path) -> None:
    """Against the fake Asterisk in a subprocess-free way: the login error reaches the admin."""
    import asyncio

    from tests.fakeami import FakeAmi, Session

    async def scenario() -> subprocess.CompletedProcess[str]:
        async with FakeAmi([Session(close_at_end=False)], secret="right") as server:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cti.cli", "--settings", str(repo_settings(tmp_path)), "serve",
                cwd=tmp_path,
                env={**{k: v for k, v in os.environ.items() if not k.startswith("CTI_")},
                     "CTI_AMI_PORT": str(server.port), "CTI_AMI_SECRET": "wrong", "CTI_AGI_PORT": "0",
                     "CTI_DB_URL": f"sqlite:///{tmp_path / 's.db'}"},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(process.communicate(), 30)
            return subprocess.CompletedProcess([], process.returncode or 0, out.decode(), err.decode())

    result = asyncio.run(scenario())
    assert result.returncode == 2
    assert "refused the AMI login of user 'cti': Authentication failed" in result.stderr


def test_route_explains_every_action(tmp_path: Path) -> None:
    settings = str(repo_settings(tmp_path))
    cases = {
        ("12315", "2026-12-01 09:00"): "parallel_ring: ring queue q12345 and PJSIP/seat-12315 together for 30 s, "
                                       "then the 12345 queue",
        ("2666110", "2020-03-02 09:00"): "notice_then_queue: play moved-to-12345, then queue q12345",
        ("2666110", "2026-12-01 09:00"): "retired_notice: play number-retired and hang up",
        ("110", "2026-12-01 09:00"): "not_routed: dial PJSIP/110@carrier directly (never into 12345)",
        ("12388", "2026-12-01 09:00"): "guidance: play guidance-12388 and hang up",
        ("12345", "2026-12-01 09:00"): "queue: queue q12345",
        ("99999", "2026-12-01 09:00"): "queue: queue q12345",
    }
    for (number, at), action in cases.items():
        result = cti("--settings", settings, "route", number, "--at", at, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert f"  action:    {action}" in result.stdout.splitlines(), result.stdout
    unknown = cti("--settings", settings, "route", "99999", "--json", cwd=tmp_path)
    decision = json.loads(unknown.stdout)
    assert (decision["treatment"], decision["action"], decision["unit"]) == ("unknown", "queue", None)
    assert "not in the trunk map" in decision["note"]
    retired = json.loads(cti("--settings", settings, "route", "2666110", "--at", "2020-07-01 00:00", "--json",
                             cwd=tmp_path).stdout)
    assert {k: retired[k] for k in ("number", "unit", "treatment", "action", "prompt", "targets")} == {
        "number": "2666110", "unit": "市创建办", "treatment": "merged", "action": "retired_notice",
        "prompt": "number-retired", "targets": []}
    bad = cti("--settings", settings, "route", "12o45", cwd=tmp_path)
    assert (bad.returncode, bad.stderr.strip()) == (2, "cti: '12o45' is not a telephone number")


def test_users_and_tokens_from_the_command_line(tmp_path: Path) -> None:
    settings = str(repo_settings(tmp_path))
    db = f"sqlite:///{tmp_path / 'users.db'}"
    added = cti("--settings", settings, "user", "add", "1001", "--role", "agent", "--db", db, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("added agent 1001 (王芳); password: ")
    again = cti("--settings", settings, "user", "add", "1001", "--role", "agent", "--db", db, cwd=tmp_path)
    assert (again.returncode, again.stderr.strip()) == (2, "cti: user '1001' already exists")
    nobody = cti("--settings", settings, "user", "add", "7777", "--role", "agent", "--db", db, cwd=tmp_path)
    assert nobody.stderr.strip() == "cti: no agent '7777' in agents.yaml"
    chosen = subprocess.run([sys.executable, "-m", "cti.cli", "--settings", settings, "user", "add", "crm",
                             "--role", "integrator", "--password-stdin", "--db", db], input="long enough pw\n",
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert chosen.stdout.strip() == "added integrator crm (crm)"
    token = cti("--settings", settings, "token", "crm", "--label", "crm bridge", "--db", db, cwd=tmp_path)
    assert token.stdout.startswith("cti_") and len(token.stdout.strip()) > 40
    missing = cti("--settings", settings, "token", "ghost", "--db", db, cwd=tmp_path)
    assert (missing.returncode, missing.stderr.strip()) == (2, "cti: no user 'ghost'")


def test_cases_from_the_command_line(tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'cases.db'}"]
    for user, *role in (("值班长", "--role", "supervisor"), ("1001", "--role", "agent"),
                        ("yanhu", "--role", "integrator", "--unit", "yanhu-district")):
        assert cti("user", "add", user, *role, *db, cwd=REPO).returncode == 0
    opened = cti("case", "open", "--caller", "13800000001", "--category", "complaint", "--content", "夜间施工噪音",
                 "--unit", "yanhu-district", "--as", "值班长", "--json", *db, cwd=REPO)
    assert opened.returncode == 0, opened.stderr
    case = json.loads(opened.stdout)
    assert (case["state"], case["unit"], case["category_name"]) == ("dispatched", "yanhu-district", "投诉")
    number = str(case["id"])
    for action, *extra in (("sign",), ("reply", "--reply", "已协调停工")):  # the unit's system, in its role
        done = cti("case", "act", number, action, *extra, "--as", "yanhu", *db, cwd=REPO)
        assert done.returncode == 0, done.stderr
    events = json.loads(cti("case", "show", number, "--json", *db, cwd=REPO).stdout)["events"]
    assert [(e["action"], e["actor"], e["role"]) for e in events] == [
        ("create", "值班长", "supervisor"), ("dispatch", "值班长", "supervisor"), ("sign", "yanhu", "unit"),
        ("reply", "yanhu", "unit")]
    ghost = cti("case", "act", number, "sign", "--as", "ghost", *db, cwd=REPO)
    assert (ghost.returncode, ghost.stderr.strip()) == (2, "cti: --as ghost: no such user (cti user add)")
    refused = cti("case", "act", number, "archive", *db, cwd=REPO)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"cti: cannot archive case {number}: it is replied (allowed from closed)"
    shown = cti("case", "show", number, *db, cwd=REPO)
    assert [line.split()[2] for line in shown.stdout.splitlines()[2:]] == ["create", "dispatch", "sign", "reply"]
    assert "值班长" in shown.stdout
    listed = cti("case", "list", "--state", "replied", *db, cwd=REPO)
    assert listed.stdout.split()[0] == number
    table = cti("case", "stats", "--by", "unit", "--csv", *db, cwd=REPO)
    assert table.stdout.splitlines()[0].startswith("unit,cases,closed,replied,on_time")
    assert table.stdout.splitlines()[1].startswith("yanhu-district,1,0,1,1,1.0")
    unknown = cti("case", "act", "999", "sign", *db, cwd=REPO)
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "cti: no case 999")
    assert cti("case", "link", number, "88.1", *db, cwd=REPO).stdout.strip() == f"call 88.1 joined case {number}"
    twice = cti("case", "link", number, "88.1", *db, cwd=REPO)
    assert (twice.returncode, twice.stderr.strip()) == (1, f"cti: call 88.1 already belongs to case {number}")
    other = json.loads(cti("case", "open", "--caller", "1390", "--category", "request", "--content", "路灯",
                           "--json", *db, cwd=REPO).stdout)
    edited = json.loads(cti("case", "edit", str(other["id"]), "--location", "解放路", "--confidential", "--json",
                            *db, cwd=REPO).stdout)
    assert (edited["location"], edited["confidential"]) == ("解放路", True)
    elsewhere = cti("case", "act", str(other["id"]), "sign", "--as", "yanhu", *db, cwd=REPO)  # not its unit's
    assert (elsewhere.returncode, elsewhere.stderr.strip()) == (1, f"cti: no case {other['id']}")
    by_agent = json.loads(cti("case", "act", str(other["id"]), "dispatch", "--unit", "yanhu-district", "--as", "1001",
                              "--json", *db, cwd=REPO).stdout)
    assert by_agent["state"] == "dispatched"
    last = json.loads(cti("case", "show", str(other["id"]), "--json", *db, cwd=REPO).stdout)["events"][-1]
    assert (last["actor"], last["role"]) == ("1001", "agent")  # an agent acts as an agent, not a supervisor
    nothing = cti("case", "missed", "--called-back", "9.9", *db, cwd=REPO)
    assert (nothing.returncode, nothing.stderr.strip()) == (1, "cti: no missed call 9.9")


def test_tokens_expire_when_asked_and_are_listed_with_their_last_use(tmp_path: Path) -> None:
    import asyncio

    from cti.store.database import Database

    settings = str(repo_settings(tmp_path))
    db = f"sqlite:///{tmp_path / 'tokens.db'}"
    assert cti("--settings", settings, "token", "list", "--db", db, cwd=tmp_path).stdout.strip() == "no tokens"
    cti("--settings", settings, "user", "add", "crm", "--role", "integrator", "--db", db, cwd=tmp_path)
    cti("--settings", settings, "user", "add", "eco", "--role", "integrator", "--db", db, cwd=tmp_path)
    lasting = cti("--settings", settings, "token", "crm", "--label", "crm bridge", "--expires", "30", "--db", db,
                  cwd=tmp_path)
    assert lasting.returncode == 0 and lasting.stdout.startswith("cti_") and lasting.stderr == ""
    forever = cti("--settings", settings, "token", "eco", "--label", "eco feed", "--db", db, cwd=tmp_path)
    assert forever.returncode == 0 and forever.stdout.startswith("cti_")
    assert forever.stderr.strip() == ("cti: warning: this token never expires (only DELETE /api/session with it "
                                      "revokes it); consider --expires DAYS")
    zero = cti("--settings", settings, "token", "crm", "--expires", "0", "--db", db, cwd=tmp_path)
    assert (zero.returncode, zero.stderr.strip()) == (2, "cti: --expires takes a number of days, at least 1")
    stray = cti("--settings", settings, "token", "crm", "eco", "--db", db, cwd=tmp_path)
    assert stray.returncode == 2 and "cti token list [USER]" in stray.stderr

    async def use(token: str) -> None:
        database = await Database.open(db)
        try:
            assert await database.users.user_for_token(token) is not None
        finally:
            await database.close()

    asyncio.run(use(lasting.stdout.strip()))
    listed = cti("--settings", settings, "token", "list", "--db", db, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["user", "label", "created", "expires", "last", "used", "revoked"]
    assert [row.split()[:2] for row in rows] == [["crm", "crm"], ["eco", "eco"]]
    crm, eco = (row.split() for row in rows)
    # created, expires (30 days on), last used: dates and times in the settings' zone
    assert len(crm) == 10 and crm[3] < crm[5] and crm[7] == crm[3] and crm[-1] == "no"
    assert eco[5:] == ["never", "never", "no"]
    only = cti("--settings", settings, "token", "list", "eco", "--db", db, cwd=tmp_path)
    assert [row.split()[0] for row in only.stdout.splitlines()[1:]] == ["eco"]


def test_calls_limit_is_bounded(tmp_path: Path) -> None:
    refused = cti("calls", "--limit", "-1", "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=REPO)
    assert refused.returncode == 2 and "-1 is not between 1 and 100,000" in refused.stderr


def test_a_reader_that_stops_reading_is_no_error(tmp_path: Path) -> None:
    """`cti guidance | head -1`: the reader leaves, cti stops quietly with 141 (128 + SIGPIPE), no traceback."""
    process = subprocess.Popen([sys.executable, "-m", "cti.cli", "--settings", str(repo_settings(tmp_path)),
                                "guidance"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before cti writes a line: every write of it meets a pipe nobody reads
    with process.stderr:
        error = process.stderr.read()
    assert (process.wait(timeout=60), error) == (141, b"")


def test_tables_align_chinese_by_display_width(tmp_path: Path) -> None:
    from cti.console import cell, seconds, width

    assert (width("王芳"), width("Seat 1001"), width("ｅ"), width("é")) == (4, 9, 2, 1)
    assert cell("咨询", 8) + "|" == "咨询    |" and cell("5s", 5, ">") == "   5s"
    assert [seconds(v) for v in (30.753, 39.0, 5, None)] == ["31s", "39s", "5s", "—"]  # one way, whole seconds
    db = ["--db", f"sqlite:///{tmp_path / 'wide.db'}"]
    for category, content in (("consultation", "社保卡补办"), ("suggestion", "建议增设便民停车位")):
        opened = cti("case", "open", "--caller", "13800000001", "--category", category, "--content", content,
                     *db, cwd=REPO)
        assert opened.returncode == 0, opened.stderr
    lines = cti("case", "list", *db, cwd=REPO).stdout.splitlines()
    assert [line.split()[6] for line in lines] == ["意见建议", "咨询"]  # after the case number, time and channel
    assert len({width(line[:line.index(" accepted")]) for line in lines}) == 1  # the state column lines up


def test_durations_and_queue_waits_of_abandoned_calls(tmp_path: Path) -> None:
    """S6: the second caller gives up after 5 s in the queue; `cti calls` and the missed-call list say 5s."""
    import asyncio

    from cti.cases.service import CaseService
    from cti.configuration import load_configuration
    from cti.replay import replay
    from cti.settings import load_settings
    from cti.store.database import Database

    db = f"sqlite:///{tmp_path / 'abandon.db'}"
    table = cti("replay", "--db", db, str(FIXTURES / "S6_abandon.raw"), cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    wait = header.index("wait") + len("wait")  # right-aligned under its heading
    assert [(row.split()[2], row[wait - 5:wait]) for row in rows] == [("13800000006", "    —"),
                                                                      ("13800000016", "   5s")]
    assert cti("calls", "--db", db, cwd=tmp_path).stdout.splitlines()[1:] == rows[::-1]

    async def missed_calls() -> None:  # what cti serve does with the calls that end
        settings = load_settings(repo_settings(tmp_path), environ={})
        catalogue = load_configuration(settings).catalogue
        database = await Database.open(db)
        try:
            records = replay([FIXTURES / "S6_abandon.raw"], settings.ami).records
            await CaseService(database.cases, lambda: catalogue, settings.zone).on_calls_ended(records)
        finally:
            await database.close()

    asyncio.run(missed_calls())
    missed = cti("case", "missed", "--db", db, cwd=REPO).stdout.splitlines()
    assert [line.split("waited")[1].split()[0] for line in missed] == ["—", "5s"]
    assert [json.loads(line)["waited"] for line in cti("case", "missed", "--json", "--db", db, cwd=REPO)
            .stdout.splitlines()] == [None, 5.0]


def test_route_names_a_moment_that_does_not_exist(tmp_path: Path) -> None:
    settings = str(repo_settings(tmp_path))
    for at, reason in (("2026-02-30 09:00", "day is out of range for month"),
                       ("2026-02-03 25:00", "hour must be in 0..23"),
                       ("next monday", 'expected "YYYY-MM-DD HH:MM" (Asia/Shanghai)')):
        bad = cti("--settings", settings, "route", "12315", "--at", at, cwd=tmp_path)
        assert (bad.returncode, bad.stderr.strip()) == (2, f'cti: --at "{at}": {reason}')


def test_replay_reads_transcripts_and_writes_only_when_asked(tmp_path: Path) -> None:
    junk = tmp_path / "junk.raw"
    junk.write_text("hello\nthis is not AMI\n", encoding="utf-8")
    refused = cti("replay", str(junk), cwd=tmp_path)
    assert refused.returncode == 2
    assert f"cti: {junk}: no AMI messages in it: not a transcript of what Asterisk sent" in refused.stderr
    quiet = cti("replay", str(FIXTURES / "S10_actions_errors.raw"), cwd=tmp_path)  # messages, no call
    assert (quiet.returncode, quiet.stdout.strip()) == (0, "no calls")
    looked = cti("replay", "--json", str(FIXTURES / "S6_abandon.raw"), cwd=tmp_path)
    assert looked.returncode == 0 and len(looked.stdout.splitlines()) == 2
    assert list(tmp_path.iterdir()) == [junk]  # no ./cti.db made unasked
    db = f"sqlite:///{tmp_path / 'kept.db'}"
    stored = cti("replay", "--json", "--store", str(FIXTURES / "S6_abandon.raw"), cwd=tmp_path,
                 env={"CTI_DB_URL": db})
    assert stored.stdout == looked.stdout  # the same records, read back from the database
    assert cti("calls", "--json", "--db", db, cwd=tmp_path).stdout.splitlines() == looked.stdout.splitlines()[::-1]


def test_as_is_offered_only_where_someone_acts(tmp_path: Path) -> None:
    db = ["--db", f"sqlite:///{tmp_path / 'as.db'}"]
    for reading in (("list",), ("show", "1"), ("stats", "--by", "unit"), ("link", "1", "9.9")):
        offered = cti("case", *reading, "--as", "1001", *db, cwd=REPO)
        assert offered.returncode == 2 and "unrecognized arguments: --as 1001" in offered.stderr, reading
    listing = cti("case", "missed", "--as", "1001", *db, cwd=REPO)
    assert (listing.returncode, listing.stderr.strip()) == (
        2, "cti: --as 1001: acts on a missed call: give --called-back or --unreachable")
    for acting in ("open", "act", "edit", "missed"):
        assert "--as USER" in cti("case", acting, "--help", cwd=REPO).stdout, acting


def test_every_command_says_what_it_does(tmp_path: Path) -> None:
    import argparse

    from cti.cli import _parser

    def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    assert sub.description and "\n" not in sub.description, (*path, name)
                    found += [(*path, name), *commands(sub, (*path, name))]
        return found

    listed = commands(_parser())
    assert {("serve",), ("check",), ("case", "missed"), ("user", "add")} <= set(listed) and len(listed) == 26
    for name in ("serve", "check"):
        shown = cti(name, "--help", cwd=tmp_path)
        assert shown.returncode == 0 and shown.stdout.split("\n\n")[1].strip(), shown.stdout
    assert "validate trunk_map.yaml" in cti("check", "--help", cwd=tmp_path).stdout
