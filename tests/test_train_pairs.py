"""Fine-tuning and paired training at toy scale: --init from every model format, pairs warped alike,
early stopping on validation pairs, the artist metrics, and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the optional extra dctoon[train] (PyTorch)")
cv2 = pytest.importorskip("cv2")

from conftest import SHARED, need  # noqa: E402
from dctoon import network  # noqa: E402
from dctoon.importers import ImportedTTN, read_any  # noqa: E402
from dctoon.train import evaluate, gan, losses  # noqa: E402
from dctoon.train import model as ttn_model  # noqa: E402
from dctoon.train.export import average, export  # noqa: E402
from dctoon.errors import InputError  # noqa: E402
from dctoon.train.settings import AverageSettings, ExportSettings, TTNSettings  # noqa: E402

FACES = SHARED / "data" / "face-photos"
WHITEBOX = SHARED / "models" / "reference" / "whitebox_cartoon_gan_fp16.tflite"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _drawn(photo: np.ndarray) -> np.ndarray:
    """A stand-in for an artist's drawing over the photo: flat colours and dark outlines, aligned with it."""
    flat = cv2.bilateralFilter(photo, 9, 60, 9) // 48 * 48 + 24
    edges = cv2.Canny(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY), 60, 140)
    flat[edges > 0] = 20
    return flat


