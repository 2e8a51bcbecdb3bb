"""The HTTP adapter registry (`cda inference registry`): archives stored by their sha256, so the trainer and
inference machines need to share nothing but Kafka and this URL.

`PUT /v1/adapters/<sha256>` stores a body only when it hashes to its name (a 422 otherwise) and only with the
registry's token; `GET` serves it back. Writes go to a temporary file renamed into place: a version is there
whole or not at all. Archives are immutable: a second PUT of the same name is a no-op.
"""

from __future__ import annotations

import hmac
import os
import uuid
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse

from core.adapter_archive import MAX_ARCHIVE_BYTES, SHA256, digest


def create_registry_app(root: Path, token: str | None, max_bytes: int = MAX_ARCHIVE_BYTES) -> FastAPI:
    root.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="cda adapter registry", docs_url=None, redoc_url=None)

    def check(request: Request, sha: str) -> Path:
        if token is not None:
            given = request.headers.get("authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise HTTPException(401, "a valid registry token is needed (Authorization: Bearer ...)")
        if not SHA256.match(sha):
            raise HTTPException(422, "path.sha256: 64 lowercase hex digits")
        return root / f"{sha}.tar.gz"

    @app.put("/v1/adapters/{sha}")
    async def put(sha: str, request: Request) -> JSONResponse:
        path = check(request, sha)
        if path.exists():
            return JSONResponse({"sha256": sha, "stored": "already"}, status_code=200)
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > max_bytes:
                raise HTTPException(413, f"an adapter archive is at most {max_bytes} bytes")
        if digest(bytes(data)) != sha:
            raise HTTPException(422, f"body: hashes to {digest(bytes(data))}, not to its name {sha}")
        staging = root / f".put-{uuid.uuid4().hex}"
        with staging.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        staging.rename(path)
        return JSONResponse({"sha256": sha, "stored": "now", "bytes": len(data)}, status_code=201)

    @app.get("/v1/adapters/{sha}", response_model=None)
    async def get(sha: str, request: Request) -> FileResponse:
        path = check(request, sha)
        if not path.exists():
            raise HTTPException(404, f"no adapter {sha}")
        return FileResponse(path, media_type="application/gzip")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
