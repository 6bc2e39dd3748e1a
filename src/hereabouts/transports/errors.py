"""Typed errors of the transport layer, placed under the project-wide error tree.

Misuse of a transport (a bad topic, a will set too late, publishing while the plaza is
unreachable) is a :class:`~hereabouts.errors.LocalError`: the caller decides what to do
about it. A broker refusing something we asked for politely is a
:class:`~hereabouts.errors.RemoteError`. Network trouble inside the reconnect loop is never
raised at all: it is recorded in the transport's connection state and retried.
"""

from __future__ import annotations

from hereabouts.errors import ConfigError, LocalError, RemoteError


class TransportConfigError(ConfigError):
    """A transport or broker option is out of range."""

    reason = "transport_config"


class InvalidTopic(LocalError):
    """A topic or topic filter breaks the MQTT rules (empty, NUL, misplaced wildcard, ...)."""

    reason = "invalid_topic"


class PayloadTooLarge(LocalError):
    """An outgoing payload is larger than the transport's ``max_payload_bytes``."""

    reason = "payload_too_large"


class WillError(LocalError):
    """The will cannot be set: too late, or the transport cannot carry wills."""

    reason = "will"


class WillAfterConnect(WillError):
    """``set_will`` was called after the transport started connecting.

    MQTT sends the will inside CONNECT, so it must be known before the first connection.
    """

    reason = "will_after_connect"


class WillNotSupported(WillError):
    """This transport has no way to publish a message on our behalf when we vanish."""

    reason = "will_not_supported"


class NotConnected(LocalError):
    """The transport has no live connection to its plaza right now.

    ``publish`` raises this instead of queueing: a presence event delivered minutes late
    after a reconnect is worse than one never sent, because the node runtime re-announces
    itself (``hey_there``) after every reconnect. The caller counts it and moves on.
    """

    reason = "not_connected"


class Backlogged(NotConnected):
    """The broker has stopped reading what we send: QoS 0 publications are refused rather
    than queued without bound (at most once allows dropping them)."""

    reason = "broker_backlogged"


class TransportClosed(NotConnected):
    """The transport was closed (or killed) and cannot be used again."""

    reason = "transport_closed"


class SubscriptionRefused(RemoteError):
    """The broker answered a SUBSCRIBE with a failure code (usually an ACL)."""

    reason = "subscription_refused"


class BrokerUnavailable(LocalError):
    """The embedded broker could neither be started nor joined on the requested port."""

    reason = "broker_unavailable"


class BrokerPortTaken(BrokerUnavailable):
    """Something that is not an MQTT broker is listening on the requested port."""

    reason = "broker_port_taken"
