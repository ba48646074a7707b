"""What the window starts with; Qt-free so the --no-gui run shares the mirror rule."""

from dataclasses import dataclass
from pathlib import Path

from fmnist_app.preprocess import DEFAULT_BOX_FRACTION
from fmnist_app.sources import SourceSpec


@dataclass(frozen=True)
class WindowOptions:
    source: SourceSpec
    model_path: Path
    mirror_mode: str = "auto"
    box_fraction: float = DEFAULT_BOX_FRACTION
    threshold: float = 0.5
    snapshot_dir: Path = Path("snapshots")
    collect_dir: Path = Path("my_garments")


def mirror_for(spec, mirror_mode):
    """auto mirrors cameras only: a selfie view feels natural, a mirrored file does not."""
    return spec.kind == "camera" if mirror_mode == "auto" else mirror_mode == "on"
