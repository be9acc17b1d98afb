"""The base of every request model and the rules its text obeys.

Inputs forbid unknown fields and bound every size, so bad input is rejected with a message that
names the field and the rule, before anything is written. No text may carry a NUL or a lone
surrogate; text shown to other people may carry no control or disguising characters either.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

Name = Annotated[
    str,
    StringConstraints(
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    ),
]

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: characters that change how the text around them is shown, or show nothing: bidirectional
#: embeddings, overrides and isolates, the Arabic letter mark, zero-width spaces and joiners,
#: the directional marks, the word joiner and invisible operators, line and paragraph
#: separators, the Mongolian vowel separator and the BOM; the soft hyphen, the combining
#: grapheme joiner, the Hangul fillers, the interlinear annotation marks and the tag characters
DISGUISING = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u180e\u200b-\u200f"
                        "\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
                        "\U000e0000-\U000e007f]")
SURROGATE = re.compile(r"[\ud800-\udfff]")  # after JSON decoding, only lone ones are left


def _no_nul(value: object) -> None:
    """No NUL and no lone surrogate in any text, dictionary keys included (pydantic checks
    only values). Without recursion: a body nested a thousand levels deep must not exhaust the
    stack."""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("text must not contain NUL characters")
            if not item.isascii() and SURROGATE.search(item):
                raise ValueError("text must be valid Unicode: a lone surrogate (\\ud800-"
                                 "\\udfff) is not a character")
        elif isinstance(item, dict):
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, list | tuple):
            todo.extend(item)


def printable(what: str, text: str) -> str:
    """Text shown to other people (job names, labels, descriptions) must not carry control
    characters (an escape sequence in a name would act on the terminal of whoever lists the
    jobs) nor characters that disguise what is shown (a right-to-left override makes
    ``evil\u202egnp.sh`` read as ``evilhs.png``)."""
    found = CONTROL.search(text)
    if found is not None:
        raise ValueError(f"{what} must not contain control characters (found "
                         f"{found.group()!r} at position {found.start()}); use printable text")
    found = DISGUISING.search(text)
    if found is not None:
        char = found.group()
        raise ValueError(f"{what} must not contain U+{ord(char):04X} ("
                         f"{unicodedata.name(char, 'a format character')}) at position "
                         f"{found.start()}: bidirectional and invisible characters disguise "
                         f"what is shown; remove it")
    return text


class Input(BaseModel):
    """A request body: unknown fields, NUL characters and lone surrogates are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _reject_nul(cls, data: object) -> object:
        _no_nul(data)
        return data

