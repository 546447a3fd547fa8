"""Settings come from the environment; a malformed value is one line naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.settings import ConfigError, load_settings, require, to_environ


def test_defaults_leave_every_service_to_the_embedded_stack() -> None:
    s = load_settings({})
    assert s.kafka_bootstrap_servers is None and s.database_url is None
    assert s.partitions == 6 and s.tax_fallback_policy == "fallback_rates"
    assert s.kafka_isolation_level == "read_committed"  # what real Kafka wants (ADR 0009)


def test_values_are_parsed_and_typed() -> None:
    s = load_settings(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9093",
            "SAGA_PARTITIONS": "12",
            "SAGA_TESTCONTAINERS": "yes",
            "TAX_FALLBACK_POLICY": "block",
            "KAFKA_ISOLATION_LEVEL": "read_uncommitted",
        }
    )
    assert s.kafka_isolation_level == "read_uncommitted"
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9093"
    assert s.partitions == 12 and s.testcontainers is True and s.tax_fallback_policy == "block"


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("SAGA_PARTITIONS", "six", "invalid literal"),
        ("SAGA_PARTITIONS", "0", "between 1 and 1024"),
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("TAX_FALLBACK_POLICY", "guess", "block, fallback_rates"),
        ("SAGA_TESTCONTAINERS", "maybe", "true/false"),
        ("KAFKA_ISOLATION_LEVEL", "read_mostly", "read_committed, read_uncommitted"),
    ],
)
def test_a_malformed_value_is_one_line_naming_the_variable(var: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({var: value})
    message = str(caught.value)
    assert message.startswith(f"{var}={value!r} is invalid")
    assert says in message and "\n" not in message


def test_the_embedded_broker_is_apache_kafka_unless_tansu_is_chosen() -> None:
    assert load_settings({}).embedded_broker == "kafka"
    assert load_settings({"SAGA_BROKER": "tansu"}).embedded_broker == "tansu"
    with pytest.raises(ConfigError, match="SAGA_BROKER"):
        load_settings({"SAGA_BROKER": "redpanda"})


def test_secrets_have_no_usable_default() -> None:
    s = load_settings({})
    assert s.jwt_secret is None and s.stripe_webhook_secrets == () and s.stripe_api_key is None


def test_a_short_jwt_secret_is_refused_naming_the_variable_and_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"JWT_SECRET": "short-secret"})
    message = str(caught.value)
    assert message.startswith("JWT_SECRET=<hidden> is invalid: must be at least 32 bytes")
    assert "short-secret" not in message and "\n" not in message
    assert load_settings({"JWT_SECRET": "x" * 32}).jwt_secret == "x" * 32


def test_one_webhook_secret_or_a_rotation_list_or_both() -> None:
    assert load_settings({"STRIPE_WEBHOOK_SECRET": "whsec_a"}).stripe_webhook_secrets == (
        "whsec_a",
    )
    rotation = load_settings({"STRIPE_WEBHOOK_SECRETS": "whsec_new, whsec_old"})
    assert rotation.stripe_webhook_secrets == ("whsec_new", "whsec_old")
    both = load_settings(
        {"STRIPE_WEBHOOK_SECRET": "whsec_a", "STRIPE_WEBHOOK_SECRETS": "whsec_b,whsec_a"}
    )
    assert both.stripe_webhook_secrets == ("whsec_a", "whsec_b")
    with pytest.raises(ConfigError, match=r"^STRIPE_WEBHOOK_SECRET=<hidden> is invalid"):
        load_settings({"STRIPE_WEBHOOK_SECRET": " "})


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "JWT_SECRET is not set"),
        ({"JWT_SECRET": "j" * 40}, "STRIPE_WEBHOOK_SECRET or STRIPE_WEBHOOK_SECRETS is not set"),
    ],
)
def test_require_names_the_missing_variable_in_one_line(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        require(load_settings(env), "jwt_secret", "stripe_webhook_secrets", who="the API")
    assert str(caught.value).startswith(names) and "\n" not in str(caught.value)
    assert "the API refuses to start" in str(caught.value)


def test_to_environ_round_trips_through_load_settings() -> None:
    s = load_settings(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
            "JWT_SECRET": "j" * 40,
            "STRIPE_WEBHOOK_SECRETS": "whsec_a,whsec_b",
            "SAGA_TESTCONTAINERS": "1",
            "SAGA_PROJECTOR_METRICS_PORT": "9400",
            "JAVA_HOME": "/opt/java",
        }
    )
    env = to_environ(s)
    assert "STRIPE_WEBHOOK_SECRET" not in env  # the list carries every secret of a rotation
    assert load_settings(env) == s


def test_an_env_file_fills_only_what_the_environment_leaves_unset(tmp_path: Path) -> None:
    env_file = tmp_path / "saga.env"
    env_file.write_text(
        "export JWT_SECRET='" + "f" * 40 + "'\nexport SAGA_PARTITIONS=3\n# a comment\n"
    )
    s = load_settings({"SAGA_PARTITIONS": "9"}, env_file=env_file)
    assert s.jwt_secret == "f" * 40 and s.partitions == 9
    assert load_settings({}, env_file=tmp_path / "missing.env") == load_settings({})


def test_secrets_never_show_in_the_settings_repr() -> None:
    s = load_settings(
        {
            "JWT_SECRET": "jwt-" + "q" * 40,
            "STRIPE_WEBHOOK_SECRET": "whsec_visible",
            "STRIPE_API_KEY": "sk_live_visible",
            "TAXJAR_API_KEY": "taxjar-visible",
        }
    )
    shown = repr(s)
    assert "q" * 40 not in shown and "visible" not in shown


def test_the_api_binds_loopback_unless_told_otherwise() -> None:
    assert load_settings({}).api_host == "127.0.0.1"


def test_paypal_settings_and_no_secret_default() -> None:
    assert load_settings({}).paypal_client_secret is None
    s = load_settings(
        {
            "PAYPAL_CLIENT_ID": "AeB-client",
            "PAYPAL_CLIENT_SECRET": "EPP-secret-visible",
            "PAYPAL_API_BASE": "https://api-m.sandbox.paypal.com",
            "PAYPAL_WEBHOOK_ID": "8PT597110X687430LKGECATA",
            "PAYPAL_CERT_HOSTS": "api.sandbox.paypal.com, api-m.sandbox.paypal.com",
        }
    )
    assert (s.paypal_client_id, s.paypal_client_secret) == ("AeB-client", "EPP-secret-visible")
    assert s.paypal_api_base == "https://api-m.sandbox.paypal.com"
    assert s.paypal_webhook_id == "8PT597110X687430LKGECATA"
    assert s.paypal_cert_hosts == ("api.sandbox.paypal.com", "api-m.sandbox.paypal.com")
    assert "visible" not in repr(s)
    assert load_settings(to_environ(s)) == s


def test_log_format_and_metrics_settings() -> None:
    defaults = load_settings({})
    assert defaults.log_format == "auto" and defaults.metrics_port is None
    assert defaults.metrics_host == "127.0.0.1"
    s = load_settings({"LOG_FORMAT": "json", "METRICS_PORT": "0", "METRICS_HOST": "10.0.0.5"})
    assert (s.log_format, s.metrics_port, s.metrics_host) == ("json", 0, "10.0.0.5")
    assert load_settings({"METRICS_PORT": "9400"}).metrics_port == 9400
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        load_settings({"LOG_FORMAT": "xml"})
    with pytest.raises(ConfigError, match="METRICS_PORT"):
        load_settings({"METRICS_PORT": "70000"})
    assert to_environ(s)["METRICS_PORT"] == "0"
