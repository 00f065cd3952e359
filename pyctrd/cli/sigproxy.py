"""Which signals an attached `run` passes on to its container (podman's
--sig-proxy), and when it stops following instead: shared by the D-Bus
(attach.proxy_signals) and Varlink (commands/runvarlink) paths."""

import signal

PROXIED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                   signal.SIGUSR1, signal.SIGUSR2)
GIVE_UP_AFTER = 3  # ctrl-c's passed on before we stop following (PID 1 may ignore SIGINT)
