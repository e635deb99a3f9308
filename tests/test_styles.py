"""Styles: the catalogue, ModelScope downloads against a real local HTTP server, imports, bad input.

The server below (http.server on 127.0.0.1, in a thread) speaks the two endpoints of ModelScope's
HTTP file API that dctoon.modelscope uses, honours HTTP Range, logs every request, and can be told to cut
a transfer short, to lie about a checksum, to ignore Range, or to answer 404.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest

from dctoon import download, modelscope, network, paths, styles
from dctoon.errors import ModelError
from dctoon.model import TTN

from conftest import IMAGES, need, one_line_error, run
from test_ttn import random_weights, tflite_reference

REV = "v1.0.0"
ID_3D = styles.OFFICIAL["modelscope-3d"].model_id
ID_ANIME = styles.OFFICIAL["modelscope-anime"].model_id
ID_HAND = styles.OFFICIAL["modelscope-handdrawn"].model_id


# --------------------------------------------------------------------------------------------
# A ModelScope-like file server


class Hub:
    """What the server serves and how it misbehaves; ``log`` records every request."""

    def __init__(self):
        self.models: dict[str, dict[str, bytes]] = {}
        self.log: list[dict] = []
        self.truncate: dict[str, int] = {}     # file path -> bytes sent before the connection drops
        self.bad_sha: set[str] = set()         # file paths whose listed Sha256 is wrong
        self.honour_range = True
        self.missing: set[str] = set()         # listed but 404 on download
        self.not_json = False
        self.url = ""

    def served(self, path: str) -> list[dict]:
        return [r for r in self.log if r["kind"] == "file" and r["path"] == path]


def make_handler(state: Hub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, code: int, body: bytes, ctype="application/json", headers=()):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, code: int, data: dict):
            self._send(code, json.dumps(data).encode())

        def do_GET(self):
            u = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(u.query).items()}
            m = re.fullmatch(r"/api/v1/models/(.+)/repo/files", u.path)
            if m:
                return self.listing(m.group(1), q)
            m = re.fullmatch(r"/api/v1/models/(.+)/repo", u.path)
            if m:
                return self.file(m.group(1), q)
            self._json(404, {"Code": 404, "Message": "no such API"})

        def listing(self, model_id, q):
            state.log.append({"kind": "list", "model": model_id, "query": q})
            files = state.models.get(model_id)
            if files is None or q.get("Revision") != REV:
                return self._json(404, {"Code": 10010205001, "Message": f"model {model_id} not found",
                                        "Success": False})
            if state.not_json:
                return self._send(200, b"<html>maintenance</html>", "text/html")
            entries = [{"Name": "sub", "Path": "sub", "Type": "tree", "Size": 0, "Revision": REV}]
            for path, data in files.items():
                sha = hashlib.sha256(data).hexdigest()
                entries.append({"Name": path.rsplit("/", 1)[-1], "Path": path, "Type": "blob", "Size": len(data),
                                "Sha256": "0" * 64 if path in state.bad_sha else sha, "Revision": REV,
                                "IsLFS": path.endswith(".pb")})
            self._json(200, {"Code": 200, "Data": {"Files": entries}, "Message": "success", "Success": True})

        def file(self, model_id, q):
            path = q.get("FilePath", "")
            rng = self.headers.get("Range")
            rec = {"kind": "file", "model": model_id, "path": path, "range": rng, "sent": 0}
            state.log.append(rec)
            data = state.models.get(model_id, {}).get(path)
            if data is None or path in state.missing or q.get("Revision") != REV:
                return self._json(404, {"Code": 404, "Message": "file not found"})
            start = 0
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m and state.honour_range:
                start = int(m.group(1))
                if start >= len(data):
                    return self._send(416, b"", headers=[("Content-Range", f"bytes */{len(data)}")])
            body = data[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            cut = state.truncate.get(path)
            if cut is not None:
                body = body[:cut]
                self.close_connection = True
            self.wfile.write(body)
            self.wfile.flush()
            rec["sent"] = len(body)
            if cut is not None:
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


@pytest.fixture
def server():
    state = Hub()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    state.stop = lambda: (httpd.shutdown(), httpd.server_close())
    yield state
    httpd.shutdown()
    httpd.server_close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own DCTOON_HOME and ModelScope cache; no endpoint from the environment."""
    monkeypatch.setenv("DCTOON_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "mscache"))
    monkeypatch.delenv("MODELSCOPE_DOMAIN", raising=False)
    monkeypatch.delenv("DCTOON_MODELSCOPE_ENDPOINT", raising=False)
    yield


# --------------------------------------------------------------------------------------------
# Model folders in the official ModelScope layout (real frozen TF graphs; TF is test-only)


def official_extras() -> dict[str, bytes]:
    rng = np.random.default_rng(9)
    alpha = cv2.imencode(".jpg", cv2.GaussianBlur(np.pad(np.full((200, 200), 255, np.uint8), 60), (0, 0), 20))[1]
    return {
        "alpha.jpg": alpha.tobytes(),
        "configuration.json": json.dumps({"framework": "tensorflow", "task": "image-portrait-stylization",
                                          "pipeline": {"type": "unet-person-image-cartoon"}}).encode(),
        "README.md": b"# DCT-Net compound model (test copy)\n",
        "detector.pb": rng.bytes(3000),   # placeholders: must never be downloaded or read
        "keypoints.pb": rng.bytes(2000),
    }


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> dict:
    pytest.importorskip("tensorflow")
    from tf_graphs import write_official_pb

    d = tmp_path_factory.mktemp("random_model")
    head, bg = random_weights(1), random_weights(2)
    write_official_pb(head, d / "cartoon_h.pb")
    write_official_pb(bg, d / "cartoon_bg.pb", radius=2, eps=1e-2)
    files = {p.name: p.read_bytes() for p in (d / "cartoon_h.pb", d / "cartoon_bg.pb")}
    return {"files": {**files, **official_extras()}, "head": head, "bg": bg}


@pytest.fixture(scope="module")
def reference_model(tmp_path_factory, fp16_model) -> dict:
    """Graphs carrying the reference White-box weights, under a naming variant (cartoon_handdrawn_h.pb)."""
    pytest.importorskip("tensorflow")
    from dctoon.importers import read_tflite
    from tf_graphs import write_official_pb

    d = tmp_path_factory.mktemp("reference_model")
    weights = read_tflite(fp16_model).weights
    write_official_pb(weights, d / "cartoon_handdrawn_h.pb")
    write_official_pb(weights, d / "cartoon_handdrawn_bg.pb", scope="model_bg")
    files = {p.name: p.read_bytes() for p in sorted(d.glob("*.pb"))}
    return {"files": {**files, **official_extras()}, "weights": weights}


def write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def assert_clean_cache() -> None:
    """No half-written style, no temp folder, no partial download left behind."""
    root = styles.user_dir()
    if root.exists():
        assert not [p.name for p in root.iterdir() if p.name.startswith(".")]
        for d in root.iterdir():
            assert (d / styles.CARD).is_file() and (d / "head.onnx").is_file() and (d / "bg.onnx").is_file()
            assert not list(d.glob("*.pb")) and not list(d.glob("*.part"))


def assert_nothing_installed() -> None:
    assert_clean_cache()
    assert not (styles.user_dir().exists() and any(styles.user_dir().iterdir()))


def portrait(size: int = 224) -> np.ndarray:
    return cv2.resize(cv2.imread(str(need(IMAGES / "portrait-512.jpg"))), (size, size), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------------------------
# The catalogue


def test_catalogue_has_builtin_official_and_user_styles():
    entries = {e.name: e for e in styles.catalogue()}
    official = [e for e in entries.values() if e.kind == "official"]
    assert [e.name for e in official] == list(styles.OFFICIAL)
    assert len(official) == 7 and not any(e.installed for e in official)
    ids = {e.model_id for e in official}
    assert ids == {f"damo/cv_unet_person-image-cartoon{s}_compound-models"
                   for s in ("", "-3d", "-handdrawn", "-sketch", "-artstyle", "-sd-design", "-sd-illustration")}
    assert all(o.revision == REV and o.license == "Apache-2.0" for o in styles.OFFICIAL.values())
    assert dict(styles.OFFICIAL["modelscope-anime"].sha256)["head"] == \
        "bca966dded317de32b6870b758fd01c6ab8f6ab76a285149fbf450a71624fe80"
    builtin = sorted(d.name for d in styles.BUILTIN_DIR.glob("*") if (d / styles.CARD).is_file()) \
        if styles.BUILTIN_DIR.is_dir() else []
    assert sorted(e.name for e in entries.values() if e.kind == "built-in") == builtin
    for e in entries.values():
        assert e.description and e.status in ("built-in", "installed", "available")
        assert e.preview is None or e.preview.is_file()
    with pytest.raises(ModelError, match="not installed: run `dctoon styles download modelscope-3d`"):
        styles.resolve("modelscope-3d")


def test_style_files_keep_weights_in_fp16(tmp_path):
    """save_style(half=True), as train export writes, stores the weights in fp16 (half the file; read
    back as fp32, the arithmetic stays fp32) and the output stays close to the fp32 graph's; a style
    whose head and background are one network is re-exported as one file; the built-in students of the
    official styles fit the 15 MB budget together (the avatar, the trainer's own style, is apart)."""
    from dctoon.importers import read_any
    from dctoon.train.export import export
    from dctoon.train.settings import ExportSettings

    weights = random_weights(3, channel=16, blocks=4)
    folder = styles.save_style(tmp_path / "two", "two", weights, {k: v.copy() for k, v in weights.items()},
                               description="", license="", source="test", half=True)
    head = read_any(folder / "head.onnx")
    assert all(head.weights[k].dtype == np.float32 for k in weights)
    assert all(np.array_equal(head.weights[k], v.astype(np.float16).astype(np.float32)) for k, v in weights.items())
    (tmp_path / "fp32.onnx").write_bytes(network.build_onnx(weights).SerializeToString())
    bgr = cv2.resize(cv2.imread(str(need(IMAGES / "portrait-512.jpg"))), (256, 256))
    d = TTN(folder / "head.onnx", device="cpu")(bgr).astype(int) - TTN(tmp_path / "fp32.onnx", device="cpu")(bgr)
    psnr = 10 * np.log10(255 ** 2 / max((d ** 2).mean(), 1e-12))
    assert psnr >= 50 and np.abs(d).max() <= 4, (psnr, np.abs(d).max())  # the trained built-ins: 63-71 dB, 1 level
    assert (folder / "head.onnx").stat().st_size < 0.55 * (tmp_path / "fp32.onnx").stat().st_size
    one = export(ExportSettings(checkpoint=str(folder), out=str(tmp_path / "one"), name="one"))
    assert sorted(p.name for p in Path(one).iterdir()) == ["model.onnx", "style.json"]
    students = [d for d in styles.BUILTIN_DIR.iterdir()  # the issue's budget: the official styles' students
                if json.loads((d / styles.CARD).read_text())["training"].get("trainer", "").startswith("dctoon.train.distill")]
    files = {p.resolve() for d in students for p in d.glob("*.onnx")}
    assert len(students) >= 5 and sum(p.stat().st_size for p in files) <= 15e6, sorted(files)


def test_styles_command_lists_everything(capsys):
    for argv in (["styles"], ["styles", "list"]):
        code, out, err = run(argv, capsys)
        assert code == 0, err
        rows = [ln.split()[:2] for ln in out.splitlines() if ln.startswith("modelscope-")]
        assert [r[0] for r in rows] == list(styles.OFFICIAL) and all(r[1] == "available" for r in rows)
    code, out, _ = run(["styles", "info", "modelscope-anime"], capsys)
    assert code == 0 and "damo/cv_unet_person-image-cartoon_compound-models" in out and "Apache-2.0" in out


def test_unknown_style_names_suggest_the_closest(capsys):
    with pytest.raises(ModelError, match="did you mean 'modelscope-anime'"):
        styles.resolve("modelscope-anim")
    with pytest.raises(ModelError, match="did you mean 'modelscope-design'"):
        styles.download("design")  # ("3d" is a built-in now)
    for argv in (["styles", "info", "modelscop-sketch"], ["styles", "download", "modelscope-sktch"],
                 ["styles", "remove", "modelscope-artstyl"]):
        code, _, err = run(argv, capsys)
        assert code == 2
        assert "did you mean" in one_line_error(err)


def test_endpoint_resolution(monkeypatch):
    assert modelscope.endpoint() == "https://www.modelscope.cn"
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "mirror.example.org")
    assert modelscope.endpoint() == "https://mirror.example.org"
    monkeypatch.setenv("DCTOON_MODELSCOPE_ENDPOINT", "http://127.0.0.1:1234/")
    assert modelscope.endpoint() == "http://127.0.0.1:1234"
    assert modelscope.endpoint("http://other:80") == "http://other:80"
    with pytest.raises(ModelError, match="not an http"):
        modelscope.endpoint("ftp://x")
    assert modelscope.file_url("http://h", ID_3D, REV, "cartoon_h.pb") == \
        f"http://h/api/v1/models/{ID_3D}/repo?Revision=v1.0.0&FilePath=cartoon_h.pb"


# --------------------------------------------------------------------------------------------
# Downloads from the real local server


def test_download_converts_and_works_offline(server, random_model, capsys):
    server.models[ID_3D] = random_model["files"]
    code, out, err = run(["styles", "download", "modelscope-3d", "--endpoint", server.url], capsys)
    assert code == 0, err
    folder = styles.user_dir() / "modelscope-3d"
    assert out.strip() == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["bg.onnx", "head.onnx", "preview.jpg", "style.json"]
    card = json.loads((folder / "style.json").read_text())
    assert card["name"] == "modelscope-3d" and card["license"] == "Apache-2.0"
    assert card["head"]["sha256"] == styles.file_sha256(folder / "head.onnx")
    assert card["background"]["sha256"] == styles.file_sha256(folder / "bg.onnx")
    assert card["guided_filter"] == {"radius": 1, "eps": pytest.approx(5e-3)}
    assert card["background"]["guided_filter"] == {"radius": 2, "eps": pytest.approx(1e-2)}
    origin = card["origin"]
    assert origin["model_id"] == ID_3D and origin["revision"] == REV and origin["endpoint"] == server.url
    for name in ("cartoon_h.pb", "cartoon_bg.pb"):
        assert origin["files"][name]["sha256"] == hashlib.sha256(random_model["files"][name]).hexdigest()
    # only the listing and the two graphs were fetched: not the detector, landmarks, mask, config
    assert sorted(r["path"] for r in server.log if r["kind"] == "file") == ["cartoon_bg.pb", "cartoon_h.pb"]
    assert all(r["range"] is None for r in server.log if r["kind"] == "file")
    assert not styles.downloads_dir().exists()
    assert_clean_cache()
    entry = next(e for e in styles.catalogue() if e.name == "modelscope-3d")
    assert entry.installed and entry.status == "installed" and entry.preview == folder / "preview.jpg"

    # the converted models compute what the original graphs compute
    x = np.random.default_rng(3).integers(0, 256, (1, 40, 56, 3)).astype(np.float32)
    style = styles.resolve("modelscope-3d")
    for path, w, (r, e) in ((style.head, random_model["head"], (1, 5e-3)), (style.background, random_model["bg"], (2, 1e-2))):
        d = np.abs(TTN(path).run_batch(x.astype(np.uint8)).astype(int) - network.reference_forward(w, x, r, e).astype(int))
        assert d.max() <= 1 and d.mean() < 0.01

    # a second download is a no-op; then offline: the server is gone, the style still works
    n = len(server.log)
    assert styles.download("modelscope-3d", server.url) == folder and len(server.log) == n
    server.stop()
    import dctoon

    out_img = dctoon.load("modelscope-3d", dctoon.Settings(faces=False)).stylize(portrait(96)[..., ::-1].copy())
    assert out_img.shape == (96, 96, 3)
    code, out, err = run(["styles"], capsys)
    assert code == 0 and re.search(r"^modelscope-3d\s+installed", out, re.M)
    cv2.imwrite(str(Path(paths.home()) / "in.png"), portrait(64))
    code, _, err = run(["image", paths.home() / "in.png", "-o", paths.home() / "out.png", "--style",
                        "modelscope-3d", "--no-faces"], capsys)
    assert code == 0, err
    assert cv2.imread(str(paths.home() / "out.png")).shape == (64, 64, 3)


def test_download_stylize_matches_tflite_reference(server, reference_model, fp16_model, shared_images, capsys):
    """Whole path: real TF graphs with the reference weights -> HTTP -> convert -> ONNX Runtime,
    against the TFLite interpreter on the original weights."""
    server.models[ID_HAND] = reference_model["files"]
    code, _, err = run(["styles", "download", "modelscope-handdrawn", "--endpoint", server.url], capsys)
    assert code == 0, err
    server.stop()
    style = styles.resolve("modelscope-handdrawn")
    assert style.card["origin"]["files"].keys() == {"cartoon_handdrawn_h.pb", "cartoon_handdrawn_bg.pb"}
    head, bg = TTN(style.head), TTN(style.background)
    for path in shared_images[:4]:
        img = cv2.resize(cv2.imread(str(path)), (224, 224), interpolation=cv2.INTER_AREA)
        ref = tflite_reference(fp16_model, img).astype(int)
        for model in (head, bg):
            d = np.abs(model.run_batch(img[None])[0].astype(int) - ref)
            print(f"{path.name}: max {d.max()} mean {d.mean():.4f}")
            assert d.max() <= 2 and d.mean() <= 0.5, path.name
    import dctoon

    rgb = cv2.cvtColor(cv2.imread(str(need(IMAGES / "portrait-512.jpg"))), cv2.COLOR_BGR2RGB)
    out = dctoon.load("modelscope-handdrawn").stylize(rgb)
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() > 3


def test_server_down(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ModelError, match="cannot reach ModelScope .* connection refused"):
        styles.download("modelscope-3d", url)
    code, _, err = run(["styles", "download", "modelscope-3d", "--endpoint", url], capsys)
    assert code == 2 and "--endpoint" in one_line_error(err)
    assert_nothing_installed()


def test_not_found(server, random_model, capsys):
    code, _, err = run(["styles", "download", "modelscope-sketch", "--endpoint", server.url], capsys)
    assert code == 2 and "not found" in one_line_error(err) and "404" in err
    server.models[ID_3D] = random_model["files"]
    with pytest.raises(ModelError, match="revision v9"):
        styles.download("modelscope-3d", server.url, revision="v9")
    server.missing.add("cartoon_bg.pb")
    with pytest.raises(ModelError, match=r"cartoon_bg.pb of .* not found .*404"):
        styles.download("modelscope-3d", server.url)
    assert_nothing_installed()


def test_not_a_modelscope_server(server, random_model):
    server.models[ID_3D] = random_model["files"]
    server.not_json = True
    with pytest.raises(ModelError, match="did not answer with a ModelScope file listing"):
        styles.download("modelscope-3d", server.url)
    # a model without the expected graphs
    server.not_json = False
    server.models[ID_3D] = official_extras()
    with pytest.raises(ModelError, match=r"no \*_h \(head\) model found"):
        styles.download("modelscope-3d", server.url)
    assert_nothing_installed()


def test_endpoint_from_the_environment(server, random_model, monkeypatch):
    server.models[ID_3D] = random_model["files"]
    monkeypatch.setenv("MODELSCOPE_DOMAIN", server.url)
    assert styles.download("modelscope-3d", preview=False, progress=True).name == "modelscope-3d"
    styles.remove("modelscope-3d")
    monkeypatch.setenv("MODELSCOPE_DOMAIN", "unused.invalid")
    monkeypatch.setenv("DCTOON_MODELSCOPE_ENDPOINT", server.url + "/")
    folder = styles.download("modelscope-3d", preview=False)
    assert json.loads((folder / "style.json").read_text())["origin"]["endpoint"] == server.url
    assert not (folder / "preview.jpg").exists()
    assert len([r for r in server.log if r["kind"] == "list"]) == 2


def test_truncated_download_resumes_with_range(server, random_model, capsys):
    server.models[ID_3D] = random_model["files"]
    size = len(random_model["files"]["cartoon_h.pb"])
    server.truncate["cartoon_h.pb"] = 5000
    code, _, err = run(["styles", "download", "modelscope-3d", "--endpoint", server.url], capsys)
    assert code == 2
    assert "cut off" in one_line_error(err) and "run the same command again to resume" in err
    part = next(styles.downloads_dir().rglob("cartoon_h.pb.part"))
    assert part.stat().st_size == 5000
    assert_nothing_installed()

    del server.truncate["cartoon_h.pb"]
    code, _, err = run(["styles", "download", "modelscope-3d", "--endpoint", server.url], capsys)
    assert code == 0, err
    second = server.served("cartoon_h.pb")[-1]
    assert second["range"] == "bytes=5000-" and second["sent"] == size - 5000
    assert styles.resolve("modelscope-3d").card["origin"]["files"]["cartoon_h.pb"]["sha256"] == \
        hashlib.sha256(random_model["files"]["cartoon_h.pb"]).hexdigest()
    assert not styles.downloads_dir().exists()
    assert_clean_cache()


def test_interrupted_download_resumes_only_the_remainder(server, random_model, monkeypatch, capsys):
    """Ctrl-C in the middle of the background graph: exit 130, the part kept; the next run asks
    only for the missing bytes of that file and does not fetch the finished head again."""
    server.models[ID_3D] = random_model["files"]
    monkeypatch.setattr(download, "CHUNK", 4096)
    written = {"n": 0}
    real = download._append

    def append(f, data):
        if f.name.endswith("cartoon_bg.pb.part") and written["n"] >= 3 * 4096:
            raise KeyboardInterrupt
        real(f, data)
        written["n"] += len(data) if f.name.endswith("cartoon_bg.pb.part") else 0

    monkeypatch.setattr(download, "_append", append)
    code, _, err = run(["styles", "download", "modelscope-3d", "--endpoint", server.url], capsys)
    assert code == 130 and err.strip().splitlines() == [
        "dctoon: interrupted: the partial download is kept; run the same command again to resume"]
    assert_nothing_installed()
    part = next(styles.downloads_dir().rglob("cartoon_bg.pb.part"))
    assert part.stat().st_size == 3 * 4096

    monkeypatch.setattr(download, "_append", real)
    n_head = len(server.served("cartoon_h.pb"))
    code, _, err = run(["styles", "download", "modelscope-3d", "--endpoint", server.url], capsys)
    assert code == 0, err
    assert len(server.served("cartoon_h.pb")) == n_head  # the finished head was reused
    last = server.served("cartoon_bg.pb")[-1]
    assert last["range"] == f"bytes={3 * 4096}-" and last["sent"] == len(random_model["files"]["cartoon_bg.pb"]) - 3 * 4096
    assert_clean_cache()


def test_server_that_ignores_range_restarts_cleanly(server, random_model):
    server.models[ID_3D] = random_model["files"]
    server.truncate["cartoon_bg.pb"] = 777
    with pytest.raises(ModelError, match="cut off"):
        styles.download("modelscope-3d", server.url)
    del server.truncate["cartoon_bg.pb"]
    server.honour_range = False
    styles.download("modelscope-3d", server.url)
    card = styles.resolve("modelscope-3d").card
    assert card["origin"]["files"]["cartoon_bg.pb"]["sha256"] == \
        hashlib.sha256(random_model["files"]["cartoon_bg.pb"]).hexdigest()


def test_checksum_mismatch(server, random_model, capsys):
    # the catalogue knows the real anime graphs' SHA-256: these random ones do not match it
    server.models[ID_ANIME] = random_model["files"]
    code, _, err = run(["styles", "download", "modelscope-anime", "--endpoint", server.url], capsys)
    assert code == 2 and "checksum mismatch" in one_line_error(err) and "bca966dded317de3" in err
    assert not list(paths.home().rglob("*.part")) and not list(paths.home().rglob("*.pb"))
    # the listing's Sha256 is checked too
    server.models[ID_3D] = random_model["files"]
    server.bad_sha.add("cartoon_bg.pb")
    with pytest.raises(ModelError, match="checksum mismatch for cartoon_bg.pb"):
        styles.download("modelscope-3d", server.url)
    assert_nothing_installed()


def test_disk_full_while_downloading_and_while_converting(server, random_model, monkeypatch, capsys):
    server.models[ID_3D] = random_model["files"]

    def full(f, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download, "_append", full)
    code, _, err = run(["styles", "download", "modelscope-3d", "--endpoint", server.url], capsys)
    assert code == 2 and "disk full" in one_line_error(err) and "free some space" in err
    assert_nothing_installed()
    monkeypatch.undo()
    monkeypatch.setenv("DCTOON_HOME", str(paths.home()))

    real_write = Path.write_bytes

    def write_bytes(self, data):
        if self.suffix == ".onnx":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(ModelError, match="disk full while writing style 'modelscope-3d'"):
        styles.download("modelscope-3d", server.url)
    assert_nothing_installed()


# --------------------------------------------------------------------------------------------
# Import


def test_import_from_local_modelscope_cache(random_model, tmp_path, capsys):
    cache = tmp_path / "mscache" / "hub" / ID_HAND
    write_folder(cache, random_model["files"])
    # by official name: found in $MODELSCOPE_CACHE
    code, out, err = run(["styles", "import", "modelscope-handdrawn"], capsys)
    assert code == 0, err
    card = styles.resolve("modelscope-handdrawn").card
    assert card["origin"]["model_id"] == ID_HAND and card["license"] == "Apache-2.0"
    assert card["origin"]["files"]["cartoon_h.pb"]["sha256"] == hashlib.sha256(random_model["files"]["cartoon_h.pb"]).hexdigest()
    # by path, any name variant, under a name of one's own
    other = write_folder(tmp_path / "my copy", {"NAME_cartoon_h.pb": random_model["files"]["cartoon_h.pb"],
                                                "NAME_cartoon_bg.pb": random_model["files"]["cartoon_bg.pb"],
                                                "detector.pb": b"junk", "alpha.jpg": b"junk"})
    code, out, err = run(["styles", "import", other, "--name", "mine"], capsys)
    assert code == 0, err
    assert out.strip() == str(styles.user_dir() / "mine")
    code, out, err = run(["styles", "import", other], capsys)  # default name from the folder's
    assert code == 0 and out.strip() == str(styles.user_dir() / "my-copy"), err
    code, _, err = run(["styles", "import", other, "--name", "MINE"], capsys)
    assert code == 2 and "already exists" in one_line_error(err)
    x = np.random.default_rng(4).integers(0, 256, (1, 32, 32, 3)).astype(np.uint8)
    a = TTN(styles.resolve("mine").head).run_batch(x)
    b = TTN(styles.resolve("modelscope-handdrawn").head).run_batch(x)
    np.testing.assert_array_equal(a, b)
    assert {e.name: e.kind for e in styles.catalogue()}["mine"] == "user"
    assert_clean_cache()
    # the new-style cache layout (hub/models/owner/name) is found too
    styles.remove("modelscope-handdrawn")
    import shutil

    shutil.move(str(cache), str(tmp_path / "mscache" / "hub" / "models" / ID_HAND))
    assert styles.import_style("modelscope-handdrawn", preview=False).name == "modelscope-handdrawn"


def test_import_single_files_and_style_folders(fp16_model, tmp_path):
    folder = styles.import_style(fp16_model, "whitebox", preview=False)
    card = json.loads((folder / "style.json").read_text())
    assert card["origin"]["files"].keys() == {fp16_model.name}
    # re-importing one of our style folders keeps its card
    copy = styles.import_style(folder, "whitebox-copy", preview=False)
    assert json.loads((copy / "style.json").read_text())["source"] == card["source"]
    assert (copy / "head.onnx").read_bytes() != b""


def test_bad_imports_are_one_line_errors_and_leave_nothing(random_model, tmp_path, capsys):
    bad_cases = {
        "corrupt": {"cartoon_h.pb": b"\x08\x96\x01" * 50, "cartoon_bg.pb": random_model["files"]["cartoon_bg.pb"]},
        "foreign": {"cartoon_h.pb": cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(),
                    "cartoon_bg.pb": random_model["files"]["cartoon_bg.pb"]},
        "empty": {"cartoon_h.pb": b"", "cartoon_bg.pb": b""},
        "no-graphs": official_extras(),
        "two-heads": {"cartoon_h.pb": b"x", "cartoon_anime_h.pb": b"x", "cartoon_bg.pb": b"x"},
    }
    expect = {"corrupt": "cartoon_h.pb", "foreign": "cartoon_h.pb", "empty": "empty model file",
              "no-graphs": "no style here", "two-heads": "several"}
    for name, files in bad_cases.items():
        folder = write_folder(tmp_path / name, files)
        code, _, err = run(["styles", "import", folder, "--name", name], capsys)
        assert code == 2, name
        assert expect[name] in one_line_error(err), err
        assert_nothing_installed()
    for argv, msg in ((["styles", "import", tmp_path / "missing"], "no such file"),
                      (["styles", "import", tmp_path / "corrupt", "--name", "../evil"], "invalid style name"),
                      (["styles", "import", "modelscope-sketch"], "no local ModelScope copy")):
        code, _, err = run(argv, capsys)
        assert code == 2 and msg in one_line_error(err), err
    assert_nothing_installed()


def test_name_clash_on_import_and_remove(random_model, tmp_path, capsys):
    folder = write_folder(tmp_path / "m", {k: random_model["files"][k] for k in ("cartoon_h.pb", "cartoon_bg.pb")})
    code, _, err = run(["styles", "import", folder, "--name", "mine"], capsys)
    assert code == 0, err
    before = (styles.user_dir() / "mine" / "style.json").read_bytes()
    code, _, err = run(["styles", "import", folder, "--name", "mine"], capsys)
    assert code == 2 and "already exists" in one_line_error(err) and "styles remove mine" in err
    assert (styles.user_dir() / "mine" / "style.json").read_bytes() == before
    for b in styles._styles_in(styles.BUILTIN_DIR):
        code, _, err = run(["styles", "import", folder, "--name", b], capsys)
        assert code == 2 and "built-in" in one_line_error(err)
        code, _, err = run(["styles", "remove", b], capsys)
        assert code == 2 and "built-in" in one_line_error(err)
    code, out, err = run(["styles", "info", "mine"], capsys)
    assert code == 0 and styles.file_sha256(styles.user_dir() / "mine" / "head.onnx") in out
    code, out, err = run(["styles", "remove", "mine"], capsys)
    assert code == 0 and not (styles.user_dir() / "mine").exists()
    code, _, err = run(["styles", "remove", "mine"], capsys)
    assert code == 2
    one_line_error(err)
    code, _, err = run(["styles", "remove", "modelscope-3d"], capsys)
    assert code == 2 and "not installed" in one_line_error(err)
    assert_clean_cache()


def test_remove_clears_a_partial_download(server, random_model):
    server.models[ID_3D] = random_model["files"]
    server.truncate["cartoon_h.pb"] = 100
    with pytest.raises(ModelError):
        styles.download("modelscope-3d", server.url)
    assert list(styles.downloads_dir().rglob("*.part"))
    styles.remove("modelscope-3d")
    assert not styles.downloads_dir().exists()


def test_builtin_styles_in_the_catalogue(tmp_path, monkeypatch, capsys):
    """Built-in styles (package data, produced by the trainer) whether or not they exist yet:
    simulated here with a folder written by save_style, as the trainer's export does."""
    builtin = tmp_path / "builtin"
    w = random_weights(5)
    styles.save_style(builtin / "anime", "anime", w, w, description="Anime test style", license="test",
                      source="test", preview=np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setattr(styles, "BUILTIN_DIR", builtin)
    entries = styles.catalogue()
    assert (entries[0].name, entries[0].kind, entries[0].status) == ("anime", "built-in", "built-in")
    assert entries[0].preview == builtin / "anime" / "preview.jpg"
    assert styles.default_style() == "anime" and styles.resolve("anime").folder == builtin / "anime"
    code, out, _ = run(["styles"], capsys)
    assert code == 0 and re.search(r"^anime\s+built-in\s+Anime test style$", out, re.M)
    for argv, msg in ((["styles", "remove", "anime"], "built-in style"),
                      (["styles", "import", builtin / "anime", "--name", "anime"], "already exists (a built-in style)"),
                      (["styles", "download", "anime"], "not a ModelScope style")):
        code, _, err = run(argv, capsys)
        assert code == 2 and msg in one_line_error(err), err
    with pytest.raises(ModelError, match="did you mean 'anime'"):
        styles.resolve("anim")
