"""export_output: the file every export command writes appears only when complete."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from peewee_checkpoints._output import export_output


def test_a_complete_export_replaces_the_file_private(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"old\n")
    with export_output(str(target)) as out:
        out.write(b"new\n")
        assert target.read_bytes() == b"old\n"  # not yet: written aside
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["out.jsonl"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_export_leaves_the_earlier_file_and_no_temporary(
        tmp_path: Path, error: type[BaseException]) -> None:
    target = tmp_path / "out.jsonl"
    target.write_bytes(b"complete\n")
    with pytest.raises(error), export_output(str(target)) as out:
        out.write(b"half")
        raise error
    assert target.read_bytes() == b"complete\n"
    assert os.listdir(tmp_path) == ["out.jsonl"]
