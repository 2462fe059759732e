"""Tests of lightd-coordinator (seed 003), over real HTTP on loopback."""
