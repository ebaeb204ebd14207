"""Per-lesion measurements and the files a clinic takes away: tables, pictures, DICOM SEG/SR/RTSTRUCT.

- :mod:`autolung.reporting.measure`: connected lesions per class and their measurements
  (volume, RECIST axes, 3D diameter, centroid, HU statistics, lung side) in physical space;
- :mod:`autolung.reporting.report`: ``lesions.csv``, ``report.json``, pictures and the per-case summary;
- :mod:`autolung.reporting.dicom_seg`, :mod:`autolung.reporting.dicom_sr`,
  :mod:`autolung.reporting.rtstruct`: DICOM objects referencing the source series.
"""
