"""A TCP relay between one instance and PostgreSQL that can cut the instance off.

Each instance of a :class:`~tests.cluster.harness.Deployment` reaches PostgreSQL through its
own :class:`DbLink`. :meth:`DbLink.partition` is a network partition as both ends see it:
bytes stop flowing both ways on every open connection (nothing is closed: the instance's
queries hang, the server sees an idle client) and new connections are accepted but never
answered. :meth:`DbLink.heal` closes everything held, so both ends see the connections die,
and relays new ones again.

One thread runs a selector loop per link; a socket pair wakes it when the state changes.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

BUFFER = 65536


class DbLink:
    """Listens on ``127.0.0.1:<port>`` and relays to PostgreSQL on ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._peers: dict[socket.socket, socket.socket] = {}  # each relayed end -> the other
        self._held: list[socket.socket] = []  # accepted while partitioned, never answered
        self.partitioned = False
        self.partitions = 0
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._loop, name=f"dblink {self.port}", daemon=True)
        self._thread.start()

    def partition(self) -> None:
        self.partitioned = True
        self.partitions += 1
        self._wake()

    def heal(self) -> None:
        self.partitioned = False
        self._wake()

    def close(self) -> None:
        self._closed = True
        self._wake()
        self._thread.join(timeout=5)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _loop(self) -> None:
        self._listen()
        while not self._closed:
            for key, _ in self._selector.select(timeout=1):
                if key.fileobj is self._listener:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    self._wake_r.recv(BUFFER)
                    self._apply_state()
                else:
                    self._relay(key.fileobj)  # type: ignore[arg-type]
        self._drop_all()
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()

    def _listen(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)

    def _apply_state(self) -> None:
        """Partitioned: stop reading every relayed socket. Healed: drop every connection."""
        if self.partitioned:
            for sock in self._peers:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
        else:
            self._drop_all()

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        if self.partitioned:
            self._held.append(client)
            return
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        self._peers[client], self._peers[server] = server, client
        self._selector.register(client, selectors.EVENT_READ)
        self._selector.register(server, selectors.EVENT_READ)

    def _relay(self, sock: socket.socket) -> None:
        peer = self._peers.get(sock)
        if peer is None:
            return
        try:
            data = sock.recv(BUFFER)
            if data:
                peer.sendall(data)
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for end in (sock, peer):
            if end is None:
                continue
            self._peers.pop(end, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(end)
            end.close()

    def _drop_all(self) -> None:
        for sock in list(self._peers):
            self._drop(sock)
        for sock in self._held:
            sock.close()
        self._held.clear()
