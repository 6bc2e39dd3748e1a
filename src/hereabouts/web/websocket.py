"""The WebSocket protocol the HTTP server speaks: uvicorn's, reading ahead a few messages.

uvicorn's sans-I/O WebSocket protocol stops reading the socket after every message and
starts again when the app has taken it. For a browser hub that is two ``epoll_ctl`` system
calls per heartbeat, about 7 µs of the 150-200 µs a heartbeat costs (docs/benchmarks.md). This
subclass lets up to :data:`READ_AHEAD` messages wait for the app before it stops reading,
so a connection whose app keeps up is never paused, and one whose app falls behind is
paused as before. It changes no frame, no limit and no close: only when reading pauses.

It leans on two names of uvicorn's implementation, the ``read_paused`` flag and the
``queue`` of messages for the app; the WebSocket tests run through it, so a uvicorn that
renames them fails there, not in production.
"""

from __future__ import annotations

from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

READ_AHEAD: Final = 4
"""Messages one connection may have waiting for the app before its socket stops being
read. At the hub's 8 KiB frame limit (uvicorn's own limit is 64 KiB) that is at most
256 KiB buffered per connection; an app that keeps up never has more than one waiting."""


class ReadAheadWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, pausing the socket only when messages pile up."""

    def send_receive_event_to_app(self) -> None:
        if self.read_paused:  # already paused: nothing to decide
            super().send_receive_event_to_app()
            return
        # The base class pauses unless it believes it already has; let it believe so, then
        # pause only when the app is READ_AHEAD messages behind. A message the base class
        # discards (the app has sent its close) must not pause reading: the peer's close
        # reply has to be read, and nobody will take messages off the queue any more.
        waiting = self.queue.qsize()
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            queued = self.queue.qsize() > waiting
            if queued and self.queue.qsize() >= READ_AHEAD:
                self.transport.pause_reading()
            else:
                self.read_paused = False
