"""HTTP download with resume (``Range`` on a ``<file>.part``) and md5 verification, urllib only.

The bytes go to ``<file>.part``; only a complete download is renamed to ``<file>``. A connection
that drops mid-way keeps the ``.part``, and the next attempt (in this run or a later one) asks the
server for the remaining bytes only.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

from autolung.errors import AutolungError, InvalidInputError
from autolung.progress import ProgressReporter, reporter

logger = logging.getLogger(__name__)

DOWNLOAD_TASK = "download"
CHUNK_BYTES = 1 << 20
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_ATTEMPTS = 3
_USER_AGENT = "autolung-download/1"


class DownloadIncomplete(AutolungError):
    """The server closed the connection before sending the whole file (resumable)."""


def part_path(target: Path) -> Path:
    """Where the bytes of ``target`` are collected while downloading."""
    return target.with_name(target.name + ".part")


def md5_of(path: Path, chunk_bytes: int = CHUNK_BYTES) -> str:
    """The md5 of a file as lower-case hex, read in chunks.

    Args:
        path: the file.
        chunk_bytes: read size.

    Returns:
        32 hexadecimal digits.
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, target: Path, progress: ProgressReporter | None = None,
                  attempts: int = DEFAULT_ATTEMPTS, timeout_s: float = DEFAULT_TIMEOUT_S) -> Path:
    """Download ``url`` to ``target``, resuming a ``target.part`` left by an earlier attempt.

    Args:
        url: http(s) URL of the file.
        target: final file path; an existing complete ``target`` is returned as is.
        progress: receives the "download" task, one step per byte on disk (total: the file's
            size, None when the server does not say); each connection starts it again.
        attempts: how many connections to try, each resuming where the last stopped.
        timeout_s: socket timeout of each connection.

    Returns:
        ``target``, complete.

    Raises:
        InvalidInputError: for a URL that is not http(s).
        AutolungError: when the server refuses, or every attempt ends early (the ``.part`` is
            kept so a rerun resumes).
    """
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInputError("only http:// and https:// URLs are supported", path=url)
    if target.is_file():
        logger.info("%s already downloaded", target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    last_error: AutolungError | None = None
    progress = reporter(progress)
    try:
        for attempt in range(1, max(1, attempts) + 1):
            try:
                _download_once(url, target, progress, timeout_s)
                return target
            except DownloadIncomplete as exc:
                last_error = exc
                logger.warning("download attempt %d/%d ended early: %s", attempt, attempts, exc.problem)
    finally:
        progress.finish(DOWNLOAD_TASK)
    assert last_error is not None
    raise AutolungError(f"download incomplete after {attempts} attempts ({last_error.problem}); "
                        "rerun the command to resume", path=url)


def _download_once(url: str, target: Path, progress: ProgressReporter, timeout_s: float) -> None:
    """One connection: request the missing bytes, append them to the ``.part``, rename when complete."""
    part = part_path(target)
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 (scheme checked above)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # The .part already holds every byte (an earlier run stopped before renaming it).
            logger.info("server reports %s complete", part)
            os.replace(part, target)
            return
        raise AutolungError(f"server answered HTTP {exc.code} {exc.reason}", path=url) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadIncomplete(f"cannot connect: {getattr(exc, 'reason', exc)}", path=url) from exc
    with response:
        offset, total = _resume_offset(response, have)
        if offset == 0 and have:
            logger.info("server ignored the range request; starting %s again", part)
        received = _copy_body(response, part, offset, total, progress)
    if total is not None and received < total:
        raise DownloadIncomplete(f"connection closed after {received} of {total} bytes", path=url)
    os.replace(part, target)


def _resume_offset(response: http.client.HTTPResponse, have: int) -> tuple[int, int | None]:
    """Where the body starts in the file (0 or ``have``) and the full file size, when known."""
    length = response.headers.get("Content-Length")
    body = int(length) if length and length.isdigit() else None
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        start, full = _parse_content_range(content_range)
        if start != have:
            raise AutolungError(f"server resumed at byte {start}, expected {have}", path=response.url)
        return have, full if full is not None else (have + body if body is not None else None)
    return 0, body


def _parse_content_range(value: str) -> tuple[int, int | None]:
    """``bytes 100-199/200`` -> (100, 200); a ``*`` size -> None."""
    try:
        unit, spec = value.split(" ", 1)
        span, full = spec.split("/", 1)
        start = int(span.split("-", 1)[0])
    except ValueError as exc:
        raise AutolungError(f"malformed Content-Range header {value!r}") from exc
    if unit.strip().lower() != "bytes":
        raise AutolungError(f"unsupported Content-Range unit in {value!r}")
    return start, (int(full) if full.strip().isdigit() else None)


def _copy_body(response: http.client.HTTPResponse, part: Path, offset: int, total: int | None,
               progress: ProgressReporter) -> int:
    """Write the body to ``part`` from ``offset`` on; return the file size reached."""
    received = offset
    with open(part, "r+b" if offset else "wb") as handle:
        handle.seek(offset)
        handle.truncate()
        progress.start(DOWNLOAD_TASK, total)
        if received:
            progress.advance(DOWNLOAD_TASK, received)
        while True:
            try:
                block = response.read(CHUNK_BYTES)
            except (http.client.IncompleteRead, socket.timeout, ConnectionError) as exc:
                handle.flush()
                raise DownloadIncomplete(f"connection lost after {received} bytes ({type(exc).__name__})",
                                         path=response.url) from exc
            if not block:
                break
            handle.write(block)
            received += len(block)
            progress.advance(DOWNLOAD_TASK, len(block))
        handle.flush()
        os.fsync(handle.fileno())
    return received


def verify_md5(path: Path, expected: str | None) -> None:
    """Check ``path`` against ``expected``; delete it when it does not match.

    Args:
        path: the downloaded file.
        expected: lower-case hex md5, or None to skip (logged).

    Raises:
        AutolungError: on a mismatch (the file has been removed).
    """
    if expected is None:
        logger.warning("no checksum known for %s; not verified", path)
        return
    actual = md5_of(path)
    if actual != expected.lower():
        path.unlink(missing_ok=True)
        raise AutolungError(f"checksum mismatch (md5 {actual}, expected {expected}); the corrupted "
                            "download was removed, run the command again", path=path)
    logger.info("md5 verified for %s", path)
