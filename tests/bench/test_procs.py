"""``rss_parts`` reads a real process's ``/proc`` files: its groups add up, and they see the
threads, the C heap and the libraries that process really has."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.procs import RSS_GROUPS, rss_parts, rss_summary

# A child with four threads parked on an event and 16 MiB touched in 64 KiB malloc blocks
# (below glibc's mmap threshold: they land in the main arena, the [heap]).
CHILD = """
import ctypes, sys, threading
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
blocks = [libc.malloc(65536) for _ in range(256)]
for block in blocks:
    ctypes.memset(block, 1, 65536)
stop = threading.Event()
threads = [threading.Thread(target=stop.wait) for _ in range(4)]
for thread in threads:
    thread.start()
print("ready", flush=True)
sys.stdin.readline()
stop.set()
"""


def test_the_parts_of_a_real_process_add_up_and_see_its_threads_and_heap() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        parts = rss_parts(child.pid)
    finally:
        child.communicate("\n", timeout=10)
    assert parts["smaps_total"] == pytest.approx(sum(parts[g] for g in RSS_GROUPS))
    assert parts["vmrss"] == pytest.approx(parts["smaps_total"], abs=1.0)
    assert parts["vmrss"] == pytest.approx(
        parts["rss_anon"] + parts["rss_file"] + parts["rss_shmem"], abs=0.01
    )
    assert parts["threads"] == 5
    assert parts["thread_stack_count"] == 4  # each thread's stack, found by its guard page
    assert parts["heap"] >= 16  # the blocks above
    assert parts["file_python"] + parts["file_so"] > 1  # the interpreter's own code
    top = [key for key in parts if key.startswith("file:")]
    assert 0 < len(top) <= 6
    assert f"RSS {parts['vmrss']:.1f} MiB" in rss_summary(parts)


def test_a_process_that_is_gone_cannot_be_read() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(10)
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.01)  # reaped by wait(); the pid may linger only until then
    with pytest.raises(OSError):
        rss_parts(child.pid)
