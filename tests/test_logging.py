"""Logs never carry personal data: ours are masked, and so are the libraries' lines."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from dsr.logging import MaskingFormatter, configure, get_logger, mask


@pytest.mark.parametrize("text", [
    "ana.silva@example.com", "+31612345678", "+44 7700 900123", "0612345678", "192.168.10.4",
    "2001:db8:0:7::1", "fe80::1%eth0", "2001:0db8:0000:0000:0000:ff00:0042:8329", "::1",
])
def test_mask_hides_identities(text: str) -> None:
    assert text not in mask(f"failed for {text} today")


@pytest.mark.parametrize(("text", "masked"), [
    ("mailto:ana.silva@example.com,", "<email>,"), ("<ana@example.com>", "<<email>>"),
    ("'ana@example.com'", "'<email>'"), ("x@ana@example.com", "x@<email>"),
    ("key=ana@example.com;", "<email>;"),
])
def test_an_email_is_masked_wherever_its_word_starts(text: str, masked: str) -> None:
    assert mask(text) == masked


def test_a_long_line_without_an_email_comes_through_whole() -> None:
    line = "x" * 200_000 + "@" + "y" * 1_000
    assert mask(line) == line  # one pass over it: the pattern starts only where words do


@pytest.mark.parametrize("text", ["DSR-20261129-153156", "2026-11-29T15:31:56Z", "ms=1234",
                                  "at 09:00:00", "std::vector"])
def test_mask_leaves_ids_and_times(text: str) -> None:
    assert mask(text) == text


def test_structlog_lines_are_json_and_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    get_logger(request_id="DSR-1").warning("connector failed", detail="ana@example.com refused")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["request_id"] == "DSR-1"
    assert "ana@example.com" not in line["detail"]
    structlog.reset_defaults()


def test_library_log_lines_and_tracebacks_are_masked() -> None:
    formatter = MaskingFormatter("%(message)s")
    try:
        raise ValueError("input_value='ana@example.com'")
    except ValueError:
        record = logging.LogRecord("temporalio.activity", logging.WARNING, __file__, 1,
                                   "activity failed for %s", ("+31612345678",), exc_info=None)
        import sys
        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert "ana@example.com" not in text and "+31612345678" not in text
    assert "ValueError" in text
