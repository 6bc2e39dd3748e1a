"""The sans-I/O site counter: explicit times in, counts out."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import pytest

from hereabouts.config import SitesConfig
from hereabouts.core.rotation import HeartbeatPlan, epoch_of, epoch_start_ms
from hereabouts.core.sites import (
    CountChanged,
    CounterFootprint,
    EpochMismatch,
    RoomFull,
    SiteCounter,
    SiteTiming,
)
from hereabouts.errors import FromTheFuture, Replayed, TooOld

CONFIG = SitesConfig(did_duration_s=60, heartbeat_interval_s=10, stale_timeout_s=30)
T = SiteTiming.from_config(CONFIG)
D = T.duration_ms
ROOM = "a" * 26
BASE = 1_000 * D  # start of epoch 1000


def counter() -> SiteCounter:
    c = SiteCounter(T)
    c.track(ROOM)
    return c


def beat(c: SiteCounter, did: str, at: int, now: int | None = None) -> list[CountChanged]:
    return c.heartbeat(ROOM, did, epoch_of(at, D), at, at if now is None else now)


def test_steady_state_counts_each_did_once_and_duplicates_change_nothing() -> None:
    c = counter()
    t = BASE + 10_000
    for i in range(5):
        beat(c, f"d{i}", t)
    assert c.count(ROOM, t) == 5
    assert beat(c, "d0", t + 5) == []  # a duplicate refreshes, it does not count twice
    assert c.count(ROOM, t + 5) == 5


def test_changes_are_reported_once_per_move() -> None:
    c = counter()
    t = BASE + 10_000
    assert beat(c, "x", t) == [CountChanged(ROOM, 0, 1, t)]
    assert beat(c, "x", t + 1) == []
    assert c.leave(ROOM, "x", epoch_of(t, D), t + 2, t + 2) == [CountChanged(ROOM, 1, 0, t + 2)]


def test_a_silent_did_goes_stale_after_the_timeout() -> None:
    c = counter()
    t = BASE + T.settle_ms + 1_000  # past the settle window, whose end would come first
    beat(c, "x", t)
    assert c.count(ROOM, t + T.stale_ms - 1) == 1
    assert c.next_change_ms(t) == t + T.stale_ms
    assert c.tick(t + T.stale_ms) == [CountChanged(ROOM, 1, 0, t + T.stale_ms)]


def test_a_signed_leave_counts_at_once_and_for_good() -> None:
    c = counter()
    t = BASE + 10_000
    beat(c, "x", t)
    beat(c, "y", t)
    c.leave(ROOM, "x", epoch_of(t, D), t + 100, t + 100)
    assert c.count(ROOM, t + 100) == 1
    with pytest.raises(Replayed):  # a replayed heartbeat cannot bring it back
        beat(c, "x", t + 50, now=t + 200)
    assert c.count(ROOM, t + 200) == 1


def test_an_old_captured_heartbeat_cannot_keep_a_visitor_counted() -> None:
    c = counter()
    t = BASE + 10_000
    beat(c, "x", t)
    # Replaying the same heartbeat 20 s later refreshes nothing past at_ms + skew + stale.
    beat(c, "x", t, now=t + 20_000)
    assert c.count(ROOM, t + T.skew_ms + T.stale_ms) == 0


def test_refusals() -> None:
    c = counter()
    t = BASE + 10_000
    with pytest.raises(EpochMismatch):
        c.heartbeat(ROOM, "x", epoch_of(t, D) + 1, t, t)
    with pytest.raises(FromTheFuture):
        beat(c, "x", t + T.skew_ms + 1, now=t)
    with pytest.raises(TooOld):
        beat(c, "x", t - T.stale_ms, now=t)
    assert c.count(ROOM, t) == 0
    small = SiteCounter(SiteTiming.from_config(SitesConfig(max_room_participants=2)))
    small.track(ROOM)
    small.heartbeat(ROOM, "a", epoch_of(t, 300_000), t, t)
    small.heartbeat(ROOM, "b", epoch_of(t, 300_000), t, t)
    with pytest.raises(RoomFull):
        small.heartbeat(ROOM, "c", epoch_of(t, 300_000), t, t)


def test_untracked_rooms_are_ignored() -> None:
    c = SiteCounter(T)
    assert c.heartbeat("b" * 26, "x", epoch_of(BASE, D), BASE, BASE) == []
    assert c.count("b" * 26, BASE) == 0


def test_rotation_never_double_counts() -> None:
    """Every visitor switches DID at the boundary: the count stays put throughout."""
    c = counter()
    n = 20
    boundary = BASE + D
    for i in range(n):
        beat(c, f"old{i}", boundary - 10_000 + i * 100)  # last heartbeats of the old epoch
    for i in range(n):
        at = boundary + i * 40  # first heartbeats of the new epoch, spread
        assert c.count(ROOM, at) == n
        beat(c, f"new{i}", at)
        assert c.count(ROOM, at) == n
    for now in range(boundary, boundary + T.stale_ms - 1000, 250):
        assert c.count(ROOM, now) == n
        assert c.tick(now) == []


@dataclass
class _Visitor:
    offset_ms: int  # its clock minus true time
    join_ms: int  # true time
    leave_ms: int | None  # true time of its signed leave (None: stays)


def _simulate(visitors: list[_Visitor], horizon_ms: int, seed: int) -> list[tuple[int, int, int]]:
    """Run visitors' schedules against one observer; returns (time, count, tolerance)."""
    rng = random.Random(seed)
    cfg = CONFIG
    deliveries: list[tuple[int, int, str, str, int, int]] = []  # (time, order, kind, did, ep, at)
    order = 0
    for index, v in enumerate(visitors):
        plan = HeartbeatPlan(
            interval_ms=round(cfg.heartbeat_interval_s * 1000),
            duration_ms=D,
            spread_ms=round(cfg.rotation_spread_s * 1000),
            uniform=rng,
        )
        own = v.join_ms + v.offset_ms
        end_own = (v.leave_ms if v.leave_ms is not None else horizon_ms) + v.offset_ms
        last_epoch = None
        while own < end_own:
            last_epoch = epoch_of(own, D)
            latency = rng.randrange(0, 200)
            order += 1
            deliveries.append(
                (
                    own - v.offset_ms + latency,
                    order,
                    "hb",
                    f"v{index}e{last_epoch}",
                    last_epoch,
                    own,
                )
            )
            own = plan.next_after(own)
        if v.leave_ms is not None and last_epoch is not None:
            at = v.leave_ms + v.offset_ms
            order += 1
            deliveries.append(
                (v.leave_ms + 250, order, "leave", f"v{index}e{last_epoch}", last_epoch, at)
            )
    deliveries.sort()
    c = counter()
    samples = []
    pos = 0
    changes_at = sorted(
        [v.join_ms for v in visitors] + [v.leave_ms for v in visitors if v.leave_ms is not None]
    )
    window = round(cfg.heartbeat_interval_s * 1000)

    def since(now: int) -> int:
        """Arrivals and departures from then on may be missing from the count: those of
        the last interval, and inside a settle window all those since its boundary."""
        boundary = epoch_start_ms(epoch_of(now, D), D)
        return min(now - window, boundary) if now - boundary < T.settle_ms else now - window

    for now in range(visitors[0].join_ms, horizon_ms, 100):
        while pos < len(deliveries) and deliveries[pos][0] <= now:
            _, _, kind, did, ep, at = deliveries[pos]
            if kind == "hb":
                c.heartbeat(ROOM, did, ep, at, now)
            else:
                c.leave(ROOM, did, ep, at, now)
            pos += 1
        c.tick(now)
        true = sum(
            1 for v in visitors if v.join_ms <= now and (v.leave_ms is None or now < v.leave_ms)
        )
        churn = sum(1 for t in changes_at if since(now) <= t <= now)
        samples.append((now, c.count(ROOM, now) - true, churn))
    return samples


