"""Ray node entries to fairpool nodes, address checks and settings files (pure, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fairpool.config import load_server_settings
from fairpool.executors.ray.connect import RayConnectError, RaySettings, apply_security, resolve
from fairpool.executors.ray.inventory import node_info

ENTRY = {
    "NodeID": "0123456789abcdef" * 3, "Alive": True, "NodeManagerAddress": "10.0.0.7",
    "Resources": {"CPU": 16.0, "GPU": 4.0, "memory": 64 * 2**30, "node:10.0.0.7": 1.0},
    "Labels": {"ray.io/node-id": "0123", "fairpool.io/pool": "h100", "zone": "b"},
}
NVML = [{"index": i, "memory_mib": 81559, "model": "NVIDIA H100 80GB HBM3", "uuid": f"GPU-{i}"}
        for i in range(4)]


def test_real_gpus_when_nvml_sees_them() -> None:
    info = node_info(ENTRY, "GPU", NVML)
    assert info.name == "10.0.0.7-01234567" and info.address == "10.0.0.7"
    assert not info.simulated and [d.uuid for d in info.devices] == [f"GPU-{i}" for i in range(4)]
    assert info.cpu == 16_000 and info.memory == 64 * 1024
    assert info.pool == "h100" and info.labels == {"fairpool.io/pool": "h100", "zone": "b"}


def test_simulated_when_nvml_sees_fewer() -> None:
    info = node_info(ENTRY, "GPU", NVML[:1])
    assert info.simulated and len(info.devices) == 4
    assert {d.model for d in info.devices} == {"simulated-gpu"}


def test_custom_resource_name_and_memory_label() -> None:
    entry = dict(ENTRY, Resources={"CPU": 2.0, "fake_gpu": 2.0},
                 Labels={"fairpool.io/gpu-memory-mib": "40960", "fairpool.io/node-name": "n7"})
    info = node_info(entry, "fake_gpu", [])
    assert info.name == "n7" and info.pool == "default"
    assert [d.memory_mib for d in info.devices] == [40960, 40960] and info.simulated
    assert node_info(entry, "GPU", []).devices == ()


@pytest.mark.parametrize("address", ["nohost", "host:", ":6379", "host:0", "host:70000",
                                     "ray://host"])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(RayConnectError, match="invalid Ray address"):
        resolve(address)


def test_good_addresses() -> None:
    assert resolve("10.0.0.1:6379") == "10.0.0.1:6379"
    assert resolve("ray://head:10001") == "ray://head:10001"


def test_token_file_sets_rays_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "inherited")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    token = tmp_path / "token"
    token.write_text("secret\n")
    apply_security(RaySettings(address="h:1", token_file=token))
    import os

    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert os.environ["RAY_AUTH_TOKEN_PATH"] == str(token.resolve())
    assert "RAY_AUTH_TOKEN" not in os.environ
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(RayConnectError, match="is empty"):
        apply_security(RaySettings(address="h:1", token_file=empty))


def test_settings_file_below_flags_and_environment(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "server.toml"
    config.write_text('ray_address = "10.0.0.5:6379"\nport = 9000\ngrace_s = 3.0\n')
    monkeypatch.setenv("FAIRPOOL_GRACE_S", "4")
    settings = load_server_settings({"port": 9100}, config)
    assert settings.ray_address == "10.0.0.5:6379"
    assert settings.port == 9100 and settings.grace_s == 4.0
    config.write_text('ray_adress = "typo:1"\n')
    with pytest.raises(ValidationError, match="ray_adress"):
        load_server_settings({}, config)
    with pytest.raises(ValueError, match="config file not found"):
        load_server_settings({}, tmp_path / "missing.toml")
    config.write_text("port = [\n")
    with pytest.raises(ValueError, match="invalid config file"):
        load_server_settings({}, config)
