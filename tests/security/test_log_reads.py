"""Reading logs cannot exhaust the API, and writing them cannot fill the disk (issue 16,
finding 4).

On a real server (``fairpool up``, a real SQLite file) with ``log_max_mib`` set to 1: eight
clients (curl processes) read one 300 MB log at once while the API's resident memory stays
within a fixed bound over its idle size, and each gets every byte; ``fairpool logs --tail N``
prints exactly the last lines of a 50 MB log; ``offset``/``limit`` pages concatenate to the
file; bad parameters get a 422 that names the parameter; the dashboard shows the tail and
offers the whole log; a job writing past the cap (as a process, and in a container) keeps
running to its end while its log stops at the cap with a line saying so, and the job gets an
event. The large logs are put in place of a finished job's log by the test (the server reads
whatever is there), so they take a second to make; they are removed afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from fairpool.executors import logcap
from fairpool.schemas.jobs import JobOut
from tests.e2e.conftest import BIN, start_pool, stop_pool
from tests.security.conftest import Org, build_org

CAP_MIB = 1
READERS = 8
BIG = 300 * 10**6  # bytes of the log the readers share
RSS_BOUND_MIB = 150  # what reading may add to the API's resident memory
LINE = 100  # bytes per line of the 50 MB log


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Org]:
    tmp = tmp_path_factory.mktemp("logs")
    pool = start_pool(tmp, "--simulate-gpus", "2",
                      env_extra={"FAIRPOOL_LOG_MAX_MIB": str(CAP_MIB)})
    try:
        yield build_org(pool)
    finally:
        stop_pool(pool)


def finished(org: Org, command: list[str], **extra: object) -> JobOut:
    job = org.client("rita").submit(project="p1", command=command, **extra)
    org.pool.wait(job.id, {"succeeded"})
    return job


def log_of(org: Org, job: JobOut) -> Path:
    return org.pool.data_dir / "logs" / f"{job.id}.0.0.log"


def numbered(lines: int) -> bytes:
    """``lines`` lines of LINE bytes each, numbered."""
    return b"".join(b"line %08d " % i + b"x" * (LINE - 15) + b"\n" for i in range(lines))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def logs_cli(org: Org, user: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**org.pool.env, "FAIRPOOL_TOKEN": org.tokens[user]}
    return subprocess.run([str(BIN), "logs", *args], env=env, capture_output=True,
                          timeout=60)


@pytest.fixture(scope="module")
def large(org: Org) -> Iterator[tuple[JobOut, bytes]]:
    """A finished job of rita's whose log is 50 MB of numbered lines."""
    job = finished(org, ["true"])
    data = numbered(500_000)
    path = log_of(org, job)
    path.write_bytes(data)
    yield job, data
    path.unlink()


def test_tail_prints_exactly_the_last_lines_of_a_large_log(
        org: Org, large: tuple[JobOut, bytes]) -> None:
    job, data = large
    lines = data.splitlines(keepends=True)
    out = logs_cli(org, "rita", job.id, "--tail", "1000")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"".join(lines[-1000:])
    viewer = logs_cli(org, "vic", job.id, "-n", "1")
    assert viewer.returncode == 0 and viewer.stdout == lines[-1]
    assert org.client("rita").logs(job.id, tail=100_000) == b"".join(
        lines[-100_000:]).decode()
    whole = logs_cli(org, "rita", job.id)  # no parameters: the whole log, streamed
    assert whole.returncode == 0 and whole.stdout == data
    other = logs_cli(org, "oscar", job.id, "--tail", "5")  # another project's: not there
    assert other.returncode != 0 and other.stdout == b""


