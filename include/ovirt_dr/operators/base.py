"""The one piece every operator of the product shares: run, then close the hooks it opened."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class HookClosingOperator(BaseOperator):
    """Call ``run`` and close every hook it opened, whatever happened.

    Hooks are ``cached_property`` attributes named in ``hook_attrs``: created on first use (never in
    ``__init__``), and closed here only if they were created, so an SSO session or SSH client is never
    left open by a failing task.
    """

    hook_attrs: tuple[str, ...] = ("hook",)

    def execute(self, context: Context) -> Any:
        try:
            return self.run(context)
        finally:
            for name in self.hook_attrs:
                hook = self.__dict__.get(name)
                if hook is not None:
                    hook.close()

    def run(self, context: Context) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError
