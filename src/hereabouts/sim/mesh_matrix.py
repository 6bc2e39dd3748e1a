"""The mesh simulation's fast model: every node's holdings as one row of a version matrix.

``V[node, origin]`` is the version of ``origin`` that ``node`` holds (the latest ``at_ms`` of
its events held, as an offset from :data:`hereabouts.sim.mesh.BASE_MS`; -1: none). On the
mesh a node's holdings of an origin are a function of that version: its hey_there, its
latest own event, and the failure reports it kept then (:mod:`hereabouts.sim.mesh_reports`),
so a reply can be planned from two rows. :func:`plan` computes exactly what
:func:`hereabouts.core.reconcile.plan_reply` sends, in numpy:

* the items are the evidence newer than the receiver's version: the hey_there of an origin
  it lacks (priority 3, fresher first), the latest own event when it is a newspaper
  (priority 4) and every kept report newer than its version (priority 2, ``unreachable``);
* in the planner's order (priority, then fresher first, then event id), cut at the budget:
  the first item that would overflow ends the reply, and at least one item goes.

Which event an origin's version names follows from the times alone: hey_theres and reports
fall on even milliseconds (start times and round instants) and newspapers on odd ones, and
an origin's hey_there is its only event at its start time. ``tests/sim/test_mesh_sim.py``
runs this model and the planner model (the real :func:`plan_reply` on real digests) side
by side through heartbeats, failure reports, failures and partitions: same rounds, same
bytes, same versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

PRIORITY_REPORT: Final = 2
PRIORITY_HEY_THERE: Final = 3
PRIORITY_NEWSPAPER: Final = 4


@dataclass(frozen=True, slots=True)
class MatrixPlan:
    """What one reply or push carries."""

    events: int
    size: int
    """Event bytes."""
    origins: np.ndarray
    versions: np.ndarray
    """The receiver's version of ``origins[i]`` rises to at least ``versions[i]``."""
    learnt: np.ndarray
    """Origins whose hey_there goes, in the order sent (the receiver learns them so)."""
    distinct: bool = True
    """Whether each origin appears once in ``origins``."""
    cut: bool = False
    """Whether the budget left out something the receiver lacks."""
    reports_cut: bool = False
    """The budget ended the reply among failure reports: the receiver then lacks older
    reports of a reporter whose version it holds, which this model cannot represent (it
    counts such replies instead; the runtime has the same gap, see docs/mesh.md)."""


def plan(
    src: np.ndarray,
    dst: np.ndarray,
    *,
    budget: int,
    hey_at: np.ndarray,
    hey_there_bytes: int,
    newspaper_bytes: int,
    report_bytes: int,
    reports: tuple[np.ndarray, ...],
) -> MatrixPlan | None:
    """What the holder of row ``src`` sends the holder of row ``dst`` (None: nothing)."""
    newer = np.flatnonzero(src > dst)
    if newer.size == 0:
        return None
    theirs = src[newer]
    mine = dst[newer]
    lacking = mine < 0
    newspaper = (theirs & 1).astype(bool)
    n_hey = int(np.count_nonzero(lacking))
    n_news = int(np.count_nonzero(newspaper))
    reporter, rep_at, rep_end, _ = reports
    if reporter.size:
        x = src[reporter]
        wanted = (rep_at <= x) & (x < rep_end) & (rep_at > dst[reporter])
        rep_index = np.flatnonzero(wanted)
    else:
        rep_index = reporter
    n_rep = int(rep_index.size)
    total = n_hey * hey_there_bytes + n_news * newspaper_bytes + n_rep * report_bytes
    if total <= budget:
        hey_origins = newer[lacking]
        learnt = hey_origins[np.argsort(-hey_at[hey_origins], kind="stable")]
        return MatrixPlan(n_hey + n_news + n_rep, total, newer, theirs, learnt)
    return _cut(
        newer, theirs, lacking, newspaper, rep_index, reports, budget=budget, hey_at=hey_at,
        sizes=(hey_there_bytes, newspaper_bytes, report_bytes),
    )


def _cut(
    newer: np.ndarray,
    theirs: np.ndarray,
    lacking: np.ndarray,
    newspaper: np.ndarray,
    rep_index: np.ndarray,
    reports: tuple[np.ndarray, ...],
    *,
    budget: int,
    hey_at: np.ndarray,
    sizes: tuple[int, int, int],
) -> MatrixPlan:
    """The budget binds: order every item as the planner does and cut."""
    reporter, rep_at, _, subject = reports
    hey_origins = newer[lacking]
    news_origins = newer[newspaper]
    n_hey, n_news, n_rep = hey_origins.size, news_origins.size, rep_index.size
    if n_hey == 0:
        fast = _cut_newspapers(
            theirs[newspaper], news_origins, n_rep, reports, rep_index, budget, sizes
        )
        if fast is not None:
            return fast
    prio = np.concatenate([
        np.full(n_rep, PRIORITY_REPORT),
        np.full(n_hey, PRIORITY_HEY_THERE),
        np.full(n_news, PRIORITY_NEWSPAPER),
    ])
    at = np.concatenate([
        rep_at[rep_index], hey_at[hey_origins].astype(np.int64),
        theirs[newspaper].astype(np.int64),
    ])
    origin = np.concatenate([reporter[rep_index], hey_origins, news_origins])
    second = np.concatenate([
        subject[rep_index], np.zeros(n_hey + n_news, dtype=np.int64)
    ])
    size = np.concatenate([
        np.full(n_rep, sizes[2]), np.full(n_hey, sizes[0]), np.full(n_news, sizes[1])
    ])
    order = np.lexsort((second, origin, -at, prio))
    cumulative = np.cumsum(size[order])
    count = max(1, int(np.searchsorted(cumulative, budget, side="right")))
    taken = order[:count]
    kinds = prio[taken]
    learnt = origin[taken][kinds == PRIORITY_HEY_THERE]
    return MatrixPlan(
        count,
        int(cumulative[count - 1]),
        origin[taken],
        at[taken],
        learnt,
        distinct=False,
        cut=True,
        reports_cut=count < n_rep,
    )


def _cut_newspapers(
    news_at: np.ndarray,
    news_origins: np.ndarray,
    n_rep: int,
    reports: tuple[np.ndarray, ...],
    rep_index: np.ndarray,
    budget: int,
    sizes: tuple[int, int, int],
) -> MatrixPlan | None:
    """The usual cut: every report fits and the budget ends among the newspapers, which
    all have one size, so the reply holds the reports and the freshest newspapers that fit
    (then lowest origin first among equal times, as event ids order them), found without
    sorting them all. None when the cut falls elsewhere."""
    room = budget - n_rep * sizes[2]
    if room < sizes[1] or news_at.size == 0:
        return None
    count = min(news_at.size, room // sizes[1])
    key = -news_at.astype(np.int64) * (int(news_origins.max()) + 1) + news_origins
    chosen = np.argpartition(key, count - 1)[:count] if count < key.size else slice(None)
    reporter, rep_at = reports[0], reports[1]
    origins = np.concatenate([reporter[rep_index], news_origins[chosen]])
    versions = np.concatenate([rep_at[rep_index], news_at[chosen].astype(np.int64)])
    return MatrixPlan(
        n_rep + count,
        n_rep * sizes[2] + count * sizes[1],
        origins,
        versions,
        np.zeros(0, dtype=np.int64),
        distinct=n_rep == 0,
        cut=True,
    )


__all__ = ["MatrixPlan", "plan"]
