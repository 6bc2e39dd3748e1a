"""The plaza scenario's settings: what a ``kind = "plaza"`` TOML file may say.

Every key has a default here, documented where it is defined, so a scenario file states
only what it is about. Unknown keys are refused (:class:`~hereabouts.sim.scenario.Settings`).

Example (``broker-outage``)::

    kind = "plaza"
    nodes = 1000
    duration_s = 600
    [fleet]
    settled = true           # the fleet has been up for a while when the run starts
    [[outage]]
    at_s = 60
    for_s = 60
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hereabouts.config import HowdyConfig
from hereabouts.sim.scenario import RunOptions, Scenario, ScenarioError, Settings


@dataclass(frozen=True, slots=True)
class Outage:
    """The broker (or one member of a cluster) is gone from ``at_s`` for ``for_s``."""

    at_s: float
    for_s: float
    share: float = 1.0
    """Share of the nodes it cuts off: 1 is the whole broker; a third is one member of a
    three-member cluster, whose nodes fail over to another member."""
    wills: bool = False
    """Whether the cut-off nodes' wills are published. A stopped broker publishes none, and
    neither does a cluster for a dead member's connections (docs/deploying.md)."""
    failover_s: float = 0.0
    """With ``share < 1``: cut-off nodes reconnect to another member after a uniform delay
    up to this (measured on the RabbitMQ cluster: 0.8-1.4 s). With ``share = 1`` they retry
    the broker with the shipped backoff until it is back."""


@dataclass(frozen=True, slots=True)
class PlazaSettings:
    """One plaza run, after defaults and command-line overrides."""

    nodes: int
    seed: int
    duration_s: float = 600.0
    """Simulated time."""
    settled: bool = False
    """True: the fleet is up and every node has heard every other when the run starts (as
    after a long quiet time); False: nodes start during the run (``start_spread_s``)."""
    invited: bool = False
    """The network admits members by invitation (``hereabouts network``): every key is
    proven by its credential, so none waits for an admission token (``trust.admit_per_s``)
    or for proof by time. Sybil keys are never members."""
    start_spread_s: float = 60.0
    """Without ``settled``: nodes start at uniform times over this span."""
    latency_ms: float = 5.0
    """Median broker latency, publish to delivery (lognormal)."""
    latency_p99_ms: float = 20.0
    """Its 99th percentile: sets the lognormal's spread."""
    latency_cap_ms: float = 100.0
    """No delivery takes longer (before retransmissions): the tail is cut here."""
    processing_ms: float = 0.2
    """A node's CPU time to take in one message, added to every delivery. Raise it to see
    the howdy cap leak as it does on a loaded machine."""
    loss: float = 0.0
    """Share of deliveries whose packet is lost once. QoS 1 messages then arrive one TCP
    retransmission later (``retransmit_ms``, doubling, at most three times); QoS 0 pulses
    are dropped, as a broker under load drops them."""
    retransmit_ms: float = 200.0
    """TCP's first retransmission time-out (Linux's minimum)."""
    observers: int = 10
    """Nodes that keep a full projection (0: every node). Every node hears the same stream
    on one plaza, so a sample sees what all see; each observer costs a projection update per
    message, the largest share of a run's time at 10,000 nodes."""
    sample_s: float = 1.0
    """How often statuses at the observers are sampled for the plots."""
    pulses: bool = False
    """Whether observers watch pulses (``core/pulse.py``); each node's pulse is delivered
    to the observers only."""
    pulse_interval_s: float = 1.0
    pulse_missed: int = 3
    crashes_per_node_hour: float = 0.0
    leaves_per_node_hour: float = 0.0
    restart_after_s: float = 30.0
    """A crashed or departed node starts again (a new boot) after this long."""
    joins_per_s: float = 0.0
    """Brand-new nodes (fresh keys) joining during the run, beyond ``nodes``."""
    liars: float = 0.0
    """Share of nodes that lie in every way a signature allows: they answer every
    hey_there at once, ignoring the cap and their budget, and vouch for departed nodes with
    those nodes' old hey_theres without the chau that followed."""
    sybil_keys: int = 0
    """Fresh keys an attacker announces (hey_there only), from ``sybil_at_s``."""
    sybil_per_s: float = 1000.0
    sybil_at_s: float = 60.0
    outages: tuple[Outage, ...] = ()
    howdy: HowdyConfig = field(default_factory=HowdyConfig)

    @property
    def observer_count(self) -> int:
        return self.nodes if self.observers == 0 else min(self.observers, self.nodes)


