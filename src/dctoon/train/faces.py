"""The face term (``--w-face``): MTCNN's last stage, O-Net, in PyTorch, judging whether the output
still shows the face the photo shows.

The faces a stylization loses are the ones O-Net stops scoring as a face: flat fills take the soft
shading it reads a nose and cheekbones by (src/dctoon/train/README.md). A content loss keeps faces by
pulling the photo's texture back; this term asks only that the face be seen, so the generator may
keep it with outlines. O-Net is read from the same ONNX file :class:`dctoon.face.FaceDetector` runs,
so both agree on what a face is.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dctoon.face import _ONET_SIZE, _PIXEL_MEAN, _PIXEL_SCALE, FaceDetector, mtcnn_weights_dir

from .model import grey

SURE = 0.95  # the term stops pushing once O-Net is about this sure of a face


class ONet(nn.Module):
    """O-Net with the exported weights. Its input is laid out width-major ([N, 3, W, H], RGB,
    (v - 127.5) / 128), as the MATLAB-trained original saw it; :meth:`face_logit` takes ordinary
    crops."""

    def __init__(self) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(mtcnn_weights_dir() / "onet.onnx")).graph
        w = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
        node = {n.output[0]: n for n in graph.node}
        for i, n in enumerate(n for n in graph.node if n.op_type == "Conv"):
            self.register_buffer(f"conv{i}_w", w[n.input[1]])
            self.register_buffer(f"conv{i}_b", w[n.input[2]])
        for i, n in enumerate(n for n in graph.node if n.op_type == "PRelu"):
            self.register_buffer(f"slope{i}", w[n.input[1]].reshape(-1))
        self.register_buffer("dense_w", w[node["dense_30"].input[1]])
        self.register_buffer("dense_b", w[node["biased_tensor_name3"].input[1]])
        self.register_buffer("face_w", w[node["dense_40"].input[1]])
        self.register_buffer("face_b", w[node["biased_tensor_name2"].input[1]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, W, H] -> the face-minus-background logit [N]."""
        def conv(t, i):
            b = getattr(self, f"conv{i}_b")
            return F.prelu(F.conv2d(t, getattr(self, f"conv{i}_w"), b), getattr(self, f"slope{i}"))

        pools = [(3, 2, 1), (3, 2, 0), (2, 2, 0)]  # kernel, stride, extra end padding (SAME_UPPER)
        for i, (k, s, pad) in enumerate(pools):
            x = F.max_pool2d(F.pad(conv(x, i), (0, pad, 0, pad), value=float("-inf")), k, s)
        x = conv(x, 3).permute(0, 2, 3, 1).flatten(1)
        x = F.prelu(x @ self.dense_w + self.dense_b, self.slope4)
        z = x @ self.face_w + self.face_b
        return z[:, 1] - z[:, 0]

    def face_logit(self, rgb: torch.Tensor) -> torch.Tensor:
        """Square crops [N, 3, S, S], RGB in [0, 255] -> logits [N]; area resize as the detector's."""
        x = F.adaptive_avg_pool2d(rgb, _ONET_SIZE) if rgb.shape[-1] >= _ONET_SIZE else \
            F.interpolate(rgb, size=_ONET_SIZE, mode="bilinear", align_corners=False)
        return self(((x - _PIXEL_MEAN) * _PIXEL_SCALE).transpose(2, 3))


class FaceTerm:
    """``softplus(logit(SURE) - logit)`` over the outputs whose photo has a face, O-Net looking at the
    photo's face box (found by the whole detector) in the output, in grey: shown colour, O-Net was
    satisfied by a pink nose and green eyes (measured, src/dctoon/train/README.md); in grey only the
    light and dark of the features can show it a face. O-Net scores grey photos as it scores them
    in colour."""

    def __init__(self, threads: int = 1, device: str | torch.device = "cpu") -> None:
        self.detector = FaceDetector(threads=threads)
        self.onet = ONet().to(device)
        self.margin = float(np.log(SURE / (1 - SURE)))

    def boxes(self, photos: torch.Tensor) -> list[tuple[int, int, int] | None]:
        """Each [-1, 1] BGR photo's largest face as a square (x, y, side), or None."""
        out = []
        for img in ((photos.detach().cpu().permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255):
            faces = self.detector.detect(cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2RGB))
            if not faces:
                out.append(None)
                continue
            x1, y1, x2, y2 = faces[0].box
            side = max(x2 - x1, y2 - y1)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            out.append((int(round(cx - side / 2)), int(round(cy - side / 2)), max(int(round(side)), 12)))
        return out

    def __call__(self, photos: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor | None:
        crops = []
        for (x, y, side), out in ((b, o) for b, o in zip(self.boxes(photos), outputs) if b is not None):
            h, w = out.shape[-2:]
            padded = F.pad(out, (max(-x, 0), max(x + side - w, 0), max(-y, 0), max(y + side - h, 0)), value=-1.0)
            crops.append(padded[:, max(y, 0):max(y, 0) + side, max(x, 0):max(x, 0) + side])
        if not crops:
            return None
        shown = [(grey(c[None]).expand(-1, 3, -1, -1) + 1) * 127.5 for c in crops]
        logits = torch.cat([self.onet.face_logit(g) for g in shown])
        return F.softplus(self.margin - logits).mean()
