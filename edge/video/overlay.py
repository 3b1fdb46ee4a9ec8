"""Drawing the segmentation overlay on a frame (in place, cheap at 720p)."""

from __future__ import annotations

import numpy as np

from clinical.endoscopy.postprocess import Detection

GREEN = (80, 220, 60)
AMBER = (0, 190, 255)
RED = (40, 40, 230)
WHITE = (255, 255, 255)


def draw(image: np.ndarray, det: Detection, finding_active: bool, fps: float, latency_ms: float) -> np.ndarray:
    """Contours and boxes of the regions, the finding state, processed fps and the latency (capture ->
    overlay ready, the live view header's number)."""
    import cv2

    h, w = image.shape[:2]
    mw, mh = det.map_size
    scale = np.array([w / mw, h / mh], np.float32)
    colour = RED if finding_active else AMBER
    thick = max(2, w // 400)
    for r in det.regions:
        pts = (r.contour.astype(np.float32) * scale + scale / 2).astype(np.int32)
        cv2.polylines(image, [pts], True, colour, thick, cv2.LINE_AA)
        x, y, bw, bh = r.box
        p0 = (int(x * w), int(y * h))
        cv2.rectangle(image, p0, (int((x + bw) * w), int((y + bh) * h)), colour, 1)
        cv2.putText(image, f"{r.confidence:.2f}", (p0[0], max(12, p0[1] - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick / 2, colour, 1, cv2.LINE_AA)
    label = "POLYP" if finding_active else ("candidate" if det.present else "no finding")
    text = f"{label} | {fps:4.1f} fps processed | latency {latency_ms:.0f} ms"
    fs = 0.45 * max(1.0, w / 640)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
    cv2.rectangle(image, (0, 0), (tw + 12, th + 12), (0, 0, 0), cv2.FILLED)
    cv2.putText(image, text, (6, th + 6), cv2.FONT_HERSHEY_SIMPLEX, fs, RED if finding_active else WHITE, 1,
                cv2.LINE_AA)
    return image
