"""Cases for test_helpers.py: exercise the subprocess harness itself (crash, hang, wrong
exception, wrong message, accepted result). Deliberately imports no torch, so the child starts
in milliseconds."""
import collections

Case = collections.namedtuple("Case", "id fn match exc allow_result")


def _segfault():
    import ctypes
    ctypes.string_at(0)


def _abort():
    import os
    os.abort()


def _hang():
    import time
    time.sleep(600)


def _raise(exc, msg):
    def f():
        raise exc(msg)
    return f


def cases(hang: bool = False):
    out = [
        Case("00-ok", _raise(ValueError, "fastseg.op: indices bad"), "indices", ("ValueError",), None),
        Case("01-segfault", _segfault, "x", ("RuntimeError",), None),
        Case("02-ok-after-crash", _raise(RuntimeError, "fastseg.op: kernel_size bad"), "kernel_size",
             ("RuntimeError",), None),
        Case("03-abort", _abort, "x", ("RuntimeError",), None),
        Case("04-wrong-type", _raise(IndexError, "fastseg.op: indices bad"), "indices", ("RuntimeError",), None),
        Case("05-wrong-message", _raise(RuntimeError, "something else"), "indices", ("RuntimeError",), None),
        Case("06-no-raise", lambda: 1, "indices", ("RuntimeError",), None),
        Case("07-accepted-result", lambda: 42, "indices", ("RuntimeError",), lambda r: r == 42),
        Case("08-rejected-result", lambda: 41, "indices", ("RuntimeError",), lambda r: r == 42),
    ]
    if hang:
        out.append(Case("09-hang", _hang, "x", ("RuntimeError",), None))
        out.append(Case("10-ok-after-hang", _raise(TypeError, "fastseg.op: input bad"), "input", ("TypeError",), None))
    return out
