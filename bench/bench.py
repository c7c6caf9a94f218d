#!/usr/bin/env python3
"""`make bench`: what proxy-auth costs per request, next to Envoy's own basic_auth
and to the least any wasm filter costs, and whether its memory stays bounded.

Part 1 starts one Envoy (one worker, pinned to one core) whose listeners differ
only in their auth filter, all answering a fixed direct_response, and loads them
with wrk (pinned to the other core) in interleaved rounds, so that drift of the
machine spreads over every row alike; each row's figure is the median of its
rounds. Part 2 starts a fresh Envoy per mode, sends 2 x 100,000 distinct
credentials, and reads the wasm VMs' linear memory from /proc/PID/smaps (Envoy
has no stat for it) with the process RSS beside it.

Python standard library only. The table goes to stdout and bench/results.md.
Exits non-zero when a row is not what it claims to be (a status, a counter) or
when memory keeps growing; the speed targets are reported, never enforced.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import hashlib
import http.client
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ENVOY = Path(os.environ.get("ENVOY_BIN", ROOT / ".venv/bin/envoy"))
PROXY_AUTH_WASM = Path(
    os.environ.get(
        "PROXY_AUTH_WASM", ROOT / "target/wasm32-wasip1/release/proxy_auth.wasm"
    )
)
FLOOR_WASM = ROOT / "target/bench/wasm32-wasip1/release/bench_floor.wasm"
BARE_WASM = ROOT / "target/bench/wasm32-wasip1/release/bench_bare.wasm"
LADDER_WASM = ROOT / "target/bench/wasm32-wasip1/release/bench_ladder.wasm"
AUTH_SERVICE = ROOT / "target/release/proxy-auth-service"

USER, PASSWORD = "bench", "demo"
# bcrypt cost 10 of "demo", the hash envoy/forward-proxy.yaml ships
# (htpasswd -nbB -C 10 demo demo); the first request checks that it matches.
BCRYPT_DEMO = "$2y$10$eeIyqogxiqDKGihqM8rDMuRD48VDyNvyaXMtUoMVuJ3T5YTG0r5WW"
CREDENTIAL = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BODY = "ok\n"

# Read at start: the bench's own load would hide what else was running.
LOAD_BEFORE = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"

TARGET_NATIVE = 0.85
TARGET_FLOOR = 0.95


class BenchError(Exception):
    """Something the bench cannot vouch for: the run is void, not slow."""


def sha_entry(user: str, password: str) -> str:
    """An htpasswd `{SHA}` line: base64 of the SHA-1 of the password."""
    digest = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
    return f"{user}:{{SHA}}{digest}"


# --------------------------------------------------------------------------
# Envoy configuration


def router() -> dict:
    return {
        "name": "envoy.filters.http.router",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
        },
    }


def wasm_filter(name: str, wasm: Path, plugin: dict | str | None) -> dict:
    config: dict = {
        "name": name,
        "failure_policy": "FAIL_CLOSED",
        # A VM per listener: counters aside, nothing is shared between rows.
        "vm_config": {
            "vm_id": name,
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": str(wasm)}},
        },
    }
    if plugin is not None:
        config["configuration"] = {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": plugin if isinstance(plugin, str) else json.dumps(plugin),
        }
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": config,
        },
    }


def native_basic_auth(users: str) -> dict:
    return {
        "name": "envoy.filters.http.basic_auth",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.basic_auth.v3.BasicAuth",
            "users": {"inline_string": users},
            "authentication_header": "proxy-authorization",
        },
    }


def listener(name: str, filters: list[dict]) -> dict:
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [
            {
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network."
                            "http_connection_manager.v3.HttpConnectionManager",
                            "stat_prefix": name,
                            "route_config": {
                                "virtual_hosts": [
                                    {
                                        "name": "all",
                                        "domains": ["*"],
                                        # No upstream: every listener answers the same
                                        # fixed response, so only the filter differs.
                                        "routes": [
                                            {
                                                "match": {"prefix": "/"},
                                                "direct_response": {
                                                    "status": 200,
                                                    "body": {"inline_string": BODY},
                                                },
                                            }
                                        ],
                                    }
                                ]
                            },
                            "http_filters": filters + [router()],
                        },
                    }
                ]
            }
        ],
    }


def auth_cluster(address: str) -> dict:
    host, port = address.rsplit(":", 1)
    return {
        "name": "auth",
        "connect_timeout": "1s",
        "type": "STATIC",
        "load_assignment": {
            "cluster_name": "auth",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {
                                        "address": host,
                                        "port_value": int(port),
                                    }
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }


def envoy_config(listeners: list[dict], clusters: list[dict]) -> dict:
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}
        },
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


EXTERNAL = {
    "cluster": "auth",
    "authority": "auth",
    "path": "/check",
    "copy_headers": ["x-auth-user"],
}


# --------------------------------------------------------------------------
# Processes


# Other work on a shared machine (builds, tests) would take turns with Envoy on
# its core; a higher priority for the measured processes keeps most of that out
# of the figures while still letting the rest of the machine run. Root only.
NICE = ["nice", "-n", "-10"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []


def pinned(core: int | None, argv: list[str]) -> list[str]:
    """`argv` on `core`, at the bench's priority; both wrappers exec, so the
    pid stays the program's."""
    if core is None:
        return NICE + argv
    return NICE + ["taskset", "-c", str(core), *argv]


