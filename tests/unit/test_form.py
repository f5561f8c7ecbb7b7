"""The trigger form's values as every recovery task reads them (a run may come from the API or the CLI)."""

from __future__ import annotations

import pytest

from ovirt_dr.drill import DrillParams
from ovirt_dr.operators.cleanup_ovirt import CleanupParams
from ovirt_dr.operators.failback_ovirt import FailbackParams
from ovirt_dr.operators.recovery_base import FailoverParams

ALL = [FailoverParams, CleanupParams, FailbackParams, DrillParams]


@pytest.mark.parametrize("cls", ALL)
def test_defaults_are_a_dry_run_of_every_domain(cls):
    p = cls.from_context({"params": {}})
    assert p.dry_run is True and p.domains == ()
    assert cls.from_context({}).dry_run is True


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("value", ["false", 0, None, "no"])
def test_a_dry_run_that_is_not_a_boolean_is_refused_not_taken_for_true(cls, value):
    with pytest.raises(ValueError, match="param 'dry_run' must be true or false"):
        cls.from_context({"params": {"dry_run": value}})


@pytest.mark.parametrize("cls", [FailoverParams, CleanupParams])
def test_force_must_be_a_boolean(cls):
    assert cls.from_context({"params": {"force": True}}).force is True
    with pytest.raises(ValueError, match="param 'force'"):
        cls.from_context({"params": {"force": "yes"}})


@pytest.mark.parametrize("cls", ALL)
def test_domains_are_names_sorted_once(cls):
    assert cls.from_context({"params": {"domains": ["b", "a", "b"]}}).domains == ("a", "b")
    for bad in ("a", [1], {"a": 1}):
        with pytest.raises(ValueError, match="param 'domains' must be a list of domain names"):
            cls.from_context({"params": {"domains": bad}})
