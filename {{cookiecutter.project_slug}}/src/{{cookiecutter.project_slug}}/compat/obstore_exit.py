"""obstore 0.12's threads can abort the interpreter's exit (SIGABRT) after the work is done."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NoReturn


def exit_process(code: int) -> NoReturn:
    """`sys.exit(code)`; once obstore is loaded: exit handlers, flush, `os._exit(code)`."""
    if "obstore" not in sys.modules:
        sys.exit(code)
    atexit._run_exitfuncs()  # private: the handlers `sys.exit` would run
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
