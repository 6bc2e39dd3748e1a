"""Broker URLs as users write them: ``mqtt[s]://[user[:password]@]host[:port][,host[:port]...]``.

One ``--broker`` value (or several, repeated) says where the plaza is, how to reach it and as
whom:

* ``mqtt://`` is plain TCP (port 1883 by default); ``mqtts://`` is TLS (port 8883 by default),
  checked against the system's certificate authorities or ``--broker-ca FILE``.
* ``user:password@`` logs in with a user name and password. The password may instead come
  from ``HEREABOUTS_BROKER_PASSWORD`` (:data:`BROKER_PASSWORD_ENV`), which keeps it out of
  the process list; a password in the URL wins. Either way it is never logged, never shown
  in ``/healthz``, metrics or error messages: :meth:`BrokerUrl.redacted` writes ``***``.
* ``a:1883,b:1883,c:1883`` lists brokers to fail over between, tried in that order; a
  repeated ``--broker`` appends its hosts (scheme, user and options must then agree).
* ``?protocol=3.1.1`` or ``?protocol=5`` pins the MQTT version; the default ``auto`` tries 5
  and falls back to 3.1.1, which costs a time-out against brokers that drop an MQTT 5
  CONNECT unanswered (RabbitMQ).

Anything else is refused with a :class:`BadBrokerUrl` naming the problem in one line, with
the password (if any) replaced by ``***``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from hereabouts.errors import ConfigError

DEFAULT_MQTT_PORT = 1883
"""The IANA-registered MQTT port: an ``mqtt://`` URL without a port means this one."""

DEFAULT_MQTTS_PORT = 8883
"""The IANA-registered MQTT-over-TLS port: an ``mqtts://`` URL without a port means this one."""

BROKER_PASSWORD_ENV = "HEREABOUTS_BROKER_PASSWORD"
"""The broker password, when the URL names a user but no password (kept out of ``ps``)."""

MAX_BROKER_HOSTS = 16
"""Most brokers one node fails over between. A cluster has a handful of members; a long
list only lengthens a full pass (each dead member can cost a connect time-out)."""

REDACTED = "***"
"""What a password is written as wherever a URL is shown."""

Protocol = Literal["auto", "5", "3.1.1"]
PROTOCOLS: tuple[Protocol, ...] = ("auto", "5", "3.1.1")
_SCHEMES = {"mqtt": (False, DEFAULT_MQTT_PORT), "mqtts": (True, DEFAULT_MQTTS_PORT)}
_EXAMPLE = "mqtt[s]://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...][?protocol=3.1.1|5]"


class BadBrokerUrl(ConfigError):
    """A ``--broker`` URL cannot be used; the message says why (password redacted)."""

    reason = "bad_broker_url"


_Bad = Callable[[str], BadBrokerUrl]


@dataclass(frozen=True, slots=True)
class BrokerHost:
    """One broker address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """A parsed broker URL: the hosts in failover order and how to talk to them."""

    hosts: tuple[BrokerHost, ...]
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    protocol: Protocol = "auto"

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"

    def redacted(self) -> str:
        """The whole URL with the password written ``***``: safe to log and show."""
        return self._render(REDACTED if self.password is not None else None)

    def url(self) -> str:
        """The whole URL, password included: for passing on, never for showing."""
        return self._render(self.password)

    def _render(self, password: str | None) -> str:
        user = ""
        if self.username is not None:
            user = quote(self.username, safe="")
            if password is not None:
                secret = password if password == REDACTED else quote(password, safe="")
                user += f":{secret}"
            user += "@"
        query = f"?protocol={self.protocol}" if self.protocol != "auto" else ""
        hosts = ",".join(str(h) for h in self.hosts)
        return f"{self.scheme}://{user}{hosts}{query}"

    def __str__(self) -> str:
        return self.redacted()


def redact_url(text: str) -> str:
    """``text`` with whatever sits between ``user:`` and ``@`` written ``***``."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    userinfo, at, hosts = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return text
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{REDACTED}@{hosts}"


