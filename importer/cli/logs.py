"""Logging for the command line: quiet by default (warnings, to stderr), ``-v`` for more, JSON on request."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

__all__ = ["JsonFormatter", "configure_logging"]

_HANDLER_NAME = "ti-import"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(
    verbosity: int = 0, fmt: Literal["text", "json"] = "text", stream: TextIO | None = None
) -> None:
    """0: warnings only; 1 (``-v``): info; 2+ (``-vv``): debug, including aiohttp's own loggers."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("ti-import: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # aiohttp's access/client chatter is noise below -vv.
    logging.getLogger("aiohttp").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
