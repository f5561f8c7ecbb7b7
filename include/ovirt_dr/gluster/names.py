"""Validation of the names that end up in Gluster command lines: volumes, hosts, users, paths.

Every name is checked against the rules of the system that owns it *before* any command is built, so a bad
name (or an injection attempt such as ``vol; rm -rf /``) is refused with an error that says what is wrong,
instead of reaching a shell on a storage node. ``shlex.join`` quoting is the second line of defence, not the
first: Gluster would also mis-parse a quoted-but-invalid name (``-x`` read as an option, ``a::b`` as a URL).
"""

from __future__ import annotations

import ipaddress
import re

#: ``GD_VOLUME_NAME_MAX`` in glusterfs' protocol-common.h; the CLI refuses longer names.
VOLUME_NAME_MAX = 256
#: Names the Gluster CLI refuses as volume names (``cli_validate_volname`` in cli-cmd-parser.c).
RESERVED_VOLUME_NAMES = frozenset(
    {
        "volume",
        "type",
        "subvolumes",
        "option",
        "end-volume",
        "all",
        "volume_not_in_ring",
        "description",
        "force",
        "snap-max-hard-limit",
        "snap-max-soft-limit",
        "auto-delete",
        "activate-on-create",
    }
)
# ASCII only on purpose: the CLI uses C isalnum() in the C locale, so Python's unicode-aware isalnum() would
# accept names (``völ``) that Gluster refuses.
_VOLUME_RE = re.compile(r"[A-Za-z0-9_-]+")
_HOST_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# POSIX portable user names (IEEE 1003.1 3.437 + 3.282), not starting with '-', at most 32 bytes (the
# utmp/useradd limit on Linux). All-digit names are refused like shadow-utils does: they read as a UID.
_USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}")
USER_NAME_MAX = 32
HOST_NAME_MAX = 253


def _describe(value: object) -> str:
    """repr() keeps control characters and unicode visible in the error message."""
    return repr(value)


def validate_volume_name(name: str, what: str = "volume name") -> str:
    """Return ``name`` if Gluster would accept it as a volume name, else raise ``ValueError`` saying why."""
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a string, got {type(name).__name__}")
    if not name:
        raise ValueError(f"{what} is empty")
    if len(name) > VOLUME_NAME_MAX:
        raise ValueError(
            f"{what} {_describe(name[:20] + '...')} is {len(name)} characters long (max {VOLUME_NAME_MAX})"
        )
    if name.startswith("-"):
        raise ValueError(f"{what} {_describe(name)} starts with '-' (Gluster would read it as an option)")
    if not _VOLUME_RE.fullmatch(name):
        bad = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-_"))})
        raise ValueError(
            f"{what} {_describe(name)} contains {', '.join(map(repr, bad))}: "
            "only ASCII letters, digits, '-' and '_' are allowed"
        )
    if name in RESERVED_VOLUME_NAMES:
        raise ValueError(f"{what} {_describe(name)} is a word Gluster reserves and refuses as a volume name")
    return name


def validate_host(host: str, what: str = "host") -> str:
    """Return ``host`` if it is a DNS host name (RFC 1123), an IPv4 or an IPv6 address, else raise ``ValueError``.

    IPv6 may be given bare or in brackets (``[::1]``); it is returned bare. Whether a given command can carry
    an IPv6 literal is the builder's business (Gluster's ``host::volume`` syntax cannot).
    """
    if not isinstance(host, str):
        raise ValueError(f"{what} must be a string, got {type(host).__name__}")
    if not host:
        raise ValueError(f"{what} is empty")
    bracketed = host.startswith("[") and host.endswith("]")
    candidate = host[1:-1] if bracketed else host
    if bracketed and ":" not in candidate:
        raise ValueError(f"{what} {_describe(host)}: brackets are only for IPv6 addresses")
    if ":" in candidate:
        if "%" in candidate:
            raise ValueError(f"{what} {_describe(host)} is a scoped IPv6 address, which Gluster cannot use")
        try:
            return str(ipaddress.IPv6Address(candidate))
        except ValueError:
            raise ValueError(
                f"{what} {_describe(host)} contains ':' but is not a valid IPv6 address"
            ) from None
    if candidate.startswith("-"):
        raise ValueError(f"{what} {_describe(host)} starts with '-'")
    if re.fullmatch(r"[0-9.]+", candidate):
        # All digits and dots: it must be a dotted-quad IPv4 (RFC 1123 2.1: a name is never all-numeric).
        try:
            ipaddress.IPv4Address(candidate)
        except ValueError:
            raise ValueError(f"{what} {_describe(host)} is not a valid IPv4 address") from None
        return candidate
    name = candidate[:-1] if candidate.endswith(".") else candidate
    if len(name) > HOST_NAME_MAX:
        raise ValueError(f"{what} {_describe(host[:20] + '...')} is longer than {HOST_NAME_MAX} characters")
    for label in name.split("."):
        if not _HOST_LABEL_RE.fullmatch(label):
            raise ValueError(
                f"{what} {_describe(host)} is not a valid host name: label {_describe(label)} must be 1-63 ASCII "
                "letters, digits or '-', not starting or ending with '-'"
            )
    return candidate


def is_ipv6(host: str) -> bool:
    """True for an IPv6 literal (after validation)."""
    return ":" in host


def validate_user(user: str, what: str = "user name") -> str:
    """Return ``user`` if it is a portable POSIX user name, else raise ``ValueError`` saying why."""
    if not isinstance(user, str):
        raise ValueError(f"{what} must be a string, got {type(user).__name__}")
    if not user:
        raise ValueError(f"{what} is empty")
    if len(user) > USER_NAME_MAX:
        raise ValueError(
            f"{what} {_describe(user[:20] + '...')} is {len(user)} characters long (max {USER_NAME_MAX})"
        )
    if user.startswith("-"):
        raise ValueError(f"{what} {_describe(user)} starts with '-'")
    if not _USER_RE.fullmatch(user):
        raise ValueError(
            f"{what} {_describe(user)} is not a portable POSIX user name "
            "(ASCII letters, digits, '.', '_', '-'; not starting with '-' or '.')"
        )
    if user.isdigit():
        raise ValueError(f"{what} {_describe(user)} is all digits (it would read as a UID)")
    return user


def validate_remote_path(path: str, what: str = "path") -> str:
    """Return ``path`` if it is an absolute path the hook can put on a command line and parse back.

    Relative paths are refused because the remote working directory is the login's home, not what the caller
    thinks; NUL cannot cross exec(); newlines would break the line-oriented outputs the hook parses.
    """
    if not isinstance(path, str):
        raise ValueError(f"{what} must be a string, got {type(path).__name__}")
    if not path.startswith("/"):
        raise ValueError(f"{what} {_describe(path)} is not absolute")
    if "\x00" in path or "\n" in path or "\r" in path:
        raise ValueError(f"{what} {_describe(path)} contains NUL or a line break")
    return path
