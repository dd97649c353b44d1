#!/usr/bin/env python3
"""The host side of bench/rootless.sh's published-port throughput.

  port_client.py send PORT MIB   host -> container: sends MIB MiB to
      127.0.0.1:PORT, half-closes, and waits for the container's answer,
      the byte count its receiver got (busybox dd's summary line); the
      time runs from connect to that answer, so it is the rate delivered
      to the container, not what the host's send buffers took in.
  port_client.py recv PORT MIB   container -> host: reads from
      127.0.0.1:PORT until end of file; the time runs from connect to the
      last byte. It never half-closes its own side (a client that says
      nothing is what a download looks like).

Prints the MB/s (MiB per second) on stdout; a transfer that delivered
another count than MIB MiB is said on stderr ("short ...") and exits 1.
"""
import re
import socket
import sys
import time


def main():
    mode, port, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    want = mib << 20
    buf = bytearray(1 << 20)
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port))
    if mode == "send":
        view = memoryview(buf)
        for _ in range(mib):
            s.sendall(view)
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            answer += b
        t1 = time.monotonic()
        m = re.search(rb"(\d+)\+(\d+) records in", answer)
        # Whole MiB received, and whether a partial one came last.
        got = int(m.group(1)) << 20 if m and m.group(2) == b"0" else -1
        what = "short delivery (receiver said %r)" % answer.decode(errors="replace")
    else:
        got = 0
        while True:
            n = s.recv_into(buf)
            if n == 0:
                break
            got += n
        t1 = time.monotonic()
        what = "short read"
    s.close()
    print(f"{mib / (t1 - t0):.1f}")
    if got != want:
        print(f"{what}: {got} of {want} bytes", file=sys.stderr)
        sys.exit(1)


main()
