"""Errors said in one line: torch's C++ errors and SQLAlchemy's carry multi-line details, and every
message we print or record keeps only the first line."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message, or the type's name when the message is empty."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def error_text(err: BaseException) -> str:
    """``"ValueError: first line"``, or the type's name alone when the message is empty."""
    return f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__
