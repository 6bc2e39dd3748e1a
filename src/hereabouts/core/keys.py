"""The keys a node has heard: admitted at a bounded rate, proved by time, forgotten when
silent, and which of them holds which name.

A signature proves which key spoke; it says nothing about whether that key deserves memory,
work or a name. Keys cost nothing to make, so everything a node keeps per key is earned
here, and bounded whatever a flood of fresh keys does. Sans-I/O: the runtime passes the time
in (its own clock: arrival times, never the times keys write in their events), stores proven
records (:meth:`KeyBook.dirty`, :meth:`KeyBook.load`) and carries out the forgetting it is
told of.

Rules:

1. **Admission.** A key with no record is admitted only with a token from one bucket per
   node (``admit_burst``, refilled at ``admit_per_s``); :meth:`KeyBook.admissible` answers
   before the runtime pays for the signature check, so events of keys past the rate are
   refused for the price of parsing them. Members of an invited network (their credential is
   their proof) and keys restored from the node's own ledger need no token. At most
   ``max_keys`` records exist; past that, unknown keys are refused.
2. **Quarantine.** An admitted key is *unproven*. At most ``max_unproven`` unproven keys are
   held; a new one that needs room evicts the least recently heard (the runtime forgets it).
3. **Proof by time.** A key whose own events reached us across ``settle_s`` or more (first
   and latest arrival) is *proven*: it leaves the quarantine, may hold its name, and counts
   as a howdy responder. The proof is continuous presence: an unproven key silent for
   ``silence_ms`` (the MISSING threshold) is forgotten, so its clock starts again.
4. **Forgetting.** A proven key silent for ``forget_after_s`` drops out of the runtime's view
   (:meth:`KeyBook.expired`); its record, and so its hold on its name, lasts ``pin_ttl_s``.
5. **Names are labels, keys are identities.** Any key may use any name; nobody is refused
   for it (so a squatter cannot lock a real node out). The name is *held* by the proven key,
   heard within ``pin_ttl_s``, whose claim is oldest: a claim starts when a key that uses
   the name proves itself, or when a proven key takes the name up (so an old key cannot
   rename itself onto a name someone else holds), and a rotation statement hands the
   holder's claim to a new key. The holder is shown by the name alone; every other key,
   and every key before it has proved itself, is shown as ``name~fingerprint`` (the last six
   characters of its DID). In an invited network the credential binds the name instead.
6. **Whose welcome counts.** A responder is trusted to silence other howdys when it is a
   member or proven; while fewer than ``max_howdys`` keys are proven (a young network, such
   as a fleet's first start) any key heard *before* the hey_there it answers counts too, so
   a cold start does not turn every join into N replies, and a key made for the occasion
   still does not count.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, KeysView, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from hereabouts.config import TrustConfig

FINGERPRINT_CHARS: Final = 6
"""Characters of a DID shown after ``~``: 58^6 (about 38 billion) possibilities, so telling
two keys under one name apart at a glance, not a security check (compare the full DID)."""

HEARD_RESOLUTION_MS: Final = 1_000
"""Arrival times are kept to the second: a burst of events from one key updates its record
once. Proof takes minutes and forgetting minutes to days, so a second is precise enough."""

NameStatus = Literal["bound", "held", "settling", "contested"]
"""How a peer's name is shown: ``bound`` by an invited network's credential; ``held`` by this
key, proven and first; ``settling``: the key has not proved itself yet; ``contested``:
another key holds the name."""


@dataclass(slots=True)
class KeyRecord:
    """What a node keeps about one key. Times are the node's own clock, in Unix ms."""

    did: str
    name: str
    first_ms: int
    last_ms: int
    proven_ms: int | None = None
    """When it proved itself (or inherited the proof through a rotation)."""
    claim_ms: int | None = None
    """Since when it has been proven *and* using its current name (rule 5)."""
    member: bool = False
    rotated_to: str | None = None
    """A key it handed its name to: it no longer holds that name."""
    dropped: bool = field(default=False, compare=False)
    """The runtime has been told to forget its peer state (rule 4); the record stays."""

    @property
    def proven(self) -> bool:
        return self.proven_ms is not None or self.member


