#!/usr/bin/env python3
"""Measures tunnel next to other TCP forwarders on one machine and writes the results.

Every path carries the same traffic between a client and a target on loopback: direct (no
relay), two socat hops, spiped, stunnel (TLS 1.3, two suites), ssh -L (two ciphers) and
tunnel (two ciphers). The paths are measured in one run, interleaved round by round, for
bulk throughput (one and four streams, with CPU seconds per GB and peak memory), 64-byte
round trips, new connections per second, memory per idle connection, and time to first
response across two network namespaces joined by a link with a 20 ms round trip.

run.sh next to this file is the entry point: it builds the tunnel binary, raises the
open-file limit and removes leftover namespaces on exit. This driver starts every relay
itself, remembers each process id, and ends those processes (and only those) when it
stops, however it stops. Results go to results/<date>.md and results/<date>.png.
"""

import argparse
import datetime
import json
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

ALL_PATHS = [
    "direct",
    "socat",
    "spiped",
    "stunnel-aes",
    "stunnel-chacha",
    "ssh-aes",
    "ssh-chacha",
    "tunnel-aes",
    "tunnel-chacha",
]
PEERS = {"socat", "spiped", "stunnel-aes", "stunnel-chacha", "ssh-aes", "ssh-chacha"}
ALL_METRICS = ["bulk1", "bulk4", "rtt", "rtt1", "cps", "idle", "ttfb"]

STUNNEL_SUITES = {"aes": "TLS_AES_256_GCM_SHA384", "chacha": "TLS_CHACHA20_POLY1305_SHA256"}
SSH_CIPHERS = {"aes": "aes128-gcm@openssh.com", "chacha": "chacha20-poly1305@openssh.com"}
TUNNEL_CIPHERS = {"aes": "aes-256-gcm", "chacha": "chacha20-poly1305"}

# Ports each phase may take, counted from the base port: targets plus two per path.
PORTS_PER_PHASE = 32
PHASES = 3
# socat listens with a backlog of 5 unless told otherwise, which turns every burst of new
# connections into SYN retransmits; the other relays use 128 or more.
SOCAT_BACKLOG = 1024
# Addresses inside the two namespaces of the delayed-link phase; nothing else sees them.
LINK_CLIENT_ADDR = "10.213.0.1"
LINK_SERVER_ADDR = "10.213.0.2"
LINK_ONE_WAY_MS = 10
READY_TIMEOUT_S = 15
STOP_GRACE_S = 3
SAMPLE_INTERVAL_S = 0.25
RTT_WARMUP = 1000
RTT_SIZE = 64
HOLD_INFLIGHT = 64
HOLD_TIMEOUT_S = 240
SETTLE_S = 1.0
TEARDOWN_TIMEOUT_S = 60
FD_RESERVE = 400
MAX_IDLE_CONNS = 10_000
TUNNEL_MAX_CONNECTIONS = 20_000


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A step of the bench could not be carried out; the message says which and why."""


# ---- processes ---------------------------------------------------------------------


def proc_table():
    """Maps pid -> (ppid, cpu ticks incl. reaped children) for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2 :].split()
        ticks = sum(int(x) for x in rest[11:15])
        table[int(name)] = (int(rest[1]), ticks)
    return table


def tree(roots, table=None):
    """The given pids and all their descendants that are alive now."""
    table = table if table is not None else proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def pin(pids, cpus):
    """Sets the CPU affinity of every thread of the given processes."""
    for pid in pids:
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(tid, cpus)
            except OSError:
                pass


