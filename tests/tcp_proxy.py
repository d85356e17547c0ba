"""A loopback TCP proxy that a test can cut and restore: a network partition between a device and its broker."""

from __future__ import annotations

import selectors
import socket
import threading

from emo7ion.broker_config.runner import free_port


class TcpProxy:
    def __init__(self, target_port: int, host: str = "127.0.0.1"):
        self.host, self.target_port = host, target_port
        self.port = free_port()
        self._open = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.cuts = 0

    def start(self) -> TcpProxy:
        self._listen()
        self._thread.start()
        return self

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._open.set()

    def cut(self) -> None:
        """Drop every connection and refuse new ones, as a pulled cable would."""
        with self._lock:
            self._open.clear()
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for a, b in self._pairs:
                for s in (a, b):
                    try:
                        s.close()
                    except OSError:
                        pass
            self._pairs.clear()
            self.cuts += 1

    def restore(self) -> None:
        with self._lock:
            self._listen()

    def stop(self) -> None:
        self._stop.set()
        self.cut()
        self._thread.join(timeout=5)

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._open.wait(0.05):
                continue
            selector = selectors.DefaultSelector()
            with self._lock:
                listener = self._listener
                pairs = list(self._pairs)
            try:
                if listener is not None:
                    selector.register(listener, selectors.EVENT_READ, None)
                for a, b in pairs:
                    selector.register(a, selectors.EVENT_READ, b)
                    selector.register(b, selectors.EVENT_READ, a)
                events = selector.select(timeout=0.05)
            except (OSError, ValueError):
                selector.close()
                continue
            for key, _ in events:
                if key.data is None:
                    self._accept(key.fileobj)
                else:
                    self._relay(key.fileobj, key.data)
            selector.close()

    def _accept(self, listener: socket.socket) -> None:
        try:
            client, _ = listener.accept()
            upstream = socket.create_connection((self.host, self.target_port), timeout=2)
        except OSError:
            return
        with self._lock:
            self._pairs.append((client, upstream))

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            data = source.recv(65536)
            if data:
                sink.sendall(data)
                return
        except OSError:
            pass
        with self._lock:
            for pair in list(self._pairs):
                if source in pair:
                    self._pairs.remove(pair)
                    for s in pair:
                        try:
                            s.close()
                        except OSError:
                            pass
