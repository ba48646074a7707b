"""The one reader of frozen_inference_graph.pb, and the only place that knows its tensor names.

A GraphDef can hold any TensorFlow op, including ones that read or write files, so a graph
is refused unless every op is on an allowlist of pure inference ops.

Besides `logits` and `probabilities`, graphs exported since the novelty score have
`features` (the classifier's last hidden layer, what fmnist_app.novelty measures); older
graphs without it still load, and then only the confidence rule can refuse a frame.
"""

import threading
from pathlib import Path

import numpy as np

from fmnist_app.dataset import IMAGE_SIZE, NUM_CLASSES

INPUT_NAME = "input"
LOGITS_NAME = "logits"
PROBABILITIES_NAME = "probabilities"
FEATURES_NAME = "features"

# Pure tensor maths: nothing here touches files, the network or process state.
ALLOWED_OPS = frozenset((
    "Placeholder", "Const", "Identity", "IdentityN", "NoOp", "Conv2D", "DepthwiseConv2dNative",
    "MatMul", "BiasAdd", "_FusedConv2D", "_FusedMatMul", "FusedBatchNorm", "FusedBatchNormV2",
    "FusedBatchNormV3", "Relu", "Relu6", "Elu", "Selu", "Sigmoid", "Tanh", "Softmax",
    "LogSoftmax", "Softplus", "Add", "AddV2", "AddN", "Sub", "Mul", "RealDiv", "Div", "Maximum",
    "Minimum", "Neg", "Rsqrt", "Sqrt", "Square", "Exp", "Log", "Mean", "Sum", "Max", "Min",
    "Prod", "MaxPool", "AvgPool", "MaxPoolV2", "ConcatV2", "Concat", "Pack", "Unpack", "Reshape",
    "Squeeze", "ExpandDims", "Transpose", "Pad", "PadV2", "Shape", "StridedSlice", "Slice",
    "Cast", "Fill", "Tile", "GatherV2", "ReverseV2", "ArgMax", "StopGradient", "Rank", "Range",
    "Size",
))


class ModelError(ValueError):
    """The frozen graph is missing, corrupt or not safe to run; the message says which."""


def check_graph_ops(graph_def, source="graph"):
    """Raise ModelError naming the first op outside ALLOWED_OPS, and check the tensor names."""
    ops = {node.op for node in graph_def.node}
    for fn in graph_def.library.function:
        ops.update(node.op for node in fn.node_def)
    refused = sorted(ops - ALLOWED_OPS)
    if refused:
        raise ModelError(f"{source}: refused, it contains op(s) {', '.join(refused)} that an "
                         "inference graph never needs; only load graphs exported by fmnist_app")
    names = {node.name for node in graph_def.node}
    missing = [n for n in (INPUT_NAME, LOGITS_NAME, PROBABILITIES_NAME) if n not in names]
    if missing:
        raise ModelError(f"{source}: no node named {', '.join(missing)}; "
                         "export the model with `python -m fmnist_app.export`")


def check_interface(graph_def, source="graph"):
    """Raise ModelError unless the input is float32 [batch, 28, 28, 1] (what export writes)."""
    node = next(n for n in graph_def.node if n.name == INPUT_NAME)
    if node.op != "Placeholder":
        raise ModelError(f"{source}: `{INPUT_NAME}` is a {node.op}, not a Placeholder; "
                         "re-export it")
    dtype = node.attr["dtype"].type
    if dtype != 1:                                      # DT_FLOAT
        raise ModelError(f"{source}: input `{INPUT_NAME}` has dtype enum {dtype}, expected "
                         "float32 raw pixels; export the model with fmnist_app.export")
    dims = [d.size for d in node.attr["shape"].shape.dim]
    if dims[1:] != [IMAGE_SIZE, IMAGE_SIZE, 1]:
        raise ModelError(f"{source}: input `{INPUT_NAME}` has shape {dims}, expected "
                         f"[batch, {IMAGE_SIZE}, {IMAGE_SIZE}, 1] (Fashion-MNIST images)")


