"""Model bundles: round trip, and refusal of malicious pickles, zip-slip, symlinks, tampering."""
from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile

import pytest
import SimpleITK as sitk
import torch

from autolung.errors import UnsafeFileError
from autolung.inference.bundle import export_model, extract_bundle, install_model, opened_bundle
from autolung.inference.model import load_checkpoint, load_trained_model
from autolung.inference.predictor import PredictionOptions, predict_paths

from conftest import make_case
from .fake_model import tiny_plans, write_fake_model

CONFIG = "3d_fullres__default"


class FileCreatingPayload:
    """Unpickling this would run ``os.system`` and create a file."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.fixture
def bundle(tmp_path):
    results = tmp_path / "results" / "Tiny_CT"
    write_fake_model(results / CONFIG, tiny_plans(), folds=(0, 1), bias=0.2)
    return export_model(results, [CONFIG], tmp_path / "model.zip", folds=[1])


def _rewrite(bundle, target, replace: dict[str, bytes], extra: list[zipfile.ZipInfo | tuple] = (),
             fix_manifest: bool = True):
    """Copy a bundle, replacing members; optionally recompute the manifest checksums."""
    with zipfile.ZipFile(bundle) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members.update(replace)
    if fix_manifest:
        manifest = json.loads(members["manifest.json"])
        for name in replace:
            manifest["files"][name] = hashlib.sha256(replace[name]).hexdigest()
        members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for info, data in extra:
            archive.writestr(info, data)
    return target


def test_export_strips_training_state_and_installs(tmp_path, bundle):
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
    assert f"{CONFIG}/fold_1/checkpoint_final.pt" in names and f"{CONFIG}/fold_0/checkpoint_final.pt" not in names
    installed = install_model(bundle, tmp_path / "root" / "results")
    checkpoint = load_checkpoint(installed / CONFIG / "fold_1" / "checkpoint_final.pt")
    assert "optimizer_state" not in checkpoint and "network_weights" in checkpoint
    assert load_trained_model(installed / CONFIG).folds == [1]
    # The identical bundle again (e.g. rerunning an install that was killed): accepted, nothing changes.
    assert install_model(bundle, tmp_path / "root" / "results") == installed
    # Different files under the same configuration name: refused without --overwrite.
    (installed / CONFIG / "fold_1" / "notes.txt").write_text("local change")
    with pytest.raises(Exception, match="already installed"):
        install_model(bundle, tmp_path / "root" / "results")


def test_predict_with_bundle_directly(tmp_path, bundle):
    source = tmp_path / "a.nii.gz"
    sitk.WriteImage(make_case((8, 20, 20), seed=0)[0], str(source))
    with opened_bundle(bundle) as folder:
        model = load_trained_model(folder / CONFIG)
        [mask] = predict_paths(source, tmp_path / "out", [model], PredictionOptions(mirror=False))
    assert sitk.ReadImage(str(mask)).GetSize() == (20, 20, 8)


def test_malicious_pickle_is_refused_without_running(tmp_path, bundle):
    marker = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"network_weights": FileCreatingPayload(str(marker))}, buffer)
    evil = _rewrite(bundle, tmp_path / "evil.zip", {f"{CONFIG}/fold_1/checkpoint_final.pt": buffer.getvalue()})
    with pytest.raises(UnsafeFileError, match="weights-only"):
        install_model(evil, tmp_path / "root" / "results")
    assert not marker.exists()
    assert not (tmp_path / "root" / "results" / "Tiny_CT" / CONFIG).exists()
    with pytest.raises(UnsafeFileError):
        with opened_bundle(evil):
            pass
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../escaped.txt", "/tmp/absolute.txt", "a/../../escaped.txt"])
def test_zip_slip_is_refused(tmp_path, bundle, name):
    evil = _rewrite(bundle, tmp_path / "slip.zip", {}, extra=[(zipfile.ZipInfo(name), b"x")])
    with pytest.raises(UnsafeFileError, match="escapes|absolute"):
        extract_bundle(evil, tmp_path / "target")
    assert not (tmp_path / "escaped.txt").exists()


def test_symlink_entry_is_refused(tmp_path, bundle):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    evil = _rewrite(bundle, tmp_path / "link.zip", {}, extra=[(info, b"/etc/passwd")])
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        extract_bundle(evil, tmp_path / "target")


def test_tampered_file_fails_checksum(tmp_path, bundle):
    tampered = _rewrite(bundle, tmp_path / "tampered.zip", {f"{CONFIG}/plans.json": b"{}"}, fix_manifest=False)
    with pytest.raises(UnsafeFileError, match="checksum mismatch"):
        install_model(tampered, tmp_path / "root" / "results")
    assert not (tmp_path / "root" / "results" / "Tiny_CT" / CONFIG).exists()
    assert not [p for p in (tmp_path / "root" / "results").iterdir() if p.name.startswith(".autolung")]


def test_unlisted_entry_is_refused(tmp_path, bundle):
    evil = _rewrite(bundle, tmp_path / "extra.zip", {}, extra=[(zipfile.ZipInfo(f"{CONFIG}/extra.py"), b"print(1)")])
    with pytest.raises(UnsafeFileError, match="not in the manifest"):
        extract_bundle(evil, tmp_path / "target")