@pytest.mark.parametrize("seed", range(5))
def test_exact_at_steady_state_across_rotations_with_skewed_clocks(seed: int) -> None:
    rng = random.Random(seed)
    skew = round(CONFIG.max_clock_skew_s * 1000) // 2  # pairwise disagreement up to max skew
    start = BASE + rng.randrange(0, D)
    visitors = [
        _Visitor(
            offset_ms=rng.randrange(-skew, skew),
            join_ms=start + rng.randrange(0, 5000),
            leave_ms=None,
        )
        for _ in range(30)
    ]
    samples = _simulate(visitors, start + 4 * D, seed)
    # Steady state: one heartbeat interval after the last arrival, or one settle window if
    # that is longer (an arrival just after a boundary may show when the window closes; the
    # churn test covers the time before).
    settled = [s for s in samples if s[0] >= start + 5000 + max(10_000, T.settle_ms)]
    assert settled and all(err == 0 for _, err, _ in settled)


@pytest.mark.parametrize("seed", range(5))
def test_with_churn_the_error_is_bounded_by_recent_arrivals_and_departures(seed: int) -> None:
    rng = random.Random(100 + seed)
    skew = round(CONFIG.max_clock_skew_s * 1000) // 2
    start = BASE + rng.randrange(0, D)
    horizon = start + 5 * D
    visitors = []
    for _ in range(40):
        join = start + rng.randrange(0, 4 * D)
        leave = join + rng.randrange(1000, 2 * D) if rng.random() < 0.6 else None
        if leave is not None and leave >= horizon:
            leave = None
        visitors.append(_Visitor(rng.randrange(-skew, skew), join, leave))
    visitors.sort(key=lambda v: v.join_ms)
    for now, err, churn in _simulate(visitors, horizon, seed):
        assert abs(err) <= churn, (now, err, churn)


