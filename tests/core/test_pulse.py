"""The pulse watch, sans-I/O: quiet peers, being cut off, stalls and replays."""

from __future__ import annotations

from hereabouts.core.pulse import (
    FLAP_HOLD_MS,
    MAX_EVERY_MS,
    RECONNECT_GRACE_MS,
    STALL_MS,
    TICK_MS,
    PulseWatch,
    pulse_every_ms,
)


def ticking(
    watch: PulseWatch,
    start_ms: int,
    end_ms: int,
    *,
    echo_every_ms: int | None = 1000,
    beats: dict[str, int] | None = None,
) -> list[tuple[int, str]]:
    """Tick from ``start_ms`` to ``end_ms``, our echo and ``beats`` (did -> interval)
    arriving on time, each pulse numbered by the time it is sent; ``(when, what)`` of every
    change."""
    found: list[tuple[int, str]] = []
    for now in range(start_ms, end_ms + 1, TICK_MS):
        if echo_every_ms is not None and now % echo_every_ms == 0:
            watch.own(now, now)
        for did, every in (beats or {}).items():
            if now % every == 0:
                watch.heard(did, boot="b", seq=now, every_ms=every, now_ms=now)
        changes = watch.tick(now)
        found += [(now, f"quiet {did}") for did in changes.quiet]
        if changes.cut_off is not None:
            found.append((now, "cut off" if changes.cut_off else "restored"))
    return found


def test_a_peer_that_stops_is_quiet_after_missed_intervals_and_back_at_its_next_pulse() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    assert ticking(watch, 0, 5000, beats={"p": 1000}) == []
    # p's last pulse was at 5000; it stops. Our echo goes on.
    found = ticking(watch, 5250, 12_000)
    assert found == [(8250, "quiet p")]
    assert watch.is_quiet("p") and watch.quiet_peers() == ["p"]
    taken, back = watch.heard("p", boot="b", seq=12_000, every_ms=1000, now_ms=12_000)
    assert taken and back
    assert not watch.is_quiet("p")


def test_each_peer_is_judged_by_the_interval_it_announced() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 4000, beats={"fast": 1000, "slow": 4000})
    found = ticking(watch, 4250, 20_000)
    assert found == [(7250, "quiet fast"), (16_250, "quiet slow")]


def test_announced_intervals_are_clamped() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    watch.heard("p", boot="b", seq=1, every_ms=1, now_ms=0)  # judged as if 500 ms
    watch.own(1, 0)
    assert [watch.tick(now).quiet for now in (0, 250, 500, 750, 1000, 1250, 1500)] == [
        [],
        [],
        [],
        [],
        [],
        [],
        [],
    ]
    assert watch.tick(1750).quiet == ["p"]
    slow = PulseWatch(missed=3, own_every_ms=1000)
    slow.heard("q", boot="b", seq=1, every_ms=10**12, now_ms=0)  # at most 10 min
    found = ticking(slow, 0, 3 * MAX_EVERY_MS + 1000)
    assert found == [(3 * MAX_EVERY_MS + TICK_MS, "quiet q")]


def test_when_our_own_pulses_stop_we_are_cut_off_and_judge_nobody() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 5000, beats={"p": 1000})
    found = ticking(watch, 5250, 20_000, echo_every_ms=None)  # nothing reaches us
    assert found == [(8250, "cut off")]
    assert watch.cut_off and not watch.is_quiet("p")
    assert watch.cut_off_since_ms == 8250
    # The link returns: our echo and p's pulses come back, p was never judged.
    found = ticking(watch, 21_000, 30_000, beats={"p": 1000})
    assert found == [(21_000, "restored")]
    assert not watch.is_quiet("p")


def test_peers_pulses_resuming_a_moment_after_ours_are_not_taken_for_silence() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 5000, beats={"p": 1000})
    ticking(watch, 5250, 15_000, echo_every_ms=None)
    watch.own(15_250, 15_250)
    assert watch.tick(15_250).cut_off is False
    # p's pulse arrives 900 ms later: its last one is 10 s old, but silence restarts now.
    assert watch.tick(15_500).quiet == []
    watch.heard("p", boot="b", seq=16_150, every_ms=1000, now_ms=16_150)
    assert watch.tick(16_250).quiet == []


def test_a_stall_of_our_own_process_makes_nobody_quiet_and_us_not_cut_off() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 5000, beats={"p": 1000})
    # We were stopped for 20 s; the first tick after it runs before the backlog is read.
    resumed = 25_000
    assert resumed - 5000 > STALL_MS
    changes = watch.tick(resumed)
    assert changes.quiet == [] and changes.cut_off is None
    # The backlog arrives; everything goes on as before.
    watch.own(resumed, resumed + 10)
    watch.heard("p", boot="b", seq=resumed, every_ms=1000, now_ms=resumed + 10)
    assert ticking(watch, resumed + 250, resumed + 6000, beats={"p": 1000}) == []


