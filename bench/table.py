"""The printed report: the table of medians and ratios, and the notes under it."""

from __future__ import annotations

import os
import platform
import subprocess

from bench import clientbench, http_rows, report, scenarios, servers, slowdrip, stats
from bench.config import Sizes
from bench.runs import PEERHUB, PEERJS, Results, Run

# --- the table ----------------------------------------------------------------------


def rows(run: Run) -> list[report.Row]:
    """The table rows, peerhub first, peerjs-server second, then their ratio."""
    hub, ref = run.results[PEERHUB], run.results[PEERJS]
    sizes = run.sizes
    out = [
        rate_row(f"connections opened per second (to OPEN; {sizes.connect_peers:,}, "
                 f"{sizes.connect_concurrency} in flight)",
                 [s.rate for s in hub.connects], [s.rate for s in ref.connects]),
        rate_row(f"relayed messages per second, burst ({sizes.burst_peers} peers x "
                 f"{sizes.burst_messages} to a neighbour)",
                 [s.rate for s in hub.bursts], [s.rate for s in ref.bursts]),
        lost_row(hub, ref),
        rate_row("relays per server CPU-second in the burst",
                 [sizes.burst_total / s.server_cpu for s in hub.bursts if s.server_cpu > 0],
                 [sizes.burst_total / s.server_cpu for s in ref.bursts if s.server_cpu > 0]),
        ms_row(f"relay latency p50 at {sizes.latency_rate:,} msg/s, ms (lower is better)",
               [s.p50_ms for s in hub.latencies], [s.p50_ms for s in ref.latencies]),
        ms_row(f"relay latency p99 at {sizes.latency_rate:,} msg/s, ms (lower is better)",
               [s.p99_ms for s in hub.latencies], [s.p99_ms for s in ref.latencies]),
    ]
    out[1:1] = http_rows.table_rows(run.http, PEERHUB, PEERJS)
    out += capacity_rows(hub.capacity, ref.capacity, sizes)
    out.append(cluster_row(run.cluster, stats.median([s.rate for s in hub.bursts])))
    out += slowdrip.rows(hub.slowdrip, ref.slowdrip)
    out += admission_rows(run.cluster, hub.connects,
                          stats.median([s.server_cpu for s in hub.bursts]), sizes)
    return out


def cpu_per_connection(samples: list[scenarios.ConnectSample], node: int | None = None
                       ) -> float:
    """Median server CPU seconds per connection opened (all servers, or server ``node``)."""
    return stats.median([(s.server_cpu if node is None else s.node_cpu[node]) / s.opened
                         for s in samples if s.opened])


def admission_rows(cluster: scenarios.ClusterResult | None,
                   single: list[scenarios.ConnectSample], single_burst_cpu: float,
                   sizes: Sizes) -> list[report.Row]:
    """The cluster's admission rows (bench.cluster): rate and CPU per connection, crowd,
    reload, Redis cost."""
    adm = None if cluster is None else cluster.admission
    if adm is None:
        return []
    single_connects = stats.median([s.rate for s in single])
    cpu_single, cpu_both = cpu_per_connection(single), cpu_per_connection(adm.connects)
    cpu_nodes = [cpu_per_connection(adm.connects, n) * 1e6 for n in range(2)]
    crowd, ref = adm.crowd, adm.reference_crowd
    nan = float("nan")

    def secs(c: object, name: str) -> float:
        return float(getattr(c, name)) if c is not None else nan

    fails = f", {adm.connect_failures} failed" if adm.connect_failures else ""
    out = [
        report.Row(f"  cluster connections/s to OPEN ({sizes.connect_peers:,} over 2 nodes, "
                   f"{sizes.connect_concurrency} in flight; ratio: vs peerhub single node)",
                   report.count(adm.connect_rate) + fails, "—",
                   report.times(stats.ratio(adm.connect_rate, single_connects))),
        report.Row("  server CPU per connection to OPEN, us: both nodes (node a + node b) "
                   "(ratio: vs peerhub single node; lower is better)",
                   f"{cpu_both * 1e6:.0f} ({cpu_nodes[0]:.0f} + {cpu_nodes[1]:.0f})", "—",
                   report.times(stats.ratio(cpu_both, cpu_single))),
    ]
    for label, name in (("1,000 peers at once", "admit_s"),
                        ("their reload (new tokens, other node)", "reload_s")):
        a, b = secs(crowd, name), secs(ref, name)
        out.append(report.Row(f"  {label}: seconds until all OPEN (cluster vs peerjs-server "
                              "single process; lower is better)",
                              report.decimal(a, 2), report.decimal(b, 2),
                              report.times(stats.ratio(a, b))))
    refused = (crowd.refused if crowd else 0, ref.refused if ref else 0)
    retries = (crowd.retries if crowd else 0, ref.retries if ref else 0)
    out.append(report.Row("  crowd peers never admitted (0 expected) / reload ID-TAKEN retries",
                          f"{refused[0]} / {retries[0]}", f"{refused[1]} / {retries[1]}", "—"))
    out.append(report.Row("  Redis commands per admitted peer (join + leave; EVALSHA calls)",
                          f"{report.decimal(adm.commands_per_peer, 1)} "
                          f"({report.decimal(adm.scripts_per_peer, 2)})", "—", "—"))
    out.append(report.Row("  Redis commands per cross-node message (PUBLISH per message)",
                          f"{report.decimal(adm.commands_per_message, 2)} "
                          f"({report.decimal(adm.publishes_per_message, 3)})", "—", "—"))
    assert cluster is not None  # (it has admission figures)
    out.append(cluster_cpu_row(cluster, single_burst_cpu, sizes))
    return out