def test_offset_and_limit_pages_concatenate_to_the_whole_log(
        org: Org, large: tuple[JobOut, bytes]) -> None:
    job, data = large
    c = org.client("rita")
    pages, offset = [], 0
    while True:
        page = c.log_page(job.id, offset=offset, limit=7 * 2**20)
        assert page.offset == offset and page.size == len(data)
        assert len(page.data) == page.next_offset - page.offset <= 7 * 2**20
        pages.append(page.data)
        if page.next_offset == page.size:
            break
        offset = page.next_offset
    assert len(pages) == -(-len(data) // (7 * 2**20)) and b"".join(pages) == data
    tail = c.log_page(job.id, tail=3)
    assert tail.data == data[-3 * LINE:] and tail.offset == len(data) - 3 * LINE
    end = c.log_page(job.id, offset=len(data))
    assert end.data == b"" and end.next_offset == len(data)
    cli = logs_cli(org, "rita", job.id, "--offset", str(LINE), "--limit", str(2 * LINE))
    assert cli.returncode == 0 and cli.stdout == data[LINE:3 * LINE]
    # following from the last lines of an ended job: those lines, then the stream ends
    assert b"".join(c.stream_logs(job.id, tail=2, follow=True)) == data[-2 * LINE:]
    followed = logs_cli(org, "rita", job.id, "-f", "--tail", "1")
    assert followed.returncode == 0 and followed.stdout == data[-LINE:]


@pytest.mark.parametrize(("query", "names"), [
    ("tail=-1", "tail"), ("offset=abc", "offset"), ("tail=100001", "tail"),
    ("limit=0", "limit"), (f"limit={2**40}", "limit"), ("tail=5&offset=0", "tail"),
    ("follow=true&limit=10", "limit"),
])
def test_bad_parameters_get_a_422_that_says_what_to_fix(
        org: Org, large: tuple[JobOut, bytes], query: str, names: str) -> None:
    job, _ = large
    with org.http("rita") as http:
        resp = http.get(f"/api/v1/jobs/{job.id}/logs?{query}")
    assert resp.status_code == 422, resp.text
    assert names in resp.json()["error"]


def test_the_cli_refuses_a_bad_tail_in_one_line(org: Org, large: tuple[JobOut, bytes]) -> None:
    bad = logs_cli(org, "rita", large[0].id, "--tail", "-1")
    assert bad.returncode != 0 and bad.stdout == b""
    assert len(bad.stderr.strip().splitlines()) == 1 and b"tail" in bad.stderr


def test_a_reader_that_stops_early_ends_the_cli_quietly(
        org: Org, large: tuple[JobOut, bytes]) -> None:
    """`fairpool logs ID | head -1`: the pipe closes long before 50 MB are written."""
    env = {**org.pool.env, "FAIRPOOL_TOKEN": org.tokens["rita"]}
    logs = subprocess.Popen([str(BIN), "logs", large[0].id], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert logs.stdout is not None and logs.stderr is not None
    first = logs.stdout.readline()
    logs.stdout.close()
    assert logs.wait(60) == 0
    assert first == large[1].splitlines(keepends=True)[0]
    assert logs.stderr.read() == b""


def test_eight_readers_of_a_300_mb_log_leave_the_api_memory_bounded(org: Org) -> None:
    job = finished(org, ["true"])
    path = log_of(org, job)
    with path.open("r+b") as f:  # sparse: no 300 MB to write
        f.truncate(BIG - 5)
        f.seek(BIG - 5)
        f.write(b"\nend\n")
    try:
        url = f"{org.pool.url}/api/v1/jobs/{job.id}/logs"
        auth = f"Authorization: Bearer {org.tokens['rita']}"
        with org.http("rita") as http:  # warm up the routes before measuring
            assert http.get(url, params={"tail": 1}).text == "end\n"
            assert http.get(url, params={"limit": 10}).content == b"\0" * 10
        pid = org.pool.proc.pid
        idle = rss_mib(pid)
        readers = [subprocess.Popen(
            ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", "-H", auth,
             url], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(READERS)]
        peak = idle
        while any(r.poll() is None for r in readers):
            peak = max(peak, rss_mib(pid))
            time.sleep(0.02)
        got = [int(r.communicate()[0] or 0) for r in readers]
        assert got == [BIG] * READERS, [r.returncode for r in readers]
        assert peak - idle < RSS_BOUND_MIB, f"API grew from {idle:.0f} to {peak:.0f} MiB"
    finally:
        path.unlink()


def test_the_dashboard_shows_the_tail_and_offers_the_whole_log(
        org: Org, large: tuple[JobOut, bytes]) -> None:
    job, data = large
    lines = data.decode().splitlines()
    with httpx.Client(base_url=org.pool.url, timeout=30) as http:
        login = http.post("/ui/login", data={"token": org.tokens["rita"]},
                          follow_redirects=False)
        assert login.status_code == 303
        page = http.get(f"/ui/jobs/{job.id}")
        assert page.status_code == 200
        assert "the tail: last 500 lines" in page.text
        shown = page.text.split('id="log">', 1)[1].split("</pre>", 1)[0].splitlines()
        assert shown == lines[-500:]
        link = f'href="/ui/jobs/{job.id}/log?attempt=0"'
        assert link in page.text
        whole = http.get(f"/ui/jobs/{job.id}/log?attempt=0")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-disposition"].startswith("attachment")
        assert whole.headers["x-content-type-options"] == "nosniff"


def check_capped(org: Org, job: JobOut, wrote: int) -> None:
    """The job's log is the cap's worth of its output and the marker line, and an event says
    so; the job itself ran to its end."""
    data = log_of(org, job).read_bytes()
    marker = ("\n" + logcap.marker(CAP_MIB << 20) + "\n").encode()
    assert len(data) == (CAP_MIB << 20) + len(marker) < wrote
    assert data.endswith(marker)
    assert data.startswith(b"1\n2\n3\n")
    events = [e for e in org.client("rita").events(job.id) if e.kind == logcap.EVENT]
    assert len(events) == 1
    assert f"log truncated at {CAP_MIB} MiB" in events[0].message
    assert org.client("rita").logs(job.id, tail=1) == logcap.marker(CAP_MIB << 20) + "\n"


def test_a_job_writing_past_the_cap_runs_on_with_its_log_capped(org: Org) -> None:
    count = 600_000  # about 4 MB of numbers, then a file saying it got to the end
    out = org.pool.data_dir.parent / "done.txt"
    job = finished(org, [sys.executable, "-c", f"import sys\nfor i in range(1, {count + 1}): "
                         f"print(i)\nsys.stdout.flush()\nopen({str(out)!r}, 'w').write('ok')"])
    assert out.read_text() == "ok"  # neither blocked nor killed by the cap
    check_capped(org, job, len("".join(f"{i}\n" for i in range(1, count + 1))))
    small = finished(org, ["seq", "1", "1000"])  # under the cap: all of it, no event
    assert log_of(org, small).read_bytes() == "".join(f"{i}\n" for i in range(1, 1001)
                                                      ).encode()
    assert not [e for e in org.client("rita").events(small.id) if e.kind == logcap.EVENT]


def test_a_container_writing_past_the_cap_has_its_log_capped(
        org: Org, busybox_image: str, tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    job = finished(org, ["seq", "1", "600000"], image=busybox_image, workdir=str(tmp_path))
    check_capped(org, job, len("".join(f"{i}\n" for i in range(1, 600_001))))
