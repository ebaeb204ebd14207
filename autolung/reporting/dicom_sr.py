"""DICOM SR measurement report (TID 1500) of measured lesions, built with highdicom.

One TID 1411 volumetric ROI group per lesion: its tracking identifier, the class as finding
type, the lung side as finding site, the SEG segment of its class with the source images the
lesion lies on, and the measurements volume (mm3), RECIST long and short axis (mm, with the image of
the RECIST slice) and 3D maximum diameter (mm). highdicom's templates are used because TID 1500's
nesting, relationship types and evidence sequences are easy to get subtly wrong by hand.
"""
from __future__ import annotations

import logging
from pathlib import Path

from autolung import __version__
from autolung.errors import InvalidInputError
from autolung.reporting.dicom_common import MANUFACTURER, code, coded_class, deidentify, read_source_series
from autolung.reporting.dicom_seg import WrittenSegmentation
from autolung.reporting.measure import Lesion
from autolung.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

SR_SERIES_NUMBER = 902
# Codes: SCT volume, long axis, short axis, diameter; SCT left/right lung; LOINC CT chest.
VOLUME = ("118565006", "SCT", "Volume")
LONG_AXIS = ("103339001", "SCT", "Long axis")
SHORT_AXIS = ("103340004", "SCT", "Short axis")
DIAMETER = ("81827009", "SCT", "Diameter")
MAXIMUM = ("56851009", "SCT", "Maximum")
CT_CHEST = ("24627-2", "LN", "CT Chest")
SIDES = {"left": ("44029006", "SCT", "Left lung"), "right": ("3341006", "SCT", "Right lung")}
MM = ("mm", "UCUM", "millimeter")
MM3 = ("mm3", "UCUM", "cubic millimeter")


def _lesion_group(lesion: Lesion, segmentation, seg_info: WrittenSegmentation, source: list):
    import highdicom as hd

    segment = seg_info.segment_numbers.get(lesion.label)
    if segment is None:
        raise InvalidInputError(f"lesion {lesion.lesion} has label {lesion.label}, which has no segment in "
                                f"{seg_info.path}")
    # Built by hand rather than with ReferencedSegment.from_segmentation, which (highdicom 0.28) fails on
    # a SEG with one segment, whose segment identification sits in the shared functional groups.
    lesion_slices = source[lesion.bbox_min_zyx[0]:lesion.bbox_max_zyx[0] + 1]
    referenced = hd.sr.ReferencedSegment(
        sop_class_uid=segmentation.SOPClassUID, sop_instance_uid=segmentation.SOPInstanceUID, segment_number=segment,
        source_images=[hd.sr.SourceImageForSegmentation(image.SOPClassUID, image.SOPInstanceUID)
                       for image in lesion_slices])
    on_slice = [hd.sr.SourceImageForMeasurement.from_source_image(source[lesion.recist_slice])]
    measurements = [
        hd.sr.Measurement(name=code(VOLUME), value=lesion.volume_mm3, unit=code(MM3)),
        hd.sr.Measurement(name=code(LONG_AXIS), value=lesion.long_axis_mm, unit=code(MM), referenced_images=on_slice),
        hd.sr.Measurement(name=code(SHORT_AXIS), value=lesion.short_axis_mm, unit=code(MM),
                          referenced_images=on_slice),
        hd.sr.Measurement(name=code(DIAMETER), value=lesion.max_diameter_3d_mm, unit=code(MM),
                          qualifier=code(MAXIMUM)),
    ]
    sites = ([hd.sr.FindingSite(anatomic_location=code(SIDES[lesion.side]))] if lesion.side in SIDES else None)
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"lesion {lesion.lesion}"),
        referenced_segment=referenced, finding_type=code(coded_class(lesion.label_name).type),
        finding_sites=sites, measurements=measurements)


def write_dicom_sr(source_folder: str | Path, seg_info: WrittenSegmentation, lesions: list[Lesion],
                   output: str | Path, anonymize: bool = False) -> Path:
    """Write the TID 1500 measurement report of ``lesions`` measured on the series in ``source_folder``.

    Args:
        source_folder: the source DICOM series (its slice order is the lesions' z index).
        seg_info: the SEG written for the same mask (segments referenced per lesion).
        lesions: the measured lesions (may be empty: a report with no findings).
        output: the ``.dcm`` file to write (atomically).
        anonymize: blank identifying patient and visit attributes (UIDs kept).

    Returns:
        The path written.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    source = read_source_series(source_folder)
    segmentation = hd.seg.segread(seg_info.path)
    groups = [_lesion_group(lesion, segmentation, seg_info, source) for lesion in lesions]
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=hd.UID(), name="autolung", manufacturer_name=MANUFACTURER, model_name=f"autolung {__version__}"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=code(CT_CHEST), imaging_measurements=groups or None,
        title=codes.cid7021.ImagingMeasurementReport)
    document = hd.sr.Comprehensive3DSR(
        evidence=[*source, segmentation], content=report[0], series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=True, series_description="autolung lesion measurements")
    if anonymize:
        deidentify(document)
    output = Path(output)
    with atomic_path(output) as tmp:
        document.save_as(tmp)
    logger.info("%s: DICOM SR with %d lesion(s)", output, len(groups))
    return output
