"""Settings a public deployment relies on: secrets from files, never echoed; a long enough admin token; the
public base URL required outside loopback; trusted proxies; per-service credentials apart from the URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from heatwatch.cli import main
from heatwatch.core.errors import ConfigError
from heatwatch.core.settings import ApiSettings, CoreSettings, IngestSettings, Settings

SECRET = "s3cret-Pa55word-that-must-never-show"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.upper().startswith("HEATWATCH_"):
            monkeypatch.delenv(name)
    return monkeypatch


def refused(group: type[CoreSettings], monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as info:
        group.load()
    return str(info.value)


def test_every_secret_setting_reads_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {}
    for name, value in {"INFLUX_PASSWORD": "influx-pw", "MQTT_PASSWORD": "mqtt-pw",
                        "ADMIN_TOKEN": "a" * 40, "REPLAY_MQTT_PASSWORD": "replay-pw",
                        "MQTT_URL": "mqtts://ingest:url-pw@broker.example:8883"}.items():
        f = tmp_path / name.lower()
        f.write_text(value + "\n", encoding="utf-8")  # the newline `echo` and editors add is not part of it
        files[name] = f
        monkeypatch.setenv(f"HEATWATCH_{name}_FILE", str(f))
    monkeypatch.setenv("HEATWATCH_INFLUX_USER", "heatwatch_api")
    monkeypatch.setenv("HEATWATCH_MQTT_USERNAME", "api")
    monkeypatch.setenv("HEATWATCH_REPLAY_MQTT_USERNAME", "replay")
    s = ApiSettings.load()
    assert s.influx_password is not None and s.influx_password.get_secret_value() == "influx-pw"
    assert s.admin_token is not None and s.admin_token.get_secret_value() == "a" * 40
    # The username and password settings win over the URL's, so the URL itself can stay free of secrets.
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls, s.mqtt.username, s.mqtt.password) == \
        ("broker.example", 8883, True, "api", "mqtt-pw")
    assert (s.replay_mqtt.username, s.replay_mqtt.password, s.replay_mqtt.host) == ("replay", "replay-pw",
                                                                                      "broker.example")
    assert "mqtt-pw" not in repr(s.mqtt) and "url-pw" not in repr(s)

    monkeypatch.setenv("HEATWATCH_INFLUX_TOKEN_FILE", str(files["INFLUX_PASSWORD"]))
    monkeypatch.delenv("HEATWATCH_INFLUX_USER")
    monkeypatch.delenv("HEATWATCH_INFLUX_PASSWORD_FILE")
    assert IngestSettings.load().influx_token.get_secret_value() == "influx-pw"  # type: ignore[union-attr]


def test_a_secret_file_problem_is_named_without_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(CoreSettings, monkeypatch, HEATWATCH_INFLUX_PASSWORD_FILE=str(tmp_path / "missing"))
    assert "HEATWATCH_INFLUX_PASSWORD_FILE" in message and "cannot read" in message
    empty = tmp_path / "empty"
    empty.write_text("\n")
    monkeypatch.setenv("HEATWATCH_INFLUX_PASSWORD_FILE", str(empty))
    assert "is empty" in refused(CoreSettings, monkeypatch)
    secret = tmp_path / "secret"
    secret.write_text(SECRET)
    monkeypatch.setenv("HEATWATCH_INFLUX_PASSWORD_FILE", str(secret))
    message = refused(CoreSettings, monkeypatch, HEATWATCH_INFLUX_PASSWORD="other")
    assert "not both" in message and SECRET not in message and "other" not in message


@pytest.mark.parametrize("url", [
    f"http://user:{SECRET}@broker:1883",      # a bad scheme, with a password
    f"user:{SECRET}@broker:1883",             # no scheme: parsers read "user" as the scheme and lose the password
    f"mqtt://user:{SECRET}@broker:notaport",  # a bad port
    f"mqtt://user:{SECRET}@:1883",            # no host
])
def test_a_bad_mqtt_url_is_refused_without_its_password(url: str, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    message = refused(CoreSettings, monkeypatch, HEATWATCH_MQTT_URL=url)
    assert "HEATWATCH_MQTT_URL" in message and SECRET not in message
    monkeypatch.setenv("HEATWATCH_DATA_DIR", str(tmp_path / "var"))
    assert main(["ingest"]) == 2
    err = capsys.readouterr().err
    assert "HEATWATCH_MQTT_URL" in err and SECRET not in err


def test_influx_credentials_stay_out_of_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    message = refused(CoreSettings, monkeypatch, HEATWATCH_INFLUX_URL=f"http://admin:{SECRET}@db:8086")
    assert "HEATWATCH_INFLUX_USER" in message and SECRET not in message
    message = refused(CoreSettings, monkeypatch, HEATWATCH_INFLUX_URL=f"ftp://admin:{SECRET}@db")
    assert SECRET not in message


def test_a_short_admin_token_is_refused_at_start(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    short = "0123456789abcdef0123456789abcde"  # 31 characters
    message = refused(ApiSettings, monkeypatch, HEATWATCH_ADMIN_TOKEN=short)
    assert "HEATWATCH_ADMIN_TOKEN" in message and "at least 32" in message and short not in message
    monkeypatch.setenv("HEATWATCH_DATA_DIR", str(tmp_path / "var"))
    for argv in (["api"], ["up"]):
        assert main(argv) == 2
        assert "HEATWATCH_ADMIN_TOKEN" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()  # refused before anything started
    monkeypatch.setenv("HEATWATCH_ADMIN_TOKEN", short + "f")
    assert ApiSettings.load().admin_token is not None
    monkeypatch.setenv("HEATWATCH_ADMIN_TOKEN", "")  # compose's ${HEATWATCH_ADMIN_TOKEN:-}: admin disabled
    assert ApiSettings.load().admin_token is None


def test_the_public_url_is_required_outside_loopback(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert ApiSettings.load().base_url() == "http://127.0.0.1:8000"  # loopback: the listen address
    message = refused(ApiSettings, monkeypatch, HEATWATCH_API_HOST="0.0.0.0")
    assert "HEATWATCH_API_PUBLIC_URL" in message
    monkeypatch.setenv("HEATWATCH_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("HEATWATCH_API_HOST")
    # The command line's --host is checked the same way, before anything starts.
    for argv in (["api", "--host", "0.0.0.0"], ["api", "--host", "::"], ["up", "--host", "192.0.2.10"]):
        assert main(argv) == 2
        assert "HEATWATCH_API_PUBLIC_URL" in capsys.readouterr().err
    assert not (tmp_path / "var").exists()

    monkeypatch.setenv("HEATWATCH_API_HOST", "0.0.0.0")
    monkeypatch.setenv("HEATWATCH_API_PUBLIC_URL", "https://donnees.example.fr/chaleur/")
    s = ApiSettings.load()
    assert s.base_url() == "https://donnees.example.fr/chaleur"
    for bad in ("donnees.example.fr", "https://u:p@x.fr", "https://x.fr/?a=1", "ftp://x.fr"):
        assert "HEATWATCH_API_PUBLIC_URL" in refused(ApiSettings, monkeypatch, HEATWATCH_API_PUBLIC_URL=bad)
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        monkeypatch.delenv("HEATWATCH_API_PUBLIC_URL", raising=False)
        monkeypatch.setenv("HEATWATCH_API_HOST", host)
        ApiSettings.load()


def test_trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ApiSettings.load().api.trusted_proxies == []  # none by default: the peer is the client
    monkeypatch.setenv("HEATWATCH_API_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,::1")
    assert ApiSettings.load().api.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
    monkeypatch.setenv("HEATWATCH_API_TRUSTED_PROXIES", '["192.0.2.1"]')
    assert Settings.load().api.trusted_proxies == ["192.0.2.1"]
    assert "HEATWATCH_API_TRUSTED_PROXIES" in refused(ApiSettings, monkeypatch,
                                                      HEATWATCH_API_TRUSTED_PROXIES="proxy.example")


def test_aggregates_have_a_database_of_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CoreSettings.load().influx_agg_database == "heatwatch_agg"
    monkeypatch.setenv("HEATWATCH_INFLUX_AGG_DB", "published")
    assert CoreSettings.load().influx_agg_database == "published"
    assert "HEATWATCH_INFLUX_AGG_DB" in refused(CoreSettings, monkeypatch, HEATWATCH_INFLUX_AGG_DB="heatwatch")
