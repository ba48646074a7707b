"""Live Fashion-MNIST demo: classify what is held inside the blue guide box.

    python demo_program.py                         # camera 0, window
    python demo_program.py --demo-source           # test-set garments, no camera needed
    python demo_program.py --video clip.mp4 --no-gui --predictions out.csv
"""

import argparse
import sys
from pathlib import Path

from fmnist_app.dataset import SHIPPED_GRAPH as DEFAULT_MODEL
from fmnist_app.preprocess import DEFAULT_BOX_FRACTION, MAX_BOX_FRACTION, MIN_BOX_FRACTION


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, default=0, metavar="N",
                        help="camera index (default 0)")
    source.add_argument("--video", type=Path, metavar="FILE", help="a video file")
    source.add_argument("--image", type=Path, metavar="FILE_OR_DIR",
                        help="an image, or a folder of them")
    source.add_argument("--demo-source", action="store_true",
                        help="built-in scene of test-set garments (no camera needed)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                        help=f"frozen graph to run (default {DEFAULT_MODEL})")
    parser.add_argument("--mirror", choices=("auto", "on", "off"), default="auto",
                        help="mirror the picture; auto mirrors cameras only (default auto)")
    parser.add_argument("--box-size", type=float, default=DEFAULT_BOX_FRACTION,
                        metavar="FRACTION",
                        help="guide box side as a fraction of the frame height, "
                             f"{MIN_BOX_FRACTION}..{MAX_BOX_FRACTION:g} (default %(default)s)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="show 'unsure' below this smoothed probability (default 0.5)")
    parser.add_argument("--snapshot-dir", type=Path, default=Path("snapshots"),
                        help="where S saves snapshots (default ./snapshots)")
    parser.add_argument("--collect-dir", type=Path, default=Path("my_garments"),
                        help="where keys 0-9 (or --labels) save labelled examples "
                             "(default ./my_garments)")
    parser.add_argument("--labels", type=Path, metavar="CSV",
                        help="with --no-gui: rows frame,class (index or name); those frames "
                             "are saved as examples into --collect-dir")
    parser.add_argument("--no-gui", action="store_true",
                        help="no window: classify every frame into --predictions")
    parser.add_argument("--predictions", type=Path, metavar="CSV",
                        help="with --no-gui: one row per frame")
    parser.add_argument("--max-frames", type=int, metavar="N",
                        help="with --no-gui: stop after N frames (cameras and the demo "
                             "source never end)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="save a picture of the window when --quit-after expires")
    parser.add_argument("--quit-after", type=float, metavar="SECONDS",
                        help="close the window after this many seconds")
    args = parser.parse_args(argv)
    if not MIN_BOX_FRACTION <= args.box_size <= MAX_BOX_FRACTION:
        parser.error(f"--box-size {args.box_size} is outside "
                     f"{MIN_BOX_FRACTION}..{MAX_BOX_FRACTION:g}")
    if not 0.0 <= args.threshold <= 1.0:
        parser.error(f"--threshold {args.threshold} is outside 0..1")
    if args.labels and not args.no_gui:
        parser.error("--labels works with --no-gui (in the window, press 0-9)")
    if args.no_gui and args.predictions is None:
        parser.error("--no-gui needs --predictions FILE.csv to write its rows to")
    if args.screenshot and args.quit_after is None:
        args.quit_after = 8.0
    return args


def source_spec(args):
    from fmnist_app.sources import SourceSpec
    if args.video:
        return SourceSpec("video", args.video)
    if args.image:
        return SourceSpec("image", args.image)
    if args.demo_source:
        return SourceSpec("demo")
    return SourceSpec("camera", args.camera)


def main(argv=None):
    args = parse_args(argv)
    spec = source_spec(args)
    if args.no_gui:
        from fmnist_app.inference import ModelError
        from fmnist_app.live.collect import CollectError
        from fmnist_app.live.headless import read_labels, run_headless
        from fmnist_app.live.window_options import mirror_for
        from fmnist_app.sources import SourceError
        try:
            labels = read_labels(args.labels) if args.labels else None
            rows = run_headless(spec, args.model, args.predictions, args.box_size,
                                mirror_for(spec, args.mirror), args.max_frames,
                                args.collect_dir, labels)
        except (ModelError, SourceError, CollectError) as err:
            sys.exit(f"error: {err}")
        except OSError as err:
            sys.exit(f"error: cannot write {args.predictions} ({err.strerror or err}); "
                     "pick a writable --predictions path")
        print(f"wrote {rows} rows to {args.predictions}")
        return 0
    from fmnist_app.gui.app import run_gui
    from fmnist_app.live.window_options import WindowOptions
    options = WindowOptions(spec, args.model, args.mirror, args.box_size, args.threshold,
                            args.snapshot_dir, args.collect_dir)
    return run_gui(options, args.screenshot, args.quit_after)


if __name__ == "__main__":
    sys.exit(main())
