"""Which origins the hub serves (OriginPolicy) and how HubConfig reads them and the budgets."""

from __future__ import annotations

import pytest

from hereabouts.config import HubConfig
from hereabouts.errors import ConfigError
from hereabouts.sites.origins import (
    OriginInvalid,
    OriginMissing,
    OriginNotAllowed,
    OriginPolicy,
    is_loopback_host,
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.10", False),
        ("hub.example", False),
        (None, False),
    ],
)
def test_loopback_hosts(host: str | None, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_default_any_origin_on_loopback_none_elsewhere() -> None:
    local = OriginPolicy.for_hub(HubConfig(), listen_host="127.0.0.1")
    assert local.counting_origin("https://Anything.Example:443") == "https://anything.example"
    public = OriginPolicy.for_hub(HubConfig(), listen_host="0.0.0.0")
    assert public.serves_nobody
    with pytest.raises(OriginNotAllowed):
        public.counting_origin("https://anything.example")
    unknown = OriginPolicy.for_hub(HubConfig(), listen_host=None)  # not known: not loopback
    with pytest.raises(OriginNotAllowed):
        unknown.counting_origin("http://127.0.0.1:8765")


def test_listed_origins_only_and_star_for_any() -> None:
    settings = HubConfig(allowed_origins=("https://good.example", "HTTPS://Shop.Example:443/"))
    for host in ("127.0.0.1", "0.0.0.0"):  # a list applies on loopback too
        policy = OriginPolicy.for_hub(settings, listen_host=host)
        assert policy.counting_origin("https://good.example") == "https://good.example"
        assert policy.counting_origin("https://shop.example") == "https://shop.example"
        with pytest.raises(OriginNotAllowed) as refused:
            policy.counting_origin("https://evil.example")
        assert refused.value.reason == "origin_not_allowed"
        with pytest.raises(OriginNotAllowed):
            policy.counting_origin("http://good.example")  # another scheme, another origin
    anywhere = OriginPolicy.for_hub(HubConfig(allowed_origins=("*",)), listen_host="0.0.0.0")
    assert anywhere.any_origin
    assert anywhere.counting_origin("https://x.example") == "https://x.example"


def test_missing_and_opaque_origins_are_refused_everywhere() -> None:
    policy = OriginPolicy(allowed=None)
    with pytest.raises(OriginMissing) as missing:
        policy.counting_origin(None)
    assert missing.value.reason == "origin_missing"
    with pytest.raises(OriginMissing):
        policy.counting_origin("  ")
    for header in ("null", "not a url", "file:///etc/passwd", "javascript:alert(1)"):
        with pytest.raises(OriginInvalid) as invalid:
            policy.counting_origin(header)
        assert invalid.value.reason == "origin_invalid"


def test_an_alias_counts_in_the_rooms_of_the_origin_it_names() -> None:
    settings = HubConfig(
        allowed_origins=("https://example.com", "https://www.example.com"),
        origin_aliases=(("https://www.example.com", "https://example.com"),),
    )
    policy = OriginPolicy.for_hub(settings, listen_host="0.0.0.0")
    assert policy.counting_origin("https://www.example.com") == "https://example.com"
    assert policy.counting_origin("https://example.com") == "https://example.com"
    # The alias does not admit its page origin by itself.
    lone = OriginPolicy.for_hub(
        HubConfig(
            allowed_origins=("https://example.com",),
            origin_aliases=(("https://www.example.com", "https://example.com"),),
        ),
        listen_host="0.0.0.0",
    )
    with pytest.raises(OriginNotAllowed):
        lone.counting_origin("https://www.example.com")


def test_describe_names_no_origin() -> None:
    policy = OriginPolicy(allowed=["https://secret-site.example"])
    assert "secret-site" not in repr(policy.describe())
    assert policy.describe() == {"any_origin": False, "allowed_origins": 1, "aliases": 0}


def test_bad_configured_origins_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        OriginPolicy(allowed=["null"])
    with pytest.raises(ConfigError):
        OriginPolicy(allowed=None, aliases={"https://a.example": "ftp://b.example"})


def test_hub_config_reads_origins_budgets_and_pow_from_the_environment() -> None:
    config = HubConfig.from_env(
        {
            "PRESENCE_HUB_ALLOWED_ORIGINS": " https://a.example , https://b.example,",
            "PRESENCE_HUB_ORIGIN_ALIASES": "https://www.a.example=https://a.example",
            "PRESENCE_HUB_MAX_CONNECTIONS_PER_ADDRESS": "8",
            "PRESENCE_HUB_ADDRESS_EVENTS_PER_S": "2.5",
            "PRESENCE_HUB_ADDRESS_EVENT_BURST": "10",
            "PRESENCE_HUB_JOINS_PER_ADDRESS": "5",
            "PRESENCE_HUB_POW_BITS": "14",
        }
    )
    assert config.allowed_origins == ("https://a.example", "https://b.example")
    assert config.origin_aliases == (("https://www.a.example", "https://a.example"),)
    assert config.max_connections_per_address == 8
    assert config.address_events_per_s == 2.5
    assert config.address_event_burst == 10
    assert config.joins_per_address == 5
    assert config.pow_bits == 14
    defaults = HubConfig.from_env({})
    assert defaults == HubConfig()
    assert (defaults.allowed_origins, defaults.pow_bits) == ((), 0)
    assert defaults.max_connections_per_address == 32
    assert defaults.joins_per_address == 64


@pytest.mark.parametrize(
    "env",
    [
        {"PRESENCE_HUB_ORIGIN_ALIASES": "https://www.a.example"},
        {"PRESENCE_HUB_ORIGIN_ALIASES": "=https://a.example"},
        {"PRESENCE_HUB_POW_BITS": "21"},
        {"PRESENCE_HUB_POW_BITS": "-1"},
        {"PRESENCE_HUB_JOINS_PER_ADDRESS": "0"},
        {"PRESENCE_HUB_MAX_CONNECTIONS_PER_ADDRESS": "many"},
        {"PRESENCE_HUB_ADDRESS_EVENTS_PER_S": "fast"},
        {"PRESENCE_HUB_ADDRESS_EVENTS_PER_S": "0"},
    ],
)
def test_bad_hub_settings_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        HubConfig.from_env(env)


def test_the_hubs_own_origin_is_always_served() -> None:
    public = OriginPolicy.for_hub(HubConfig(), listen_host="0.0.0.0")
    own = public.counting_origin("https://hub.example", host="hub.example")
    assert own == "https://hub.example"
    assert public.counting_origin("http://hub.example:8765", host="HUB.example:8765")
    assert public.counting_origin("http://[::1]:8765", host="[::1]:8765")
    for origin, host in [
        ("https://evil.example", "hub.example"),  # a page elsewhere
        ("https://hub.example:8443", "hub.example"),  # another port, another origin
        ("http://hub.example:8765", "hub.example:8766"),
        ("https://hub.example", None),
        ("https://hub.example", "hub.example/path"),
        ("https://hub.example", "user@hub.example"),
    ]:
        with pytest.raises(OriginNotAllowed):
            public.counting_origin(origin, host=host)
