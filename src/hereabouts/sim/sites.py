"""The ``sites`` scenario kind: site rooms counted through DID rotations, with a report.

A scenario names how many visitors a site has (``nodes``: for this kind, the visitors
present on average), how they come and go, the network between them and the hubs, the
site settings, and optional attacks; :mod:`hereabouts.sim.site_model` runs the shipped
counter and rotation schedule on it, and this module turns what it measured into figures
and plots. Every key, with its default::

    rooms = 4               # the site's rooms; visitors pick one uniformly
    boundaries = 3          # epoch boundaries crossed
    lead_s = 60             # simulated time before the first boundary
    tail_s = 60             # simulated time after the last one
    warmup_s = 40           # not measured: a hub that just started hears everyone in one
                            # interval, and silent departures reach their share in S

    [churn]                 # Poisson arrivals, stays drawn from a distribution
    enabled = true
    stay = "lognormal"      # or "exponential"
    stay_mean_s = 240
    stay_sigma = 1.0
    leave_share = 0.8       # visitors whose signed leave is sent as the page unloads

    [network]
    latency_min_ms = 20     # a browser's event reaches its hub after a uniform delay
    latency_max_ms = 300
    clock_offset_max_ms = 500   # visitors' clocks, set from the hub's hello
    loss = 0.0
    hubs = 1                # 2: two hubs sharing counts through the plaza
    plaza_latency_min_ms = 2
    plaza_latency_max_ms = 30

    [sites]                 # hereabouts.config.SitesConfig (defaults as shipped)
    did_duration_s = 300
    heartbeat_interval_s = 10
    stale_timeout_s = 30
    rotation_spread_s = 10  # unset: one heartbeat interval (or the widest that fits)
    max_clock_skew_s = 3
    max_room_participants = 100000

    [hub]                   # hereabouts.config.HubConfig's per-address budgets
    joins_per_address = 64
    address_events_per_s = 8
    address_event_burst = 64
    events_per_s = 0        # events a hub verifies and counts per second, in turn
                            # (0: at once; docs/benchmarks.md measured 8,300 per process)

    [[attack]]              # none by default; any number
    mode = "hub"            # through the first hub's budgets, or "plaza": published directly
    start_s = 20            # after the run starts
    duration_s = 120
    keys_per_s = 50         # fresh DIDs per second
    addresses = 50          # client addresses they come from (mode "hub")
    room = 1                # 1 is the first room
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, fields

from hereabouts.config import SitesConfig
from hereabouts.errors import ConfigError
from hereabouts.sim.report_model import Figure, Line, Plot, SimReport
from hereabouts.sim.scenario import RunOptions, Scenario, ScenarioError, Settings
from hereabouts.sim.site_model import (
    AFTER_SETTLE,
    BURST_BIN_MS,
    SETTLE,
    STEADY,
    Attack,
    Churn,
    HubBudgets,
    Network,
    SiteSimConfig,
    SiteSimResult,
    expected_heartbeats,
    simulate,
)

MAX_ROOMS = 1_000
"""Rooms one scenario may have: a site's pages, not a registry of sites."""

MAX_BOUNDARIES = 12
"""Epoch boundaries one run may cross: an hour of simulated time at the default epoch."""

_SITES_FIELDS = (
    "did_duration_s",
    "heartbeat_interval_s",
    "stale_timeout_s",
    "rotation_spread_s",
    "max_clock_skew_s",
)


