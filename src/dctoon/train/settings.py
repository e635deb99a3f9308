"""Settings of the training entry points, one dataclass each (torch-free, so the CLI can build its
parsers and ``--help`` without importing PyTorch). Field metadata ``help`` is the flag's help."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from dctoon.errors import check_range
from dctoon.network import DEFAULT_SHARPNESS
from dctoon.runtime import cap_threads


POOL_KINDS = ("face", "zoom", "scene", "degraded")  # the distillation pool's input kinds (see train/distill.py)


def _f(default, help: str, low=None, high=None, **kw):
    """A setting: its ``--help`` line and, for a number, the range it must lie in (``low``/``high``)."""
    return field(default=default, metadata={"help": help, "range": (low, high), **kw})


class _Checked:
    """Settings whose numbers are range-checked when made (one line, exit 2, before any data or
    model loads: ``--steps 0`` fails at once, not after the pool is built); ``threads`` is capped at
    this machine's cores (a huge count exhausts the thread limit of every process)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            low, high = f.metadata.get("range", (None, None))
            value = getattr(self, f.name)
            if value is None or (low, high) == (None, None):
                continue
            for v in value if isinstance(value, (tuple, list)) else (value,):
                check_range("--" + f.name.replace("_", "-"), v, low, high)
        if hasattr(self, "threads"):
            self.threads = cap_threads(self.threads)


@dataclass
class PrepareSettings(_Checked):
    out: str = _f(None, "data set folder to write", required=True)
    photos: str | None = _f(None, "folder of real face photos")
    styles: str | None = _f(None, "folder of style exemplars")
    size: int = _f(256, "aligned crop size", low=32, high=4096)
    ratio: float = _f(0.75, "alignment ratio (as inference: room for hair and chin)", low=0.1, high=4)
    min_face: int = _f(48, "drop faces smaller than this (px, in the source image)", low=1, high=65500)
    multi_face: float = _f(0.5, "drop photos with a second face at least this fraction of the largest", low=0, high=1)
    holdout: float = _f(0.1, "fraction of face photos held out for evaluation", low=0, high=0.9)
    limit: int = _f(0, "only the first N files of each folder (0: all)", low=0)
    quality: int = _f(95, "JPEG quality of the written crops", low=1, high=100)
    border: str = _f("reflect", "how pixels beyond the frame are filled: reflect or replicate (inference's choice)")


# The settings a flag left unset takes: DCT-Net's unpaired recipe, or with --pairs the one the built-in
# avatar was trained with (chosen on AvatarHQ's validation pairs: src/dctoon/train/README.md), so a user's
# own 100-200 pairs get the measured recipe without flags.
TTN_RECIPES = {
    "unpaired": {"steps": 20000, "batch": 8, "res": 256, "lr": 2e-4, "w_content": 10.0, "lowpass_weight": 1.0,
                 "sample_every": 250, "anchor": "start", "fill_radius": 0},
    "paired": {"steps": 500, "batch": 4, "res": 160, "lr": 1e-4, "w_content": 1.0, "lowpass_weight": 0.25,
               "sample_every": 100, "anchor": "photo", "init": "handdrawn", "fill_radius": 4},
}


def _recipe(key: str) -> str:
    """A recipe setting's default, as its --help says it."""
    unpaired, paired = (v if isinstance(v, str) else f"{v:g}" for v in (TTN_RECIPES[k][key] for k in TTN_RECIPES))
    return f"default: {unpaired}, with --pairs {paired}"


