"""Consents and ghost mode in a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hereabouts.config import SitesConfig
from hereabouts.errors import ConfigError
from hereabouts.sites.store import SiteStore, store_path


def test_consent_persists_per_normalised_origin_without_storing_the_origin(
    tmp_path: Path,
) -> None:
    store = SiteStore.in_home(tmp_path)
    assert not store.granted("https://example.com")
    store.grant("HTTPS://Example.com:443/page")
    store.close()
    again = SiteStore.in_home(tmp_path)
    assert again.granted("https://example.com")
    assert not again.granted("https://example.org")
    again.revoke("https://example.com/")
    assert not again.granted("https://example.com")
    again.grant("https://kept.example")
    again.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"example" not in raw
    assert store_path(tmp_path).exists()


def test_ghost_mode_persists_and_has_a_configurable_default(tmp_path: Path) -> None:
    store = SiteStore.in_home(tmp_path)
    assert store.ghost is False
    store.set_ghost(True)
    store.close()
    assert SiteStore.in_home(tmp_path).ghost is True
    other = tmp_path / "other"
    assert SiteStore.in_home(other, ghost_default=True).ghost is True
    flipped = SiteStore.in_home(other, ghost_default=True)
    flipped.set_ghost(False)
    assert SiteStore.in_home(other, ghost_default=True).ghost is False


def test_sites_config_reads_presence_environment() -> None:
    config = SitesConfig.from_env(
        {
            "PRESENCE_DID_DURATION": "120",
            "PRESENCE_HEARTBEAT_INTERVAL": "5",
            "PRESENCE_STALE_TIMEOUT": "15",
            "PRESENCE_GHOST_MODE_DEFAULT": "true",
            "PRESENCE_MIN_COUNT": "3",
        }
    )
    assert config.did_duration_s == 120 and config.heartbeat_interval_s == 5
    assert config.stale_timeout_s == 15 and config.ghost_mode_default and config.min_count == 3
    assert SitesConfig.from_env({}) == SitesConfig()


def test_sites_config_refuses_timings_that_would_break_exact_counts() -> None:
    with pytest.raises(ConfigError):
        SitesConfig(heartbeat_interval_s=30, stale_timeout_s=30)
    with pytest.raises(ConfigError):  # old DIDs would go stale inside the settle window
        SitesConfig(heartbeat_interval_s=10, stale_timeout_s=12)
    with pytest.raises(ConfigError):
        SitesConfig(did_duration_s=4, heartbeat_interval_s=1, stale_timeout_s=20)
    with pytest.raises(ConfigError):
        SitesConfig.from_env({"PRESENCE_MIN_COUNT": "many"})
