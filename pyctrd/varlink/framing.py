"""Splitting the byte stream into NUL-terminated messages, in linear time, bounded.

asyncvarlink's VarlinkProtocol keeps an unfinished message as bytes and
prepends it to every chunk read (4 KiB each): a message of n bytes costs
O(n²/4096) copying (40 MB: about a minute of the daemon's only thread). Here
the unfinished part grows in place (amortized O(1) a byte), only new bytes
are searched for the terminator, and a message longer than the limit is
refused as soon as its unfinished part passes it.
"""


class MessageTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"a message of more than {limit} bytes")
        self.limit = limit


class Framer:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending = bytearray()  # the unfinished message's bytes so far

    @property
    def pending(self) -> int:
        return len(self._pending)

    def head(self, size: int) -> bytes:
        """The first ``size`` bytes of the unfinished message."""
        return bytes(self._pending[:size])

    def feed(self, data: bytes) -> bytes:
        """The complete messages ``data`` ends, each with its NUL (b"" if none).

        Raises MessageTooLarge once a message passes the limit; the framer is
        of no further use then (the connection is to be closed).
        """
        last = data.rfind(b"\0")
        if last < 0:
            if len(self._pending) + len(data) > self.limit:
                raise MessageTooLarge(self.limit)
            self._pending += data
            return b""
        first = data.find(b"\0")
        if len(self._pending) + first > self.limit:
            raise MessageTooLarge(self.limit)
        # The messages after the first lie wholly within data, the rest after last.
        if last - first - 1 > self.limit and any(
                len(part) > self.limit for part in data[first + 1:last].split(b"\0")):
            raise MessageTooLarge(self.limit)
        if len(data) - last - 1 > self.limit:
            raise MessageTooLarge(self.limit)
        if self._pending:
            self._pending += data[:last + 1]
            complete = bytes(self._pending)
        else:
            complete = data[:last + 1]
        self._pending = bytearray(data[last + 1:])
        return complete
