"""The gateway's frame downscale (clinical.endoscopy.segmodel.shrink) against OpenCV's one-step box filter."""

from __future__ import annotations

import cv2
import numpy as np

from clinical.endoscopy.segmodel import preprocess, shrink


def _scene(w: int, h: int) -> np.ndarray:
    """Smooth shading, an edge and fine texture, like a scope frame (not noise, which no filter keeps)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 120 + 80 * np.sin(xx / 97.0) * np.cos(yy / 61.0)
    base += 40 * ((xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (h / 4) ** 2)
    texture = 12 * np.sin(xx / 3.1) * np.sin(yy / 2.7)
    img = np.stack([base + texture, base * 0.7 + texture, base * 0.5], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_720p_frame_matches_the_box_filter_within_a_grey_level() -> None:
    frame = _scene(1280, 720)
    ref = cv2.resize(frame, (256, 256), interpolation=cv2.INTER_AREA).astype(np.int16)
    got = shrink(frame, 256, 256)
    assert got.shape == (256, 256, 3) and got.dtype == np.uint8
    diff = np.abs(got.astype(np.int16) - ref)
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4
    # and a plain bilinear resize (no anti-aliasing) is measurably further from it on the fine texture
    plain = np.abs(cv2.resize(frame, (256, 256), interpolation=cv2.INTER_LINEAR).astype(np.int16) - ref)
    assert plain.mean() > 2 * diff.mean()


def test_small_and_exact_inputs_take_the_one_step_path() -> None:
    small = _scene(400, 300)  # less than twice the target: the box filter itself
    np.testing.assert_array_equal(shrink(small, 256, 256), cv2.resize(small, (256, 256), interpolation=cv2.INTER_AREA))
    exact = _scene(256, 256)
    assert shrink(exact, 256, 256) is exact
    wide = _scene(1280, 300)  # twice the target in one direction only
    np.testing.assert_array_equal(shrink(wide, 256, 256), cv2.resize(wide, (256, 256), interpolation=cv2.INTER_AREA))


def test_preprocess_is_rgb_in_unit_range_at_the_model_size() -> None:
    frame = _scene(1280, 720)
    x = preprocess(frame, (256, 256))
    assert x.shape == (1, 256, 256, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, ..., 0] * 255.0, shrink(frame, 256, 256)[..., 2], atol=1e-3)  # RGB from BGR
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