@dataclass
class TTNSettings(_Checked):
    photos: str | None = _f(None, "folder of face photos (a prepared data set or a plain folder); with --pairs,"
                                  " unpaired photos mixed in (half a batch each step)")
    styles: str | None = _f(None, "folder of style exemplars (a prepared data set or a plain folder); with --pairs,"
                                  " the critics see the drawings unless this is given")
    pairs: tuple[str, str] | None = _f(None, "paired mode: PHOTOS DRAWINGS, two folders where each drawing was made"
                                             " over the photo of the same name (pixel-aligned); both are aligned"
                                             " by the face found in the photo and warped alike",
                                       metavar=("PHOTOS", "DRAWINGS"))
    out: str = _f("runs/ttn", "run folder: checkpoints, samples, log")
    steps: int | None = _f(None, f"total generator steps (warm-up included; {_recipe('steps')})",
                           low=1, high=10000000)
    warmup: int = _f(500, "content-only (reconstruction) warm-up steps", low=0, high=10000000)
    batch: int | None = _f(None, f"batch size ({_recipe('batch')})", low=1, high=1024)
    res: int | None = _f(None, "training crop size in px (fully convolutional: can be smaller than inference;"
                               f" {_recipe('res')})", low=16, high=2048)
    crop: tuple[float, float] = _f((0.6, 1.0), "geometry calibration: window covers this fraction of the side",
                                   low=0.05, high=1)
    rotate: float = _f(15.0, "geometry calibration: max rotation in degrees", low=0, high=180)
    holdout: float = _f(0.1, "fraction of a raw photo folder held out for evaluation (prepared folders use split.json)",
                        low=0, high=0.9)
    lr: float | None = _f(None, f"Adam learning rate ({_recipe('lr')})", low=0, high=1)
    w_surface: float = _f(1.0, "surface (blurred) adversarial weight", low=0, high=10000.0)
    w_texture: float = _f(1.0, "texture (grey) adversarial weight", low=0, high=10000.0)
    w_content: float | None = _f(None, f"content loss weight ({_recipe('w_content')})", low=0, high=10000.0)
    w_tv: float = _f(1.0, "total variation weight", low=0, high=10000.0)
    w_pixel: float = _f(3.0, "paired: L1 to the drawing", low=0, high=10000.0)
    w_gradient: float = _f(3.0, "paired: L1 of image gradients to the drawing's (shapes, edges)", low=0, high=10000.0)
    w_ink: float = _f(3.0, "paired: strokes, dark lines (difference of Gaussians) of either side with none of the"
                           " other's within 1 px", low=0, high=10000.0)
    w_face: float = _f(0.0, "face weight: MTCNN's O-Net must still see the photo's face in the output, in grey and"
                            " after the --fill-radius fills if any (keeps faces; paid for in flatness: it shades the"
                            " nose)",
                       low=0, high=10000.0)
    ink_face: float = _f(0.0, "paired: the strokes term counts 1+K times inside the face (brows to chin, jaw to jaw,"
                              " where the aligned pairs have it): the outlines an artist draws there",
                         low=0, high=10000.0)
    w_pair: float = _f(0.0, "paired: conditional patch critic (pix2pix): judges (photo, drawing) against (photo,"
                            " output), so it rewards what the artist draws over that photo: outlines, flat fills",
                       low=0, high=10000.0)
    paper: str = _f("skip", "paired: the drawings' blank paper (near-white, joined to the border) is left out of"
                            " the supervised terms (skip: a photo's background has no right answer there, and"
                            " learning it whitens backgrounds and pale skin), or a target like any pixel (learn)",
                    choices=("skip", "learn"))
    w_expression: float = _f(0.0, "expression term weight (structure error around the 5 landmarks)",
                             low=0, high=10000.0)
    w_superpixel: float = _f(0.0, "structure weight: L1 to the output's own superpixel mean colours (White-box)",
                             low=0, high=10000.0)
    w_shift: float = _f(0.0, "shift-equivariance weight: L1 between the output of the photo moved 1-3 px and the"
                             " output moved (stops streaks locked to the generator's 4 px grid; steadier video)",
                             low=0, high=10000.0)
    w_edge: float = _f(0.0, "edge-promoting weight (CartoonGAN): exemplars with blurred outlines shown to the texture"
                            " critic as fakes, so the generator learns crisp lines instead of soft edges",
                            low=0, high=10000.0)
    w_lines: float = _f(0.0, "outline weight: L1 toward dark lines (a 30%% shade of the output's superpixel colour)"
                             " where the flattened photo has XDoG outlines: eyes, brows, lips, jaw, hair",
                             low=0, high=10000.0)
    w_abstract: float = _f(0.0, "abstraction weight: L1 to a cartoon abstraction of the photo (bilateral flattening,"
                                " soft luminance bands, DoG ink), which the content loss then keeps instead of the"
                                " photo: a paired target for flat shading and lines", low=0, high=10000.0)
    bands: int = _f(0, "tone bands: the generator's last layer quantises the output's luminance into N soft bands"
                       " (flat shading; trained through, exported into the model; 0: none)", low=0, high=64)
    band_sharpness: float = _f(DEFAULT_SHARPNESS, "tone bands: steepness of the soft step between two bands (Winnemoeller's phi)",
                               low=0.01, high=10000.0)
    fill_radius: int | None = _f(None, "flat fills the exported models end in: the output smoothed by a guided filter"
                                       " of this radius with itself as guide, its dark lines kept, faded out on"
                                       " near-white output, edges made crisp (not trained through; the validation"
                                       f" pairs are scored with them; 0: none; {_recipe('fill_radius')})",
                                 low=0, high=16)
    superpixels: int = _f(150, "SLIC superpixels per training crop for the structure term", low=2, high=100000)
    segmenter: str = _f("slic", "structure term's regions: slic (compact superpixels: smoothing) or felzenszwalb"
                                " (regions that follow the output's colour edges: posterised, flat shading)",
                        choices=("slic", "felzenszwalb"))
    lowpass_weight: float | None = _f(None, f"content loss: low-pass L1 part ({_recipe('lowpass_weight')})",
                                      low=0, high=10000.0)
    grad_weight: float = _f(1.0, "content loss: gradient (structure) part", low=0, high=10000.0)
    chroma_weight: float = _f(0.0, "content loss: colour-edge part (stops green/magenta fringes at lines)",
                              low=0, high=10000.0)
    structure_floor: float = _f(0.0, "content loss: photo gradients weaker than this (gentle shading; median"
                                     " 0.02 on a -1..1 scale) are not kept, so shading can settle into flat tones",
                                     low=0, high=2)
    flatten: bool = _f(True, "content loss: take the structure target from the edge-preserving flattened photo")
    vgg_weights: str | None = _f(None, "torchvision vgg19 state dict: use White-box's VGG19 conv4_4 content loss")
    threads: int = _f(1, "torch CPU threads", low=1)
    seed: int = _f(0, "random seed", low=0)
    sample_every: int | None = _f(None, "write a sample grid (and score the validation pairs) every N steps"
                                        f" ({_recipe('sample_every')})", low=1)
    ckpt_every: int = _f(250, "write a checkpoint every N steps", low=1)
    resume: bool = _f(False, "continue from OUT/checkpoint.pt")
    init: str | None = _f(None, "start the generator from a style's head model (built-in name, style folder or"
                                " model file: .onnx, .tflite, .pb) to fine-tune it, with no warm-up and a frozen"
                                " copy of the start for --anchor; the model card records it (--resume with a"
                                " checkpoint wins; 'random': random weights; default: random weights, with --pairs the"
                                " built-in handdrawn)")
    anchor: str | None = _f(None, "what the content loss keeps when fine-tuning (--init): the start's output (its"
                                  " look on photos) or the photo (its structure: eyes, mouth, outlines;"
                                  f" {_recipe('anchor')})", choices=("start", "photo"))
    patience: int = _f(0, "early stopping: stop after this many validations (every --sample-every steps) without"
                          " a better held-out score; OUT/best.pt keeps the best (0: never stop early)", low=0)
    stop_at: str | None = _f(None, "stop (with a checkpoint) at the next HH:MM, UTC (past midnight too)")
    device: str = _f("cpu", "torch device")

    def __post_init__(self) -> None:
        for key, value in TTN_RECIPES["paired" if self.pairs else "unpaired"].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.init == "random":
            self.init = None
        super().__post_init__()


