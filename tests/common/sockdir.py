"""sockdir.py - a temporary folder for unix sockets, for the Python tests:
tests/common/tmpdir.h's test_sock_template.  tempfile.mkdtemp(prefix=NAME)
under $TMPDIR when a socket's path below it fits a sockaddr_un (108 bytes,
ROOM the longest name the caller puts there), else a short folder in /tmp
named for the stage, /tmp/MARK-NAME-XXXXXXXX, MARK the base name of
$THOTH_TEST_STAGE: the stage's guard (tests/common/clean_stage.py) checks
and removes /tmp/MARK-* as it does its TMPDIR.  The caller removes it."""
import contextlib
import os
import shutil
import tempfile

SUN_PATH = 108


def sock_mkdtemp(prefix, room=len("/thothd.sock")):
    tmp = tempfile.gettempdir()
    # mkdtemp adds 8 characters after the prefix
    if len(tmp) + 1 + len(prefix) + 8 + room < SUN_PATH:
        return tempfile.mkdtemp(prefix=prefix, dir=tmp)
    stage = os.environ.get("THOTH_TEST_STAGE", "").rstrip("/")
    mark = os.path.basename(stage) or "thoth-short"
    return tempfile.mkdtemp(prefix="%s-%s" % (mark, prefix), dir="/tmp")


@contextlib.contextmanager
def sock_tempdir(prefix, room=len("/thothd.sock")):
    """tempfile.TemporaryDirectory() made by sock_mkdtemp: the folder, removed
    (with what is in it) when the block ends."""
    d = sock_mkdtemp(prefix, room)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
