"""Bytes of each plaza message, measured by sealing real events once.

The simulator's events are not sealed (nothing checks them), but its byte counts should be
the wire's: a node with a real key seals one event of each kind, with a name, boot id and
times as wide as a simulated node's, and the sizes are read off. A howdy's size is its
header plus its neighbours, each a sealed hey_there and, when newer, a sealed newspaper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from hereabouts.events import Chau, HeyThere, Howdy, Lost, Newspaper, NewspaperStatus
from hereabouts.identity import Identity
from hereabouts.peers.pulse import seal_pulse
from hereabouts.wire import seal

_AT_MS: Final = 1_764_547_200_000


@dataclass(frozen=True, slots=True)
class Sizes:
    hey_there: int
    newspaper: int
    chau: int
    lost: int
    howdy_base: int
    """A howdy with no neighbours; each neighbour adds its events' bytes."""
    pulse: int


def measure() -> Sizes:
    identity = Identity.from_seed(bytes(32))
    header = {
        "name": "node-00000",
        "did": identity.did,
        "boot_id": "0000000000000001",
        "session": 3,
        "at_ms": _AT_MS,
    }
    hey = HeyThere(**header, started_at_ms=_AT_MS)  # type: ignore[arg-type]
    news = Newspaper(
        **header,  # type: ignore[arg-type]
        status=NewspaperStatus(online_peers=9_999, uptime_s=86_400, next_in_s=132),
    )
    howdy = Howdy(
        **header,  # type: ignore[arg-type]
        to_did=identity.did,
        answers="a" * 64,
    )
    return Sizes(
        hey_there=len(seal(hey, identity)),
        newspaper=len(seal(news, identity)),
        chau=len(seal(Chau(**header), identity)),  # type: ignore[arg-type]
        lost=len(seal(Lost(**header), identity)),  # type: ignore[arg-type]
        howdy_base=len(seal(howdy, identity)),
        pulse=len(
            seal_pulse(identity, boot="0000000000000001", seq=1, at_ms=_AT_MS, every_ms=1000)
        ),
    )


SIZES: Final = measure()

__all__ = ["SIZES", "Sizes", "measure"]
