"""Choose the tf.distribute strategy named by the config's DISTRIBUTE key.

    none          the default strategy: one device, the same code path as the others
    mirrored      MirroredStrategy over every local device (GPUs, or logical CPUs)
    multi_worker  MultiWorkerMirroredStrategy; the cluster comes from $TF_CONFIG

BATCH_SIZE is per replica; the global batch is BATCH_SIZE x replicas and the learning rate
is scaled by the same factor (the linear scaling rule, Goyal et al. 2017).
Only the chief writes the run directory; other workers save checkpoints to a scratch folder
because saving is a collective operation every worker must join.
"""

import json
import os
import tempfile

from fmnist_app.tf_quiet import tf


class DistributeError(RuntimeError):
    """The distribution setting cannot work here; the message says what to fix."""


def multi_worker_strategy():
    try:
        cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
    except (KeyError, ValueError, TypeError):
        raise DistributeError("DISTRIBUTE=multi_worker needs $TF_CONFIG with a 'cluster' and a"
                              " 'task' (see README, 'Training on several machines')") from None
    if not cluster:
        raise DistributeError("$TF_CONFIG names an empty cluster")
    return tf.distribute.MultiWorkerMirroredStrategy()


STRATEGIES = {
    "none": tf.distribute.get_strategy,
    "mirrored": tf.distribute.MirroredStrategy,
    "multi_worker": multi_worker_strategy,
}


def make_strategy(mode):
    if mode not in STRATEGIES:
        raise DistributeError(f"unknown DISTRIBUTE {mode!r}; use {', '.join(STRATEGIES)}")
    return STRATEGIES[mode]()


def is_chief(strategy):
    """True on the one process that writes checkpoints, logs and the exported graph."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    if has_chief:
        return resolver.task_type == "chief"
    return resolver.task_type == "worker" and resolver.task_id == 0


def checkpoint_dir_for(strategy, run_checkpoint_dir):
    """The chief saves into the run; other workers into a scratch folder of their own."""
    if is_chief(strategy):
        return run_checkpoint_dir
    return tempfile.mkdtemp(prefix="fmnist-worker-ckpt-")
