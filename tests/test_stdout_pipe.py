"""A pipe on stdout (``tap | target``) is widened so that a block of records goes in one write."""

from __future__ import annotations

import io
import os
import sys

import pytest

from tap_event_exports import __main__ as command

fcntl = pytest.importorskip("fcntl")
pytestmark = pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="pipe sizes are Linux's")


def test_a_pipe_on_stdout_is_widened(monkeypatch):
    read_end, write_end = os.pipe()
    try:
        with open(write_end, "wb", closefd=False) as raw:
            monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw))
            command._widen_stdout_pipe()
            assert fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) >= command.PIPE_BYTES
            sys.stdout.detach()
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_file_or_a_stdout_without_descriptor_is_left_alone(monkeypatch, tmp_path):
    with (tmp_path / "out").open("wb") as raw:
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(raw))
        command._widen_stdout_pipe()  # not a pipe: nothing to do
        sys.stdout.detach()
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    command._widen_stdout_pipe()  # no file descriptor (captured output): nothing to do
