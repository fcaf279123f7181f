"""Records a test reads from one of modelfn's loggers (the app's own stdout handler keeps them from caplog)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class _Records(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured(name: str, level: int = logging.INFO) -> Iterator[list[logging.LogRecord]]:
    """The records ``name`` logs at ``level`` and above inside the block; the logger is restored after it."""
    logger, handler = logging.getLogger(name), _Records(level)
    logger.addHandler(handler)
    previous, logger.level = logger.level, level
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
