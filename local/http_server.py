"""The HTTP server both loopback servers of the local stack (API front, Novita emulator) run on."""

from __future__ import annotations

from http.server import ThreadingHTTPServer


class BurstTolerantHTTPServer(ThreadingHTTPServer):
    """A thread per connection and a listen backlog sized for bursts.

    socketserver's default backlog is 5: when dozens of clients connect at once (the 200-job
    load run, `make bench`) the kernel's accept queue overflows and clients see connection
    resets that a real API Gateway would never produce.
    """

    daemon_threads = True
    request_queue_size = 1024
