"""--no-gui: the window's pipeline on a source, one CSV row per frame. No Qt here."""

import csv
import sys
import time

from fmnist_app.live.pipeline import Pipeline, load_classifier
from fmnist_app.sources import FrameUnavailable, SourceEnded, open_source

CSV_COLUMNS = ("frame", "time_s", "verdict", "top1_class", "top1_probability", "top2_class",
               "top2_probability", "top3_class", "top3_probability", "box_empty", "pipeline_ms",
               "novelty")


def csv_row(result, seconds):
    """One result as a CSV row, the numbers the window shows for that frame (averaged over
    recent frames); class columns stay blank when nothing was classified, and so does the
    novelty score when the model has none (fmnist_app.novelty)."""
    classes = [field for name, p in result.top3 for field in (name, f"{p:.4f}")]
    classes += [""] * (6 - len(classes))
    novelty = "" if result.novelty is None else f"{result.novelty:.1f}"
    return [result.index, f"{seconds:.3f}", result.verdict, *classes, int(result.empty),
            f"{result.pipeline_ms:.2f}", novelty]


def read_labels(path):
    """{frame index: class index} from a CSV with columns frame,class (index or name)."""
    from fmnist_app.live.collect import CollectError, parse_class
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError) as err:
        raise CollectError(f"cannot read labels {path} ({err}); give a CSV with a header "
                           "frame,class") from None
    labels = {}
    for number, row in enumerate(rows, start=2):
        label = parse_class((row.get("class") or "").strip())
        if label is None or not (row.get("frame") or "").strip().isdigit():
            raise CollectError(f"{path} line {number}: expected frame,class with a frame "
                               f"number and a class name or 0-9, got {row}")
        labels[int(row["frame"])] = label
    return labels


def run_headless(spec, model_path, predictions_path, box_fraction, mirror, max_frames=None,
                 collect_dir=None, labels=None):
    """Classify every frame of `spec` into `predictions_path`; returns the number of rows.

    With `labels` ({frame: class}) the labelled frames are also saved as examples into
    `collect_dir`, as the window's 0-9 keys do.
    Raises ModelError / SourceError (one-line messages) when the model or source is unusable.
    Ctrl-C stops early and keeps the rows written so far.
    """
    from fmnist_app.live.collect import save_example
    pipeline = Pipeline(load_classifier(model_path))
    source = open_source(spec, live=False)
    rows = 0
    started = time.perf_counter()
    with source, open(predictions_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        try:
            while max_frames is None or rows < max_frames:
                try:
                    frame = source.read()
                except FrameUnavailable as err:
                    print(f"warning: {err}", file=sys.stderr)
                    continue
                except SourceEnded:
                    break
                result = pipeline.process(frame, box_fraction, mirror, source.picture)
                if result.problem:
                    print(f"warning: frame {result.index}: {result.problem}", file=sys.stderr)
                writer.writerow(csv_row(result, time.perf_counter() - started))
                if labels and result.index in labels:
                    save_example(collect_dir, labels[result.index], result, source.name)
                rows += 1
        except KeyboardInterrupt:
            print("interrupted; keeping the rows written so far", file=sys.stderr)
    return rows