@dataclass
class DistillSettings(_Checked):
    teacher: str = _f(None, "teacher: a style (name or folder) or a model file (.onnx, .tflite, .pb), e.g. an official"
                            " DCT-Net .tflite", required=True)
    photos: list[str] = _f(None, "folders of training photos (faces, people, scenes; a hash hold-out of each is"
                                 " kept for validation)", required=True)
    out: str = _f("runs/distill", "run folder: pool.npz (teacher outputs), checkpoints, samples, log")
    channel: int = _f(16, "student width (MAC per pixel at 32 / 28 / 24 / 16 with 4 blocks: 124,608 / 96,432 /"
                          " 71,856 / 33,504)", low=4, high=64)
    blocks: int = _f(4, "student residual blocks (c=16 with 2 blocks: 24,288 MAC per pixel)", low=1, high=16)
    steps: int = _f(6000, "training steps", low=1, high=10000000)
    batch: int = _f(8, "batch size", low=1, high=1024)
    res: int = _f(160, "training crop size in px (a multiple of 4)", low=16, high=2048)
    pool: int = _f(3000, "teacher-labelled training inputs made once (faces, close-ups, scenes, degraded)",
                   low=1, high=1000000)
    pool_size: int = _f(256, "side of each pool input in px", low=32, high=4096)
    margin: int = _f(12, "px at crop edges inside the image left out of the loss (context the student lacks)",
                     low=0, high=512)
    lr: float = _f(5e-4, "peak Adam learning rate (warm-up, then cosine decay to 2%%)", low=0, high=1)
    clip: float = _f(1.0, "gradient norm clipping", low=1e-06, high=1000000.0)
    warmup: int = _f(100, "learning-rate warm-up steps", low=0, high=10000000)
    w_pixel: float = _f(1.0, "L1 pixel weight", low=0, high=10000.0)
    w_l2: float = _f(4.0, "L2 pixel weight", low=0, high=10000.0)
    w_grad: float = _f(1.0, "L1 image-gradient weight (edges and lines)", low=0, high=10000.0)
    holdout: float = _f(0.1, "fraction of each photo folder held out (validation, never trained on)", low=0, high=0.9)
    val_images: int = _f(24, "held-out images for the validation PSNR", low=1, high=10000)
    init: str | None = _f(None, "start the student from 'teacher' or a style's head model (name, folder or model"
                                " file); a wider start is compressed to the student's width (default: random)")
    calib: int = _f(32, "pool inputs the compression of a wider --init measures (activation statistics, refit)",
                    low=1, high=4096)
    calib_kinds: tuple[str, ...] = _f(POOL_KINDS, "pool kinds the compression calibrates on (face zoom alone: higher"
                                      " PSNR, fewer faces detected; see docs/distillation.md)", choices=POOL_KINDS)
    refit: bool = _f(True, "compression: refit each layer of the cut by least squares to the wider network's"
                           " outputs (else the mean compensation alone)")
    threads: int = _f(2, "torch and onnxruntime CPU threads", low=1)
    seed: int = _f(0, "random seed", low=0)
    sample_every: int = _f(250, "validate, write a sample grid and a checkpoint every N steps", low=1)
    resume: bool = _f(False, "continue from OUT/checkpoint.pt")
    stop_at: str | None = _f(None, "stop (with a checkpoint) at the next HH:MM, UTC; the learning rate decays by "
                                   "then if that comes before --steps")
    device: str = _f("cpu", "torch device for the student (cuda on a GPU machine; the teacher labels on the CPU)")


