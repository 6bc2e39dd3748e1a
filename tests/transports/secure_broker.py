"""Real Mosquittos that want a login: TLS and a password file, or access rules that change.

* :class:`SecureBroker`: a password file (``mosquitto_passwd -b``) and, optionally, TLS with
  a test CA and a server certificate for 127.0.0.1 made by ``openssl``.
* :class:`RulesBroker`: Mosquitto's dynamic-security plugin, whose rules can refuse a
  SUBSCRIBE and change while the broker runs (``mosquitto_ctrl dynsec``). Mosquitto 2.0's
  ``acl_file`` cannot stand in for it: it grants every SUBSCRIBE (SUBACK "granted QoS 1")
  and only withholds the messages, so a client never learns it is deaf. The plugin answers
  a denied filter with SUBACK 0x87 "not authorized" in MQTT 5 and 0x80 in MQTT 3.1.1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from tests.fixtures.mosquitto import MosquittoServer, find_mosquitto, free_port

DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
ADMIN, ADMIN_PASSWORD = "admin", "admin-password"
ROLE = "node"


B = TypeVar("B", bound=MosquittoServer)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path) -> TlsFiles:
    """A test CA and a server certificate for 127.0.0.1 signed by it (one day)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=hereabouts test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-keyout", str(ca_key), "-out", str(ca))
    _openssl("req", "-new", *ec, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(cert))
    return TlsFiles(ca=ca, cert=cert, key=key)


def make_client_cert(directory: Path, ca: TlsFiles) -> tuple[Path, Path]:
    """A client certificate (and its key) signed by ``ca``'s CA."""
    cert, key, csr = directory / "client.pem", directory / "client.key", directory / "client.csr"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-new", *ec, "-subj", "/CN=node", "-keyout", str(key), "-out", str(csr))
    extensions = directory / "client.ext"
    extensions.write_text("extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.ca),
             "-CAkey", str(ca.ca.with_suffix(".key")), "-CAcreateserial", "-days", "1",
             "-extfile", str(extensions), "-out", str(cert))
    return cert, key


class SecureBroker(MosquittoServer):
    """Mosquitto with logins required (``users``), and TLS when ``tls`` is given."""

    def __init__(
        self,
        *,
        binary: str,
        workdir: Path,
        port: int,
        users: dict[str, str],
        tls: TlsFiles | None = None,
        require_certificate: bool = False,
    ) -> None:
        super().__init__(binary=binary, workdir=workdir, port=port)
        self.passwords = workdir / "passwords"
        self.passwords.unlink(missing_ok=True)
        self.passwords.touch()
        for user, password in users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(self.passwords), user, password],
                check=True, capture_output=True,
            )
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {self.passwords}",
            "persistence false",
            # As root, Mosquitto would switch to its own user, who cannot read the test's
            # files under a private temporary directory.
            *(["user root"] if os.geteuid() == 0 else []),
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if tls is not None:
            lines += [
                f"cafile {tls.ca}",
                f"certfile {tls.cert}",
                f"keyfile {tls.key}",
                f"require_certificate {'true' if require_certificate else 'false'}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")



class RulesBroker(MosquittoServer):
    """Mosquitto with the dynamic-security plugin: one user, ``user``, whose role may use
    every ``hereabouts/#`` topic except the filters :meth:`deny` refuses."""

    def __init__(self, *, binary: str, workdir: Path, port: int, user: tuple[str, str]) -> None:
        super().__init__(binary=binary, workdir=workdir, port=port)
        self.user = user
        rules = workdir / "dynsec.json"
        rules.unlink(missing_ok=True)
        _ctrl("dynsec", "init", str(rules), ADMIN, ADMIN_PASSWORD)
        self.config_path.write_text("\n".join([
            f"listener {port} 127.0.0.1",
            "allow_anonymous false",
            "persistence false",
            *(["user root"] if os.geteuid() == 0 else []),
            f"plugin {DYNSEC_PLUGIN}",
            f"plugin_opt_config_file {rules}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "",
        ]))

    def start(self) -> None:
        super().start()
        name, password = self.user
        self._dynsec("createClient", name, "-p", password)
        self._dynsec("createRole", ROLE)
        self._dynsec("addRoleACL", ROLE, "subscribePattern", "hereabouts/#", "allow", "0")
        self._dynsec("addRoleACL", ROLE, "publishClientSend", "hereabouts/#", "allow", "0")
        self._dynsec("addClientRole", name, ROLE)

    def deny(self, topic_filter: str) -> None:
        """Refuse SUBSCRIBEs matching ``topic_filter`` from now on."""
        self._dynsec("addRoleACL", ROLE, "subscribePattern", topic_filter, "deny", "10")

    def allow(self, topic_filter: str) -> None:
        """Undo :meth:`deny`; already connected clients are judged by the new rules too."""
        self._dynsec("removeRoleACL", ROLE, "subscribePattern", topic_filter)

    def _dynsec(self, *args: str) -> None:
        _ctrl("-h", self.host, "-p", str(self.port), "-u", ADMIN, "-P", ADMIN_PASSWORD,
              "dynsec", *args)


def _ctrl(*args: str) -> None:
    result = subprocess.run(["mosquitto_ctrl", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0 or "Error" in result.stdout + result.stderr:
        raise RuntimeError(f"mosquitto_ctrl {' '.join(args[-4:])}: {result.stdout}{result.stderr}")


@contextlib.contextmanager
def secure_broker(
    workdir: Path,
    *,
    users: dict[str, str],
    tls: TlsFiles | None = None,
    require_certificate: bool = False,
) -> Iterator[SecureBroker]:
    """A started :class:`SecureBroker` on a free port, stopped on the way out."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _started(lambda binary, port: SecureBroker(
        binary=binary, workdir=workdir, port=port, users=users, tls=tls,
        require_certificate=require_certificate,
    )) as broker:
        yield broker


@contextlib.contextmanager
def rules_broker(workdir: Path, *, user: tuple[str, str]) -> Iterator[RulesBroker]:
    """A started :class:`RulesBroker` on a free port, stopped on the way out."""
    workdir.mkdir(parents=True, exist_ok=True)
    with _started(lambda binary, port: RulesBroker(
        binary=binary, workdir=workdir, port=port, user=user
    )) as broker:
        yield broker


@contextlib.contextmanager
def _started(make: Callable[[str, int], B]) -> Iterator[B]:
    binary = find_mosquitto()
    if binary is None or shutil.which("mosquitto_passwd") is None:
        pytest.fail("mosquitto is not installed; run `bash scripts/system-deps.sh`")
    broker: B | None = None
    for _ in range(5):  # the free port can be taken between probing and binding
        broker = make(binary, free_port())
        try:
            broker.start()
            break
        except RuntimeError:
            broker.stop()
            broker = None
    if broker is None:
        pytest.fail("could not start mosquitto on a free port")
    try:
        yield broker
    finally:
        broker.stop()
