"""Training at toy scale (CPU, seconds): generator parity with the numpy reference, TTN steps,
resume, export round trip, data preparation, and the CCN path on a tiny random StyleGAN2."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the optional extra dctoon[train] (PyTorch)")

from dctoon import network as network
from dctoon.train import _util, ccn
from dctoon.train import losses
from dctoon.train import model as ttn_model
from dctoon.train import gan as gan
from dctoon.train.export import export
from dctoon.train.settings import ExportSettings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PHOTOS = SHARED / "data" / "face-photos"
ANIME = SHARED / "data" / "anime-faces"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared (real training data) is not beside the checkout")
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _random_generator(seed: int = 0) -> ttn_model.Generator:
    torch.manual_seed(seed)
    g = ttn_model.Generator()
    with torch.no_grad():  # larger than default init so every layer matters in the comparison
        for p in g.parameters():
            p.mul_(1.5)
    return g.eval()


def test_generator_matches_numpy_reference():
    g = _random_generator()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        y = g(x).permute(0, 2, 3, 1).numpy()
    ref = network.generator_forward(g.numpy_weights(), x.permute(0, 2, 3, 1).numpy())
    assert np.abs(ref).max() > 0.05
    assert np.abs(y - ref).max() < 1e-3
    # names and shapes are the project's weights dict
    specs = network.conv_specs()
    assert set(g.numpy_weights()) == {f"{s.name}.{p}" for s in specs for p in ("weight", "bias")}


def test_guided_filter_and_upsample_match_reference():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 20, 24, 3)).astype(np.float32)
    y = rng.uniform(-1, 1, (1, 20, 24, 3)).astype(np.float32)
    t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)
    got = ttn_model.guided_filter(t(x), t(y), 1, 5e-3).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - network.guided_filter(x, y, 1, 5e-3)).max() < 1e-4
    up = ttn_model.upsample2x_legacy(t(x)).permute(0, 2, 3, 1).numpy()
    assert np.abs(up - network._resize_legacy(x)).max() < 1e-6


def _toy_folders(tmp_path: Path, n_photos: int = 6, n_styles: int = 4) -> tuple[Path, Path]:
    import cv2

    rng = np.random.default_rng(0)
    photos, styles = tmp_path / "photos", tmp_path / "styles"
    photos.mkdir(parents=True)
    styles.mkdir()
    for i in range(n_photos):
        img = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (7, 7), 2)
        cv2.imwrite(str(photos / f"p{i}.png"), img)
    for i in range(n_styles):
        img = np.zeros((64, 64, 3), np.uint8)
        img[:, : 32 + 4 * i] = (40 * i, 200, 120)
        cv2.imwrite(str(styles / f"s{i}.png"), img)
    return photos, styles


def _toy_settings(tmp_path: Path, photos: Path, styles: Path, steps: int) -> gan.TTNSettings:
    return gan.TTNSettings(photos=str(photos), styles=str(styles), out=str(tmp_path / "run"), steps=steps,
                                 warmup=1, batch=2, res=32, sample_every=2, ckpt_every=2, holdout=0.0,
                                 w_expression=0.5, w_superpixel=1.0, superpixels=20)


def _adversarial_trainer(tmp_path: Path, **overrides) -> gan.Trainer:
    """A toy trainer past its warm-up (the next step is adversarial), with the given settings changed."""
    photos, styles = _toy_folders(tmp_path)
    s = _toy_settings(tmp_path, photos, styles, steps=1)
    return gan.Trainer(gan.TTNSettings(**{**s.__dict__, "warmup": 0, **overrides}))


def test_ttn_steps_resume_and_export(tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    photos, styles = _toy_folders(tmp_path)
    s = _toy_settings(tmp_path, photos, styles, steps=3)
    trainer = gan.Trainer(s)
    assert trainer.n_photos == 6 and trainer.n_styles == 4
    ckpt = trainer.run()
    assert ckpt.exists() and list((tmp_path / "run" / "samples").glob("*.jpg"))
    logs = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(v) for rec in logs for v in rec.values())

    # resume continues from step 3 with the same weights
    saved = torch.load(ckpt, weights_only=True)
    resumed = gan.Trainer(gan.TTNSettings(**{**s.__dict__, "steps": 5, "resume": True, "lr": 5e-5}))
    assert resumed.step == 3
    assert {g["lr"] for opt in (resumed.opt_g, resumed.opt_d) for g in opt.param_groups} == {5e-5}  # not the saved one
    for k, v in saved["G"].items():
        assert torch.equal(resumed.G.state_dict()[k], v)
    resumed.run()
    assert torch.load(ckpt, weights_only=True)["step"] == 5
    assert resumed.init == gan.RANDOM_INIT

    # fine-tuning on another style's exemplars: the lineage goes into the model card
    other = tmp_path / "other"
    shutil.copytree(styles, other)
    tuned = gan.Trainer(gan.TTNSettings(**{**s.__dict__, "styles": str(other), "steps": 5, "resume": True}))
    assert tuned.init.startswith("the weights of a run on") and "at step 5" in tuned.init
    assert gan.training_card(tuned.state())["init"] == tuned.init

    # export: a style folder whose ONNX matches the torch generator + guided filter
    styles_mod = pytest.importorskip("dctoon.styles")
    assert hasattr(styles_mod, "save_style")
    out = export(ExportSettings(checkpoint=str(ckpt), out=str(tmp_path / "style"), name="toy",
                                                    description="toy", license="test", source="test",
                                                    command="pytest"))
    card = json.loads((Path(out) / "style.json").read_text())
    assert card["training"]["steps"] == 5 and card["training"]["command"] == "pytest"
    sess = ort.InferenceSession(str(Path(out) / card["head"]["file"]), providers=["CPUExecutionProvider"])
    bgr = np.random.default_rng(3).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: bgr})[0].astype(np.int16)
    g, _ = gan.load_generator(ckpt)
    x = torch.from_numpy(bgr).permute(0, 3, 1, 2) / 127.5 - 1
    with torch.no_grad():
        y = ttn_model.guided_filter(x, g(x), 1, 5e-3)
    want = torch.clamp((y + 1) * 127.5, 0, 255).permute(0, 2, 3, 1).numpy().astype(np.uint8).astype(np.int16)
    assert np.abs(got - want).max() <= 1  # truncation to uint8 may differ by one level


def test_stop_time_is_the_next_one_even_past_midnight(tmp_path):
    day = 1_800_000_000 - 1_800_000_000 % 86400  # a UTC midnight
    at_2300 = day + 23 * 3600
    assert gan.stop_deadline("01:00", at_2300) - at_2300 == 2 * 3600  # tomorrow's 01:00
    assert gan.stop_deadline("23:30", at_2300) - at_2300 == 1800  # today's
    assert gan.stop_deadline(None, at_2300) == float("inf")
    for bad in ("1pm", "7:5x", "24:00"):
        with pytest.raises(gan.InputError, match="HH:MM"):
            gan.stop_deadline(bad, at_2300)
    # bad input: one line, exit code 2, before any data is read
    r = subprocess.run([sys.executable, "-m", "dctoon.train", "ttn", "--photos", str(tmp_path), "--styles",
                        str(tmp_path), "--stop-at", "25:00"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == "dctoon: error: --stop-at wants a UTC time HH:MM, got '25:00'\n"
    r = subprocess.run([sys.executable, "-m", "dctoon.train", "ttn", "--photos", str(tmp_path), "--styles",
                        str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == "dctoon: error: no training images: 0 photos, 0 exemplars\n"


def test_shift_loss_sees_patterns_locked_to_the_pixel_grid(tmp_path):
    photo = torch.rand(2, 3, 48, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    dashes = torch.zeros(1, 1, 48, 48)
    dashes[..., ::4, :] = 0.3  # a 4 px pattern tied to absolute pixel positions, as the stride-2 grid

    def smooth(x):  # moves with the picture
        return ttn_model.guided_filter(x, x, 2, 0.01)

    def streaky(x):
        return smooth(x) + dashes[..., : x.shape[-2], : x.shape[-1]]

    def loss(fn, seed):
        return losses.shift_loss(fn, photo, fn(photo), torch.Generator().manual_seed(seed)).item()

    assert max(loss(smooth, i) for i in range(8)) < 1e-5
    assert np.mean([loss(streaky, i) for i in range(8)]) > 0.05  # shifts with dy % 4 != 0 leave the dashes behind
    # the trainer adds the term and logs it
    trainer = _adversarial_trainer(tmp_path, w_shift=10.0)
    assert trainer.train_step()["shift"] >= 0 and gan.training_card(trainer.state())["losses"]["w_shift"] == 10


def test_edge_promoting_negatives_blur_the_outlines_and_nothing_else(tmp_path):
    x = torch.full((1, 3, 64, 64), 0.4)
    x += 0.02 * torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # faint texture
    x[..., 30:32] = -0.8  # a 2 px dark outline
    soft = losses.soften_edges(x)
    step = lambda t: (t[..., 1:] - t[..., :-1]).abs().amax().item()  # noqa: E731
    assert step(soft) < 0.6 * step(x)  # the outline is softened
    torch.testing.assert_close(soft[..., :24], x[..., :24], atol=0, rtol=0)  # away from it: untouched
    torch.testing.assert_close(soft[..., 38:], x[..., 38:], atol=0, rtol=0)
    # in the trainer the softened exemplars are one more set of fakes for the texture critic
    d_t = {w: _adversarial_trainer(tmp_path / f"w{w}", w_edge=w).train_step()["d_t"] for w in (0.0, 1.0)}
    assert d_t[1.0] > d_t[0.0] + 1e-4


def test_outline_term_inks_dark_lines_not_skin_texture(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.full((1, 3, 64, 64), 0.3) + 0.03 * torch.randn(1, 3, 64, 64, generator=g)  # "skin" with grain
    x[..., 20:, :] = -0.2  # a shading step
    x[..., 40:42] = -0.9  # a thin dark line (the line of lips or an eyelid)
    m = losses.outline_mask(x)
    assert m[..., 24:60, 40:42].mean() > 0.9  # inked
    assert m[..., 4:16, 4:36].max() < 0.05 and m[..., 26:60, 4:34].max() < 0.05  # grain and flat shading: not
    dim = losses.outline_mask(x * 0.25)  # the same face, a quarter of the contrast: the same lines
    assert (dim - m).abs().mean() < 0.01
    trainer = _adversarial_trainer(tmp_path, w_lines=2.0)
    assert trainer.train_step()["lines"] > 0 and gan.training_card(trainer.state())["losses"]["w_lines"] == 2


def test_abstraction_flattens_shading_into_bands_and_inks_lines(tmp_path):
    """The paired target: a grainy shading ramp becomes a few flat bands, a thin dark line gets darker."""
    rng = np.random.default_rng(0)
    ramp = np.tile(np.linspace(60, 200, 128), (128, 1))
    photo = np.clip(ramp[..., None] + rng.normal(0, 6, (128, 128, 3)), 0, 255).astype(np.uint8)
    photo[:, 90:92] = 40  # a thin dark line across the shading
    out = losses.abstraction(photo)
    grey = lambda im: im.astype(np.float32).mean(2)  # noqa: E731
    slope = lambda im: np.abs(np.diff(grey(im)[:, :80].mean(0)))  # noqa: E731  (ramp: 1.1 levels per px)
    assert (slope(out) < 0.3).mean() > 0.3 > 0.05 > (slope(photo) < 0.3).mean()  # a staircase of flat bands
    assert grey(out)[10:118, 4:80].std(0).mean() < 0.3 * grey(photo)[10:118, 4:80].std(0).mean()  # grain gone
    assert grey(out)[:, 90:92].mean() < 0.8 * grey(photo)[:, 90:92].mean()  # the line is inked
    flat = np.full((64, 64, 3), 128, np.uint8)
    flat_out = losses.abstraction(flat)  # nothing to draw: one flat tone, within half a band (256/8/2)
    assert len(np.unique(flat_out)) == 1 and abs(int(flat_out[0, 0, 0]) - 128) <= 16
    # in the trainer the target is the abstraction of the photo, warped with it (flips, scale, rotation);
    # images load at 256 px, so a full window at 256 is the identity (or a flip)
    trainer = _adversarial_trainer(tmp_path, w_abstract=5.0, crop=(1.0, 1.0), rotate=0.0, res=256)
    x, _ = trainer.batch(trainer.photos)
    photo_t, target = ((x[:, :3] + 1) * 127.5).round(), ((x[:, 3:] + 1) * 127.5).round()
    for p, t in zip(photo_t, target):
        want = losses.abstraction(p.permute(1, 2, 0).byte().numpy().copy())
        assert np.abs(t.permute(1, 2, 0).numpy() - want).max() <= 1  # identity window: the same pixels
    # ... and the content loss keeps the abstraction's structure instead of the photo's smooth shading
    batches, content_targets = [], []
    batch, content = trainer.batch, trainer.content
    trainer.batch = lambda *a: batches.append(batch(*a)) or batches[-1]
    trainer.content = lambda target, out, mask: content_targets.append(target) or content(target, out, mask)
    assert trainer.train_step()["abstract"] > 0
    assert torch.equal(content_targets[0], batches[0][0][:, 3:])
    assert gan.training_card(trainer.state())["losses"]["w_abstract"] == 5


def test_tone_bands_train_through_and_export_into_the_model(tmp_path):
    """The torch bands are the inference graph's (numpy) bands with an identity gradient; a run with
    --bands trains on banded outputs and its export ends in the same bands."""
    ort = pytest.importorskip("onnxruntime")
    x = (torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
    y = losses.tone_bands(x, 8)
    ref = network.tone_bands(x.detach().permute(0, 2, 3, 1).numpy(), 8)
    assert np.abs(y.detach().permute(0, 2, 3, 1).numpy() - ref).max() < 1e-5
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # straight through: every pixel gets its gradient

    trainer = _adversarial_trainer(tmp_path, bands=8, steps=2)
    ckpt = trainer.run()
    photo = trainer.photos[:1].float() / 127.5 - 1
    with torch.no_grad():
        banded, plain = trainer.forward_g(photo), ttn_model.guided_filter(photo, trainer.G(photo), 1, 5e-3)
    assert torch.allclose(banded, losses.tone_bands(plain, 8))
    out = export(ExportSettings(checkpoint=str(ckpt), out=str(tmp_path / "style"), name="toy"))
    card = json.loads((Path(out) / "style.json").read_text())
    assert card["tone_bands"] == {"levels": 8, "sharpness": 3.0} == card["training"]["tone_bands"]
    sess = ort.InferenceSession(str(Path(out) / card["head"]["file"]), providers=["CPUExecutionProvider"])
    bgr = trainer.photos[:1, :3].permute(0, 2, 3, 1).numpy().astype(np.float32)
    got = sess.run(None, {sess.get_inputs()[0].name: bgr})[0].astype(int)
    want = network.reference_forward(trainer.G.numpy_weights(), bgr, bands=8).astype(int)
    assert np.abs(got - want).max() <= 2 and np.abs(got - want).mean() < 0.05

    # a style re-exported with other bands keeps its weights and training record; --command is appended
    again = export(ExportSettings(checkpoint=str(out), out=str(tmp_path / "style6"), name="toy6",
                                                      bands=6, band_sharpness=2.5, command="retone"))
    card6 = json.loads((Path(again) / "style.json").read_text())
    assert card6["tone_bands"] == {"levels": 6, "sharpness": 2.5} and card6["training"]["steps"] == 2
    assert card6["training"]["command"] == "retone" and card6["source"] == card["source"] == "dctoon train ttn"
    sess6 = ort.InferenceSession(str(Path(again) / card6["head"]["file"]), providers=["CPUExecutionProvider"])
    want6 = network.reference_forward(trainer.G.numpy_weights(), bgr, bands=6, sharpness=2.5).astype(int)
    assert np.abs(sess6.run(None, {sess6.get_inputs()[0].name: bgr})[0].astype(int) - want6).max() <= 2

    # a style whose background model differs (other weights, another guided filter) keeps it
    from dctoon.importers import read_any
    from dctoon.styles import save_style

    other = _random_generator(1).numpy_weights()
    two = save_style(tmp_path / "two", "two", trainer.G.numpy_weights(), other, description="", license="",
                     source="test", background_filter=(2, 1e-2))
    banded = export(ExportSettings(checkpoint=str(two), out=str(tmp_path / "two8"), name="two8",
                                                       bands=8))
    h, b = read_any(Path(banded) / "head.onnx"), read_any(Path(banded) / "bg.onnx")
    fp16 = {k: v.astype(np.float16).astype(np.float32) for k, v in other.items()}  # as export stores them
    assert all(np.array_equal(b.weights[k], v) for k, v in fp16.items()) and (b.radius, b.eps) == (2, 1e-2)
    assert (h.radius, h.eps, h.bands, b.bands) == (1, 5e-3, 8, 8)


def test_init_fine_tunes_a_style_and_the_card_says_so(tmp_path):
    from dctoon import styles
    from dctoon.importers import read_any

    trainer = _adversarial_trainer(tmp_path, init="handdrawn")
    want = read_any(styles.resolve("handdrawn").head).weights
    assert all(np.array_equal(trainer.G.numpy_weights()[k], v) for k, v in want.items())
    card = gan.training_card(trainer.state())
    assert card["init"].startswith("the head model of style handdrawn, ") and " steps from " in card["init"]
    # an unknown style: one line, exit code 2, before any data is read
    r = subprocess.run([sys.executable, "-m", "dctoon.train", "ttn", "--photos", str(tmp_path), "--styles",
                        str(tmp_path), "--init", "no-such-style"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("dctoon: error: unknown style 'no-such-style'")
    assert len(r.stderr.splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "dctoon.train", "export", str(tmp_path / "gone.pt"), "--out",
                        str(tmp_path / "x"), "--name", "x"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == f"dctoon: error: {tmp_path / 'gone.pt'}: no such checkpoint\n"


def test_superpixel_structure_target_is_flat_and_keeps_flat_images():
    """White-box's structure representation: segment means; a flat image is its own target."""
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, :, 16:] = 0.5
    torch.testing.assert_close(losses.superpixel_rep(x, 20), x, atol=1e-6, rtol=0)
    noisy = x + 0.05 * torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    flat = losses.superpixel_rep(noisy, 20)
    assert (flat - x).abs().mean() < 0.9 * (noisy - x).abs().mean()  # noise partly averaged away
    assert len(torch.unique(flat[0, 0])) <= 40


