"""Foreground run of the watch service with Unix signal handling, for `sortbox watch`."""

from __future__ import annotations

import signal
import threading

from daemon.config import WatchSettings
from daemon.service import RunSummary, WatchService


def run_watch(settings: WatchSettings, registry) -> RunSummary:
    """Run the watch service in the foreground with signal handling.

    SIGINT and SIGTERM stop intake and let the batch in hand finish (a second SIGINT aborts at
    once); SIGHUP checks the production alias now. Handlers are installed only on the main
    thread and restored on return.
    """
    service = WatchService(settings, registry)
    if threading.current_thread() is not threading.main_thread():
        return service.run()

    def on_interrupt(signum, frame):
        service.stop("interrupted")
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, on_interrupt),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: service.stop("terminated")),
        signal.SIGHUP: signal.signal(signal.SIGHUP, lambda signum, frame: service.request_model_check()),
    }
    try:
        return service.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
