"""A TCP proxy on 127.0.0.1 that injects faults into the traffic it relays, for the fault
campaign: in front of the S3 server it reads HTTP requests and can answer 500 or 503 itself,
reset the connection or stall past the client's timeout; in front of PostgreSQL it can refuse
connections and cut the open ones. Faults are decided per request (S3) or per connection, with
a seeded random generator, so a campaign can be replayed.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

S3_ERRORS = {
    "s3_500": (500, "Internal Server Error", "InternalError", "We encountered an internal error. Please try again."),
    "s3_503": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
}
S3_FAULTS = (*S3_ERRORS, "s3_reset", "s3_stall")


@dataclass
class FaultProxy:
    upstream_port: int
    http: bool  # parse HTTP requests (S3) rather than relay bytes (PostgreSQL)
    seed: int = 0
    stall_seconds: float = 40.0
    port: int = 0
    injected: Counter = field(default_factory=Counter)
    requests: int = 0
    uploads_in_flight: int = 0
    _faults: dict[str, float] = field(default_factory=dict)  # kind -> probability per request
    _refusing: bool = False
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.AbstractServer | None = None
    _connections: set = field(default_factory=set)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    # Control, from any thread.
    def inject(self, kind: str, probability: float) -> None:
        """Inject `kind` (one of S3_FAULTS) into that share of the requests from now on."""
        self._faults[kind] = probability

    def clear(self) -> None:
        self._faults.clear()

    def refuse(self, refusing: bool) -> None:
        """Refuse new connections and cut the open ones (a database that went away), or stop."""
        self._refusing = refusing
        if refusing and self._loop:
            for writer in list(self._connections):
                self._loop.call_soon_threadsafe(_reset, writer)

    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=run, name=f"fault-proxy-{self.upstream_port}", daemon=True).start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for writer in list(self._connections):
                _reset(writer)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    # The relay.
    def _draw(self) -> str | None:
        for kind, probability in list(self._faults.items()):
            if self._random.random() < probability:
                return kind
        return None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            self.injected["db_refused"] += 1
            _reset(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(client_writer)
            return
        self._connections.update((client_writer, upstream_writer))
        back = asyncio.ensure_future(_pipe(upstream_reader, client_writer))
        try:
            if self.http:
                await self._relay_requests(client_reader, upstream_writer, client_writer)
            else:
                await _pipe(client_reader, upstream_writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            back.cancel()
            for writer in (client_writer, upstream_writer):
                self._connections.discard(writer)
                _close(writer)

    async def _relay_requests(self, client: asyncio.StreamReader, upstream: asyncio.StreamWriter,
                              client_writer: asyncio.StreamWriter) -> None:
        while True:
            head = await client.readuntil(b"\r\n\r\n")
            self.requests += 1
            method = head.split(b" ", 1)[0]
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(b":") for line in head.split(b"\r\n")[1:] if line)}
            length = int(headers.get(b"content-length", b"0"))
            chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
            fault = self._draw()
            if fault in S3_ERRORS:
                await _read_body(client, length, chunked, None)
                status, reason, code, message = S3_ERRORS[fault]
                body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                        f"<Message>{message}</Message></Error>").encode()
                client_writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
                                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
                await client_writer.drain()
                self.injected[fault] += 1
                return
            if fault == "s3_stall":
                self.injected[fault] += 1
                await asyncio.sleep(self.stall_seconds)  # past the client's read timeout
                _reset(client_writer)
                return
            upstream.write(head)
            upload = method in (b"PUT", b"POST") and (length > 0 or chunked)
            self.uploads_in_flight += upload
            try:
                if fault == "s3_reset":  # half the body, then a TCP reset
                    self.injected[fault] += 1
                    await _read_body(client, length // 2, False, upstream)
                    _reset(client_writer)
                    _reset(upstream)
                    return
                await _read_body(client, length, chunked, upstream)
            finally:
                self.uploads_in_flight -= upload


async def _read_body(reader: asyncio.StreamReader, length: int, chunked: bool,
                     upstream: asyncio.StreamWriter | None) -> None:
    """Relay (or, without `upstream`, drop) one request body."""
    def send(data: bytes) -> None:
        if upstream is not None:
            upstream.write(data)

    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            send(size_line)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    send(trailer)
                send(b"\r\n")
                break
            send(await reader.readexactly(size + 2))
            if upstream is not None:
                await upstream.drain()
    else:
        remaining = length
        while remaining:
            data = await reader.read(min(remaining, 1 << 16))
            if not data:
                raise asyncio.IncompleteReadError(b"", remaining)
            remaining -= len(data)
            send(data)
            if upstream is not None:
                await upstream.drain()
    if upstream is not None:
        await upstream.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        _close(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed peer or a cut network does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter) -> None:
    if not writer.is_closing():
        writer.close()