def test_felzenszwalb_regions_keep_the_edges_slic_smears(tmp_path):
    """The posterising segmenter: regions follow colour edges, so a step off the SLIC grid stays sharp."""
    x = torch.zeros(1, 3, 64, 64)
    x[..., 27:] = 0.6
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    err = {m: (losses.superpixel_rep(noisy, 40, m) - x)[..., 25:30].abs().mean().item()
           for m in ("slic", "felzenszwalb")}
    assert err["felzenszwalb"] < 0.02 and err["felzenszwalb"] < 0.2 * err["slic"]
    torch.testing.assert_close(losses.superpixel_rep(x, 40, "felzenszwalb"), x, atol=1e-6, rtol=0)
    trainer = _adversarial_trainer(tmp_path, w_superpixel=1.0, segmenter="felzenszwalb")
    assert trainer.train_step()["superpixel"] > 0
    assert gan.training_card(trainer.state())["structure_regions"] == "felzenszwalb"


def test_structure_floor_frees_gentle_shading_and_keeps_outlines():
    """Above the floor the photo's gradients are kept; below it a ramp may become two flat tones."""
    photo = torch.linspace(-0.3, 0.3, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).clone()  # gentle shading
    no_line = photo.clone()
    photo[..., 20:24, :] = -0.9  # a dark outline across it
    two_tones = torch.where(photo > -0.9, torch.where(torch.arange(64) < 32, -0.15, 0.15), photo)
    for floor in (0.0, 0.03):
        c = losses.ContentLoss(lowpass_weight=0, flatten=False, structure_floor=floor)
        ramp, tones, gone = (c(photo, out)[0].item() for out in (photo, two_tones, no_line))
        if floor == 0:
            assert ramp == 0 and tones > 0.04  # the plain loss pins the shading ramp
        else:
            assert tones < ramp and gone > 4 * tones  # tones are free; losing the outline is not
    spots = torch.ones(1, 1, 64, 64)  # the expression term keeps all of the shading near the landmarks
    expr = [losses.ContentLoss(structure_floor=f)(photo, two_tones, spots)[1].item() for f in (0.0, 0.03)]
    assert expr[0] == expr[1] > 0


