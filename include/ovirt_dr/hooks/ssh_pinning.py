"""SSH host-key pinning: every SSH connection the product uses must pin its node's host key.

The SSH provider verifies a node against the connection's ``host_key`` extra when there is one, and
otherwise against the worker's ``~/.ssh/known_hosts`` (whatever happens to be in it), or not at all with
``no_host_key_check``. The product sends root commands to storage nodes, so it requires the pin: a
connection without ``host_key`` is refused, before any network traffic, with what to set. The one way
around it is explicit and logged at every use: the extra ``allow_unpinned_host_key: true`` (then the SSH
provider's own rules apply: ``known_hosts``, or ``no_host_key_check``). ``allow_host_key_change`` (which
makes paramiko accept a changed key) counts as unpinned.

Checked by ``GlusterNodeHook`` on both of its paths, paramiko (workers) and asyncssh (the checkpoint
trigger), before it connects; every Gluster hook runs on one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HOST_KEY_EXTRA = "host_key"
OPT_OUT_EXTRA = "allow_unpinned_host_key"


class HostKeyNotPinned(ValueError):
    """An SSH connection without a pinned host key, and without the explicit opt-out."""


def _true(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return value is True


def check_host_key_pinning(conn_id: str, extra: Mapping[str, Any] | None, log: Any) -> bool:
    """Raise ``HostKeyNotPinned`` unless ``extra`` pins the host key or opts out explicitly.

    Returns True when the key is pinned, False when unpinned by the opt-out (a warning is logged).
    """
    extra = extra or {}
    host_key = extra.get(HOST_KEY_EXTRA)
    pinned = isinstance(host_key, str) and bool(host_key.strip())
    changeable = _true(extra.get("allow_host_key_change"))
    if pinned and not changeable:
        return True
    if _true(extra.get(OPT_OUT_EXTRA)):
        log.warning(
            "SSH connection %r: the node's host key is NOT pinned (%s): commands run as the connection's "
            "user on a node whose identity this product does not verify (extra %r is set). Pin it: set "
            "extra %r to the node's public host key.",
            conn_id,
            "allow_host_key_change is set" if pinned else "no 'host_key' extra",
            OPT_OUT_EXTRA,
            HOST_KEY_EXTRA,
        )
        return False
    why = (
        "its extra 'allow_host_key_change' accepts a changed key" if pinned else "it has no 'host_key' extra"
    )
    raise HostKeyNotPinned(
        f"SSH connection {conn_id!r} does not pin the node's host key ({why}): set extra 'host_key' to the "
        "node's public host key (e.g. 'ssh-ed25519 AAAA...', the content of /etc/ssh/ssh_host_ed25519_key.pub), "
        f"or, knowingly, opt out with extra '{OPT_OUT_EXTRA}': true"
    )
