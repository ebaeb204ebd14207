from __future__ import annotations

import numpy as np
import pytest

from autolung.utils.atomic import atomic_path, is_partial_file, remove_partial_files, save_npy_atomic


def test_failed_write_leaves_target_untouched_and_no_temp(tmp_path):
    target = tmp_path / "out.nii.gz"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith(".nii.gz") and is_partial_file(tmp)
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


def test_npy_is_memory_mappable_and_leftovers_are_removed(tmp_path):
    save_npy_atomic(tmp_path / "a.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert mapped.shape == (3, 4) and float(mapped[2, 3]) == 11.0
    (tmp_path / ".partial-b-123.npy").write_bytes(b"xx")
    assert remove_partial_files(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]


def test_written_files_get_umask_permissions_not_0600(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "plans.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(mask)
    assert (tmp_path / "plans.json").stat().st_mode & 0o777 == 0o644
