"""Pictures of measured lesions: a crop of the RECIST slice with the outline and both axes.

Drawn with matplotlib's object API (no pyplot state), written atomically with provenance text
chunks. Rows run along the array's y axis and columns along x, scaled to millimetres.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from autolung.provenance import figure_metadata
from autolung.reporting.measure import Lesion
from autolung.utils.atomic import atomic_path
from autolung.visualization.overlay import looks_like_ct, window_image

# Context around a lesion in the crop: this many millimetres, at least.
CROP_MARGIN_MM = 15.0
LONG_AXIS_COLOUR = "#ff3b30"
SHORT_AXIS_COLOUR = "#00c7ff"
OUTLINE_COLOUR = "#ffd60a"


def _crop(lesion: Lesion, shape: tuple[int, ...], spacing: tuple[float, ...]) -> tuple[slice, slice]:
    bounds = []
    for axis in (1, 2):
        margin = int(np.ceil(max(CROP_MARGIN_MM, 0.5 * lesion.long_axis_mm) / spacing[axis]))
        low = max(lesion.bbox_min_zyx[axis] - margin, 0)
        high = min(lesion.bbox_max_zyx[axis] + margin + 1, shape[axis])
        bounds.append(slice(low, high))
    return bounds[0], bounds[1]


def draw_lesion(image: np.ndarray, lesion_mask: np.ndarray, lesion: Lesion, spacing: tuple[float, ...],
                output: str | Path, title: str, plans_digest: str | None = None) -> Path:
    """Write the lesion's picture.

    Args:
        image: ``(Z, Y, X)`` intensities.
        lesion_mask: ``(Z, Y, X)`` boolean mask of this lesion only.
        lesion: its measurements (slice, axis end points).
        spacing: voxel size (z, y, x) in mm.
        output: the PNG to write.
        title: first title line.
        plans_digest: provenance for the PNG text chunks.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, cols = _crop(lesion, image.shape, spacing)
    plane = image[lesion.recist_slice, rows, cols]
    outline = lesion_mask[lesion.recist_slice, rows, cols]
    height, width = plane.shape[0] * spacing[1], plane.shape[1] * spacing[2]
    figure = Figure(figsize=(4.2, 4.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    shown = window_image(plane, looks_like_ct(image[lesion.recist_slice]), "lung")
    # Pixel edges at 0 .. width mm; pixel centres at (index + 0.5) * spacing.
    axes.imshow(shown, cmap="gray", vmin=0, vmax=1, extent=(0, width, height, 0), interpolation="nearest")
    if outline.any():
        ys = (np.arange(outline.shape[0]) + 0.5) * spacing[1]
        xs = (np.arange(outline.shape[1]) + 0.5) * spacing[2]
        axes.contour(xs, ys, outline.astype(float), levels=[0.5], colors=OUTLINE_COLOUR, linewidths=1.0)
    for ends, colour, name, value in (
            (lesion.long_axis_endpoints_zyx, LONG_AXIS_COLOUR, "long", lesion.long_axis_mm),
            (lesion.short_axis_endpoints_zyx, SHORT_AXIS_COLOUR, "short", lesion.short_axis_mm)):
        ys = [(p[1] - rows.start + 0.5) * spacing[1] for p in ends]
        xs = [(p[2] - cols.start + 0.5) * spacing[2] for p in ends]
        axes.plot(xs, ys, color=colour, linewidth=1.6, marker="o", markersize=2.5,
                  label=f"{name} axis {value:.1f} mm")
    axes.set_xlim(0, width)
    axes.set_ylim(height, 0)
    axes.set_xlabel("mm")
    axes.legend(loc="lower left", fontsize=7, framealpha=0.6)
    axes.set_title(f"{title}\n{lesion.label_name}, slice {lesion.recist_slice}, {lesion.volume_ml:.2f} mL",
                   fontsize=9)
    figure.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", metadata=figure_metadata(plans_digest))
    return output