def parse_broker_url(text: str) -> BrokerUrl:
    """Parse one broker URL (see the module docstring), or raise :class:`BadBrokerUrl`."""
    shown = redact_url(text)

    def bad(problem: str) -> BadBrokerUrl:
        return BadBrokerUrl(f"broker URL {shown!r}: {problem}; write it as {_EXAMPLE}")

    scheme, sep, rest = text.strip().partition("://")
    if not sep:
        raise bad("it does not start with mqtt:// or mqtts://")
    if scheme.lower() not in _SCHEMES:
        raise bad(f"{scheme}:// is not a broker scheme (mqtt:// or mqtts://; no WebSockets)")
    tls, default_port = _SCHEMES[scheme.lower()]
    userinfo, at, rest = rest.rpartition("@")
    username = password = None
    if at:
        name, colon, secret = userinfo.partition(":")
        username = unquote(name)
        password = unquote(secret) if colon else None
        if not username:
            raise bad("it has a password but no user name")
    cut = min((i for i in (rest.find(m) for m in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "#" in tail:
        raise bad("it has a #fragment")
    tail = tail.removeprefix("/")
    if tail and not tail.startswith("?"):
        raise bad("it goes on after the port (a path)")
    query = tail.removeprefix("?")
    protocol = _protocol(query, bad)
    if not authority:
        raise bad("it has no host")
    parts = authority.split(",")
    if len(parts) > MAX_BROKER_HOSTS:
        raise bad(f"it lists {len(parts)} hosts; at most {MAX_BROKER_HOSTS}")
    hosts = tuple(_host(part, default_port, bad) for part in parts)
    return BrokerUrl(
        hosts=hosts, tls=tls, username=username, password=password, protocol=protocol
    )


def _protocol(query: str, bad: _Bad) -> Protocol:
    protocol: Protocol = "auto"
    if not query:
        return protocol
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        if key != "protocol" or not eq:
            raise bad(f"unknown option {key!r} (only ?protocol=3.1.1|5)")
        if value not in PROTOCOLS:  # then PROTOCOLS.index(value) below finds it
            raise bad(f"protocol {value!r} is not 3.1.1, 5 or auto")
        protocol = PROTOCOLS[PROTOCOLS.index(value)]
    return protocol


def _host(part: str, default_port: int, bad: _Bad) -> BrokerHost:
    if not part.strip():
        raise bad("it has an empty host in its list")
    try:
        split = urlsplit(f"//{part}")
        port = split.port
    except ValueError as exc:
        problem = str(exc)
        if "out of range" in problem:
            raise bad(f"{part!r}: its port is not in 1-65535") from None
        if "IPv6" in problem:
            raise bad(f"{part!r}: its IPv6 address needs a closing ], [::1]:1883") from None
        if part.count(":") > 1 and not part.startswith("["):
            raise bad(f"{part!r}: an IPv6 address needs brackets, [::1]:1883") from None
        raise bad(f"{part!r}: its port is not a number") from None
    host = split.hostname
    if not host or split.username is not None:
        raise bad(f"{part!r} has no host")
    if port == 0:
        raise bad(f"{part!r}: its port is not in 1-65535")
    return BrokerHost(host=host, port=port or default_port)


def combine_broker_urls(
    texts: Sequence[str], *, env: Mapping[str, str] | None = None
) -> BrokerUrl:
    """One :class:`BrokerUrl` from one or more URLs (a repeated ``--broker``): their hosts in
    order, the scheme, user and options they agree on, and the password from the URL or
    else from :data:`BROKER_PASSWORD_ENV`."""
    if not texts:
        raise BadBrokerUrl("no broker URL given")
    urls = [parse_broker_url(text) for text in texts]
    first = urls[0]
    for other in urls[1:]:
        if other.tls != first.tls:
            raise BadBrokerUrl(
                f"broker URLs {first.redacted()!r} and {other.redacted()!r} mix mqtt:// and "
                "mqtts://; every broker of one plaza is reached the same way"
            )
        for what in ("username", "password", "protocol"):
            mine, theirs = getattr(first, what), getattr(other, what)
            if mine is not None and theirs is not None and mine != theirs and (
                what != "protocol" or "auto" not in (mine, theirs)
            ):
                shown = what if what != "password" else "passwords"
                raise BadBrokerUrl(
                    f"broker URLs {first.redacted()!r} and {other.redacted()!r} disagree on "
                    f"their {shown}; give it once"
                )
    hosts: list[BrokerHost] = []
    for url in urls:
        hosts.extend(h for h in url.hosts if h not in hosts)
    if len(hosts) > MAX_BROKER_HOSTS:
        raise BadBrokerUrl(f"{len(hosts)} broker hosts given; at most {MAX_BROKER_HOSTS}")
    username = next((u.username for u in urls if u.username is not None), None)
    password = next((u.password for u in urls if u.password is not None), None)
    protocol: Protocol = next((u.protocol for u in urls if u.protocol != "auto"), "auto")
    if password is None:
        from_env = (os.environ if env is None else env).get(BROKER_PASSWORD_ENV)
        if from_env and username is None:
            raise BadBrokerUrl(
                f"{BROKER_PASSWORD_ENV} is set but the broker URL {first.redacted()!r} names "
                "no user; write it as mqtt[s]://USER@HOST:PORT"
            )
        password = from_env or None
    return BrokerUrl(
        hosts=tuple(hosts), tls=first.tls, username=username, password=password, protocol=protocol
    )