@pytest.mark.parametrize("seed", range(3))
def test_the_default_schedule_counts_everyone_once_through_a_boundary(seed: int) -> None:
    """Shipped defaults (300 s epochs, a spread of one interval, so a 13 s settle window):
    visitors whose clocks disagree by up to the max skew, heartbeats arriving up to 300 ms
    late. The count is the number of visitors at every instant through the boundary: never
    two DIDs of one visitor, never a visitor missed, and after the window the new epoch's
    DIDs alone."""
    config = SitesConfig()
    timing = SiteTiming.from_config(config)
    d = timing.duration_ms
    boundary = 5_700_000 * d
    rng = random.Random(seed)
    plan = HeartbeatPlan(
        interval_ms=round(config.heartbeat_interval_s * 1000),
        duration_ms=d,
        spread_ms=round(config.rotation_spread_s * 1000),
        uniform=rng,
    )
    n, half_skew = 200, timing.skew_ms // 2 - 150
    deliveries: list[tuple[int, str, int, int]] = []  # (received, DID, epoch, at_ms)
    for index in range(n):
        offset = rng.randrange(-half_skew, half_skew)
        own = boundary - 40_000 + rng.randrange(10_000)
        while own < boundary + 40_000:
            epoch = epoch_of(own, d)
            deliveries.append((own - offset + rng.randrange(300), f"v{index}e{epoch}", epoch, own))
            own = plan.next_after(own)
    deliveries.sort()
    c = SiteCounter(timing)
    c.track(ROOM)
    pos = 0
    for now in range(boundary - 20_000, boundary + 35_000, 50):
        while pos < len(deliveries) and deliveries[pos][0] <= now:
            _, did, epoch, at = deliveries[pos]
            c.heartbeat(ROOM, did, epoch, at, now)
            pos += 1
        c.tick(now)
        assert c.count(ROOM, now) == n, now - boundary
    new_epoch = epoch_of(boundary, d)
    after = boundary + timing.settle_ms
    assert all(c.holds(ROOM, f"v{i}e{new_epoch}", new_epoch, after) for i in range(n))


