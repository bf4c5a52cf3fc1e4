"""The intake service: the notification platform's trigger and event API over HTTP, recording
every call in the source. An ASGI application (Starlette) served by uvicorn.

Each request is checked in this order: size (413 over 800 KB), authentication (401, nothing
recorded), then the body (400 naming the field and the reason, recorded as a `failure`
request). Valid calls go to the writer (`writer.py`) and are answered once committed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from datetime import datetime, timezone

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from uvicorn.server import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from notif_export.intake import auth
from notif_export.intake.calls import Call, error_body
from notif_export.intake.schemas import (
    MAX_BODY_BYTES,
    MAX_BULK_ITEMS,
    openapi_document,
    problem,
)
from notif_export.intake.writer import Writer
from notif_export.lib.execution_model import create_schedule
from notif_export.lib.settings import IntakeSettings, Settings
from notif_export.lib.source import SourceDatabase
from notif_export.lib.workers import die_with_parent

DEFAULT_PORT = 8080


class TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


def build_app(settings: IntakeSettings, source: SourceDatabase,
              on_stop: Callable[[], None] | None = None) -> Starlette:
    writer = Writer(source, settings.workspace_key)
    document = openapi_document()

    async def handle(request: Request, kind: str, bulk_only: bool = False) -> JSONResponse:
        received_at = datetime.now(timezone.utc)
        try:
            body = await _read_body(request)
        except TooLarge:
            return JSONResponse(error_body("payload_too_large", f"the body is over {MAX_BODY_BYTES // 1024} KB; "
                                           "send fewer items per call"), 413)
        uri = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            scheme = auth.authenticate(settings, auth.Request(request.method, uri, dict(request.headers), body))
            path_key = request.path_params.get("workspace_key")
            if path_key is not None and path_key != settings.workspace_key:
                raise auth.Unauthorized("unknown workspace key in the path")
        except auth.Unauthorized as exc:
            return JSONResponse(error_body("authentication_error", str(exc)), 401)
        metadata = {"sdk": request.headers.get("user-agent", ""), "ip": request.client.host if request.client else None,
                    "auth": scheme, "path": request.url.path}
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            call = Call(kind, None, _text(body), received_at, metadata, ("body", f"not JSON: {exc}"))
            return await _single(call)
        if isinstance(parsed, list):
            if not parsed or len(parsed) > MAX_BULK_ITEMS:
                reason = f"a bulk call holds 1 to {MAX_BULK_ITEMS} items, got {len(parsed)}"
                return await _single(Call(kind, parsed, _text(body), received_at, metadata, ("body", reason)))
            calls = [Call(kind, item, json.dumps(item, ensure_ascii=False), received_at, metadata, problem(kind, item))
                     for item in parsed]
            answers = await writer.submit(calls)
            records = [{"status": "success", "status_code": code} if code // 100 == 2 else
                       {"status": "error", "status_code": code, "error": answer.get("error", {})}
                       for code, answer in answers]
            accepted = sum(r["status"] == "success" for r in records)
            status = "success" if accepted == len(records) else "partial" if accepted else "fail"
            return JSONResponse({"status": status, "records": records}, 202)
        if bulk_only:
            reason = f"expected an array of 1 to {MAX_BULK_ITEMS} events"
            return await _single(Call(kind, parsed, _text(body), received_at, metadata, ("body", reason)))
        return await _single(Call(kind, parsed, _text(body), received_at, metadata, problem(kind, parsed)))

    async def _single(call: Call) -> JSONResponse:
        [(code, answer)] = await writer.submit([call])
        return JSONResponse(answer, code)

    async def trigger(request: Request) -> JSONResponse:
        return await handle(request, "workflow")

    async def event(request: Request) -> JSONResponse:
        return await handle(request, "event")

    async def bulk_event(request: Request) -> JSONResponse:
        return await handle(request, "event", bulk_only=True)

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        writer.start()
        try:
            yield
        finally:
            writer.stop()
            if on_stop:
                on_stop()

    return Starlette(routes=[
        Route("/trigger/", trigger, methods=["POST"]),
        Route("/{workspace_key}/trigger/", trigger, methods=["POST"]),
        Route("/event/", event, methods=["POST"]),
        Route("/v2/event/", event, methods=["POST"]),
        Route("/v2/bulk/event/", bulk_event, methods=["POST"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ], lifespan=lifespan)


class _Server(uvicorn.Server):
    """uvicorn's server, ending with exit code 0 on Ctrl-C or SIGTERM (uvicorn re-raises the
    signal once shut down, which ends the process by the signal); a second signal forces the exit."""

    @contextlib.contextmanager
    def capture_signals(self):
        def stop(signum, frame):
            self.force_exit = self.should_exit
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def app_from_environment() -> Starlette:
    """The app of one of several service processes (uvicorn's workers, each a spawned process
    that builds its app from the settings in its environment, the parent's)."""
    die_with_parent()
    _log_to_stderr()
    settings = Settings.from_env(os.environ)
    source = SourceDatabase(settings.source_url)
    return build_app(settings.intake, source, on_stop=source.dispose)


def _log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Run the service until SIGINT/SIGTERM (uvicorn's own handlers: it finishes the calls in flight)."""
    settings.intake.require()
    source = SourceDatabase(settings.source_url)
    # The schema and the status-change schedule, once, before several processes could race to create them.
    source.init_schema()
    create_schedule(source)
    _log_to_stderr()
    processes = settings.intake_processes
    print(f"intake service on http://{host}:{port} (POST /trigger/, /event/, /v2/event/, /v2/bulk/event/; "
          f"GET /openapi.json), recording into {source.display_url}, {processes} process"
          f"{'es' if processes > 1 else ''}; Ctrl-C stops", flush=True)
    # No access log: one line per call is noise at 1,000 calls/s, and headers are never logged.
    options = dict(host=host, port=port, log_level="warning", access_log=False)
    if processes == 1:
        try:
            _Server(uvicorn.Config(build_app(settings.intake, source), **options)).run()
        finally:
            source.dispose()
        return
    source.dispose()  # the workers have their own connections
    # Several processes: the interpreter lock holds one near 1,000 triggers/s. uvicorn's
    # supervisor binds the socket once, spawns the workers on it and stops them on a signal.
    config = uvicorn.Config(f"{__name__}:app_from_environment", factory=True, workers=processes, **options)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    # A worker that could not start stops the supervisor, which then returns as if asked to stop.
    if any(worker.exitcode == STARTUP_FAILURE for worker in supervisor.processes):
        raise SystemExit(STARTUP_FAILURE)
