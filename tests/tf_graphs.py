"""Build frozen TensorFlow graphs in the official DCT-Net layout, for importer tests (TF is test-only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dctoon import network


def write_official_pb(weights: dict[str, np.ndarray], path: Path, scope: str | None = None,
                      radius: int = 1, eps: float = 5e-3) -> Path:
    """A frozen GraphDef like ModelScope's cartoon_h.pb: input_image [H,W,3] BGR 0-255 -> output_image uint8.

    Built with TF1 ops and slim's variable names (generator/Conv/weights, generator/block_0/conv1/...),
    frozen with convert_variables_to_constants, optionally re-imported under a name scope.
    """
    import tensorflow as tf

    tf1 = tf.compat.v1
    channel, blocks = network.config_of(weights)
    specs = network.conv_specs(channel, blocks)
    slim_names = ["Conv", "Conv_1", "Conv_2", "Conv_3", "Conv_4"]
    slim_names += [f"block_{i}/conv{j}" for i in range(blocks) for j in (1, 2)]
    slim_names += ["Conv_5", "Conv_6", "Conv_7", "Conv_8", "Conv_9"]
    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.float32, [None, None, 3], name="input_image")
        photo = tf.expand_dims(image, 0) / 127.5 - 1.0
        variables = {}

        def conv(x, spec, slim, act=True):
            with tf1.variable_scope(slim):
                k = tf1.get_variable("weights", initializer=weights[f"{spec.name}.weight"].transpose(2, 3, 1, 0))
                b = tf1.get_variable("biases", initializer=weights[f"{spec.name}.bias"])
            variables[slim] = (k, b)
            y = tf.nn.bias_add(tf.nn.conv2d(x, k, [1, spec.stride, spec.stride, 1], "SAME"), b)
            return tf.nn.leaky_relu(y, 0.2) if act else y

        def up(x):
            s = tf.shape(x)
            return tf1.image.resize_bilinear(x, (s[1] * 2, s[2] * 2))

        c = iter(zip(specs, slim_names))
        with tf1.variable_scope("generator"):
            x0 = conv(photo, *next(c))
            x1 = conv(conv(x0, *next(c)), *next(c))
            x2 = conv(conv(x1, *next(c)), *next(c))
            for _ in range(blocks):
                h = conv(x2, *next(c))
                x2 = conv(h, *next(c), act=False) + x2
            x2 = conv(x2, *next(c))
            x3 = conv(conv(up(x2) + x1, *next(c)), *next(c))
            x4 = conv(up(x3) + x0, *next(c))
            y = conv(x4, *next(c), act=False)

        def box(t):
            k = np.ones((2 * radius + 1, 2 * radius + 1, t.shape[-1], 1), np.float32) / (2 * radius + 1) ** 2
            return tf.nn.depthwise_conv2d(t, k, [1, 1, 1, 1], "SAME")

        n = box(tf.ones_like(photo[..., :1]))
        mx, my = box(photo) / n, box(y) / n
        a = (box(photo * y) / n - mx * my) / (box(photo * photo) / n - mx * mx + eps)
        bb = my - a * mx
        out = box(a) / n * photo + box(bb) / n
        out = tf.cast(tf.clip_by_value((out + 1.0) * 127.5, 0, 255), tf.uint8)
        tf.squeeze(out, 0, name="output_image")
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            frozen = tf1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["output_image"])
    if scope:
        scoped = tf.Graph()
        with scoped.as_default():
            tf1.import_graph_def(frozen, name=scope)
        frozen = scoped.as_graph_def()
    Path(path).write_bytes(frozen.SerializeToString())
    return Path(path)


def run_pb(path: Path, bgr: np.ndarray, scope: str | None = None) -> np.ndarray:
    """Run a frozen graph with TensorFlow, the way the official pipeline does."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    gdef = tf1.GraphDef()
    gdef.ParseFromString(Path(path).read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(gdef, name="")
    prefix = f"{scope}/" if scope else ""
    with tf1.Session(graph=graph) as sess:
        return sess.run(f"{prefix}output_image:0", {f"{prefix}input_image:0": bgr.astype(np.float32)})
