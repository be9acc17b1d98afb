"""``fairpool up``: one process serving the REST API, running the control loop and the local
executor, on SQLite under the data directory (or the database URL given)."""

from __future__ import annotations

import logging
import threading

import uvicorn

from fairpool.api.app import create_app
from fairpool.api.context import AppContext
from fairpool.config import ServerSettings, write_client_config
from fairpool.control.loop import ControlLoop
from fairpool.executors.base import NodeInfo
from fairpool.executors.gpus import load_nodes_file, local_node
from fairpool.executors.local import LocalExecutor
from fairpool.scheduler import SchedulerConfig
from fairpool.services.status import StatusBoard
from fairpool.store.db import Store

log = logging.getLogger("fairpool.server")


def inventory(settings: ServerSettings) -> list[NodeInfo]:
    if settings.nodes_file is not None:
        return load_nodes_file(settings.nodes_file)
    return [local_node(settings.simulate_gpus)]


def serve(settings: ServerSettings, ready: threading.Event | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s "
                        "%(message)s")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_url())
    store.migrate()
    nodes = inventory(settings)
    executor = LocalExecutor(nodes)
    board = StatusBoard()
    loop = ControlLoop(store, executor, settings.data_dir, board=board,
                       config=SchedulerConfig(strategy=settings.strategy),
                       grace_s=settings.grace_s)
    app = create_app(AppContext(store=store, data_dir=settings.data_dir, board=board,
                                wake=loop.wake))
    loop.start()
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
        loop.stop()
        executor.close()
        store.close()
