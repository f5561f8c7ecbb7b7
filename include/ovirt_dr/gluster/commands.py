"""Build Gluster command lines as argv lists, from validated names only.

The argv is sent with ``shlex.join`` (one quoted word per argument), but every name is validated first (see
``names.py``): quoting keeps a shell out, validation keeps Gluster from mis-reading a word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ovirt_dr.gluster.names import is_ipv6, validate_host, validate_user, validate_volume_name

GLUSTER = "gluster"
#: ``--mode=script`` answers the CLI's y/n prompts (stop, delete, ...) so nothing ever waits on a terminal.
SCRIPT_MODE = "--mode=script"
XML = "--xml"

# Sub-commands of ``volume geo-replication`` and the words they may take. Anything else is refused: the
# builder is for the pipeline's commands, not a general gluster shell.
_GEOREP_ACTIONS = {"create", "start", "stop", "pause", "resume", "config", "status", "delete"}
# Values of ``config OPTION VALUE``: words, numbers, times ("2016-10-25 15:30:45"), paths. No shell syntax.
_CONFIG_VALUE_RE = re.compile(r"[A-Za-z0-9_.:,/@+ -]+")
_FLAG_WORDS = {"force", "detail", "push-pem", "no-verify", "reset-sync-time"}


@dataclass(frozen=True)
class GeoRepSession:
    """A geo-replication session ``master_volume -> [slave_user@]slave_host::slave_volume``, names validated.

    :param master_volume: the primary (master) volume on the node the commands run on.
    :param slave_host: the secondary (slave) host as the session was created with (name or IPv4).
    :param slave_volume: the secondary (slave) volume.
    :param slave_user: the user geo-rep connects as on the slave; ``root`` unless a mountbroker user.
    """

    master_volume: str
    slave_host: str
    slave_volume: str
    slave_user: str = "root"

    def __post_init__(self) -> None:
        validate_volume_name(self.master_volume, "master volume name")
        host = validate_host(self.slave_host, "slave host")
        if is_ipv6(host):
            # Gluster's "host::volume" URL is split at the first "::", which an IPv6 literal also contains.
            raise ValueError(
                f"slave host {self.slave_host!r} is an IPv6 literal, which Gluster's 'host::volume' syntax "
                "cannot carry: use a host name"
            )
        validate_volume_name(self.slave_volume, "slave volume name")
        validate_user(self.slave_user, "slave user")

    def as_dict(self) -> dict[str, str]:
        """The JSON form (a trigger's kwargs, XCom): the four fields by name."""
        return {
            "master_volume": self.master_volume,
            "slave_host": self.slave_host,
            "slave_volume": self.slave_volume,
            "slave_user": self.slave_user,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeoRepSession:
        """The session from its JSON form, validated again (it may come from a serialized trigger)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a geo-replication session must be a mapping, got {data!r}")
        unknown = set(data) - {"master_volume", "slave_host", "slave_volume", "slave_user"}
        if unknown:
            raise ValueError(f"geo-replication session: unknown field(s) {sorted(unknown)}")
        return cls(
            master_volume=data.get("master_volume"),  # type: ignore[arg-type]
            slave_host=data.get("slave_host"),  # type: ignore[arg-type]
            slave_volume=data.get("slave_volume"),  # type: ignore[arg-type]
            slave_user=data.get("slave_user", "root"),
        )

    @property
    def slave(self) -> str:
        """``host::volume`` for root, ``user@host::volume`` otherwise: the CLI's SECONDARY argument."""
        prefix = "" if self.slave_user == "root" else f"{self.slave_user}@"
        return f"{prefix}{self.slave_host}::{self.slave_volume}"

    def __str__(self) -> str:
        return f"{self.master_volume} -> {self.slave}"


def build_georep_cmd(session: GeoRepSession, *args: str, xml: bool = False) -> list[str]:
    """``gluster --mode=script volume geo-replication MASTER SLAVE ARGS... [--xml]`` as an argv list.

    ``args`` is the sub-command and its words: ``("status", "detail")``, ``("start",)``, ``("stop", "force")``,
    ``("config", "checkpoint", "now")``, ``("config", "change_detector", "xsync")``.

    With ``xml=True``, ``--xml`` goes at the end, except for ``config``: there the CLI reads every word after
    the option name as its value, so ``config checkpoint now --xml`` fails with "Invalid Checkpoint label";
    ``gluster --xml volume geo-replication ... config checkpoint now`` works (reference pitfall 8).
    """
    if not isinstance(session, GeoRepSession):
        raise TypeError(f"session must be a GeoRepSession, got {type(session).__name__}")
    if not args:
        raise ValueError("no geo-replication sub-command given")
    action, *rest = args
    if action not in _GEOREP_ACTIONS:
        raise ValueError(
            f"unknown geo-replication sub-command {action!r} (known: {', '.join(sorted(_GEOREP_ACTIONS))})"
        )
    if action == "config":
        rest = _config_words(rest)
    else:
        words = iter(enumerate(rest))
        for i, word in words:
            if action == "create" and word == "ssh-port":
                # `create ssh-port N`: the port push-pem and gverify log in to the slave with (the session's
                # own `config ssh_port` is separate); a port number, nothing else
                port = rest[i + 1] if i + 1 < len(rest) else ""
                if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
                    raise ValueError(f"geo-replication create ssh-port {port!r}: a port number 1-65535")
                next(words)
                continue
            if word not in _FLAG_WORDS:
                raise ValueError(f"unexpected word {word!r} for geo-replication {action}")
    prefix = [GLUSTER, SCRIPT_MODE]
    tail: list[str] = []
    if xml:
        if action == "config":
            prefix.append(XML)
        else:
            tail.append(XML)
    return [*prefix, "volume", "geo-replication", session.master_volume, session.slave, action, *rest, *tail]


def _config_words(words: list[str]) -> list[str]:
    """``config [[!]option [value]]``: an option name and at most one value, both plain words."""
    if len(words) > 2:
        raise ValueError(f"geo-replication config takes an option and at most one value, got {words!r}")
    if words:
        option = words[0]
        name = option[1:] if option.startswith("!") else option
        if (
            not name
            or not all(c.isascii() and (c.isalnum() or c in "-_") for c in name)
            or name.startswith("-")
        ):
            raise ValueError(f"geo-replication config option {option!r} is not a valid option name")
    if len(words) == 2:
        value = words[1]
        if not _CONFIG_VALUE_RE.fullmatch(value) or value.startswith("-"):
            raise ValueError(
                f"geo-replication config value {value!r} may hold only ASCII letters, digits, spaces and "
                "'_.:,/@+-', and must not start with '-'"
            )
    return list(words)


#: Volume options the product may change, with the values it may set: the failover makes the slave
#: writable (geo-rep's ``create push-pem`` set ``features.read-only on``), a drill's cleanup sets it back.
SETTABLE_VOLUME_OPTIONS: dict[str, tuple[str, ...]] = {"features.read-only": ("on", "off")}


def build_volume_set_cmd(volume: str, option: str, value: str) -> list[str]:
    """``gluster --mode=script volume set VOLUME OPTION VALUE``, for the options the product may change only."""
    allowed = SETTABLE_VOLUME_OPTIONS.get(option)
    if allowed is None:
        raise ValueError(
            f"volume option {option!r} is not one the product changes (only {', '.join(SETTABLE_VOLUME_OPTIONS)})"
        )
    if value not in allowed:
        raise ValueError(f"volume option {option}: value {value!r} is not one of {', '.join(allowed)}")
    return [GLUSTER, SCRIPT_MODE, "volume", "set", validate_volume_name(volume), option, value]


def build_volume_cmd(action: str = "info", volume: str | None = None, *, xml: bool = True) -> list[str]:
    """``gluster --mode=script volume info|status [VOLUME] [--xml]``: read-only volume queries.

    Without ``volume``, all volumes (``info``) or all started volumes (``status``).
    """
    if action not in ("info", "status"):
        raise ValueError(f"unsupported volume action {action!r} (only 'info' and 'status')")
    argv = [GLUSTER, SCRIPT_MODE, "volume", action]
    if volume is not None:
        argv.append(validate_volume_name(volume))
    elif action == "status":
        argv.append("all")
    if xml:
        argv.append(XML)
    return argv
