"""Raw datasets: layout detection and loading (:mod:`.layout`) and checking (:mod:`.verify`)."""
from __future__ import annotations