def cluster_cpu_row(cluster: scenarios.ClusterResult, single_cpu: float,
                    sizes: Sizes) -> report.Row:
    """Server CPU per burst of cross-node relays: both nodes (median per burst), Redis
    (over all bursts), against the single node's per burst."""
    assert cluster.admission is not None
    nodes = stats.median([s.server_cpu for s in cluster.samples]) * 1000
    redis = cluster.admission.redis_cpu_per_message * sizes.burst_total * 1000
    return report.Row(f"  server CPU per {sizes.burst_total:,} cross-node relays, ms: both "
                      "nodes + Redis (ratio: vs peerhub single node; lower is better)",
                      f"{nodes:.0f} + {redis:.1f}", "—",
                      report.times(stats.ratio(nodes + redis, single_cpu * 1000)))


def rate_row(metric: str, hub: list[float], ref: list[float]) -> report.Row:
    """A higher-is-better rate row from repetitions (medians)."""
    a, b = stats.median(hub), stats.median(ref)
    return report.Row(metric, report.count(a), report.count(b), report.times(stats.ratio(a, b)))


def ms_row(metric: str, hub: list[float], ref: list[float]) -> report.Row:
    """A latency row in milliseconds (medians of repetitions)."""
    a, b = stats.median(hub), stats.median(ref)
    return report.Row(metric, report.decimal(a), report.decimal(b),
                      report.times(stats.ratio(a, b)))


def lost_row(hub: Results, ref: Results) -> report.Row:
    """Messages that never arrived, over all measured bursts."""
    a, b = sum(s.lost for s in hub.bursts), sum(s.lost for s in ref.bursts)
    sent = sum(s.sent for s in hub.bursts)
    return report.Row(f"  messages lost in those bursts (of {sent:,} sent to each; 0 expected)",
                      str(a) if hub.bursts else report.NA,
                      str(b) if ref.bursts else report.NA, "—")


def capacity_rows(hub: scenarios.CapacityResult | None, ref: scenarios.CapacityResult | None,
                  sizes: Sizes) -> list[report.Row]:
    """CPU, CPU per peer, memory per peer, and the most peers held."""
    nan = float("nan")
    cpu_a, cpu_b = (hub.cpu_share if hub else nan), (ref.cpu_share if ref else nan)
    per_a, per_b = cpu_a * 1e6 / sizes.cpu_peers, cpu_b * 1e6 / sizes.cpu_peers
    mem_a = (hub.rss_per_peer / 1024) if hub else nan
    mem_b = (ref.rss_per_peer / 1024) if ref else nan
    max_a, max_b = (float(hub.max_ok) if hub else nan), (float(ref.max_ok) if ref else nan)
    n = f"{sizes.cpu_peers:,}"
    steps = ", ".join(f"{s:,}" for s in sizes.capacity_steps)
    return [
        report.Row(f"CPU with {n} peers heartbeating every {sizes.heartbeat_interval:g} s, "
                   "% of a core (lower is better)",
                   report.percent(cpu_a), report.percent(cpu_b),
                   report.times(stats.ratio(cpu_a, cpu_b))),
        report.Row("  CPU per peer, microseconds per second (lower is better)",
                   report.decimal(per_a, 1), report.decimal(per_b, 1),
                   report.times(stats.ratio(per_a, per_b))),
        report.Row(f"memory per peer at {n} peers, KB of RSS growth (lower is better)",
                   report.decimal(mem_a, 1), report.decimal(mem_b, 1),
                   report.times(stats.ratio(mem_a, mem_b))),
        report.Row(f"most heartbeating peers one node held without errors (tried {steps})",
                   report.count(max_a), report.count(max_b),
                   report.times(stats.ratio(max_a, max_b))),
    ]


