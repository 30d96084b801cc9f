"""structlog set-up: JSON in the stack, readable on a terminal, no personal data.

Callers log request ids, steps and counts only. As a last line of defence a processor masks
anything that looks like an email address, a phone number or an IP address.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import structlog


def _ipv6(match: re.Match[str]) -> str:
    """Hex and colons are an IPv6 address only if they parse as one (not a time, 09:00:00)."""
    try:
        ipaddress.IPv6Address(match.group(0).split("%")[0])
    except ValueError:
        return match.group(0)
    return "<ip>"


_MASKS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # Tried only where a word starts (the lookbehind), so a long line without spaces costs
    # one pass, not one scan from every character.
    (re.compile(r"(?<![^\s\"'<>@])[^\s@\"'<>]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"), "<email>"),
    (re.compile(r"(?<![\w.-])\+\d[\d\s().-]{6,}\d"), "<phone>"),
    (re.compile(r"(?<![\w.:-])0\d{8,11}(?![\w.:-])"), "<phone>"),
    (re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}(%\w{1,16})?(?![\w:.%])"),
     _ipv6),
    (re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b"), "<ip>"),
)


_SAFE = frozenset({"timestamp", "request_id"})


def mask(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _mask_personal_data(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> Mapping[str, Any]:
    return {
        key: mask(value) if isinstance(value, str) and key not in _SAFE else value
        for key, value in event.items()
    }


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the time of writing (a CLI test swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR: Any = _CurrentStderr()


def configure(fmt: str | None = None, level: int = logging.INFO) -> None:
    """``fmt`` is ``json`` or ``console``; by default ``DSR_LOG_FORMAT``, else by terminal."""
    fmt = fmt or os.environ.get("DSR_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_personal_data,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(_STDERR),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_STDERR)
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)


class MaskingFormatter(logging.Formatter):
    """For the libraries' own log lines (the Temporal SDK logs failures with their messages and
    tracebacks, which may quote an input): masked like ours."""

    def format(self, record: logging.LogRecord) -> str:
        return mask(super().format(record))


def get_logger(**bound: Any) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(**bound)  # type: ignore[no-any-return]