def read(scenario: Scenario, options: RunOptions) -> PlazaSettings:
    """The settings of a plaza scenario, with ``--nodes`` and ``--seed`` applied."""
    where = scenario.name
    top = Settings(scenario.settings, where)
    nodes = options.nodes if options.nodes is not None else scenario.nodes
    seed = options.seed if options.seed is not None else scenario.seed
    if nodes < 2:
        raise ScenarioError(f"{where}: a plaza needs at least two nodes")
    duration_s = top.number("duration_s", 600.0, low=1.0, high=86_400.0)
    fleet = top.section("fleet")
    plaza = top.section("plaza")
    observe = top.section("observe")
    pulses = top.section("pulses")
    churn = top.section("churn")
    adversary = top.section("adversary")
    howdy_section = top.section("howdy")
    outages = []
    for entry in top.sections("outage"):
        outage = Outage(
            at_s=entry.number("at_s", 60.0, high=duration_s),
            for_s=entry.number("for_s", 60.0, low=0.001, high=86_400.0),
            share=entry.number("share", 1.0, low=0.001, high=1.0),
            wills=entry.flag("wills", False),
            failover_s=entry.number("failover_s", 1.4, high=600.0),
        )
        entry.done()
        outages.append(outage)
    defaults = HowdyConfig()
    howdy = HowdyConfig(
        max_howdys=howdy_section.whole("max_howdys", defaults.max_howdys, low=1, high=1000),
        jitter_max_s=howdy_section.number("jitter_max_s", defaults.jitter_max_s, high=600.0),
        rejoin_settled_s=howdy_section.number(
            "rejoin_settled_s", defaults.rejoin_settled_s, high=3600.0
        ),
        budget_burst=howdy_section.whole("budget_burst", defaults.budget_burst, low=1),
        budget_refill_s=howdy_section.number(
            "budget_refill_s", defaults.budget_refill_s, low=0.001
        ),
    )
    settings = PlazaSettings(
        nodes=nodes,
        seed=seed,
        duration_s=duration_s,
        settled=fleet.flag("settled", False),
        invited=fleet.flag("invited", False),
        start_spread_s=fleet.number("start_spread_s", 60.0, high=86_400.0),
        latency_ms=plaza.number("latency_ms", 5.0, low=0.01, high=10_000.0),
        latency_p99_ms=plaza.number("latency_p99_ms", 20.0, low=0.01, high=60_000.0),
        latency_cap_ms=plaza.number("latency_cap_ms", 100.0, low=0.01, high=60_000.0),
        processing_ms=plaza.number("processing_ms", 0.2, high=10_000.0),
        loss=plaza.number("loss", 0.0, high=0.5),
        retransmit_ms=plaza.number("retransmit_ms", 200.0, low=1.0, high=60_000.0),
        observers=observe.whole("observers", 10, high=100_000),
        sample_s=observe.number("sample_s", 1.0, low=0.1, high=3600.0),
        pulses=pulses.flag("enabled", False),
        pulse_interval_s=pulses.number("interval_s", 1.0, low=0.5, high=600.0),
        pulse_missed=pulses.whole("missed", 3, low=1, high=100),
        crashes_per_node_hour=churn.number("crashes_per_node_hour", 0.0, high=3600.0),
        leaves_per_node_hour=churn.number("leaves_per_node_hour", 0.0, high=3600.0),
        restart_after_s=churn.number("restart_after_s", 30.0, high=86_400.0),
        joins_per_s=churn.number("joins_per_s", 0.0, high=1000.0),
        liars=adversary.number("liars", 0.0, high=0.9),
        sybil_keys=adversary.whole("sybil_keys", 0, high=1_000_000),
        sybil_per_s=adversary.number("sybil_per_s", 1000.0, low=0.001, high=1e6),
        sybil_at_s=adversary.number("sybil_at_s", 60.0, high=duration_s),
        outages=tuple(outages),
        howdy=howdy,
    )
    for section in (top, fleet, plaza, observe, pulses, churn, adversary, howdy_section):
        section.done()
    if settings.latency_p99_ms < settings.latency_ms:
        raise ScenarioError(f"{where}: latency_p99_ms must be at least latency_ms")
    if settings.latency_cap_ms < settings.latency_p99_ms:
        raise ScenarioError(f"{where}: latency_cap_ms must be at least latency_p99_ms")
    return settings


__all__ = ["Outage", "PlazaSettings", "read"]
