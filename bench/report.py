#!/usr/bin/env python3
"""Markdown tables from bench/run.sh's raw numbers (one "target<TAB>metric<TAB>value" a line).

    report.py RESULTS.tsv "TARGETS" "THREAD_TARGETS" "CHAIN_TARGETS" ["FLOOR_TARGETS"]

Metrics named *_count are summed over rounds, all others are medians over rounds.
BENCH_DOWNLOAD_MIB, BENCH_TUNNELS and BENCH_BURST_WAIT (environment) name the sizes in labels.
"""
import collections
import os
import statistics
import sys

rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    target, metric, value = line.rstrip("\n").split("\t")
    rows[(target, metric)].append(float(value))
targets = sys.argv[2].split()
thread_targets = sys.argv[3].split() if len(sys.argv) > 3 else []
chain_targets = sys.argv[4].split() if len(sys.argv) > 4 else []
floor_targets = sys.argv[5].split() if len(sys.argv) > 5 else []
agg = {k: (sum(v) if k[1].endswith("_count") else statistics.median(v)) for k, v in rows.items()}
download = os.environ.get("BENCH_DOWNLOAD_MIB", "100")
tunnels = int(os.environ.get("BENCH_TUNNELS", "2000"))
wait = os.environ.get("BENCH_BURST_WAIT", "10")

INT, MS, MIB = "{:,.0f}", "{:.2f}", "{:.1f}"
metrics = [  # key, label, format
    ("ka_1k_rps", "keep-alive GET 1 KiB, req/s", INT),
    ("ka_1k_p50_ms", "keep-alive GET 1 KiB, p50 ms", MS),
    ("ka_1k_p99_ms", "keep-alive GET 1 KiB, p99 ms", MS),
    ("ka_1k_cpu_us_per_req", "keep-alive GET 1 KiB, proxy CPU µs per request", MIB),
    ("close_1k_rps", "Connection: close GET 1 KiB, req/s", INT),
    ("ka_1m_rps", "keep-alive GET 1 MiB, GETs/s", INT),
    ("connect_100m_mibps", "CONNECT %s MiB over TLS, MiB/s" % download, INT),
    ("cpu_s_per_gib", "proxy CPU s per GiB relayed (CONNECT download)", MS),
    ("client_cpu_s_per_100m", "client (curl) CPU s per 100 MiB (CONNECT download)", "{:.3f}"),
    ("tls_setups_per_s", "CONNECT + TLS setups/s", INT),
    ("tls_cpu_us_per_tunnel", "CONNECT + TLS setups, proxy CPU µs per tunnel", INT),
    ("idle_rss_mib", "idle RSS, MiB", MIB),
    ("peak_rss_mib", "peak RSS (VmHWM), MiB", MIB),
    ("tunnel_kib", "KiB per idle tunnel (%d CONNECT + TLS tunnels)" % tunnels, MIB),
    ("tunnel_rest_mib", "RSS before the tunnels (fresh process), MiB", MIB),
    ("tunnel_held_mib", "RSS with %d idle tunnels, MiB" % tunnels, MIB),
    ("tunnel_after_mib", "RSS %s s after the burst closed, MiB" % wait, MIB),
    ("tunnel_after_ratio", "RSS %s s after the burst / before it" % wait, "{:.2f}x"),
]
chain_metrics = [
    ("ka_1k_rps", "keep-alive GET 1 KiB, req/s", INT),
    ("ka_1k_p50_ms", "keep-alive GET 1 KiB, p50 ms", MS),
    ("ka_1k_p99_ms", "keep-alive GET 1 KiB, p99 ms", MS),
    ("ka_1k_cpu_us_per_req", "keep-alive GET 1 KiB, proxy CPU µs per request", MIB),
    ("tls_setups_per_s", "CONNECT + TLS setups/s", INT),
    ("tls_cpu_us_per_tunnel", "CONNECT + TLS setups, proxy CPU µs per tunnel", INT),
    ("idle_rss_mib", "idle RSS, MiB", MIB),
    ("peak_rss_mib", "peak RSS (VmHWM), MiB", MIB),
    ("sent_count", "requests + tunnels sent (all rounds)", INT),
    ("squid_user_count", "of them logged by the upstream squid with the user", INT),
    ("squid_407_count", "407 challenges the upstream squid answered (whole run)", INT),
    ("pool_opened", "upstream connections opened (waypost_pool_opened_total)", INT),
    ("auth_handshakes", "waypost_auth_handshakes_total (authenticated)", INT),
    ("auth_reused", "waypost_auth_connections_reused_total", INT),
    ("pool_idle_conns", "idle pooled connections after the pool probe", INT),
    ("pool_idle_kib", "KiB per idle pooled connection (approx.)", MIB),
]
CHAIN_LABEL = {
    "chain_squid": "squid -> squid",
    "chain_waypost": "waypost -> squid",
    "chain_baseline": "baseline -> squid",
    "chain_pac": "waypost+pac -> squid",
    "chain_px": "px -> squid",
    "chain_cntlm": "cntlm -> squid",
    "chain_floor": "relay floor -> squid",
}
FLOOR_LABEL = {"floor_relay": "TCP relay floor", "floor_hyper": "hyper floor"}


def ratio(a, b):
    if a is None or b in (None, 0):
        return "n/a"
    return "{:.0%}".format(a / b) if a / b < 10 else "{:.1f}x".format(a / b)


