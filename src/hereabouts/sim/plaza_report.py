"""What a plaza run records, and the report made of it.

:class:`PlazaRecorder` is told of every publish, welcome, howdy, outage and status change
at the observers, and samples the observers' views every ``sample_s``. :func:`build_report`
turns that into the figures of the summary table and the plots.

Definitions of the figures:

* **howdys per join**: howdys from honest nodes answering one node's first hey_there of a
  boot (a new node or a restart), averaged over joins; beside it the closed form
  ``M + R·L/J`` of :func:`hereabouts.core.howdy.expected_replies` for the fleet's size at
  each join and the median delivery time.
* **ONLINE everywhere**: the first sample at which every observer that is connected shows
  every running, connected honest node ONLINE; after an outage, counted from its end.
* **false MISSING**: a MISSING reported by an observer for a node that was running and
  connected at that moment, per observer and simulated hour (each observer is one node's
  view, so this is per node-hour).
* **false ONLINE**: an ONLINE reported by an observer for a node that was not running.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import TYPE_CHECKING, Final

from hereabouts.config import HeartbeatConfig
from hereabouts.core.effects import Status, StatusChanged
from hereabouts.core.howdy import expected_replies
from hereabouts.events import SignedEvent
from hereabouts.sim.plaza_settings import Outage, PlazaSettings
from hereabouts.sim.report_model import Figure, Line, Plot, SimReport
from hereabouts.sim.scenario import Scenario

if TYPE_CHECKING:
    from hereabouts.sim.plaza import PlazaSim

KINDS: Final = ("hey_there", "howdy", "newspaper", "chau", "lost", "pulse")


class PlazaRecorder:
    """Counters and samples of one plaza run."""

    def __init__(self, sim: PlazaSim) -> None:
        self.sim = sim
        self.start_ms = sim.q.now_ms
        """The run's start on the simulated clock."""
        seconds = int(sim.s.duration_s) + 2
        self.messages = {kind: [0] * seconds for kind in KINDS}
        self.deliveries = [0] * seconds
        self.bytes = [0] * seconds
        self.neighbours_of: dict[str, tuple[str, ...]] = {}
        self.vouched_hey: dict[tuple[str, str], SignedEvent] = {}
        self.vouched_latest: dict[tuple[str, str], SignedEvent] = {}
        self.joins: dict[str, tuple[int, int]] = {}  # hey_there id -> (online at join, ms)
        self.rejoins: set[str] = set()
        self.sybil_ids: set[str] = set()
        self.replies: Counter[str] = Counter()
        self.liar_replies = 0
        self.howdys_by_node: Counter[int] = Counter()
        self.howdy_times: list[int] = []
        self.unheard_joins = 0
        self.unwoken = 0
        self.false_missing = 0
        self.false_online = 0
        self.sybils = 0
        self.outages: list[tuple[int, int, Outage, int]] = []  # start, end, outage, cut
        self.times: list[float] = []
        self.online_mean: list[float] = []
        self.online_min: list[float] = []
        self.missing_mean: list[float] = []
        self.offline_mean: list[float] = []
        self.truth: list[float] = []
        self.everywhere: list[bool] = []
        self.honest_online: list[int] = []
        self.obs_slot: dict[int, int] = {}

    # --- told by the simulator -----------------------------------------------------------

    def _second(self, now: int) -> int:
        return min(len(self.bytes) - 1, (now - self.start_ms) // 1000)

    def published(self, now: int, kind: str, size: int, fanout: int) -> None:
        second = self._second(now)
        self.messages[kind][second] += 1
        self.deliveries[second] += fanout
        self.bytes[second] += size * fanout

    def welcome_started(self, hey_id: str, newcomer: int, first: bool, now: int) -> None:
        if newcomer >= self.sim.honest_cap:
            self.sybil_ids.add(hey_id)
        elif first:
            self.joins[hey_id] = (self.sim.ref.count(Status.ONLINE), now)
        else:
            self.rejoins.add(hey_id)

    def unheard(self, now: int, newcomer: int) -> None:
        if newcomer < self.sim.honest_cap:
            self.unheard_joins += 1

    def howdy_sent(self, now: int, hey_id: str, responder: int, *, liar: bool) -> None:
        if liar:
            self.liar_replies += 1
            return
        self.replies[hey_id] += 1
        self.howdys_by_node[responder] += 1
        self.howdy_times.append(now)

    def suppressed_unwoken(self, count: int) -> None:
        self.unwoken += count

    def outage(self, now: int, outage: Outage, cut: int) -> None:
        self.outages.append((now, now + int(outage.for_s * 1000), outage, cut))

    def sybil(self, now: int) -> None:
        self.sybils += 1

    def changed(self, observer: int, change: StatusChanged) -> None:
        sim = self.sim
        index = sim.index_of.get(change.did)
        if observer == sim.ref.index:
            sim.last_change_ms = change.at_ms
        if index is None or index >= sim.honest_cap:
            return
        slot = self.obs_slot.get(observer)
        if slot is None:
            slot = self.obs_slot[observer] = len(self.obs_slot)
            self.honest_online.append(0)
        if change.old is Status.ONLINE:
            self.honest_online[slot] -= 1
        if change.new is Status.ONLINE:
            self.honest_online[slot] += 1
            if not sim.running[index]:
                self.false_online += 1
        if (
            change.new is Status.MISSING
            and change.old is not Status.MISSING
            and sim.running[index]
            and sim.connected[index]
        ):
            self.false_missing += 1

    def sample(self, now: int) -> None:
        """Record the observers' views. Views are shown whether or not the observer is
        connected (a cut-off node still shows what it last knew); "ONLINE everywhere" needs
        every running observer connected and every running node connected and ONLINE."""
        sim = self.sim
        viewing = [o for o in sim.observers if sim.running[o.index]]
        honest = sim.honest_cap
        live = int((sim.running[:honest] & sim.connected[:honest]).sum())
        self.times.append((now - self.start_ms) / 1000)
        self.truth.append(live)
        if not viewing:
            for series in (self.online_mean, self.online_min, self.missing_mean):
                series.append(0.0)
            self.offline_mean.append(0.0)
            self.everywhere.append(False)
            return
        online = [
            self.honest_online[self.obs_slot[o.index]] if o.index in self.obs_slot else 0
            for o in viewing
        ]
        self.online_mean.append(sum(online) / len(online))
        self.online_min.append(float(min(online)))
        self.missing_mean.append(sum(o.count(Status.MISSING) for o in viewing) / len(viewing))
        self.offline_mean.append(sum(o.count(Status.OFFLINE) for o in viewing) / len(viewing))
        running = int(sim.running[:honest].sum())
        all_connected = all(sim.connected[o.index] for o in viewing)
        self.everywhere.append(
            live > 0 and live == running and all_connected and min(online) >= live
        )


def _first_true_after(times: list[float], flags: list[bool], after_s: float) -> float | None:
    for t, flag in zip(times, flags, strict=True):
        if t >= after_s and flag:
            return t
    return None


def _back_after(times: list[float], flags: list[bool], cut_s: float) -> float | None:
    """Seconds from ``cut_s`` until the first sample that is everywhere-ONLINE again after
    one that was not (0 if none after ``cut_s`` ever was not)."""
    broken = False
    for t, flag in zip(times, flags, strict=True):
        if t < cut_s:
            continue
        if not flag:
            broken = True
        elif broken:
            return t - cut_s
    return 0.0 if not broken else None


def _percentile(values: list[int], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(share * len(ordered)))])


