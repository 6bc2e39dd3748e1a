"""hereabouts: signed, private presence for peer networks and websites.

The names most programs need, importable from here::

    from hereabouts import Node, production

    async with Node(production()) as node:
        print(node.peers())

Each is loaded when first used, so ``import hereabouts`` (and the command line) stays quick.
The full reference is docs/python-api.md; every module documents itself.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC: dict[str, str] = {
    # peer presence
    "Node": "hereabouts.peers.node",
    "PeerView": "hereabouts.core.projection",
    "Status": "hereabouts.core.effects",
    "StatusChanged": "hereabouts.core.effects",
    # configuration
    "Config": "hereabouts.config",
    "production": "hereabouts.config",
    "testing": "hereabouts.config",
    # identity and the wire
    "Identity": "hereabouts.identity",
    "seal": "hereabouts.wire",
    "unseal": "hereabouts.wire",
    # site presence
    "PresenceManager": "hereabouts.sites.manager",
    "Room": "hereabouts.sites.rooms",
    "room_key": "hereabouts.sites.rooms",
    # transports
    "MemoryBus": "hereabouts.transports.memory",
    "MqttTransport": "hereabouts.transports.mqtt",
    "MqttSettings": "hereabouts.transports.mqtt",
    # presence@2
    "sign_presence": "hereabouts.advert",
    "verify_presence": "hereabouts.advert",
    # errors
    "HereaboutsError": "hereabouts.errors",
}
"""Public name -> the module that defines it."""

__all__ = [
    "Config",
    "HereaboutsError",
    "Identity",
    "MemoryBus",
    "MqttSettings",
    "MqttTransport",
    "Node",
    "PeerView",
    "PresenceManager",
    "Room",
    "Status",
    "StatusChanged",
    "__version__",
    "production",
    "room_key",
    "seal",
    "sign_presence",
    "testing",
    "unseal",
    "verify_presence",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'hereabouts' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what type checkers and editors see
    from hereabouts.advert import sign_presence, verify_presence
    from hereabouts.config import Config, production, testing
    from hereabouts.core.effects import Status, StatusChanged
    from hereabouts.core.projection import PeerView
    from hereabouts.errors import HereaboutsError
    from hereabouts.identity import Identity
    from hereabouts.peers.node import Node
    from hereabouts.sites.manager import PresenceManager
    from hereabouts.sites.rooms import Room, room_key
    from hereabouts.transports.memory import MemoryBus
    from hereabouts.transports.mqtt import MqttSettings, MqttTransport
    from hereabouts.wire import seal, unseal
