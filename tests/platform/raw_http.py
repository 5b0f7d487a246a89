"""A bare HTTP/1.1 client for requests no ordinary client sends: a body far larger than it
declares, or streamed while the answer is already there.

It writes the head, then body pieces with flow control, and stops as soon as the response head
has arrived or the server closed the connection; what the server sent before a reset is kept
(asyncio's stream reader would drop it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    bytes_sent: int  # body bytes written before the answer came

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _Collector(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.get_running_loop().create_future()
        self.writable = asyncio.Event()
        self.writable.set()
        self.complete = asyncio.Event()  # the whole response, or the connection's end

    def data_received(self, data: bytes) -> None:
        self.data += data
        if _complete(self.data):
            self.complete.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writable.set()
        self.complete.set()
        if not self.closed.done():
            self.closed.set_result(exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def answered(self) -> bool:
        return b"\r\n\r\n" in self.data or self.closed.done()


async def send(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Iterable[bytes] = (),
    *,
    chunked: bool = False,
) -> RawResponse:
    where = urlsplit(url)
    assert where.hostname == "127.0.0.1"  # tests only ever talk to this machine
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_connection(_Collector, where.hostname, where.port)
    head = [f"{method} {path} HTTP/1.1", f"Host: {where.netloc}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if chunked:
        head.append("Transfer-Encoding: chunked")
    transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    sent = 0
    try:
        for piece in body:
            await proto.writable.wait()
            if proto.answered():
                break
            transport.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
            await asyncio.sleep(0)  # let the server run: it is in this event loop
        else:
            if chunked and not proto.answered():
                transport.write(b"0\r\n\r\n")
        async with asyncio.timeout(30):
            await proto.complete.wait()
    finally:
        transport.close()
    return _parse(bytes(proto.data), sent)


def _complete(data: bytearray) -> bool:
    head, sep, rest = bytes(data).partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(rest) >= int(value)
    return False


def _parse(data: bytes, sent: int) -> RawResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"no HTTP response: {data[:200]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(lines[0].split()[1]), headers, body, sent)