def _simulate_many_rooms(
    rooms: int, visitors: int, seconds: int, rng: random.Random
) -> tuple[SiteCounter, int, int, list[str]]:
    """Visitors heartbeating (and sometimes leaving or going silent) in many rooms; the
    counter is ticked exactly when ``next_change_ms`` asks. Returns the counter, the number
    of heartbeats, the number of ticks, and every mismatch between the counts reported
    through changes and the counts computed on demand."""
    c = SiteCounter(T)
    keys = [f"{n:026d}" for n in range(rooms)]
    for key in keys:
        c.track(key)
    plans: list[tuple[int, str, str, int]] = []  # (due, room, did, joined-at)
    start = BASE + 7_000
    for n in range(rooms * visitors):
        plans.append((start + rng.randrange(10_000), keys[n % rooms], f"v{n}", 0))
    reported = dict.fromkeys(keys, 0)
    mismatches: list[str] = []
    heartbeats = ticks = 0
    interval = round(CONFIG.heartbeat_interval_s * 1000)
    end = start + seconds * 1000
    heapq.heapify(plans)
    now = start
    while plans and plans[0][0] < end:
        due, key, did, _ = heapq.heappop(plans)
        while (wake := c.next_change_ms(now)) is not None and wake <= due:
            now = wake
            ticks += 1
            for change in c.tick(now):
                reported[change.room_key] = change.new
        now = due
        epoch = epoch_of(now, D)
        roll = rng.random()
        if roll < 0.002:
            for change in c.leave(key, f"{did}@{epoch}", epoch, now, now):
                reported[change.room_key] = change.new
            continue  # left for good
        if roll < 0.004:
            continue  # went silent: must go stale
        for change in c.heartbeat(key, f"{did}@{epoch}", epoch, now, now):
            reported[change.room_key] = change.new
        heartbeats += 1
        nxt = now + interval
        boundary = epoch_start_ms(epoch + 1, D)
        if nxt >= boundary:
            nxt = boundary + rng.randrange(round(CONFIG.rotation_spread_s * 1000))
        heapq.heappush(plans, (nxt, key, did, 0))
        for k in (key, keys[rng.randrange(rooms)]):
            if reported[k] != c.count(k, now):
                mismatches.append(f"{k[-3:]} at {now - start}: {reported[k]} != {c.count(k, now)}")
    return c, heartbeats, ticks, mismatches


@pytest.mark.parametrize("seed", range(3))
def test_ticks_at_next_change_keep_reported_counts_exact(seed: int) -> None:
    _, heartbeats, _, mismatches = _simulate_many_rooms(20, 15, 200, random.Random(seed))
    assert heartbeats > 5_000
    assert mismatches == []


def test_time_passing_visits_rooms_rarely_in_steady_state() -> None:
    # 50 rooms of 20 visitors for four epochs: 24,000 heartbeats. A room is due about once
    # per (stale - interval) = 20 s, plus two sweeps per epoch; refreshed DIDs never wake it.
    _, heartbeats, ticks, mismatches = _simulate_many_rooms(50, 20, 240, random.Random(7))
    assert mismatches == []
    assert heartbeats > 20_000
    assert ticks < heartbeats / 40, (ticks, heartbeats)


def test_holds_tells_whether_a_heartbeat_would_add_a_visitor() -> None:
    c = counter()
    t = BASE + 10_000
    e = epoch_of(t, D)
    assert not c.holds(ROOM, "x", e, t)
    assert not c.holds("b" * 26, "x", e, t)  # untracked room
    beat(c, "x", t)
    assert c.holds(ROOM, "x", e, t + 1)
    assert not c.holds(ROOM, "x", e + 1, t + 1)  # another epoch, another DID set
    assert not c.holds(ROOM, "x", e, t + T.stale_ms)  # gone stale
    beat(c, "y", t)
    c.leave(ROOM, "y", e, t + 2, t + 2)
    assert not c.holds(ROOM, "y", e, t + 3)


def test_footprint_counts_what_the_counter_holds() -> None:
    c = counter()
    assert c.footprint() == CounterFootprint(rooms=1, epochs=0, dids=0, left=0, deadlines=0)
    t = BASE + 10_000
    e = epoch_of(t, D)
    beat(c, "x", t)
    beat(c, "y", t + 500)
    beat(c, "y", t + 1_000)  # a refresh: its outdated deadline stays queued behind x's
    c.leave(ROOM, "w", e, t + 2_000, t + 2_000)  # a DID never counted is still remembered
    held = c.footprint()
    assert (held.epochs, held.dids, held.left, held.deadlines) == (1, 2, 1, 3)
    assert held.entries == 6
    beat(c, "z", BASE + D + 10_000)  # next epoch: a second bucket, the old one kept
    assert c.footprint().epochs == 2