def test_replays_within_a_boot_are_not_taken_and_another_boot_starts_afresh() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    assert watch.heard("p", boot="b1", seq=5, every_ms=1000, now_ms=5000) == (True, False)
    assert watch.heard("p", boot="b1", seq=5, every_ms=1000, now_ms=5100)[0] is False
    assert watch.heard("p", boot="b1", seq=4, every_ms=1000, now_ms=5200)[0] is False
    # Which boot is current is the projection's to say (the runtime passes only that one's
    # pulses); a new boot's numbers start again, whatever its clock says.
    assert watch.heard("p", boot="b2", seq=1, every_ms=1000, now_ms=6000)[0] is True
    assert watch.heard("p", boot="b2", seq=2, every_ms=1000, now_ms=7000)[0] is True
    assert watch.own(3, 6000) and not watch.own(3, 6100) and not watch.own(2, 6200)


def test_forgetting_a_peer_stops_watching_it() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 2000, beats={"p": 1000})
    ticking(watch, 2250, 6000)
    assert watch.is_quiet("p")
    assert watch.forget("p") is True
    assert watch.watched() == 0 and not watch.forget("p")


def test_without_an_echo_hearing_anyone_is_what_says_we_are_connected() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000, echo=False)
    assert ticking(watch, 0, 5000, echo_every_ms=None) == []  # nobody to hear: not cut off
    ticking(watch, 5000, 8000, echo_every_ms=None, beats={"p": 1000, "q": 1000})
    found = ticking(watch, 8250, 20_000, echo_every_ms=None)  # everyone stops at once
    assert found == [(11_250, "cut off")]


def test_the_interval_stretches_with_the_plaza_so_each_node_receives_a_bounded_rate() -> None:
    assert pulse_every_ms(1000, 10, 200.0) == 1000
    assert pulse_every_ms(1000, 199, 200.0) == 1000
    assert pulse_every_ms(1000, 999, 200.0) == 5000
    assert pulse_every_ms(1000, 10**9, 200.0) == MAX_EVERY_MS
    for peers in (1, 100, 1000, 10_000):
        every = pulse_every_ms(1000, peers, 200.0)
        assert (peers + 1) * 1000 / every <= 200.0 or every == 1000


def test_after_a_cut_off_without_reconnecting_peers_are_judged_from_our_return() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 5000, beats={"p": 1000, "q": 1000})
    ticking(watch, 5250, 15_000, echo_every_ms=None)  # a slow broker: nothing for 10 s
    # Back at 16 s; q died during it and never pulses again: quiet 3 s after our return.
    found = ticking(watch, 16_000, 25_000, beats={"p": 1000})
    assert found == [(16_000, "restored"), (19_250, "quiet q")]


def test_after_a_reconnect_peers_get_the_backoff_s_ceiling_to_come_back() -> None:
    # A broker restart cut everyone off; peers reconnect over the backoff's jitter.
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 5000, beats={"slow": 1000, "prompt": 1000, "dead": 1000})
    ticking(watch, 5250, 15_000, echo_every_ms=None)
    watch.reconnected()
    # We are back at 16 s; "prompt" at 17 s, "slow" at 40 s; "dead" never.
    found = ticking(watch, 16_000, 16_750)
    found += ticking(watch, 17_000, 39_750, beats={"prompt": 1000})
    assert found == [(16_000, "restored")]
    found = ticking(watch, 40_000, 60_000, beats={"prompt": 1000, "slow": 1000})
    assert found == [(16_000 + RECONNECT_GRACE_MS + 3000 + TICK_MS, "quiet dead")]


def test_a_peer_heard_during_our_cut_off_is_still_judged() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 5000, beats={"p": 1000})
    ticking(watch, 5250, 10_000, echo_every_ms=None, beats={"p": 1000})  # our echo is late
    watch.reconnected()
    # p hangs at 10 s, just before we hear ourselves again: no grace for it.
    found = ticking(watch, 10_250, 20_000)
    assert found == [(11_000, "restored"), (13_250, "quiet p")]


def test_a_peer_that_flaps_cannot_be_judged_quiet_again_at_once() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000)
    ticking(watch, 0, 2000, beats={"p": 1000})
    assert ticking(watch, 2250, 5500) == [(5250, "quiet p")]
    assert watch.heard("p", boot="b", seq=6000, every_ms=1000, now_ms=6000) == (True, True)
    found = ticking(watch, 6250, 20_000)  # it stops again at once
    assert found == [(6000 + FLAP_HOLD_MS, "quiet p")]


def test_when_our_interval_shrinks_the_next_pulse_is_awaited_at_the_old_one() -> None:
    watch = PulseWatch(missed=3, own_every_ms=5000)
    watch.tick(0)
    watch.own(1, 0)
    for now in range(250, 5000, 250):
        assert watch.tick(now).cut_off is None
    watch.set_own_every(1000)  # peers left: our next pulse, at 5 s, announces 1 s
    assert watch.tick(5000).cut_off is None
    watch.own(2, 5010)
    assert watch.quiet_after_ms == 3000
    assert [watch.tick(now).cut_off for now in range(5250, 8000, 250)] == [None] * 11
    assert watch.tick(8250).cut_off is True


def test_a_stealth_watcher_with_one_peer_judges_the_peer_not_itself() -> None:
    watch = PulseWatch(missed=3, own_every_ms=1000, echo=False)
    ticking(watch, 0, 2000, echo_every_ms=None, beats={"p": 1000})
    assert ticking(watch, 2250, 6000, echo_every_ms=None) == [(5250, "quiet p")]
