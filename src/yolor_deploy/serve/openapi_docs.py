"""What `/openapi.json` says each route answers: every status and content type the server really sends, so
that clients generated from `/docs` handle every answer (checked by schemathesis, `scripts/fuzz_http.py`), and
the value patterns of the detection parameters, so that what the schema allows the server accepts."""
from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {"type": "object", "required": ["error"],
                "properties": {"error": {"type": "string", "description": "one line naming the field and problem"},
                               "kind": {"type": "string", "description": "the metrics label of the refusal"}}}
WHY = {
    400: "bad input: a parameter, an upload, a tensor (one line naming it)",
    404: "unknown model or version",
    408: "the request body did not arrive within the server's --body-timeout-s",
    413: "too large: body (--max-body-mb), images (--max-images), pixels (--max-pixels, --max-pixels-in-flight)",
    415: "the body is not multipart/form-data",
    500: "inference failed",
    501: "not available on this engine",
    503: "not ready, shutting down, queue or pixel budget full (see Retry-After)",
    504: "no answer within the server's --timeout-s",
}
DETECT_ERRORS = (400, 408, 413, 415, 500, 503, 504)
INFER_ERRORS = (400, 404, 408, 413, 500, 501, 503, 504)
IMAGE_TYPES = "image/jpeg, image/png, image/bmp, image/webp, image/tiff"  # what OpenCV decodes; the cap is read first
UNIT = r"^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$"  # 0..1
MAX_DET = r"^([1-9][0-9]{0,3}|10000)$"  # 1..10000 (inputs.MAX_DET_LIMIT)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for these error statuses: JSON `{"error", "kind"}`."""
    return {s: {"description": WHY[s], "content": {"application/json": {"schema": ERROR_SCHEMA}}} for s in statuses}


def no_body(description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 without a body (the Open Inference Protocol's health answers)."""
    return {200: {"description": description}}


def classes_pattern(nc: int) -> str:
    """Comma-separated class indices of a model with `nc` classes (0..nc-1), e.g. `0,2`."""
    one = "|".join(str(i) for i in range(max(nc, 1)))
    return f"^({one})(,({one}))*$"
