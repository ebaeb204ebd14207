"""Check a raw dataset and report every problem, each naming the file concerned.

Cases are checked one at a time (optionally in worker processes), so memory stays at one case
whatever the dataset size. Nothing is written.
"""
from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autolung.dataset.layout import load_dataset
from autolung.dataset.nnunet import LABELS_FOLDER
from autolung.dataset.problem import Problem
from autolung.dataset.spec import LAYOUT_NNUNET, CaseFiles, DatasetSpec
from autolung.errors import InvalidInputError
from autolung.io.compare import geometry_differences
from autolung.io.formats import image_ending, strip_ending
from autolung.io.geometry import ImageGeometry
from autolung.io.images import read_image, read_label
from autolung.io.nifti_check import count_nonfinite_voxels

logger = logging.getLogger(__name__)

__all__ = ["CaseCheckContext", "CaseReport", "Problem", "VerifyResult", "check_case", "run_verification",
           "verify_dataset"]


@dataclass(frozen=True)
class CaseCheckContext:
    """The little a worker needs to know about the dataset (cheap to send to processes)."""

    channel_names: tuple[str, ...]
    declared_values: frozenset[int]
    dataset_json: Path

    @classmethod
    def from_spec(cls, spec: DatasetSpec) -> CaseCheckContext:
        return cls(tuple(spec.channel_names), frozenset(spec.declared_label_values), spec.dataset_json)


@dataclass
class CaseReport:
    """What checking one case found.

    Attributes:
        case_id: the case.
        problems: its problems.
        file_dims: 2 or 3 when its first image was readable, else None.
    """

    case_id: str
    problems: list[Problem] = field(default_factory=list)
    file_dims: int | None = None


@dataclass
class VerifyResult:
    """Outcome of :func:`run_verification`: the problems and how many cases were checked."""

    problems: list[Problem]
    num_cases: int


def verify_dataset(folder: str | Path, num_processes: int = 1) -> list[Problem]:
    """Check a dataset folder and list every problem found.

    Args:
        folder: the raw dataset folder.
        num_processes: worker processes for reading cases (1: in this process).

    Returns:
        The problems, dataset-level first, then per case in dataset order; empty when clean.
    """
    return run_verification(folder, num_processes).problems


def run_verification(folder: str | Path, num_processes: int = 1) -> VerifyResult:
    """Like :func:`verify_dataset`, also telling how many cases were checked.

    Args:
        folder: the raw dataset folder.
        num_processes: worker processes for reading cases.

    Returns:
        The problems and the number of cases.
    """
    try:
        spec = load_dataset(folder, strict=False)
    except InvalidInputError as exc:
        return VerifyResult([Problem(exc.path or Path(folder), exc.problem)], 0)
    problems = list(spec.issues) + dataset_problems(spec)
    dims: dict[int, list[str]] = {}
    for report in _case_reports(spec, num_processes):
        problems.extend(report.problems)
        if report.file_dims is not None:
            dims.setdefault(report.file_dims, []).append(report.case_id)
    problems.extend(_mixed_dimension_problems(spec, dims))
    return VerifyResult(problems, len(spec.cases))


def dataset_problems(spec: DatasetSpec) -> list[Problem]:
    """Problems of the dataset as a whole: no cases, numTraining mismatch, stray label files.

    Args:
        spec: the loaded dataset.

    Returns:
        The problems found.
    """
    problems = []
    if not spec.cases:
        problems.append(Problem(spec.dataset_json, "no training cases found"))
    declared = spec.metadata.get("numTraining")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared != len(spec.cases):
        problems.append(Problem(spec.dataset_json, f"numTraining is {declared} but {len(spec.cases)} cases were found"))
    if spec.layout == LAYOUT_NNUNET and "dataset" not in spec.metadata:
        problems.extend(_stray_label_problems(spec))
    return problems


def _stray_label_problems(spec: DatasetSpec) -> list[Problem]:
    """nnU-Net layout: a missing labelsTr folder, or label files without a case."""
    labels = spec.folder / LABELS_FOLDER
    if not labels.is_dir():
        return [Problem(labels, "labelsTr folder not found")]
    known = set(spec.case_ids)
    return [Problem(entry, "label file has no matching image in imagesTr")
            for entry in sorted(labels.iterdir())
            if not entry.name.startswith(".") and image_ending(entry) and strip_ending(entry) not in known]


def _case_reports(spec: DatasetSpec, num_processes: int) -> Iterator[CaseReport]:
    """Check cases one by one, in order; results stream back as they finish."""
    context = CaseCheckContext.from_spec(spec)
    jobs = ((context, case) for case in spec.cases)
    if num_processes <= 1 or len(spec.cases) < 2:
        yield from (_check_job(job) for job in jobs)
        return
    # spawn, not fork: the CLI process may hold threads (torch, BLAS) that a fork would copy mid-lock.
    with ProcessPoolExecutor(max_workers=num_processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_check_job, jobs, chunksize=4)