def read_config(scenario: Scenario, options: RunOptions) -> SiteSimConfig:
    """The run a scenario asks for, with the command line's overrides; refuses unknown keys."""
    top = Settings(scenario.settings, scenario.name)
    rooms = top.whole("rooms", 4, low=1, high=MAX_ROOMS)
    boundaries = top.whole("boundaries", 3, low=1, high=MAX_BOUNDARIES)
    lead_s = top.number("lead_s", 60.0, low=1.0, high=3600.0)
    tail_s = top.number("tail_s", 60.0, low=0.0, high=3600.0)
    warmup_s = top.number("warmup_s", 40.0, low=0.0, high=3600.0)

    section = top.section("churn")
    churn = Churn(
        enabled=section.flag("enabled", True),
        stay=section.choice("stay", "lognormal", ("lognormal", "exponential")),  # type: ignore[arg-type]
        stay_mean_s=section.number("stay_mean_s", 240.0, low=1.0, high=86_400.0),
        stay_sigma=section.number("stay_sigma", 1.0, low=0.0, high=3.0),
        leave_share=section.number("leave_share", 0.8, low=0.0, high=1.0),
    )
    section.done()

    section = top.section("network")
    network = Network(
        latency_min_ms=section.whole("latency_min_ms", 20, high=60_000),
        latency_max_ms=section.whole("latency_max_ms", 300, high=60_000),
        clock_offset_max_ms=section.whole("clock_offset_max_ms", 500, high=600_000),
        loss=section.number("loss", 0.0, low=0.0, high=0.99),
        hubs=section.whole("hubs", 1, low=1, high=2),
        plaza_latency_min_ms=section.whole("plaza_latency_min_ms", 2, high=60_000),
        plaza_latency_max_ms=section.whole("plaza_latency_max_ms", 30, high=60_000),
    )
    section.done()
    if network.latency_max_ms < network.latency_min_ms:
        raise ScenarioError(f"{scenario.name} [network]: latency_max_ms is below latency_min_ms")
    if network.plaza_latency_max_ms < network.plaza_latency_min_ms:
        raise ScenarioError(
            f"{scenario.name} [network]: plaza_latency_max_ms is below plaza_latency_min_ms"
        )

    section = top.section("sites")
    default = SitesConfig()
    # Only what the scenario sets: SitesConfig derives the rest as it does for an operator
    # (the rotation spread follows the heartbeat interval).
    values: dict[str, float | int] = {
        name: value
        for name in _SITES_FIELDS
        if (value := section.optional_number(name, low=0.0, high=86_400.0)) is not None
    }
    values["max_room_participants"] = section.whole(
        "max_room_participants", default.max_room_participants, low=1, high=10_000_000
    )
    section.done()
    try:
        sites = SitesConfig(**values)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ScenarioError(f"{scenario.name} [sites]: {exc}") from None

    section = top.section("hub")
    budgets = HubBudgets(
        joins_per_address=section.whole("joins_per_address", 64, low=1, high=1_000_000),
        address_events_per_s=section.number("address_events_per_s", 8.0, low=0.001),
        address_event_burst=section.whole("address_event_burst", 64, low=1, high=1_000_000),
    )
    hub_events_per_s = section.number("events_per_s", 0.0, high=10_000_000.0)
    section.done()

    attacks = []
    for section in top.sections("attack"):
        attacks.append(
            Attack(
                mode=section.choice("mode", "hub", ("hub", "plaza")),  # type: ignore[arg-type]
                start_s=section.number("start_s", 0.0, high=86_400.0),
                duration_s=section.number("duration_s", 60.0, low=0.001, high=86_400.0),
                keys_per_s=section.number("keys_per_s", 10.0, low=0.001, high=100_000.0),
                addresses=section.whole("addresses", 1, low=1, high=100_000),
                room=section.whole("room", 1, low=1, high=rooms) - 1,
            )
        )
        section.done()
    top.done()
    try:
        return SiteSimConfig(
            visitors=options.nodes if options.nodes is not None else scenario.nodes,
            seed=options.seed if options.seed is not None else scenario.seed,
            rooms=rooms,
            boundaries=boundaries,
            lead_s=lead_s,
            tail_s=tail_s,
            warmup_s=warmup_s,
            sites=sites,
            budgets=budgets,
            hub_events_per_s=hub_events_per_s,
            churn=churn,
            network=network,
            attacks=tuple(attacks),
        )
    except ValueError as exc:
        raise ScenarioError(f"{scenario.name}: {exc}") from None


def run_scenario(scenario: Scenario, options: RunOptions) -> SimReport:
    """Simulate a ``sites`` scenario and report on it."""
    config = read_config(scenario, options)
    result = simulate(config, options.progress)
    return SimReport(
        scenario=scenario.name,
        description=scenario.description,
        scenario_text=scenario.text,
        settings=_settings(config),
        figures=figures(result),
        plots=plots(result),
        notes=_notes(config),
    )


# --- figures ---------------------------------------------------------------------------------


