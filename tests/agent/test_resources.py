"""Block I/O from Docker's raw stats, on cgroups v1 and v2."""

from __future__ import annotations

from lightd_agent.resources import block_io


def test_block_io_reads_both_cgroup_versions() -> None:
    v1 = {
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                {"major": 8, "minor": 0, "op": "Sync", "value": 1},
                {"major": 8, "minor": 16, "op": "Read", "value": 1},
            ]
        }
    }
    v2 = {"blkio_stats": {"io_service_bytes_recursive": [{"op": "write", "value": 5}]}}
    assert block_io(v1) == (4097, 8192)
    assert block_io(v2) == (0, 5)
    # no block devices (v2 reports null), or nothing at all
    assert block_io({"blkio_stats": {"io_service_bytes_recursive": None}}) == (0, 0)
    assert block_io({}) == (0, 0)
    assert block_io({"blkio_stats": {"io_service_bytes_recursive": ["junk", {"op": "read"}]}}) == (
        0,
        0,
    )
