"""Make the demo clip: at most 20 Kvasir-SEG val.txt frames with pan and zoom, 720p, with polyp-free stretches.

    PYTHONPATH=. python examples/video/make_clip.py [--data DIR] [--out FILE.mp4]

Each polyp frame is shown for ``--seconds`` with a slow zoom and pan across it (a virtual scope
moving over the mucosa), at 30 fps, 1280 x 720. After every ``--every`` polyp frames comes a
polyp-free stretch of ``--free-seconds``: a pan across a polyp-free crop of one of those same frames
(cloud.training.endoscopy_data.negative_crops: the box, grown by a margin, holds no mask pixel), where
the live view should show "no finding". Frames come from val.txt, so the demo shows the model frames
it never trained on. ``kvasir-demo.segments.json`` lists the stretches (start, end in seconds, polyp).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from cloud.training.endoscopy_data import default_kvasir_dir, load_frames, negative_crops
from cloud.training.endoscopy_video import pan_frames

MAX_FRAMES = 20


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_kvasir_dir())
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("kvasir-demo.mp4"))
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--every", type=int, default=2, help="a polyp-free stretch after every N polyp frames")
    ap.add_argument("--free-seconds", type=float, default=1.5)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    args = ap.parse_args()
    n = min(args.frames, MAX_FRAMES)
    names = [x.strip() for x in (args.data / "val.txt").read_text().splitlines() if x.strip()][:n]
    size = (args.width, args.height)
    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter.fourcc(*"mp4v"), args.fps, size)
    if not writer.isOpened():
        raise SystemExit(f"cannot write {args.out}")
    xs, ys = load_frames(args.data, names, 256)
    _, src, boxes = negative_crops(xs, ys, 256, seed=11, scales=(0.65, 0.5, 0.4))
    rng = np.random.default_rng(6)
    steps, free_steps = int(args.seconds * args.fps), int(args.free_seconds * args.fps)
    segments: list[dict[str, object]] = []
    t = 0
    for k, name in enumerate(names):
        img = cv2.imread(str(args.data / "images" / name), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {name} in {args.data}")
        side = img.shape[1]
        for f in pan_frames(img, (0, 0, img.shape[0], side), steps, size, rng):
            writer.write(f)
        segments.append({"start_s": t / args.fps, "end_s": (t + steps) / args.fps, "polyp": True, "frame": name})
        t += steps
        if (k + 1) % args.every:
            continue
        # the first (largest) polyp-free box among the last --every frames
        for j in range(k + 1 - args.every, k + 1):
            hit = np.flatnonzero(src == j)
            if hit.size:
                y0, x0, bh, bw = (int(v) for v in boxes[hit[0]])
                frame = cv2.resize(cv2.imread(str(args.data / "images" / names[j]), cv2.IMREAD_COLOR), (256, 256),
                                   interpolation=cv2.INTER_AREA)
                for f in pan_frames(frame, (y0, x0, bh, bw), free_steps, size, rng):
                    writer.write(f)
                segments.append({"start_s": t / args.fps, "end_s": (t + free_steps) / args.fps, "polyp": False,
                                 "frame": names[j]})
                t += free_steps
                break
    writer.release()
    (args.out.parent / "CITATION").write_text(CITATION.format(names="\n".join(names)))
    args.out.with_suffix(".segments.json").write_text(json.dumps(segments, indent=1) + "\n")
    free = sum(float(s["end_s"]) - float(s["start_s"]) for s in segments if not s["polyp"])  # type: ignore[arg-type]
    print(f"{args.out}: {len(names)} frames, {t / args.fps:.1f} s ({free:.1f} s polyp-free), "
          f"{args.out.stat().st_size / 1e6:.2f} MB")
    return 0


CITATION = """The demo clip kvasir-demo.mp4 is made (by make_clip.py: pan and zoom, 1280 x 720, 30 fps)
from these frames of Kvasir-SEG (val.txt, never used to train endoscopy-seg):

{names}

The polyp-free stretches between them are pans across polyp-free crops of the same frames (boxes away
from the polyp mask); kvasir-demo.segments.json gives the times of every stretch.

Dataset: Jha D., Smedsrud P. H., Riegler M. A., Halvorsen P., de Lange T., Johansen D.,
Johansen H. D. "Kvasir-SEG: A Segmented Polyp Dataset". MultiMedia Modeling (MMM 2020),
LNCS 11962, pp. 451-462, Springer, 2020. doi:10.1007/978-3-030-37734-2_37
Simula Research Laboratory / Vestre Viken Health Trust. https://datasets.simula.no/kvasir-seg/

Terms: Kvasir-SEG is released for research and educational use only; cite the paper above.
This clip inherits those terms.
"""

if __name__ == "__main__":
    raise SystemExit(main())
