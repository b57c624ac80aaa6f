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
"""
import argparse
import collections
import sys


def samples(stream, prefix):
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
            stack, keep = [], line.split()[0].startswith(prefix)
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
    a = ap.parse_args()
    incl, callees, split = collections.Counter(), collections.Counter(), collections.Counter()
    n = 0
    for st in samples(sys.stdin, a.comm):
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
    print("%d samples of %s* threads" % (n, a.comm))
    for k, v in split.most_common():
        print("%6.1f%%  %s" % (100 * v / n, k))
    print("-- inclusive")
    for k, v in incl.most_common(a.top):
        if not k.startswith("?") and k not in ("start_thread", "clone3"):
            print("%6.1f%%  %s" % (100 * v / n, k))
    if a.callees:
        print("-- called by %s (%.1f%%)" % (a.callees, 100 * incl[a.callees] / n))
        for k, v in callees.most_common(a.top):
            print("%6.1f%%  %s" % (100 * v / n, k))


if __name__ == "__main__":
    main()
