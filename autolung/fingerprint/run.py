"""Fingerprint a dataset: stream its cases through worker processes and summarise.

Memory: the parent holds only the per-case records and at most ``num_samples`` foreground
intensities per channel and case (10k float32 = 40 kB per channel and case, i.e. about 8 MB for
200 single-channel cases). Each worker holds one case at a time: its image (C x voxels x 4 bytes),
its label, a foreground mask and the connected-component map (4 bytes per voxel), so the peak is
about ``num_processes * (4C + 10) * voxels`` bytes; for 512x512x300 CT with 2 workers, about 2 GB.
Lower ``num_processes`` for very large images.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from autolung.dataset.layout import load_dataset, read_case
from autolung.errors import AutolungError, InvalidInputError
from autolung.fingerprint import summary
from autolung.fingerprint.case import DEFAULT_NUM_SAMPLES, case_statistics
from autolung.fingerprint.schema import FINGERPRINT_VERSION, Fingerprint
from autolung.paths import DataRoot
from autolung.progress import ProgressReporter, reporter, track
from autolung.provenance import provenance
from autolung.utils.atomic import write_json_atomic

log = logging.getLogger(__name__)

def _channel_names(spec: Any) -> list[str]:
    names = spec.channel_names
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=lambda k: int(k))]
    return [str(n) for n in names]


def _label_values(spec: Any) -> list[int]:
    values = {0}
    for value in spec.labels.values():
        values.update(value if isinstance(value, (list, tuple)) else [value])
    return sorted(int(v) for v in values if v != _ignore_label(spec))


def _ignore_label(spec: Any) -> int | None:
    return getattr(spec.region_mapping, "ignore_label", None)


def _fingerprint_one(spec: Any, case: Any, label_values: list[int], num_samples: int,
                     seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """Worker: read one case and return its small record (never the image)."""
    try:
        image, label, geometry = read_case(spec, case)
    except AutolungError:
        raise
    except Exception as exc:  # unreadable file: name the case instead of a bare library error
        raise InvalidInputError(f"cannot read case {case.case_id!r}: {type(exc).__name__}: {exc}",
                                path=case.images[0] if case.images else None) from None
    if label is None:
        raise InvalidInputError("training case has no label", path=case.images[0])
    if _ignore_label(spec) is not None:
        # Unannotated voxels are no class: they count as background in the statistics.
        label = np.where(label == _ignore_label(spec), 0, label)
    record, samples = case_statistics(case.case_id, image, label, geometry.spacing, label_values,
                                      geometry.is_2d, num_samples, seed)
    record["is_2d"] = bool(geometry.is_2d)
    record["file_format"] = geometry.file_format
    return record, samples


def _results(spec: Any, label_values: list[int], num_processes: int, num_samples: int,
             seed: int) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """Case results in case order; through a process pool when ``num_processes > 1``."""
    if num_processes <= 1:
        for case in spec.cases:
            yield _fingerprint_one(spec, case, label_values, num_samples, seed)
        return
    with ProcessPoolExecutor(max_workers=num_processes) as pool:
        futures = [pool.submit(_fingerprint_one, spec, case, label_values, num_samples, seed)
                   for case in spec.cases]
        for future in futures:
            yield future.result()


def summarise(spec: Any, dataset_name: str, records: list[dict[str, Any]],
              samples: list[np.ndarray]) -> dict[str, Any]:
    """Assemble fingerprint.json from the per-case records and pooled samples."""
    channels = _channel_names(spec)
    region_mapping = spec.region_mapping
    fingerprint: dict[str, Any] = {
        "fingerprint_version": FINGERPRINT_VERSION,
        # No plans exist yet (they are made from this file), so the digest is None here;
        # plans.json records this fingerprint's digest instead.
        **provenance(None),
        "dataset_name": dataset_name,
        "channel_names": channels,
        "labels": dict(spec.labels),
        "region_mapping": region_mapping.to_json() if hasattr(region_mapping, "to_json") else region_mapping,
        "file_ending": spec.file_ending,
        "is_2d": all(r["is_2d"] for r in records),
        "num_cases": len(records),
        "component_connectivity": "full",
        "component_size_unit": "mm2" if all(r["is_2d"] for r in records) else "mm3",
        "file_formats": sorted({r["file_format"] for r in records}),
    }
    fingerprint.update(summary.geometry_summary(records))
    fingerprint["foreground_intensity"] = summary.pooled_intensity(samples, len(channels))
    fingerprint["value_range"] = summary.value_range_summary(records, len(channels))
    fingerprint["class_fractions"] = summary.class_fraction_summary(records)
    fingerprint["lesion_sizes"] = summary.lesion_summary(records)
    fingerprint["cases"] = records
    return fingerprint


def fingerprint_dataset(dataset_folder: str | Path, data_root: DataRoot, num_processes: int = 2,
                        progress: ProgressReporter | None = None, num_samples: int = DEFAULT_NUM_SAMPLES,
                        seed: int = 0) -> dict[str, Any]:
    """Compute the dataset fingerprint and write ``data_root.fingerprint_file(name)`` atomically.

    Cases stream through ``num_processes`` worker processes; each returns only its small record
    and at most ``num_samples`` foreground intensities per channel (see the module docstring for
    the peak memory: one case per worker).

    Args:
        dataset_folder: the raw dataset folder (MSD or nnU-Net v2 layout); its name names the output.
        data_root: the data root.
        num_processes: worker processes (1 runs in this process).
        progress: receives the "fingerprint" task, one step per case (default: nothing).
        num_samples: foreground voxels sampled per case for the intensity statistics.
        seed: base seed of the (deterministic) sampling.

    Returns:
        The fingerprint.json payload as written (``Fingerprint.from_json`` checked it first).

    Raises:
        InvalidInputError: when the dataset has no training case or a case lacks its label.
    """
    dataset_folder = Path(dataset_folder)
    spec = load_dataset(dataset_folder)
    if not spec.cases:
        raise InvalidInputError("dataset has no training cases", path=dataset_folder)
    label_values = _label_values(spec)
    log.info("fingerprinting %d cases of %s with %d processes", len(spec.cases), dataset_folder.name, num_processes)
    records, samples = [], []
    results = _results(spec, label_values, num_processes, num_samples, seed)
    for record, case_samples in track(results, reporter(progress), "fingerprint", len(spec.cases)):
        records.append(record)
        samples.append(case_samples)
    target = data_root.fingerprint_file(dataset_folder.name)
    fingerprint = Fingerprint.from_json(summarise(spec, dataset_folder.name, records, samples), target).to_json()
    write_json_atomic(target, fingerprint)
    data_root.record_dataset_source(dataset_folder)
    log.info("wrote %s", target)
    return fingerprint


def load_fingerprint(path: str | Path) -> Fingerprint:
    """Read a fingerprint.json, raising a clear error when it is missing, unreadable or invalid."""
    return Fingerprint.load(path)