@dataclass
class ExportSettings(_Checked):
    checkpoint: str = _f(None, "TTN checkpoint (.pt) written by `train ttn`, or a style (name or folder) to"
                               " re-export with its model card's training record", positional=True)
    out: str = _f(None, "style folder to write (style.json, head.onnx, bg.onnx)", required=True)
    name: str = _f(None, "style name", required=True)
    description: str | None = _f(None, "model card description (default: a style's own; none for a checkpoint)")
    license: str | None = _f(None, "license of the exported weights (mind the training data's terms)")
    source: str | None = _f(None, "where the weights come from (default: a style's own, or dctoon train ttn)")
    metrics: str | None = _f(None, "JSON file of evaluation metrics to put in the model card")
    command: str | None = _f(None, "exact training command to record in the model card (a style's: appended)")
    preview: str | None = _f(None, "image to stylize for preview.jpg (RGB photo)")
    bands: int | None = _f(None, "tone bands the models end in (default: the checkpoint's --bands or the"
                                 " style's; 0: none)", low=0, high=64)
    band_sharpness: float | None = _f(None, "tone bands' sharpness (default: the checkpoint's or the style's)",
                                      low=0.01, high=10000.0)
    fill_radius: int | None = _f(None, "flat fills the models end in: fills smoothed by a guided filter of this radius"
                                       " guided by the output itself, dark lines kept, faded out on near-white output,"
                                       " edges made crisp (default: the checkpoint's --fill-radius or the style's;"
                                       " 0: none)",
                                       low=0, high=16)


