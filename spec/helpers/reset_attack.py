#!/usr/bin/env python3
"""A reset storm for spec/reset_spec.lua, written on python's socket module
(nothing from sse): COUNT connections to 127.0.0.1:PORT, each closed with
SO_LINGER {1, 0} (the kernel answers with RST instead of FIN) at a random
point of its request or of the answer, by THREADS threads at once.

    reset_attack.py PORT TARGET COUNT SEED [THREADS]

TARGET "hub": the demo hub. Modes, picked at random per connection:
  request    GET /events?topic=x, reset 0-500 us later
  head       ... after the response head arrived
  stream     ... after 1-3 events arrived (a publisher thread posts one every ms)
  pipelined  two GET /stats in one write, reset 0-500 us later
  body_in    POST /publish whose body stops part way, reset
  body_out   GET / (the dashboard), reset after its first bytes
TARGET "stream": a bare sse.Stream per connection (a head, an event at
once, then one every ms). Modes: request, head and stream as above.

Prints one JSON line: {"done":N, "modes":{...}, "refused":N, "errors":{...},
"published":N}, and exits 0; 1 when the server stopped accepting (refused).
Every wait is bounded by a socket timeout.
"""
import json
import random
import socket
import struct
import sys
import threading
import time

PORT, TARGET, COUNT, SEED = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
THREADS = int(sys.argv[5]) if len(sys.argv) > 5 else 4
TIMEOUT = 3.0
LINGER0 = struct.pack("ii", 1, 0)

EVENTS = b"GET /events?topic=x HTTP/1.1\r\nHost: t\r\n\r\n"
STATS2 = b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n" * 2
DASH = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
PUBLISH_HEAD = (b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: 4000\r\n\r\n")

lock = threading.Lock()
stats = {"done": 0, "modes": {}, "refused": 0, "errors": {}, "published": 0}
stop = threading.Event()


def count(key, name):
    with lock:
        d = stats[key]
        d[name] = d.get(name, 0) + 1


def pause(rng):
    time.sleep(rng.uniform(0, 0.0005))


def read_until(s, buf, pred):
    """recv into buf until pred(buf); returns buf (EOF or timeout raise)."""
    while not pred(buf):
        data = s.recv(65536)
        if not data:
            raise EOFError("eof")
        buf += data
    return buf


def after_head(buf):
    return buf.find(b"\r\n\r\n")


def events_after_head(buf):
    i = after_head(buf)
    return -1 if i < 0 else buf.count(b"\n\n", i + 4)


def hub_mode(s, mode, rng):
    if mode == "request":
        s.sendall(EVENTS)
    elif mode == "head":
        s.sendall(EVENTS)
        read_until(s, b"", lambda b: after_head(b) >= 0)
    elif mode == "stream":
        s.sendall(EVENTS)
        want = rng.randint(1, 3)
        read_until(s, b"", lambda b: events_after_head(b) >= want)
    elif mode == "pipelined":
        s.sendall(STATS2)
    elif mode == "body_in":
        s.sendall(PUBLISH_HEAD + b'{"topic":"x","data":"' + b"a" * rng.randint(0, 1500))
    elif mode == "body_out":
        s.sendall(DASH)
        read_until(s, b"", lambda b: after_head(b) >= 0)
    pause(rng)


MODES = {
    "hub": (hub_mode, ["request", "head", "stream", "pipelined", "body_in", "body_out"]),
    "stream": (hub_mode, ["request", "head", "stream"]),
}


def attacker(n, seed):
    run, modes = MODES[TARGET]
    rng = random.Random(seed)
    refused_in_row = 0
    for _ in range(n):
        if stop.is_set():
            return
        mode = rng.choice(modes)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        if mode == "body_out":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(TIMEOUT)
        try:
            s.connect(("127.0.0.1", PORT))
        except ConnectionRefusedError:
            s.close()
            with lock:
                stats["refused"] += 1
            refused_in_row += 1
            if refused_in_row >= 3:
                stop.set()
                return
            time.sleep(0.05)
            continue
        refused_in_row = 0
        try:
            run(s, mode, rng)
        except (OSError, EOFError) as e:
            # the server may answer and close first (e.g. a 4xx): not a failure here
            count("errors", type(e).__name__)
        s.close()  # RST: SO_LINGER {1, 0}
        count("modes", mode)
        with lock:
            stats["done"] += 1


def publisher():
    """Posts an event to topic x every ms over one keep-alive connection."""
    body = b'{"topic":"x","data":"tick"}'
    req = (b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    s = None
    while not stop.is_set():
        try:
            if s is None:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
            s.sendall(req)
            buf = read_until(s, b"", lambda b: after_head(b) >= 0)
            head, _, rest = buf.partition(b"\r\n\r\n")
            n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            read_until(s, rest, lambda b: len(b) >= n)
            with lock:
                stats["published"] += 1
        except (OSError, EOFError, ValueError, IndexError) as e:
            count("errors", "publisher " + type(e).__name__)
            if s is not None:
                s.close()
            s = None
            time.sleep(0.01)
            continue
        time.sleep(0.001)
    if s is not None:
        s.close()


def main():
    threads = []
    if TARGET == "hub":
        pub = threading.Thread(target=publisher, daemon=True)
        pub.start()
    per = COUNT // THREADS
    for i in range(THREADS):
        n = per + (COUNT - per * THREADS if i == 0 else 0)
        t = threading.Thread(target=attacker, args=(n, SEED * 1000 + i), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    stop.set()
    if TARGET == "hub":
        pub.join(TIMEOUT + 1)
    print(json.dumps(stats, sort_keys=True), flush=True)
    sys.exit(1 if stats["refused"] else 0)


main()
