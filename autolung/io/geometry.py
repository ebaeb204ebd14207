"""Image geometry kept exactly from input to output.

Convention used everywhere in autolung: arrays are channel-first ``(C, Z, Y, X)`` (the order
SimpleITK's ``GetArrayFromImage`` gives), and a 2D image is stored as ``Z == 1``. ``spacing`` is
given in array-axis order (z, y, x). ``origin`` and ``direction`` are kept in ITK's physical
order so they round-trip through SimpleITK untouched.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# nnU-Net's convention for the meaningless slice spacing of 2D images: large, so that no
# planner rule ever treats the slice axis as resamplable.
SPACING_2D_SLICE = 999.0


@dataclass(frozen=True)
class ImageGeometry:
    """Everything needed to write a mask back exactly like its input.

    Attributes:
        shape: spatial shape in array order (z, y, x); 2D images have z == 1.
        spacing: voxel size in mm, array order (z, y, x).
        origin: ITK physical origin (x, y, z), or (x, y) for 2D files.
        direction: ITK direction matrix, row-major flattened.
        file_dims: dimensionality of the file on disk (2 or 3).
        file_format: format key of the file read ("nifti", "nrrd", "mha", "dicom", "png", ...).
        extra: format-specific details needed to write back (e.g. RGB, dtype).
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]
    file_dims: int = 3
    file_format: str = "nifti"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_2d(self) -> bool:
        return self.file_dims == 2

    def to_json(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["shape"] = list(self.shape)
        payload["spacing"] = list(self.spacing)
        payload["origin"] = list(self.origin)
        payload["direction"] = list(self.direction)
        return payload

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> ImageGeometry:
        return cls(
            shape=tuple(int(v) for v in payload["shape"]),
            spacing=tuple(float(v) for v in payload["spacing"]),
            origin=tuple(float(v) for v in payload["origin"]),
            direction=tuple(float(v) for v in payload["direction"]),
            file_dims=int(payload.get("file_dims", 3)),
            file_format=str(payload.get("file_format", "nifti")),
            extra=dict(payload.get("extra", {})),
        )