def figures(result: SiteSimResult) -> tuple[Figure, ...]:
    """The summary table of a run (stable keys, see ``docs/simulation.md``)."""
    c = result.config
    s = c.sites
    warm = round(c.warmup_s)
    per_room = c.visitors / c.rooms
    measured = result.true_total[warm:]
    high, low = result.worst_high, result.worst_low

    def worst(*classes: int) -> int:
        return max(max(high[k], -low[k]) for k in classes)

    worst_all = worst(STEADY, SETTLE, AFTER_SETTLE)
    settled = _settled_seconds(result)
    mean_error = (
        statistics.fmean(
            (result.shown_total[0][i] - result.true_total[i]) / c.rooms for i in settled
        )
        if settled
        else None
    )
    rate = result.arrival_rate_per_s
    silent_share = 1 - c.churn.leave_share
    ghosts = rate * silent_share * (s.stale_timeout_s - s.heartbeat_interval_s / 2) / c.rooms
    per_second = result.heartbeats[warm : len(result.true_total)]
    steady_rate = statistics.median(per_second) if per_second else None
    peak_rate = max(result.heartbeats[: result.seconds], default=0)
    peak_ratio = f"{peak_rate / steady_rate:.1f} x steady; " if steady_rate else ""
    # A stay of T brings floor(T / H) + 1 heartbeats: N / H, and half a beat per arrival.
    predicted_steady = c.visitors / s.heartbeat_interval_s + rate / 2
    predicted_peak = max(_expected_per_second(result, i) for i in _burst_seconds(result))
    held = zip(result.dids, result.left, result.deadlines, strict=True)
    entries = [dids + left + deadlines for dids, left, deadlines in held]
    tally = result.hubs[0]
    honest = sum(tally.honest_rejects.values())
    rejected = sum(tally.rejects.values())

    out = [
        Figure("visitors", "visitors (on average)", c.visitors),
        Figure(
            "visitors_measured",
            "visitors present, measured",
            round(statistics.fmean(measured)) if measured else None,
            detail=f"{min(measured, default=0):,}-{max(measured, default=0):,}",
        ),
        Figure("rooms", "rooms", c.rooms, detail=f"{per_room:,.0f} visitors each"),
        Figure("hubs", "hubs counting", c.network.hubs),
        Figure(
            "boundaries_crossed",
            "epoch boundaries crossed",
            len(result.boundaries_ms),
            detail=f"every {s.did_duration_s:g} s; settle window {result.settle_ms / 1000:g} s",
        ),
        Figure(
            "arrivals_per_s",
            "arrivals (and departures) per second",
            round(rate, 1),
            detail=f"{result.arrivals:,} arrived, {result.departures:,} left "
            f"({result.silent_departures:,} without a leave)",
        ),
        Figure("events_counted", "heartbeats and leaves the counter took", tally.received),
        Figure(
            "worst_count_error",
            "worst count error (any room, any instant)",
            worst_all,
            "visitors",
            detail=f"{100 * worst_all / per_room:.2f} % of a room; over-count {max(high[1:]):,}, "
            f"under-count {-min(low[1:]):,}",
        ),
        Figure(
            "boundary_count_error",
            "worst count error around a boundary",
            worst(SETTLE, AFTER_SETTLE),
            "visitors",
            detail="from each boundary to one interval after its settle window",
        ),
        Figure(
            "settle_count_error",
            "worst count error in a settle window",
            worst(SETTLE),
            "visitors",
            detail="docs: only visitors who came or went inside the window can be missed",
        ),
        Figure(
            "steady_count_error",
            "worst count error away from boundaries",
            worst(STEADY),
            "visitors",
        ),
        Figure(
            "mean_count_error",
            "mean count error per room, settled",
            None if mean_error is None else round(mean_error, 1),
            "visitors",
            detail=f"predicted {ghosts:,.1f}: departures without a leave x (S - H/2), "
            "still counted until their DID goes stale",
        ),
        Figure(
            "heartbeats_per_s_steady",
            "heartbeats per second, steady (median)",
            steady_rate,
            "/s",
            detail=f"predicted {predicted_steady:,.0f} (N/H, plus half a beat per arrival)",
        ),
        Figure(
            "heartbeats_per_s_boundary_peak",
            "heartbeats per second, busiest second",
            peak_rate,
            "/s",
            detail=f"{peak_ratio}predicted {predicted_peak:,.0f}: every visitor's first new "
            f"heartbeat within the {s.rotation_spread_s:g} s spread, widened by clocks "
            f"(±{c.network.clock_offset_max_ms} ms) and latency",
        ),
        Figure(
            "heartbeats_per_s_boundary_predicted",
            "heartbeats per second, busiest second, predicted",
            round(predicted_peak),
            "/s",
            detail=f"{predicted_peak / predicted_steady:.1f} x steady",
        ),
        Figure(
            "hub_events_per_s",
            "events a hub counts per second, at most",
            c.hub_events_per_s or None,
            "/s",
            detail="each event counted in turn" if c.hub_events_per_s else "each at once",
        ),
        Figure(
            "hub_delay_peak_ms",
            "longest wait for an event to be counted",
            max(result.hub_delay_ms, default=0) if c.hub_events_per_s else None,
            "ms",
            detail=f"the settle window allows {s.max_clock_skew_s * 1000:,.0f} ms of clock "
            "offset and delay together",
        ),
        Figure(
            "counter_entries_peak",
            "counter entries held, peak",
            max(entries, default=0),
            detail="DIDs + left DIDs + expiry-heap entries, first hub",
        ),
        Figure("counter_dids_peak", "DIDs held, peak", max(result.dids, default=0)),
        Figure("counter_left_peak", "left DIDs remembered, peak", max(result.left, default=0)),
        Figure(
            "counter_deadlines_peak",
            "expiry-heap entries, peak",
            max(result.deadlines, default=0),
            detail="one per heartbeat heard within the stale timeout",
        ),
        Figure(
            "counter_dids_bound",
            "DIDs the counter may hold",
            c.rooms * 3 * s.max_room_participants,
            detail=f"rooms ({c.rooms}) x 3 epochs x {s.max_room_participants:,} "
            "(max_room_participants); as many left DIDs",
        ),
        Figure(
            "counter_epochs_peak",
            "(room, epoch) buckets held, peak",
            max(result.epochs_held, default=0),
        ),
        Figure(
            "honest_rejects",
            "visitors' events refused",
            honest,
            detail=_reasons(tally.honest_rejects),
        ),
        Figure("rejects", "events refused", rejected, detail=_reasons(tally.rejects)),
    ]
    for i, attack in enumerate(c.attacks, 1):
        out.extend(_attack_figures(result, i, attack))
    return tuple(out)


