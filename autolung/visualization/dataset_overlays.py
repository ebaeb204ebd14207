"""One QC picture per training case of a raw or preprocessed dataset (nnU-Net's ``plot_overlay_pngs``).

Each picture is a montage of slices through the labelled structures, the labels outlined in red
over the image (a lung window for CT), so label problems (a shifted mask, a missing structure,
wrong values) are seen before any training.
"""
from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from autolung.errors import InvalidInputError
from autolung.progress import ProgressReporter, reporter, track

logger = logging.getLogger(__name__)


def _raw_job(job: tuple[Path, str, Path, int]) -> Path:
    from autolung.dataset.layout import load_dataset, read_case
    from autolung.visualization.overlay import render_overlay

    dataset_folder, case_id, target, num_slices = job
    spec = load_dataset(dataset_folder)
    image, label, geometry = read_case(spec, spec.case(case_id))
    if label is None:
        raise InvalidInputError(f"case {case_id!r} has no label", path=spec.dataset_json)
    return render_overlay(image, label, None, target, spacing=tuple(geometry.spacing), num_slices=num_slices,
                          title=case_id, label_name="labels")


def _preprocessed_job(job: tuple[Path, str, Path, int]) -> Path:
    from autolung.preprocessing.storage import PreprocessedDataset
    from autolung.visualization.overlay import render_overlay

    folder, case_id, target, num_slices = job
    data, seg, properties = PreprocessedDataset(folder).load(case_id, mmap=False)
    if seg is None:
        raise InvalidInputError(f"preprocessed case {case_id!r} has no labels", path=folder)
    spacing = tuple(properties.get("spacing_after_resampling") or (1.0, 1.0, 1.0))
    labels = np.maximum(seg[0], 0)  # -1 marks voxels outside the image's nonzero region
    return render_overlay(data, labels, None, target, spacing=spacing, num_slices=num_slices,
                          title=f"{case_id} (preprocessed)", label_name="labels")


def dataset_overlays(output_folder: str | Path, dataset_folder: str | Path | None = None,
                     preprocessed_folder: str | Path | None = None, num_processes: int = 1,
                     num_slices: int = 6, progress: ProgressReporter | None = None) -> list[Path]:
    """Write ``<output_folder>/<case>.png`` for every training case.

    Args:
        output_folder: where the pictures go.
        dataset_folder: a raw dataset (any supported layout); or
        preprocessed_folder: a preprocessed configuration folder (``<case>.npy`` + ``_seg.npy``),
            shown on the network grid with its normalised intensities.
        num_processes: worker processes.
        num_slices: slices per montage.
        progress: receives the "overlays" task, one step per case (default: nothing).

    Returns:
        The written pictures, in case order.

    Raises:
        InvalidInputError: neither or both sources given, no cases, or a case without labels.
    """
    if (dataset_folder is None) == (preprocessed_folder is None):
        raise InvalidInputError("give exactly one of dataset_folder and preprocessed_folder")
    output_folder = Path(output_folder)
    if dataset_folder is not None:
        from autolung.dataset.layout import load_dataset

        source, worker = Path(dataset_folder), _raw_job
        case_ids = load_dataset(source).case_ids
    else:
        from autolung.preprocessing.storage import PreprocessedDataset

        source, worker = Path(preprocessed_folder), _preprocessed_job
        case_ids = PreprocessedDataset(source).case_ids
    if not case_ids:
        raise InvalidInputError("no cases found", path=source)
    output_folder.mkdir(parents=True, exist_ok=True)
    jobs = [(source, case_id, output_folder / f"{case_id}.png", num_slices) for case_id in case_ids]
    written: list[Path] = []
    if num_processes <= 1:
        results = map(worker, jobs)
    else:
        pool = ProcessPoolExecutor(num_processes)
        results = pool.map(worker, jobs)
    try:
        for path in track(results, reporter(progress), "overlays", len(jobs)):
            written.append(path)
    finally:
        if num_processes > 1:
            pool.shutdown()
    logger.info("%d QC pictures in %s", len(written), output_folder)
    return written
