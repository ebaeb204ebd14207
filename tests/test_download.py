"""``autolung download``: fetch, resume, verify and unpack an MSD-style tar from a local HTTP server."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from conftest import run_cli_group

from autolung.datasets_remote import resolve_remote_dataset
from autolung.datasets_remote.archive import extract_archive
from autolung.datasets_remote.catalog import MSD_TASKS
from autolung.errors import InvalidInputError, UnsafeFileError

ARCHIVE_PATH = "/Task06_Lung.tar"


@dataclass
class ServerState:
    """What the test server serves and how it misbehaves."""

    payload: bytes = b""
    truncate_after: int | None = None  # close the connection after this many body bytes
    truncate_times: int = 0  # how many responses are cut short (then serve normally)
    honour_range: bool = True
    range_headers: list[str | None] = field(default_factory=list)
    bytes_sent: int = 0


def _make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a stuck client cannot hold the server

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            if self.path != ARCHIVE_PATH:
                self.send_error(404)
                return
            requested = self.headers.get("Range")
            state.range_headers.append(requested)
            start = int(requested.split("=")[1].split("-")[0]) if requested and state.honour_range else 0
            if start >= len(state.payload) and requested:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(state.payload)}")
                self.end_headers()
                return
            body = state.payload[start:]
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(state.payload) - 1}/{len(state.payload)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.truncate_after is not None and state.truncate_times > 0:
                state.truncate_times -= 1
                body = body[:state.truncate_after]
                self.close_connection = True
            self.wfile.write(body)
            state.bytes_sent += len(body)

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, ServerState]]:
    """A Range-capable HTTP server on 127.0.0.1 in a thread; shut down after the test."""
    state = ServerState()
    httpd = HTTPServer(("127.0.0.1", 0), _make_handler(state))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}{ARCHIVE_PATH}", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def msd_tar(extra: list[tarfile.TarInfo] | None = None) -> bytes:
    """A small tar in MSD layout: Task06_Lung/{dataset.json,imagesTr,labelsTr,imagesTs} plus ._ junk."""
    buffer = io.BytesIO()
    dataset = {"name": "Lung", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "cancer"},
               "numTraining": 2, "training": [{"image": f"./imagesTr/lung_00{i}.nii.gz",
                                                "label": f"./labelsTr/lung_00{i}.nii.gz"} for i in (1, 2)],
               "test": ["./imagesTs/lung_003.nii.gz"]}
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("Task06_Lung")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        _add_bytes(tar, "Task06_Lung/dataset.json", json.dumps(dataset).encode())
        for i in (1, 2):
            _add_bytes(tar, f"Task06_Lung/imagesTr/lung_00{i}.nii.gz", bytes([i]) * 5000)
            _add_bytes(tar, f"Task06_Lung/labelsTr/lung_00{i}.nii.gz", bytes([10 + i]) * 300)
            _add_bytes(tar, f"Task06_Lung/imagesTr/._lung_00{i}.nii.gz", b"mac resource fork")
        _add_bytes(tar, "Task06_Lung/imagesTs/lung_003.nii.gz", b"\x03" * 4000)
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buffer.getvalue()


def download_args(url: str, root: Path, md5: str) -> list[str]:
    return ["download", "Decathlon_Lung", "--root", str(root), "--url", url, "--md5", md5, "--no-progress"]


def leftovers(root: Path) -> list[str]:
    raw = root / "raw"
    return sorted(p.name for p in raw.iterdir()) if raw.is_dir() else []


def test_good_archive_is_installed_without_top_folder_or_macos_files(server, tmp_path, monkeypatch, capsys):
    url, state = server
    state.payload = msd_tar()
    code = run_cli_group("data_tools", download_args(url, tmp_path, hashlib.md5(state.payload).hexdigest()), monkeypatch)
    assert code == 0
    target = tmp_path / "raw" / "Decathlon_Lung"
    assert json.loads((target / "dataset.json").read_text())["numTraining"] == 2
    assert (target / "imagesTr" / "lung_001.nii.gz").read_bytes() == b"\x01" * 5000
    assert (target / "labelsTr" / "lung_002.nii.gz").read_bytes() == b"\x0c" * 300
    assert (target / "imagesTs" / "lung_003.nii.gz").stat().st_size == 4000
    assert not list(target.rglob("._*"))
    assert leftovers(tmp_path) == ["Decathlon_Lung"]
    assert not list((tmp_path / "downloads").iterdir())  # archive removed after install
    assert f"installed {target}" in capsys.readouterr().out


def test_progress_bar_and_kept_archive_is_reused(server, tmp_path, monkeypatch, capsys):
    url, state = server
    state.payload = msd_tar()
    md5 = hashlib.md5(state.payload).hexdigest()
    args = ["download", "Task06_Lung", "--root", str(tmp_path), "--url", url, "--md5", md5, "--keep-archive"]
    assert run_cli_group("data_tools", args, monkeypatch) == 0
    assert (tmp_path / "downloads" / "Task06_Lung.tar").read_bytes() == state.payload
    assert "unpack" in capsys.readouterr().err  # the rich bars render on stderr
    state.range_headers.clear()
    assert run_cli_group("data_tools", [*args, "--overwrite"], monkeypatch) == 0
    assert state.range_headers == []  # verified local copy, no new request
    assert (tmp_path / "raw" / "Task06_Lung" / "dataset.json").is_file()


def test_corrupted_archive_installs_nothing_and_removes_the_file(server, tmp_path, monkeypatch, capsys):
    url, state = server
    good = msd_tar()
    state.payload = good[:600] + bytes([good[600] ^ 0xFF]) + good[601:]
    code = run_cli_group("data_tools", download_args(url, tmp_path, hashlib.md5(good).hexdigest()), monkeypatch)
    assert code == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert leftovers(tmp_path) == []
    assert not list((tmp_path / "downloads").iterdir())


def test_truncated_download_installs_nothing_then_resumes_on_rerun(server, tmp_path, monkeypatch, capsys):
    url, state = server
    state.payload = msd_tar()
    md5 = hashlib.md5(state.payload).hexdigest()
    state.truncate_after, state.truncate_times = 1000, 99  # every attempt is cut short
    assert run_cli_group("data_tools", download_args(url, tmp_path, md5), monkeypatch) == 1
    assert "download incomplete" in capsys.readouterr().err
    assert leftovers(tmp_path) == []
    part = tmp_path / "downloads" / "Task06_Lung.tar.part"
    assert part.stat().st_size == 3000  # three attempts, each resumed and cut after 1000 bytes

    state.truncate_times = 0
    state.range_headers.clear()
    assert run_cli_group("data_tools", download_args(url, tmp_path, md5), monkeypatch) == 0
    assert state.range_headers == ["bytes=3000-"]
    assert leftovers(tmp_path) == ["Decathlon_Lung"]


def test_dropped_connection_is_resumed_within_one_run(server, tmp_path, monkeypatch):
    url, state = server
    state.payload = msd_tar()
    state.truncate_after, state.truncate_times = 2048, 1
    assert run_cli_group("data_tools", download_args(url, tmp_path, hashlib.md5(state.payload).hexdigest()), monkeypatch) == 0
    assert state.range_headers == [None, "bytes=2048-"]
    assert state.bytes_sent == len(state.payload)  # nothing fetched twice
    assert (tmp_path / "raw" / "Decathlon_Lung" / "dataset.json").is_file()


def test_existing_part_file_is_resumed_with_a_range_request(server, tmp_path, monkeypatch):
    url, state = server
    state.payload = msd_tar()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "Task06_Lung.tar.part").write_bytes(state.payload[:5000])
    assert run_cli_group("data_tools", download_args(url, tmp_path, hashlib.md5(state.payload).hexdigest()), monkeypatch) == 0
    assert state.range_headers == ["bytes=5000-"]
    assert state.bytes_sent == len(state.payload) - 5000
    assert (tmp_path / "raw" / "Decathlon_Lung" / "imagesTr" / "lung_002.nii.gz").read_bytes() == b"\x02" * 5000


def test_server_ignoring_range_restarts_from_zero(server, tmp_path, monkeypatch):
    url, state = server
    state.payload = msd_tar()
    state.honour_range = False
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "Task06_Lung.tar.part").write_bytes(b"garbage" * 100)
    assert run_cli_group("data_tools", download_args(url, tmp_path, hashlib.md5(state.payload).hexdigest()), monkeypatch) == 0
    assert (tmp_path / "raw" / "Decathlon_Lung" / "dataset.json").is_file()


def test_existing_dataset_is_kept_unless_overwrite(server, tmp_path, monkeypatch, capsys):
    url, state = server
    state.payload = msd_tar()
    md5 = hashlib.md5(state.payload).hexdigest()
    existing = tmp_path / "raw" / "Decathlon_Lung"
    existing.mkdir(parents=True)
    (existing / "mine.txt").write_text("keep")
    assert run_cli_group("data_tools", download_args(url, tmp_path, md5), monkeypatch) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (existing / "mine.txt").read_text() == "keep"
    assert run_cli_group("data_tools", [*download_args(url, tmp_path, md5), "--overwrite"], monkeypatch) == 0
    assert not (existing / "mine.txt").exists() and (existing / "dataset.json").is_file()
    assert leftovers(tmp_path) == ["Decathlon_Lung"]


def test_http_error_is_reported(server, tmp_path, monkeypatch, capsys):
    url, _ = server
    code = run_cli_group("data_tools", download_args(url.replace(".tar", ".missing"), tmp_path, "0" * 32), monkeypatch)
    assert code == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_archive_without_dataset_json_installs_nothing(server, tmp_path, monkeypatch, capsys):
    url, state = server
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        _add_bytes(tar, "Task06_Lung/readme.txt", b"not a dataset")
    state.payload = buffer.getvalue()
    assert run_cli_group("data_tools", download_args(url, tmp_path, hashlib.md5(state.payload).hexdigest()), monkeypatch) == 1
    assert "no dataset.json" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def _file_member(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 3
    return info


@pytest.mark.parametrize("member", [
    _special("Task06_Lung/imagesTr/link.nii.gz", tarfile.SYMTYPE, "/etc/passwd"),
    _special("Task06_Lung/hard", tarfile.LNKTYPE, "Task06_Lung/dataset.json"),
    _special("Task06_Lung/dev", tarfile.CHRTYPE),
    _special("Task06_Lung/fifo", tarfile.FIFOTYPE),
    _file_member("Task06_Lung/../../escape.txt"),
    _file_member("/abs/escape.txt"),
], ids=["symlink", "hardlink", "device", "fifo", "dotdot", "absolute"])
def test_unsafe_members_refuse_the_whole_archive(tmp_path, member):
    archive = tmp_path / "bad.tar"
    archive.write_bytes(msd_tar(extra=[member]))
    destination = tmp_path / "out"
    destination.mkdir()
    with pytest.raises(UnsafeFileError, match="bad.tar"):
        extract_archive(archive, destination)
    assert not any(destination.iterdir())
    assert not (tmp_path / "escape.txt").exists()


def test_unsafe_archive_via_cli_installs_nothing(server, tmp_path, monkeypatch, capsys):
    url, state = server
    state.payload = msd_tar(extra=[_special("Task06_Lung/link", tarfile.SYMTYPE, "../../x")])
    assert run_cli_group("data_tools", download_args(url, tmp_path, hashlib.md5(state.payload).hexdigest()), monkeypatch) == 1
    assert "is a link" in capsys.readouterr().err
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name, folder, task", [
    ("Decathlon_Lung", "Decathlon_Lung", "Task06_Lung"),
    ("decathlon_hippocampus", "Decathlon_Hippocampus", "Task04_Hippocampus"),
    ("Task06_Lung", "Task06_Lung", "Task06_Lung"),
    ("task10_colon", "Task10_Colon", "Task10_Colon"),
])
def test_names_resolve_to_msd_table(name, folder, task):
    remote = resolve_remote_dataset(name)
    assert remote.name == folder
    assert remote.url == f"https://msd-for-monai.s3-us-west-2.amazonaws.com/{task}.tar"
    assert remote.md5 == MSD_TASKS[task]


def test_unknown_name_or_bad_md5_is_refused():
    with pytest.raises(InvalidInputError, match="unknown dataset"):
        resolve_remote_dataset("Decathlon_Knee")
    with pytest.raises(InvalidInputError, match="32 hexadecimal"):
        resolve_remote_dataset("Decathlon_Lung", md5="abc")
    with pytest.raises(InvalidInputError, match="safe|letters"):
        resolve_remote_dataset("../evil", url="http://127.0.0.1/x.tar")
