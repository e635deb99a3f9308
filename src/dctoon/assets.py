"""Every asset dctoon can fetch, in one table: name -> where it comes from, what its bytes hash to,
its licence.

Two kinds share the shape of :class:`Asset`:

- ``style``: the official DCT-Net compound models on ModelScope (a model id and revision; the
  SHA-256 of each role's file where it is known). :mod:`dctoon.styles` fetches them through
  :mod:`dctoon.modelscope`.
- ``segmentation``: MediaPipe's person segmentation, which ships inside two registry archives
  (the npm package and the PyPI wheel) that are pinned with the model file inside them.
  :mod:`dctoon.helper_models` fetches them.

Both download with :mod:`dctoon.download` (resumable, checksummed) into :mod:`dctoon.paths`'
cache. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """One archive that holds a model file: where to get it and what its bytes must hash to."""

    url: str
    member: str  # path of the model file inside the archive
    sha256: str  # of the archive ("" when unknown: a mirror of another version)
    member_sha256: str  # of the model file
    size: int | None = None  # of the archive, bytes


@dataclass(frozen=True)
class Asset:
    """A named downloadable model."""

    name: str
    kind: str  # "style" or "segmentation"
    description: str
    license: str = "Apache-2.0"
    model_id: str = ""  # ModelScope model id (styles)
    revision: str = ""  # ModelScope revision (styles)
    sha256: tuple[tuple[str, str], ...] = ()  # (role, sha256) of the files, where known
    size: tuple[tuple[str, int], ...] = ()  # (role, bytes)
    sources: tuple[Source, ...] = ()  # archives holding the file, tried in order (segmentation)

    @property
    def url(self) -> str:
        """Where a person can see it (and download it by hand)."""
        if self.model_id:
            return f"https://www.modelscope.cn/models/{self.model_id}"
        return self.sources[0].url


def _style(name: str, model_id: str, description: str, sha256: str = "", size: int = 0) -> Asset:
    roles = ("head", "background")
    return Asset(name, "style", description, model_id=model_id, revision="v1.0.0",
                 sha256=tuple((r, sha256) for r in roles) if sha256 else (),
                 size=tuple((r, size) for r in roles) if size else ())


_NPM = "https://registry.npmjs.org/@mediapipe/selfie_segmentation/-/selfie_segmentation-0.1.1675465747.tgz"
_NPM_SHA = "7767b33eaa68990ee06c28bbb89f39a13a47ebb07ff0f1fd4947d9e817bb9bf9"
_NPM_SIZE = 4_049_373
_WHEEL = ("https://files.pythonhosted.org/packages/ad/83/56f760fecdc60de84c529d6c05c9dfc7d972617c6632bd254d5e"
          "021e5b16/mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl")
_WHEEL_SHA = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
_WHEEL_SIZE = 35_622_638
WHEEL_DIR = "mediapipe/modules/selfie_segmentation/"


def _segmentation(name: str, file: str, npm_sha: str, wheel_sha: str, description: str) -> Asset:
    """The 4 MB npm tarball first, the 36 MB PyPI wheel second: the same model file in both."""
    return Asset(name, "segmentation", description, sources=(
        Source(_NPM, f"package/{file}", _NPM_SHA, npm_sha, _NPM_SIZE),
        Source(_WHEEL, WHEEL_DIR + file, _WHEEL_SHA, wheel_sha, _WHEEL_SIZE)))


ASSETS: dict[str, Asset] = {a.name: a for a in [
    _style("modelscope-anime", "damo/cv_unet_person-image-cartoon_compound-models",
           "DCT-Net official anime style (Japanese anime look: smooth skin, big clean eyes, flat colour)",
           "bca966dded317de32b6870b758fd01c6ab8f6ab76a285149fbf450a71624fe80", 5_894_895),
    _style("modelscope-3d", "damo/cv_unet_person-image-cartoon-3d_compound-models",
           "DCT-Net official 3D style (3D-animation-film look, soft shading)"),
    _style("modelscope-handdrawn", "damo/cv_unet_person-image-cartoon-handdrawn_compound-models",
           "DCT-Net official hand-drawn style (coloured hand-drawn illustration)"),
    _style("modelscope-sketch", "damo/cv_unet_person-image-cartoon-sketch_compound-models",
           "DCT-Net official sketch style (pencil sketch, monochrome lines)"),
    _style("modelscope-artstyle", "damo/cv_unet_person-image-cartoon-artstyle_compound-models",
           "DCT-Net official art style (painterly artistic effect)"),
    _style("modelscope-design", "damo/cv_unet_person-image-cartoon-sd-design_compound-models",
           "DCT-Net official design style (trained on Stable-Diffusion-generated design exemplars)"),
    _style("modelscope-illustration", "damo/cv_unet_person-image-cartoon-sd-illustration_compound-models",
           "DCT-Net official illustration style (trained on Stable-Diffusion-generated illustrations)"),
    # 256x256 general model: portraits and square-ish frames.
    _segmentation("selfie", "selfie_segmentation.tflite",
                  "8d13b7fae74af625c641226813616a2117bd6bca19eb3b75574621fc08557f27",
                  "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
                  "person segmentation (MediaPipe selfie, 256x256)"),
    # 144x256 landscape model: faster on 16:9 video calls, same archives.
    _segmentation("landscape", "selfie_segmentation_landscape.tflite",
                  "4aafe6223bb8dac6fac8ca8ed56852870a33051ef3f6238822d282a109962894",
                  "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
                  "person segmentation (MediaPipe selfie landscape, 144x256: faster on 16:9)"),
]}


def of_kind(kind: str) -> dict[str, Asset]:
    """The registry's assets of one kind, in table order (a live view is not needed: it is static)."""
    return {n: a for n, a in ASSETS.items() if a.kind == kind}
