"""Test helpers: CT series written with pydicom (oblique, shuffled files), dciodvfy and dcmqi runners."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def write_ct_series(folder: Path, volume: np.ndarray, spacing: tuple[float, float, float],
                    direction: tuple[float, ...], origin: tuple[float, float, float], shuffle: bool = True,
                    seed: int = 0) -> list[str]:
    """Write ``volume`` (z, y, x int16 HU) as a CT series; returns its SOPInstanceUIDs in z order.

    ``direction`` is ITK's row-major matrix (columns: x, y, z index axes). With ``shuffle`` the
    file names and instance numbers follow a random order of the slices, so readers must sort by
    position.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    row_dir, col_dir, normal = matrix[:, 0], matrix[:, 1], matrix[:, 2]
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    order = np.random.default_rng(seed).permutation(volume.shape[0]) if shuffle else np.arange(volume.shape[0])
    uids = [generate_uid() for _ in range(volume.shape[0])]
    for rank, z in enumerate(order):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = uids[z]
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, uids[z]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Patient", "P123", "19600101", "F"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240102", "101010", "1", "ACC42"
        ds.ReferringPhysicianName, ds.Modality, ds.Manufacturer = "Doc^Tor", "CT", "test"
        ds.SeriesNumber, ds.InstanceNumber = 3, rank + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PositionReferenceIndicator = ""
        ds.KVP, ds.AcquisitionNumber, ds.ContentDate, ds.ContentTime = 120, 1, "20240102", "101010"
        ds.SliceThickness = spacing[0]
        position = np.asarray(origin) + z * spacing[0] * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[2]:.6f}"]  # row spacing (y), column spacing (x)
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.PixelData = np.ascontiguousarray(volume[z].astype(np.int16)).tobytes()
        pydicom.dcmwrite(folder / f"img_{rank:03d}.dcm", ds, enforce_file_format=True)
    return uids


def dciodvfy_errors(path: Path) -> list[str]:
    """The ``Error`` lines dciodvfy prints for ``path``; skips when dicom3tools is not installed."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools; .ci/run installs it)")
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def dcmqi_segments(seg_path: Path, out: Path) -> list[Path]:
    """Convert a SEG with dcmqi's segimage2itkimage (independent of highdicom); skips when absent."""
    tool = shutil.which("segimage2itkimage")
    if tool is None:
        pytest.skip("dcmqi's segimage2itkimage not installed (pip install dcmqi)")
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([tool, "--inputDICOM", str(seg_path), "--outputDirectory", str(out), "--outputType", "nifti"],
                   check=True, capture_output=True, timeout=120)
    return sorted(p for p in out.iterdir() if p.name.endswith(".nii.gz"))