def cores() -> tuple[int | None, int | None]:
    """Envoy's core and the load generator's: apart when there are two."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return 0, 1
    return None, None


class Envoy:
    """One Envoy process with `config`; stopped on exit from the `with`."""

    def __init__(self, config: dict, workdir: Path, name: str, core: int | None):
        self.workdir = workdir
        self.config_path = workdir / f"{name}.yaml"
        # JSON is YAML, and Envoy reads .yaml.
        self.config_path.write_text(json.dumps(config, indent=1))
        self.admin_path = workdir / f"{name}.admin"
        self.log_path = workdir / f"{name}.log"
        self.argv = pinned(
            core,
            [
                str(ENVOY),
                "-c",
                str(self.config_path),
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--admin-address-path",
                str(self.admin_path),
                "--log-level",
                "warn",
            ],
        )
        self.proc: subprocess.Popen | None = None
        self.admin = ""
        self.listeners: dict[str, str] = {}

    def __enter__(self) -> "Envoy":
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"Envoy exited during start-up ({self.proc.returncode}); "
                    f"log:\n{self.log_path.read_text(errors='replace')[-3000:]}"
                )
            if self.admin_path.exists() and self.admin_path.read_text().strip():
                self.admin = "http://" + self.admin_path.read_text().strip()
                try:
                    if self.get("/ready").strip() == "LIVE":
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        else:
            raise BenchError("Envoy was not ready within 60 s")
        for line in self.get("/listeners").splitlines():
            name, _, address = line.partition("::")
            self.listeners[name] = address
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        # Under taskset the child execs Envoy, so the pid is Envoy's.
        return self.proc.pid

    def get(self, path: str) -> str:
        with urllib.request.urlopen(self.admin + path, timeout=10) as r:
            return r.read().decode()

    def completed(self, listener: str) -> int:
        """Requests the listener's connection manager has answered."""
        text = self.get(f"/stats?filter=^http\\.{listener}\\.downstream_rq_completed$")
        match = re.search(r": (\d+)", text)
        return int(match.group(1)) if match else 0

    def cpu_ns(self) -> int:
        """CPU time Envoy's threads have used, from the scheduler's own count
        (nanoseconds): unlike req/s, it hardly moves when other work shares the
        machine, so it prices a filter even on a busy one."""
        total = 0
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass  # a thread that ended meanwhile
        return total

    def counters(self) -> dict[str, int]:
        out = {}
        for line in self.get("/stats?filter=^wasmcustom\\.|^server\\.memory").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out


def envoy_version() -> str:
    done = subprocess.run([str(ENVOY), "--version"], capture_output=True, text=True)
    match = re.search(r"/(\d+\.\d+\.\d+)/", done.stdout)
    return match.group(1) if match else "?"


class AuthService:
    """The project's external auth service, for the external-mode rows."""

    def __init__(self, args: list[str], workdir: Path, core: int | None):
        self.argv = pinned(core, [str(AUTH_SERVICE), "--listen", "127.0.0.1:0", *args])
        self.log_path = workdir / "auth-service.log"
        self.address = ""

    def __enter__(self) -> "AuthService":
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.log)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        match = re.match(r"listening on (\S+)", line)
        if not match:
            self.__exit__()
            raise BenchError(f"auth service did not start: {line!r}")
        self.address = match.group(1)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def request(address: str, credential: str | None) -> tuple[int, dict[str, str]]:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Proxy-Authorization": credential} if credential else {}
    conn.request("GET", "/", headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}


# --------------------------------------------------------------------------
# wrk


@dataclass
class Run:
    rps: float
    p50_us: float
    p99_us: float
    requests: int
    non_2xx: int
    socket_errors: int


UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def duration_us(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise BenchError(f"wrk latency {text!r} not understood")
    return float(match.group(1)) * UNITS[match.group(2)]


def parse_wrk(output: str) -> Run:
    def find(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.M)
        if not match:
            raise BenchError(f"wrk output lacks /{pattern}/:\n{output}")
        return match

    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Run(
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_us=duration_us(find(r"^\s+50%\s+(\S+)").group(1)),
        p99_us=duration_us(find(r"^\s+99%\s+(\S+)").group(1)),
        requests=int(find(r"^\s+(\d+) requests in").group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


def wrk(
    address: str,
    seconds: int,
    connections: int,
    core: int | None,
    credential: str | None = None,
    script: Path | None = None,
    env: dict[str, str] | None = None,
    until: Callable[[], bool] | None = None,
) -> Run:
    """Runs wrk for `seconds`, or until `until()` holds: wrk has no request
    count, but SIGINT makes it stop and report what it did so far."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if credential:
        argv += ["-H", f"Proxy-Authorization: {credential}"]
    if script:
        argv += ["-s", str(script)]
    argv.append(f"http://{address}/")
    # taskset execs wrk, so the pid signalled is wrk's.
    proc = subprocess.Popen(
        pinned(core, argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        if until is not None:
            deadline = time.monotonic() + seconds
            while proc.poll() is None and time.monotonic() < deadline:
                if until():
                    proc.send_signal(signal.SIGINT)
                    break
                time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}): {stderr}{stdout}")
    return parse_wrk(stdout)


# --------------------------------------------------------------------------
# Part 1: speed


@dataclass
class Row:
    key: str
    label: str
    listener: str
    credential: str | None
    expect: int
    # Counter deltas a round of this row must show, per request answered:
    # (counter suffix, least share of requests, most share of requests).
    checks: list[tuple[str, float, float]] = field(default_factory=list)
    target: bool = False
    runs: list[Run] = field(default_factory=list)
    deltas: dict[str, int] = field(default_factory=dict)
    # Envoy's CPU time per request answered, one figure per round.
    cpu_us: list[float] = field(default_factory=list)
    # --profile: "base", "step", "floor" or "whole" (how the row is priced), and
    # the ladder module's configuration line for ladder rows.
    kind: str = "speed"
    ladder: str | None = None

    def median(self, attr: str) -> float:
        if attr == "cpu_us":
            return statistics.median(self.cpu_us)
        return statistics.median(getattr(r, attr) for r in self.runs)


P = "wasmcustom.proxy_auth."


def speed_rows() -> list[Row]:
    return [
        Row("ceiling", "no auth filter (ceiling)", "ceiling", CREDENTIAL, 200),
        Row("native", "Envoy basic_auth, {SHA} user", "native", CREDENTIAL, 200),
        Row("floor", "minimal wasm filter (read + remove header)", "floor", CREDENTIAL, 200),
        Row(
            "sha",
            "proxy-auth, {SHA} user",
            "sha",
            CREDENTIAL,
            200,
            [(P + "allowed", 0.99, 1.01), (P + "cache.miss", 0, 0)],
            target=True,
        ),
        Row(
            "bcrypt",
            "proxy-auth, bcrypt user, cache warm",
            "bcrypt",
            CREDENTIAL,
            200,
            [(P + "cache.hit", 0.99, 1.01), (P + "cache.miss", 0, 0)],
            target=True,
        ),
        Row(
            "external",
            "proxy-auth, external mode, cache hit",
            "external",
            CREDENTIAL,
            200,
            # One refill a minute at most: the answer's default lifetime is 60 s.
            [(P + "external.cache_hit", 0.99, 1.01), (P + "external.calls", 0, 0.001)],
            target=True,
        ),
        Row(
            "denied",
            "proxy-auth, no credential (407)",
            "sha",
            None,
            407,
            [(P + "denied.missing", 0.99, 1.01)],
        ),
    ]


# `--profile` (see bench/ladder-filter): proxy-auth's request path rebuilt step
# by step in the ladder module, each step once per request as the filter runs it,
# priced against the ladder doing only the floor's work. Run hot in a loop, every
# step costs under a microsecond; once per request, between Envoy's own work, each
# costs more (code and data the VM must fetch again): that is the price that
# counts, and it needs many paired rounds to rise above the machine's noise.
PROFILE = [
    ("@1", "base: the ladder module doing the floor's work", "base"),
    ("pairs@1", "+ all request headers read (get_map_bytes) instead of the one", "step"),
    ("time,metrics@1", "+ get_current_time and two counter increments", "step"),
    ("log@1", "+ a debug! line formatted and handed to Envoy, which drops it", "step"),
    ("decide@1", "+ Authenticator::decide: base64, SHA-256, cache hit, user name", "step"),
    ("identity@1", "+ two absent identity headers removed", "step"),
    ("extkey@1", "+ external call built: parse, headers, 2 x SHA-256, slot name", "step"),
    ("external@1", "+ extkey, get_shared_data and decode", "step"),
    ("pairs,time,metrics,log,decide@1", "the local-user path, as the filter runs it", "step"),
    (
        "pairs,time,metrics,rawcache@1",
        "the local-user path with a cache keyed by the raw field value and no debug! line",
        "step",
    ),
    ("identity,pairs,time,metrics,log,external@1", "the external cache-hit path", "step"),
]


def profile_rows() -> list[Row]:
    rows = []
    for config, label, kind in PROFILE:
        name = "ladder_" + re.sub(r"[^a-z0-9]+", "_", config).strip("_")
        rows.append(Row(name, label, name, CREDENTIAL, 200, kind=kind, ladder=config))
    rows.append(Row("floor", "minimal wasm filter (read + remove header)", "floor", CREDENTIAL, 200, kind="floor"))
    rows.append(
        Row(
            "bare",
            "the floor's work without the SDK, exporting only the callbacks it needs",
            "bare",
            CREDENTIAL,
            200,
            kind="floor",
        )
    )
    rows += [
        dataclasses.replace(r, target=False, kind="floor")
        for r in speed_rows()
        if r.key in ("native", "sha", "external")
    ]
    return rows


def speed_listeners() -> dict[str, list[dict]]:
    """The filters of every listener a row may use, by listener name."""
    sha_users = sha_entry(USER, PASSWORD)
    listeners = {
        "ceiling": [],
        "native": [native_basic_auth(sha_users)],
        "floor": [wasm_filter("floor", FLOOR_WASM, None)],
        "bare": [wasm_filter("bare", BARE_WASM, None)],
        "sha": [wasm_filter("sha", PROXY_AUTH_WASM, {"users": sha_users})],
        "bcrypt": [wasm_filter("bcrypt", PROXY_AUTH_WASM, {"users": f"{USER}:{BCRYPT_DEMO}"})],
        "external": [wasm_filter("external", PROXY_AUTH_WASM, {"external": EXTERNAL})],
    }
    return listeners


def ladder_listeners(rows: list[Row]) -> dict[str, list[dict]]:
    plugin = json.dumps({"users": sha_entry(USER, PASSWORD), "external": EXTERNAL})
    return {
        r.listener: [wasm_filter(r.listener, LADDER_WASM, r.ladder + "\n" + plugin)]
        for r in rows
        if r.ladder is not None
    }


def speed_config(auth_address: str, rows: list[Row]) -> dict:
    filters = speed_listeners() | ladder_listeners(rows)
    wanted = dict.fromkeys(r.listener for r in rows)
    return envoy_config(
        [listener(name, filters[name]) for name in wanted], [auth_cluster(auth_address)]
    )


def check_first_answers(envoy: Envoy, rows: list[Row]) -> None:
    """Each row answers what it should before it is timed; for bcrypt and the
    external mode this first request also fills the cache the rounds then hit."""
    for row in rows:
        status, headers = request(envoy.listeners[row.listener], row.credential)
        if status != row.expect:
            raise BenchError(f"{row.label}: first request answered {status}, not {row.expect}")
        if status == 407 and "proxy-authenticate" not in headers:
            raise BenchError(f"{row.label}: 407 without Proxy-Authenticate")


def measure_speed(args, rows: list[Row], workdir: Path, envoy_core, load_core) -> None:
    with AuthService([f"--user={USER}:{PASSWORD}"], workdir, load_core) as auth:
        with Envoy(speed_config(auth.address, rows), workdir, "speed", envoy_core) as envoy:
            check_first_answers(envoy, rows)
            log(f"warming up {len(rows)} rows, {args.warmup} s each")
            for row in rows:
                wrk(envoy.listeners[row.listener], args.warmup, args.connections, load_core, row.credential)
            for n in range(args.rounds):
                # Each round starts one row later, so no row always follows the same one.
                order = rows[n % len(rows):] + rows[: n % len(rows)]
                for row in order:
                    before = envoy.counters()
                    done_before = envoy.completed(row.listener)
                    cpu_before = envoy.cpu_ns()
                    run = wrk(
                        envoy.listeners[row.listener],
                        args.seconds,
                        args.connections,
                        load_core,
                        row.credential,
                    )
                    cpu = envoy.cpu_ns() - cpu_before
                    done = envoy.completed(row.listener) - done_before
                    after = envoy.counters()
                    row.runs.append(run)
                    row.cpu_us.append(cpu / 1e3 / max(done, 1))
                    for name in set(after) | set(before):
                        if name.startswith("wasmcustom."):
                            row.deltas[name] = row.deltas.get(name, 0) + after.get(name, 0) - before.get(name, 0)
                    check_run(row, run)
                log(
                    f"round {n + 1}/{args.rounds}: "
                    + ", ".join(f"{r.key} {r.runs[-1].rps:.0f}/s {r.cpu_us[-1]:.1f} µs" for r in rows)
                )
            for row in rows:
                check_counters(row)


def check_run(row: Row, run: Run) -> None:
    if run.socket_errors:
        raise BenchError(f"{row.label}: {run.socket_errors} socket errors")
    wrong = run.non_2xx if row.expect == 200 else run.requests - run.non_2xx
    if wrong:
        raise BenchError(f"{row.label}: {wrong} of {run.requests} answers were not {row.expect}")


def check_counters(row: Row) -> None:
    # wrk counts only answers it read; requests still in flight at its stop
    # were answered too. Hence shares, with a little room.
    answered = sum(r.requests for r in row.runs)
    for name, least, most in row.checks:
        seen = row.deltas.get(name, 0)
        if not (least * answered - 1 <= seen <= most * answered + 2 * len(row.runs) + 1):
            raise BenchError(
                f"{row.label}: counter {name} moved by {seen} over {answered} requests "
                f"(expected {least:g} to {most:g} of them): the row does not measure what it says"
            )


# --------------------------------------------------------------------------
# Part 2: memory


def wasm_memories(pid: int) -> list[int]:
    """Sizes in bytes of the V8 wasm linear memories in process `pid`.

    V8 reserves each memory as one 8 GiB region (guard pages included) and
    makes its first `size` bytes accessible, so a memory shows in smaps as a
    read-write mapping directly followed by an inaccessible one, the two
    adding up to the reservation. Memory only ever grows in wasm, so its size
    is the most the VM ever needed."""
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            maps.append((start, end, perms, len(line.split()) > 5))
    sizes = []
    for (s1, e1, p1, named1), (s2, e2, p2, named2) in zip(maps, maps[1:]):
        if (
            p1.startswith("rw")
            and p2.startswith("---")
            and e1 == s2
            and not named1
            and not named2
            and (e2 - s1) >= 4 << 30
            and (e2 - s1) % (1 << 30) == 0
        ):
            sizes.append(e1 - s1)
    return sizes


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass
class Sample:
    wasm: int  # largest VM linear memory: the worker's, which serves the requests
    rss: int
    heap: int  # Envoy's own allocator, where proxy-wasm shared data lives


def sample(envoy: Envoy) -> Sample:
    sizes = wasm_memories(envoy.pid)
    if not sizes:
        raise BenchError("no wasm linear memory found in /proc/PID/maps: the layout V8 uses changed?")
    return Sample(
        wasm=max(sizes),
        rss=rss_bytes(envoy.pid),
        heap=envoy.counters().get("server.memory_allocated", 0),
    )


@dataclass
class MemoryResult:
    label: str
    samples: list[Sample]
    counters: dict[str, int]
    bounded: bool
    why: str


def memory_users(n: int) -> tuple[str, str]:
    """`n` users u<i> with password p<i>: htpasswd {SHA} text for the filter, and
    NAME:PASSWORD lines for the auth service."""
    htpasswd = "\n".join(sha_entry(f"u{i}", f"p{i}") for i in range(n))
    plain = "\n".join(f"u{i}:p{i}" for i in range(n))
    return htpasswd, plain


def judge(samples: list[Sample]) -> tuple[bool, str]:
    """Bounded when the second batch grows a memory by less than half of what
    the first did, past a step of allocator noise (two wasm pages; 1 MiB of heap)."""
    base, first, second = samples
    faults = []
    for what, slack in (("wasm", 2 * 65536), ("heap", 1 << 20)):
        grew1 = getattr(first, what) - getattr(base, what)
        grew2 = getattr(second, what) - getattr(first, what)
        if grew2 > slack and grew2 >= grew1 / 2:
            faults.append(f"{what} grew {mib(grew1)} then {mib(grew2)} more")
    if faults:
        return False, "UNBOUNDED: " + "; ".join(faults)
    return True, "bounded"


def measure_memory(args, workdir: Path, envoy_core, load_core) -> list[MemoryResult]:
    htpasswd, plain = memory_users(args.memory_users)
    users_file = workdir / "users.txt"
    users_file.write_text(plain + "\n")
    results = []
    modes = [
        ("local", "proxy-auth, local {SHA} users", {"users": htpasswd}),
        ("external", "proxy-auth, external mode", {"external": EXTERNAL}),
    ]
    for key, label, plugin in modes:
        with AuthService([f"--users-file={users_file}"], workdir, load_core) as auth:
            config = envoy_config(
                [listener("mem", [wasm_filter("mem", PROXY_AUTH_WASM, plugin)])],
                [auth_cluster(auth.address)],
            )
            with Envoy(config, workdir, f"memory-{key}", envoy_core) as envoy:
                address = envoy.listeners["mem"]
                status, _ = request(address, "Basic " + base64.b64encode(b"u0:p0").decode())
                if status != 200:
                    raise BenchError(f"memory {key}: a valid user was answered {status}")
                samples = [sample(envoy)]
                before = envoy.counters()
                for batch in range(2):
                    goal = envoy.completed("mem") + args.memory_requests
                    run = wrk(
                        address,
                        600,
                        args.connections,
                        load_core,
                        script=BENCH / "distinct.lua",
                        env={
                            "BENCH_START": str(batch * args.memory_requests),
                            "BENCH_COUNT": str(args.memory_requests),
                            "BENCH_USERS": str(args.memory_users),
                        },
                        until=lambda: envoy.completed("mem") >= goal,
                    )
                    if run.requests < args.memory_requests or run.socket_errors:
                        raise BenchError(
                            f"memory {key}: batch {batch + 1} got {run.requests} answers, "
                            f"{run.socket_errors} socket errors"
                        )
                    samples.append(sample(envoy))
                    log(f"memory {key}: batch {batch + 1} done, {run.rps:.0f}/s, wasm {mib(samples[-1].wasm)}")
                after = envoy.counters()
                counters = {
                    k.removeprefix("wasmcustom.proxy_auth."): after[k] - before.get(k, 0)
                    for k in after
                    if k.startswith("wasmcustom.") and after[k] != before.get(k, 0)
                }
                check_memory_counters(key, counters, 2 * args.memory_requests)
                bounded, why = judge(samples)
                results.append(MemoryResult(label, samples, counters, bounded, why))
    return results


def check_memory_counters(key: str, counters: dict[str, int], sent: int) -> None:
    """A quarter of the credentials are valid; the rest must have been refused
    for what they are, or the memory figures measure some other path."""
    allowed = counters.get("allowed", 0)
    if key == "local":
        denied = counters.get("denied.wrong_password", 0) + counters.get("denied.unknown_user", 0)
    else:
        denied = counters.get("denied.external", 0)
        if counters.get("external.calls", 0) < sent * 0.9:
            raise BenchError(f"memory external: only {counters.get('external.calls', 0)} calls for {sent} distinct credentials")
    if not (0.24 * sent <= allowed <= 0.27 * sent and 0.73 * sent <= denied <= 0.77 * sent):
        raise BenchError(f"memory {key}: counters {counters} do not match the credential mix of {sent} requests")


# --------------------------------------------------------------------------
# Output


def mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def micros(us: float) -> str:
    return f"{us:.0f} µs" if us < 10_000 else f"{us / 1000:.1f} ms"


def machine(version: str) -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, "
        f"Envoy {version}, wrk {wrk_version()}; load average {LOAD_BEFORE} before the run "
        "(other work on the machine shows here and spreads over every row alike)"
    )


def wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    match = re.search(r"wrk (\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "?"


def machine_line(version: str) -> str:
    return f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine(version)}."


def header(args, version: str, pinning: str) -> list[str]:
    return [
        machine_line(version),
        "",
        f"One Envoy, one worker{pinning}; a fixed 200 direct_response on every listener; "
        f"wrk -t1 -c{args.connections}, {args.rounds} interleaved rounds of {args.seconds} s per row, "
        "median per row. Envoy CPU/req is the CPU time of all Envoy threads over the requests "
        "answered (from /proc/PID/task/*/schedstat): unlike req/s it does not fall when other "
        "work takes turns on Envoy's core, but both move with the host's own noise (about "
        "±15 % between 1 s samples on the machine above), hence the rounds.",
    ]


def speed_table(rows: list[Row]) -> list[str]:
    by_key = {r.key: r for r in rows}
    native = by_key.get("native")
    floor = by_key.get("floor")
    lines = [
        "| | req/s | p50 | p99 | Envoy CPU/req | vs native | vs wasm floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        rps = row.median("rps")
        cpu = row.median("cpu_us")

        def ratio(ref: Row | None, target: float) -> str:
            if ref is None or ref is row:
                return "1.00" if ref is row else "-"
            # Paired round by round, like the CPU figure: a round's rows run
            # seconds apart, so the machine's slow swings cancel out.
            value = statistics.median(a.rps / b.rps for a, b in zip(row.runs, ref.runs))
            mark = (" ✓" if value >= target else " ✗") if row.target else ""
            return f"{value:.2f}{mark} (CPU {1 / paired(row, ref):.2f})"

        star = " *" if row.target else ""
        lines.append(
            f"| {row.label}{star} | {rps:,.0f} | {micros(row.median('p50_us'))} | "
            f"{micros(row.median('p99_us'))} | {cpu:.1f} µs | {ratio(native, TARGET_NATIVE)} | "
            f"{ratio(floor, TARGET_FLOOR)} |"
        )
    spread = ", ".join(
        f"{r.key} {min(x.rps for x in r.runs):,.0f}–{max(x.rps for x in r.runs):,.0f}"
        for r in rows
    )
    lines += [
        "",
        "Ratios are medians over the rounds of the row's req/s over the reference's in the "
        "same round (✓/✗ against the target); in brackets the same from Envoy CPU per "
        "request. "
        f"Targets on the starred rows: at least {TARGET_NATIVE} of native and {TARGET_FLOOR} of "
        "the wasm floor. Valid credential on every request except the 407 row.",
        "",
        f"Range of req/s over the rounds: {spread}.",
    ]
    return lines


def paired(row: Row, base: Row) -> float:
    """The median over the rounds of row / base CPU per request, each round's
    pair measured seconds apart: slow drift of the machine cancels out."""
    return statistics.median(a / b for a, b in zip(row.cpu_us, base.cpu_us))


def paired_error(row: Row, base: Row) -> float:
    """Standard error of `paired` (that of a median: 1.25 sd / sqrt(n))."""
    ratios = [a / b for a, b in zip(row.cpu_us, base.cpu_us)]
    return 1.25 * statistics.pstdev(ratios) / math.sqrt(len(ratios))


def profile_table(rows: list[Row]) -> list[str]:
    base = next(r for r in rows if r.kind == "base")
    floor = next(r for r in rows if r.key == "floor")
    base_cpu, floor_cpu = base.median("cpu_us"), floor.median("cpu_us")
    lines = [
        "Each ladder row runs its steps once per request, as the filter does. Price = "
        "(median over the rounds of row / base in the same round - 1) x base; the "
        "rows below the ladder are priced against the minimal wasm filter the same way; "
        f"± one standard error over the {len(base.cpu_us)} rounds.",
        "",
        "| | Envoy CPU/req (median) | price | req/s |",
        "|---|---:|---:|---:|",
    ]
    for row in rows:
        ref, ref_cpu, name = (base, base_cpu, "base") if row.kind in ("base", "step") else (floor, floor_cpu, "floor")
        price = ""
        if row is not ref:
            ratio = paired(row, ref)
            error = paired_error(row, ref) * ref_cpu
            price = f"{(ratio - 1) * ref_cpu:+.1f} ± {error:.1f} µs ({ratio:.3f} x {name})"
        lines.append(
            f"| {row.label} | {row.median('cpu_us'):.1f} µs | {price} | {row.median('rps'):,.0f} |"
        )
    return lines


def memory_table(args, memory: list[MemoryResult]) -> list[str]:
    lines = [
        f"## Memory after distinct credentials ({args.memory_requests:,} per batch)",
        "",
        "Each request carries a credential never sent before: a quarter valid "
        f"(cycling through {args.memory_users:,} users, more than the caches hold), "
        "a quarter a wrong password, half an unknown user. Wasm = the largest VM "
        "linear memory (the worker's; V8 gives no stat, so it is read from "
        "/proc/PID/maps); heap = Envoy's allocator (server.memory_allocated; the "
        "external mode's shared answer cache lives there); RSS = the whole process.",
        "",
        "| mode | wasm: start → 1st → 2nd batch | heap | RSS | verdict |",
        "|---|---|---|---|---|",
    ]
    for m in memory:
        def col(attr: str) -> str:
            return " → ".join(mib(getattr(s, attr)) for s in m.samples)

        lines.append(f"| {m.label} | {col('wasm')} | {col('heap')} | {col('rss')} | {m.why} |")
    return lines


def report(args, rows: list[Row], memory: list[MemoryResult], version: str, pinning: str) -> str:
    title = "proxy-auth benchmark: where the time goes" if args.profile else "proxy-auth benchmark"
    lines = [f"# {title}", ""] + header(args, version, pinning)
    if rows:
        lines += [""] + (profile_table(rows) if args.profile else speed_table(rows))
    if memory:
        lines += [""] + memory_table(args, memory)
    return "\n".join(lines) + "\n"


README_START = "<!-- bench results: bench.py rewrites from here to the end marker -->"
README_END = "<!-- end of bench results -->"


def update_readme(rows: list[Row], memory: list[MemoryResult], args, version: str) -> None:
    """Puts the latest machine line and tables into bench/README.md between its
    markers, so the README always shows the last `make bench`."""
    readme = BENCH / "README.md"
    text = readme.read_text() if readme.exists() else ""
    if README_START not in text or README_END not in text:
        return
    block = [machine_line(version), ""]
    if rows:
        block += speed_table(rows)[: len(rows) + 2] + [""]
    if memory:
        block += memory_table(args, memory)[-(len(memory) + 2):] + [""]
    block.append("Full output, with the spread over the rounds: [results.md](results.md).")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(head + README_START + "\n" + "\n".join(block) + "\n" + README_END + tail)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def main() -> int:
    all_rows = [r.key for r in speed_rows()]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="default 5; 24 with --profile")
    parser.add_argument("--seconds", type=int, help="per row and round; default 3, 1 with --profile")
    parser.add_argument("--warmup", type=int, default=1, help="seconds per row before the rounds")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rows", default=",".join(all_rows), help="comma-separated: " + ",".join(all_rows))
    parser.add_argument(
        "--profile",
        action="store_true",
        help="price each step of proxy-auth's request path instead "
        "(about 6 minutes; writes bench/profile.md; no memory part)",
    )
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--memory-users", type=int, default=20_000)
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.rows = [r for r in args.rows.split(",") if r]
    unknown = set(args.rows) - set(all_rows)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}")
    if args.profile:
        args.no_memory = True
    # The profile prices small differences: many short paired rounds beat a few long ones.
    args.rounds = args.rounds or (24 if args.profile else 5)
    args.seconds = args.seconds or (1 if args.profile else 3)
    if args.out is None:
        args.out = BENCH / ("profile.md" if args.profile else "results.md")

    for path, how in (
        (ENVOY, "bash scripts/setup.sh"),
        (PROXY_AUTH_WASM, "cargo build --release --target wasm32-wasip1 -p proxy-auth"),
        (FLOOR_WASM, "bench/run.sh"),
        (LADDER_WASM, "bench/run.sh"),
        (BARE_WASM, "bench/run.sh"),
        (AUTH_SERVICE, "cargo build --release -p proxy-auth-service"),
    ):
        if not path.exists():
            print(f"bench: {path} is missing; {how} makes it", file=sys.stderr)
            return 2
    if not shutil.which("wrk"):
        print("bench: wrk is missing; bench/setup.sh installs it", file=sys.stderr)
        return 2

    envoy_core, load_core = cores()
    pinning = (
        f", Envoy pinned to core {envoy_core} and wrk to core {load_core}"
        if envoy_core is not None
        else " (not pinned: taskset or a second core is missing)"
    ) + (" at nice -10" if NICE else "")
    rows: list[Row] = []
    if not args.no_speed:
        rows = profile_rows() if args.profile else [r for r in speed_rows() if r.key in args.rows]
    try:
        with tempfile.TemporaryDirectory(prefix="proxy-auth-bench.") as tmp:
            workdir = Path(tmp)
            if rows:
                measure_speed(args, rows, workdir, envoy_core, load_core)
            memory = [] if args.no_memory else measure_memory(args, workdir, envoy_core, load_core)
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        return 1
    version = envoy_version()
    text = report(args, rows, memory, version, pinning)
    print(text)
    args.out.write_text(text)
    log(f"written to {args.out}")
    if not args.profile and args.out == BENCH / "results.md" and rows and memory:
        update_readme(rows, memory, args, version)
        log("latest tables put into bench/README.md")
    unbounded = [m for m in memory if not m.bounded]
    if unbounded:
        print(
            "bench: FAILED: memory keeps growing: "
            + "; ".join(f"{m.label}: {m.why}" for m in unbounded),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
