"""Write the held-out protocol's patient-disjoint train/test splits to ``benchmarks/splits/<set>.json``.

Usage::

    .venv/bin/python benchmarks/make_splits.py [--data ../shared/data] [--check]

Each real set in ``../shared/data`` is split once, deterministically, by patient: 80 % of the
patients train, 20 % test (at least one). Patients are ordered by the SHA-256 of
``"<seed>:<patient>"``, so the split depends on nothing but the case names (no RNG, no library
version). NSCLC_LungCT (3 scans) is split leave-one-scan-out instead, one fold per scan.

Patient ids (from each set's SOURCE/README files):

- LIDCNodules3D: ``lidc_<patient>_<nodule>``, the patient is ``lidc_<patient>``.
- CXR_Lungs2D: ``chncxr_<n>_<finding>`` / ``mcucxr_<n>_<finding>`` (Shenzhen / Montgomery, one
  image per patient in both sources), the patient is ``<source>_<n>``.
- Task04_Hippocampus: one MRI per subject in MSD Task04, so one case is one patient.
- NSCLC_LungCT: one scan per patient (LUNG1-001..003).
- FindingLungs2D, COVID_Infection2D, MSDLungTumourPatches2D: the sources lost the patient of each
  slice or patch (Kaggle slices resized to numbered arrays; COVID-SemiSeg slices numbered; MSD
  patches drawn from 26 patients' h5 files without a per-patch patient), so these are split by
  case and several slices of one patient may sit on both sides. Their Dice is therefore an upper
  bound of the held-out one; the split files say so in ``patient_rule``.

``--check`` rewrites nothing and exits 1 when a committed split differs from a fresh one.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPLITS = REPO / "benchmarks" / "splits"
SEED = "autolung-heldout-v1"
TEST_FRACTION = 0.2

# set name -> (regex on the case id whose group 1 is the patient, rule in words)
PATIENT_RULES: dict[str, tuple[str, str]] = {
    "LIDCNodules3D": (r"^(lidc_\d+)_\d+$", "patient = lidc_<patient> prefix of lidc_<patient>_<nodule>"),
    "CXR_Lungs2D": (r"^((?:chncxr|mcucxr)_\d+)_\d+$",
                    "patient = <source>_<number> (Shenzhen/Montgomery: one image per patient)"),
    "Task04_Hippocampus": (r"^(.+)$", "one MRI per subject: case = patient"),
    "FindingLungs2D": (r"^(.+)$", "NO patient information in the source: split by case (slices of one "
                                  "patient may be on both sides)"),
    "COVID_Infection2D": (r"^(.+)$", "NO patient information in the source: split by case (slices of one "
                                     "patient may be on both sides)"),
    "MSDLungTumourPatches2D": (r"^(.+)$", "NO per-patch patient in the source (26 MSD patients): split by "
                                          "case (patches of one patient may be on both sides)"),
}
LEAVE_ONE_OUT = {"NSCLC_LungCT": "one scan per patient: leave one scan out, in turn"}


def case_ids(dataset: Path) -> list[str]:
    """Case ids of a raw set (nnU-Net v2 or Decathlon layout), from its label files."""
    names = sorted(p.name for p in (dataset / "labelsTr").iterdir() if not p.name.startswith("."))
    ids = []
    for name in names:
        for ending in (".nii.gz", ".png", ".jpg", ".nii", ".nrrd", ".mha", ".tif"):
            if name.endswith(ending):
                ids.append(name[: -len(ending)])
                break
    return ids


def patient_of(case: str, pattern: str) -> str:
    match = re.match(pattern, case)
    if match is None:
        raise ValueError(f"case {case!r} does not match the patient rule {pattern!r}")
    return match.group(1)


def _order(patient: str) -> str:
    return hashlib.sha256(f"{SEED}:{patient}".encode()).hexdigest()


def split_by_patient(cases: list[str], pattern: str, test_fraction: float = TEST_FRACTION) -> dict[str, list[str]]:
    """One 80/20 split of ``cases`` with no patient on both sides.

    Returns:
        ``{"train": [...], "test": [...]}``, each sorted.
    """
    patients: dict[str, list[str]] = {}
    for case in cases:
        patients.setdefault(patient_of(case, pattern), []).append(case)
    ordered = sorted(patients, key=_order)
    num_test = max(1, int(math.ceil(len(ordered) * test_fraction)))
    test_patients = set(ordered[:num_test])
    test = sorted(c for p in test_patients for c in patients[p])
    train = sorted(c for p in ordered[num_test:] for c in patients[p])
    return {"train": train, "test": test}


def make_split(name: str, dataset: Path) -> dict:
    """The split record of one set: rule, patients and folds (one, or one per scan)."""
    cases = case_ids(dataset)
    if name in LEAVE_ONE_OUT:
        folds = [{"train": [c for c in cases if c != held], "test": [held]} for held in cases]
        return {"dataset": name, "patient_rule": LEAVE_ONE_OUT[name], "patient_pattern": r"^(.+)$",
                "seed": SEED, "num_cases": len(cases), "folds": folds}
    pattern, rule = PATIENT_RULES[name]
    split = split_by_patient(cases, pattern)
    return {"dataset": name, "patient_rule": rule, "patient_pattern": pattern, "seed": SEED,
            "test_fraction": TEST_FRACTION, "num_cases": len(cases),
            "num_patients": len({patient_of(c, pattern) for c in cases}), "folds": [split]}


def load_split(name: str, fold: int = 0) -> dict[str, list[str]]:
    """The committed ``{"train", "test"}`` case lists of one set and fold."""
    record = json.loads((SPLITS / f"{name}.json").read_text())
    return record["folds"][fold]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args()
    SPLITS.mkdir(parents=True, exist_ok=True)
    differ = 0
    for name in [*PATIENT_RULES, *LEAVE_ONE_OUT]:
        folder = args.data / name
        if not folder.is_dir():
            print(f"{name}: absent at {folder}, skipped")
            continue
        record = make_split(name, folder)
        text = json.dumps(record, indent=1) + "\n"
        target = SPLITS / f"{name}.json"
        if args.check:
            same = target.is_file() and target.read_text() == text
            differ += not same
            print(f"{name}: {'same' if same else 'DIFFERS'}")
            continue
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(target)
        fold = record["folds"][0]
        print(f"{name}: {record['num_cases']} cases, {len(record['folds'])} fold(s), fold 0 "
              f"{len(fold['train'])} train / {len(fold['test'])} test ({record['patient_rule']})")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
