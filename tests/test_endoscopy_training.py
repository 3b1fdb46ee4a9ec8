"""Training code: splits, polyp-free crops, augmentation, warm start, and a tiny real run packaged and signed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clinical.endoscopy.segmodel import OutputRoles, infer
from clinical.litert import ModelRunner
from cloud.training.endoscopy_data import (
    OOD_MIN_WIDTH,
    SamplePools,
    load_frames,
    negative_crops,
    ood_split,
    original_widths,
    read_names,
)
from cloud.training.endoscopy_seg import TrainConfig, learning_rate, train

ONE_X = Path(__file__).resolve().parents[1] / "models" / "endoscopy-seg" / "1.0.0" / "model.tflite"


def test_learning_rate_schedule() -> None:
    assert learning_rate(1e-3, 0.0, warmup=0.1) == pytest.approx(1e-4)
    assert learning_rate(1e-3, 0.1, warmup=0.1) == pytest.approx(1e-3)
    assert learning_rate(1e-3, 1.0, warmup=0.1) == pytest.approx(2e-5)
    lrs = [learning_rate(1e-3, p / 10, warmup=0.1) for p in range(1, 11)]
    assert lrs == sorted(lrs, reverse=True)


def test_network_outputs() -> None:
    from cloud.training.endoscopy_net import build_training_model, export_model

    m = build_training_model(64, width=4)
    shapes = {k: tuple(v.shape) for k, v in m.output.items()}
    assert shapes == {"polyp": (None, 32, 32, 1), "aux64": (None, 16, 16, 1), "aux32": (None, 8, 8, 1),
                      "present": (None, 1)}
    assert [tuple(o.shape) for o in export_model(m).outputs] == [(None, 32, 32, 1), (None, 1)]


def test_ood_split_holds_out_wide_originals(kvasir: Path) -> None:
    names = read_names(kvasir / "train.txt")
    keep, held = ood_split(kvasir, names)
    widths = original_widths(kvasir)
    assert held and len(keep) + len(held) == len(names) and not set(keep) & set(held)
    assert all(widths[n] >= OOD_MIN_WIDTH for n in held) and all(widths[n] < OOD_MIN_WIDTH for n in keep)
    assert not set(names) & set(read_names(kvasir / "val.txt"))  # the split never overlaps


def test_negative_crops_stay_off_the_polyp(kvasir: Path) -> None:
    names = read_names(kvasir / "train.txt")[:6]
    xs, ys = load_frames(kvasir, names, 128)
    assert set(np.unique(ys)) <= {0, 1} and ys.any()
    crops, src, boxes = negative_crops(xs, ys, 64, seed=1)
    assert len(crops) > 0 and crops.shape[1:] == (64, 64, 3) and crops.dtype == np.uint8
    for i, (y0, x0, h, w) in zip(src, boxes, strict=True):
        assert not ys[i, y0 : y0 + h, x0 : x0 + w].any()  # no polyp pixel inside
        assert h >= 0.3 * 128 * 0.85  # several scales, the smallest 30 % of the side
    assert len({int(h) for _, _, h, _ in boxes}) > 2


def test_sample_pools_mix_and_use_hard_negatives() -> None:
    pos = np.full((4, 8, 8, 3), 200, np.uint8)
    neg = np.stack([np.full((8, 8, 3), k, np.uint8) for k in range(10)])
    pools = SamplePools(pos, np.ones((4, 8, 8), np.uint8), neg, pos_fraction=0.5, hard_fraction=1.0)
    pools.hard = np.array([7])
    it = pools.samples()
    draws = [next(it) for _ in range(400)]
    negs = [int(x[0, 0, 0]) for x, m in draws if not m.any()]
    assert 120 < len(negs) < 280 and set(negs) == {7}  # negatives only from the mined set
    first = [int(x[0, 0, 0]) for x, _ in (next(pools.samples()) for _ in range(1))]
    assert first  # a new generator (next epoch) starts a new stream
    assert pools.draws == 2


def test_augmentation_keeps_shapes_ranges_and_empty_masks() -> None:
    import tensorflow as tf

    from cloud.training.endoscopy_augment import make_augment, text_overlays

    bank = text_overlays(4, 64)
    assert bank.shape == (4, 64, 64) and bank.max() > 0.5
    aug = make_augment(64, bank, strength=1.0)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 1
    outs = [aug(tf.constant(img), tf.constant(mask)) for _ in range(8)]
    for x, m in outs:
        assert tuple(x.shape) == (64, 64, 3) and tuple(m.shape) == (64, 64, 1)
        assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    assert len({round(float(tf.reduce_mean(x)), 4) for x, _ in outs}) == 8  # random every call
    x, m = aug(tf.constant(img), tf.constant(np.zeros((64, 64), np.uint8)))
    assert float(tf.reduce_max(m)) == 0.0  # a polyp-free crop stays polyp-free


def test_warm_start_reproduces_the_1x_model(kvasir: Path) -> None:
    from cloud.training.endoscopy_net import build_training_model, export_model, load_1x_weights

    if not ONE_X.exists():
        pytest.skip("endoscopy-seg 1.0.0 not in the repo")
    m = build_training_model(256, width=16)
    assert load_1x_weights(m, ONE_X) == 20
    xs, _ = load_frames(kvasir, read_names(kvasir / "val.txt")[:2], 256)
    x = xs.astype(np.float32) / 255.0
    grown = np.asarray(export_model(m)(x, training=False)[0])
    (ref,) = ModelRunner(ONE_X).run(x)
    assert float(np.mean((grown >= 0.5) == (ref >= 0.5))) > 0.99  # the new parts start as the identity


def test_tiny_training_run_packaged_and_signed(kvasir: Path, tmp_path: Path) -> None:
    from cloud.training.endoscopy_release import write_model_dir
    from wire.model_manifest import load_public_key, verify_model_dir

    cfg = TrainConfig(data_dir=kvasir, epochs=2, batch_size=4, input_size=64, width=4, limit=4, steps_per_epoch=2,
                      mine_at=(0.5,), time_budget_s=0, log=lambda _: None)
    res = train(cfg)
    assert res.epochs_run == 2 and all(np.isfinite(h["loss"]) for h in res.history)
    assert len(res.minings) == 1 and res.negatives > 0 and res.ood_names
    key = Path(__file__).resolve().parents[1] / "examples" / "keys" / "dev-signing.key"
    model_dir, figures = write_model_dir(tmp_path, "9.9.9", cfg, res, key)
    manifest = verify_model_dir(model_dir, [load_public_key(key.with_suffix(".pub"))])
    assert len(manifest.outputs) == 2
    runner = ModelRunner(model_dir / "model.tflite", manifest=manifest)
    assert runner.input_dtype == np.int8
    out = infer(runner, np.random.default_rng(0).random((3, 64, 64, 3), dtype=np.float32), OutputRoles.of(runner))
    assert out.prob.shape == (3, 32, 32) and out.present is not None and out.present.shape == (3,)
    assert 0.0 <= float(out.present.min()) and float(out.present.max()) <= 1.0
    assert figures["val"]["n"] == 198 and figures["negatives"]["negatives"] > 100
    assert figures["ood"]["n"] == len(res.ood_names) + figures["ood_val"]["n"]
    assert figures["shifted"]["n"] == 198 and figures["shifted"]["dice"] is not None
    m = json.loads((model_dir / "manifest.json").read_text())["metrics"]
    assert m["heldout_false_findings_per_frame"] == figures["negatives"]["false_findings_per_frame"]
    card = (model_dir / "MODEL_CARD.md").read_text()
    assert card.count("Kvasir-SEG") >= 3 and "research and educational use" in card and "minutes" in card


def test_selection_split_is_fixed_and_disjoint() -> None:
    from cloud.training.endoscopy_select import selection_split

    names = [f"f{i}.jpg" for i in range(100)]
    train_a, sel_a = selection_split(names, 10, seed=3)
    train_b, sel_b = selection_split(names, 10, seed=3)
    assert (train_a, sel_a) == (train_b, sel_b) and len(sel_a) == 10 and len(train_a) == 90
    assert not set(train_a) & set(sel_a) and set(train_a) | set(sel_a) == set(names)
    assert selection_split(names, 0, seed=3) == (names, [])
    assert len(selection_split(names[:8], 64, seed=3)[1]) == 2  # never more than a quarter


def test_selection_rule_prefers_few_false_findings_then_dice() -> None:
    from cloud.training.endoscopy_select import better

    low_ff = {"dice": 0.80, "false_findings": 0.02, "present_pos": 0.9}
    high_ff = {"dice": 0.90, "false_findings": 0.30, "present_pos": 1.0}
    assert better(low_ff, None) and better(low_ff, high_ff) and not better(high_ff, low_ff)
    assert better({"dice": 0.81, "false_findings": 0.04, "present_pos": 0.5}, low_ff)
    assert not better({"dice": 0.79, "false_findings": 0.0, "present_pos": 1.0}, low_ff)
    # the same map (frozen): the present head that passes more polyp frames per false finding wins
    assert better({"dice": 0.80, "false_findings": 0.03, "present_pos": 0.95}, low_ff)
    assert not better({"dice": 0.80, "false_findings": 0.0, "present_pos": 0.8}, low_ff)


def test_per_frame_dice_ignores_polyp_free_samples() -> None:
    import tensorflow as tf

    from cloud.training.endoscopy_seg import seg_loss, seg_loss_per_frame

    y = np.zeros((2, 8, 8, 1), np.float32)
    y[0, 2:6, 2:6] = 1.0
    perfect = tf.constant(y)
    stray = y.copy()
    stray[1, :4, :4] = 0.9  # false pixels on the polyp-free sample
    frame_perfect = float(seg_loss_per_frame(tf.constant(y), perfect))
    frame_stray = float(seg_loss_per_frame(tf.constant(y), tf.constant(stray)))
    assert frame_perfect < 0.1 and frame_stray > frame_perfect  # the focal term still sees the false pixels
    assert float(seg_loss(tf.constant(y), tf.constant(stray))) > frame_stray  # pooled Dice counts them too


def test_training_picks_an_epoch_on_the_selection_split_and_packages_it(kvasir: Path, tmp_path: Path) -> None:
    from cloud.training.endoscopy_seg import best_checkpoint, package_checkpoint, save_result

    ckpt = tmp_path / "run.weights.h5"
    cfg = TrainConfig(data_dir=kvasir, epochs=3, batch_size=4, input_size=64, width=4, limit=12, steps_per_epoch=2,
                      mine_at=(), time_budget_s=0, select_n=3, average_from=0.3, checkpoint=ckpt,
                      dice="frame", aug_strength=0.5, log=lambda _: None)
    res = train(cfg)
    assert len(res.select_names) == 3 and not set(res.select_names) & set(res.train_names)
    assert not set(res.select_names) & set(read_names(kvasir / "val.txt"))
    assert res.shipped.startswith(("epoch ", "mean of epochs "))
    assert all("select_dice" in h and "select_false_findings" in h for h in res.history)
    assert "select_dice_mean" in res.history[-1]  # the running mean of the weights was scored too
    best = best_checkpoint(ckpt)
    assert best.name == "run.best.weights.h5" and best.exists() and ckpt.exists()
    packaged = package_checkpoint(cfg, best)
    assert packaged.shipped and packaged.select_names == res.select_names
    save_result(res, ckpt.with_suffix(".result"))  # what `model train --checkpoint` leaves: the whole run's figures
    whole = package_checkpoint(cfg, best)
    assert whole.epochs_run == res.epochs_run == 3 and len(whole.history) == 3 and whole.shipped == res.shipped
    path = tmp_path / "best.tflite"
    path.write_bytes(packaged.tflite)
    runner = ModelRunner(path)
    assert runner.input_dtype == np.int8 and len(runner.output_shapes) == 2


def test_freeze_map_trains_the_present_head_only() -> None:
    import keras

    from cloud.training.endoscopy_net import build_training_model
    from cloud.training.endoscopy_seg import freeze_map, present_loss, seg_loss_per_frame

    m = build_training_model(64, width=4)
    assert freeze_map(m) == 36  # 20 trunk convolutions, 2 x 2 in the context blocks, 4 x 3 in the gates
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in m.layers if layer.weights}
    m.compile(optimizer=keras.optimizers.Adam(1e-2),
              loss={"polyp": seg_loss_per_frame, "aux64": seg_loss_per_frame, "aux32": seg_loss_per_frame,
                    "present": present_loss})
    rng = np.random.default_rng(0)
    x = rng.random((4, 64, 64, 3), dtype=np.float32)
    y = {"polyp": np.ones((4, 32, 32, 1), np.float32), "aux64": np.ones((4, 16, 16, 1), np.float32),
         "aux32": np.ones((4, 8, 8, 1), np.float32), "present": np.ones((4, 1), np.float32)}
    m.fit(x, y, epochs=2, batch_size=4, verbose=0)
    changed = {n for n, ws in before.items()
               if any(not np.array_equal(a, b) for a, b in zip(ws, m.get_layer(n).get_weights(), strict=True))}
    assert "present" in changed and "present_hidden" in changed
    assert not {n for n in changed if n.startswith(("u", "ctx", "att"))}


def test_fine_tune_from_a_run_keeps_its_start_as_a_candidate(kvasir: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "first.weights.h5"
    base = dict(data_dir=kvasir, batch_size=4, input_size=64, width=4, limit=12, steps_per_epoch=2, mine_at=(),
                time_budget_s=0, select_n=3, log=lambda _: None)
    train(TrainConfig(epochs=1, checkpoint=ckpt, **base))  # type: ignore[arg-type]
    logs: list[str] = []
    res = train(TrainConfig(epochs=0, init_weights=ckpt, **{**base, "log": logs.append}))  # type: ignore[arg-type]
    assert any(f"every layer from {ckpt}" in m for m in logs)
    assert res.epochs_run == 0 and res.shipped == "the start (no epoch beat it)"
    path = tmp_path / "start.tflite"
    path.write_bytes(res.tflite)
    assert len(ModelRunner(path).output_shapes) == 2
