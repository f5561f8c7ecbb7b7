"""OvirtHook's waits on scripted engine answers (one batched read per poll; the lab tests use the emulator)."""

from __future__ import annotations

from types import SimpleNamespace as NS

from ovirt_dr.hooks.ovirt import OvirtHook, enum_value, status_of


def snap(status: str) -> NS:
    return NS(snapshot_status=NS(value=status))


class Scripted(OvirtHook):
    """Answers ``get_snapshots`` from a list of polls: ``{ref: status or None (gone)}`` per poll."""

    def __init__(self, polls: list[dict]) -> None:
        super().__init__("unused")
        self.polls = polls
        self.reads: list[list] = []

    def get_snapshots(self, refs):
        self.reads.append(list(refs))
        answer = self.polls[min(len(self.reads), len(self.polls)) - 1]
        return {r: (snap(answer[r]) if answer.get(r) else None) for r in refs}


A, B, C = ("vm-a", "s-a"), ("vm-b", "s-b"), ("vm-c", "s-c")


def test_wait_snapshots_ok_reads_all_in_one_request_per_poll_and_reports_each_failure():
    hook = Scripted(
        [{A: "locked", B: "locked", C: "locked"}, {A: "ok", B: "illegal", C: "locked"}, {C: "ok"}]
    )
    assert hook.wait_snapshots_ok([A, B, C], timeout=60, poll=0) == {B: "ended illegal"}
    assert hook.reads == [[A, B, C], [A, B, C], [C]]


def test_wait_snapshots_ok_names_a_vanished_and_a_still_locked_snapshot():
    hook = Scripted([{A: "locked", B: None}])
    out = hook.wait_snapshots_ok([A, B], timeout=0, poll=0)
    assert out == {B: "disappeared while being created", A: "still locked after 0s"}


def test_wait_snapshots_gone_returns_what_is_still_there_at_the_deadline():
    gone = Scripted([{A: "locked", B: "ok"}, {A: "locked"}, {}])
    assert gone.wait_snapshots_gone([A, B], timeout=60, poll=0) == []
    assert gone.reads == [[A, B], [A, B], [A]]
    assert Scripted([{A: "ok"}]).wait_snapshots_gone([A], timeout=0, poll=0) == [A]


def test_sdk_values():
    assert enum_value(NS(value="up")) == "up" and enum_value("up") == "up" and enum_value(None) is None
    assert status_of(NS(status=NS(value="down"))) == "down" and status_of(NS()) is None
