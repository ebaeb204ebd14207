"""What every DICOM object autolung writes shares: the source series, coded terms, de-identification.

highdicom builds the objects (it validates the modules as it goes and copies the patient and
study attributes from the source images); this module reads the source series in the order the
mask's slices have, names the classes with SNOMED CT codes, and blanks identifying attributes
when asked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from autolung import __version__
from autolung.errors import InvalidInputError

logger = logging.getLogger(__name__)

MANUFACTURER = "autolung"
# Identifying attributes blanked by ``deidentify`` (DICOM PS3.15 basic profile, the patient and
# visit part); UIDs are kept so the object still references its source series.
IDENTIFYING_ATTRIBUTES = (
    "PatientBirthDate", "PatientSex", "PatientAge", "OtherPatientIDs", "OtherPatientNames", "PatientAddress",
    "AccessionNumber", "ReferringPhysicianName", "InstitutionName", "InstitutionAddress", "OperatorsName",
    "PerformingPhysicianName", "StudyDescription", "StudyID",
)
ANONYMOUS_NAME = "ANONYMOUS"


@dataclass(frozen=True)
class CodedClass:
    """A label's DICOM description: category and type codes (SNOMED CT)."""

    category: tuple[str, str, str]
    type: tuple[str, str, str]


_ANATOMY = ("91723000", "SCT", "Anatomical Structure")
_ALTERED = ("49755003", "SCT", "Morphologically Altered Structure")
_CLASS_RULES = (
    (("lung",), CodedClass(_ANATOMY, ("39607008", "SCT", "Lung"))),
    (("tumour", "tumor", "neoplasm", "gtv", "cancer", "mass"), CodedClass(_ALTERED, ("108369006", "SCT", "Neoplasm"))),
    (("nodule",), CodedClass(_ALTERED, ("27925004", "SCT", "Nodule"))),
)
_FALLBACK = CodedClass(_ALTERED, ("52988006", "SCT", "Lesion"))


def coded_class(name: str) -> CodedClass:
    """SNOMED CT category and type for a label name (lung, tumour/neoplasm, nodule; else lesion)."""
    lowered = name.lower()
    for words, coded in _CLASS_RULES:
        if any(word in lowered for word in words):
            return coded
    logger.warning("label %r has no specific code; described as SCT 52988006 'Lesion'", name)
    return _FALLBACK


def code(triple: tuple[str, str, str]):
    """A highdicom CodedConcept from ``(value, scheme, meaning)``."""
    from highdicom.sr import CodedConcept

    return CodedConcept(value=triple[0], scheme_designator=triple[1], meaning=triple[2])


def require_highdicom() -> None:
    """Raise a clear error when the optional DICOM libraries are missing."""
    try:
        import highdicom  # noqa: F401
        import pydicom  # noqa: F401
    except ImportError as exc:
        raise InvalidInputError(f"DICOM output needs highdicom and pydicom ({exc}); "
                                "install them with: pip install 'autolung[dicom]'") from exc


def read_source_series(folder: str | Path) -> list:
    """The datasets of the DICOM series in ``folder``, in the slice order of autolung's arrays.

    The order is the one :func:`autolung.io.dicom.series_files` gives, which is the order of the
    z axis of the image and mask arrays, whatever the files' names or instance numbers.

    Raises:
        InvalidInputError: not a DICOM series folder, or a series without the CT/MR image
            attributes a SEG needs.
    """
    from autolung.io.dicom import is_dicom_folder, series_files

    require_highdicom()
    import pydicom

    folder = Path(folder)
    if not is_dicom_folder(folder):
        raise InvalidInputError("DICOM output needs a DICOM series as input; this is not a DICOM series folder",
                                path=folder)
    datasets = [pydicom.dcmread(name) for name in series_files(folder)]
    for required in ("FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        if required not in datasets[0]:
            raise InvalidInputError(f"DICOM series lacks {required}; cannot reference it", path=folder)
    return datasets


def deidentify(dataset, patient_id: str = ANONYMOUS_NAME) -> None:
    """Blank identifying patient and visit attributes of a written object in place.

    UIDs stay, so the object still references its (identified) source; send the source through
    a de-identifier that keeps a UID map if it must leave the hospital too.
    """
    dataset.PatientName = ANONYMOUS_NAME
    dataset.PatientID = patient_id
    for keyword in IDENTIFYING_ATTRIBUTES:
        if keyword in dataset:
            setattr(dataset, keyword, "")
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "autolung: patient and visit attributes blanked, UIDs kept"


def algorithm_identification():
    """highdicom's AlgorithmIdentificationSequence naming autolung."""
    from highdicom import AlgorithmIdentificationSequence
    from highdicom.sr import CodedConcept

    # CID 7162 (algorithm family): DCM 123110 "Artificial Intelligence"
    return AlgorithmIdentificationSequence(
        name="autolung", version=__version__,
        family=CodedConcept(value="123110", scheme_designator="DCM", meaning="Artificial Intelligence"))
