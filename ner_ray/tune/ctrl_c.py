"""Ctrl-C during a study, noticed however early it comes.

Tune's own SIGINT handler stops a `Tuner.fit()` gracefully (it saves the experiment state), but it tells no one:
`fit()` returns a ResultGrid that holds only the trials created so far, so a study stopped between two trials looks
finished. `CtrlC` takes SIGINT for the whole study instead: it remembers the signal and passes it on to Tune as
SIGUSR1, which Tune always handles the same graceful way (`ray/tune/tune.py`, `_setup_signal_catching`). A second
Ctrl-C stops at once (KeyboardInterrupt), as Tune's own second Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Self

TUNE_SIGINT_SWITCH = "TUNE_DISABLE_SIGINT_HANDLER"


class CtrlC:
    """`with CtrlC() as ctrl_c: ...`; `ctrl_c.received` once SIGINT came. Off the main thread (where Python allows
    no signal handler) it changes nothing and Tune handles SIGINT itself."""

    def __init__(self) -> None:
        self.received = False
        self._active = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1")
        self._saved: dict = {}

    def __enter__(self) -> Self:
        if self._active:
            self._saved = {"env": os.environ.get(TUNE_SIGINT_SWITCH), "int": signal.getsignal(signal.SIGINT),
                           "usr1": signal.getsignal(signal.SIGUSR1)}
            os.environ[TUNE_SIGINT_SWITCH] = "1"
            # outside a fit, SIGUSR1's default action would end the process: until Tune takes it, it does nothing
            signal.signal(signal.SIGUSR1, lambda sig, frame: None)
            signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, sig, frame) -> None:
        if self.received:  # the second Ctrl-C: stop now
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.received = True
        print("Ctrl-C: stopping the study after Tune saves its state (Ctrl-C again to stop at once)", flush=True)
        signal.raise_signal(signal.SIGUSR1)

    def __exit__(self, *exc) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._saved["int"])
            signal.signal(signal.SIGUSR1, self._saved["usr1"])
            if self._saved["env"] is None:
                os.environ.pop(TUNE_SIGINT_SWITCH, None)
            else:
                os.environ[TUNE_SIGINT_SWITCH] = self._saved["env"]