def cpu_seconds(roots):
    table = proc_table()
    return sum(table[p][1] for p in tree(roots, table)) / os.sysconf("SC_CLK_TCK")


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Procs:
    """Every process this driver started, so that it can end exactly those."""

    def __init__(self, logdir):
        self.logdir = logdir
        self.started = []

    def start(self, name, argv, stdin=subprocess.DEVNULL, stdout=None):
        logf = open(os.path.join(self.logdir, f"{name}.log"), "ab")
        p = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=stdout if stdout is not None else logf,
            stderr=logf,
            start_new_session=True,
        )
        p.bench_name = name
        self.started.append(p)
        return p

    def stop(self, procs):
        """Ends the given processes and any children they forked, by pid."""
        procs = [p for p in procs if p.poll() is None]
        if not procs:
            return
        pids = tree([p.pid for p in procs])
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + STOP_GRACE_S
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
        for pid in tree(pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log(f"{p.bench_name} (pid {p.pid}) did not exit")
        self.started = [p for p in self.started if p not in procs]

    def stop_all(self):
        self.stop(list(self.started))


def log_tail(logdir, name, lines=5):
    try:
        with open(os.path.join(logdir, f"{name}.log"), errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return ""


# ---- environment -------------------------------------------------------------------


class Where:
    """Where the two sides of a path run: namespace prefixes and addresses."""

    def __init__(self, client_ns=None, server_ns=None, server_addr="127.0.0.1"):
        self.client_ns = client_ns
        self.server_ns = server_ns
        self.server_addr = server_addr

    def wrap(self, side, argv):
        ns = self.client_ns if side == "client" else self.server_ns
        return ["ip", "netns", "exec", ns] + argv if ns else argv


def listening(ns, addr, port):
    argv = ["ss", "-Hltn", f"sport = :{port}"]
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout
    return any(f"{addr}:{port}" in line or f"*:{port}" in line for line in out.splitlines())


def wait_listening(ns, addr, port, proc, logdir):
    deadline = time.time() + READY_TIMEOUT_S
    while time.time() < deadline:
        if proc.poll() is not None:
            raise BenchError(
                f"{proc.bench_name} exited with {proc.returncode} before listening on "
                f"{addr}:{port}: {log_tail(logdir, proc.bench_name)}"
            )
        if listening(ns, addr, port):
            return
        time.sleep(0.05)
    raise BenchError(f"{proc.bench_name} is not listening on {addr}:{port} after "
                     f"{READY_TIMEOUT_S}s: {log_tail(logdir, proc.bench_name)}")


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class Ports:
    """Hands out ports from the bench's fixed range, phase by phase."""

    def __init__(self, base):
        self.base = base
        self.next = base
        self.phase = -1

    def new_phase(self):
        self.phase += 1
        self.next = self.base + self.phase * PORTS_PER_PHASE

    def take(self):
        port = self.next
        self.next += 1
        if port >= self.base + (self.phase + 1) * PORTS_PER_PHASE:
            raise BenchError("out of bench ports in this phase; raise PORTS_PER_PHASE")
        return port


def check_ports(base):
    busy = [p for p in range(base, base + PHASES * PORTS_PER_PHASE) if not port_free(p)]
    if busy:
        raise BenchError(
            f"ports {', '.join(map(str, busy[:10]))} in the bench range {base}-"
            f"{base + PHASES * PORTS_PER_PHASE - 1} are in use; pick another range with "
            f"--base-port or COMPARE_BASE_PORT"
        )


def run_capture(argv, timeout):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


class Setup:
    """Keys, certificates, config files and helper binaries, all in one temp dir."""

    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.tunnel = args.tunnel_bin
        self.probe = os.path.join(tmp, "probe")
        self.linkdelay = os.path.join(tmp, "linkdelay")
        for src, out in (("probe.c", self.probe), ("linkdelay.c", self.linkdelay)):
            r = run_capture(["gcc", "-O2", "-Wall", "-o", out, os.path.join(HERE, src)], 120)
            if r.returncode != 0:
                raise BenchError(f"gcc could not build {src}: {r.stderr.strip()}")
        self.spiped_key = os.path.join(tmp, "spiped.key")
        with open(self.spiped_key, "wb") as f:
            f.write(os.urandom(32))
        self.cert = os.path.join(tmp, "stunnel.crt")
        self.cert_key = os.path.join(tmp, "stunnel.key")
        r = run_capture(
            ["openssl", "req", "-x509", "-newkey", f"rsa:{args.key_bits}", "-nodes",
             "-keyout", self.cert_key, "-out", self.cert, "-days", "2",
             "-subj", "/CN=compare.bench.invalid"], 120)
        if r.returncode != 0:
            raise BenchError(f"openssl could not make the certificate: {r.stderr.strip()}")
        self.local_key = os.path.join(tmp, "l.pem")
        self.remote_key = os.path.join(tmp, "r.pem")
        for key in (self.local_key, self.remote_key):
            r = run_capture([self.tunnel, "keygen", "--bits", str(args.key_bits), "-o", key], 120)
            if r.returncode != 0:
                raise BenchError(f"tunnel keygen failed: {r.stderr.strip()}")
        self.ssh_dir = os.path.join(tmp, "ssh")
        os.makedirs(self.ssh_dir, mode=0o700)
        self.ssh_host_key = os.path.join(self.ssh_dir, "host_ed25519")
        self.ssh_user_key = os.path.join(self.ssh_dir, "user_ed25519")
        for key in (self.ssh_host_key, self.ssh_user_key):
            r = run_capture(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], 60)
            if r.returncode != 0:
                raise BenchError(f"ssh-keygen failed: {r.stderr.strip()}")
        shutil.copy(self.ssh_user_key + ".pub", os.path.join(self.ssh_dir, "authorized_keys"))
        # sshd refuses to start without its privilege separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    def versions(self):
        def first(argv, needle=""):
            try:
                r = run_capture(argv, 10)
            except (OSError, subprocess.TimeoutExpired):
                return "?"
            lines = (r.stdout + "\n" + r.stderr).strip().splitlines()
            return next((l.strip() for l in lines if needle in l), "?")

        return {
            "tunnel": first([self.tunnel, "--version"]),
            "socat": first(["socat", "-V"], "socat version"),
            "spiped": first(["spiped", "-v"]),
            "stunnel": first(["stunnel", "-version"], "platform"),
            "ssh": first(["ssh", "-V"]),
            "iperf3": first(["iperf3", "--version"]),
            "openssl": first(["openssl", "version"]),
        }


# ---- paths -------------------------------------------------------------------------


class Path:
    """One running path: its processes by side, and where a client connects."""

    def __init__(self, name, entry_host, entry_port, client=None, server=None):
        self.name = name
        self.entry_host = entry_host
        self.entry_port = entry_port
        self.client = client
        self.server = server

    def roots(self, side=None):
        procs = [p for s, p in (("client", self.client), ("server", self.server))
                 if p is not None and (side is None or s == side)]
        return [p.pid for p in procs]

    def procs(self):
        return [p for p in (self.client, self.server) if p is not None]


def stunnel_conf(setup, tag, suite, client, accept, connect):
    path = os.path.join(setup.tmp, f"{tag}.conf")
    with open(path, "w") as f:
        f.write(
            "foreground = yes\n"
            "pid =\n"
            "debug = 3\n"
            f"[{tag}]\n"
            f"client = {'yes' if client else 'no'}\n"
            f"accept = {accept}\n"
            f"connect = {connect}\n"
            f"cert = {setup.cert}\n"
            f"key = {setup.cert_key}\n"
            f"CAfile = {setup.cert}\n"
            "verifyPeer = yes\n"
            "sslVersionMin = TLSv1.3\n"
            "sslVersionMax = TLSv1.3\n"
            f"ciphersuites = {suite}\n"
            "socket = l:TCP_NODELAY=1\n"
            "socket = r:TCP_NODELAY=1\n"
        )
    return path


def sshd_conf(setup, tag, listen_addr, port, cipher):
    path = os.path.join(setup.ssh_dir, f"{tag}.conf")
    with open(path, "w") as f:
        f.write(
            f"Port {port}\n"
            f"ListenAddress {listen_addr}\n"
            f"HostKey {setup.ssh_host_key}\n"
            f"AuthorizedKeysFile {os.path.join(setup.ssh_dir, 'authorized_keys')}\n"
            "PidFile none\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "UseDNS no\n"
            "AllowTcpForwarding yes\n"
            "PermitOpen any\n"
            "X11Forwarding no\n"
            f"Ciphers {cipher}\n"
            "LogLevel ERROR\n"
        )
    return path


def start_path(name, setup, procs, ports, where, target_port, tag):
    """Starts both sides of a path in front of the target; returns the running Path."""
    srv_addr = where.server_addr
    target = f"127.0.0.1:{target_port}"
    if name == "direct":
        return Path(name, srv_addr, target_port)
    family, _, variant = name.partition("-")
    mid, entry = ports.take(), ports.take()
    label = f"{tag}-{name}"
    if family == "socat":
        server = ["socat", "-b65536", f"TCP-LISTEN:{mid},bind={srv_addr},reuseaddr,fork,backlog={SOCAT_BACKLOG}",
                  f"TCP:{target}"]
        client = ["socat", "-b65536", f"TCP-LISTEN:{entry},bind=127.0.0.1,reuseaddr,fork,backlog={SOCAT_BACKLOG}",
                  f"TCP:{srv_addr}:{mid}"]
    elif family == "spiped":
        server = ["spiped", "-d", "-F", "-n", "0", "-s", f"[{srv_addr}]:{mid}",
                  "-t", f"[127.0.0.1]:{target_port}", "-k", setup.spiped_key]
        client = ["spiped", "-e", "-F", "-n", "0", "-s", f"[127.0.0.1]:{entry}",
                  "-t", f"[{srv_addr}]:{mid}", "-k", setup.spiped_key]
    elif family == "stunnel":
        suite = STUNNEL_SUITES[variant]
        server = ["stunnel", stunnel_conf(setup, f"{label}-server", suite, False,
                                          f"{srv_addr}:{mid}", target)]
        client = ["stunnel", stunnel_conf(setup, f"{label}-client", suite, True,
                                          f"127.0.0.1:{entry}", f"{srv_addr}:{mid}")]
    elif family == "ssh":
        cipher = SSH_CIPHERS[variant]
        server = ["/usr/sbin/sshd", "-D", "-e", "-f",
                  sshd_conf(setup, label, srv_addr, mid, cipher)]
        client = ["ssh", "-N", "-F", "/dev/null", "-i", setup.ssh_user_key, "-p", str(mid),
                  "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                  "-o", "ControlMaster=no", "-o", "ControlPath=none",
                  "-o", f"Ciphers={cipher}", "-o", "Compression=no",
                  "-o", "ExitOnForwardFailure=yes", "-o", "LogLevel=ERROR",
                  "-L", f"127.0.0.1:{entry}:{target}", f"root@{srv_addr}"]
    elif family == "tunnel":
        cipher = TUNNEL_CIPHERS[variant]
        common = ["--ciphers", cipher, "--max-connections", str(TUNNEL_MAX_CONNECTIONS)]
        server = [setup.tunnel, "-q", "remote", "--listen", f"{srv_addr}:{mid}",
                  "--target", target, "--key", setup.remote_key,
                  "--authorized-keys", setup.local_key + ".pub"] + common
        client = [setup.tunnel, "-q", "local", "--forward",
                  f"127.0.0.1:{entry}:{srv_addr}:{mid}", "--key", setup.local_key,
                  "--remote-key", setup.remote_key + ".pub"] + common
    else:
        raise BenchError(f"unknown path {name}")
    sp = procs.start(f"{label}-server", where.wrap("server", server))
    wait_listening(where.server_ns, srv_addr, mid, sp, procs.logdir)
    cp = procs.start(f"{label}-client", where.wrap("client", client))
    wait_listening(where.client_ns, "127.0.0.1", entry, cp, procs.logdir)
    return Path(name, "127.0.0.1", entry, cp, sp)


def rotated(items, k):
    k = k % len(items) if items else 0
    return items[k:] + items[:k]


# ---- measurements ------------------------------------------------------------------


def iperf(port, seconds, streams):
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J",
            "-P", str(streams)]
    r = run_capture(argv, seconds + 30)
    try:
        data = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise BenchError(f"iperf3 gave no result: {r.stderr.strip()[:200]}")
    if "error" in data:
        raise BenchError(f"iperf3: {data['error']}")
    recv = data["end"]["sum_received"]
    return recv["bits_per_second"] / 1e9, recv["bytes"]