@dataclass(frozen=True, slots=True)
class Label:
    """How to show a key's name."""

    text: str
    status: NameStatus
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Heard:
    """What :meth:`KeyBook.heard` decided."""

    admitted: bool
    """False: the key was unknown and could not be admitted; refuse its event."""
    evicted: tuple[str, ...] = ()
    """Unproven keys pushed out of the quarantine to make room: forget them."""
    proved: bool = False
    """The key has just proved itself."""


HEARD: Final = Heard(admitted=True)
"""The common outcome of :meth:`KeyBook.heard`: admitted, nothing else to do."""
_REFUSED: Final = Heard(admitted=False)


def fingerprint(did: str) -> str:
    return did[-FINGERPRINT_CHARS:]


class KeyBook:
    """Records of heard keys (see the module rules)."""

    def __init__(self, config: TrustConfig | None = None, *, silence_ms: int, max_howdys: int):
        """``silence_ms``: how long an unproven key may be silent before it is forgotten
        (the plaza MISSING threshold); ``max_howdys``: the welcome count rule 6 refers to."""
        self._config = config or TrustConfig()
        self._silence_ms = silence_ms
        self._max_howdys = max_howdys
        self._settle_ms = int(self._config.settle_s * 1000)
        self._forget_ms = int(self._config.forget_after_s * 1000)
        self._pin_ms = int(self._config.pin_ttl_s * 1000)
        self._records: dict[str, KeyRecord] = {}
        self.records: Mapping[str, KeyRecord] = MappingProxyType(self._records)
        """A live, read-only view of every record, by DID (the hot path reads it directly)."""
        self.generation = 0
        """Bumped whenever a key is proven or dropped: what depends on who is proven (the
        observers a projection ranks) knows to look again."""
        self._unproven: OrderedDict[str, None] = OrderedDict()  # least recently heard first
        self._proven: OrderedDict[str, None] = OrderedDict()  # least recently heard first
        self._claims: dict[str, set[str]] = {}  # name -> keys using it
        self._holders: dict[str, str] = {}  # name -> holding key
        self._tokens = float(self._config.admit_burst)
        self._tokens_at: int | None = None
        self._dirty: set[str] = set()

    # --- admission ---------------------------------------------------------------------

    def admissible(self, did: str, now_ms: int) -> bool:
        """Whether an event of ``did`` may be taken in (checked before its signature)."""
        if did in self._records:
            return True
        if len(self._records) >= self._config.max_keys:
            return False
        self._refill(now_ms)
        return self._tokens >= 1.0

    def full(self) -> bool:
        return len(self._records) >= self._config.max_keys

    def heard(
        self,
        did: str,
        name: str,
        now_ms: int,
        member: bool = False,
        *,
        restore: bool = False,
    ) -> Heard:
        """``did`` spoke (a verified event, arriving now). ``member``: an invited network's
        credential vouches for it; ``restore``: it comes from our own ledger."""
        record = self._records.get(did)
        if record is None:
            return self._admit(did, name, now_ms, member=member, restore=restore)
        if (
            now_ms - record.last_ms < HEARD_RESOLUTION_MS
            and name == record.name
            and (record.member or not member)
            and (record.proven or now_ms - record.first_ms < self._settle_ms)
        ):
            return HEARD
        record.last_ms = max(record.last_ms, now_ms)
        record.dropped = False
        if member and not record.member:
            record.member = True
            self._make_proven(record)
        if name != record.name:
            self._rename(record, name, now_ms)
        proved = False
        if record.proven:
            self._proven.move_to_end(did)
            if record.proven_ms is not None:
                self._dirty.add(did)
        else:
            self._unproven.move_to_end(did)
            if record.last_ms - record.first_ms >= self._settle_ms:
                record.proven_ms = record.claim_ms = now_ms
                self._make_proven(record)
                proved = True
        return Heard(admitted=True, proved=True) if proved else HEARD

    def vouch_for_self(self, did: str, name: str, now_ms: int) -> None:
        """The node's own key: it needs no proof to the node that holds it (its claim on
        its name still starts now, so a key that proved itself under it earlier keeps it)."""
        self.heard(did, name, now_ms, restore=True)
        record = self._records[did]
        if record.proven_ms is None:
            record.proven_ms = record.claim_ms = now_ms
            self._make_proven(record)

    def rotate(self, old_did: str, new_did: str, now_ms: int) -> None:
        """A verified rotation statement: ``old_did`` hands its place to ``new_did`` (which
        must have been heard). The new key inherits the old key's proof and name hold."""
        old, new = self._records.get(old_did), self._records.get(new_did)
        if old is None or new is None or old.proven_ms is None or old.claim_ms is None:
            return
        old.rotated_to = new_did
        was_proven = new.proven
        if new.proven_ms is None or old.proven_ms < new.proven_ms:
            new.proven_ms = old.proven_ms
        if old.name == new.name and (new.claim_ms is None or old.claim_ms < new.claim_ms):
            new.claim_ms = old.claim_ms
        if new.claim_ms is None:
            new.claim_ms = now_ms
        if not was_proven:
            self._make_proven(new)
        self._dirty.update((old_did, new_did))
        for name in {old.name, new.name}:
            self._elect(name)

    def _admit(
        self, did: str, name: str, now_ms: int, *, member: bool, restore: bool
    ) -> Heard:
        if len(self._records) >= self._config.max_keys:
            return _REFUSED
        if not (member or restore):
            self._refill(now_ms)
            if self._tokens < 1.0:
                return _REFUSED
            self._tokens -= 1.0
        record = KeyRecord(did=did, name=name, first_ms=now_ms, last_ms=now_ms, member=member)
        self._records[did] = record
        self._claims.setdefault(name, set()).add(did)
        evicted: list[str] = []
        if member:
            self._make_proven(record)
        else:
            self._unproven[did] = None
            while len(self._unproven) > self._config.max_unproven:
                oldest, _ = self._unproven.popitem(last=False)
                self._drop(oldest)
                evicted.append(oldest)
        return Heard(admitted=True, evicted=tuple(evicted)) if evicted else HEARD

    def _refill(self, now_ms: int) -> None:
        if self._tokens_at is not None:
            earned = max(0, now_ms - self._tokens_at) * self._config.admit_per_s / 1000
            self._tokens = min(float(self._config.admit_burst), self._tokens + earned)
        self._tokens_at = now_ms

    # --- time passing ------------------------------------------------------------------

    def expired(self, now_ms: int) -> list[str]:
        """Keys whose peer state the runtime should forget now (rule 2-4); records past
        ``pin_ttl_s`` are dropped here as well."""
        gone: list[str] = []
        while self._unproven:
            did = next(iter(self._unproven))
            if now_ms - self._records[did].last_ms <= self._silence_ms:
                break
            del self._unproven[did]
            self._drop(did)
            gone.append(did)
        unpinned: list[str] = []
        for did in self._proven:  # least recently heard first: stop at the first fresh one
            record = self._records[did]
            silent = now_ms - record.last_ms
            if silent <= self._forget_ms:
                break
            if silent > self._pin_ms and not record.member:
                unpinned.append(did)
            if not record.dropped:
                record.dropped = True
                gone.append(did)
        for did in unpinned:
            del self._proven[did]
            self._drop(did)
            self._dirty.add(did)
        return gone

    def forget(self, did: str) -> None:
        """Drop a key at once (a revoked member, an operator's choice)."""
        if self._records.get(did) is None:
            return
        self._unproven.pop(did, None)
        self._proven.pop(did, None)
        self._drop(did)
        self._dirty.add(did)

    # --- what the runtime asks -----------------------------------------------------------

    def known(self, did: str) -> bool:
        return did in self._records

    @property
    def known_dids(self) -> KeysView[str]:
        """A live view of every known DID (``in`` on it costs a dict look-up)."""
        return self._records.keys()

    def record(self, did: str) -> KeyRecord | None:
        return self._records.get(did)

    def proven(self, did: str) -> bool:
        record = self._records.get(did)
        return record is not None and record.proven

    def proven_count(self) -> int:
        return len(self._proven)

    def unproven_count(self) -> int:
        return len(self._unproven)

    def __len__(self) -> int:
        return len(self._records)

    def trusted_responder(self, did: str, hey_there_heard_ms: int) -> bool:
        """Whether ``did``'s howdy may count towards ``max_howdys`` (rule 6)."""
        record = self._records.get(did)
        if record is None:
            return False
        if record.proven:
            return True
        young = len(self._proven) < self._max_howdys
        return young and record.first_ms < hey_there_heard_ms

    def label(self, did: str, *, bound: bool = False) -> Label:
        """How to show ``did``'s name (rule 5); ``bound``: a credential names it."""
        record = self._records.get(did)
        print_ = fingerprint(did)
        if record is None:
            return Label(f"~{print_}", "settling", print_)
        if bound:
            claimants = self._claims.get(record.name, set())
            members = [d for d in claimants if self._records[d].member]
            if len(members) <= 1:
                return Label(record.name, "bound", print_)
            return Label(f"{record.name}~{print_}", "contested", print_)
        holder = self._holders.get(record.name)
        if holder == did:
            return Label(record.name, "held", print_)
        status: NameStatus = "contested" if holder is not None else "settling"
        return Label(f"{record.name}~{print_}", status, print_)

    # --- storage -------------------------------------------------------------------------

    def load(self, records: Iterable[KeyRecord], now_ms: int) -> None:
        """Proven records read back from storage (before any event is heard)."""
        for record in sorted(records, key=lambda r: r.last_ms):
            if record.proven_ms is None or now_ms - record.last_ms > self._pin_ms:
                continue
            if record.claim_ms is None:
                record.claim_ms = record.proven_ms
            record.dropped = now_ms - record.last_ms > self._forget_ms
            self._records[record.did] = record
            self._proven[record.did] = None
            self._claims.setdefault(record.name, set()).add(record.did)
        for name in list(self._claims):
            self._elect(name)

    def dirty(self) -> tuple[list[KeyRecord], list[str]]:
        """Proven records changed since the last call, and keys dropped, to write back."""
        changed, dropped = [], []
        for did in self._dirty:
            record = self._records.get(did)
            if record is None:
                dropped.append(did)
            elif record.proven_ms is not None:
                changed.append(record)
        self._dirty = set()
        return changed, dropped

    # --- the rules ---------------------------------------------------------------------

    def _make_proven(self, record: KeyRecord) -> None:
        self.generation += 1
        self._unproven.pop(record.did, None)
        self._proven[record.did] = None
        self._dirty.add(record.did)
        self._elect(record.name)

    def _rename(self, record: KeyRecord, name: str, now_ms: int) -> None:
        old = record.name
        claimants = self._claims.get(old)
        if claimants is not None:
            claimants.discard(record.did)
            if not claimants:
                del self._claims[old]
        record.name = name
        self._claims.setdefault(name, set()).add(record.did)
        self._dirty.add(record.did)
        if record.proven_ms is not None:
            record.claim_ms = now_ms  # a new name is claimed from now on, proof or not
        if record.proven:
            self._elect(old)
            self._elect(name)

    def _drop(self, did: str) -> None:
        self.generation += 1
        record = self._records.pop(did)
        claimants = self._claims.get(record.name)
        if claimants is not None:
            claimants.discard(did)
            if not claimants:
                del self._claims[record.name]
        if self._holders.get(record.name) == did:
            self._elect(record.name)

    def _elect(self, name: str) -> None:
        """Rule 5: the name goes to the proven claimant with the oldest claim."""
        best: tuple[int, str] | None = None
        for did in self._claims.get(name, ()):
            record = self._records[did]
            if record.claim_ms is None or record.rotated_to is not None:
                continue
            candidate = (record.claim_ms, did)
            if best is None or candidate < best:
                best = candidate
        if best is None:
            self._holders.pop(name, None)
        else:
            self._holders[name] = best[1]


__all__ = ["FINGERPRINT_CHARS", "HEARD", "Heard", "KeyBook", "KeyRecord", "Label", "NameStatus"]