def cluster_row(cluster: scenarios.ClusterResult | None, single_rate: float) -> report.Row:
    """Cross-node relay rate; its ratio is against peerhub's single-node burst rate."""
    metric = "cross-node relays/s, 2-node cluster on Redis (ratio: vs peerhub single node)"
    if cluster is None:
        return report.Row(metric, "not run", "—", "—")
    if not cluster.available:
        return report.Row(metric, f"n/a ({cluster.reason})", "—", "—")
    lost = f", lost {cluster.lost}" if cluster.lost else ""
    return report.Row(metric, report.count(cluster.rate) + lost, "—",
                      report.times(stats.ratio(cluster.rate, single_rate)))


def generator_check(run: Run) -> list[str]:
    """Lines showing the load generator was not the bottleneck."""
    lines = []
    for name in (PEERHUB, PEERJS):
        res = run.results[name]
        if res.bursts:
            srv = stats.median([s.server_cpu for s in res.bursts])
            gen = stats.median([s.generator_cpu for s in res.bursts])
            lines.append(f"- burst against {name}: server {srv * 1000:.0f} ms CPU, generator "
                         f"{gen * 1000:.0f} ms CPU per {run.sizes.burst_total:,} relays "
                         f"(median per burst)")
        if res.connects:
            srv = stats.median([s.server_cpu / max(1, s.opened) for s in res.connects])
            gen = stats.median([s.generator_cpu / max(1, s.opened) for s in res.connects])
            lines.append(f"- connections to {name}: server {srv * 1e6:.0f} us CPU, generator "
                         f"{gen * 1e6:.0f} us CPU per connection")
    return lines


# --- environment --------------------------------------------------------------------


def machine(event_loop: str) -> list[str]:
    """Lines describing this machine and the code under test."""
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    return [
        f"- machine: nproc {len(os.sched_getaffinity(0))}, CPU {model}, "
        f"Linux {platform.release()}",
        f"- python {platform.python_version()}, node {tool_version([servers.node_binary(), '--version'])}, "
        f"peerhub commit {tool_version(['git', 'rev-parse', '--short', 'HEAD'])}",
        f"- load average at the start: {load}; load generator event loop: {event_loop}",
    ]


def tool_version(argv: list[str]) -> str:
    """First line of a command's output, or 'unknown'."""
    try:
        done = subprocess.run(argv, cwd=servers.ROOT, capture_output=True, text=True,
                              timeout=10, check=False)
    except OSError:
        return "unknown"
    return (done.stdout.strip().splitlines() or ["unknown"])[0]


def print_report(run: Run, header: list[str], seconds: float) -> None:
    """Print the table and the notes under it."""
    headers = ["metric (median of repetitions)", PEERHUB, f"{PEERJS} 1.0.2", "peerhub / peerjs"]
    if run.client is None or run.cluster or any(r != Results() for r in run.results.values()):
        print()
        print(report.markdown_table(headers, rows(run)))
    if run.client is not None:
        print("\nThe Python client's data channels (client phase):\n")
        print(clientbench.table(run.client))
    print()
    print("\n".join(header))
    print(f"- wall time of this run: {seconds:.0f} s")
    for name in (PEERHUB, PEERJS):
        cap = run.results[name].capacity
        if cap is not None and cap.failure:
            print(f"- {name} stopped stepping up at {cap.failure}")
    for name in (PEERHUB, PEERJS):
        lost = sum(s.sent - s.received for s in run.results[name].latencies)
        if lost:
            print(f"- {name} lost {lost} messages in the latency runs")
    for error in run.errors:
        print(f"- ERROR: {error}")
    check = generator_check(run)
    if check:
        print("\nLoad generator check (one process; it must cost less than the server):")
        print("\n".join(check))
    if run.profile_summary:
        print(f"\npy-spy profiles of peerhub ({run.profile_dir}):")
        print(run.profile_summary)


