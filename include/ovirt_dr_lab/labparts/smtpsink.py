"""An SMTP server on loopback that keeps every message it receives as an ``.eml`` file.

Run as ``python -m ovirt_dr_lab.labparts.smtpsink --port 8025 --maildir <lab>/mail``. Tests read the files to
see Airflow's failure and deadline mails; nothing is relayed anywhere. Files are written to a temporary name and
renamed, so a reader never sees half a message.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class MaildirHandler:
    """aiosmtpd handler: one file per message, ``<epoch-ns>-<uuid>.eml``, with the envelope in X- headers."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        maildir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode()
        header = (
            f"X-Lab-Mail-From: {envelope.mail_from}\r\nX-Lab-Rcpt-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        tmp = self.maildir / f".{name}.tmp"
        tmp.write_bytes(header + content)
        os.replace(tmp, self.maildir / f"{name}.eml")
        return "250 Message accepted for delivery"


def send_test_mail(port: int, to: str = "lab@example.com") -> None:
    """Used by ``status``-like probes and tests: send one small mail to the sink."""
    import smtplib

    msg = EmailMessage()
    msg["From"] = "probe@example.com"
    msg["To"] = to
    msg["Subject"] = "ovirt-dr-lab probe"
    msg.set_content("probe")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    print(f"SMTP sink listening on {args.host}:{args.port}, saving to {args.maildir}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