def read_graph_def(path):
    """Parse and check a frozen GraphDef file."""
    from google.protobuf.message import DecodeError

    from fmnist_app.tf_quiet import tf

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} not found; train one with "
                         "`python -m fmnist_app.train --config config.json` or pass --model PATH")
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except (DecodeError, RuntimeWarning) as err:
        raise ModelError(f"{path}: not a frozen TensorFlow graph ({err}); re-export it") from None
    if not graph_def.node:
        raise ModelError(f"{path}: empty or not a frozen TensorFlow graph; re-export it")
    check_graph_ops(graph_def, str(path))
    check_interface(graph_def, str(path))
    return graph_def


# The demo classifies a frame and its mirror: one batch of this size, every frame.
LIVE_BATCH = 2
# Largest logit difference between LiteRT and the session on the same images that still
# counts as the same model (the two runtimes' float32 kernels differ only in rounding).
LIVE_TOLERANCE = 1e-3


class FrozenModel:
    """A frozen classifier: predict(uint8 or float images) -> probabilities (N, 10).

    Run by a TensorFlow 1 session: grappler then fuses the graph's ops (convolution, bias
    and activation as one), which answers one image in about 2 ms instead of 5-8 through a
    pruned eager function (same throughput on batches; benchmark.py's latency line). A
    session is also safe to call from any thread, a Qt worker's included. bfloat16=True
    lets grappler run the convolutions and matmuls in bfloat16 (perf/reduced_precision.py).

    live=True (the demo) also converts the graph for LiteRT, TensorFlow's on-device runtime,
    whose XNNPACK kernels answer the demo's batch of two in 0.5-0.7 of the session's time
    (perf/demo_pipeline.py prints both); batches of LIVE_BATCH then go through it, all
    others through the session. If the conversion fails or the answers differ, the session
    does everything and `live_problem` says why (`live_engine` names the engine either way).
    """

    def __init__(self, path, bfloat16=False, live=False):
        from fmnist_app.tf_quiet import tf

        self.path = Path(path)
        graph_def = read_graph_def(self.path)
        graph = tf.Graph()
        config = tf.compat.v1.ConfigProto()
        if bfloat16:
            config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = 1  # ON
        try:
            with graph.as_default():
                tf.compat.v1.import_graph_def(graph_def, name="")
            self._input = graph.get_tensor_by_name(INPUT_NAME + ":0")
            self._outputs = [graph.get_tensor_by_name(name + ":0")
                             for name in (LOGITS_NAME, PROBABILITIES_NAME)]
        except (ValueError, KeyError, tf.errors.OpError) as err:
            raise ModelError(f"{self.path}: graph cannot be loaded ({err}); re-export it") from None
        names = {node.name for node in graph_def.node}
        self.has_features = FEATURES_NAME in names
        if self.has_features:
            self._outputs.append(graph.get_tensor_by_name(FEATURES_NAME + ":0"))
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        self._tf = tf
        self._live, self.live_problem = None, ""
        self._check_outputs()
        if live:
            self._live, self.live_problem = self._live_runner()

    def _live_runner(self):
        """(LiteRT runner for batches of LIVE_BATCH, ""), or (None, why not)."""
        probe = np.random.default_rng(0).uniform(0, 255, [LIVE_BATCH, IMAGE_SIZE, IMAGE_SIZE, 1])
        probe = probe.astype(np.float32)
        try:
            runner = self._convert_for_litert()
            gap = float(np.abs(runner(probe)[0] - self._run(probe)[0]).max())
        # Any failure here (the converter's own ConverterError is not in TensorFlow's public
        # API) leaves a model that works: the session runs everything, and says why.
        except Exception as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            return None, f"LiteRT cannot run it: {reason}"
        if gap > LIVE_TOLERANCE:
            return None, f"LiteRT's logits differ by {gap:.2g}"
        return runner, ""

    def _convert_for_litert(self):
        """The session's graph as a LiteRT interpreter for batches of LIVE_BATCH."""
        from fmnist_app.tf_quiet import quiet_stderr
        with quiet_stderr():        # the converter and the interpreter log to stderr in C++
            from ai_edge_litert.interpreter import Interpreter
            converter = self._tf.compat.v1.lite.TFLiteConverter.from_session(
                self._session, [self._input], self._outputs)
            interpreter = Interpreter(model_content=converter.convert(), num_threads=2)
            (input_detail,) = interpreter.get_input_details()
            interpreter.resize_tensor_input(input_detail["index"],
                                            [LIVE_BATCH, IMAGE_SIZE, IMAGE_SIZE, 1])
            interpreter.allocate_tensors()
        by_name = {detail["name"].split(":")[0]: detail["index"]
                   for detail in interpreter.get_output_details()}
        return LiteRunner(interpreter, input_detail["index"],
                          [by_name[tensor.op.name] for tensor in self._outputs])

    @property
    def on_litert(self):
        """Whether batches of LIVE_BATCH run on LiteRT (live_problem says why not)."""
        return self._live is not None

    @property
    def live_engine(self):
        """What runs batches of LIVE_BATCH, in words (with why, when LiteRT was wanted)."""
        if self.on_litert:
            return "LiteRT (XNNPACK, 2 threads)"
        return f"TensorFlow session ({self.live_problem})" if self.live_problem else \
            "TensorFlow session"

    def _run(self, batch):
        """[logits, probabilities] (+ features when the graph has them) for one batch."""
        if self.on_litert and len(batch) == LIVE_BATCH:
            return self._live(batch)
        return self._session.run(self._outputs, {self._input: batch})

    def _check_outputs(self):
        """Two blank images through the graph: both outputs must be (2, 10). Two, as the demo
        sends (a frame and its mirror): oneDNN prepares its kernels on the first run at each
        batch size, which would otherwise make the demo's first frame several times slower."""
        try:
            outputs = self._run(np.zeros([2, IMAGE_SIZE, IMAGE_SIZE, 1], np.float32))
        except self._tf.errors.OpError as err:
            raise ModelError(f"{self.path}: graph fails on blank images "
                             f"({err.message.splitlines()[0]}); re-export it") from None
        for name, output in zip((LOGITS_NAME, PROBABILITIES_NAME), outputs):
            if tuple(output.shape) != (2, NUM_CLASSES):
                raise ModelError(f"{self.path}: output `{name}` has shape {tuple(output.shape)} "
                                 f"for two images, expected (2, {NUM_CLASSES}) class scores")
        if self.has_features and (outputs[2].ndim != 2 or len(outputs[2]) != 2):
            raise ModelError(f"{self.path}: output `{FEATURES_NAME}` has shape "
                             f"{tuple(outputs[2].shape)} for two images, expected (2, width)")

    def logits_and_probabilities(self, images):
        """images: (N, 28, 28) or (N, 28, 28, 1), raw 0..255 pixels."""
        batch = np.asarray(images, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
        return tuple(self._run(batch)[:2])

    def logits(self, images, batch_size=1000):
        """Logits (N, 10) for raw 0..255 images, in batches."""
        return self.logits_and_features(images, batch_size)[0]

    def logits_and_features(self, images, batch_size=1000):
        """(logits (N, 10), features (N, width) or None for a graph without them), in
        batches: one pass gives both."""
        images = np.asarray(images, dtype=np.float32).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
        if not len(images):
            return np.zeros((0, NUM_CLASSES), np.float32), None
        parts = [self._run(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
        logits = np.concatenate([part[0] for part in parts])
        features = np.concatenate([part[2] for part in parts]) if self.has_features else None
        return logits, features

    def predict(self, images, batch_size=1000):
        """Class probabilities (N, 10) for raw 0..255 images, in batches."""
        images = np.asarray(images).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
        parts = [self.logits_and_probabilities(images[i:i + batch_size])[1]
                 for i in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, NUM_CLASSES), np.float32)


class LiteRunner:
    """A LiteRT interpreter as a function: batch -> [outputs], in the session's fetch order.
    An interpreter holds its tensors between calls, so a lock keeps two threads apart."""

    def __init__(self, interpreter, input_index, output_indices):
        self._interpreter = interpreter
        self._input_index = input_index
        self._output_indices = output_indices
        self._lock = threading.Lock()

    def __call__(self, batch):
        with self._lock:
            self._interpreter.set_tensor(self._input_index, np.ascontiguousarray(batch, np.float32))
            self._interpreter.invoke()
            return [self._interpreter.get_tensor(index) for index in self._output_indices]
