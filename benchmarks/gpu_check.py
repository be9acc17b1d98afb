"""Real-GPU check (run on a machine with NVIDIA GPUs): NVML discovery, two fractional workers
sharing one device with CUDA at the same time, and a whole-GPU job that waits for them.

    python benchmarks/gpu_check.py          # prints JSON; exit code 0 when every check held
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

WORKER = r"""
import os, time, json, torch
frac = float(os.environ.get("FAIRPOOL_GPU_FRACTION", "1"))
torch.cuda.set_per_process_memory_fraction(frac, 0)
x = torch.randn(4096, 4096, device="cuda")
start = time.time()
while time.time() - start < float(os.environ.get("SECONDS_TO_RUN", "4")):
    y = x @ x
torch.cuda.synchronize()
print(json.dumps({"visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "fraction": frac,
                  "count": torch.cuda.device_count(), "name": torch.cuda.get_device_name(0),
                  "start": start, "end": time.time()}), flush=True)
"""


def main() -> int:
    work = Path(tempfile.mkdtemp())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    # jobs run this interpreter from a private temporary directory: as the server's account
    env = dict(os.environ, XDG_CONFIG_HOME=str(work / "cfg"), FAIRPOOL_RUN_AS="server")
    server = subprocess.Popen([sys.executable, "-m", "fairpool.cli.main", "up", "--port",
                               str(port), "--data-dir", str(work / "pool")], env=env,
                              stdout=(work / "server.log").open("wb"), stderr=subprocess.STDOUT)
    http = httpx.Client(base_url=url, timeout=30)
    out: dict[str, object] = {}
    try:
        for _ in range(100):
            try:
                http.get("/health")
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        time.sleep(1)
        token = (work / "pool" / "admin-token").read_text().strip()
        http.headers["Authorization"] = f"Bearer {token}"
        http.post("/api/v1/departments", json={"name": "d", "quota": {"gpus": 1}})
        http.post("/api/v1/projects", json={"name": "p", "department": "d",
                                            "quota": {"gpus": 1}})
        nodes = http.get("/api/v1/nodes").json()
        out["nodes"] = [{"name": n["name"], "simulated": n["simulated"],
                         "devices": [(d["index"], d["model"], d["memory_mib"])
                                     for d in n["devices"]]} for n in nodes]
        cmd = [sys.executable, "-c", WORKER]
        fracs = [http.post("/api/v1/jobs", json={"project": "p", "command": cmd,
                                                 "gpu_fraction": 0.5}).json()["id"]
                 for _ in range(2)]
        time.sleep(1.0)
        whole = http.post("/api/v1/jobs", json={"project": "p", "command": cmd, "gpus": 1,
                                                "env": {"SECONDS_TO_RUN": "1"}}).json()["id"]
        time.sleep(1.5)
        out["whole_while_fractions_run"] = http.get(f"/api/v1/jobs/{whole}/explain").json()
        deadline = time.time() + 240
        ids = [*fracs, whole]
        while time.time() < deadline:
            states = [http.get(f"/api/v1/jobs/{j}").json() for j in ids]
            if all(s["state"] in ("succeeded", "failed") for s in states):
                break
            time.sleep(0.5)
        out["states"] = [s["state"] for s in states]
        out["placements"] = [s["placement"] for s in states]
        reports = []
        for j in ids:
            text = http.get(f"/api/v1/jobs/{j}/logs").text
            line = next((ln for ln in text.splitlines() if ln.startswith("{")), None)
            reports.append(json.loads(line) if line else text[-500:])
        out["workers"] = reports
        ok_reports = [r for r in reports if isinstance(r, dict)]
        a, b = [*ok_reports, {}, {}][:2]
        overlap = bool(a and b and a["start"] < b["end"] and b["start"] < a["end"])
        same_device = states[0]["placement"][0]["devices"] == states[1]["placement"][0]["devices"]
        whole_after = bool(len(ok_reports) == 3 and ok_reports[2]["start"] >= max(
            a["end"], b["end"]) - 0.5)
        out["checks"] = {
            "nvml_discovered": bool(nodes) and not nodes[0]["simulated"]
            and len(nodes[0]["devices"]) > 0,
            "fractions_share_one_device": same_device,
            "fractions_ran_concurrently": overlap,
            "whole_gpu_waited_for_fractions": whole_after,
            "all_succeeded": out["states"] == ["succeeded"] * 3,
        }
    finally:
        server.terminate()
        server.wait(20)
    print(json.dumps(out, indent=1, default=str))
    dest = os.environ.get("OUT")
    if dest:
        Path(dest, "gpu_check.json").write_text(json.dumps(out, indent=1, default=str))
        Path(dest, "server.log").write_bytes((work / "server.log").read_bytes())
    return 0 if all(out.get("checks", {}).values()) else 1  # type: ignore[union-attr]


if __name__ == "__main__":
    raise SystemExit(main())
