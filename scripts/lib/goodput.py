#!/usr/bin/env python3
"""TCP goodput of an iperf3 run as its receiver counts it.

One formula for every script that measures shaping: scripts/demo runs this
file on an iperf3 JSON report; scripts/lib/bench.py can import
`receiver_goodput` (this directory is on its module path).

usage: goodput.py REPORT.json [-R]
  prints the receiver's Mbit/s with two decimals, "0" when the run failed;
  -R: the run was reversed (the client received)
"""

import json
import sys

# Goodput / rate of an exact TBF at MTU 1500: Ethernet, IP and TCP headers take
# about 4% of the shaped bytes.
EXACT = 0.96


def receiver_goodput(r, reverse, skip=1.0):
    """Bits per second in the receiver's intervals from `skip` seconds on
    (TCP slow start and the bucket's initial burst left out). The receiver is
    the server unless the run is reversed (-R)."""
    intervals = r["intervals"] if reverse else r["server_output_json"]["intervals"]
    kept = [i["sum"] for i in intervals if i["sum"]["start"] >= skip - 1e-6]
    return sum(i["bytes"] for i in kept) * 8 / sum(i["seconds"] for i in kept)


def main(argv):
    if len(argv) not in (2, 3) or (len(argv) == 3 and argv[2] != "-R"):
        print(__doc__.split("\n\n")[-1], file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            report = json.load(f)
        print("%.2f" % (receiver_goodput(report, len(argv) == 3) / 1e6))
    except (OSError, ValueError, KeyError, ZeroDivisionError):
        print("0")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