def build_report(scenario: Scenario, s: PlazaSettings, sim: PlazaSim) -> SimReport:
    rec = sim.rec
    hours = s.duration_s / 3600
    per_join = [rec.replies.get(hey_id, 0) for hey_id in rec.joins]
    latency_s = (sim.latency.median_ms + s.processing_ms) / 1000
    expected = [
        expected_replies(max(1, online - 1), latency_s=latency_s, config=s.howdy)
        for online, _ in rec.joins.values()
    ]
    honest_nodes = max(1, int(sim.exists[: sim.honest_cap].sum()))
    figures = [
        Figure("nodes", "nodes", s.nodes),
        Figure("observers", "observers (full projections)", len(sim.observers)),
        Figure("simulated_s", "simulated time", round(s.duration_s), "s"),
        Figure("events", "simulator events", sim.q.events_run),
        Figure("joins", "joins (new boots heard)", len(rec.joins)),
        Figure(
            "unheard_joins",
            "joins nobody admitted",
            rec.unheard_joins,
            detail="the newcomer's key found no admission token (KeyBook)",
        ),
        Figure(
            "howdys_per_join",
            "howdys per join",
            statistics.fmean(per_join) if per_join else None,
            detail=f"p95 {_percentile(per_join, 0.95):g}, max {max(per_join, default=0)}",
        ),
        Figure(
            "howdys_per_join_expected",
            "closed form M + R·L/J",
            statistics.fmean(expected) if expected else None,
            detail=f"L = {latency_s * 1000:.1f} ms, J = {s.howdy.jitter_max_s:g} s",
        ),
        Figure("howdys_total", "howdys sent (honest)", sum(rec.replies.values())),
        Figure(
            "howdys_per_node_max",
            "most howdys sent by one node",
            max(rec.howdys_by_node.values(), default=0),
            detail=f"budget {s.howdy.budget_burst} + one per {s.howdy.budget_refill_s:g} s",
        ),
        Figure("rejoins", "rejoins (same boot, new session)", len(rec.rejoins)),
        Figure(
            "newspapers_per_node_hour",
            "newspapers per node-hour",
            sum(rec.messages["newspaper"]) / max(1e-9, honest_nodes * hours),
            detail=f"{3600 / HeartbeatConfig().max_interval_s:g} when nothing changes, "
            f"{3600 / HeartbeatConfig().min_interval_s:g} while something does",
        ),
        Figure("woken_skipped", "responders left unwoken (suppressed)", rec.unwoken),
    ]
    if s.outages:
        start, end, _, cut = rec.outages[0] if rec.outages else (0, 0, None, 0)
        from hereabouts.sim.plaza import START_MS

        after = [t for t in rec.howdy_times if t >= start]
        everywhere = _first_true_after(rec.times, rec.everywhere, (end - START_MS) / 1000)
        cut_s = (start - START_MS) / 1000
        figures += [
            Figure("outage_cut", "nodes cut off by the outage", cut),
            Figure(
                "online_everywhere_after_cut_s",
                "every node ONLINE everywhere, after the cut",
                _back_after(rec.times, rec.everywhere, cut_s),
                "s",
                detail="from the moment the broker or member went away",
            ),
            Figure(
                "howdys_after_outage_per_node",
                "howdys after the outage, per node",
                len(after) / honest_nodes,
                detail="goal: at most 10",
            ),
            Figure(
                "online_everywhere_after_outage_s",
                "every node ONLINE everywhere, after the outage",
                None if everywhere is None else everywhere - (end - START_MS) / 1000,
                "s",
            ),
        ]
    else:
        everywhere = _first_true_after(
            rec.times, rec.everywhere, 0.0 if s.settled else s.start_spread_s
        )
        figures.append(
            Figure(
                "online_everywhere_s",
                "every node ONLINE everywhere",
                everywhere,
                "s",
                detail="from the start of the run (the last node starts at "
                f"{0 if s.settled else s.start_spread_s:g} s)",
            )
        )
    observer_hours = max(1e-9, len(sim.observers) * hours)
    figures += [
        Figure(
            "false_missing_per_node_hour",
            "false MISSING per node-hour",
            rec.false_missing / observer_hours,
            detail=f"{rec.false_missing} at {len(sim.observers)} observers; loss {s.loss:g}",
        ),
        Figure("false_online", "false ONLINE (views of stopped nodes)", rec.false_online),
        Figure(
            "refused_events",
            "events refused for admission (all observers)",
            sum(o.refused for o in sim.observers),
        ),
        Figure(
            "rate_limited_events",
            "events refused by the per-emitter rate limit (all observers)",
            sum(o.limited for o in sim.observers),
        ),
        Figure(
            "messages_per_s_peak",
            "messages published per second, peak",
            max(sum(rec.messages[k][i] for k in KINDS) for i in range(len(rec.bytes))),
        ),
        Figure(
            "deliveries_per_s_peak",
            "deliveries per second, peak (fan-out)",
            max(rec.deliveries),
        ),
        Figure("bytes_per_s_peak", "bytes delivered per second, peak", max(rec.bytes), "B"),
    ]
    if s.sybil_keys:
        drawn = sum(rec.replies.get(hey_id, 0) for hey_id in rec.sybil_ids)
        flood_s = max(0.0, s.duration_s - s.sybil_at_s)
        bound = s.nodes * (s.howdy.budget_burst + flood_s / s.howdy.budget_refill_s)
        figures += [
            Figure("sybil_keys", "fresh keys announced", rec.sybils),
            Figure(
                "sybil_howdys", "howdys drawn by fresh keys", drawn, detail=f"bound {bound:,.0f}"
            ),
        ]
    if s.liars:
        figures.append(Figure("liar_howdys", "howdys sent by liars", rec.liar_replies))
    seconds = list(range(len(rec.bytes)))
    x = tuple(float(t) for t in seconds)
    plots = [
        Plot(
            name="statuses",
            title="What the observers see (mean over observers)",
            x_label="simulated time (s)",
            y_label="nodes",
            x=tuple(rec.times),
            lines=(
                Line("running and connected (truth)", tuple(rec.truth)),
                Line("ONLINE (mean)", tuple(rec.online_mean)),
                Line("ONLINE (fewest at one observer)", tuple(rec.online_min)),
                Line("MISSING (mean)", tuple(rec.missing_mean)),
                Line("OFFLINE (mean)", tuple(rec.offline_mean)),
            ),
            note="Honest nodes each observer shows ONLINE, against the nodes really running "
            "and connected. A cut-off observer keeps showing what it last knew.",
        ),
        Plot(
            name="messages",
            title="Messages published per second, by kind",
            x_label="simulated time (s)",
            y_label="messages / s",
            x=x,
            lines=tuple(
                Line(kind, tuple(float(v) for v in rec.messages[kind]))
                for kind in KINDS
                if any(rec.messages[kind])
            ),
            note="Each is handed to every connected node: deliveries are these times N.",
        ),
        Plot(
            name="bytes",
            title="Bytes delivered per second (all subscribers)",
            x_label="simulated time (s)",
            y_label="bytes / s",
            x=x,
            lines=(Line("bytes delivered", tuple(float(v) for v in rec.bytes)),),
        ),
        Plot(
            name="howdys-per-join",
            title="Howdys per join, in join order",
            x_label="join",
            y_label="howdys",
            x=tuple(float(i) for i in range(len(per_join))),
            lines=(
                Line("howdys", tuple(float(v) for v in per_join)),
                Line("closed form", tuple(expected)),
            ),
            note="The closed form is the bound M + R·L/J at the fleet's size at each join.",
        ),
    ]
    notes = (
        "Observers run the shipped KeyBook, Projection and (if enabled) PulseWatch; every node "
        "runs its own HowdyCoordinator and NewspaperCadence.",
        f"Responders are woken in slot order until the closing time; {rec.unwoken:,} slots "
        "after it were counted as suppressed without being woken (exact under the latency "
        f"bound of {sim.latency.max_ms} ms).",
    )
    return SimReport(
        scenario=scenario.name,
        description=scenario.description,
        scenario_text=scenario.text,
        settings=_settings_rows(s),
        figures=tuple(figures),
        plots=tuple(plots),
        notes=notes,
    )


def _settings_rows(s: PlazaSettings) -> tuple[tuple[str, str], ...]:
    rows: list[tuple[str, str]] = []
    for name in s.__dataclass_fields__:
        value = getattr(s, name)
        if name == "howdy":
            for field in (
                "max_howdys",
                "jitter_max_s",
                "rejoin_settled_s",
                "budget_burst",
                "budget_refill_s",
            ):
                rows.append((f"howdy.{field}", str(getattr(value, field))))
        elif name == "outages":
            for k, outage in enumerate(value):
                rows.append(
                    (
                        f"outage {k + 1}",
                        f"at {outage.at_s:g} s for {outage.for_s:g} s, share {outage.share:g}, "
                        f"wills {outage.wills}, failover {outage.failover_s:g} s",
                    )
                )
        else:
            rows.append((name, str(value)))
    return tuple(rows)


__all__ = ["PlazaRecorder", "build_report"]
