"""Write a trained Keras model as a TF1-style frozen GraphDef.

The graph has one input `input` float32 [None, 28, 28, 1] taking raw 0..255 pixels and three
outputs: `logits`, `probabilities` and `features` (the last hidden layer, the input of the
`logits` layer: what the novelty score of fmnist_app.novelty measures). Variables are folded
into constants and grappler's constant folding folds batch norm into the convolutions. The
file appears atomically.

    python -m fmnist_app.export --weights output_dir/run/best.weights.h5 --model resnet \
        --out output_dir/run/frozen_inference_graph.pb
"""

import argparse
import sys
from pathlib import Path

from fmnist_app.tf_quiet import tf  # isort: skip (first, so TensorFlow starts quietly)
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
from tensorflow.python.grappler import tf_optimizer

from fmnist_app.dataset import GRAPH_FILENAME, IMAGE_SIZE
from fmnist_app.files import write_atomically
from fmnist_app.inference import FEATURES_NAME, INPUT_NAME, LOGITS_NAME, PROBABILITIES_NAME
from fmnist_app.models import create_model, features_and_logits


def frozen_graph_def(model):
    """The model's inference graph with weights as constants, optimised by grappler."""
    spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32, name=INPUT_NAME)
    with_features = features_and_logits(model)

    @tf.function(input_signature=[spec])
    def serve(pixels):
        features, logits = with_features(pixels, training=False)
        logits = tf.cast(logits, tf.float32)
        return {LOGITS_NAME: tf.identity(logits, name=LOGITS_NAME),
                PROBABILITIES_NAME: tf.nn.softmax(logits, name=PROBABILITIES_NAME),
                FEATURES_NAME: tf.identity(tf.cast(features, tf.float32), name=FEATURES_NAME)}

    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    return _optimise(graph_def, frozen.graph)


def _optimise(graph_def, graph):
    """Run grappler constant folding + arithmetic (folds batch norm into the convs)."""
    meta_graph = tf.compat.v1.train.export_meta_graph(graph_def=graph_def, graph=graph)
    fetch = meta_graph_pb2.CollectionDef()
    names = {node.name for node in graph_def.node}
    fetch.node_list.value.extend(name for name in (LOGITS_NAME, PROBABILITIES_NAME, FEATURES_NAME)
                                 if name in names)
    meta_graph.collection_def["train_op"].CopyFrom(fetch)
    rewriter = rewriter_config_pb2.RewriterConfig()
    rewriter.optimizers.extend(["constfold", "arithmetic", "dependency", "constfold"])
    rewriter.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    session_config = config_pb2.ConfigProto(graph_options=config_pb2.GraphOptions(
        rewrite_options=rewriter))
    return tf_optimizer.OptimizeGraph(session_config, meta_graph)


def export_frozen_graph(model, path):
    """Freeze `model` (a float32 Keras model) into `path`; returns the path."""
    write_atomically(frozen_graph_def(model).SerializeToString(), path)
    return Path(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export trained weights as a frozen graph.")
    parser.add_argument("--weights", required=True, help="a .weights.h5 file written by training")
    parser.add_argument("--model", required=True, help="the registered model name it belongs to")
    parser.add_argument("--members", type=int, default=1,
                        help="networks in the ensemble the weights are of (MEMBERS; default 1)")
    parser.add_argument("--out", required=True, help=f"where to write (e.g. .../{GRAPH_FILENAME})")
    args = parser.parse_args(argv)
    if Path(args.out).is_dir():
        sys.exit(f"error: --out {args.out} is a folder; give the file to write, e.g. "
                 f"{Path(args.out) / GRAPH_FILENAME}")
    try:
        model = create_model(args.model, args.members)
        model.load_weights(args.weights)
    except (ValueError, OSError) as err:
        sys.exit(f"error: cannot load {args.weights} into {args.model!r}: {err}")
    print(f"wrote {export_frozen_graph(model, args.out)}")


if __name__ == "__main__":
    main()
