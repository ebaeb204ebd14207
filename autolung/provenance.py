"""Provenance: which autolung and which plans made an artefact.

Every file autolung writes carries the autolung version and the digest of the plans it was made
with, so a result can always be traced back (and a model never silently paired with other plans):

* JSON records (fingerprint, plans, summaries, choices) hold ``autolung_version`` and
  ``plans_digest`` keys;
* image files hold a short note in their header: NIfTI ``descrip``, NRRD/MHA key-value fields,
  PNG text chunks (see :func:`image_metadata`);
* every folder of predicted masks holds ``autolung_predictions.json`` (:data:`PREDICTIONS_RECORD`),
  which names the models, their plans digests and the options, for formats without a header.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autolung import __version__

PREDICTIONS_RECORD = "autolung_predictions.json"

# NIfTI's descrip field holds 80 bytes; the note must fit it.
NIFTI_NOTE_LIMIT = 79


def provenance(plans_digests: str | Sequence[str] | None) -> dict[str, Any]:
    """The provenance keys to merge into a JSON record.

    Args:
        plans_digests: the digest of the plans used; several (an ensemble) or None (made before
            any plans exist, or from files autolung did not make).

    Returns:
        ``{"autolung_version": ..., "plans_digest": ...}``, the digest a string, a list, or None.
    """
    if plans_digests is not None and not isinstance(plans_digests, str):
        unique = sorted(set(plans_digests))
        plans_digests = None if not unique else unique[0] if len(unique) == 1 else unique
    return {"autolung_version": __version__, "plans_digest": plans_digests}


def header_note(plans_digests: str | Sequence[str] | None) -> str:
    """A one-line note for image headers, short enough for NIfTI's 80-byte ``descrip``."""
    digests = provenance(plans_digests)["plans_digest"]
    if digests is None:
        text = f"autolung {__version__}"
    elif isinstance(digests, str):
        text = f"autolung {__version__} plans {digests}"
    else:
        text = f"autolung {__version__} plans {'+'.join(digests)}"
    return text[:NIFTI_NOTE_LIMIT]


def image_metadata(plans_digests: str | Sequence[str] | None) -> dict[str, str]:
    """Header fields for a written image: a note plus separate version and digest fields.

    Formats with free key-value headers (NRRD, MHA, PNG) keep all three; NIfTI keeps the note.
    """
    digests = provenance(plans_digests)["plans_digest"]
    if digests is None:
        joined = ""
    else:
        joined = digests if isinstance(digests, str) else "+".join(digests)
    return {"note": header_note(plans_digests), "autolung_version": __version__, "autolung_plans_digest": joined}


def read_predictions_record(folder: str | Path) -> dict[str, Any] | None:
    """The ``autolung_predictions.json`` of a folder of masks, or None when absent or unreadable."""
    path = Path(folder) / PREDICTIONS_RECORD
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def predictions_record(models: list[dict[str, Any]], options: dict[str, Any], cases: Sequence[str],
                       previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record written beside predicted masks.

    Args:
        models: one dict per model: configuration, folds, source and ``plans_digest``.
        options: the prediction options that change results.
        cases: case ids predicted now.
        previous: the folder's earlier record; its cases are kept when it came from the same
            models and options (a resumed run), dropped otherwise.

    Returns:
        The record to write.
    """
    digests = [m["plans_digest"] for m in models]
    record = {"format": "autolung-predictions", "version": 1, **provenance(digests),
              "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "models": models, "options": options}
    earlier: list[str] = []
    if previous is not None and previous.get("models") == models and previous.get("options") == options:
        earlier = [c for c in previous.get("cases", []) if isinstance(c, str)]
    record["cases"] = sorted(set(earlier) | set(cases))
    return record


def figure_metadata(plans_digests: str | Sequence[str] | None = None) -> dict[str, str]:
    """PNG text fields for matplotlib's ``savefig(metadata=...)``."""
    return {"Software": f"autolung {__version__}", "Comment": header_note(plans_digests)}


def mask_plans_digest(mask_path: str | Path) -> str | None:
    """The plans digest recorded beside a predicted mask (joined with ``+`` for an ensemble)."""
    record = read_predictions_record(Path(mask_path).parent)
    digests = record.get("plans_digest") if record else None
    if isinstance(digests, list):
        return "+".join(str(d) for d in digests)
    return digests if isinstance(digests, str) else None
