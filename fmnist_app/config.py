"""The training recipe: a flat JSON object loaded once into a frozen dataclass.

Every key has a type and an allowed range; anything else is a ConfigError whose
one-line message names the key and what is allowed.
"""

import dataclasses
import json
import math
from pathlib import Path


class ConfigError(ValueError):
    """A config file or value is wrong; the message names the key and the fix."""


@dataclasses.dataclass(frozen=True)
class Config:
    MODEL: str = "resnet"
    MEMBERS: int = 1                    # >1: an ensemble of this many MODELs, logits averaged
    LOSS: str = "ce"                    # ce | weighted_ce | focal
    FOCAL_GAMMA: float = 2.0
    FOCAL_ALPHA: float = 1.0
    CLASS_WEIGHTS: tuple = (2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 1.0, 1.0)
    LABEL_SMOOTHING: float = 0.0
    AUGMENT_PROB: float = 0.3
    ERASE_FILL: str = "noise"           # noise | zero
    FLIP_FOOTWEAR: bool = False         # also mirror sandals, sneakers, boots (camera use)
    ROTATE_DEGREES: float = 0.0         # random rotation up to +-this; 0 disables
    AUGMENT_SHIFTS_ONLY: bool = False   # only pad-and-crop (cheap: for runs of minutes)
    OUTLIER_FRACTION: float = 0.0       # share of each batch that is not a garment (outlier
    OUTLIER_WEIGHT: float = 0.5         # exposure, fmnist_app/outliers.py) and its loss weight
    CAMERA_FRACTION: float = 0.0        # share of each batch that is a training garment as
                                        # the demo sees it (fmnist_app/camera_views.py)
    CAMERA_VIEWS: int = 16000           # ... rendered once per run (~4 min per 16,000 here)
    # ... how often each garment condition of fmnist_app.scenes is drawn, in the order of
    # scenes.GARMENT_CONDITIONS (plain, light on dark, textured, colour on colour, low
    # contrast, placement, hand at the edge, mirrored)
    CAMERA_CONDITION_WEIGHTS: tuple = (1.0,) * 8
    INIT_FROM: str = ""                 # a run folder whose weights this run starts from
    EXTRA_DATA_DIR: str = ""            # your own labelled images (window keys 0-9), mixed in
    EXTRA_SHARE: float = 0.1            # ... as this share of the training examples
    EXTRA_HOLDOUT: float = 0.5          # ... after holding this share of them out to measure
    FREEZE_BATCH_NORM: bool = False     # keep INIT_FROM's batch-norm statistics and scales
    FREEZE_LAYERS: int = 0              # ... and the first N conv/dense layers' weights
    BATCH_SIZE: int = 64                # per replica; global = BATCH_SIZE x replicas
    OPTIMIZER: str = "adam"             # adam | adamw | sgd (Nesterov momentum 0.9)
    WEIGHT_DECAY: float = 0.0           # adamw and sgd (decoupled, scaled by the rate)
    LR_SCHEDULE: str = "exponential"    # exponential | cosine
    LEARNING_RATE: float = 5e-4
    DECAY_RATE: float = 0.9             # exponential: multiply by this ...
    DECAY_STEPS: int = 10000            # ... every DECAY_STEPS steps
    WARMUP_STEPS: int = 0               # cosine: linear warm-up before the decay
    STEPS: int = 10000
    EMA_DECAY: float = 0.0              # 0 disables the weight moving average
    PRECISION: str = "float32"          # float32 | mixed_bfloat16 | auto (bfloat16 where the
                                        # CPU has bfloat16 units, else float32)
    VALIDATION_SIZE: int = 4000         # 0 trains on all 60,000 images and monitors the
                                        # test set (curve only: it never picks weights)
    EVAL_EVERY: int = 1000
    CHECKPOINT_EVERY: int = 1000
    EARLY_STOPPING_PATIENCE: int = 0    # evaluations without improvement; 0 disables
    TRAIN_SUBSET: int = 0               # >0: train on this many images only (tests, trials)
    OUTPUT_DIR: str = "output_dir"
    MODEL_DIR: str = "run"
    DATA_DIR: str = ""                  # "" = $FMNIST_DATA_DIR or the Debian package
    DISTRIBUTE: str = "none"            # none | mirrored | multi_worker (see distribute.py)
    SEED: int = 42

    @property
    def run_dir(self):
        return Path(self.OUTPUT_DIR) / self.MODEL_DIR

    def to_json(self):
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"


