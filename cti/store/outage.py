"""Telling the log about a database outage once, not at every retry."""

from __future__ import annotations

import logging


class Outage:
    """Something retried at a steady pace while the database is away (the journal every 0.2 s, the webhook
    outbox every second): a minute's outage must not fill the log with hundreds of tracebacks. The first
    failure is logged with its traceback (a bug looks like an outage too), the recovery once."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.failures = 0  # since the last attempt that worked
        self.total = 0

    def failed(self, error: BaseException) -> None:
        if not self.failures:
            self.log.warning("%s failed (%s); trying again until it works", self.what, error, exc_info=error)
        self.failures += 1
        self.total += 1

    def worked(self) -> None:
        if self.failures:
            self.log.info("%s works again, after %d failed attempts", self.what, self.failures)
            self.failures = 0