@dataclass
class AverageSettings(_Checked):
    checkpoints: tuple[str, ...] = _f(None, "checkpoints (.pt) of runs from the same start, e.g. each run's best.pt",
                                      positional=True)
    out: str = _f(None, "checkpoint to write (export it with `train export`)", required=True)
    weights: tuple[float, ...] | None = _f(None, "one weight per checkpoint (scaled to sum to 1; default: equal)",
                                           low=0)


@dataclass
class CCNSettings(_Checked):
    styles: str = _f(None, "folder of style exemplars (prepared or plain)", required=True)
    out: str = _f("runs/ccn", "run folder: checkpoint.pt (rosinality format), swapped.pt, samples/")
    ckpt: str | None = _f(None, "source StyleGAN2 checkpoint (rosinality format); none: random init")
    size: int = _f(256, "generator size for a random init", low=8, high=1024)
    style_dim: int = _f(512, "latent size for a random init", low=1, high=4096)
    n_mlp: int = _f(8, "mapping layers for a random init", low=1, high=16)
    channel_multiplier: int = _f(2, "channel multiplier for a random init", low=1, high=8)
    channel_max: int = _f(512, "channel cap for a random init (small for toy runs)", low=1, high=4096)
    steps: int = _f(1000, "fine-tuning steps", low=1, high=10000000)
    batch: int = _f(4, "batch size", low=1, high=1024)
    lr: float = _f(2e-3, "Adam learning rate (betas 0, 0.99)", low=0, high=1)
    r1: float = _f(10.0, "R1 penalty weight (lazy, every 4 steps)", low=0, high=10000.0)
    id_weight: float = _f(1.0, "content stand-in for DCT-Net's identity loss: L1 of 8x8 G_s vs G_t images",
                          low=0, high=10000.0)
    freeze_d: int = _f(0, "freeze this many first discriminator blocks (FreezeD)", low=0, high=16)
    swap_res: int = _f(32, "layer swap: layers up to this resolution come from the source", low=4, high=1024)
    samples: int = _f(1000, "style faces to sample into OUT/samples", low=0, high=1000000)
    sample_size: int = _f(256, "size of the written samples", low=8, high=4096)
    truncation: float = _f(0.7, "truncation for sampling", low=0, high=1)
    resume: bool = _f(False, "continue from OUT/checkpoint.pt")
    threads: int = _f(1, "torch CPU threads", low=1)
    seed: int = _f(0, "random seed", low=0)
    device: str = _f("cpu", "torch device")


@dataclass
class EvalSettings(_Checked):
    style: str = _f(None, "style to evaluate: a name, a style folder or a model file (.onnx, .tflite, .pb)",
                    positional=True)
    photos: str = _f(None, "photo folder: a prepared one (its split.json 'eval' list) or a plain one (the"
                            " same hash hold-out as training)", required=True)
    exemplars: str = _f(None, "style exemplar folder (for the style distance)", required=True)
    out: str | None = _f(None, "metrics JSON to write (default: STYLE/../metrics-NAME.json)")
    sheet: str | None = _f(None, "contact sheet PNG to write")
    sheet_rows: int = _f(6, "contact sheet: rows per column group", low=1, high=100)
    sheet_groups: int = _f(2, "contact sheet: column groups side by side", low=1, high=100)
    sheet_cell: int = _f(192, "contact sheet: cell size in px", low=16, high=2048)
    reference: str | None = _f(None, "reference generator (.tflite/.pb) for a comparison column (not shipped)")
    limit: int = _f(0, "only the first N held-out photos (0: all)", low=0)
    threads: int = _f(1, "onnxruntime threads", low=1)
