"""Settings map one to one onto aiokafka's connection options (TLS, SASL)."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from modelmedic.config import load_settings
from modelmedic.errors import ConfigError
from modelmedic.kafka import client_options


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
                    "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem")], check=True, capture_output=True)
    return str(d / "ca.pem")


def test_plaintext_by_default():
    options = client_options(load_settings().kafka)
    assert options == {"bootstrap_servers": "127.0.0.1:9092", "client_id": "modelmedic", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_with_a_private_ca(ca_file):
    kafka = load_settings(kafka={
        "bootstrap_servers": "b1:9093,b2:9093", "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "modelmedic", "sasl_password": "pw", "ssl_cafile": ca_file,
    }).kafka
    options = client_options(kafka)
    assert options["bootstrap_servers"] == "b1:9093,b2:9093"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512", "modelmedic", "pw")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert any(c["subject"] == ((("commonName", "test-ca"),),) for c in context.get_ca_certs())


def test_mutual_tls_loads_the_client_certificate(ca_file):
    key = ca_file.replace("ca.pem", "ca.key")
    options = client_options(load_settings(kafka={"security_protocol": "SSL", "ssl_cafile": ca_file,
                                                  "ssl_certfile": ca_file, "ssl_keyfile": key}).kafka)
    assert "sasl_mechanism" not in options and isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_without_credentials_fails_at_start_with_the_fix():
    with pytest.raises(ConfigError, match="needs sasl_mechanism, sasl_username and sasl_password"):
        load_settings(kafka={"security_protocol": "SASL_PLAINTEXT"})