def cell(fmt, v):
    return fmt.format(v) if v is not None else "-"


def table(head, lines):
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cells in lines:
        print("| " + " | ".join(cells) + " |")


def errors_line(ts, label=lambda t: t):
    errs = {t: sum(v for (tt, m), vs in rows.items() if tt == t and m.endswith("_errors") for v in vs) for t in ts}
    return "Socket errors + non-2xx answers during the wrk runs: " + ", ".join(
        "%s %d" % (label(t), errs[t]) for t in ts) + "."


# ---- table 1: side by side -------------------------------------------------------
head = ["metric"] + targets
show_ratios = "waypost" in targets
if show_ratios:
    head += ["waypost / direct", "waypost / squid"]
if "baseline" in targets:
    head += ["waypost / baseline"]
lines = []


def add_row(label, fmt, vals):
    cells = [label] + [cell(fmt, vals.get(t)) for t in targets]
    if show_ratios:
        cells += [ratio(vals.get("waypost"), vals.get("direct")), ratio(vals.get("waypost"), vals.get("squid"))]
    if "baseline" in targets:
        cells += [ratio(vals.get("waypost"), vals.get("baseline"))]
    lines.append(cells)


for key, label, fmt in metrics:
    vals = {t: agg.get((t, key)) for t in targets}
    if all(v is None for v in vals.values()):
        continue
    add_row(label, fmt, vals)
    if key == "ka_1k_rps":
        # waypost started with TOKIO_WORKER_THREADS=N, shown in the waypost column
        for tt in thread_targets:
            v = agg.get((tt, "ka_1k_rps"))
            if v is None:
                continue
            n = tt.rsplit("_t", 1)[1]
            # only the waypost cell; its ratios are to the other targets' row above
            cells = ["keep-alive GET 1 KiB, req/s: waypost, %s worker thread%s" % (n, "" if n == "1" else "s")]
            cells += [cell(fmt, v) if t == "waypost" else "" for t in targets]
            if show_ratios:
                cells += [ratio(v, vals.get("direct")), ratio(v, vals.get("squid"))]
            if "baseline" in targets:
                cells += ["n/a"]
            lines.append(cells)
table(head, lines)
print()
print(errors_line(targets + thread_targets))
t1, t2 = agg.get(("waypost_t1", "ka_1k_rps")), agg.get(("waypost_t2", "ka_1k_rps"))
if t1 and t2:
    print()
    print("waypost keep-alive req/s with 2 worker threads / 1: %.2fx (wrk and nginx share the same cores)." % (t2 / t1))
failed = {t: agg.get((t, "tunnels_failed")) for t in targets}
if any(failed.values()):
    print()
    print("Tunnels that failed to open: " + ", ".join(
        "%s %d" % (t, v) for t, v in failed.items() if v) + ".")

# ---- table 2: through an authenticating squid ---------------------------------------
if chain_targets:
    print()
    print("Through an authenticating upstream squid (Basic):")
    print()
    head = ["metric"] + [CHAIN_LABEL.get(t, t) for t in chain_targets]
    pairs = [(t, "chain_squid") for t in ("chain_waypost", "chain_pac") if t in chain_targets]
    if "chain_baseline" in chain_targets and "chain_waypost" in chain_targets:
        pairs.append(("chain_waypost", "chain_baseline"))
    if "chain_floor" in chain_targets:
        pairs.append(("chain_floor", "chain_squid"))
    if "chain_squid" not in chain_targets:
        pairs = []
    head += ["%s / %s" % (CHAIN_LABEL[a], CHAIN_LABEL[b]) for a, b in pairs]
    lines = []
    for key, label, fmt in chain_metrics:
        vals = {t: agg.get((t, key)) for t in chain_targets}
        if all(v is None for v in vals.values()):
            continue
        cells = [label] + [cell(fmt, vals[t]) for t in chain_targets]
        cells += [ratio(vals[a], vals[b]) for a, b in pairs]
        lines.append(cells)
    table(head, lines)
    print()
    print(errors_line(chain_targets, lambda t: CHAIN_LABEL.get(t, t)))
    if "chain_floor" in chain_targets:
        print()
        print("relay floor -> squid: a bare TCP relay as the first hop (bench_floor relay), the client "
              "sending the credentials itself: the most any proxy in front of the squid could reach here.")

# ---- table 3: the floors ------------------------------------------------------------
if floor_targets:
    print()
    print("The floors (testsupport/examples/bench_floor.rs) in front of the same origin:")
    print()
    cols = floor_targets + [t for t in ("waypost", "squid") if t in targets]
    head = ["metric"] + [FLOOR_LABEL.get(t, t) for t in cols]
    lines = []
    for key, label, fmt in metrics[:4]:
        vals = {t: agg.get((t, key)) for t in cols}
        if all(v is None for v in vals.values()):
            continue
        lines.append([label] + [cell(fmt, vals[t]) for t in cols])
    table(head, lines)
    w, h = agg.get(("waypost", "ka_1k_cpu_us_per_req")), agg.get(("floor_hyper", "ka_1k_cpu_us_per_req"))
    if w is not None and h is not None:
        print()
        print("waypost's CPU per keep-alive request above the hyper floor's: %.1f µs (what it does "
              "beyond parsing and forwarding). The floors answer faster, so they also pay less "
              "kernel time per request: compare at the rates shown." % (w - h))
