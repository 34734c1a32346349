"""Settings from YAML and the environment, with errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cti.settings import load_settings, sample_folder
from cti.yamlconfig import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cti.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_and_the_environment_are_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no cti.yaml here
    settings = load_settings(environ={"CTI_AMI_HOST": "10.1.2.3", "CTI_AMI_PORT": "5039", "CTI_AMI_USER": "ctiuser",
                                      "CTI_AMI_SECRET": "s3cret", "CTI_DB_URL": "postgresql://cti@db/cti"})
    assert (settings.ami.host, settings.ami.port, settings.ami.username, settings.ami.secret) == (
        "10.1.2.3", 5039, "ctiuser", "s3cret")
    assert settings.database.url == "postgresql://cti@db/cti"
    assert settings.source == "defaults"


def test_with_no_settings_the_files_come_from_here_or_from_the_shipped_sample(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = sample_folder()  # the checkout's root here; cti/sample/ in a wheel (tests/test_wheel.py)
    assert sample is not None and (sample / "agents" / "agents.yaml").is_file()
    monkeypatch.chdir(tmp_path)  # no cti.yaml and no trunk map here: the sample
    settings = load_settings(environ={})
    assert settings.path("trunk_map.yaml") == sample / "trunk_map.yaml"
    assert settings.files == f"the sample shipped with cti, {sample}"
    (tmp_path / "trunk_map.yaml").write_text("hotline: {}\n", encoding="utf-8")  # a trunk map here: this folder
    settings = load_settings(environ={})
    assert settings.path("trunk_map.yaml") == Path("trunk_map.yaml")
    assert settings.files == "the working directory"
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc", "timezone: UTC\n")
    assert load_settings(path, environ={}).path("agents") == tmp_path / "etc" / "agents"  # a file: beside it


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "ami:\n  host: pbx.local\n  port: 5038\n  inbound_contexts: [from-trunk, from-pstn]\n")
    settings = load_settings(path, environ={"CTI_AMI_HOST": "127.0.0.1"})
    assert settings.ami.host == "127.0.0.1"
    assert settings.ami.inbound_contexts == ("from-trunk", "from-pstn")
    assert settings.source == str(path)


def test_every_problem_is_reported_with_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "ami:\n  hots: pbx.local\n  port: abc\ndatabase:\n  url: 12\ntimezon: UTC\n")
    with pytest.raises(ConfigError) as bad:
        load_settings(path, environ={})
    assert str(bad.value).splitlines() == [
        f"{path}:2: ami.hots: unknown key (did you mean 'host'?)",
        f"{path}:3: ami.port: expected an integer, got 'abc'",
        f"{path}:6: timezon: unknown key (did you mean 'timezone'?)",
    ]


def test_semantic_checks(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: Mars/Olympus\nami:\n  port: 70000\ndatabase:\n  url: mysql://x\n")
    with pytest.raises(ConfigError) as bad:
        load_settings(path, environ={})
    text = str(bad.value)
    assert "timezone: unknown time zone 'Mars/Olympus'" in text
    assert "ami.port: 70000 is not a TCP port" in text
    assert "database.url: expected a sqlite:/// or postgresql:// URL" in text


def test_broken_yaml_and_bad_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cti.yaml:3: not valid YAML: expected ',' or ']'"):
        load_settings(write(tmp_path, "ami:\n  host: [unclosed\n"), environ={})
    with pytest.raises(ConfigError, match=r"environment: CTI_AMI_PORT: expected an integer, got 'x'"):
        load_settings(write(tmp_path, "{}\n"), environ={"CTI_AMI_PORT": "x"})
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read"):
        load_settings(tmp_path / "missing.yaml", environ={})


def test_the_webhooks_section(tmp_path: Path) -> None:
    path = write(tmp_path, "webhooks:\n  timeout: 60\n  retry_max: 600\n  give_up_after_days: 10\n")
    hooks = load_settings(path, environ={}).webhooks
    assert (hooks.timeout, hooks.retry_min, hooks.retry_max, hooks.give_up_after_days, hooks.keep_delivered_days) == (
        60, 1, 600, 10, 30)
    path = write(tmp_path, "webhooks:\n  timeout: 0\n  retry_min: 10\n  retry_max: 5\n  keep_delivered_days: -1\n"
                           "  give_up_after: 3\n")
    with pytest.raises(ConfigError, match=r"webhooks.give_up_after: unknown key \(did you mean 'give_up_after_days'"):
        load_settings(path, environ={})
    path = write(tmp_path, "webhooks:\n  timeout: 0\n  retry_min: 10\n  retry_max: 5\n  keep_delivered_days: -1\n")
    with pytest.raises(ConfigError) as bad:
        load_settings(path, environ={})
    assert str(bad.value).splitlines() == [
        f"{path}: webhooks.timeout: expected more than 0, got 0.0",
        f"{path}: webhooks.retry_max: 5.0 is less than retry_min (10.0)",
        f"{path}: webhooks.keep_delivered_days: expected 0 (keep) or more, got -1.0"]
