"""``fairpool up``: the REST API in this process, the control loop (scheduler, reconciler and
local executor) in a child process, both on the same database: SQLite under the data directory
by default, or the database URL given.

Two processes, because both sides are busy under load and each needs its own interpreter lock;
they meet only in the database, and the API wakes the loop through a shared event when a job is
submitted or cancelled, so a job on free GPUs starts within milliseconds.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import threading
from multiprocessing.synchronize import Event

import uvicorn

from fairpool.api.app import create_app
from fairpool.api.context import AppContext
from fairpool.config import ServerSettings, write_client_config
from fairpool.control.loop import ControlLoop
from fairpool.executors.base import NodeInfo
from fairpool.executors.gpus import load_nodes_file, local_node
from fairpool.executors.local import LocalExecutor
from fairpool.scheduler import SchedulerConfig
from fairpool.store.db import Store

log = logging.getLogger("fairpool.server")


def inventory(settings: ServerSettings) -> list[NodeInfo]:
    if settings.nodes_file is not None:
        return load_nodes_file(settings.nodes_file)
    return [local_node(settings.simulate_gpus)]


def _logging() -> None:
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def run_loop(settings: ServerSettings, nodes: list[NodeInfo], wake: Event, stop: Event) -> None:
    """The control-loop process."""
    _logging()
    store = Store(settings.database_url())
    executor = LocalExecutor(nodes)
    loop = ControlLoop(store, executor, settings.data_dir,
                       config=SchedulerConfig(strategy=settings.strategy),
                       grace_s=settings.grace_s, wake_event=wake, stop_event=stop)
    try:
        loop.sync_nodes()
        loop.run()
    finally:
        executor.close()
        store.close()


def _check_port(host: str, port: int) -> None:
    """Fail before anything starts if the API's address is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OSError(f"{host}:{port} is not available ({exc.strerror}); is another "
                          f"fairpool running? pick another address with --port") from None


def serve(settings: ServerSettings, ready: threading.Event | None = None) -> None:
    _logging()
    _check_port(settings.host, settings.port)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    nodes = inventory(settings)
    store = Store(settings.database_url())
    store.migrate()
    store.close()
    ctx = multiprocessing.get_context("fork")  # before any thread starts in this process
    wake, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=run_loop, args=(settings, nodes, wake, stop),
                        name="fairpool-control", daemon=True)
    child.start()
    store = Store(settings.database_url())
    app = create_app(AppContext(store=store, data_dir=settings.data_dir, wake=wake.set))
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port,
                                           log_level="warning", access_log=False))
    if settings.write_client_config:
        write_client_config(settings.url())
    gpus = sum(len(n.devices) for n in nodes)
    simulated = any(n.simulated for n in nodes)
    print(f"fairpool {settings.url()}  nodes: {len(nodes)}  GPUs: {gpus}"
          f"{' (simulated)' if simulated else ''}  data: {settings.data_dir}", flush=True)
    if gpus == 0:
        print("no GPUs found; use --simulate-gpus N to try fairpool without GPUs", flush=True)
    try:
        if ready is not None:
            ready.set()
        server.run()
    finally:
        stop.set()
        wake.set()
        child.join(15)
        if child.is_alive():
            child.terminate()
        store.close()
