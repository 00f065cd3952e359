"""Signal names and numbers as callers write them: "SIGHUP", "HUP", "1"."""

import signal

from pyctrd.errors import InvalidArgument

_MAX_SIGNAL = signal.SIGRTMAX


def parse_signal(value: str | int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        text = str(value).strip().upper()
        if text.isascii() and text.isdigit():
            number = int(text)
        else:
            name = text if text.startswith("SIG") else f"SIG{text}"
            try:
                number = int(signal.Signals[name])
            except KeyError:
                raise InvalidArgument(
                    f"unknown signal {value!r}; use a name such as SIGTERM or a number"
                ) from None
    if not 0 < number <= _MAX_SIGNAL:
        raise InvalidArgument(f"signal {value!r} is out of range 1..{int(_MAX_SIGNAL)}")
    return number
