"""Name validation and command building: bad names are refused before any command exists."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from ovirt_dr.gluster import (
    GeoRepSession,
    build_georep_cmd,
    build_volume_cmd,
    validate_host,
    validate_remote_path,
    validate_user,
    validate_volume_name,
)

S = GeoRepSession("gvmaster", "127.0.0.1", "gvslave")
PREFIX = ["gluster", "--mode=script", "volume", "geo-replication", "gvmaster", "127.0.0.1::gvslave"]

INJECTIONS = [
    "vol; rm -rf /",
    "vol && reboot",
    "$(id)",
    "`id`",
    "vol|cat",
    "vol\nrm -rf /",
    "vol rm",
    "'vol'",
    "vol>x",
    "../etc",
    "a/b",
    "vol::x",
    "",
    " ",
    "\x00",
]


def test_status_detail_xml():
    assert build_georep_cmd(S, "status", "detail", xml=True) == [*PREFIX, "status", "detail", "--xml"]


def test_config_checkpoint_now_xml_uses_the_prefix_form():
    argv = build_georep_cmd(S, "config", "checkpoint", "now", xml=True)
    assert argv == ["gluster", "--mode=script", "--xml", *PREFIX[2:], "config", "checkpoint", "now"]
    assert argv[-1] == "now"  # never "now --xml": Gluster reads it as the label (pitfall 8)


@pytest.mark.parametrize(
    ("args", "tail"),
    [
        (("start",), ["start"]),
        (("stop",), ["stop"]),
        (("stop", "force"), ["stop", "force"]),
        (("status",), ["status"]),
        (("config", "checkpoint"), ["config", "checkpoint"]),
        (("config", "change_detector", "xsync"), ["config", "change_detector", "xsync"]),
        (("config", "checkpoint", "2016-10-25 15:30:45"), ["config", "checkpoint", "2016-10-25 15:30:45"]),
        (("config", "!checkpoint"), ["config", "!checkpoint"]),
    ],
)
def test_plain_commands(args, tail):
    argv = build_georep_cmd(S, *args)
    assert argv == [*PREFIX, *tail]
    assert shlex.split(shlex.join(argv)) == argv


def test_non_root_slave_user():
    s = GeoRepSession("gvmaster", "slave.example.com", "gvslave", slave_user="geoaccount")
    assert s.slave == "geoaccount@slave.example.com::gvslave"
    assert build_georep_cmd(s, "status")[5] == "geoaccount@slave.example.com::gvslave"
    assert S.slave == "127.0.0.1::gvslave"
    assert str(s) == "gvmaster -> geoaccount@slave.example.com::gvslave"


def test_session_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        S.master_volume = "x; rm -rf /"  # type: ignore[misc]


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("status", "; rm -rf /"),
        ("rm", "-rf"),
        ("start", "--xml"),
        ("status", "detail", "--xml"),
        ("config", "checkpoint", "now; reboot"),
        ("config", "checkpoint", "$(id)"),
        ("config", "checkpoint", "-x"),
        ("config", "-x"),
        ("config", "a", "b", "c"),
        ("config", "opt;id"),
        ("delete", "everything"),
    ],
)
def test_bad_subcommands_refused(args):
    with pytest.raises(ValueError):
        build_georep_cmd(S, *args)


def test_session_type_checked():
    with pytest.raises(TypeError):
        build_georep_cmd(("gvmaster", "h", "v"), "status")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", [*INJECTIONS, "-x", "-", "völ", "vol\u200b", "vol.1", "all", "force", "v" * 257]
)
def test_bad_volume_names_refused(name):
    with pytest.raises(ValueError, match="volume name"):
        validate_volume_name(name)
    with pytest.raises(ValueError, match="master volume name"):
        GeoRepSession(name, "127.0.0.1", "gvslave")
    with pytest.raises(ValueError, match="slave volume name"):
        GeoRepSession("gvmaster", "127.0.0.1", name)
    with pytest.raises(ValueError):
        build_volume_cmd("info", name)


@pytest.mark.parametrize("name", ["gvmaster", "gv_slave-2", "A", "0", "v" * 256, "x-"])
def test_good_volume_names(name):
    assert validate_volume_name(name) == name


def test_volume_error_messages_say_what_is_wrong():
    with pytest.raises(ValueError, match="starts with '-'"):
        validate_volume_name("-x")
    with pytest.raises(ValueError, match="257 characters long"):
        validate_volume_name("v" * 257)
    with pytest.raises(ValueError, match=r"contains ' ', ';'"):
        validate_volume_name("vol; rm")
    with pytest.raises(ValueError, match="reserves"):
        validate_volume_name("all")
    with pytest.raises(ValueError, match="must be a string"):
        validate_volume_name(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "host",
    [
        *[h for h in INJECTIONS if h not in ("../etc",)],
        "-x",
        "a..b",
        "a_b",
        "höst",
        "host-",
        "-host",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "a" * 64,
        ".".join(["a" * 60] * 5),
        "fe80::1%eth0",
        ":::",
        "[::1",
        "[1.2.3.4]",
        "[vm]",
        "vm\n",
        "010.1.1.1",
        "1:2:3:4:5:6:7:8:9",
    ],
)
def test_bad_hosts_refused(host):
    with pytest.raises(ValueError):
        validate_host(host)
    with pytest.raises(ValueError):
        GeoRepSession("gvmaster", host, "gvslave")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("vm", "vm"),
        ("gluster-1.example.com", "gluster-1.example.com"),
        ("example.com.", "example.com."),
        ("127.0.0.1", "127.0.0.1"),
        ("10.0.0.255", "10.0.0.255"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("a" * 63, "a" * 63),
        ("1a.example", "1a.example"),
    ],
)
def test_good_hosts(host, expected):
    assert validate_host(host) == expected


def test_ipv6_slave_refused_with_reason():
    with pytest.raises(ValueError, match="IPv6"):
        GeoRepSession("gvmaster", "::1", "gvslave")


@pytest.mark.parametrize(
    "user", [*INJECTIONS, "-x", "0123", "a b", "us€r", "ü", "a" * 33, ".hidden", "user$", "root\n"]
)
def test_bad_users_refused(user):
    with pytest.raises(ValueError):
        validate_user(user)
    with pytest.raises(ValueError, match="slave user"):
        GeoRepSession("gvmaster", "127.0.0.1", "gvslave", slave_user=user)


@pytest.mark.parametrize("user", ["root", "geoaccount", "svc.backup", "_gluster", "Admin-1", "a" * 32])
def test_good_users(user):
    assert validate_user(user) == user


@pytest.mark.parametrize("path", ["", "relative/x", "~/x", "/a\nb", "/a\x00b", "-rf"])
def test_bad_remote_paths(path):
    with pytest.raises(ValueError):
        validate_remote_path(path)


def test_volume_cmd():
    assert build_volume_cmd() == ["gluster", "--mode=script", "volume", "info", "--xml"]
    assert build_volume_cmd("info", "gvmaster") == [
        "gluster",
        "--mode=script",
        "volume",
        "info",
        "gvmaster",
        "--xml",
    ]
    assert build_volume_cmd("status", xml=False) == ["gluster", "--mode=script", "volume", "status", "all"]
    with pytest.raises(ValueError, match="unsupported"):
        build_volume_cmd("delete", "gvmaster")


def test_volume_set_builder_allows_only_the_read_only_switch():
    from ovirt_dr.gluster import build_volume_set_cmd

    assert build_volume_set_cmd("gvslave", "features.read-only", "on")[-3:] == [
        "gvslave",
        "features.read-only",
        "on",
    ]
    with pytest.raises(ValueError, match="not one the product changes"):
        build_volume_set_cmd("gvslave", "auth.allow", "*")
    with pytest.raises(ValueError, match="not one of on, off"):
        build_volume_set_cmd("gvslave", "features.read-only", "maybe")
    with pytest.raises(ValueError):
        build_volume_set_cmd("gv slave; rm", "features.read-only", "on")
