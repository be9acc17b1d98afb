"""``fairpool up``: the REST API in this process, the control loop (scheduler, reconciler and
the local or Ray executor) in a child process, both on the same database: SQLite under the data
directory by default, or the database URL given. The child reports whether its executor started
(a Ray cluster may be unreachable or refuse our token) before the API serves anything.

Two processes, because both sides are busy under load and each needs its own interpreter lock;
they meet only in the database, and the API wakes the loop through a shared event when a job is
submitted or cancelled, so a job on free GPUs starts within milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path

import uvicorn

from fairpool.api.app import create_app
from fairpool.api.context import AppContext
from fairpool.api.limits import RateLimiter, SubmitLimiter
from fairpool.auth.oidc import OidcVerifier
from fairpool.auth.secretbox import SecretBox, load_or_create_key
from fairpool.client.settings import write_client_config
from fairpool.config import ServerSettings
from fairpool.control.loop import ControlLoop
from fairpool.control.settings import LoopSettings
from fairpool.control.stats import LoopStats
from fairpool.executors.base import Executor, NodeInfo
from fairpool.executors.gpus import load_nodes_file, local_node
from fairpool.executors.local import LocalExecutor
from fairpool.executors.sandbox.policy import Sandbox, SandboxConfig
from fairpool.scheduler import SchedulerConfig
from fairpool.services.audit import Throttle
from fairpool.services.notifier import Notifier
from fairpool.services.secrets import SecretEnv
from fairpool.services.tokens import Authenticator, TokenLimits, bootstrap_admin
from fairpool.services.webhook_delivery import WebhookPolicy
from fairpool.shutdown import TERMINATED, exit_on_sigterm, left_running, loop_signals
from fairpool.store.db import Store

log = logging.getLogger("fairpool.server")


def inventory(settings: ServerSettings) -> list[NodeInfo]:
    if settings.nodes_file is not None:
        return load_nodes_file(settings.nodes_file)
    return [local_node(settings.simulate_gpus)]


def _logging() -> None:
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


Closer = Callable[[], None]


def make_executor(settings: ServerSettings, nodes: list[NodeInfo]) -> tuple[Executor, Closer]:
    """The executor the settings ask for, and how to release it."""
    if settings.ray_address is None:
        state = settings.data_dir / "run"
        sandbox = Sandbox(sandbox_config(settings), settings.data_dir, state,
                          [(n.name, len(n.devices)) for n in nodes if n.simulated])
        local = LocalExecutor(nodes, state_dir=state, sandbox=sandbox,
                              log_max_bytes=settings.log_max_mib << 20)
        return local, local.close
    from fairpool.executors.ray import RaySettings, connect, disconnect
    from fairpool.executors.ray.executor import RayExecutor

    connect(RaySettings(address=settings.ray_address, token_file=settings.ray_token_file,
                        gpu_resource=settings.ray_gpu_resource,
                        connect_timeout_s=settings.ray_connect_timeout_s))
    try:
        ray_executor = RayExecutor(settings.ray_gpu_resource, sandbox={
            "passthrough": list(settings.env_passthrough), "pull": settings.image_pull,
            "mount_roots": [str(r) for r in settings.allowed_mount_roots],
            "pids_limit": settings.pids_limit}, log_max_bytes=settings.log_max_mib << 20)
    except BaseException:
        disconnect()
        raise

    def close() -> None:
        ray_executor.close()
        disconnect()

    return ray_executor, close


def _scheduler_config(settings: ServerSettings) -> SchedulerConfig:
    """The core's settings that the server's settings choose (the rest keep the core's)."""
    return SchedulerConfig(strategy=settings.strategy, job_order=settings.job_order,
                           usage_k=settings.usage_k, usage_half_life_s=settings.usage_half_life_s,
                           usage_window_s=settings.usage_window_s)


def sandbox_config(settings: ServerSettings) -> SandboxConfig:
    return SandboxConfig(
        run_as=settings.run_as, project_account=settings.project_account,
        dynamic_uids=settings.dynamic_uids, env_passthrough=tuple(settings.env_passthrough),
        cgroups=settings.cgroups, namespaces=settings.namespaces,
        pids_limit=settings.pids_limit, image_pull=settings.image_pull,
        mount_roots=tuple(str(r) for r in settings.allowed_mount_roots))


def isolation_line(nodes: list[NodeInfo]) -> str:
    """What ``fairpool up`` says of how jobs are kept apart (one line per kind of node)."""
    lines = []
    for report in {repr(n.isolation): n.isolation for n in nodes if n.isolation}.values():
        assert report is not None
        level, run_as = report.get("level"), report.get("run_as")
        missing = "; ".join(report.get("missing") or ())
        if level == "none":
            lines.append(f"isolation: none: jobs run as this server's own account (run_as="
                         f"{run_as}) and are NOT isolated from one another or from the server")
        elif level == "partial":
            lines.append(f"isolation: partial (run_as={run_as}); missing: {missing}")
        else:
            lines.append(f"isolation: full (run_as={run_as}: own account, cgroup, PID and "
                         f"mount namespaces per job)")
    return "\n".join(lines)


def _die_with(parent: int) -> None:
    """If ``fairpool up`` is killed (even with SIGKILL) its control loop must not go on: a
    restarted server would run a second loop on the same pool. Linux ends this process with
    its parent; the workers live on in their own sessions, for the next server to adopt."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the call above took effect
        os._exit(1)


PR_SET_PDEATHSIG = 1


def run_loop(settings: ServerSettings, nodes: list[NodeInfo], wake: Event, stop: Event,
             started: Connection, box: SecretBox, stats: LoopStats, parent: int) -> None:
    """The control-loop process: builds the executor, tells the API process how that went
    (``("ready", inventory)`` or ``("error", one line)``), then runs the loop."""
    _die_with(parent)
    loop_signals()  # Ctrl-C is the API process's to handle; SIGTERM unwinds the loop
    _logging()
    try:
        executor, close = make_executor(settings, nodes)
    except KeyboardInterrupt:
        return
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        started.send(("error", message))
        started.close()
        return
    store = Store(settings.database_url())
    try:
        loop = ControlLoop(store, executor, settings.data_dir, LoopSettings(
            grace_s=settings.grace_s, sync_every_s=30.0 if settings.ray_address is None
            else 1.0, sample_every_s=settings.sample_every_s,
            retry_base_s=settings.retry_backoff_s, breaker_failures=settings.breaker_failures,
            breaker_window_s=settings.breaker_window_s,
            breaker_cooldown_s=settings.breaker_cooldown_s),
            config=_scheduler_config(settings), wake_event=wake,
            stop_event=stop, secret_env=SecretEnv(box), stats=stats)
        loop.sync_nodes()
        started.send(("ready", executor.nodes()))
        started.close()
        loop.run()
    finally:
        close()
        store.close()


def _wait_started(child: BaseProcess, started: Connection, settings: ServerSettings
                  ) -> list[NodeInfo]:
    """The inventory the control loop started with, or a ValueError saying why it did not."""
    timeout = 60.0 + (4 * settings.ray_connect_timeout_s if settings.ray_address else 0.0)
    message = None
    if not started.poll(timeout):
        message = f"the control loop did not start within {timeout:g} s"
        if settings.ray_address:
            message += f" (is the Ray cluster at {settings.ray_address} healthy?)"
    else:
        try:
            kind, payload = started.recv()
        except EOFError:
            kind, payload = "error", "the control loop exited while starting (see above)"
        if kind == "ready":
            return list(payload)
        message = str(payload)
    _end(child, 5)
    raise ValueError(message)


def _end(child: BaseProcess, grace_s: float) -> None:
    """Wait for the control loop to exit; terminate it, then kill it, if it does not."""
    child.join(grace_s)
    if child.is_alive():
        child.terminate()
        child.join(5)
    if child.is_alive():
        child.kill()
        child.join(5)


def _watch(child: BaseProcess, server: uvicorn.Server, stop: Event) -> None:
    """Stop serving if the control loop dies: an API that accepts jobs nobody will run is worse
    than no API."""
    child.join()
    if not stop.is_set():
        if child.exitcode != TERMINATED:  # SIGTERM: the whole server is being stopped
            log.error("the control loop exited (code %s); stopping the server", child.exitcode)
        server.should_exit = True


def oidc(settings: ServerSettings) -> OidcVerifier | None:
    if settings.oidc_issuer is None or settings.oidc_audience is None:
        return None
    return OidcVerifier(settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url,
                        settings.oidc_username_claim, settings.oidc_groups_claim,
                        user_prefix=settings.oidc_user_prefix)


def _save_admin_token(settings: ServerSettings, token: str | None) -> Path | None:
    """The first start's admin token, in a file only this user can read."""
    if token is None:
        return None
    path = settings.data_dir / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


def _check_port(host: str, port: int) -> None:
    """Fail before anything starts if the API's address is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OSError(f"{host}:{port} is not available ({exc.strerror}); is another "
                          f"fairpool running? pick another address with --port") from None


def serve(settings: ServerSettings, ready: threading.Event | None = None,
          say: Callable[[str], None] | None = None) -> None:
    """Run the pool until a signal (or the loop's death) stops it; then ``say`` (default:
    print) one line on the workers that keep running (:mod:`fairpool.shutdown`)."""
    _logging()
    _check_port(settings.host, settings.port)
    os.umask(0o077)  # the database, its journal, keys and tokens: this account's alone
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    if settings.ray_address is not None and importlib.util.find_spec("ray") is None:
        raise ImportError("--ray-address needs Ray", name="ray")
    nodes = inventory(settings) if settings.ray_address is None else []
    store = Store(settings.database_url())
    store.migrate()
    admin_token = bootstrap_admin(store, settings.admin_user)
    store.close()
    box = SecretBox(settings.secret_key.encode() if settings.secret_key
                    else load_or_create_key(settings.key_file()))
    ctx = multiprocessing.get_context("fork")  # before any thread starts in this process
    wake, stop = ctx.Event(), ctx.Event()
    receiver, sender = ctx.Pipe(duplex=False)
    stats = LoopStats(ctx)
    child = ctx.Process(target=run_loop, name="fairpool-control", daemon=True,
                        args=(settings, nodes, wake, stop, sender, box, stats, os.getpid()))
    child.start()
    sender.close()
    nodes = _wait_started(child, receiver, settings)
    store = Store(settings.database_url())
    policy = WebhookPolicy(settings.webhook_timeout_s, settings.webhook_max_attempts,
                           settings.webhook_retry_base_s, settings.webhook_retry_cap_s,
                           settings.webhook_allow_private)
    app = create_app(AppContext(
        store=store, data_dir=settings.data_dir, auth=Authenticator(store, oidc(settings)),
        box=box, wake=wake.set,
        submit_limiter=SubmitLimiter(RateLimiter(settings.submit_rate, settings.submit_burst),
                                     RateLimiter(*settings.project_submit())),
        token_limits=TokenLimits(settings.max_tokens_per_user, settings.max_token_lifetime_s,
                                 settings.oidc_token_lifetime_s),
        refusals=Throttle(settings.audit_refusals_per_s, settings.audit_refusals_burst),
        max_pending_per_project=settings.max_pending_per_project,
        max_body_bytes=settings.max_body_bytes, stats=stats,
        mount_roots=tuple(settings.allowed_mount_roots),
        scheduler=_scheduler_config(settings), webhooks=policy))
    tls = settings.tls_cert is not None
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
        ssl_certfile=str(settings.tls_cert) if tls else None,
        ssl_keyfile=str(settings.tls_key) if tls else None))
    threading.Thread(target=_watch, args=(child, server, stop), daemon=True).start()
    token_file = _save_admin_token(settings, admin_token)
    if settings.write_client_config:
        write_client_config(settings.url(), token=admin_token,
                            ca=str(settings.tls_cert) if tls else "")
    gpus = sum(len(n.devices) for n in nodes)
    simulated = any(n.simulated for n in nodes)
    where = f"  Ray: {settings.ray_address}" if settings.ray_address else ""
    print(f"fairpool {settings.url()} (dashboard: {settings.url()}/ui)  nodes: {len(nodes)}  "
          f"GPUs: {gpus}"
          f"{' (simulated)' if simulated else ''}{where}  data: {settings.data_dir}", flush=True)
    isolation = isolation_line(nodes)
    if isolation:
        print(isolation, flush=True)
    if gpus == 0:
        hint = ("give Ray nodes GPUs, or a GPU resource to simulate them (see the README)"
                if settings.ray_address else "use --simulate-gpus N to try fairpool without GPUs")
        print(f"no GPUs found; {hint}", flush=True)
    if token_file is not None:
        print(f"first start: user {settings.admin_user} is admin; its token is in {token_file}"
              + (" and the CLI's config" if settings.write_client_config else "")
              + ". Give others tokens with `fairpool token create --user NAME` and roles with "
              "`fairpool role grant NAME ROLE SCOPE`", flush=True)
    notifier = Notifier(store, box, policy)  # webhooks, beside the API (never the loop)
    notifier.start()
    try:
        exit_on_sigterm()
        if ready is not None:
            ready.set()
        server.run()
    finally:
        stop.set()
        wake.set()
        _end(child, 15)
        notifier.stop()
        store.close()
        (say or print)(left_running(settings))
