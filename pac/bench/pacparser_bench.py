#!/usr/bin/python3
"""Times pacparser (Debian python3-pacparser) on the same scripts and URLs as `waypost-pac bench`.

Usage: pacparser_bench.py ITERATIONS SCRIPT URL [URL...]
Prints the load time and, per URL, the median and p99 time of find_proxy and the answer.
"""
import statistics
import sys
import time
from urllib.parse import urlsplit

import pacparser


def main():
    iterations, script, urls = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    pacparser.init()
    pacparser.setmyip("192.0.2.10")
    started = time.perf_counter()
    pacparser.parse_pac_file(script)
    print(f"  pacparser load {1e3 * (time.perf_counter() - started):.1f} ms")
    for url in urls:
        host = urlsplit(url).hostname
        samples = []
        answer = None
        for _ in range(iterations):
            t = time.perf_counter()
            answer = pacparser.find_proxy(url, host)
            samples.append(time.perf_counter() - t)
        samples.sort()
        p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
        print(f"  pacparser {url} -> {answer!r}: median {1e6 * statistics.median(samples):.1f} us, "
              f"p99 {1e6 * p99:.1f} us, {len(samples) / sum(samples):.0f} evals/s")
    pacparser.cleanup()


if __name__ == "__main__":
    main()
