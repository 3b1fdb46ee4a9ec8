"""Make the demo clip: at most 20 Kvasir-SEG val.txt frames with pan and zoom, 720p.

    python examples/video/make_clip.py [--data ../shared/data/kvasir-seg] [--out examples/video/kvasir-demo.mp4]

Each frame is shown for ``--seconds`` with a slow zoom and pan across it
(a virtual scope moving over the mucosa), at 30 fps, 1280 x 720. Frames come
from val.txt, so the demo shows the model frames it never trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

MAX_FRAMES = 20



def main() -> int:
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=repo.parent / "shared" / "data" / "kvasir-seg")
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("kvasir-demo.mp4"))
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    args = ap.parse_args()
    n = min(args.frames, MAX_FRAMES)
    names = [x.strip() for x in (args.data / "val.txt").read_text().splitlines() if x.strip()][:n]
    w, h = args.width, args.height
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter.fourcc(*"mp4v"), args.fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"cannot write {args.out}")
    rng = np.random.default_rng(6)
    steps = int(args.seconds * args.fps)
    for name in names:
        img = cv2.imread(str(args.data / "images" / name), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {name} in {args.data}")
        # the source frames are square; the 16:9 view crops a band and moves it
        z0, z1 = rng.uniform(1.0, 1.15), rng.uniform(1.25, 1.6)
        if rng.random() < 0.5:
            z0, z1 = z1, z0
        (cx0, cy0), (cx1, cy1) = rng.uniform(0.35, 0.65, 2), rng.uniform(0.35, 0.65, 2)
        side = img.shape[1]
        for i in range(steps):
            t = i / max(1, steps - 1)
            s = 0.5 - 0.5 * np.cos(np.pi * t)  # ease in/out
            z = z0 + (z1 - z0) * s
            cw = side / z
            ch = cw * h / w
            cx = (cx0 + (cx1 - cx0) * s) * side
            cy = (cy0 + (cy1 - cy0) * s) * side
            x0 = float(np.clip(cx - cw / 2, 0, side - cw))
            y0 = float(np.clip(cy - ch / 2, 0, side - ch))
            m = np.array([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]], np.float32)
            writer.write(cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    writer.release()
    (args.out.parent / "CITATION").write_text(CITATION.format(names="\n".join(names)))
    print(f"{args.out}: {len(names)} frames, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


CITATION = """The demo clip kvasir-demo.mp4 is made (by make_clip.py: pan and zoom, 1280 x 720, 30 fps)
from these frames of Kvasir-SEG (val.txt, never used to train endoscopy-seg):

{names}

Dataset: Jha D., Smedsrud P. H., Riegler M. A., Halvorsen P., de Lange T., Johansen D.,
Johansen H. D. "Kvasir-SEG: A Segmented Polyp Dataset". MultiMedia Modeling (MMM 2020),
LNCS 11962, pp. 451-462, Springer, 2020. doi:10.1007/978-3-030-37734-2_37
Simula Research Laboratory / Vestre Viken Health Trust. https://datasets.simula.no/kvasir-seg/

Terms: Kvasir-SEG is released for research and educational use only; cite the paper above.
This clip inherits those terms.
"""

if __name__ == "__main__":
    raise SystemExit(main())