class HwmSampler:
    """Samples the summed peak RSS (VmHWM) of a path's processes while load runs."""

    def __init__(self, path):
        self.path = path
        self.peak = {"client": 0, "server": 0}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self):
        table = proc_table()
        for side in ("client", "server"):
            kib = sum(status_kib(p, "VmHWM") for p in tree(self.path.roots(side), table))
            self.peak[side] = max(self.peak[side], kib)

    def run(self):
        while not self.stopping.is_set():
            self.sample()
            self.stopping.wait(SAMPLE_INTERVAL_S)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()
        self.sample()


def record_error(results, name, metric, err):
    results.setdefault(name, {}).setdefault("errors", []).append(f"{metric}: {err}")
    log(f"  {name} {metric}: {err}")


def phase_bulk(args, setup, procs, ports, names, metrics, results, deadline):
    ports.new_phase()
    target_port = ports.take()
    server = procs.start("iperf3-server", ["iperf3", "-s", "-B", "127.0.0.1",
                                           "-p", str(target_port)])
    wait_listening(None, "127.0.0.1", target_port, server, procs.logdir)
    paths = []
    try:
        for name in names:
            try:
                paths.append(start_path(name, setup, procs, ports, Where(), target_port, "bulk"))
            except BenchError as e:
                record_error(results, name, "start", e)
        for metric, streams in (("bulk1", 1), ("bulk4", 4)):
            if metric not in metrics:
                continue
            for rnd in range(args.runs):
                for path in rotated(paths, rnd):
                    if time.time() > deadline:
                        raise BenchError("time budget used up")
                    r = results.setdefault(path.name, {})
                    try:
                        if streams == 1:
                            cpu0 = cpu_seconds(path.roots())
                            gbps, nbytes = iperf(path.entry_port, args.seconds, 1)
                            r["cpu_s"] = r.get("cpu_s", 0.0) + cpu_seconds(path.roots()) - cpu0
                            r["cpu_bytes"] = r.get("cpu_bytes", 0) + nbytes
                        else:
                            with HwmSampler(path) as s:
                                gbps, nbytes = iperf(path.entry_port, args.seconds, 4)
                            for side in ("client", "server"):
                                key = f"hwm_{side}_kib"
                                r[key] = max(r.get(key, 0), s.peak[side])
                        r.setdefault(metric, []).append(gbps)
                        log(f"  {metric} round {rnd + 1} {path.name}: {gbps:.2f} Gbit/s")
                    except (BenchError, subprocess.TimeoutExpired) as e:
                        record_error(results, path.name, metric, e)
                        if server.poll() is not None:
                            raise BenchError("the iperf3 server died")
    finally:
        for path in paths:
            procs.stop(path.procs())
        procs.stop([server])