def choices():
    """Allowed names per key: the registries' own keys, so a new model, loss, optimizer,
    schedule or strategy is one function plus one registry line, and nothing here changes.
    Imported on first use: the registries need TensorFlow."""
    from fmnist_app.distribute import STRATEGIES
    from fmnist_app.losses import LOSSES
    from fmnist_app.models import MODELS
    from fmnist_app.optim import OPTIMIZERS, SCHEDULES
    return {
        "MODEL": tuple(MODELS), "LOSS": tuple(LOSSES), "OPTIMIZER": tuple(OPTIMIZERS),
        "LR_SCHEDULE": tuple(SCHEDULES), "DISTRIBUTE": tuple(STRATEGIES),
        "ERASE_FILL": ("noise", "zero"), "PRECISION": ("float32", "mixed_bfloat16", "auto"),
    }
# (low, high) inclusive bounds; None means unbounded on that side.
RANGES = {
    "FOCAL_GAMMA": (0, None), "FOCAL_ALPHA": (0, None), "LABEL_SMOOTHING": (0, 0.5),
    "AUGMENT_PROB": (0, 1), "ROTATE_DEGREES": (0, 45), "OUTLIER_FRACTION": (0, 0.5),
    "OUTLIER_WEIGHT": (0, None), "CAMERA_FRACTION": (0, 0.8),
    "CAMERA_VIEWS": (100, 200000),
    "EXTRA_SHARE": (0, 0.9), "EXTRA_HOLDOUT": (0, 0.9), "BATCH_SIZE": (1, 65536),
    "WEIGHT_DECAY": (0, None),
    "LEARNING_RATE": (1e-9, 10), "DECAY_RATE": (1e-6, 1), "DECAY_STEPS": (1, None),
    "WARMUP_STEPS": (0, None), "STEPS": (1, None), "EMA_DECAY": (0, 0.99999),
    "VALIDATION_SIZE": (0, 30000), "EVAL_EVERY": (1, None), "CHECKPOINT_EVERY": (1, None),
    "EARLY_STOPPING_PATIENCE": (0, None), "TRAIN_SUBSET": (0, 60000), "SEED": (0, 2**31 - 1),
    "FREEZE_LAYERS": (0, None), "MEMBERS": (1, 8),
}


def _check_value(key, value, default):
    kind = type(default)
    if kind is tuple:
        if (not isinstance(value, (list, tuple)) or len(value) != len(default)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                           for v in value)):
            raise ConfigError(f"{key} must be a list of {len(default)} non-negative numbers,"
                              f" got {value!r}")
        return tuple(float(v) for v in value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise ConfigError(f"{key} must be {kind.__name__}, got {value!r}")
    allowed = choices().get(key)
    if allowed and value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    low, high = RANGES.get(key, (None, None))
    if kind is float and not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{key} must be in [{low}, {high if high is not None else 'inf'}],"
                          f" got {value!r}")
    return value


def from_dict(values):
    """Build a Config from a dict, checking every key and value."""
    defaults = Config()
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r}; "
                          f"known keys: {', '.join(sorted(known))}")
    checked = {k: _check_value(k, v, getattr(defaults, k)) for k, v in values.items()}
    config = Config(**checked)
    if config.VALIDATION_SIZE % 10:
        raise ConfigError(f"VALIDATION_SIZE must be a multiple of 10 (stratified), "
                          f"got {config.VALIDATION_SIZE}")
    if config.VALIDATION_SIZE == 0 and config.EARLY_STOPPING_PATIENCE:
        raise ConfigError("EARLY_STOPPING_PATIENCE needs a validation set: set VALIDATION_SIZE"
                          " > 0 or EARLY_STOPPING_PATIENCE to 0")
    if config.MODEL_DIR in ("", ".", "..") or "/" in config.MODEL_DIR:
        raise ConfigError(f"MODEL_DIR must be a plain folder name, got {config.MODEL_DIR!r}")
    if config.OUTLIER_FRACTION + config.CAMERA_FRACTION > 0.9:
        raise ConfigError("OUTLIER_FRACTION + CAMERA_FRACTION must leave at least 0.1 of each "
                          f"batch to the dataset's images, got {config.OUTLIER_FRACTION} + "
                          f"{config.CAMERA_FRACTION}")
    if not any(config.CAMERA_CONDITION_WEIGHTS):
        raise ConfigError("CAMERA_CONDITION_WEIGHTS are all 0: give at least one garment "
                          "condition a positive weight")
    return config


def load(path, **overrides):
    """Read a JSON config file; `overrides` (None values ignored) replace its keys."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; pass --config config.json") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold one JSON object of KEY: value pairs")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(values)
