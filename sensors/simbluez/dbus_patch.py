"""Work around a dbus-fast writer bug that kills the fake bluetoothd under a notification flood.

dbus-fast's asyncio `_MessageWriter.schedule_write` writes at once when its queue is empty, even
while an earlier message is still half written (`buf` set) because the socket was full; the
`sock.send` then raises BlockingIOError (EAGAIN), which `write_callback` treats as fatal and
disconnects the bus. A real bluetoothd (C, libdbus) waits for the socket instead. Seen with
dbus-fast 5.2 at a few thousand notifications per second (bench/ble.py's throughput sweep);
harmless below. The fix: a full socket means "wait until writable", as for a partial write.

Applied only in the fake's own process (`python -m sensors.simbluez`), never to bleak's side.
"""

from __future__ import annotations

import array
import logging
import socket

log = logging.getLogger("sensors.simbluez")


def apply() -> bool:
    """Patch `dbus_fast.aio.message_bus._MessageWriter.write_callback`; False if the class does
    not look like the one this was written against (then nothing is changed)."""
    try:
        from dbus_fast.aio import message_bus as mb
    except ImportError:  # pragma: no cover
        return False
    writer = getattr(mb, "_MessageWriter", None)
    needed = ("messages", "buf", "offset", "unix_fds", "fut", "sock", "loop", "fd")
    if writer is None or getattr(writer, "_lumbo_patched", False):
        return writer is not None
    if not all(hasattr(mb, f) for f in ("_future_set_result", "_future_set_exception")):
        return False
    try:
        probe = writer.__init__.__code__.co_names
    except AttributeError:  # compiled: leave it alone
        return False
    if not all(name in probe for name in needed):
        return False

    def write_callback(self, remove_writer: bool = True) -> None:  # type: ignore[no-untyped-def]
        sock = self.sock
        try:
            while True:
                if self.buf is None:
                    if not self.messages:
                        if remove_writer:
                            self.loop.remove_writer(self.fd)
                        return
                    buf, unix_fds, fut = self.messages.popleft()
                    self.unix_fds = unix_fds
                    self.buf = memoryview(buf)
                    self.offset = 0
                    self.fut = fut
                try:
                    if self.unix_fds and self.negotiate_unix_fd:
                        ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                    array.array("i", self.unix_fds))]
                        self.offset += sock.sendmsg([self.buf[self.offset:]], ancdata)
                        self.unix_fds = None
                    else:
                        self.offset += sock.send(self.buf[self.offset:])
                except (BlockingIOError, InterruptedError):
                    self.loop.add_writer(self.fd, self.write_callback)  # wait for writable
                    return
                if self.offset < len(self.buf):
                    return  # wait for writable
                self.buf = None
                mb._future_set_result(self.fut, None)
        except Exception as e:
            if self.bus._user_disconnect:
                mb._future_set_result(self.fut, None)
            else:
                mb._future_set_exception(self.fut, e)
            self.bus._finalize(e)

    writer.write_callback = write_callback
    writer._lumbo_patched = True
    log.debug("dbus-fast writer patched: a full socket waits instead of disconnecting")
    return True