def _attack_figures(result: SiteSimResult, i: int, attack: Attack) -> list[Figure]:
    c = result.config
    start = round(attack.start_s)
    stop = round(attack.start_s + attack.duration_s + c.sites.stale_timeout_s) + 1
    inflation = max(result.room_error_high[attack.room][start:stop], default=0)
    if attack.mode == "hub":
        bound = attack.addresses * c.budgets.joins_per_address
        why = (
            f"{attack.addresses} addresses x {c.budgets.joins_per_address} joins per room "
            "and epoch; the count never adds two epochs"
        )
    else:
        bound = c.sites.max_room_participants
        why = "max_room_participants: the most DIDs a room's epoch holds (a memory bound)"
    return [
        Figure(
            f"attack{i}_keys",
            f"attack {i} ({attack.mode}): fresh keys made",
            result.sybils[i - 1],
            detail=f"{attack.keys_per_s:g}/s for {attack.duration_s:g} s into room "
            f"{attack.room + 1}",
        ),
        Figure(
            f"attack{i}_inflation_peak",
            f"attack {i}: largest over-count of its room",
            inflation,
            "visitors",
        ),
        Figure(f"attack{i}_inflation_bound", f"attack {i}: what bounds it", bound, detail=why),
    ]


def _burst_seconds(result: SiteSimResult) -> list[int]:
    """Indexes of the seconds around each boundary (where a burst can fall: the spread,
    widened by clock offsets and delays)."""
    spread = math.ceil(result.config.sites.rotation_spread_s)
    out: list[int] = []
    for b in result.boundaries_ms:
        first = (b - result.start_ms) // 1000
        out.extend(i for i in range(first - 2, first + spread + 3) if 0 <= i < result.seconds)
    return out


