"""``pulsegate model train endoscopy-seg``: train, evaluate on val.txt, package and sign."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from pulsegate.cli import Commands

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "kvasir-seg"


def register(cmds: Commands) -> None:
    train = cmds.model_group("train", "train a model")
    p = train.add_parser("endoscopy-seg", help="polyp segmentation on Kvasir-SEG (TensorFlow CPU)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Kvasir-SEG folder (default: %(default)s)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "models", help="models dir (default: %(default)s)")
    p.add_argument("--version", required=True, help="dotted version, e.g. 1.0.0")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--time-budget", type=float, default=3000.0,
                   help="seconds; the learning-rate schedule ends here or at --epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=2e-3, help="peak (default: %(default)s)")
    p.add_argument("--width", type=int, default=16, help="channels of the first U-Net level")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--limit", type=int, default=0, help="train on the first N frames only (smoke tests)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--checkpoint", type=Path, help="save Keras weights here after every epoch (*.weights.h5)")
    p.add_argument("--key", type=Path, help="Ed25519 private key to sign the manifest with")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from .endoscopy_release import write_model_dir
    from .endoscopy_seg import TrainConfig, train

    def log(msg: str) -> None:
        if not args.json:
            print(time.strftime("%H:%M:%S"), msg, flush=True)

    cfg = TrainConfig(
        data_dir=args.data, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        input_size=args.input_size, width=args.width, limit=args.limit, threads=args.threads,
        time_budget_s=args.time_budget, log=log, checkpoint=args.checkpoint,
    )
    result = train(cfg)
    model_dir, figures = write_model_dir(args.out, args.version, cfg, result, args.key)
    summary = {"model_dir": str(model_dir), "epochs": result.epochs_run,
               "train_seconds": round(result.train_seconds, 1), "signed": args.key is not None, "val": figures}
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0
