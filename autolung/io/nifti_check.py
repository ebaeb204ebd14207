"""Detect truncated NIfTI files, which ITK reads without complaint (the missing voxels become zeros).

The header says how many bytes of voxels follow; a complete file has at least that many. For
``.nii.gz`` the gzip trailer stores the uncompressed size, so the check stays cheap; only when
the trailer disagrees (truncation, or a multi-member gzip) is the stream decompressed to count.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from autolung.errors import InvalidInputError

_NIFTI1_HEADER = 348
_NIFTI2_HEADER = 540
_CHUNK = 1 << 20


def check_nifti_complete(path: Path) -> None:
    """Raise when ``path`` holds fewer voxel bytes than its NIfTI header declares.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.

    Raises:
        InvalidInputError: "cannot read image: file is truncated ..." naming the file.
    """
    compressed = path.name.lower().endswith(".gz")
    try:
        header = _read_start(path, compressed)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInputError(f"cannot read image: {exc}", path=path) from exc
    expected = _expected_size(header)
    if expected is None:
        return  # not a header we understand: leave the verdict to ITK
    actual = _uncompressed_size(path, expected) if compressed else path.stat().st_size
    if actual < expected:
        detail = "the compressed data ends early" if compressed else f"{actual} of {expected} bytes"
        raise InvalidInputError(f"cannot read image: file is truncated ({detail})", path=path)


def _read_start(path: Path, compressed: bool) -> bytes:
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        return handle.read(_NIFTI2_HEADER)


def _expected_size(header: bytes) -> int | None:
    """vox_offset + voxel bytes from a NIfTI-1 or NIfTI-2 header, or None when unrecognised."""
    for endian in "<>":
        if len(header) >= _NIFTI1_HEADER and struct.unpack(endian + "i", header[:4])[0] == _NIFTI1_HEADER:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = struct.unpack(endian + "f", header[108:112])[0]
            return _total(dims, bitpix, offset)
        if len(header) >= _NIFTI2_HEADER and struct.unpack(endian + "i", header[:4])[0] == _NIFTI2_HEADER:
            dims = struct.unpack(endian + "8q", header[16:80])
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            offset = struct.unpack(endian + "q", header[168:176])[0]
            return _total(dims, bitpix, offset)
    return None


def _total(dims: tuple[int, ...], bitpix: int, offset: float) -> int | None:
    rank = dims[0]
    if not 1 <= rank <= 7 or bitpix <= 0 or any(d < 0 for d in dims[1:rank + 1]):
        return None
    voxels = int(np.prod([max(int(d), 1) for d in dims[1:rank + 1]], dtype=np.int64))
    return int(offset) + voxels * bitpix // 8


def _uncompressed_size(path: Path, expected: int) -> int:
    """Uncompressed size of a gzip file: the trailer when it agrees, else by decompressing."""
    with open(path, "rb") as handle:
        handle.seek(-4, 2)
        trailer = struct.unpack("<I", handle.read(4))[0]
    if trailer == expected % (1 << 32):
        return expected
    total = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                total += len(chunk)
    except (EOFError, OSError, zlib.error):
        pass  # truncated stream: what was counted is what there is
    return total


def count_nonfinite_voxels(path: Path) -> int:
    """NaN/Inf voxels stored in a floating-point NIfTI file.

    ITK's NIfTI reader turns them into zeros, so the array from ``read_image`` cannot show them;
    nibabel reads the stored values as they are.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.

    Returns:
        How many voxels are not finite (0 for integer files).
    """
    import nibabel  # only verify needs this, and only for float NIfTI files

    loaded = nibabel.load(str(path))
    if loaded.get_data_dtype().kind not in "fc":  # from the header: integer files need no full read
        return 0
    stored = np.asanyarray(loaded.dataobj)
    if stored.dtype.kind not in "fc":
        return 0
    return int(stored.size - np.count_nonzero(np.isfinite(stored)))
