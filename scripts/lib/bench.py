#!/usr/bin/env python3
"""Benchmark of this project's sbr and bandwidth against the reference plugins.

Run through scripts/bench (as root). Everything happens in throwaway network
namespaces: a "host" namespace this process switches into, a container
namespace per scenario, and one for the peers of the scaling veths. Both
implementations run interleaved on the same namespaces and the same inputs;
every number is a median over repeats. Writes a Markdown page and SVG charts.
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import statistics
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import kernelwork  # noqa: E402
from goodput import EXACT, receiver_goodput  # noqa: E402
import svgchart  # noqa: E402

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
OURS, REF = "ours", "reference"
GREEN, GREY, BLUE, LIGHT = "#2b8a3e", "#868e96", "#1c7ed6", "#b2f2bb"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(*args, check=True, ns=None, input=None):
    """Runs a command (in the current namespace, or `ip netns exec ns`)."""
    argv = list(args)
    if ns:
        argv = ["ip", "netns", "exec", ns] + argv
    r = subprocess.run(argv, input=input, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip()}")
    return r.stdout


def ip_batch(lines, ns=None):
    """Many `ip` commands in one process: fast creation of thousands of links."""
    argv = ["ip"] + (["-n", ns] if ns else []) + ["-batch", "-"]
    r = subprocess.run(argv, input="\n".join(lines) + "\n", capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ip -batch failed: {r.stderr.strip()[:500]}")


def setns(name):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


# A static program without a C library: its entry point only exits, so timing
# it times exec and exit alone.
NO_LIBC_PROGRAM = r"""
void _start(void) {
#if defined(__x86_64__)
  __asm__ volatile("mov $231, %eax\n xor %edi, %edi\n syscall");
#elif defined(__aarch64__)
  __asm__ volatile("mov x8, #94\n mov x0, #0\n svc #0");
#endif
  for (;;) {}
}
"""
KERNEL_IFB = "bwpbenchkernel"


def binary_kind(path):
    """`file`'s words for how a binary is linked, and with which C library."""
    out = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout
    link = "static-pie" if "static-pie" in out else "static" if "statically linked" in out else "dynamic"
    if link == "dynamic":
        return "dynamically linked"
    try:
        with open(path, "rb") as f:
            glibc = b"GLIBC_TUNABLES" in f.read()
    except OSError:
        glibc = False
    return f"{link}, {'glibc' if glibc else 'no glibc'}"


class Run:
    """One measured process: wall time, peak RSS, exit status and stdout."""

    __slots__ = ("ns", "rss_kb", "status", "out")

    def __init__(self, ns, rss_kb, status, out):
        self.ns, self.rss_kb, self.status, self.out = ns, rss_kb, status, out


DEVNULL = os.open(os.devnull, os.O_WRONLY)


def spawn(argv, env, stdin=b"", rss=False):
    """fork+exec+wait timed around posix_spawn and wait4 only; stdin and stdout are
    files prepared outside the timed region. With `rss`, the process runs under GNU
    time for its peak RSS: wait4's ru_maxrss here would include this Python
    process, whose memory the child shares until exec (posix_spawn uses vfork)."""
    rss_file = None
    if rss:
        fd, rss_file = tempfile.mkstemp(prefix="cnibench-rss-")
        os.close(fd)
        argv = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + list(argv)
    with tempfile.TemporaryFile() as fin, tempfile.TemporaryFile() as fout:
        fin.write(stdin)
        fin.seek(0)
        actions = [
            (os.POSIX_SPAWN_DUP2, fin.fileno(), 0),
            (os.POSIX_SPAWN_DUP2, fout.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, DEVNULL, 2),
        ]
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
        _, status, ru = os.wait4(pid, 0)
        t1 = time.perf_counter_ns()
        fout.seek(0)
        out = fout.read().decode(errors="replace")
    rss_kb = ru.ru_maxrss
    if rss_file:
        try:
            with open(rss_file) as f:
                rss_kb = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            rss_kb = -1
        os.unlink(rss_file)
    return Run(t1 - t0, rss_kb, os.waitstatus_to_exitcode(status), out)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def ms(ns):
    return ns / 1e6


