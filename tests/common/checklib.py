"""checklib.py - what the Python checks (tests/locks/check_*.py, the
dashboard harness, ...) share: fail() ends the check with one line saying
what was wrong, wait_for() polls a condition until a deadline instead of
sleeping a guessed time.  Imported as sockdir.py is:

    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
    from checklib import fail, wait_for  # noqa: E402

The failure line goes to stdout, flushed, so that it comes after what the
check printed before it; the exit status is 1 (ctest: failed)."""
import sys
import time


def fail(msg, label="FAIL "):
    """Print LABEL + MSG ("FAIL what was wrong") and exit 1."""
    print(label + msg, flush=True)
    sys.exit(1)


def wait_for(what, cond, timeout=30.0, step=0.02, label="FAIL "):
    """COND()'s first true value, polled every STEP s; past TIMEOUT s
    fail("timed out waiting for WHAT") (with LABEL)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            fail("timed out waiting for " + what, label)
        time.sleep(step)
