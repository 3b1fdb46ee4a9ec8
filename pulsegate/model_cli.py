"""``pulsegate model keygen|sign|verify``: the signing side of the model registry."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pulsegate.cli import Commands


def register(cmds: Commands) -> None:
    p = cmds.model.add_parser("keygen", help="create an Ed25519 signing key pair (KEY and KEY.pub)")
    p.add_argument("--out", type=Path, required=True, help="private key path; the public key gets .pub")
    p.set_defaults(handler=_keygen)
    p = cmds.model.add_parser("sign", help="re-hash model.tflite into manifest.json and sign it")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--key", type=Path, required=True)
    p.set_defaults(handler=_sign)
    p = cmds.model.add_parser("verify", help="verify a model folder's signature and hash")
    p.add_argument("model_dir", type=Path)
    p.add_argument("--trusted-key", type=Path, action="append", required=True)
    p.set_defaults(handler=_verify)


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
    from wire.model_manifest import load_private_key, sign_model_dir

    sign_model_dir(args.model_dir, load_private_key(args.key))
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
