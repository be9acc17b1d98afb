"""A hostile tenant's job: tries to reach what belongs to the server and to another project.

Run by the system's python3 (standard library only) as a fairpool job; prints one JSON object
per attempt (``{"what", "ok", "error"}``: ``ok`` true means the attempt succeeded, which for a
hostile attempt is a breach), then ``DONE``, then (with ``--oom``) allocates twice its memory
request, which must end the job with the out-of-memory event.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import time


def attempt(what: str, fn) -> None:  # type: ignore[no-untyped-def]
    try:
        detail = fn()
        out = {"what": what, "ok": True, "error": "", "detail": str(detail)[:200]}
    except OSError as exc:
        out = {"what": what, "ok": False, "error": f"{type(exc).__name__}: {exc.strerror}",
               "errno": exc.errno}
    print(json.dumps(out), flush=True)


def read(path: str) -> str:
    with open(path, "rb") as f:
        return f.read(64).hex()


def write(path: str) -> str:
    with open(path, "w") as f:
        f.write("0\n")
    return "written"


def listdir(path: str) -> list[str]:
    return os.listdir(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--victim", required=True, help="the other project's job id")
    ap.add_argument("--victim-pid", type=int, required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--stand-ins", required=True, help="directory of the node's stand-in GPUs")
    ap.add_argument("--gpus", type=int, required=True, help="GPUs of the node")
    ap.add_argument("--own", default=os.environ.get("CUDA_VISIBLE_DEVICES", ""))
    ap.add_argument("--forks", type=int, default=0)
    ap.add_argument("--oom-mib", type=int, default=0)
    a = ap.parse_args()
    d, v = a.data, a.victim
    me = os.environ["FAIRPOOL_JOB_ID"]
    for name in ("fairpool.db", "fairpool.db-wal", "admin-token", "secret.key"):
        attempt(f"read {name}", lambda name=name: read(os.path.join(d, name)))
    attempt("list the data directory", lambda: listdir(d))
    attempt("read the victim's log", lambda: read(f"{d}/logs/{v}.0.0.log"))
    attempt("list the logs", lambda: listdir(f"{d}/logs"))
    attempt("read the victim's run spec", lambda: read(f"{d}/run/{v}.0.0.spec.json"))
    attempt("read the victim's checkpoint", lambda: read(f"{d}/jobs/{v}/checkpoint/state"))
    attempt("write into the victim's checkpoint folder",
            lambda: write(f"{d}/jobs/{v}/checkpoint/planted"))
    attempt("overwrite the victim's checkpoint", lambda: write(f"{d}/jobs/{v}/checkpoint/state"))
    attempt("forge my own exit status", lambda: write(f"{d}/run/{me}.0.0.exit"))
    attempt("forge the victim's exit status", lambda: write(f"{d}/run/{v}.0.0.exit"))
    # the server's settings must not be in this job's environment
    leaked = sorted(k for k in os.environ if k.startswith(("FAIRPOOL_SECRET", "FAIRPOOL_OIDC",
                                                           "SERVER_CANARY", "FAIRPOOL_DB")))
    print(json.dumps({"what": "server settings in my environment", "ok": bool(leaked),
                      "error": "", "detail": ",".join(leaked)}), flush=True)
    # processes: the victim's and the server's, by their pids on the machine
    def find_victim() -> str:
        for path in glob.glob("/proc/[0-9]*/environ"):
            try:
                with open(path, "rb") as f:
                    if f"FAIRPOOL_JOB_ID={v}".encode() in f.read():
                        return path
            except OSError:
                continue
        raise FileNotFoundError(2, "no process of the victim's job is visible")
    attempt("find the victim's processes in /proc", find_victim)
    attempt("see the victim's process", lambda: os.stat(f"/proc/{a.victim_pid}"))
    attempt("see the server's process", lambda: os.stat(f"/proc/{a.server_pid}"))
    attempt("signal the victim", lambda: os.kill(a.victim_pid, signal.SIGKILL))
    attempt("signal the server", lambda: os.kill(a.server_pid, signal.SIGKILL))
    # GPUs: by the device paths of the machine and of the sandbox
    own = {int(x) for x in a.own.split(",") if x}
    for i in range(a.gpus):
        tag = "own" if i in own else "other"
        attempt(f"open /dev/nvidia{i} ({tag})", lambda i=i: os.close(os.open(
            f"/dev/nvidia{i}", os.O_RDWR)))
        attempt(f"open stand-in nvidia{i} ({tag})", lambda i=i: os.close(os.open(
            f"{a.stand_ins}/nvidia{i}", os.O_RDWR)))
    attempt("make a device node", lambda: os.mknod("nvidia-mine", 0o666 | 0o020000,
                                                      os.makedev(240, 1)))
    if a.forks:
        children = []
        def fork_many() -> str:
            for _ in range(a.forks):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children.append(pid)
            return f"{len(children)} processes"
        attempt(f"fork {a.forks} processes", fork_many)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        for pid in children:
            os.waitpid(pid, 0)
        print(json.dumps({"what": "forked", "ok": False, "error": "",
                          "detail": str(len(children))}), flush=True)
    print("DONE", flush=True)
    if a.oom_mib:
        chunks = []
        for _ in range(a.oom_mib):
            chunk = bytearray(1 << 20)
            chunk[::4096] = b"\x01" * 256  # touch every page
            chunks.append(chunk)
        print(json.dumps({"what": f"allocate {a.oom_mib} MiB", "ok": True, "error": ""}),
              flush=True)


if __name__ == "__main__":
    main()
