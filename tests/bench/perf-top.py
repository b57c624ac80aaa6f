#!/usr/bin/env python3
"""perf-top.py - inclusive profile of some threads from `perf script` output.

A developer tool for docs/performance.md (no test runs it). perf report's
--children percentages go past 100% with DWARF stacks through libraries
without symbols; this counts each function once per sample instead.

  perf record --call-graph dwarf,16384 -F 499 -o prov.data build/plain/bench/bench_provision
  perf script -i prov.data -F comm,ip,sym,dso | tests/bench/perf-top.py --comm idprovd/
  perf script -i prov.data -F comm,ip,sym,dso | tests/bench/perf-top.py --comm idprovd/ \\
          --callees device_request

Prints the share of the selected threads' samples (comm starting with
--comm) that each function is on the stack of; with --callees F, what F
calls directly; and always the split into handler (device_request),
TLS (libssl), the group-commit syncer and the rest (the event loop).

By kind of request: run the benchmark with IDP_BENCH_SLICES=1 (it prints
"slice KIND T0 T1 REQUESTS" on stderr, CLOCK_MONOTONIC) under
`perf record -k CLOCK_MONOTONIC`, and give `perf script -F comm,time,ip,sym,dso`;
--slices FILE --kind provision keeps the samples of that kind's slices and
also prints each share as milliseconds of CPU per request (samples at
--freq per second, divided by the slices' requests).
"""
import argparse
import collections
import sys


def samples(stream, prefix, windows=None):
    stack, keep = [], False
    for line in stream:
        line = line.rstrip("\n")
        if not line.strip():
            if keep and stack:
                yield stack
            stack, keep = [], False
        elif not line[0].isspace():
            if keep and stack:
                yield stack
            head = line.split()
            keep = head[0].startswith(prefix)
            if keep and windows is not None:
                t = next((float(w.rstrip(":")) for w in head[1:] if w.endswith(":")), None)
                keep = t is not None and any(a <= t < b for a, b in windows)
            stack = []
        elif keep:
            rest = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
            sym, _, dso = rest.rpartition(" (")
            name = sym.split("+0x")[0]
            dso = dso.rstrip(")").rsplit("/", 1)[-1]
            stack.append(("?" + dso if name == "[unknown]" else name, dso))
    if keep and stack:
        yield stack


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--comm", default="idprovd/", help="thread name prefix")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--callees", help="show what this function calls")
    ap.add_argument("--slices", help="the benchmark's slice lines (IDP_BENCH_SLICES=1)")
    ap.add_argument("--kind", help="with --slices: this kind's slices only")
    ap.add_argument("--freq", type=float, default=499, help="perf record -F")
    a = ap.parse_args()
    windows, requests = None, 0
    if a.slices:
        windows = []
        for line in open(a.slices):
            f = line.split()
            if len(f) == 5 and f[0] == "slice" and f[1] == a.kind:
                windows.append((float(f[2]), float(f[3])))
                requests += int(f[4])
        if not windows:
            sys.exit("perf-top: no slices of kind %s in %s" % (a.kind, a.slices))
    incl, callees, split = collections.Counter(), collections.Counter(), collections.Counter()
    n = 0
    for st in samples(sys.stdin, a.comm, windows):
        n += 1
        names = [f for f, _ in st]
        for f in set(names):
            incl[f] += 1
        if a.callees in names:
            i = names.index(a.callees)
            callees[names[i - 1] if i > 0 else "(self)"] += 1
        if "device_request" in names:
            split["handler (device_request)"] += 1
        elif "sync_run" in names:
            split["group-commit syncer"] += 1
        elif any(d.startswith("libssl") for _, d in st):
            split["TLS (libssl)"] += 1
        else:
            split["event loop, accept, close, other"] += 1
    if n == 0:
        sys.exit("perf-top: no samples of threads named %s*" % a.comm)
    def share(v):
        if requests:
            return "%6.1f%% %6.3f ms" % (100 * v / n, v / a.freq / requests * 1e3)
        return "%6.1f%%" % (100 * v / n)

    print("%d samples of %s* threads" % (n, a.comm) +
          (", %d requests of kind %s" % (requests, a.kind) if requests else ""))
    for k, v in split.most_common():
        print("%s  %s" % (share(v), k))
    print("-- inclusive")
    for k, v in incl.most_common(a.top):
        if not k.startswith("?") and k not in ("start_thread", "clone3"):
            print("%s  %s" % (share(v), k))
    if a.callees:
        print("-- called by %s (%s)" % (a.callees, share(incl[a.callees])))
        for k, v in callees.most_common(a.top):
            print("%s  %s" % (share(v), k))


if __name__ == "__main__":
    main()
