"""S in the window: save the frame, the crop, the 28x28 input and the prediction. No Qt here."""

import json
import time
from datetime import datetime
from pathlib import Path

import cv2


class SnapshotError(OSError):
    """The snapshot could not be written; the message names the folder and the fix."""


def save_snapshot(folder, result, prediction, source_name, model_path):
    """Write <stamp>_frame.png, _crop.png, _input28.png and <stamp>.json; return the JSON path.

    `prediction` is the text the window shows (a class, "unsure", ...), so the JSON records
    what the user saw as well as the numbers behind it.
    """
    folder = Path(folder)
    now = datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S-") + f"{now.microsecond // 1000:03d}"
    images = {"frame": result.frame, "crop": result.crop, "input28": result.model_input}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, image in images.items():
            path = folder / f"{stamp}_{name}.png"
            if not cv2.imwrite(str(path), image):
                raise OSError(f"OpenCV could not write {path.name}")
        record = {
            "time": now.isoformat(timespec="milliseconds"),
            "unix_time": time.time(),
            "source": source_name,
            "model": str(model_path),
            "prediction": prediction,
            "smoothed": None if result.smoothed is None else
            {"class": result.smoothed[0], "probability": round(result.smoothed[1], 4)},
            "top3": [{"class": name, "probability": round(p, 4)} for name, p in result.top3],
            "box_empty": result.empty,
            "verdict": result.verdict,
            "novelty": None if result.novelty is None else round(result.novelty, 2),
            "mirrored": result.mirrored,
            "guide_box": result.box._asdict(),
            "analysed_square": {"side": int(result.crop.shape[0])},
            "files": {name: f"{stamp}_{name}.png" for name in images},
        }
        json_path = folder / f"{stamp}.json"
        json_path.write_text(json.dumps(record, indent=2) + "\n")
    except OSError as err:
        raise SnapshotError(f"cannot save a snapshot in {folder} ({err}); "
                            "pick a writable folder with --snapshot-dir") from None
    return json_path
