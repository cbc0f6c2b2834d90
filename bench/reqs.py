#!/usr/bin/env python3
"""reqs.py - sends a fixed number of HTTP/1.1 requests, for bench/alloc_check.sh.

  reqs.py PORT PATH N [--warmup W] [--snapshot PID FILE] [--new-conn]

Keep-alive (default): one connection, W warm-up requests, then (with --snapshot) SIGUSR1 to
PID and a wait until FILE has the new line, then N requests one after the other (each reply
read whole before the next is sent), then another snapshot. --new-conn: each request on a
connection of its own, which the client closes after the reply. Every reply must be a 200;
anything else stops with an error. Prints the number of requests sent.
"""
import argparse
import os
import signal
import socket
import sys
import time


def snapshot(pid, path):
    before = count_lines(path)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.time() + 10
    while count_lines(path) <= before:
        if time.time() > deadline:
            sys.exit("reqs.py: no snapshot line in %s after SIGUSR1" % path)
        time.sleep(0.01)


def count_lines(path):
    try:
        with open(path) as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, req):
        self.s.sendall(req)
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        if not lines[0].startswith(b"HTTP/1.1 200 "):
            sys.exit("reqs.py: unexpected reply %r" % lines[0])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            self.buf = rest
            self.fill()
            rest = self.buf
        self.buf = rest[length:]

    def fill(self):
        chunk = self.s.recv(65536)
        if not chunk:
            sys.exit("reqs.py: the server closed the connection")
        self.buf += chunk

    def close(self):
        self.s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("path")
    ap.add_argument("n", type=int)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--snapshot", nargs=2, metavar=("PID", "FILE"))
    ap.add_argument("--new-conn", action="store_true")
    a = ap.parse_args()
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: reqs.py\r\n"
           "Accept: */*\r\n\r\n" % a.path).encode()

    def one_shot():
        c = Conn(a.port)
        c.request(req)
        c.close()

    if a.new_conn:
        for _ in range(a.warmup):
            one_shot()
        time.sleep(0.2)  # let the server see every close before counting
        if a.snapshot:
            snapshot(int(a.snapshot[0]), a.snapshot[1])
        for _ in range(a.n):
            one_shot()
        time.sleep(0.2)
        if a.snapshot:
            snapshot(int(a.snapshot[0]), a.snapshot[1])
    else:
        c = Conn(a.port)
        for _ in range(a.warmup):
            c.request(req)
        if a.snapshot:
            snapshot(int(a.snapshot[0]), a.snapshot[1])
        for _ in range(a.n):
            c.request(req)
        if a.snapshot:
            snapshot(int(a.snapshot[0]), a.snapshot[1])
        c.close()
    print(a.n)


if __name__ == "__main__":
    main()
