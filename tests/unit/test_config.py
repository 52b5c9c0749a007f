"""Settings: defaults, YAML file, environment precedence, and errors that name the fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelmedic.config import DetectionSettings, Settings, WindowSettings, load_settings
from modelmedic.errors import ConfigError, ModelmedicError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A developer's own MODELMEDIC_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.upper().startswith("MODELMEDIC_"):
            monkeypatch.delenv(name)
    return monkeypatch


def write(tmp_path: Path, text: str, name: str = "modelmedic.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(*args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(*args, **kwargs)
    return str(info.value)


# -- defaults -----------------------------------------------------------------------------


def test_defaults_load_and_match_the_documented_values() -> None:
    s = load_settings()
    assert s == Settings()
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert s.kafka.group_id == "modelmedic"
    assert s.kafka.security_protocol == "PLAINTEXT"
    assert s.kafka.topics.inference == "modelmedic.inference"
    assert s.kafka.topics.dlq == "modelmedic.dlq"
    assert s.windows == WindowSettings(size_ms=1000, allowed_lateness_ms=2000, idle_close_ms=3000, series_ttl_s=21_600)
    assert s.detection == DetectionSettings()
    assert (s.detection.threshold, s.detection.trigger_windows, s.detection.recover_windows) == (0.9999, 2, 5)
    assert s.sinks == []
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)
    assert (s.log_format, s.log_level) == ("text", "INFO")


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()
    assert load_settings(write(tmp_path, "# only a comment\n", "c.yaml")) == Settings()


# -- sources and precedence ---------------------------------------------------------------

YAML = """
kafka:
  bootstrap_servers: yaml-broker:9092
  group_id: from-yaml
windows:
  size_ms: 500
sinks:
  - type: webhook
    url: http://receiver.local/alerts
detection:
  trigger_windows: 3