def _expected_per_second(result: SiteSimResult, i: int, width_ms: int = 1000) -> float:
    """Heartbeats expected in the ``i``-th bin of ``width_ms`` by the schedule's maths."""
    c = result.config
    w0 = result.start_ms + i * width_ms
    boundary = min(result.boundaries_ms, key=lambda b: abs(b - w0))
    expected = expected_heartbeats(c, (w0, w0 + width_ms), boundary, c.visitors)
    return expected + result.arrival_rate_per_s / 2 * width_ms / 1000


def _settled_seconds(result: SiteSimResult) -> list[int]:
    """Seconds (indexes) after warm-up and at least S + settle + H after any boundary."""
    c = result.config
    s = c.sites
    margin = result.settle_ms + round((s.stale_timeout_s + s.heartbeat_interval_s) * 1000)
    warm = round(c.warmup_s * 1000)
    out: list[int] = []
    for i in range(len(result.true_total)):
        t = result.start_ms + (i + 1) * 1000
        if (i + 1) * 1000 <= warm:
            continue
        if any(b <= t < b + margin for b in result.boundaries_ms):
            continue
        out.append(i)
    return out


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items())) or "none"


# --- plots -----------------------------------------------------------------------------------


def plots(result: SiteSimResult) -> tuple[Plot, ...]:
    """Counts against the truth, the error, heartbeats per second, the burst, memory."""
    c = result.config
    lead = c.lead_s
    n = len(result.true_total)
    warm = min(n, round(c.warmup_s))
    x = tuple(float(i + 1) - lead for i in range(warm, n))

    def series(values: list[int]) -> tuple[float, ...]:
        """Per-second values after the warm-up (a hub that has just started is not shown)."""
        return tuple(float(value) for value in values[warm:n])

    boundaries = ", ".join(f"{(b - result.start_ms) / 1000 - lead:g}" for b in result.boundaries_ms)
    where = (
        f"Epoch boundaries at {boundaries} s; the warm-up (the first {c.warmup_s:g} s) is left out."
    )
    shown = [
        Line(f"shown by hub {'AB'[h]}" if c.network.hubs > 1 else "shown", series(y))
        for h, y in enumerate(result.shown_total)
    ]
    counts = Plot(
        name="site-counts",
        title="Visitors shown against visitors present (all rooms)",
        x_label="time from the first boundary (s)",
        y_label="visitors",
        x=x,
        lines=(Line("present", series(result.true_total)), *shown),
        note=where + " Sampled at the end of each second.",
    )
    error = Plot(
        name="site-count-error",
        title="Count error: largest over- and under-count of any room in each second",
        x_label="time from the first boundary (s)",
        y_label="shown - present (visitors)",
        x=x,
        lines=(
            Line("largest over-count", series(result.error_high)),
            Line("largest under-count", series(result.error_low)),
        ),
        style="step",
        note=where + " Over-counts are visitors gone without a leave, counted until their "
        "DID goes stale; each settle window's end drops those of the old epoch.",
    )
    beats = Plot(
        name="site-heartbeats",
        title="Heartbeats per second at a hub",
        x_label="time from the first boundary (s)",
        y_label="heartbeats per second",
        x=x,
        lines=(Line("heartbeats", series(result.heartbeats)),),
        style="step",
        note=where + " Each boundary brings every visitor's first heartbeat of the new epoch "
        "within the rotation spread (with the default spread of one interval, in place of "
        "the heartbeat it would have sent anyway).",
    )
    first = (result.boundaries_ms[0] - result.start_ms) // BURST_BIN_MS
    after_ms = max(13_000, round(c.sites.rotation_spread_s * 1000) + 5_000)
    before, after = 3000 // BURST_BIN_MS, after_ms // BURST_BIN_MS
    lo, hi = max(0, first - before), min(len(result.heartbeats_fine), first + after)
    per_s = 1000 / BURST_BIN_MS
    burst = Plot(
        name="site-burst",
        title="Heartbeats around the first boundary",
        x_label="time from the boundary (s)",
        y_label="heartbeats per second (in 100 ms bins)",
        x=tuple((i - first) * BURST_BIN_MS / 1000 for i in range(lo, hi)),
        lines=(
            Line("measured", tuple(result.heartbeats_fine[i] * per_s for i in range(lo, hi))),
            Line(
                "predicted",
                tuple(_expected_per_second(result, i, BURST_BIN_MS) * per_s for i in range(lo, hi)),
            ),
        ),
        style="step",
        note=f"{c.visitors:,} first heartbeats of the new epoch within the "
        f"{c.sites.rotation_spread_s:g} s spread, widened by clock offsets and latency; then "
        f"the steady {c.visitors / c.sites.heartbeat_interval_s:,.0f}/s with fresh phases "
        "(a spread of one interval keeps the steady rate throughout). "
        "Predicted: the rotation schedule's rules (hereabouts.sim.site_model.expected_heartbeats).",
    )
    memory = Plot(
        name="site-counter-entries",
        title="What the counter holds",
        x_label="time from the first boundary (s)",
        y_label="entries",
        x=x,
        lines=(
            Line("DIDs", series(result.dids)),
            Line("left DIDs", series(result.left)),
            Line("expiry-heap entries", series(result.deadlines)),
        ),
        note=where + " The previous epoch's DIDs are kept until the next boundary.",
    )
    if not c.hub_events_per_s:
        return (counts, error, beats, burst, memory)
    delay = Plot(
        name="site-hub-delay",
        title="How long events wait to be counted at a hub",
        x_label="time from the first boundary (s)",
        y_label="longest wait in the second (ms)",
        x=x,
        lines=(Line("wait", series(result.hub_delay_ms)),),
        style="step",
        note=where + f" The hub counts {c.hub_events_per_s:,.0f} events a second, in turn.",
    )
    return (counts, error, beats, burst, memory, delay)