def _check_job(job: tuple[CaseCheckContext, CaseFiles]) -> CaseReport:
    return check_case(*job)


def check_case(context: CaseCheckContext, case: CaseFiles) -> CaseReport:
    """Check one case's images and label.

    Args:
        context: what the dataset declares.
        case: the case's files.

    Returns:
        The problems of this case and its dimensionality.
    """
    report = CaseReport(case.case_id)
    reference, channels, all_read = _check_images(context, case, report)
    if reference is not None:
        report.file_dims = reference.file_dims
    declared = len(context.channel_names)
    if all_read and channels != declared:
        report.problems.append(Problem(case.images[0], f"image has {channels} channel(s) but dataset.json declares "
                                                       f"{declared} ({', '.join(context.channel_names)})"))
    _check_label(context, case, reference, report)
    return report


def _check_images(context: CaseCheckContext, case: CaseFiles,
                  report: CaseReport) -> tuple[ImageGeometry | None, int, bool]:
    """Read each channel file once: readability, intensities, size, agreement between channels."""
    per_file = 1 if len(case.images) > 1 else len(context.channel_names)
    reference: ImageGeometry | None = None
    channels, all_read = 0, True
    for path in case.images:
        try:
            data, geometry = read_image(path, expected_channels=per_file)
        except InvalidInputError as exc:
            where = path if not path.exists() else exc.path or path  # a DICOM error may name one slice file
            report.problems.append(Problem(where, "missing image file" if not path.exists() else exc.problem))
            all_read = False
            continue
        channels += data.shape[0]
        report.problems.extend(Problem(path, message) for message in
                               _size_problems(geometry) + _intensity_problems(data, path, geometry))
        if reference is None:
            reference = geometry
        else:
            report.problems.extend(Problem(path, message) for message in
                                   geometry_differences(reference, geometry, "channel", case.images[0].name))
    return reference, channels, all_read


def _size_problems(geometry: ImageGeometry) -> list[str]:
    """Empty images, or one voxel across in-plane (a single slice is fine: 2D data)."""
    shape = tuple(geometry.shape)
    if min(shape) == 0:
        return [f"image is empty (shape {shape})"]
    if min(shape[1:]) <= 1:
        return [f"image is degenerate: only 1 voxel along an in-plane axis (shape {shape})"]
    return []


def _intensity_problems(data: np.ndarray, path: Path, geometry: ImageGeometry) -> list[str]:
    """NaN/Inf voxels and constant channels."""
    problems = []
    if geometry.file_format == "nifti" and data.dtype.kind == "f":
        hidden = count_nonfinite_voxels(path)  # ITK already replaced them by zeros in ``data``
        if hidden:
            problems.append(f"file stores {hidden} NaN/Inf voxel(s)")
    for index, channel in enumerate(data):
        finite = np.isfinite(channel) if channel.dtype.kind == "f" else None
        if finite is not None and not finite.all():
            bad = channel.size - int(np.count_nonzero(finite))
            problems.append(f"channel {index} has {bad} NaN/Inf voxel(s)")
            channel = channel[finite]
        if channel.size and channel.min() == channel.max():
            problems.append(f"channel {index} is constant (every voxel is {channel.flat[0]:g})")
    return problems


def _check_label(context: CaseCheckContext, case: CaseFiles, reference: ImageGeometry | None,
                 report: CaseReport) -> None:
    """Label present, readable, on the image grid, and holding only declared values."""
    if case.label is None:
        report.problems.append(Problem(context.dataset_json, f"case {case.case_id!r} has no label"))
        return
    try:
        label, geometry = read_label(case.label)
    except InvalidInputError as exc:
        report.problems.append(Problem(case.label, "missing label file" if not case.label.exists() else exc.problem))
        return
    if reference is not None:
        report.problems.extend(Problem(case.label, message) for message in geometry_differences(reference, geometry))
    undeclared = sorted(set(np.unique(label).tolist()) - context.declared_values)
    if undeclared:
        report.problems.append(Problem(case.label, f"label values {undeclared} are not declared in dataset.json "
                                                   f"(declared: {sorted(context.declared_values)})"))


def _mixed_dimension_problems(spec: DatasetSpec, dims: dict[int, list[str]]) -> list[Problem]:
    """One problem when some cases are 2D and others 3D."""
    if len(dims) < 2:
        return []
    two, three = dims.get(2, []), dims.get(3, [])
    return [Problem(spec.dataset_json, f"dataset mixes 2D and 3D cases: {len(two)} 2D (e.g. {two[0]!r}) and "
                                       f"{len(three)} 3D (e.g. {three[0]!r})")]
