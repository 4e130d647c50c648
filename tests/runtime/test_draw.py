"""Annotated pictures: labels inside the image and off the other boxes, a colour-blind-safe palette."""
from __future__ import annotations

import colorsys
import itertools

import numpy as np

from yolor_deploy.runtime import Detections
from yolor_deploy.runtime.results.draw import PALETTE, _area, class_color, draw_detections, place_labels, text_color


def inside(rect, hw) -> bool:
    x1, y1, x2, y2 = rect
    return 0 <= x1 < x2 <= hw[1] and 0 <= y1 < y2 <= hw[0]


def test_labels_stay_inside_the_image_at_every_edge():
    hw = (200, 300)
    boxes = [(250, 0, 300, 40), (-5, 150, 40, 205), (0, 0, 20, 20), (280, 180, 300, 200)]
    spots = place_labels(boxes, [(90, 18)] * len(boxes), hw)
    assert all(inside(r, hw) for r in spots), spots
    assert spots[0][2] == 300  # the right-edge label is shifted left, not cut off


def test_labels_avoid_other_boxes_and_each_other():
    hw = (240, 320)
    # a small object right above a big box: a label above the big box would hide it
    boxes = [(100, 60, 220, 200), (110, 40, 130, 58), (10, 10, 60, 60), (230, 10, 280, 60)]
    sizes = [(80, 16)] * 4
    spots = place_labels(boxes, sizes, hw)
    for i, r in enumerate(spots):
        assert sum(_area(r, b) for j, b in enumerate(boxes) if j != i) == 0, (i, r)
    for a, b in itertools.combinations(spots, 2):
        assert _area(a, b) == 0, (a, b)
    assert spots[0][1] == 60  # the big box's label moved inside its top edge
    assert spots[1] == (110, 24, 190, 40)  # the small one keeps the preferred spot above


def test_crowded_scene_takes_the_least_covered_spot():
    hw = (100, 100)
    boxes = [(0, 0, 100, 100), (10, 10, 90, 90)]
    spots = place_labels(boxes, [(40, 12)] * 2, hw)
    assert all(inside(r, hw) for r in spots)
    assert _area(spots[0], spots[1]) == 0


def test_palette_is_distinct_and_text_contrasts():
    assert len(set(PALETTE)) == len(PALETTE) == 16
    assert class_color(0) == (0, 159, 230) and class_color(16) == class_color(0)  # Okabe-Ito orange, in BGR
    dist = min(np.linalg.norm(np.subtract(a, b)) for a, b in itertools.combinations(PALETTE[:7], 2))
    assert dist > 60  # the first seven are far apart
    warm = [c for c in PALETTE[:7] if colorsys.rgb_to_hsv(c[2] / 255, c[1] / 255, c[0] / 255)[0] < 0.17]
    assert len(warm) <= 3  # not all red/pink/orange
    assert text_color((0, 228, 240)) == (0, 0, 0) and text_color((136, 34, 51)) == (255, 255, 255)


def test_drawn_labels_are_in_the_picture():
    img = np.full((120, 160, 3), 255, np.uint8)
    det = Detections(np.array([[120, 2, 160, 30], [5, 60, 40, 118]], np.float32), np.array([0.9, 0.8], np.float32),
                     np.array([0, 1]), ("circle", "square"), (120, 160))
    out = draw_detections(img, det)
    assert out.shape == img.shape and img.min() == 255  # a copy; the input is untouched
    orange = np.all(out == np.array(class_color(0), np.uint8), axis=2)
    ys, xs = np.nonzero(orange)
    assert xs.max() == 159 and xs.min() < 120  # label fill shifted left of the right-edge box, inside the image


def test_results_draw_themselves_on_their_own_image(tmp_path):
    """`results[0].plot()` / `.save(path)` with no image: the real trained model on the bundled picture, the
    boxes drawn on the image the detections were made on (pixels change inside each box, nowhere far away)."""
    import pickle

    import pytest

    from yolor_deploy import Detector
    from yolor_deploy.assets import sample_image, trained_checkpoint
    from yolor_deploy.errors import InputError
    from yolor_deploy.runtime import read_image

    image = read_image(sample_image())
    before = image.copy()
    (res,) = Detector(trained_checkpoint())(image)
    assert len(res) >= 3, res  # the bundled picture holds several shapes the model finds
    drawn = res.plot()
    assert np.array_equal(image, before)  # drawn on a copy
    assert np.array_equal(drawn, res.plot(image))  # the old signature draws the same
    lw = max(round(sum(image.shape[:2]) / 2 * 0.003), 1)
    for x1, y1, x2, y2 in np.round(res.xyxy).astype(int):
        edge = (slice(max(y1 - lw, 0), y1 + lw + 1), slice(max(x1, 0), x2 + 1))  # the box's top edge
        assert np.abs(drawn[edge].astype(int) - image[edge]).sum(axis=2).astype(bool).mean() > 0.5, (x1, y1, x2, y2)
    far = np.ones(image.shape[:2], bool)  # pixels nowhere near a box or its label stay as they were
    for x1, y1, x2, y2 in np.round(res.xyxy).astype(int):
        far[max(y1 - 40, 0):y2 + 40, max(x1 - 120, 0):x2 + 120] = False
    assert far.any() and np.array_equal(drawn[far], image[far])

    out = res.save(tmp_path / "a.png")  # lossless: the file holds exactly plot()
    assert np.array_equal(read_image(out), drawn)
    (from_file,) = Detector(trained_checkpoint())(str(sample_image()))
    assert from_file.image is not None and from_file.plot().shape == image.shape
    sent = pickle.loads(pickle.dumps(res))  # another process gets the boxes, not the pixels
    assert sent.image is None and np.array_equal(sent.xyxy, res.xyxy)
    with pytest.raises(InputError, match="pass the image"):
        sent.plot()
    assert np.array_equal(sent.plot(image), drawn)