"""


def test_yaml_file_is_read(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, YAML))
    assert s.kafka.bootstrap_servers == "yaml-broker:9092"
    assert s.kafka.group_id == "from-yaml"
    assert s.kafka.client_id == "modelmedic"  # unset keys of a section keep their defaults
    assert s.windows.size_ms == 500 and s.windows.allowed_lateness_ms == 2000
    assert [(k.type, k.url, k.name) for k in s.sinks] == [("webhook", "http://receiver.local/alerts", None)]
    assert s.detection.trigger_windows == 3


def test_environment_overrides_the_yaml_file_key_by_key(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MODELMEDIC_KAFKA__BOOTSTRAP_SERVERS", "env-broker:9093")
    clean_env.setenv("MODELMEDIC_WINDOWS__SIZE_MS", "250")
    clean_env.setenv("MODELMEDIC_LOG_LEVEL", "DEBUG")
    s = load_settings(write(tmp_path, YAML))
    assert s.kafka.bootstrap_servers == "env-broker:9093"
    assert s.kafka.group_id == "from-yaml"  # the rest of the YAML section survives
    assert s.windows.size_ms == 250
    assert s.log_level == "DEBUG"
    assert s.detection.trigger_windows == 3


def test_environment_alone(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MODELMEDIC_KAFKA__BOOTSTRAP_SERVERS", "a:1,b:2")
    clean_env.setenv("MODELMEDIC_KAFKA__TOPICS__INFERENCE", "prod.inference")
    clean_env.setenv("MODELMEDIC_SINKS", '[{"type": "slack", "url": "https://hooks.example/T0"}]')
    s = load_settings()
    assert s.kafka.bootstrap_servers == "a:1,b:2"
    assert s.kafka.topics.inference == "prod.inference" and s.kafka.topics.labels == "modelmedic.labels"
    assert [k.type for k in s.sinks] == ["slack"]


def test_explicit_overrides_merge_into_the_yaml_sections(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, YAML), kafka={"bootstrap_servers": "override:1"}, http={"port": 0})
    assert s.kafka.bootstrap_servers == "override:1"
    assert s.kafka.group_id == "from-yaml", "an override of one key must not wipe the YAML's other keys"
    assert s.http.port == 0
    assert s.windows.size_ms == 500


# -- errors that say what to do -----------------------------------------------------------


def test_config_error_is_a_modelmedic_error() -> None:
    """The CLI prints ModelmedicErrors as one line instead of a traceback."""
    assert issubclass(ConfigError, ModelmedicError)


def test_bad_value_in_yaml_names_the_field_path_and_the_env_var(tmp_path: Path) -> None:
    path = write(tmp_path, "windows:\n  size_ms: fast\n")
    message = config_error(path)
    assert message.startswith(f"invalid configuration ({path} and environment):")
    assert "windows.size_ms: Input should be a valid integer" in message
    assert "got 'fast'" in message
    assert "MODELMEDIC_WINDOWS__SIZE_MS" in message


def test_bad_value_in_env_names_the_field_path_and_the_env_var(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MODELMEDIC_DETECTION__THRESHOLD", "1.5")
    message = config_error()
    assert "invalid configuration (environment and defaults):" in message
    assert "detection.threshold: Input should be less than 1" in message
    assert "got '1.5'" in message and "MODELMEDIC_DETECTION__THRESHOLD" in message


@pytest.mark.parametrize(
    ("overrides", "path", "fragment"),
    [
        ({"windows": {"size_ms": 5}}, "windows.size_ms", "greater than or equal to 10"),
        ({"detection": {"threshold": 1.0}}, "detection.threshold", "less than 1"),
        ({"detection": {"trigger_windows": 0}}, "detection.trigger_windows", "greater than or equal to 1"),
        ({"detection": {"latency_ratio": 1.0}}, "detection.latency_ratio", "greater than 1"),
        ({"http": {"port": 70000}}, "http.port", "less than or equal to 65535"),
        ({"kafka": {"partitions": 0}}, "kafka.partitions", "greater than or equal to 1"),
        ({"kafka": {"security_protocol": "TLS"}}, "kafka.security_protocol", "'PLAINTEXT', 'SSL'"),
        ({"log_level": "TRACE"}, "log_level", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ({"sinks": [{"type": "webhook", "url": "http://x", "retries": 11}]}, "sinks.0.retries", "less than or equal to 10"),
    ],
)
def test_out_of_bounds_values_fail_with_the_field(overrides: dict, path: str, fragment: str) -> None:
    message = config_error(**overrides)
    assert f"  {path}: " in message and fragment in message, message


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    message = config_error(write(tmp_path, "windows:\n  size_ms: 1\ndetection:\n  recover_windows: 0\n"))
    assert "windows.size_ms" in message and "detection.recover_windows" in message


def test_sasl_without_credentials_fails_with_the_fix() -> None:
    message = config_error(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"})
    assert "security_protocol=SASL_SSL needs sasl_mechanism, sasl_username and sasl_password" in message
    assert "MODELMEDIC_KAFKA__SASL_USERNAME" in message
    complete = load_settings(kafka={"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
                                    "sasl_username": "mm", "sasl_password": "pw"})
    assert complete.kafka.sasl_username == "mm"


def test_secrets_never_appear_in_error_messages() -> None:
    message = config_error(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_password": "hunter2"})
    assert "hunter2" not in message and "'sasl_password': '<redacted>'" in message
    message = config_error(kafka={"sasl_password": 1234})
    assert "1234" not in message and "kafka.sasl_password" in message
    message = config_error(sinks=[{"type": "pagerduty", "url": "https://hooks.example/T0/B0/s3cr3t"}])
    assert "s3cr3t" not in message and "sinks.0" in message
    message = config_error(http={"api_token": 86753090})
    assert "86753090" not in message and "http.api_token" in message


def test_api_token_is_kept_secret_in_repr(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MODELMEDIC_HTTP__API_TOKEN", "tok-123")
    s = load_settings()
    assert s.http.api_token is not None and s.http.api_token.get_secret_value() == "tok-123"
    assert "tok-123" not in repr(s) and "tok-123" not in str(s.model_dump())


def test_ssl_file_that_does_not_exist_fails(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    message = config_error(kafka={"security_protocol": "SSL", "ssl_cafile": str(missing)})
    assert f"ssl_cafile={missing} does not exist: point it at a readable PEM file" in message
    missing.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_settings(kafka={"security_protocol": "SSL", "ssl_cafile": str(missing)}).kafka.ssl_cafile == missing


def test_pagerduty_sink_without_routing_key_fails() -> None:
    message = config_error(sinks=[{"type": "webhook", "url": "http://x"}, {"type": "pagerduty", "url": "https://events"}])
    assert "sinks.1: Value error, a pagerduty sink needs routing_key" in message
    s = load_settings(sinks=[{"type": "pagerduty", "url": "https://events", "routing_key": "R0123"}])
    assert s.sinks[0].routing_key == "R0123"


def test_sink_needs_a_known_type_and_a_url() -> None:
    message = config_error(sinks=[{"type": "email"}])
    assert "sinks.0.type" in message and "sinks.0.url: Field required" in message


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("kafak:\n  bootstrap_servers: x\n", "kafak"),
        ("kafka:\n  bootstrap_server: x\n", "kafka.bootstrap_server"),
        ("detection:\n  treshold: 0.99\n", "detection.treshold"),
        ("sinks:\n  - type: webhook\n    url: http://x\n    retry: 2\n", "sinks.0.retry"),
    ],
)
def test_unknown_key_fails(tmp_path: Path, text: str, path: str) -> None:
    message = config_error(write(tmp_path, text))
    assert f"  {path}: Extra inputs are not permitted" in message


def test_misspelled_nested_env_var_fails(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MODELMEDIC_KAFKA__BOOTSTRAP_SERVER", "x:1")
    message = config_error()
    assert "kafka.bootstrap_server: Extra inputs are not permitted" in message
    assert "MODELMEDIC_KAFKA__BOOTSTRAP_SERVER" in message


def test_env_list_that_is_not_json_fails_clearly(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MODELMEDIC_SINKS", '[{"type": "webhook",')
    message = config_error()
    assert 'error parsing value for field "sinks"' in message
    assert "must be valid JSON" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert config_error(path) == f"config file {path} not found: pass an existing YAML file to --config"


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka: [unclosed\n")
    message = config_error(path)
    assert message == f"config file {path} is not valid YAML: expected ',' or ']', but got '<stream end>' at line 2, column 1"


def test_invalid_yaml_does_not_quote_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  security_protocol: SASL_SSL\n  sasl_password: hunter2: x\n")
    message = config_error(path)
    assert message == f"config file {path} is not valid YAML: mapping values are not allowed here at line 3, column 25"
    assert "hunter2" not in message


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str"), ("42\n", "int")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path, text)
    assert config_error(path) == f"config file {path} must hold a mapping at the top level, not {kind}"


def test_unreadable_file(tmp_path: Path) -> None:
    assert "cannot be read" in config_error(tmp_path)  # a directory
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00k")
    assert config_error(binary).startswith(f"config file {binary} cannot be read")
