"""Conversions between plain folders and datasets, and between dataset layouts.

- :func:`convert_pairs`: folder of image/mask pairs -> dataset;
- :func:`export_pairs`: dataset -> folder of image/mask pairs;
- :func:`convert_layout`: Decathlon <-> nnU-Net v2 raw layout;
- :func:`convert_slices`: 3D dataset -> 2D dataset of slices.

Every conversion only reads its input and builds its output in a staging folder beside the
target, renamed into place at the end, so an interrupted run leaves no half dataset.
"""
from __future__ import annotations

from autolung.convert.export import export_pairs
from autolung.convert.pairs import PairsOptions, convert_pairs, parse_labels
from autolung.convert.relayout import convert_layout
from autolung.convert.slices import convert_slices

__all__ = ["PairsOptions", "convert_layout", "convert_pairs", "convert_slices", "export_pairs", "parse_labels"]
