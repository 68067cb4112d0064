"""A local server speaking the Hugging Face hub's file-download protocol, as `hf_hub_download`
uses it with HF_ENDPOINT pointing here (huggingface_hub 1.x/2.x, file_download.py):

    HEAD /{repo}/resolve/{revision}/{path}
        small ("regular") files: 200 with X-Repo-Commit, ETag (the git blob id), Content-Length;
        large ("LFS") files: 302 to the CDN with X-Repo-Commit, X-Linked-Etag (the file's SHA-256),
        X-Linked-Size, as the hub answers. The CDN is a second server on another port, so another
        origin: huggingface_hub does not follow the redirect on HEAD, and downloads from it.
    GET  the same URL (regular files) or the CDN's /cdn/{sha256} (LFS files), honouring
        `Range: bytes=N-` with 206 and Content-Range (how a download resumes).
    404 with X-Error-Code: EntryNotFound / RepoNotFound for what is not served.

What it can be told to do wrong, per file: serve other bytes than the ones it advertises
(`corrupt`, a wrong hash), or drop the connection after `cut_after` bytes of the first full GET
(the client resumes with a Range request), then answer the next `then_unavailable` GETs of it with
503 (the download fails, to be resumed by the next pull). `requests` records (method, path, Range)
of every call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from cluelypro.packaged import sha256_of
from servers.base import ConnectionDropped, serve

LFS_THRESHOLD = 10 * 1024  # bytes: like the hub, larger files are LFS (sha256 etag, served by the CDN)
CHUNK = 1024 * 1024


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubFile:
    path: Path
    sha256: str
    size: int
    lfs: bool
    corrupt: bool = False
    cut_after: int | None = None  # drop the first full GET after this many bytes
    then_unavailable: int = 0  # after the cut, answer this many GETs of the file with 503


@dataclass
class Hub:
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)  # (repo, path in repo) → file
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    cdn_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo: str, path_in_repo: str, source: Path) -> HubFile:
        size = source.stat().st_size
        served = HubFile(source, sha256_of(source), size, lfs=size >= LFS_THRESHOLD)
        self.files[(repo, path_in_repo)] = served
        return served

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def by_sha256(self, sha256: str) -> HubFile | None:
        return next((f for f in self.files.values() if f.sha256 == sha256), None)

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append((request.method, request.url.path, request.headers.get("range")))


def _body(served: HubFile, start: int) -> Iterator[bytes]:
    with served.path.open("rb") as handle:
        handle.seek(start)
        position = start
        while block := handle.read(CHUNK):
            if served.corrupt:
                block = bytes(b ^ 0x5A for b in block)
            yield block
            position += len(block)


async def _stream(served: HubFile, start: int) -> AsyncIterator[bytes]:
    sent = 0
    cut = served.cut_after if start == 0 else None
    for block in _body(served, start):
        if cut is not None and sent + len(block) > cut:
            yield block[: cut - sent]
            await asyncio.sleep(0.3)  # the client reads those bytes before the connection drops
            served.cut_after = None  # once
            raise ConnectionDropped("fault injected: connection dropped mid-download")
        yield block
        sent += len(block)


def _range_start(request: Request, size: int) -> int | None:
    header = request.headers.get("range")
    if not header or not header.startswith("bytes="):
        return None
    first = header.removeprefix("bytes=").split(",")[0].split("-")[0]
    start = int(first) if first else 0
    return start if 0 <= start < size else None


def _download(request: Request, served: HubFile, headers: dict[str, str]) -> Response:
    if request.method == "GET" and served.cut_after is None and served.then_unavailable > 0:
        served.then_unavailable -= 1
        return Response("unavailable", status_code=503)
    start = _range_start(request, served.size)
    if start is None:
        start, status = 0, 200
    else:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{served.size - 1}/{served.size}"
    headers["Content-Length"] = str(served.size - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return StreamingResponse(_stream(served, start), status_code=status, headers=headers)


def _not_found(code: str) -> Response:
    return Response(f"{code}", status_code=404, headers={"X-Error-Code": code, "X-Error-Message": code})


def hub_app(hub: Hub) -> Starlette:
    async def resolve(request: Request) -> Response:
        hub.record(request)
        repo = f"{request.path_params['owner']}/{request.path_params['name']}"
        served = hub.files.get((repo, request.path_params["path"]))
        if served is None:
            known_repo = any(r == repo for r, _ in hub.files)
            return _not_found("EntryNotFound" if known_repo else "RepoNotFound")
        headers = {"X-Repo-Commit": hub.commit(repo), "Accept-Ranges": "bytes"}
        if served.lfs:
            headers |= {
                "X-Linked-Etag": f'"{served.sha256}"',
                "X-Linked-Size": str(served.size),
                "ETag": f'"{served.sha256}"',
                "Location": f"{hub.cdn_url}/cdn/{served.sha256}",
            }
            return Response(status_code=302, headers=headers)
        headers["ETag"] = f'"{git_blob_id(served.path.read_bytes())}"'
        return _download(request, served, headers)

    async def cdn(request: Request) -> Response:
        hub.record(request)
        served = hub.by_sha256(request.path_params["sha256"])
        if served is None:
            return Response(status_code=404)
        return _download(request, served, {"ETag": f'"{served.sha256}"', "Accept-Ranges": "bytes"})

    methods = ["GET", "HEAD"]
    return Starlette(
        routes=[
            Route("/{owner}/{name}/resolve/{revision}/{path:path}", resolve, methods=methods),
            Route("/cdn/{sha256}", cdn, methods=methods),
        ]
    )


@contextlib.contextmanager
def serve_hub(hub: Hub) -> Iterator[str]:
    """The hub and its CDN on two ports of 127.0.0.1; yields the hub's URL (HF_ENDPOINT)."""
    app = hub_app(hub)
    with serve(app) as cdn_url, serve(app) as hub_url:
        hub.cdn_url = cdn_url
        yield hub_url
