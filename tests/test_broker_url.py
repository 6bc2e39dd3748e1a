"""Broker URLs: hosts, TLS, credentials, protocol, and one clear line for bad ones."""

from __future__ import annotations

import pytest

from hereabouts.broker_url import (
    BROKER_PASSWORD_ENV,
    MAX_BROKER_HOSTS,
    BadBrokerUrl,
    BrokerHost,
    combine_broker_urls,
    parse_broker_url,
)
from hereabouts.config import NodeConfig
from hereabouts.errors import ConfigError
from hereabouts.transports.mqtt import MqttSettings


def test_one_host_with_default_ports() -> None:
    assert parse_broker_url("mqtt://broker").hosts == (BrokerHost("broker", 1883),)
    secure = parse_broker_url("mqtts://broker")
    assert secure.tls and secure.hosts == (BrokerHost("broker", 8883),)
    assert parse_broker_url("mqtt://broker:1884/").hosts == (BrokerHost("broker", 1884),)


def test_several_hosts_in_order_with_ipv6_and_a_pinned_protocol() -> None:
    url = parse_broker_url("mqtt://a:1,b,[::1]:3?protocol=3.1.1")
    assert url.hosts == (BrokerHost("a", 1), BrokerHost("b", 1883), BrokerHost("::1", 3))
    assert url.protocol == "3.1.1"
    assert url.redacted() == "mqtt://a:1,b:1883,[::1]:3?protocol=3.1.1"
    settings = MqttSettings.from_url(url)
    assert settings.addresses == (("a", 1), ("b", 1883), ("::1", 3))
    assert settings.protocol == "3.1.1"
    assert settings.endpoint(2) == "mqtt://[::1]:3"


def test_credentials_are_decoded_and_never_shown() -> None:
    url = parse_broker_url("mqtts://alice:s%40cr%2Ft@h:8883")
    assert (url.username, url.password) == ("alice", "s@cr/t")
    assert url.redacted() == "mqtts://alice:***@h:8883"
    assert "s@cr/t" not in repr(url) and "s%40cr" not in str(url)
    assert parse_broker_url(url.url()) == url  # the full form round-trips
    settings = MqttSettings.from_url(url)
    assert "s@cr/t" not in repr(settings)
    assert "s@cr/t" not in repr(NodeConfig(broker_url=url.url()))


def test_password_from_the_environment_and_the_url_wins() -> None:
    env = {BROKER_PASSWORD_ENV: "from-env"}
    assert combine_broker_urls(["mqtt://alice@h"], env=env).password == "from-env"
    assert combine_broker_urls(["mqtt://alice:url@h"], env=env).password == "url"
    with pytest.raises(BadBrokerUrl, match="names no user"):
        combine_broker_urls(["mqtt://h"], env=env)
    assert combine_broker_urls(["mqtt://h"], env={}).password is None


def test_repeated_urls_append_hosts_and_must_agree() -> None:
    url = combine_broker_urls(["mqtt://u@a:1", "mqtt://b:2,a:1?protocol=5"], env={})
    assert url.hosts == (BrokerHost("a", 1), BrokerHost("b", 2))
    assert (url.username, url.protocol) == ("u", "5")
    with pytest.raises(BadBrokerUrl, match="mix mqtt:// and mqtts://"):
        combine_broker_urls(["mqtt://a", "mqtts://b"], env={})
    with pytest.raises(BadBrokerUrl, match="disagree on their passwords") as refused:
        combine_broker_urls(["mqtt://u:one@a", "mqtt://u:two@b"], env={})
    assert "one" not in str(refused.value) and "two" not in str(refused.value)
    with pytest.raises(BadBrokerUrl, match="disagree on their protocol"):
        combine_broker_urls(["mqtt://a?protocol=5", "mqtt://b?protocol=3.1.1"], env={})


BAD = [
    ("http://h", "not a broker scheme"),
    ("h:1883", "does not start with mqtt://"),
    ("mqtt://", "has no host"),
    ("mqtt://h:x", "its port is not a number"),
    ("mqtt://h:0", "its port is not in 1-65535"),
    ("mqtt://h:70000", "its port is not in 1-65535"),
    ("mqtt://[::1", "closing ]"),
    ("mqtt://::1:1883", "needs brackets"),
    ("mqtt://a,,b", "empty host"),
    ("mqtt://:secret@h", "no user name"),
    ("mqtt://u:secret@h/path", "a path"),
    ("mqtt://u:secret@h#frag", "#fragment"),
    ("mqtt://h?protocol=4", "is not 3.1.1, 5 or auto"),
    ("mqtt://h?tls=1", "unknown option"),
    ("mqtt://" + ",".join(f"h{n}" for n in range(MAX_BROKER_HOSTS + 1)), "at most"),
]


@pytest.mark.parametrize(("text", "problem"), BAD, ids=[b[0][:30] for b in BAD])
def test_bad_urls_are_one_line_saying_why_without_the_password(text: str, problem: str) -> None:
    with pytest.raises(BadBrokerUrl) as refused:
        parse_broker_url(text)
    message = str(refused.value)
    assert problem in message and "\n" not in message
    assert "secret" not in message
    assert isinstance(refused.value, ConfigError)


def test_node_config_checks_the_tls_files_go_with_mqtts() -> None:
    with pytest.raises(ConfigError, match="write mqtts://"):
        NodeConfig(broker_url="mqtt://h", broker_ca="/etc/ssl/certs/ca-certificates.crt")
    with pytest.raises(ConfigError, match="go together"):
        NodeConfig(broker_url="mqtts://h", broker_cert="c.pem")
    with pytest.raises(ConfigError, match="needs an mqtts:// broker"):
        NodeConfig(broker_ca="ca.pem")
    NodeConfig(broker_url="mqtts://h", broker_cert="c.pem", broker_key="k.pem")
