"""Reading a worker's log over HTTP: a byte range or the last lines of the file, streamed in
chunks (a reader never holds more than :data:`CHUNK` of it), or followed as it grows.

A plain read covers the file as it was when the request came (``X-Log-Size``); the range it
returns is ``X-Log-Offset`` to ``X-Log-Next-Offset``, where a client that wants more asks again
(``offset=``) or follows. The last lines are found by reading backwards from the end, a chunk at
a time. A log removed while it is read is read to the end all the same (the file stays open),
and one that shrank ends the body early.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import Request
from fastapi.responses import StreamingResponse

from fairpool.services.errors import Invalid

CHUNK = 64 * 1024
TAIL_MAX = 100_000  # lines
LIMIT_MAX = 64 << 20  # bytes in one page
OFFSET_MAX = 1 << 62
MEDIA = "text/plain; charset=utf-8"
FOLLOW_POLL_S = 0.2

#: the success response, as the OpenAPI document tells it
OK: dict[str, Any] = {
    "description": "the worker's output as it wrote it (bytes, mostly UTF-8 text)",
    "headers": {
        "X-Log-Size": {"description": "the log's size in bytes when the read began",
                       "schema": {"type": "integer", "minimum": 0}},
        "X-Log-Offset": {"description": "the byte of the log the body starts at",
                         "schema": {"type": "integer", "minimum": 0}},
        "X-Log-Next-Offset": {
            "description": "the byte after the last one in the body: pass it as `offset` "
                           "to read on from there (not sent with `follow`)",
            "schema": {"type": "integer", "minimum": 0}},
    },
}
DESCRIBE_TAIL = (f"only the last N lines (0..{TAIL_MAX:,}); with follow, then what is written "
                 f"after them; not with offset")
DESCRIBE_OFFSET = ("start at this byte of the log (X-Log-Next-Offset of an earlier read); "
                   "default 0")
DESCRIBE_LIMIT = (f"at most this many bytes (1..{LIMIT_MAX}); default: to the end of the log "
                  f"as it is now; not with follow")


def _open(path: Path) -> tuple[BinaryIO | None, int]:
    """The log opened for reading, and its size now; (None, 0) while there is none."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return None, 0
    return f, os.fstat(f.fileno()).st_size


def tail_start(f: BinaryIO, size: int, lines: int, floor: int = 0) -> int:
    """Where the last ``lines`` lines of ``f`` (``size`` bytes) begin, read backwards from the
    end a chunk at a time and never below ``floor`` (returned when they begin before it); a
    newline that ends the file ends its last line, as with ``tail -n``."""
    if lines == 0 or size <= floor:
        return size
    f.seek(size - 1)
    end = size - 1 if f.read(1) == b"\n" else size
    found, pos = 0, end
    while pos > floor:
        step = min(CHUNK, pos - floor)
        pos -= step
        f.seek(pos)
        block = f.read(step)
        at = len(block)
        while (at := block.rfind(b"\n", 0, at)) >= 0:
            found += 1
            if found == lines:
                return pos + at + 1
    return floor


def chunks(f: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` of ``f``, a chunk at a time; closes ``f`` when done."""
    with f:
        f.seek(start)
        left = end - start
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                return  # the file shrank
            left -= len(data)
            yield data


def _start(f: BinaryIO | None, size: int, tail: int | None, offset: int | None) -> int:
    if tail is not None and offset is not None:
        raise Invalid("give either tail (the last lines) or offset (a byte to start at), not "
                      "both")
    if tail is not None:
        return tail_start(f, size, tail) if f is not None else 0
    return offset or 0


def _opened(path: Path, tail: int | None, offset: int | None
            ) -> tuple[BinaryIO | None, int, int]:
    """The log opened, its size now, and where the read starts (closed again if that fails)."""
    f, size = _open(path)
    try:
        return f, size, _start(f, size, tail, offset)
    except BaseException:
        if f is not None:
            f.close()
        raise


def read(path: Path, tail: int | None, offset: int | None, limit: int | None
         ) -> StreamingResponse:
    """A range of the log as it is now: from the last ``tail`` lines or byte ``offset``, at
    most ``limit`` bytes."""
    f, size, start = _opened(path, tail, offset)
    end = max(start, size if limit is None else min(size, start + limit))
    headers = {"X-Log-Size": str(size), "X-Log-Offset": str(start),
               "X-Log-Next-Offset": str(end)}
    body: Iterator[bytes] = iter(()) if f is None else chunks(f, start, end)
    return StreamingResponse(body, media_type=MEDIA, headers=headers)


def follow(request: Request, path: Path, tail: int | None, offset: int | None,
           limit: int | None, ended: Callable[[], Awaitable[bool]]) -> StreamingResponse:
    """The log from the last ``tail`` lines or byte ``offset`` on, as it grows, until
    ``ended()`` says the worker will write no more and the log has been read to its end."""
    if limit is not None:
        raise Invalid("limit does not go with follow, which streams until the job ends; drop "
                      "one of them")
    f, size, start = _opened(path, tail, offset)
    if f is not None:
        f.seek(start)

    async def stream(f: BinaryIO | None) -> AsyncIterator[bytes]:
        done = False
        try:
            while not await request.is_disconnected():
                if f is None:  # not written yet: the worker has not started
                    f, _ = await asyncio.to_thread(_open, path)
                    if f is not None:
                        f.seek(start)
                chunk = b"" if f is None else await asyncio.to_thread(f.read, CHUNK)
                if chunk:
                    yield chunk
                    continue
                if done:  # the job ended and the file has been read to its end since
                    return
                if await ended():
                    done = True  # one more read: lines written just before the end
                    continue
                await asyncio.sleep(FOLLOW_POLL_S)
        finally:
            if f is not None:
                f.close()

    headers = {"X-Log-Size": str(size), "X-Log-Offset": str(start)}
    return StreamingResponse(stream(f), media_type=MEDIA, headers=headers)