def _pair_folders(tmp_path: Path, n: int = 8, size: int = 96) -> tuple[Path, Path]:
    photos, drawings = tmp_path / "photos", tmp_path / "drawings"
    photos.mkdir()
    drawings.mkdir()
    for f in sorted(need(FACES).glob("*.jpg"))[:n]:
        img = cv2.resize(cv2.imread(str(f)), (size, size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(photos / f"{f.stem}.png"), img)
        cv2.imwrite(str(drawings / f"{f.stem}.png"), _drawn(img))
    return photos, drawings


def _settings(tmp_path: Path, pair_photos: Path, drawings: Path, **kw) -> TTNSettings:
    base = dict(pairs=(str(pair_photos), str(drawings)), out=str(tmp_path / "run"), steps=2, batch=2, res=32,
                sample_every=1, ckpt_every=1, holdout=0.25)
    return TTNSettings(**(base | kw))


def _student(seed: int = 0) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    return ttn_model.Generator(16, 2).numpy_weights()


def test_init_from_every_model_format_keeps_the_weights_and_skips_the_warm_up(tmp_path):
    from tf_graphs import write_official_pb

    photos, drawings = _pair_folders(tmp_path, n=4, size=64)
    onnx = tmp_path / "student.onnx"
    onnx.write_bytes(ImportedTTN(_student(1), 1, 5e-3).onnx().SerializeToString())
    pb = write_official_pb(_student(2), tmp_path / "student.pb")
    for i, path in enumerate([onnx, need(WHITEBOX), pb]):
        want = read_any(path).weights
        trainer = gan.Trainer(_settings(tmp_path, photos, drawings, init=str(path), out=str(tmp_path / f"r{i}"),
                                        holdout=0.0, warmup=500))
        got = trainer.G.numpy_weights()
        assert trainer.G.channel == (32 if path == WHITEBOX else 16)  # a student keeps its width
        assert all(np.array_equal(got[k], v) for k, v in want.items()), path.suffix
        assert trainer.init == f"the head model of style {path.stem}"
        logs = trainer.train_step()  # from a start there is no reconstruction warm-up
        assert "recon" not in logs and {"pixel", "gradient", "ink", "g_s", "g_t"} <= logs.keys()
        anchor = trainer.anchor.numpy_weights()  # the frozen start, whatever the step did
        assert all(np.array_equal(anchor[k], v) for k, v in want.items())


def test_a_pair_is_warped_alike_in_the_geometry_calibration():
    rng = np.random.default_rng(0)
    photo = torch.from_numpy(rng.integers(0, 256, (3, 3, 40, 40), dtype=np.uint8))
    pairs = torch.cat([photo, 255 - photo], 1)  # the drawing: the photo's negative
    x, _ = gan.geometry_batch(pairs, torch.tensor([0, 1, 2, 1]), 24, (0.5, 1.0), 20.0, torch.Generator().manual_seed(3))
    assert not torch.allclose(x[0, :3], x[2, :3])
    assert torch.allclose(x[:, 3:], -x[:, :3], atol=1e-5)  # the same flip, scale, rotation and shift on both


def test_pairs_are_cut_by_the_photos_face_alignment(tmp_path):
    photos, drawings = tmp_path / "p", tmp_path / "d"
    photos.mkdir()
    drawings.mkdir()
    face = cv2.imread(str(need(SHARED / "media" / "images" / "portrait-512.jpg")))
    cv2.imwrite(str(photos / "a.png"), face)
    cv2.imwrite(str(drawings / "a.png"), 255 - face)
    pair = gan.load_pairs([photos / "a.png"], photos, drawings).numpy()[0].transpose(1, 2, 0)
    photo, drawing = pair[..., :3].astype(int), pair[..., 3:6].astype(int)
    assert np.abs(photo + drawing - 255).max() <= 1  # one transform for both (rounding aside)
    plain = cv2.resize(face, (256, 256), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(photo - plain).mean() > 10  # aligned by the face, not just resized
    region = pair[..., 7]  # the face, where the alignment put it: nose and cheeks in, corners out
    assert np.array_equal(region, gan.face_region(256)) and region[150, 128] == 255 and region[5, 5] == 0
    cv2.imwrite(str(photos / "a.png"), np.full_like(face, 128))  # no face found: no face region
    assert gan.load_pairs([photos / "a.png"], photos, drawings)[0, 7].max() == 0


def test_ink_face_weights_the_strokes_inside_the_face_only(tmp_path):
    photos, drawings = _pair_folders(tmp_path, n=4, size=64)
    trainer = gan.Trainer(_settings(tmp_path, photos, drawings, holdout=0.0, warmup=0, ink_face=4.0))
    x, _ = trainer.batch(trainer.pairs)
    x[:, 7, :, :16], x[:, 7, :, 16:] = 1.0, -1.0  # the face on the left half
    drawn = trainer.supervised(x)
    inked = trainer.inked(x, drawn)
    assert torch.allclose(inked[..., :16], 5 * drawn[..., :16]) and torch.equal(inked[..., 16:], drawn[..., 16:])
    out, drawing = trainer.forward_g(x[:, :3]).detach(), x[:, 3:6]
    plain, weighted = losses.paired_losses(out, drawing, drawn), losses.paired_losses(out, drawing, drawn, inked)
    assert plain["pixel"] == weighted["pixel"] and plain["gradient"] == weighted["gradient"]
    assert weighted["ink"] != plain["ink"]
    assert {"pixel", "gradient", "ink"} <= trainer.train_step().keys()


def test_paired_run_validates_stops_early_and_exports(tmp_path):
    photos, drawings = _pair_folders(tmp_path)
    extra = tmp_path / "selfies"  # unpaired photos mixed in, content anchored to the start's output
    extra.mkdir()
    for f in sorted(FACES.glob("*.jpg"))[20:24]:
        cv2.imwrite(str(extra / f"{f.stem}.png"), cv2.resize(cv2.imread(str(f)), (64, 64)))
    onnx = tmp_path / "start.onnx"
    onnx.write_bytes(ImportedTTN(_student(), 1, 5e-3).onnx().SerializeToString())
    s = _settings(tmp_path, photos, drawings, init=str(onnx), photos=str(extra), steps=6, lr=0.0, patience=2,
                  fill_radius=4)
    trainer = gan.Trainer(s)
    assert len(trainer.pairs) + len(trainer.val) == 6  # 2 of the 8 are the test hold-out: never loaded
    assert trainer.styles.shape[1] == 3 and len(trainer.styles) == len(trainer.pairs)  # the critics see drawings
    trainer.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    scores = [r for r in log if "held_out" in r]
    assert {"lab_l1", "ssim", "stroke_f1"} <= scores[0].keys()
    x = trainer.val[:, :3].float() / 127.5 - 1.0  # scored as exported: with the flat fills
    with torch.no_grad():
        y = trainer.forward_g(x).permute(0, 2, 3, 1).numpy()
    drawings_val = list(trainer.val[:, 3:6].permute(0, 2, 3, 1).numpy())
    as_exported = [((np.clip(o, -1, 1) + 1) * 127.5).round().astype(np.uint8) for o in network.flat_fills(y, 4)]
    assert scores[0]["flat_share"] == evaluate.artist_metrics(as_exported, drawings_val)["flat_share"]
    assert [r["step"] for r in scores] == [0, 1, 2]  # lr 0: never better than the start, so 2 validations and stop
    assert {"content", "pixel"} <= next(r for r in log if "pixel" in r).keys()
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["step"] == 0 and best["best"][1] == 0
    style = export(ExportSettings(checkpoint=str(tmp_path / "run" / "best.pt"), out=str(tmp_path / "style"),
                                  name="toy", license="test"))
    card = json.loads((Path(style) / "style.json").read_text())["training"]
    assert card["data"]["pairs"]["n_train"] == len(trainer.pairs) and card["held_out"]["step"] == 0
    assert card["init"] == "the head model of style start" and card["flat_fills"] == {"radius": 4}
    assert read_any(Path(style) / "model.onnx").fill_radius == 4


def test_pairs_without_drawings_fail_in_one_line(tmp_path):
    photos, drawings = _pair_folders(tmp_path, n=4, size=64)
    next(drawings.glob("*.png")).unlink()
    r = subprocess.run([sys.executable, "-m", "dctoon.train", "ttn", "--pairs", str(photos), str(drawings),
                        "--holdout", "0", "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert "photos have no drawing of the same name" in r.stderr
    r = subprocess.run([sys.executable, "-m", "dctoon.train", "ttn", "--out", str(tmp_path / "run")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--pairs PHOTOS DRAWINGS" in r.stderr and len(r.stderr.splitlines()) == 1


def test_artist_metrics_reward_the_drawing_and_its_lines():
    face = cv2.resize(cv2.imread(str(need(SHARED / "media" / "images" / "portrait-512.jpg"))), (256, 256))
    drawing = _drawn(face)
    same = evaluate.artist_metrics([drawing], [drawing])
    assert {k: same[k] for k in ("lab_l1", "ssim", "stroke_f1")} == {"lab_l1": 0.0, "ssim": 1.0, "stroke_f1": 1.0}
    shifted = evaluate.artist_metrics([np.roll(drawing, 1, axis=1)], [drawing])  # 1 px: within the tolerance
    blurred = evaluate.artist_metrics([cv2.GaussianBlur(drawing, (0, 0), 2.5)], [drawing])
    photo = evaluate.artist_metrics([face], [drawing])
    assert shifted["stroke_f1"] > 0.95 and blurred["stroke_f1"] < 0.6
    assert photo["lab_l1"] > blurred["lab_l1"] > 0 and photo["ssim"] < 1
    # flat share: the drawing's flat fills count, the photo's shading and texture do not
    assert same["flat_share"] > photo["flat_share"] + 0.1 and 0 <= photo["flat_share"]
    assert evaluate.artist_metrics([np.full_like(face, 128)], [drawing])["flat_share"] == 1.0
    # the training term sees the strokes the metric counts
    t = torch.from_numpy(drawing).permute(2, 0, 1)[None].float() / 127.5 - 1
    strokes = losses.dark_lines(t)[0, 0].numpy() > 1.0
    want = evaluate.dark_strokes(drawing)
    inner = (slice(4, -4), slice(4, -4))
    assert (strokes[inner] == want[inner]).mean() > 0.99


def test_blank_paper_is_no_target_with_paper_skip(tmp_path):
    drawing = np.full((64, 64, 3), 255, np.uint8)  # paper
    cv2.circle(drawing, (32, 34), 20, (90, 120, 200), -1)  # the figure
    cv2.circle(drawing, (32, 34), 20, (20, 20, 20), 2)  # its outline
    cv2.circle(drawing, (28, 30), 4, (255, 255, 255), -1)  # a white highlight inside: drawn, not paper
    region = gan.drawn_region(drawing)
    assert region[34, 32] == 255 and region[30, 28] == 255 and region[2, 2] == 0 and region[60, 5] == 0
    t = lambda im: torch.from_numpy(im).permute(2, 0, 1)[None].float() / 127.5 - 1  # noqa: E731
    ours = drawing.copy()
    ours[:8] = 40  # the output leaves the paper dark (a photo's background) and the figure as drawn
    weight = t(region[..., None])[:, :1] / 2 + 0.5
    skipped = losses.paired_losses(t(ours), t(drawing), weight)
    assert all(v.item() < 1e-6 for v in skipped.values())
    assert all(v.item() > 0 for v in losses.paired_losses(t(ours), t(drawing)).values())  # learn: the paper counts
    photos, drawings = _pair_folders(tmp_path, n=4, size=64)
    trainer = gan.Trainer(_settings(tmp_path, photos, drawings, holdout=0.0, warmup=0, paper="skip"))
    assert trainer.pairs.shape[1] == 8 and trainer.styles.shape[1] == 3
    x, _ = trainer.batch(trainer.pairs)
    w = trainer.supervised(x)
    assert w.shape == (2, 1, 32, 32) and 0 <= w.min() and w.max() <= 1
    assert {"pixel", "gradient", "ink"} <= trainer.train_step().keys()


def test_average_of_runs_from_one_start_exports_with_its_record(tmp_path):
    start = ttn_model.Generator(16, 2)
    runs = []
    for i, w_content in enumerate((1.0, 2.0)):
        g = ttn_model.Generator(16, 2)
        g.load_state_dict(start.state_dict())
        with torch.no_grad():
            for p in g.parameters():
                p.add_(0.01 * (i + 1))
        settings = {**dataclasses.asdict(TTNSettings()), "w_content": w_content, "out": f"r{i}"}
        st = {"G": g.state_dict(), "step": 10 * (i + 1), "elapsed": 5.0, "init": "the head model of style x",
              "settings": settings, "best": (1.0, 3)}
        runs.append(tmp_path / f"r{i}.pt")
        torch.save(st, runs[-1])
    out = average(AverageSettings(checkpoints=tuple(map(str, runs)), out=str(tmp_path / "soup.pt"),
                                  weights=(3.0, 1.0)))
    soup = torch.load(out, weights_only=True)
    want = start.state_dict()["enc1.weight"] + 0.75 * 0.01 + 0.25 * 0.02
    assert torch.allclose(soup["G"]["enc1.weight"], want, atol=1e-6)
    assert [(r["weight"], r["w_content"]) for r in soup["average"]] == [(0.75, 1.0), (0.25, 2.0)]
    style = export(ExportSettings(checkpoint=str(out), out=str(tmp_path / "style"), name="soup", license="test"))
    card = json.loads((Path(style) / "style.json").read_text())["training"]
    assert card["wall_time_s"] == 10.0 and [r["step"] for r in card["average"]] == [10, 20]
    assert "held_out" not in card  # the first run's early-stopping score says nothing of the average
    torch.save({**torch.load(runs[1], weights_only=True), "init": "random"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="different weights"):
        average(AverageSettings(checkpoints=(str(runs[0]), str(tmp_path / "other.pt")), out=str(tmp_path / "x.pt")))
    r = subprocess.run([sys.executable, "-m", "dctoon.train", "average", str(runs[0]), "--out", str(tmp_path / "y.pt")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "two or more" in r.stderr


def test_pairs_take_the_avatars_recipe_unless_a_flag_says_otherwise():
    from dctoon.train.settings import TTN_RECIPES

    paired, unpaired = TTNSettings(pairs=("p", "d")), TTNSettings(lr=3e-4)
    assert all(getattr(paired, k) == v for k, v in TTN_RECIPES["paired"].items())
    assert paired.init == "handdrawn" and paired.steps == 500 and unpaired.init is None and unpaired.steps == 20000
    assert unpaired.lr == 3e-4 and TTNSettings(pairs=("p", "d"), res=96, anchor="start").res == 96  # a flag wins
    assert TTNSettings(pairs=("p", "d"), init="random").init is None
    with pytest.raises(InputError, match="--steps"):
        TTNSettings(pairs=("p", "d"), steps=0)


def test_pair_critic_judges_drawings_where_drawn_and_resumes(tmp_path):
    photos, drawings = _pair_folders(tmp_path, n=4, size=64)
    onnx = tmp_path / "start.onnx"
    onnx.write_bytes(ImportedTTN(_student(), 1, 5e-3).onnx().SerializeToString())
    s = _settings(tmp_path, photos, drawings, init=str(onnx), holdout=0.0, w_pair=1.0, steps=2)
    trainer = gan.Trainer(s)
    photo, drawing = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    out, drawn = torch.rand(2, 3, 8, 8) * 2 - 1, torch.zeros(2, 1, 8, 8)
    drawn[..., :4] = 1  # the left half drawn, the right half blank paper
    real, fake = trainer.pair_reps(photo, drawing, drawn, out)
    assert torch.equal(real[:, :3], photo) and torch.equal(fake[:, 3:], out)
    assert torch.equal(real[:, 3:, :, :4], drawing[..., :4]) and torch.equal(real[:, 3:, :, 4:], out[..., 4:])
    logs = trainer.train_step()
    assert {"d_p", "g_p", "pixel"} <= logs.keys() and all(np.isfinite(v) for v in logs.values())
    path = trainer.save()
    again = gan.Trainer(dataclasses.replace(s, resume=True))
    assert again.step == 1
    assert all(torch.equal(a, b) for a, b in zip(again.Dp.state_dict().values(), trainer.Dp.state_dict().values()))
    assert "Dp" not in gan.Trainer(dataclasses.replace(s, w_pair=0.0, out=str(tmp_path / "r2"))).state()
    assert path.exists()


def test_torch_fills_are_the_exported_fills_and_pass_gradients():
    img = cv2.resize(cv2.imread(str(sorted(need(FACES).glob("*.jpg"))[0])), (96, 96)).astype(np.float32) / 127.5 - 1
    x = torch.from_numpy(img).permute(2, 0, 1)[None].requires_grad_(True)
    y = ttn_model.flat_fills(x, 4)
    assert np.abs(y[0].detach().permute(1, 2, 0).numpy() - network.flat_fills(img[None], 4)[0]).max() < 1e-4
    y.sum().backward()
    assert x.grad.abs().sum() > 0


def test_face_term_is_onet_on_the_photos_face_box(tmp_path):
    from dctoon.face import _to_net_input, mtcnn_weights_dir
    from dctoon.runtime import session
    from dctoon.train.faces import FaceTerm

    bgr = cv2.resize(cv2.imread(str(sorted(need(FACES).glob("*.jpg"))[0])), (128, 128), interpolation=cv2.INTER_AREA)
    term = FaceTerm()
    crop = cv2.resize(bgr, (48, 48), interpolation=cv2.INTER_AREA)[..., ::-1].copy()  # O-Net on ONNX Runtime
    onet = session(mtcnn_weights_dir() / "onet.onnx", 1, helper=True, what="O-Net")
    p = onet.run(["softmax_2"], {"input_3": _to_net_input(crop[None])})[0][0, 1]
    z = term.onet.face_logit(torch.from_numpy(crop.astype(np.float32)).permute(2, 0, 1)[None])
    assert abs(torch.sigmoid(z).item() - p) < 1e-4
    photo = torch.from_numpy(bgr.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    assert term.boxes(photo)[0] is not None and term.boxes(torch.zeros_like(photo)) == [None]
    blank = torch.zeros_like(photo).requires_grad_(True)
    seen, lost = term(photo, photo), term(photo, blank)
    assert seen < 0.5 < 3 < lost  # the photo shows its face; a grey square does not
    lost.backward()
    assert blank.grad.abs().sum() > 0
    assert term(torch.zeros_like(photo), photo) is None  # no face in the photo: nothing to keep


def test_face_term_trains_on_the_filled_output(tmp_path):
    photos, drawings = _pair_folders(tmp_path, n=4, size=96)
    trainer = gan.Trainer(_settings(tmp_path, photos, drawings, holdout=0.0, warmup=0, res=64, w_face=1.0,
                                    fill_radius=4))
    assert "face" in trainer.train_step()
    assert "face" not in gan.Trainer(_settings(tmp_path, photos, drawings, holdout=0.0, warmup=0, res=64,
                                               out=str(tmp_path / "r2"))).train_step()