def hold(setup, procs, path, count, results):
    """Holds COUNT idle connections through a path; returns PSS per connection in KiB."""
    table = proc_table()
    base = {s: sum(pss_kib(p) for p in tree(path.roots(s), table)) for s in ("client", "server")}
    base_count = len(tree(path.roots(), table))
    h = procs.start(f"hold-{path.name}",
                    [setup.probe, "hold", path.entry_host, str(path.entry_port), str(count),
                     str(HOLD_INFLIGHT), str(HOLD_TIMEOUT_S)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        ready, _, _ = select.select([h.stdout], [], [], HOLD_TIMEOUT_S + 30)
        line = h.stdout.readline().decode().strip() if ready else ""
        m = re.match(r"held (\d+) failed (\d+) seconds ([\d.]+)", line)
        if not m:
            raise BenchError(f"hold helper said {line!r}: {log_tail(procs.logdir, h.bench_name)}")
        held, failed, secs = int(m[1]), int(m[2]), float(m[3])
        time.sleep(SETTLE_S)
        table = proc_table()
        now = {s: sum(pss_kib(p) for p in tree(path.roots(s), table)) for s in ("client", "server")}
        r = results.setdefault(path.name, {})
        r["idle_held"], r["idle_failed"], r["idle_open_s"] = held, failed, secs
        r["idle_base_kib"] = base
        r["idle_loaded_kib"] = now
        if held == 0:
            raise BenchError(f"no connection could be held ({failed} failed)")
        r["idle_kib"] = (sum(now.values()) - sum(base.values())) / held
        log(f"  idle {path.name}: {held} held ({failed} failed) in {secs:.1f}s, "
            f"{r['idle_kib']:.1f} KiB each")
    finally:
        try:
            h.stdin.close()
        except OSError:
            pass
        try:
            h.wait(timeout=30)
        except subprocess.TimeoutExpired:
            procs.stop([h])
        procs.started = [p for p in procs.started if p is not h]
    # Let forked relays wind down before the next path adds its own.
    deadline = time.time() + TEARDOWN_TIMEOUT_S
    while time.time() < deadline and len(tree(path.roots())) > base_count:
        time.sleep(0.2)


def phase_echo(args, setup, procs, ports, names, metrics, results, deadline):
    ports.new_phase()
    target_port = ports.take()
    echo = procs.start("echo-server", [setup.probe, "echo", "127.0.0.1", str(target_port)])
    wait_listening(None, "127.0.0.1", target_port, echo, procs.logdir)
    paths = []
    try:
        for name in names:
            try:
                paths.append(start_path(name, setup, procs, ports, Where(), target_port, "echo"))
            except BenchError as e:
                record_error(results, name, "start", e)
        # Round trips and connection rates drift with the machine's load over a run
        # as much as bulk throughput does: they get the same interleaved rounds, and
        # the report takes the median of each figure.
        if "rtt" in metrics:
            for rnd in range(args.runs):
                for path in rotated(paths, rnd):
                    if time.time() > deadline:
                        raise BenchError("time budget used up")
                    r = run_capture([setup.probe, "rtt", path.entry_host, str(path.entry_port),
                                     str(args.rtt_count), str(RTT_WARMUP), str(RTT_SIZE)], 120)
                    if r.returncode != 0:
                        record_error(results, path.name, "rtt", r.stderr.strip())
                        continue
                    p50, p99, mean, _ = r.stdout.split()
                    res = results.setdefault(path.name, {})
                    for key, value in (("rtt_p50", p50), ("rtt_p99", p99), ("rtt_mean", mean)):
                        res.setdefault(key, []).append(float(value))
                    log(f"  rtt round {rnd + 1} {path.name}: p50 {p50} us, p99 {p99} us")
        if "rtt1" in metrics:
            rtt_one_cpu(args, setup, paths, echo, results, deadline)
        if "cps" in metrics:
            for rnd in range(args.runs):
                for path in rotated(paths, rnd + 1):
                    if time.time() > deadline:
                        raise BenchError("time budget used up")
                    r = run_capture([setup.probe, "cps", path.entry_host, str(path.entry_port),
                                     str(args.cps_seconds)], args.cps_seconds + 60)
                    fields = r.stdout.split()
                    if len(fields) != 6:
                        record_error(results, path.name, "cps", r.stderr.strip() or r.stdout)
                        continue
                    n, secs, rate, p50, p99, failures = fields
                    res = results.setdefault(path.name, {})
                    for key, value in (("cps", rate), ("cps_p50", p50), ("cps_p99", p99)):
                        res.setdefault(key, []).append(float(value))
                    res["cps_failures"] = res.get("cps_failures", 0) + int(failures)
                    log(f"  cps round {rnd + 1} {path.name}: {float(rate):.0f}/s "
                        f"({n} in {secs}s, {failures} failed)")
        if "idle" in metrics:
            for path in rotated(paths, 2):
                if path.name == "direct":
                    continue
                if time.time() > deadline:
                    raise BenchError("time budget used up")
                try:
                    hold(setup, procs, path, args.idle_conns, results)
                except BenchError as e:
                    record_error(results, path.name, "idle", e)
    finally:
        for path in paths:
            procs.stop(path.procs())
        procs.stop([echo])


def rtt_one_cpu(args, setup, paths, echo, results, deadline):
    """Round trips with the client, the echo server and every relay process on CPU 0.

    On a virtual machine a wake-up that crosses to another CPU costs tens of
    microseconds, so the plain round-trip figure depends mostly on which CPU each
    process happens to sit on. With everything on one CPU no hop crosses, and what is
    left is each relay's own cost per message.
    """
    everywhere = os.sched_getaffinity(0)
    for rnd in range(args.runs):
        for path in rotated(paths, rnd):
            if time.time() > deadline:
                raise BenchError("time budget used up")
            pids = tree(path.roots()) + [echo.pid]
            pin(pids, {0})
            try:
                r = run_capture(["taskset", "-c", "0", setup.probe, "rtt", path.entry_host,
                                 str(path.entry_port), str(args.rtt_count), str(RTT_WARMUP),
                                 str(RTT_SIZE)], 120)
            finally:
                pin(tree(path.roots()) + [echo.pid], everywhere)
            if r.returncode != 0:
                record_error(results, path.name, "rtt1", r.stderr.strip())
                continue
            p50, p99, _, _ = r.stdout.split()
            res = results.setdefault(path.name, {})
            res.setdefault("rtt1_p50", []).append(float(p50))
            res.setdefault("rtt1_p99", []).append(float(p99))
            log(f"  one-CPU rtt round {rnd + 1} {path.name}: p50 {p50} us, p99 {p99} us")


class DelayedLink:
    """Two namespaces joined by a link with LINK_ONE_WAY_MS each way; removed on exit."""

    def __init__(self, prefix, setup, procs):
        self.client_ns, self.server_ns = f"{prefix}c", f"{prefix}s"
        self.setup, self.procs = setup, procs
        self.emulator = None
        self.mode = None
        self.prefix = prefix

    def ip(self, *argv, check=True):
        r = run_capture(["ip"] + list(argv), 30)
        if check and r.returncode != 0:
            raise BenchError(f"ip {' '.join(argv)}: {r.stderr.strip()}")
        return r

    def __enter__(self):
        for ns in (self.client_ns, self.server_ns):
            self.ip("netns", "add", ns)
            self.ip("-n", ns, "link", "set", "lo", "up")
        vc, vs = f"{self.prefix}vc", f"{self.prefix}vs"
        self.ip("link", "add", vc, "netns", self.client_ns, "type", "veth",
                "peer", "name", vs, "netns", self.server_ns)
        netem = all(
            run_capture(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root",
                         "netem", "delay", f"{LINK_ONE_WAY_MS}ms"], 30).returncode == 0
            for ns, dev in ((self.client_ns, vc), (self.server_ns, vs))
        )
        if netem:
            self.mode = f"veth pair with netem delay {LINK_ONE_WAY_MS}ms on each end"
        else:
            # This kernel has no netem: carry the packets through a delaying TUN pair.
            self.ip("-n", self.client_ns, "link", "del", vc)
            vc, vs = f"{self.prefix}tc", f"{self.prefix}ts"
            self.emulator = self.procs.start(
                "linkdelay",
                [self.setup.linkdelay, f"/run/netns/{self.client_ns}", vc,
                 f"/run/netns/{self.server_ns}", vs, str(LINK_ONE_WAY_MS)],
                stdout=subprocess.PIPE)
            ready, _, _ = select.select([self.emulator.stdout], [], [], READY_TIMEOUT_S)
            if not ready or self.emulator.stdout.readline().strip() != b"ready":
                raise BenchError(f"linkdelay did not start: "
                                 f"{log_tail(self.procs.logdir, 'linkdelay')}")
            self.mode = (f"no netem in this kernel: TUN pair joined by linkdelay.c, "
                         f"{LINK_ONE_WAY_MS}ms each way")
        for ns, dev, addr, peer in ((self.client_ns, vc, LINK_CLIENT_ADDR, LINK_SERVER_ADDR),
                                    (self.server_ns, vs, LINK_SERVER_ADDR, LINK_CLIENT_ADDR)):
            self.ip("-n", ns, "addr", "add", addr, "peer", peer, "dev", dev)
            self.ip("-n", ns, "link", "set", dev, "up")
        return self

    def __exit__(self, *exc):
        if self.emulator is not None:
            self.procs.stop([self.emulator])
        for ns in (self.client_ns, self.server_ns):
            self.ip("netns", "del", ns, check=False)


def phase_ttfb(args, setup, procs, ports, names, results, deadline, prefix, meta):
    ports.new_phase()
    target_port = ports.take()
    with DelayedLink(prefix, setup, procs) as link:
        meta["link"] = link.mode
        where = Where(link.client_ns, link.server_ns, LINK_SERVER_ADDR)
        echo = procs.start("ttfb-echo", where.wrap("server", [setup.probe, "echo", "0.0.0.0",
                                                               str(target_port)]))
        wait_listening(link.server_ns, "0.0.0.0", target_port, echo, procs.logdir)
        paths = []
        try:
            for name in names:
                try:
                    paths.append(start_path(name, setup, procs, ports, where, target_port,
                                            "ttfb"))
                except BenchError as e:
                    record_error(results, name, "ttfb start", e)
            samples = {p.name: [] for p in paths}
            for rnd in range(args.ttfb_count):
                if time.time() > deadline:
                    raise BenchError("time budget used up")
                for path in rotated(paths, rnd):
                    r = run_capture(where.wrap("client", [setup.probe, "ttfb", path.entry_host,
                                                          str(path.entry_port)]), 60)
                    if r.returncode != 0:
                        record_error(results, path.name, "ttfb", r.stderr.strip())
                        continue
                    samples[path.name].append(float(r.stdout))
                    time.sleep(0.02)
            for name, vals in samples.items():
                if vals:
                    res = results.setdefault(name, {})
                    res["ttfb"] = statistics.median(vals)
                    res["ttfb_n"] = len(vals)
                    res["ttfb_min"], res["ttfb_max"] = min(vals), max(vals)
                    log(f"  ttfb {name}: median {res['ttfb']:.1f} ms over {len(vals)}")
        finally:
            for path in paths:
                procs.stop(path.procs())
            procs.stop([echo])


# ---- report ------------------------------------------------------------------------

# (key, header, unit, higher is better, format)
COLUMNS = [
    ("bulk1", "1 stream", "Gbit/s", True, "{:.2f}"),
    ("bulk4", "4 streams", "Gbit/s", True, "{:.2f}"),
    ("rtt_p50", "RTT p50", "µs", False, "{:.1f}"),
    ("rtt_p99", "RTT p99", "µs", False, "{:.1f}"),
    ("rtt1_p50", "RTT p50, one CPU", "µs", False, "{:.1f}"),
    ("cps", "new conns", "per s", True, "{:.0f}"),
    ("ttfb", "first response, 20 ms link", "ms", False, "{:.1f}"),
    ("hwm", "peak RSS, 4 streams", "MiB", False, "{:.1f}"),
    ("idle_kib", "per idle conn", "KiB", False, "{:.1f}"),
    ("cpu_per_gb", "CPU per GB", "s", False, "{:.2f}"),
]


def summarise(results):
    table = {}
    for name, r in results.items():
        row = {}
        for key in ("bulk1", "bulk4", "rtt_p50", "rtt_p99", "rtt1_p50", "cps"):
            if r.get(key):
                row[key] = statistics.median(r[key])
        for key in ("ttfb", "idle_kib"):
            if key in r:
                row[key] = r[key]
        if name == "direct":
            table[name] = row
            continue
        if "hwm_client_kib" in r:
            row["hwm"] = (r["hwm_client_kib"] + r["hwm_server_kib"]) / 1024
        if r.get("cpu_bytes"):
            row["cpu_per_gb"] = r["cpu_s"] / (r["cpu_bytes"] / 1e9)
        table[name] = row
    return table


def best_peers(table):
    best = {}
    for key, _, _, higher, _ in COLUMNS:
        vals = [(row[key], name) for name, row in table.items() if name in PEERS and key in row]
        if vals:
            best[key] = max(vals) if higher else min(vals)
    return best


def render(meta, names, results, table, best):
    out = []
    out.append(f"# Forwarder comparison, {meta['date']}\n")
    out.append(f"Machine: {meta['nproc']} CPUs, {meta['cpu']}, Linux {meta['kernel']}, "
               f"{meta['mem_gib']:.0f} GiB. Tree: {meta['commit']}. "
               f"Run took {meta['elapsed_s'] / 60:.1f} min.\n")
    out.append("## Absolute figures\n")
    out.append("Medians of the rounds where a metric has several. Memory and CPU count both "
               "relay processes (and any children they fork); direct has no relay.\n")
    header = ["path"] + [f"{h} ({u})" for _, h, u, _, _ in COLUMNS]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" + "---:|" * len(COLUMNS))
    for name in names:
        row = table.get(name, {})
        cells = [name] + [fmt.format(row[k]) if k in row else "–" for k, _, _, _, fmt in COLUMNS]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("## Ratios to the best peer\n")
    out.append("Each figure divided by the best of socat, spiped, stunnel and ssh on that "
               "metric. Above 1 is more for throughput and connection rate (better), and "
               "more time, memory or CPU for the rest (worse).\n")
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" + "---:|" * len(COLUMNS))
    for name in names:
        row = table.get(name, {})
        cells = [name]
        for key, _, _, _, _ in COLUMNS:
            if key in row and key in best and best[key][0] > 0:
                cells.append(f"{row[key] / best[key][0]:.2f}")
            else:
                cells.append("–")
        out.append("| " + " | ".join(cells) + " |")
    out.append("| best peer | " + " | ".join(
        f"{best[k][1]}" if k in best else "–" for k, _, _, _, _ in COLUMNS) + " |")
    out.append("")
    out.append("## Details\n")
    out.append("| path | 1-stream runs | 4-stream runs | new conns runs | "
               "peak RSS client / server (MiB) | idle conns held (failed), open time | "
               "idle PSS client / server (MiB) | connect+echo p50 / p99 (µs) | "
               "first response min / max (ms) |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        r = results.get(name, {})
        runs1 = ", ".join(f"{v:.2f}" for v in r.get("bulk1", [])) or "–"
        runs4 = ", ".join(f"{v:.2f}" for v in r.get("bulk4", [])) or "–"
        hwm = (f"{r['hwm_client_kib'] / 1024:.1f} / {r['hwm_server_kib'] / 1024:.1f}"
               if "hwm_client_kib" in r else "–")
        idle = (f"{r['idle_held']} ({r['idle_failed']}), {r['idle_open_s']:.1f} s"
                if "idle_held" in r else "–")
        pss = (f"{r['idle_base_kib']['client'] / 1024:.1f}→"
               f"{r['idle_loaded_kib']['client'] / 1024:.1f} / "
               f"{r['idle_base_kib']['server'] / 1024:.1f}→"
               f"{r['idle_loaded_kib']['server'] / 1024:.1f}" if "idle_loaded_kib" in r else "–")
        cps = (f"{statistics.median(r['cps_p50']):.0f} / {statistics.median(r['cps_p99']):.0f}"
               if r.get("cps_p50") else "–")
        rates = ", ".join(f"{v:.0f}" for v in r.get("cps", [])) or "–"
        ttfb = f"{r['ttfb_min']:.1f} / {r['ttfb_max']:.1f}" if "ttfb_min" in r else "–"
        out.append(f"| {name} | {runs1} | {runs4} | {rates} | {hwm} | {idle} | {pss} | {cps} "
                   f"| {ttfb} |")
    out.append("")
    out.append("## Conditions\n")
    p = meta["params"]
    out.append(f"- Paths: {', '.join(names)}. Metrics: {', '.join(meta['metrics'])}.")
    out.append(f"- Bulk: iperf3 `-t {p['seconds']}`, {p['runs']} rounds per stream count, paths "
               "interleaved within each round (the order turns each round); client sends.")
    out.append(f"- CPU per GB: utime+stime (with reaped children) of both relays across all "
               "single-stream runs, divided by the bytes iperf3 received (10^9 bytes per GB).")
    out.append("- Peak RSS: VmHWM summed over each side's processes, sampled every "
               f"{SAMPLE_INTERVAL_S}s during the four-stream runs (the largest sum is kept).")
    out.append(f"- RTT: {p['rtt_count']} round trips of {RTT_SIZE} bytes after {RTT_WARMUP} "
               "warm-up ones, one connection, TCP_NODELAY on the client and the echo server; "
               f"{p['runs']} interleaved rounds, median of each percentile. RTT on one CPU: "
               "the same with the client, the echo server and every relay thread pinned to "
               "CPU 0, so that no hop pays for waking another CPU.")
    out.append(f"- New connections: connect, 1 byte each way, close, one after another for "
               f"{p['cps_seconds']} s; {p['runs']} interleaved rounds, median rate.")
    out.append(f"- Idle connections: {p['idle_conns']} opened at most {HOLD_INFLIGHT} at a time, "
               "each sends one byte and reads its echo; the figure is the rise in PSS (from "
               "smaps_rollup, so pages shared by forked children are split between them) of "
               "both relays, divided by the connections held. Kernel socket memory is not "
               "counted.")
    out.append(f"- First response: {p['ttfb_count']} fresh connections per path, interleaved; "
               f"connect, send 1 byte, read its echo. Link: {meta.get('link', 'not measured')}. "
               "Relays' client sides run in the client namespace, server sides and the echo "
               "target in the server namespace; ssh keeps one SSH connection open and opens a "
               "channel per forwarded connection; stunnel resumes TLS sessions by default.")
    out.append(f"- Keys: RSA-{p['key_bits']} for tunnel (both roles) and for the stunnel "
               "certificate, verified by both stunnel ends; ed25519 for ssh. spiped with a "
               "32-byte random key and its default handshake.")
    for tool, ver in meta["versions"].items():
        out.append(f"- {tool}: {ver}")
    errs = [(n, e) for n in names for e in results.get(n, {}).get("errors", [])]
    if errs:
        out.append("\n## Problems during the run\n")
        for n, e in errs:
            out.append(f"- {n}: {e}")
    return "\n".join(out) + "\n"


def chart(path, meta, names, table):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed; no chart (apt-get install python3-matplotlib)")
        return False
    cols = [c for c in COLUMNS if any(c[0] in table.get(n, {}) for n in names)]
    if not cols:
        return False
    ncols = 3
    nrows = (len(cols) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(15, 3.6 * nrows + 0.8), squeeze=False)
    for ax, (key, head, unit, higher, fmt) in zip(axes.flat, cols):
        shown = [n for n in names if key in table.get(n, {})]
        vals = [table[n][key] for n in shown]
        colors = ["#d95f02" if n.startswith("tunnel") else "#999999" if n == "direct"
                  else "#1f78b4" for n in shown]
        bars = ax.barh(range(len(shown)), vals, color=colors)
        ax.set_yticks(range(len(shown)))
        ax.set_yticklabels(shown, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{head} ({unit}), {'higher' if higher else 'lower'} is better",
                     fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        top = max(vals) if vals else 1
        for bar, v in zip(bars, vals):
            ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2,
                    fmt.format(v), va="center", fontsize=7)
        ax.set_xlim(0, top * 1.18 if top > 0 else 1)
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    fig.suptitle(f"tunnel and other TCP forwarders on loopback, {meta['date']}: "
                 f"{meta['nproc']} CPUs, {meta['cpu']}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---- main --------------------------------------------------------------------------


def env_default(name, default):
    return os.environ.get(f"COMPARE_{name}", default)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paths", default=env_default("PATHS", ",".join(ALL_PATHS)),
                    help=f"comma list from {','.join(ALL_PATHS)} (env COMPARE_PATHS)")
    ap.add_argument("--metrics", default=env_default("METRICS", ",".join(ALL_METRICS)),
                    help=f"comma list from {','.join(ALL_METRICS)} (env COMPARE_METRICS)")
    ap.add_argument("--base-port", type=int, default=int(env_default("BASE_PORT", 20000)),
                    help="first port of the bench's fixed range (env COMPARE_BASE_PORT)")
    ap.add_argument("--runs", type=int, default=int(env_default("RUNS", 3)),
                    help="iperf3 rounds per stream count (env COMPARE_RUNS)")
    ap.add_argument("--seconds", type=int, default=int(env_default("SECONDS", 5)),
                    help="iperf3 -t (env COMPARE_SECONDS)")
    ap.add_argument("--rtt-count", type=int, default=int(env_default("RTT_COUNT", 20000)))
    ap.add_argument("--cps-seconds", type=float, default=float(env_default("CPS_SECONDS", 3)))
    ap.add_argument("--idle-conns", type=int, default=int(env_default("IDLE_CONNS", 0)),
                    help="connections to hold; 0 means 10000, or fewer if the open-file "
                         "limit cannot hold two sockets per connection in one relay")
    ap.add_argument("--ttfb-count", type=int, default=int(env_default("TTFB_COUNT", 20)))
    ap.add_argument("--key-bits", type=int, default=int(env_default("KEY_BITS", 3072)),
                    help="RSA size for tunnel keys and the stunnel certificate")
    ap.add_argument("--max-minutes", type=float, default=float(env_default("MAX_MINUTES", 20)),
                    help="stop measuring after this long and report what was measured")
    ap.add_argument("--tunnel-bin", default=env_default("TUNNEL_BIN", ""))
    ap.add_argument("--out", default=env_default("OUT", ""),
                    help="results file name without extension (default: the date)")
    ap.add_argument("--no-chart", action="store_true")
    args = ap.parse_args()
    args.paths = [p for p in args.paths.split(",") if p]
    args.metrics = [m for m in args.metrics.split(",") if m]
    bad = [p for p in args.paths if p not in ALL_PATHS] + \
          [m for m in args.metrics if m not in ALL_METRICS]
    if bad:
        ap.error(f"unknown path or metric: {', '.join(bad)}")
    if not args.tunnel_bin:
        args.tunnel_bin = os.path.join(HERE, "..", "..", "target", "release", "tunnel")
    args.tunnel_bin = os.path.abspath(args.tunnel_bin)
    if not os.access(args.tunnel_bin, os.X_OK):
        ap.error(f"no tunnel binary at {args.tunnel_bin}; run cargo build --release --bin tunnel")
    if args.idle_conns <= 0:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        args.idle_conns = max(1, min(MAX_IDLE_CONNS, (soft - FD_RESERVE) // 2))
    return args


def machine_meta():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    commit = "?"
    try:
        root = os.path.join(HERE, "..", "..")
        head = run_capture(["git", "-C", root, "rev-parse", "--short", "HEAD"], 10).stdout.strip()
        dirty = run_capture(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                            10).stdout.strip()
        commit = f"{head}{' with uncommitted changes' if dirty else ''}" if head else "?"
    except (OSError, subprocess.TimeoutExpired):
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "mem_gib": mem_kib / 1024 / 1024, "commit": commit}


def main():
    args = parse_args()
    prefix = os.environ.get("COMPARE_ID", str(os.getpid()))
    start = time.time()
    deadline = start + args.max_minutes * 60
    meta = machine_meta()
    meta["date"] = datetime.date.today().isoformat()
    meta["metrics"] = args.metrics
    meta["params"] = {k: getattr(args, k) for k in ("seconds", "runs", "rtt_count",
                                                    "cps_seconds", "idle_conns", "ttfb_count",
                                                    "key_bits")}

    def on_signal(sig, _frame):
        raise SystemExit(f"stopped by signal {sig}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    check_ports(args.base_port)
    tmp = tempfile.mkdtemp(prefix=f"compare-{prefix}-")
    procs = Procs(tmp)
    results = {}
    ports = Ports(args.base_port)
    try:
        log(f"setting up in {tmp}")
        setup = Setup(args, tmp)
        meta["versions"] = setup.versions()
        log(f"paths: {', '.join(args.paths)}; metrics: {', '.join(args.metrics)}; "
            f"idle connections: {args.idle_conns}")
        try:
            if {"bulk1", "bulk4"} & set(args.metrics):
                log("phase 1: bulk throughput through iperf3")
                phase_bulk(args, setup, procs, ports, args.paths, args.metrics, results,
                           deadline)
            if {"rtt", "rtt1", "cps", "idle"} & set(args.metrics):
                log("phase 2: round trips, new connections and idle connections")
                phase_echo(args, setup, procs, ports, args.paths, args.metrics, results,
                           deadline)
            if "ttfb" in args.metrics:
                log("phase 3: first response over a link with a 20 ms round trip")
                phase_ttfb(args, setup, procs, ports, args.paths, results, deadline, prefix,
                           meta)
        except BenchError as e:
            log(f"stopped early: {e}")
            results.setdefault("_run", {}).setdefault("errors", []).append(str(e))
        meta["elapsed_s"] = time.time() - start
        table = summarise({k: v for k, v in results.items() if k in args.paths})
        best = best_peers(table)
        names = list(args.paths)
        text = render(meta, names, results, table, best)
        if "_run" in results:
            text += "\n" + "\n".join(f"- run: {e}" for e in results["_run"]["errors"]) + "\n"
        outdir = os.path.join(HERE, "results")
        os.makedirs(outdir, exist_ok=True)
        stem = args.out or meta["date"]
        if not args.out and os.path.exists(os.path.join(outdir, stem + ".md")):
            stem += time.strftime("-%H%M")
        md = os.path.join(outdir, stem + ".md")
        with open(md, "w") as f:
            f.write(text)
        with open(os.path.join(tmp, "raw.json"), "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1, default=str)
        print(text)
        log(f"wrote {md}")
        if not args.no_chart and chart(os.path.join(outdir, stem + ".png"), meta, names, table):
            log(f"wrote {os.path.join(outdir, stem + '.png')}")
        log(f"logs and raw figures in {tmp}")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
