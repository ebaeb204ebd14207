"""DICOM RT Structure Set of a label map, for radiotherapy planning systems.

highdicom has no RTSTRUCT writer, and rt-utils pulls in OpenCV for contouring and is little
maintained, so the object is built here with pydicom, module by module after PS3.3 A.19
(Patient, General Study, RT Series, General Equipment, Structure Set, ROI Contour, RT ROI
Observations, SOP Common), and checked with dciodvfy in the tests.

Contours are the 0.5 iso-lines of each class on each slice (scikit-image's marching squares):
they pass midway between voxel centres inside and outside, so a planning system that fills
polygons by voxel centre gets the mask back. Holes are separate contours (even-odd filling).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from autolung import __version__
from autolung.errors import InvalidInputError
from autolung.reporting.dicom_common import MANUFACTURER, deidentify, read_source_series
from autolung.reporting.dicom_seg import check_mask_matches_series, segment_labels
from autolung.reporting.geometry import index_to_patient
from autolung.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
# PS3.3 C.8.8.5: the study is referenced by this (retired) SOP class.
STUDY_COMPONENT_CLASS = "1.2.840.10008.3.1.2.3.1"
RTSTRUCT_SERIES_NUMBER = 903
_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
           "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription")
_COLOURS = ((255, 59, 48), (0, 199, 255), (255, 214, 10), (52, 199, 89), (175, 82, 222))


def slice_contours(mask_slice: np.ndarray) -> list[np.ndarray]:
    """Closed contours (``(N, 2)`` fractional row, column) of a boolean slice at the 0.5 level."""
    from skimage.measure import find_contours

    padded = np.pad(mask_slice.astype(np.float32), 1)
    contours = []
    for contour in find_contours(padded, 0.5):
        contour = contour - 1.0
        if np.allclose(contour[0], contour[-1]):
            contour = contour[:-1]  # DICOM closes CLOSED_PLANAR contours itself
        if len(contour) >= 3:
            contours.append(contour)
    return contours


def _interpreted_type(name: str) -> str:
    lowered = name.lower()
    if any(word in lowered for word in ("tumour", "tumor", "gtv", "neoplasm", "cancer")):
        return "GTV"
    if any(word in lowered for word in ("lung", "heart", "organ")):
        return "ORGAN"
    return "CONTROL"


def _contour_image(image) -> object:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = image.SOPClassUID
    item.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return item


def _referenced_frame(source: list) -> object:
    from pydicom.dataset import Dataset

    series = Dataset()
    series.SeriesInstanceUID = source[0].SeriesInstanceUID
    series.ContourImageSequence = [_contour_image(image) for image in source]
    study = Dataset()
    study.ReferencedSOPClassUID = STUDY_COMPONENT_CLASS
    study.ReferencedSOPInstanceUID = source[0].StudyInstanceUID
    study.RTReferencedSeriesSequence = [series]
    frame = Dataset()
    frame.FrameOfReferenceUID = source[0].FrameOfReferenceUID
    frame.RTReferencedStudySequence = [study]
    return frame


def _roi(number: int, name: str, value: int, mask: np.ndarray, source: list, geometry) -> tuple:
    """The Structure Set ROI, ROI Contour and RT ROI Observation items of one class."""
    from pydicom.dataset import Dataset

    roi = Dataset()
    roi.ROINumber = number
    roi.ReferencedFrameOfReferenceUID = source[0].FrameOfReferenceUID
    roi.ROIName = name
    roi.ROIGenerationAlgorithm = "AUTOMATIC"
    contours = []
    for z in np.flatnonzero((mask == value).any(axis=(1, 2))):
        for contour in slice_contours(mask[z] == value):
            points = index_to_patient(geometry, np.column_stack([np.full(len(contour), float(z)), contour]))
            item = Dataset()
            item.ContourImageSequence = [_contour_image(source[z])]
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(points)
            item.ContourData = [f"{v:.4f}" for v in points.ravel()]
            contours.append(item)
    roi_contour = Dataset()
    roi_contour.ROIDisplayColor = list(_COLOURS[(number - 1) % len(_COLOURS)])
    roi_contour.ReferencedROINumber = number
    if contours:
        roi_contour.ContourSequence = contours
    observation = Dataset()
    observation.ObservationNumber = number
    observation.ReferencedROINumber = number
    observation.RTROIInterpretedType = _interpreted_type(name)
    observation.ROIInterpreter = ""
    return roi, roi_contour, observation


def build_rtstruct(source: list, mask: np.ndarray, geometry, label_names: Mapping[int, str]):
    """The RT Structure Set dataset of ``mask`` over ``source`` (datasets in the mask's slice order)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    now = dt.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    for keyword in _COPIED:
        setattr(ds, keyword, source[0].get(keyword, ""))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = RTSTRUCT_SERIES_NUMBER
    ds.SeriesDescription = "autolung structures"
    ds.OperatorsName = ""
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = "autolung"
    ds.SoftwareVersions = __version__
    ds.FrameOfReferenceUID = source[0].FrameOfReferenceUID
    ds.PositionReferenceIndicator = source[0].get("PositionReferenceIndicator", "")
    ds.StructureSetLabel = "autolung"
    ds.StructureSetDate, ds.StructureSetTime = ds.InstanceCreationDate, ds.InstanceCreationTime
    ds.InstanceNumber = 1
    ds.ReferencedFrameOfReferenceSequence = [_referenced_frame(source)]
    values = segment_labels(mask, label_names)
    if not values:
        raise InvalidInputError("the mask is empty and no label names were given: an RT Structure Set needs at "
                                "least one ROI")
    items = [_roi(number, label_names.get(value, f"label {value}"), value, mask, source, geometry)
             for number, value in enumerate(values, start=1)]
    ds.StructureSetROISequence = [roi for roi, _, _ in items]
    ds.ROIContourSequence = [contour for _, contour, _ in items]
    ds.RTROIObservationsSequence = [observation for _, _, observation in items]
    ds.ApprovalStatus = "UNAPPROVED"
    return ds


def write_rtstruct(source_folder: str | Path, mask: np.ndarray, output: str | Path,
                   label_names: Mapping[int, str] | None = None, anonymize: bool = False) -> Path:
    """Write ``mask`` (on the grid of the series in ``source_folder``) as an RT Structure Set.

    Args:
        source_folder: the DICOM series the mask was made from.
        mask: ``(Z, Y, X)`` label map in autolung's array order for that series.
        output: the ``.dcm`` file to write (atomically).
        label_names: ROI names per label.
        anonymize: blank identifying patient and visit attributes (UIDs kept).

    Returns:
        The path written.
    """
    from autolung.io.images import read_geometry

    source_folder = Path(source_folder)
    source = read_source_series(source_folder)
    check_mask_matches_series(mask, source, source_folder)
    dataset = build_rtstruct(source, mask, read_geometry(source_folder), dict(label_names or {}))
    if anonymize:
        deidentify(dataset)
    output = Path(output)
    with atomic_path(output) as tmp:
        dataset.save_as(tmp, enforce_file_format=True)
    logger.info("%s: RT Structure Set with %d ROI(s)", output, len(dataset.StructureSetROISequence))
    return output
