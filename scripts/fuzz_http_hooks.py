"""schemathesis hooks for `scripts/fuzz_http.py` (loaded through $SCHEMATHESIS_HOOKS): uploads declared as
image/jpeg or image/png are real encoded images of random size and colour, so that schema-valid requests are
the ones a client could send (the schema cannot say "a decodable image"; random bytes are answered 400)."""
from __future__ import annotations

import cv2
import numpy as np
import schemathesis
from hypothesis import strategies as st


@st.composite
def _image(draw, ext: str) -> bytes:
    h, w = draw(st.integers(8, 320)), draw(st.integers(8, 320))
    colour = draw(st.tuples(*[st.integers(0, 255)] * 3))
    im = np.full((h, w, 3), colour, np.uint8)
    x, y = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1))
    cv2.circle(im, (x, y), draw(st.integers(2, 60)), (255 - colour[0], 40, 200), -1)
    ok, buf = cv2.imencode(ext, im)
    assert ok
    return buf.tobytes()


schemathesis.openapi.media_type("image/jpeg", _image(".jpg"))
schemathesis.openapi.media_type("image/png", _image(".png"))