class Bench:
    def __init__(self, args):
        self.args = args
        self.dirs = {OURS: args.ours, REF: args.reference}
        self.dirs.update(args.also)  # other builds of ours, timed A/B in the same rounds
        self.impls = list(self.dirs)
        tag = f"{os.getpid()}"
        self.host = f"cnibench-host-{tag}"
        self.others = f"cnibench-others-{tag}"
        self.ctr = f"cnibench-ctr-{tag}"
        self.created = []
        self.load_start = loadavg()
        self.failures = []  # (impl, what, detail)
        self.results = {}

    # ---- namespaces and pods -------------------------------------------------

    def make_ns(self, name):
        sh("ip", "netns", "add", name)
        self.created.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def cleanup(self):
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)

    def pod_up(self, ctr=None):
        """A ptp-like attachment: veth bh0 (host) <-> eth0 (container) with addresses
        and routes, and the prevResult a ptp plugin would have returned."""
        ctr = ctr or self.ctr
        ip_batch(
            [
                f"link add bh0 type veth peer name eth0 netns {ctr}",
                "addr add 10.200.0.1/32 dev bh0",
                "link set bh0 up",
            ]
        )
        ip_batch(
            [
                "addr add 10.200.0.2/24 dev eth0",
                "link set eth0 up",
                "route add 10.200.0.1/32 dev eth0 scope link src 10.200.0.2",
                "route add default via 10.200.0.1 dev eth0",
            ],
            ns=ctr,
        )
        sh("ip", "route", "add", "10.200.0.2/32", "dev", "bh0", "src", "10.200.0.1")
        host_mac = json.loads(sh("ip", "-j", "link", "show", "bh0"))[0]["address"]
        ctr_mac = json.loads(sh("ip", "-j", "-n", ctr, "link", "show", "eth0"))[0]["address"]
        return {
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "bh0", "mac": host_mac},
                {"name": "eth0", "mac": ctr_mac, "sandbox": os.path.join(NETNS_DIR, ctr)},
            ],
            "ips": [{"interface": 1, "address": "10.200.0.2/24", "gateway": "10.200.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {},
        }

    def pod_down(self):
        subprocess.run(["ip", "link", "del", "bh0"], capture_output=True)
        # Tables the reference leaves behind after DEL are emptied with the link.

    # ---- plugin invocation ---------------------------------------------------

    def env(self, command, ctr=None):
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": "bench-container-1",
            "CNI_NETNS": os.path.join(NETNS_DIR, ctr or self.ctr),
            "CNI_IFNAME": "eth0",
            "CNI_PATH": self.args.reference,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }

    def conf(self, plugin, prev, extra=None):
        c = {"cniVersion": "1.0.0", "name": "bench", "type": plugin}
        if plugin == "bandwidth":
            c.update(
                ingressRate=100_000_000, ingressBurst=1_000_000, egressRate=100_000_000, egressBurst=1_000_000
            )
        c.update(extra or {})
        c["prevResult"] = prev
        return json.dumps(c).encode()

    def call(self, impl, plugin, command, prev, ctr=None, extra=None, rss=False):
        path = os.path.join(self.dirs[impl], plugin)
        r = spawn([path], self.env(command, ctr), self.conf(plugin, prev, extra), rss=rss)
        if r.status != 0:
            detail = r.out.strip().replace("\n", " ")[:300]
            self.failures.append((impl, f"{plugin} {command}", f"exit {r.status}: {detail}"))
        return r

    def cycle(self, impl, plugin, ctr=None, extra=None, commands=("ADD", "CHECK", "DEL"), rss=False):
        """Fresh pod, then ADD, CHECK, DEL with ADD's result as prevResult; pod removed."""
        prev = self.pod_up(ctr)
        runs = {}
        try:
            add = self.call(impl, plugin, "ADD", prev, ctr, extra, rss)
            runs["ADD"] = add
            try:
                result = json.loads(add.out) if add.status == 0 else prev
            except json.JSONDecodeError:
                result = prev
            for cmd in commands[1:]:
                runs[cmd] = self.call(impl, plugin, cmd, result, ctr, extra, rss)
        finally:
            self.pod_down()
        return runs

    # ---- benchmarks ----------------------------------------------------------

    def spawn_cost(self):
        runs = [spawn(["/bin/true"], {}).ns for _ in range(self.args.repeats * 3)]
        # VERSION does no kernel work: it shows each binary's start-up cost.
        version = {
            impl: [
                spawn([os.path.join(self.dirs[impl], "sbr")], {"CNI_COMMAND": "VERSION"}).ns
                for _ in range(self.args.repeats)
            ]
            for impl in self.impls
        }
        self.results["spawn_ns"] = median(runs)
        self.results["version_ns"] = {k: median(v) for k, v in version.items()}
        self.results["floor_ns"] = self.libc_floor()

    def libc_floor(self):
        """What starting a static process costs before any of our code runs: a
        program with no C library at all (its _start only exits: exec alone),
        and a C program that returns 0, static with musl and with glibc; timed
        interleaved."""
        cc = {
            "none": ["gcc", "-static", "-nostdlib", "-ffreestanding"],
            "musl": ["musl-gcc", "-static"],
            "glibc": ["gcc", "-static-pie"],
        }
        with tempfile.TemporaryDirectory(prefix="cnibench-floor-") as d:
            src = os.path.join(d, "noop.c")
            with open(src, "w") as f:
                f.write("int main(void) { return 0; }\n")
            bare = os.path.join(d, "bare.c")
            with open(bare, "w") as f:
                f.write(NO_LIBC_PROGRAM)
            bins = {}
            for libc, cmd in cc.items():
                out = os.path.join(d, libc)
                if subprocess.run(cmd + ["-O2", "-o", out, bare if libc == "none" else src], capture_output=True).returncode == 0:
                    bins[libc] = out
                else:
                    log(f"  cannot build a static program with C library {libc} ({cmd[0]}); its floor is not shown")
            times = {libc: [] for libc in bins}
            for _ in range(self.args.repeats * 3):
                for libc, path in bins.items():
                    times[libc].append(spawn([path], {}).ns)
        return {libc: median(t) for libc, t in times.items()}

    def kernel_cycle(self):
        """bandwidth ADD's and DEL's netlink requests sent from this process:
        the kernel's share of the plugin's time (see kernelwork.py)."""
        self.pod_up()
        try:
            add = kernelwork.timed(kernelwork.add, "bh0", KERNEL_IFB, 100_000_000, 1_000_000)
            dele = kernelwork.timed(kernelwork.delete, "bh0", KERNEL_IFB)
        except OSError as e:
            log(f"  kernel work: {e}")
            return None
        finally:
            subprocess.run(["ip", "link", "del", KERNEL_IFB], capture_output=True)
            self.pod_down()
        return add, dele

    def latency(self):
        data = {}  # (plugin, cmd, impl) -> [Run]
        kernel = {"ADD": [], "DEL": []}
        for i in range(self.args.repeats):
            k = i % len(self.impls)
            order = self.impls[k:] + self.impls[:k]
            for plugin in ("sbr", "bandwidth"):
                for impl in order:
                    for cmd, run in self.cycle(impl, plugin).items():
                        data.setdefault((plugin, cmd, impl), []).append(run)
            work = self.kernel_cycle()
            if work:
                kernel["ADD"].append(work[0])
                kernel["DEL"].append(work[1])
            log(f"  latency: round {i + 1}/{self.args.repeats}")
        self.results["kernel_ns"] = {cmd: median(v) for cmd, v in kernel.items() if v}
        self.results["latency"] = {
            k: {
                "median_ns": median([r.ns for r in v if r.status == 0]),
                "ok": sum(r.status == 0 for r in v),
                "n": len(v),
            }
            for k, v in data.items()
        }
        # Peak RSS in separate, untimed rounds under GNU time.
        peak = {}
        for i in range(3):
            for plugin in ("sbr", "bandwidth"):
                for impl in self.impls:
                    for cmd, run in self.cycle(impl, plugin, rss=True).items():
                        peak[(plugin, cmd, impl)] = max(peak.get((plugin, cmd, impl), 0), run.rss_kb)
        self.results["rss_kb"] = peak
        self.results["rss_true_kb"] = max(spawn(["/bin/true"], {}, rss=True).rss_kb for _ in range(3))

    def add_host_veths(self, have, want):
        """Adds veth pairs whose host ends stay here and peers go to the others
        namespace, like other pods' veths on a node."""
        lines = [
            f"link add ov{n} type veth peer name op{n} netns {self.others}" for n in range(have, want)
        ]
        for k in range(0, len(lines), 500):  # empty when nothing is to add
            ip_batch(lines[k : k + 500])

    def scaling(self):
        out = {}
        self.make_ns(self.others)
        have = 0
        for n in self.args.veths:
            t0 = time.monotonic()
            self.add_host_veths(have, n)
            have = n
            log(f"  scaling: {n} other veths in the host namespace ({time.monotonic() - t0:.1f}s to create)")
            data = {OURS: [], REF: []}
            for i in range(self.args.scale_repeats):
                for impl in (OURS, REF) if i % 2 == 0 else (REF, OURS):
                    runs = self.cycle(impl, "bandwidth", commands=("ADD", "DEL"))
                    data[impl].append(runs["ADD"])
            out[("bandwidth", n)] = {k: median([r.ns for r in v if r.status == 0]) for k, v in data.items()}
        sh("ip", "netns", "del", self.others)
        self.created.remove(self.others)
        # Extra container interfaces: veths (this kernel has no dummy links) with an
        # address each, their peers up in another namespace.
        ctr, peers = f"{self.ctr}-multi", f"{self.others}-peers"
        self.make_ns(ctr)
        self.make_ns(peers)
        have = 1
        for n in self.args.ifaces:
            extra = range(have, n)
            if extra:
                ip_batch(
                    [
                        cmd
                        for k in extra
                        for cmd in (
                            f"link add c{k} type veth peer name p{k} netns {peers}",
                            f"addr add 10.201.{k}.2/24 dev c{k}",
                            f"link set c{k} up",
                        )
                    ],
                    ns=ctr,
                )
                ip_batch([f"link set p{k} up" for k in extra], ns=peers)
            have = max(have, n)
            log(f"  scaling: sbr with {n} interfaces in the container")
            data = {OURS: [], REF: []}
            for i in range(self.args.scale_repeats):
                for impl in (OURS, REF) if i % 2 == 0 else (REF, OURS):
                    runs = self.cycle(impl, "sbr", ctr=ctr, commands=("ADD", "DEL"))
                    data[impl].append(runs["ADD"])
            out[("sbr", n)] = {k: median([r.ns for r in v if r.status == 0]) for k, v in data.items()}
        self.results["scaling"] = out

    def iperf(self, reverse):
        """One iperf3 run container -> host (reverse: host -> container); goodput in
        bit/s as the receiver counted it, without the first second (slow start and
        the bucket's initial burst)."""
        server = subprocess.Popen(
            ["iperf3", "-s", "-1", "-J", "-B", "10.200.0.1", "-p", "5299"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(50):
                if "10.200.0.1:5299" in sh("ss", "-ltn"):
                    break
                time.sleep(0.05)
            argv = ["iperf3", "-c", "10.200.0.1", "-B", "10.200.0.2", "-p", "5299", "-J"]
            argv += ["--get-server-output", "-t", str(self.args.seconds + 1)] + (["-R"] if reverse else [])
            out = sh(*argv, ns=self.ctr, check=False)
            try:
                return receiver_goodput(json.loads(out), reverse)
            except (ValueError, KeyError, ZeroDivisionError):
                return float("nan")
        finally:
            server.kill()
            server.wait()

    def accuracy(self):
        out = {}
        for rate_mbit in self.args.rates:
            rate = rate_mbit * 1_000_000
            # 10 ms of the rate, at least 64 KiB: above the MTU and timer granularity.
            burst = max(rate // 100, 64 * 1024 * 8)
            extra = {"ingressRate": rate, "ingressBurst": burst, "egressRate": rate, "egressBurst": burst}
            samples = {}
            for i in range(self.args.accuracy_repeats):
                for impl in (OURS, REF) if i % 2 == 0 else (REF, OURS):
                    prev = self.pod_up()
                    try:
                        add = self.call(impl, "bandwidth", "ADD", prev, extra=extra)
                        if add.status != 0:
                            continue
                        for direction, reverse in (("egress", False), ("ingress", True)):
                            bps = self.iperf(reverse)
                            samples.setdefault((impl, direction), []).append(bps / rate)
                        self.call(impl, "bandwidth", "DEL", json.loads(add.out), extra=extra)
                    finally:
                        self.pod_down()
            for (impl, direction), v in samples.items():
                out[(rate_mbit, direction, impl)] = median(v)
            log(f"  accuracy: {rate_mbit} Mbit/s done")
        self.results["accuracy"] = out

    def sizes(self):
        self.results["size"] = {
            (impl, p): os.stat(os.path.join(d, p)).st_size for impl, d in self.dirs.items() for p in ("sbr", "bandwidth")
        }
        self.results["kind"] = {impl: binary_kind(os.path.join(d, "sbr")) for impl, d in self.dirs.items()}

    def run(self):
        self.make_ns(self.host)
        self.make_ns(self.ctr)
        setns(self.host)
        if self.args.only == "load":
            log("latency under load")
            load_measure(self)
            return
        self.sizes()
        log("spawn cost")
        self.spawn_cost()
        log("latency of ADD, CHECK, DEL")
        self.latency()
        log("scaling")
        self.scaling()
        log("shaping accuracy")
        self.accuracy()
        log("latency under load")
        load_measure(self)


# ---- latency under load (issue 19) ------------------------------------------
# A TCP bulk flow through one shaped direction and a ping beside it: what the
# queue behind the TBF adds to every other packet of the pod, and the goodput
# the flow keeps. Self-contained: Bench.load() measures into
# results["load"], load_section() renders; `--only load` runs this alone and
# rewrites only this section of an existing page.

LOAD_RATES = (1, 10, 100)  # Mbit/s
# containerd passes 2^32 - 1 bits for every kubernetes.io/*-bandwidth annotation.
LOAD_BURSTS = (("containerd", 2**32 - 1), ("512 kbit", 512_000))
LOAD_DIRECTIONS = ("egress", "ingress")  # pod uploads (ifb's TBF), pod downloads (veth's TBF)
# The flow's TCP congestion control: cubic (Linux's default) and bbr (this
# machine's); they fill an unbounded queue very differently (see the page).
LOAD_CCS = ("cubic", "bbr")
LOAD_SKIP = 5.0  # s of the flow before pings count: slow start, the bucket's burst
PING_INTERVAL = 0.1
PING_LINGER = 45  # s a ping may wait for late replies once all are sent
LOAD_PORT = "5298"
LOAD_GOAL_P90_MS, LOAD_GOAL_GOODPUT = 30.0, 0.93
LOAD_BEGIN, LOAD_END = "<!-- load-under-latency: begin -->", "<!-- load-under-latency: end -->"


def percentile(xs, p):
    """Nearest-rank percentile; lost replies are infinite (a lost ping waited
    forever, it cannot make a queue look shorter)."""
    if not xs:
        return float("nan")
    ys = sorted(xs)
    k = max(0, min(len(ys) - 1, -(-len(ys) * p // 100) - 1))
    return ys[int(k)]


def ping_rtts(out, sent):
    """RTTs in ms by sequence from ping's reply lines; the unanswered ones infinite."""
    got = {}
    for m in re.finditer(r"icmp_seq=(\d+) .*?time=([\d.]+) ms", out):
        got.setdefault(int(m.group(1)), float(m.group(2)))
    return [got.get(seq, float("inf")) for seq in range(1, sent + 1)]


def load_conf(prev, direction, rate, burst):
    """runtimeConfig as containerd writes it for one annotation."""
    return {
        "cniVersion": "1.0.0",
        "name": "bench",
        "type": "bandwidth",
        "capabilities": {"bandwidth": True},
        "runtimeConfig": {"bandwidth": {f"{direction}Rate": rate, f"{direction}Burst": burst}},
        "prevResult": prev,
    }


def load_flow(b, direction, cc, window):
    """One bulk flow (container to host for egress, host to container for
    ingress) of LOAD_SKIP + window seconds, and pings from the container to
    the host during its last `window` seconds. (rtts in ms, goodput in bit/s
    as the receiver counted it after LOAD_SKIP)."""
    reverse = direction == "ingress"
    server = subprocess.Popen(
        ["iperf3", "-s", "-1", "-J", "-B", "10.200.0.1", "-p", LOAD_PORT],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = None
    try:
        for _ in range(50):
            if f"10.200.0.1:{LOAD_PORT}" in sh("ss", "-ltn"):
                break
            time.sleep(0.05)
        argv = ["ip", "netns", "exec", b.ctr, "iperf3", "-c", "10.200.0.1", "-B", "10.200.0.2", "-p", LOAD_PORT]
        argv += ["-J", "--get-server-output", "-C", cc, "-t", str(int(LOAD_SKIP + window + 1))]
        argv += ["-R"] if reverse else []
        client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(LOAD_SKIP)
        sent = int(window / PING_INTERVAL)
        ping = sh(
            "ping", "-n", "-i", str(PING_INTERVAL), "-c", str(sent), "-w", str(int(window + PING_LINGER)),
            "10.200.0.1", ns=b.ctr, check=False,
        )
        rtts = ping_rtts(ping, sent)
        try:
            out, _ = client.communicate(timeout=LOAD_SKIP + window + PING_LINGER + 30)
            bps = receiver_goodput(json.loads(out), reverse, skip=LOAD_SKIP)
        except (subprocess.TimeoutExpired, ValueError, KeyError, ZeroDivisionError):
            bps = float("nan")
        return rtts, bps
    finally:
        for proc in (client, server):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()


def load_point(b, impl, direction, rate, burst, cc, window):
    """ADD one direction as containerd would, the flow and pings, DEL."""
    prev = b.pod_up()
    path = os.path.join(b.dirs[impl], "bandwidth")
    try:
        add = spawn([path], b.env("ADD"), json.dumps(load_conf(prev, direction, rate, burst)).encode())
        if add.status != 0:
            b.failures.append((impl, "bandwidth ADD (load)", f"exit {add.status}: {add.out.strip()[:300]}"))
            return None
        rtts, bps = load_flow(b, direction, cc, window)
        spawn([path], b.env("DEL"), json.dumps(load_conf(json.loads(add.out), direction, rate, burst)).encode())
    finally:
        b.pod_down()
    return {
        "p50_ms": percentile(rtts, 50),
        "p90_ms": percentile(rtts, 90),
        "lost": sum(r == float("inf") for r in rtts) / len(rtts) if rtts else float("nan"),
        "goodput": bps / rate,
    }


def load_keys(rates, ccs):
    return [(r, burst, d, cc) for r in rates for burst, _ in LOAD_BURSTS for d in LOAD_DIRECTIONS for cc in ccs]


def load_measure(b):
    a, out, i = b.args, {}, 0
    bursts = dict(LOAD_BURSTS)
    m = machine()
    run = f"{m['date']}, commit {m['commit']}, load average {m['load']} at its start"
    for rate_mbit, burst, direction, cc in load_keys(a.load_rates, a.load_cc):
        for impl in (OURS, REF) if i % 2 == 0 else (REF, OURS):
            r = load_point(b, impl, direction, rate_mbit * 1_000_000, bursts[burst], cc, a.load_window)
            if r:
                r["run"] = run
                out[(rate_mbit, burst, direction, cc, impl)] = r
                log(
                    f"  load: {rate_mbit} Mbit/s, {burst} burst, {direction}, {cc}, {impl}: "
                    f"p50 {fmt_rtt(r['p50_ms'])}, p90 {fmt_rtt(r['p90_ms'])} ms, lost {r['lost']:.0%}, "
                    f"goodput {fmt_ratio(r['goodput'])}"
                )
        i += 1
    b.results["load"] = out


def fmt_rtt(x):
    if x != x:
        return "n/a"
    if x == float("inf"):
        return "lost"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def load_cell(r):
    if not r:
        return "failed"
    cell = f"{fmt_rtt(r['p50_ms'])} / {fmt_rtt(r['p90_ms'])}"
    return cell + (f" ({r['lost']:.0%} lost)" if r["lost"] > 0 else "")


def load_table(results):
    header = ["rate (Mbit/s)", "burst", "direction", "TCP", "ours p50 / p90 (ms)", "reference p50 / p90 (ms)"]
    header += ["ours goodput / rate", "reference goodput / rate", "ours: goal met"]
    rows = []
    order = load_keys(LOAD_RATES, ("cubic", "bbr"))
    for key in sorted({k[:4] for k in results}, key=lambda k: order.index(k) if k in order else len(order)):
        rate, burst, direction, cc = key
        o, r = results.get((*key, OURS)), results.get((*key, REF))
        goal = bool(o) and o["p90_ms"] <= LOAD_GOAL_P90_MS and o["goodput"] >= LOAD_GOAL_GOODPUT
        rows.append(
            [rate, "containerd's (2^32-1 bits)" if burst == "containerd" else burst, direction, cc]
            + [load_cell(o), load_cell(r)]
            + [fmt_ratio(o["goodput"]) if o else "n/a", fmt_ratio(r["goodput"]) if r else "n/a", met(goal)]
        )
    return table(header, rows, "rlllrrrrl")


LOAD_TEMPLATE = """{begin}
## Latency under load

Measured in {runs} (`scripts/bench --only load` rewrites this section alone; `--load-rates`
re-measures some rates and keeps the other rows, `--load-rates ''` only rewrites the text).

One direction shaped as containerd asks for a `kubernetes.io/egress-bandwidth` or
`ingress-bandwidth` annotation (`runtimeConfig`, its burst of 2^32 - 1 bits), or with a static
burst of 512 kbit. One iperf3 TCP flow at full speed through it (egress: the pod uploads, through
the ifb's TBF; ingress: the pod downloads, through the host veth's TBF) and, beside it, pings from
the pod to the host every {interval} s during the flow's last {window} s (after its first {skip:.0f} s:
slow start and the bucket's burst are over). The ping's RTT is the time a DNS query, a health check
or an RPC of that pod waits behind the flow. A ping lost counts as infinitely late. Goodput is the
flow's, as the receiver counts it over the same seconds, divided by the rate (about 0.96 is an exact
shaper; above 1, the bucket refilled while the flow stalled and then passed a burst). Goals
(issue 19): p90 at most {goal_ms:.0f} ms and goodput at least {goal_goodput} with the bounded queue.
One run per point on a shared 2-core machine: single figures move with its load.

The TCP column is the flow's congestion control: cubic (Linux's default) or bbr (this
machine's). Behind the reference's queue (25 ms of rate plus the whole bucket) the flow's own
window is the bound, and it differs between runs of the same setup: at 10 Mbit/s with
containerd's burst the reference's p90 read about 0.1 s with cubic, and with bbr either about
25 ms or 1 to 2.3 s. Four parallel cubic flows queued 0.4 to 8 s behind it in every run seen (the
conformance case "ping p90 under 100 ms beside TCP flows" uses those).

{table}
{end}
"""


def load_section(b):
    a = b.args
    runs = sorted({v.get("run", "an earlier run") for v in b.results["load"].values()})
    return LOAD_TEMPLATE.format(
        begin=LOAD_BEGIN,
        end=LOAD_END,
        runs=f"{len(runs)} run(s): " + "; ".join(runs) if runs else "no run",
        interval=PING_INTERVAL,
        window=a.load_window,
        skip=LOAD_SKIP,
        goal_ms=LOAD_GOAL_P90_MS,
        goal_goodput=LOAD_GOAL_GOODPUT,
        table=load_table(b.results["load"]),
    )


def load_results_file(chart_dir):
    return os.path.join(chart_dir, "load.json")


def load_key(text):
    """(rate, burst, direction, congestion control, impl) from its "|"-joined
    form in load.json."""
    rate, burst, direction, cc, impl = text.split("|")
    return int(rate), burst, direction, cc, impl


def load_merge_saved(b, chart_dir):
    """Rows of rates not measured in this run come from the last run's
    figures (re-running only the noisy rates keeps the rest)."""
    path = load_results_file(chart_dir)
    try:
        with open(path) as f:
            saved = {load_key(k): v for k, v in json.load(f).items()}
    except (OSError, ValueError):
        saved = {}
    merged = {k: v for k, v in saved.items() if k[0] not in b.args.load_rates or k[3] not in b.args.load_cc}
    merged.update(b.results["load"])
    b.results["load"] = merged
    with open(path, "w") as f:
        json.dump({"|".join(str(x) for x in k): v for k, v in merged.items()}, f, indent=1, sort_keys=True)
        f.write("\n")


def write_load_only(b, out_path, chart_dir):
    """Replaces the section in an existing page (inserted before "## Targets"
    when it has none) or writes a page of its own."""
    load_merge_saved(b, chart_dir)
    section = load_section(b)
    try:
        with open(out_path) as f:
            page = f.read()
    except FileNotFoundError:
        page = "# Benchmarks: this project vs the reference plugins\n\n"
    if LOAD_BEGIN in page and LOAD_END in page:
        head, rest = page.split(LOAD_BEGIN, 1)
        page = head + section.rstrip("\n") + rest.split(LOAD_END, 1)[1]
    elif "\n## Targets" in page:
        head, rest = page.split("\n## Targets", 1)
        page = head + "\n" + section + "\n## Targets" + rest
    else:
        page = page.rstrip("\n") + "\n\n" + section
    with open(out_path, "w") as f:
        f.write(page)


# ---- report: figures and tables from code; the prose is in TEMPLATE ---------

TEMPLATE = os.path.join(HERE, "benchmarks.template.md")
PLUGINS, COMMANDS = ("sbr", "bandwidth"), ("ADD", "CHECK", "DEL")
# Targets of issue 14 for this machine class: ours / reference, whole process.
TARGET = {
    ("sbr", "ADD"): 0.30,
    ("sbr", "CHECK"): 0.30,
    ("sbr", "DEL"): 0.30,
    ("bandwidth", "ADD"): 0.40,
    ("bandwidth", "CHECK"): 0.30,
    ("bandwidth", "DEL"): 1.05,
}
# Peak RSS may not grow: the glibc static-pie build's figures before musl
# (docs/benchmarks.md at commit fdf55eb), MiB.
RSS_BEFORE_MIB = {"sbr": 1.9, "bandwidth": 2.0}


def fmt_ms(ns):
    return "n/a" if ns != ns else f"{ms(ns):.2f}"


def ratio(a, b):
    return float("nan") if not (a == a and b == b and b) else a / b


def fmt_ratio(x):
    return "n/a" if x != x else f"{x:.2f}"


def met(ok):
    return "yes" if ok else "**no**"


def table(header, rows, align):
    """A Markdown table; align is one of "l"/"r" per column."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {
        "load": loadavg(),
        "kernel": platform.release(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "commit": (commit or "unknown") + (" (with uncommitted changes)" if dirty else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def loadavg():
    """The 1-minute load average: a busy machine moves every figure."""
    try:
        return open("/proc/loadavg").read().split()[0]
    except (OSError, IndexError):
        return "unknown"


def repo_path(path):
    """A path inside the repository relative to it (the page must not record
    where this machine keeps its checkout); any other path as given."""
    rel = os.path.relpath(os.path.abspath(path), ROOT)
    return path if rel.startswith("..") else rel


def floor_ns(res, plugin, cmd):
    """The least this command can take here: a static musl no-op's spawn (exec and
    musl's start-up), plus the kernel's own work where the bench measures it."""
    f = res["floor_ns"].get("musl", float("nan"))
    if plugin == "bandwidth" and cmd in res.get("kernel_ns", {}):
        f += res["kernel_ns"][cmd]
    return f


def latency_rows(b):
    """One dict per plugin and command with every figure the tables need."""
    res, rows = b.results, []
    for plugin in PLUGINS:
        for cmd in COMMANDS:
            lat = {impl: res["latency"][(plugin, cmd, impl)] for impl in b.impls}
            o, r = lat[OURS]["median_ns"], lat[REF]["median_ns"]
            fl = floor_ns(res, plugin, cmd)
            failed = {impl: f"{v['ok']}/{v['n']}" for impl, v in lat.items() if v["ok"] < v["n"]}
            rows.append(
                {
                    "plugin": plugin,
                    "cmd": cmd,
                    "ns": {impl: v["median_ns"] for impl, v in lat.items()},
                    "ratio": ratio(o, r),
                    "target": TARGET[(plugin, cmd)],
                    "floor": fl,
                    "floor_ratio": ratio(fl, r),
                    "failed": failed,
                }
            )
    return rows


def latency_table(b, rows):
    also = b.impls[2:]
    header = ["plugin", "command", "ours (ms)", "reference (ms)", "ours / reference", "target", "met"]
    header += ["floor (ms)", "floor / reference"]
    for label in also:
        header += [f"{label} build (ms)", f"ours / {label}"]
    out = []
    for x in rows:
        note = ""
        if x["failed"]:
            note = " (succeeded: " + ", ".join(f"{k} {v}" for k, v in x["failed"].items()) + ")"
        row = [x["plugin"], x["cmd"] + note, fmt_ms(x["ns"][OURS]), fmt_ms(x["ns"][REF]), fmt_ratio(x["ratio"])]
        row += [f"<= {x['target']:.2f}", met(x["ratio"] <= x["target"]), fmt_ms(x["floor"]), fmt_ratio(x["floor_ratio"])]
        for label in also:
            row += [fmt_ms(x["ns"][label]), fmt_ratio(ratio(x["ns"][OURS], x["ns"][label]))]
        out.append(row)
    return table(header, out, "llrrrrlrr" + "rr" * len(also))


def floors_table(b):
    res = b.results
    fl, kernel = res["floor_ns"], res.get("kernel_ns", {})
    nan = float("nan")
    rows = [
        ["spawn of `/bin/true` (dynamically linked, Debian's coreutils)", fmt_ms(res["spawn_ns"])],
        ["static program without a C library (exec and exit only)", fmt_ms(fl.get("none", nan))],
        ["static C program returning 0, musl (**the process floor of our binaries**)", fmt_ms(fl.get("musl", nan))],
        ["static C program returning 0, glibc", fmt_ms(fl.get("glibc", nan))],
    ]
    for impl in b.impls:
        rows.append([f"sbr VERSION (no kernel work), {impl}", fmt_ms(res["version_ns"][impl])])
    rows.append(["kernel's work of bandwidth ADD, from this process", fmt_ms(kernel.get("ADD", nan))])
    rows.append(["kernel's work of bandwidth DEL, from this process", fmt_ms(kernel.get("DEL", nan))])
    return table(["what", "median (ms)"], rows, "lr")


def memory_table(b):
    res, also = b.results, b.impls[2:]
    header = ["plugin", "peak RSS ours (MiB)", "before musl (target)", "met", "peak RSS reference (MiB)"]
    header += [f"peak RSS {label} (MiB)" for label in also]
    header += ["binary ours (MiB)", "binary reference (MiB)"] + [f"binary {label} (MiB)" for label in also]
    rows = []
    for plugin in PLUGINS:
        rss = {impl: max(res["rss_kb"][(plugin, c, impl)] for c in COMMANDS) / 1024 for impl in b.impls}
        size = {impl: res["size"][(impl, plugin)] / 2**20 for impl in b.impls}
        ours = round(rss[OURS], 1)
        row = [plugin, f"{ours:.1f}", f"<= {RSS_BEFORE_MIB[plugin]:.1f}", met(ours <= RSS_BEFORE_MIB[plugin])]
        row += [f"{rss[REF]:.1f}"] + [f"{rss[label]:.1f}" for label in also]
        row += [f"{size[OURS]:.2f}", f"{size[REF]:.2f}"] + [f"{size[label]:.2f}" for label in also]
        rows.append(row)
    return table(header, rows, "lrrlr" + "r" * len(also) + "rr" + "r" * len(also))


def scaling_table(b):
    rows = []
    for (plugin, n), v in b.results["scaling"].items():
        what = (
            f"bandwidth ADD, {n} other veths in the host namespace"
            if plugin == "bandwidth"
            else f"sbr ADD, {n} interface{'s' if n > 1 else ''} in the container"
        )
        rows.append([what, fmt_ms(v[OURS]), fmt_ms(v[REF]), fmt_ratio(ratio(v[OURS], v[REF]))])
    return table(["scenario", "ours (ms)", "reference (ms)", "ours / reference"], rows, "lrrr")


def accuracy_table(b):
    acc, rows = b.results["accuracy"], []
    for rate in b.args.rates:
        for d in ("egress", "ingress"):
            o, r = acc.get((rate, d, OURS), float("nan")), acc.get((rate, d, REF), float("nan"))
            rows.append([rate, d, fmt_ratio(o), fmt_ratio(r)])
    return table(["rate (Mbit/s)", "direction", "ours", "reference"], rows, "rlrr")


def targets(b, rows):
    """(text, met) per target, for the page's list and the log."""
    out = []
    for x in rows:
        out.append(
            (
                f"{x['plugin']} {x['cmd']} at most {x['target']:.2f} of the reference's time: "
                f"{fmt_ratio(x['ratio'])} (floor {fmt_ratio(x['floor_ratio'])})",
                x["ratio"] <= x["target"],
            )
        )
    res = b.results
    rss = {p: round(max(res["rss_kb"][(p, c, OURS)] for c in COMMANDS) / 1024, 1) for p in PLUGINS}
    out.append(
        (
            "peak RSS not above the glibc build's before musl ("
            + ", ".join(f"{p} {rss[p]:.1f} <= {RSS_BEFORE_MIB[p]:.1f} MiB" for p in PLUGINS)
            + ")",
            all(rss[p] <= RSS_BEFORE_MIB[p] for p in PLUGINS),
        )
    )
    acc = res["accuracy"]
    out.append(
        (
            f"accuracy at least the reference's: as close to an exact shaper ({EXACT}) within 0.02",
            all(
                abs(acc.get((rate, d, OURS), 0) - EXACT) <= abs(acc.get((rate, d, REF), 0) - EXACT) + 0.02
                for rate in b.args.rates
                for d in ("egress", "ingress")
            ),
        )
    )
    load = {k: v for k, v in res.get("load", {}).items() if k[4] == OURS}
    out.append(
        (
            f"latency under load: ours p90 at most {LOAD_GOAL_P90_MS:.0f} ms and goodput at least "
            f"{LOAD_GOAL_GOODPUT} of the rate at every point (issue 19)",
            bool(load)
            and all(v["p90_ms"] <= LOAD_GOAL_P90_MS and v["goodput"] >= LOAD_GOAL_GOODPUT for v in load.values()),
        )
    )
    return out


def failures_list(b):
    seen, out = set(), []
    for impl, what, detail in b.failures:
        if (impl, what) in seen:
            continue
        seen.add((impl, what))
        n = sum(1 for f in b.failures if f[:2] == (impl, what))
        out.append(f"- {impl}, {what} ({n}x): `{detail}`")
    return "\n".join(out)


def write_charts(b, rows, chart_dir):
    res, impls = b.results, b.impls
    colours = {OURS: GREEN, REF: GREY}
    cats = [f"{x['plugin']} {x['cmd']}" for x in rows] + ["sbr VERSION"]
    series = [
        (impl, colours.get(impl, BLUE), [ms(x["ns"][impl]) for x in rows] + [ms(res["version_ns"][impl])])
        for impl in impls
    ]
    series.append(("floor", LIGHT, [ms(x["floor"]) for x in rows] + [ms(res["floor_ns"].get("musl", float("nan")))]))
    svgchart.write_bars(
        os.path.join(chart_dir, "latency.svg"),
        "Median whole-process time per command (ms, lower is better)",
        cats,
        series,
        value_fmt="{:.2f}",
    )
    srows = [
        (f"bandwidth, {n} veths" if plugin == "bandwidth" else f"sbr, {n} ifaces", v)
        for (plugin, n), v in res["scaling"].items()
    ]
    svgchart.write_bars(
        os.path.join(chart_dir, "scaling.svg"),
        "Median ADD time as the namespaces grow (ms, lower is better)",
        [label for label, _ in srows],
        [(impl, colours[impl], [ms(v[impl]) for _, v in srows]) for impl in (OURS, REF)],
        value_fmt="{:.2f}",
    )
    acc = res["accuracy"]
    arows = [(rate, d) for rate in b.args.rates for d in ("egress", "ingress")]
    svgchart.write_bars(
        os.path.join(chart_dir, "accuracy.svg"),
        "Goodput / configured rate (axis from 0.8; dashed: the configured rate)",
        [f"{rate} Mbit/s {d}" for rate, d in arows],
        [(impl, colours[impl], [acc.get((rate, d, impl), float("nan")) for rate, d in arows]) for impl in (OURS, REF)],
        value_fmt="{:.3f}",
        marker=1.0,
        vmin=0.8,
    )


def render(text, values, flags):
    """The template with `${name}` filled in, blocks between `<!-- if NAME -->`
    and `<!-- end NAME -->` kept only when flags[NAME], `<!--# ... -->` notes
    to the template's editors dropped."""
    text = re.sub(r"<!--#.*?-->\n", "", text, flags=re.S)
    text = re.sub(
        r"<!-- if (\w+) -->\n(.*?)<!-- end \1 -->\n",
        lambda m: m.group(2) if flags.get(m.group(1)) else "",
        text,
        flags=re.S,
    )
    return string.Template(text).substitute(values)


def report(b, out_path, chart_dir):
    a, res = b.args, b.results
    m = machine()
    m["load_start"] = b.load_start
    rows = latency_rows(b)
    write_charts(b, rows, chart_dir)
    load_merge_saved(b, chart_dir)
    fl, kernel, nan = res["floor_ns"], res.get("kernel_ns", {}), float("nan")
    by = {(x["plugin"], x["cmd"]): x for x in rows}
    bw = [v for (p, _), v in res["scaling"].items() if p == "bandwidth"]
    growth = {impl: ratio(bw[-1][impl], bw[0][impl]) for impl in (OURS, REF)} if len(bw) >= 2 else {}
    goals = targets(b, rows)
    values = {
        "quick_flag": " --quick" if a.quick else "",
        "date": m["date"],
        "cpu": m["cpu"],
        "cores": m["cores"],
        "kernel": m["kernel"],
        "commit": m["commit"],
        "load_start": m["load_start"],
        "load_end": m["load"],
        "ours_dir": repo_path(a.ours),
        "ours_kind": res["kind"][OURS],
        "ref_dir": repo_path(a.reference),
        "ref_kind": res["kind"][REF],
        "also_list": ", ".join(f"{label}: `{repo_path(d)}` ({res['kind'][label]})" for label, d in a.also.items()),
        "repeats": a.repeats,
        "scale_repeats": a.scale_repeats,
        "accuracy_repeats": a.accuracy_repeats,
        "seconds": a.seconds,
        "charts": os.path.relpath(chart_dir, os.path.dirname(os.path.abspath(out_path))),
        "latency_table": latency_table(b, rows),
        "floors_table": floors_table(b),
        "spawn_ms": fmt_ms(res["spawn_ns"]),
        "none_ms": fmt_ms(fl.get("none", nan)),
        "musl_ms": fmt_ms(fl.get("musl", nan)),
        "glibc_ms": fmt_ms(fl.get("glibc", nan)),
        "musl_start_ms": fmt_ms(fl.get("musl", nan) - fl.get("none", nan)),
        "glibc_start_ms": fmt_ms(fl.get("glibc", nan) - fl.get("none", nan)),
        "libc_gap_of_ref_check": fmt_ratio(
            ratio(fl.get("glibc", nan) - fl.get("musl", nan), res["latency"][("sbr", "CHECK", REF)]["median_ns"])
        ),
        "kernel_add_ms": fmt_ms(kernel.get("ADD", nan)),
        "kernel_del_ms": fmt_ms(kernel.get("DEL", nan)),
        "bw_add_floor_ratio": fmt_ratio(by[("bandwidth", "ADD")]["floor_ratio"]),
        "bw_del_floor_ratio": fmt_ratio(by[("bandwidth", "DEL")]["floor_ratio"]),
        "memory_table": memory_table(b),
        "rss_true_mib": f"{res['rss_true_kb'] / 1024:.1f}",
        "scaling_table": scaling_table(b),
        "veths_first": a.veths[0],
        "veths_last": a.veths[-1],
        "growth_ours": fmt_ratio(growth.get(OURS, nan)),
        "growth_ref": fmt_ratio(growth.get(REF, nan)),
        "accuracy_table": accuracy_table(b),
        "targets_list": "\n".join(f"- {text}: {'met' if ok else '**not met**'}" for text, ok in goals),
        "failures_list": failures_list(b),
        "load_section": load_section(b),
    }
    flags = {"quick": a.quick, "also": bool(a.also), "failures": bool(b.failures)}
    with open(TEMPLATE) as f:
        page = render(f.read(), values, flags)
    with open(out_path, "w") as f:
        f.write(page)
    return [f"{text}: {'met' if ok else 'not met'}" for text, ok in goals]


def also_dir(text):
    label, sep, d = text.partition("=")
    if not sep or not label or not d:
        raise argparse.ArgumentTypeError(f"expected LABEL=DIR, got {text!r}")
    return label, d


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ours", required=True)
    p.add_argument("--reference", default="/usr/lib/cni")
    p.add_argument("--also", type=also_dir, action="append", default=[], metavar="LABEL=DIR",
                   help="another build of ours, timed A/B in the same latency rounds (e.g. glibc=DIR)")
    p.add_argument("--out", required=True)
    p.add_argument("--charts", required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=["load"], help="run only this section and rewrite only it in --out")
    p.add_argument("--load-rates", type=lambda t: [int(x) for x in t.split(",") if x], default=list(LOAD_RATES),
                   metavar="MBIT,...", help="rates of the latency-under-load table to measure (the others "
                   "keep their last figures, from CHARTS/load.json)")
    p.add_argument("--load-cc", type=lambda t: t.split(","), default=None, metavar="CC,...",
                   help="TCP congestion controls of the flow (default cubic,bbr; with --quick cubic)")
    a = p.parse_args()
    a.also = dict(a.also)
    a.load_window = 3 if a.quick else 6
    if a.load_cc is None:
        a.load_cc = ["cubic"] if a.quick else list(LOAD_CCS)
    if a.quick:
        a.repeats, a.scale_repeats, a.accuracy_repeats, a.seconds = 5, 3, 1, 2
        a.veths, a.ifaces = [10, 200], [1, 10]
    else:
        a.repeats, a.scale_repeats, a.accuracy_repeats, a.seconds = 31, 11, 5, 3
        a.veths, a.ifaces = [10, 1000, 4000], [1, 50]
    a.rates = [10, 100, 1000]
    for d in [a.ours, a.reference, *a.also.values()]:
        for plugin in ("sbr", "bandwidth"):
            if not os.access(os.path.join(d, plugin), os.X_OK):
                sys.exit(f"bench: no executable {os.path.join(d, plugin)}")
    os.makedirs(a.charts, exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    b = Bench(a)
    t0 = time.monotonic()
    try:
        b.run()
    finally:
        b.cleanup()
    if a.only == "load":
        write_load_only(b, a.out, a.charts)
        log(f"wrote the latency-under-load section of {a.out} ({time.monotonic() - t0:.0f}s)")
        sys.exit(1 if any(f[0] == OURS for f in b.failures) else 0)
    for line in report(b, a.out, a.charts):
        log(line)
    log(f"wrote {a.out} and charts in {a.charts} ({time.monotonic() - t0:.0f}s)")
    ours_failed = [f for f in b.failures if f[0] == OURS]
    if ours_failed:
        log(f"{len(ours_failed)} invocation(s) of our plugins failed; see the page")
        sys.exit(1)


if __name__ == "__main__":
    main()
