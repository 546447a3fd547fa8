"""`/console`: the operator console, a static page (HTML, vanilla JS, CSS shipped as package
data: no CDN, no build step). The page itself holds nothing secret and is served without
credentials; everything it shows comes from `/v1/ops/...` with the operator's Bearer token,
which the page reads from the URL fragment (never sent to a server) into sessionStorage."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import Response

from api.errors import not_found

router = APIRouter(tags=["operations console"], include_in_schema=False)

ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# Only our own files may run or load: no inline script, no third party, no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": CSP}  # the middleware adds the other security headers


def _read(name: str) -> bytes:
    return files("api.console").joinpath(name).read_bytes()


@router.get("/console")
def console_page() -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/console/{asset}")
def console_asset(asset: str) -> Response:
    if asset not in ASSETS:
        raise not_found(f"/console/{asset}")
    return Response(_read(asset), media_type=ASSETS[asset], headers=HEADERS)
