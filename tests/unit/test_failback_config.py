"""The failback's config (``recovery.reverse_session`` / ``recovery.failback``) and the reverse create command."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from ovirt_dr.failback_config import FailbackConfig, ReverseSessionConfig, option_value
from ovirt_dr.gluster import GeoRepSession, build_georep_cmd
from ovirt_dr.recovery_config import RecoveryConfig


def test_reverse_session_settings_include_the_ssh_port():
    rs = ReverseSessionConfig(ssh_port=2223, options={"change_detector": "xsync", "sync_jobs": 1})
    assert rs.settings() == {"change_detector": "xsync", "sync_jobs": "1", "ssh_port": "2223"}
    assert ReverseSessionConfig().settings() == {}


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"rsync_options": "--bwlimit=1"}, "'rsync_options' is not one the product sets"),
        ({"ssh_port": 22}, "set reverse_session.ssh_port instead"),
        ({"change_detector": "inotify"}, "not one of xsync, changelog"),
        ({"sync_jobs": 0}, "not a whole number 1-64"),
        ({"sync_jobs": "4"}, "not a whole number 1-64"),
        ({"sync_jobs": True}, "not a whole number 1-64"),
        ({"change_detector": "xsync; rm -rf /"}, "not one of"),
        ({"change_detector": "{{ var }}"}, "not one of"),
    ],
)
def test_bad_session_options_are_refused_naming_the_option(options, needle):
    with pytest.raises(ValidationError) as e:
        RecoveryConfig(mapping_file="m.yml", reverse_session={"options": options})
    assert needle in str(e.value)
    assert "reverse_session.options" in str(e.value)


def test_booleans_are_written_as_gluster_takes_them():
    assert option_value("use_meta_volume", True) == "true"
    assert option_value("ignore_deletes", "false") == "false"


@pytest.mark.parametrize(
    "bad",
    [{"ssh_port": 0}, {"ssh_port": 70000}, {"slave_user": "-x"}, {"slave_host": "::1"}, {"unknown": 1}],
)
def test_bad_reverse_session_fields(bad):
    with pytest.raises(ValidationError):
        ReverseSessionConfig(**bad)


def test_failback_durations_and_bounds():
    cfg = FailbackConfig(warm_cycles=0, checkpoint_timeout="10m", poll_interval="3s", faulty_grace="1m")
    assert cfg.checkpoint_timeout == timedelta(minutes=10) and cfg.warm_cycles == 0
    for bad in (
        {"warm_cycles": 21},
        {"checkpoint_timeout": "0s"},
        {"poll_interval": "2h"},
        {"airflow_conn_id": "{{ x }}"},
    ):
        with pytest.raises(ValidationError):
            FailbackConfig(**bad)


def test_create_with_ssh_port_push_pem_force():
    s = GeoRepSession("gvslave", "127.0.0.1", "gvmaster")
    assert build_georep_cmd(s, "create", "ssh-port", "2223", "push-pem", "force") == [
        "gluster",
        "--mode=script",
        "volume",
        "geo-replication",
        "gvslave",
        "127.0.0.1::gvmaster",
        "create",
        "ssh-port",
        "2223",
        "push-pem",
        "force",
    ]
    for words in (("ssh-port",), ("ssh-port", "x22"), ("ssh-port", "99999"), ("ssh-port", "22;id")):
        with pytest.raises(ValueError, match="ssh-port"):
            build_georep_cmd(s, "create", *words)
    with pytest.raises(ValueError, match="unexpected word"):
        build_georep_cmd(s, "start", "ssh-port", "22")
