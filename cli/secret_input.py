"""Identities and one-time codes read from a file or stdin, not from the command line, where
they would stay in the shell's history and show in the process list (``ps`` shows every
argument of every process to every local user).

* ``verify ID --code-file FILE``: the code is the file's text (surrounding blanks dropped);
  ``-`` reads stdin, and on a terminal asks for it without echoing it.
* ``submit --identities-file FILE`` (``-``: stdin): one ``type:value`` per line, ``type`` one
  of ``email``, ``phone``, ``account_id``, ``channel_id`` (whose value is itself
  ``channel:id``) or ``requester_email`` (at most once), ``-`` and ``_`` alike; blank lines
  and lines starting with ``#`` are skipped. They add to the identity flags given.

A refusal names the option, the file (or stdin) and the line, never the value.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

CODE_OPTION = "--code-file"
IDENTITIES_OPTION = "--identities-file"
MAX_CODE_BYTES = 256
MAX_IDENTITIES_BYTES = 64 * 1024
TYPES = ("email", "phone", "account_id", "channel_id", "requester_email")
BLANKS = " \t\r"


class SecretInputError(ValueError):
    """Input refused; the message names what is wrong and holds no value read."""


def read_source(source: str, option: str, max_bytes: int) -> str:
    """The text of the file ``source``, or of stdin for ``-``."""
    where = _where(source)
    try:
        if source == "-":
            data = sys.stdin.buffer.read(max_bytes + 1)
        else:
            with open(source, "rb") as stream:
                data = stream.read(max_bytes + 1)
    except FileNotFoundError:
        raise SecretInputError(f"{option}: no such file: {source}") from None
    except OSError as error:  # a folder, no permission
        raise SecretInputError(f"{option}: cannot read {source}: {error.strerror}") from None
    if len(data) > max_bytes:
        raise SecretInputError(f"{option}: {where} is larger than {max_bytes} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SecretInputError(f"{option}: {where} is not valid UTF-8: undecodable byte at "
                               f"offset {error.start}") from None
    if not text.strip(BLANKS + "\n"):
        raise SecretInputError(f"{option}: {where} is empty")
    return text


def one_time_code(given: str | None, source: str | None) -> str:
    """The code from the argument CODE or from ``--code-file``: exactly one of them."""
    if given is not None and source is not None:
        raise SecretInputError(f"give the code either as CODE or with {CODE_OPTION}, not both")
    if source is None:
        if given is None:
            raise SecretInputError(f"missing code: give it with {CODE_OPTION} FILE "
                                   "(- for stdin), or as CODE")
        return given
    if source == "-" and sys.stdin.isatty():
        typed = getpass.getpass("One-time code (not shown): ")
        if not typed.strip(BLANKS):
            raise SecretInputError(f"{CODE_OPTION}: no code typed")
        return typed.strip(BLANKS)
    return read_source(source, CODE_OPTION, MAX_CODE_BYTES).strip(BLANKS + "\n")


def parse_identities(text: str, where: str) -> tuple[list[dict[str, str]], str | None]:
    """The identities of ``type:value`` lines, and the requester's email if a line gives it."""
    identities: list[dict[str, str]] = []
    requester_email = None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip(BLANKS) or line.lstrip(BLANKS).startswith("#"):
            continue
        kind, colon, value = line.partition(":")
        kind, value = kind.strip(BLANKS).lower().replace("-", "_"), value.strip(BLANKS)
        at = f"{IDENTITIES_OPTION}: {where} line {number}"
        if not colon:
            raise SecretInputError(f"{at} is not type:value (for example email:name@example.com)")
        if kind not in TYPES:  # not repeated: it may be a value written in the wrong place
            raise SecretInputError(f"{at}: unknown type; one of {', '.join(TYPES)}")
        if not value:
            raise SecretInputError(f"{at}: the {kind} is empty")
        if kind == "requester_email" and requester_email is not None:
            raise SecretInputError(f"{at}: requester_email is given twice")
        if kind == "requester_email":
            requester_email = value
        else:
            identities.append({"type": kind, "value": value})
    if not identities and requester_email is None:
        raise SecretInputError(f"{IDENTITIES_OPTION}: {where} has no type:value line")
    return identities, requester_email


def with_identities_file(identities: list[dict[str, Any]], requester_email: str | None,
                         source: str | None) -> tuple[list[dict[str, Any]], str]:
    """The flags' identities and then the file's; the requester's email from
    ``--requester-email``, else the file, else the first email identity."""
    if source is not None:
        if source == "-" and sys.stdin.isatty():
            print("Type one type:value per line, then Ctrl-D.", file=sys.stderr)
        text = read_source(source, IDENTITIES_OPTION, MAX_IDENTITIES_BYTES)
        more, from_file = parse_identities(text, _where(source))
        if from_file is not None and requester_email is not None:
            raise SecretInputError(f"{IDENTITIES_OPTION}: requester_email is given in "
                                   f"{_where(source)} and with --requester-email; give it once")
        identities = [*identities, *more]
        requester_email = requester_email if requester_email is not None else from_file
    if requester_email is None:
        requester_email = next((i["value"] for i in identities if i["type"] == "email"), "")
    return identities, requester_email


def _where(source: str) -> str:
    return "stdin" if source == "-" else source