def test_chroma_term_sees_coloured_fringes_the_grey_loss_misses():
    g = torch.Generator().manual_seed(0)
    photo = ttn_model.guided_filter(x := torch.rand(2, 3, 64, 64, generator=g) * 2 - 1, x, 4, 0.04)  # smooth
    grey_line, green_line = photo.clone(), photo.clone()
    grey_line[:, :, 30:32] += 0.2  # same brightness step on every channel
    green_line[:, 1, 30:32] += 0.2 / 0.587  # the same step in grey, all of it in green
    plain, chroma = losses.ContentLoss(), losses.ContentLoss(chroma_weight=1.0)
    base, grey, green = [(chroma(photo, y)[0] - plain(photo, y)[0]).item() for y in (photo, grey_line, green_line)]
    assert green - base > 0.004 and abs(grey - base) < 0.1 * (green - base)  # the grey structure term treats both alike; only colour differs


def test_holdout_split_is_deterministic():
    names = [f"img_{i:04d}.jpg" for i in range(200)]
    train, held = _util.holdout_split(names, 0.1)
    assert len(held) == 20 and len(train) == 180 and not set(train) & set(held)
    assert _util.holdout_split(list(reversed(names)), 0.1) == (train, held)


def test_prepare_writes_report(tmp_path):
    pytest.importorskip("dctoon.face")
    from dctoon.train.prepare import PrepareSettings, prepare

    need(PHOTOS)
    need(ANIME)
    src = tmp_path / "src"
    src.mkdir()
    for p in sorted(PHOTOS.glob("*.jpg"))[:5]:
        (src / p.name).write_bytes(p.read_bytes())
    (src / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "data"
    short = prepare(PrepareSettings(out=str(out), photos=str(src), styles=str(ANIME), limit=6))
    report = json.loads((out / "report.json").read_text())
    assert report["photos"]["found"] == 6
    assert report["photos"]["dropped_files"]["broken.jpg"] == "unreadable"
    assert report["photos"]["kept"] + sum(report["photos"]["dropped"].values()) == 6
    assert report["styles"]["kept"] == 6  # exemplars are kept, centre-cropped when no face is found
    split = json.loads((out / "photos" / "split.json").read_text())
    assert len(split["eval"]) + len(split["train"]) == report["photos"]["kept"]
    import cv2

    for name in split["train"]:
        assert cv2.imread(str(out / "photos" / name)).shape == (256, 256, 3)
    assert short["photos"]["found"] == 6


def test_ccn_tiny_finetune_swap_and_sample(tmp_path):
    _, styles = _toy_folders(tmp_path)
    s = ccn.CCNSettings(styles=str(styles), out=str(tmp_path / "ccn"), size=32, style_dim=32, n_mlp=2,
                        channel_max=16, steps=2, batch=2, samples=4, sample_size=32, swap_res=8)
    folder = ccn.run_ccn(s)
    assert len(list(folder.glob("*.jpg"))) == 4
    # the checkpoint is in rosinality's format and loads back (architecture inferred from it)
    g, d, cfg = ccn.load_rosinality(tmp_path / "ccn" / "checkpoint.pt", config=None)
    assert cfg["size"] == 32 and d is not None
    assert ccn.infer_config(g.state_dict())["size"] == 32
    # layer swapping: low-res layers (and mapping) from one model, the rest from the other
    src, tgt = ccn.Generator(32, 32, 2, channel_max=16), ccn.Generator(32, 32, 2, channel_max=16)
    mixed = ccn.layer_swap(src, tgt, 8).state_dict()
    assert torch.equal(mixed["conv1.conv.weight"], src.state_dict()["conv1.conv.weight"])
    assert torch.equal(mixed["convs.0.conv.weight"], src.state_dict()["convs.0.conv.weight"])  # 8 px
    assert torch.equal(mixed["convs.2.conv.weight"], tgt.state_dict()["convs.2.conv.weight"])  # 16 px
    assert torch.equal(mixed["style.1.weight"], src.state_dict()["style.1.weight"])
    with torch.no_grad():
        assert ccn.sample(ccn.layer_swap(src, tgt, 8), tmp_path / "s", 2, 32)[0].exists()


def test_full_size_stylegan2_matches_rosinality_parameter_count():
    # config-f at 1024: 30,370,060 generator and 29,012,513 discriminator parameters
    g = ccn.Generator(1024)
    assert sum(p.numel() for p in g.parameters()) == 30_370_060
    assert sum(p.numel() for p in ccn.Discriminator(1024).parameters()) == 29_012_513


def test_evaluate_metrics_and_sheet(tmp_path):
    pytest.importorskip("dctoon.face")
    pytest.importorskip("dctoon.styles")
    from dctoon.train.evaluate import evaluate
    from dctoon.train.settings import EvalSettings

    need(PHOTOS)
    photos = tmp_path / "held"
    photos.mkdir()
    names = [p.name for p in sorted(PHOTOS.glob("*.jpg"))[:3]]
    for n in names:
        (photos / n).write_bytes((PHOTOS / n).read_bytes())
    _util.write_json(photos / _util.SPLIT_FILE, {"train": [], "eval": names})
    _, styles = _toy_folders(tmp_path)
    g = _random_generator()
    from dctoon.styles import save_style

    w = {k: v * 0 for k, v in g.numpy_weights().items()}  # zero generator: output = guided-filtered grey
    w["out.bias"] = np.zeros(3, np.float32)
    style = save_style(tmp_path / "style", "toy", w, description="toy", license="test", source="test")
    sheet = tmp_path / "sheet.png"
    result = evaluate(EvalSettings(style=str(style), photos=str(photos), exemplars=str(styles),
                                   out=str(tmp_path / "m.json"), sheet=str(sheet), sheet_rows=2, sheet_cell=64))
    assert result["n_eval"] == 3 and sheet.exists()
    assert 0 <= result["ours"]["face_detected"] <= 1
    assert 0 <= result["ours"]["colour_js"] <= 1 and 0 <= result["photos_unstylized"]["gradient_js"] <= 1
    assert json.loads((tmp_path / "m.json").read_text())["n_eval"] == 3


def test_distill_toy_run_learns_the_teacher_resumes_and_exports_a_student(tmp_path):
    """A c=16, 2-block student distilled from a teacher style for a few steps: its validation PSNR
    against the teacher rises, the run resumes where it stopped, and export writes a one-file style
    whose card records the teacher, its licence and attribution; the style runs through dctoon.load."""
    from dctoon.train import distill
    from dctoon.train.settings import DistillSettings

    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted(need(PHOTOS).glob("*.jpg"))[:24]:
        shutil.copy(p, photos / p.name)
    teacher = tmp_path / "teacher"  # a real, fast teacher: a random narrow generator, saved as a style
    from dctoon.styles import save_style

    torch.manual_seed(0)
    save_style(teacher, "teacher", ttn_model.Generator(8, 2).numpy_weights(), description="", license="test",
               source="test", eps=1e-2, single_file=True)
    s = DistillSettings(teacher=str(teacher), photos=[str(photos)], out=str(tmp_path / "run"), channel=16, blocks=2,
                        steps=30, batch=4, res=64, pool=24, pool_size=96, val_images=4, sample_every=15, threads=1,
                        lr=3e-3, warmup=5)
    d = distill.Distiller(s)
    assert d.pool_x.shape == d.pool_y.shape == (24, 96, 96, 3) and set(d.kinds) <= set(range(len(distill.KINDS)))
    assert (d.radius, d.eps) == (1, pytest.approx(1e-2))
    before = d.validate()
    assert d.lr_at(10) == pytest.approx(3e-3 * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * 10 / 30))))
    d.started, d.deadline = time.time() - 60, time.time() + 60  # half of a --stop-at budget gone: the decay follows
    assert d.lr_at(10) == pytest.approx(3e-3 * 0.51, rel=1e-2)
    d.deadline = np.inf
    d.s = dataclasses.replace(s, steps=15)
    d.run()
    resumed = distill.Distiller(dataclasses.replace(s, resume=True))
    assert resumed.step == 15 and np.array_equal(resumed.pool_y, d.pool_y)  # pool reused, not relabelled
    ckpt = resumed.run()
    after = resumed.history[-1]["val_psnr"]
    assert after > before + 3, (before, after)
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["000015.jpg", "000030.jpg"]

    out = export(ExportSettings(checkpoint=str(ckpt), out=str(tmp_path / "student"), name="toy",
                                                    description="toy student"))
    card = json.loads((Path(out) / "style.json").read_text())
    assert card["head"] == card["background"] and card["head"]["file"] == "model.onnx"
    t = card["training"]
    assert t["teacher"].startswith("style teacher") and t["teacher_license"] == "Apache-2.0"
    assert "DCT-Net" in t["attribution"] and t["steps"] == 30 and t["student"]["mac_per_px"] == 24_288
    assert card["guided_filter"] == {"radius": 1, "eps": pytest.approx(1e-2)}

    import dctoon

    img = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    assert dctoon.load(out, faces=False).stylize(img).shape == (70, 90, 3)


def test_distill_refuses_bad_sizes_in_one_line(tmp_path, capsys):
    from dctoon.cli import main

    code = main(["train", "distill", "--teacher", str(tmp_path), "--photos", str(tmp_path), "--channel", "65"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--channel" in err[0]
