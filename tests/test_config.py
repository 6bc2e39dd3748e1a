"""Config: documented defaults, presets, and the cross-field rules that keep them sane."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hereabouts import config as config_module
from hereabouts.config import (
    HTTP_CONNECTIONS_CEILING,
    Config,
    HeartbeatConfig,
    HttpLimits,
    HubConfig,
    LedgerConfig,
    ProjectionConfig,
    WireLimits,
    production,
    resolve_home,
)
from hereabouts.errors import ConfigError


def test_production_defaults_match_the_documentation() -> None:
    config = production("/tmp/x")
    assert config.wire.max_event_bytes == 16 * 1024
    assert config.wire.max_future_skew_s == 30
    assert config.projection.plaza_missing_after_s == 300
    assert config.projection.mesh_missing_after_s == 3600
    assert (config.trust.admit_burst, config.trust.admit_per_s) == (256, 10)
    assert (config.howdy.budget_burst, config.howdy.budget_refill_s) == (10, 6)
    assert config.ledger.retention_s == 24 * 3600
    assert (config.heartbeat.min_interval_s, config.heartbeat.max_interval_s) == (30, 120)


def test_testing_preset_is_valid_and_fast() -> None:
    config = config_module.testing("/tmp/x")
    assert config.projection.plaza_missing_after_s < 60


def test_missing_threshold_must_cover_two_and_a_half_heartbeats() -> None:
    # The seed design: a 300 s heartbeat against a 300 s threshold.
    with pytest.raises(ConfigError, match=r"2\.5"):
        Config(
            heartbeat=HeartbeatConfig(min_interval_s=30, max_interval_s=300),
            projection=ProjectionConfig(plaza_missing_after_s=300),
        )


def test_retention_must_cover_the_longest_threshold() -> None:
    with pytest.raises(ConfigError, match="retention"):
        Config(ledger=LedgerConfig(retention_s=60))


@pytest.mark.parametrize(
    "build",
    [
        lambda: WireLimits(max_event_bytes=0),
        lambda: WireLimits(max_future_skew_s=-1),
        lambda: HeartbeatConfig(min_interval_s=60, max_interval_s=30),
        lambda: HeartbeatConfig(jitter_fraction=1.5),
        lambda: ProjectionConfig(plaza_missing_after_s=0),
        lambda: LedgerConfig(retention_s=-5),
    ],
)
def test_out_of_range_values_are_config_errors(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]


def test_home_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEREABOUTS_HOME", str(tmp_path / "env"))
    assert resolve_home(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_home() == tmp_path / "env"
    monkeypatch.delenv("HEREABOUTS_HOME")
    assert resolve_home() == Path("~/.hereabouts").expanduser()


def test_hub_config_reads_its_environment_and_flag() -> None:
    hub = HubConfig.from_env(
        {
            "PRESENCE_HUB_MAX_CONNECTIONS": "20000",
            "PRESENCE_HUB_MAX_ROOMS": "50",
            "HEREABOUTS_PRESENCE_GHOST_MODE_HARD_OFF": "1",
        }
    )
    assert hub == HubConfig(max_connections=20_000, max_rooms=50, ghost_mode_hard_off=True)
    assert HubConfig.from_env({}) == HubConfig()
    with pytest.raises(ConfigError, match="PRESENCE_HUB_MAX_CONNECTIONS"):
        HubConfig.from_env({"PRESENCE_HUB_MAX_CONNECTIONS": "lots"})
    with pytest.raises(ConfigError, match="HARD_OFF"):
        HubConfig.from_env({"HEREABOUTS_PRESENCE_GHOST_MODE_HARD_OFF": "maybe"})
    with pytest.raises(ConfigError):
        HubConfig(max_connections=0)


@pytest.mark.parametrize(
    ("open_files", "cap"),
    [
        (1024, 768),  # the usual soft limit: all but the 256 reserved
        (256, 128),  # small limits keep half for everything else
        (100, 50),
        (1, 1),  # never zero: the server must be able to answer someone
        (4352, HTTP_CONNECTIONS_CEILING),
        (1 << 20, HTTP_CONNECTIONS_CEILING),  # plenty of descriptors, bounded memory
    ],
)
def test_the_connection_cap_follows_the_open_files_limit(open_files: int, cap: int) -> None:
    assert HttpLimits().connection_cap(open_files) == cap


def test_an_explicit_connection_cap_wins_over_the_derived_one() -> None:
    assert HttpLimits(max_connections=10).connection_cap(1 << 20) == 10
    assert HttpLimits(max_connections=5000).connection_cap(1024) == 5000


def test_http_limits_read_their_environment() -> None:
    limits = HttpLimits.from_env(
        {
            "HEREABOUTS_HTTP_HEADER_TIMEOUT": "2.5",
            "HEREABOUTS_HTTP_BODY_TIMEOUT": "3",
            "HEREABOUTS_HTTP_KEEP_ALIVE_TIMEOUT": "1",
            "HEREABOUTS_HTTP_MAX_CONNECTIONS": "500",
        }
    )
    assert limits == HttpLimits(
        header_timeout_s=2.5, body_timeout_s=3, keep_alive_timeout_s=1, max_connections=500
    )
    assert HttpLimits.from_env({}) == HttpLimits()
    assert HttpLimits.from_env({"HEREABOUTS_HTTP_MAX_CONNECTIONS": " "}).max_connections is None
    with pytest.raises(ConfigError, match="HEREABOUTS_HTTP_HEADER_TIMEOUT"):
        HttpLimits.from_env({"HEREABOUTS_HTTP_HEADER_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="max_connections"):
        HttpLimits.from_env({"HEREABOUTS_HTTP_MAX_CONNECTIONS": "0"})
    with pytest.raises(ConfigError, match="fd_reserve"):
        HttpLimits(fd_reserve=-1)


def test_http_limits_defaults_match_the_documentation() -> None:
    limits = production("/tmp/x").http
    assert (limits.header_timeout_s, limits.body_timeout_s) == (10, 10)
    assert limits.keep_alive_timeout_s == 5
    assert limits.max_connections is None and limits.fd_reserve == 256


def test_the_mesh_threshold_must_cover_heartbeats_and_propagation() -> None:
    from hereabouts.config import MeshConfig, ProjectionConfig
    from hereabouts.core.meshmath import propagation_s

    base = config_module.production()
    assert base.replace(mesh=MeshConfig(enabled=True)).mesh.mode == "hybrid"
    assert base.replace(mesh=MeshConfig(plaza=False)).mesh.mode == "mesh"
    needed = 2.5 * base.heartbeat.max_interval_s + propagation_s(10_000, 30.0)
    with pytest.raises(ConfigError, match="too short for a mesh of 10000 nodes"):
        base.replace(mesh=MeshConfig(enabled=True, expected_size=10_000))
    fine = base.replace(
        mesh=MeshConfig(enabled=True, expected_size=10_000),
        projection=ProjectionConfig(mesh_missing_after_s=needed),
        ledger=dataclasses.replace(base.ledger, retention_s=max(needed, base.ledger.retention_s)),
    )
    assert fine.projection.mesh_missing_after_s == needed
    # A plaza-only node is not held to the mesh's rule.
    assert base.replace(mesh=MeshConfig(expected_size=10_000)).mesh.mode == "plaza"
