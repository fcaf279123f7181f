"""The least a Python HTTP server does per request: read it, ``session.run`` the tensor at the body's end, answer.

    python -m bench.floor_server MODEL.onnx PORT [--huge-pages]

One thread, a blocking keep-alive socket, no routing, validation, batching, metrics or logs; the session is
built as modelfn builds it (all graph optimisations, intra-op threads = the CPUs, inter-op 1) and its weights
can be put on huge pages as modelfn puts them. ``bench.floor`` measures its c=1 gap beside modelfn's, so the
part of the gap that any Python server pays on the machine (the client on the same CPUs, loopback TCP, the
caches the weights flush) is told apart from modelfn's own. It answers a POST with the output's raw bytes
(the input is the body's last ``width * 4`` bytes: the binary tensor extension puts it there) and any other
request with an empty 200. A benchmark tool only: it trusts its client.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
from typing import Any

import numpy as np

CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)")


def session(model: str, threads: int | None = None) -> Any:
    """The session as ``loader.runtimes.onnx`` builds it by default."""
    import onnxruntime as ort

    from function.cpus import runtime_threads

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or runtime_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class Model:
    """The session and its one input: name and width read once, not per request."""

    def __init__(self, sess: Any) -> None:
        spec = sess.get_inputs()[0]
        self.sess, self.name, self.width = sess, spec.name, int(spec.shape[1])

    def run(self, row: np.ndarray) -> bytes:
        """The first output's bytes for one ``[1, width]`` row."""
        return bytes(self.sess.run(None, {self.name: row})[0].tobytes())


def answer(model: Model, method: bytes, body: bytes) -> bytes:
    """The whole HTTP response to one request."""
    if method != b"POST":
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    out = model.run(np.frombuffer(body[-model.width * 4 :], dtype=np.float32).reshape(1, model.width))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % len(out)
    return head + out


def requests(buffer: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The complete requests (method, body) at the start of ``buffer``, and what is left of it."""
    done = []
    while (end := buffer.find(b"\r\n\r\n")) >= 0:
        length = CONTENT_LENGTH.search(buffer, 0, end)
        size = int(length.group(1)) if length else 0
        if len(buffer) < end + 4 + size:
            break
        done.append((buffer.split(b" ", 1)[0], buffer[end + 4 : end + 4 + size]))
        buffer = buffer[end + 4 + size :]
    return done, buffer


def serve(model: Model, listener: socket.socket) -> None:
    """One connection at a time, until the process is killed."""
    while True:
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        with conn:
            while True:
                try:
                    data = conn.recv(1 << 16)
                except ConnectionResetError:
                    break
                if not data:
                    break
                done, buffer = requests(buffer + data)
                for method, body in done:
                    conn.sendall(answer(model, method, body))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("port", type=int)
    parser.add_argument("--huge-pages", action="store_true", help="collapse the weights as modelfn does")
    args = parser.parse_args(argv)
    model = Model(session(args.model))
    for _ in range(20):  # warm, as modelfn does before READY
        model.run(np.zeros((1, model.width), np.float32))
    if args.huge_pages:
        from function.memory import back_with_huge_pages

        back_with_huge_pages()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(64)
    print(f"ready {args.port}", flush=True)
    try:
        serve(model, listener)
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