# --- settings and notes ----------------------------------------------------------------------


def _settings(config: SiteSimConfig) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = [
        ("visitors", str(config.visitors)),
        ("seed", str(config.seed)),
        ("rooms", str(config.rooms)),
        ("boundaries", str(config.boundaries)),
        ("lead_s", f"{config.lead_s:g}"),
        ("tail_s", f"{config.tail_s:g}"),
        ("warmup_s", f"{config.warmup_s:g}"),
    ]
    for prefix, part in (
        ("churn", config.churn),
        ("network", config.network),
        ("hub", config.budgets),
    ):
        out.extend((f"{prefix}.{key}", _text(value)) for key, value in asdict(part).items())
    out.append(("hub.events_per_s", _text(config.hub_events_per_s)))
    for f in fields(SitesConfig):
        if f.name in (*_SITES_FIELDS, "max_room_participants"):
            out.append((f"sites.{f.name}", _text(getattr(config.sites, f.name))))
    for i, attack in enumerate(config.attacks, 1):
        out.extend(
            (f"attack{i}.{key}", _text(value + 1 if key == "room" else value))
            for key, value in asdict(attack).items()
        )
    return tuple(out)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _notes(config: SiteSimConfig) -> tuple[str, ...]:
    notes = [
        "Every heartbeat and leave a hub receives goes through the shipped SiteCounter, one "
        "call each; every visitor's schedule is the shipped HeartbeatPlan; the hub is ticked "
        "as the runtime ticks it.",
        "Events are not signed or verified: the counter sees only events that passed "
        "unseal_as, and what it does depends on DID, room, epoch and date alone.",
        "Honest visitors each have an address of their own; their events never meet the "
        "per-address budgets, so they go to the counter directly.",
        "Events of one visitor arrive in order (one WebSocket); delays are uniform in "
        f"[{config.network.latency_min_ms}, {config.network.latency_max_ms}) ms.",
    ]
    if config.hub_events_per_s:
        notes.append(
            f"Hubs count {config.hub_events_per_s:,.0f} events a second, one after another; "
            "an event waits its turn, and the counter sees it then."
        )
    else:
        notes.append("Hubs count every event the instant it arrives (no CPU limit).")
    if config.network.hubs == 2:
        notes.append(
            "Two hubs: each counts its own visitors' events and the other's republished "
            "copies, which come through the plaza after a further delay."
        )
    if config.attacks:
        notes.append(
            "Attackers' keys heartbeat on the shipped schedule until the attack ends; through "
            "a hub they pass the hub's real AddressBudgets and drop a key refused for the join "
            "budget; on the plaza nothing but the counter stands in their way."
        )
    return tuple(notes)


__all__ = ["figures", "plots", "read_config", "run_scenario"]
