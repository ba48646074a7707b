"""How fast a training run stops on Ctrl-C or SIGTERM, and what it leaves behind.

    python perf/stop_latency.py [--config config.json] [--repeats 2] [--set KEY=VALUE ...]

Starts the real trainer (the given recipe, a throw-away output folder) and sends SIGINT or
SIGTERM at three moments: while it is still starting (imports, reading the data), during
the first step (still being traced) and well inside the training loop. For each case it
prints the seconds from the signal to the exit (in brackets: to the trainer's last line),
the exit status, whether a checkpoint was written and that last line, so a person sees what
a user sees. Goals: the checkpoint within 1 s, the exit within 3 s, never a traceback.
A fine-tune on your own images: `--config configs/finetune.json --set EXTRA_DATA_DIR=DIR`.
"""

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fmnist_app.machine import cpu_model  # noqa: E402  (TF-free)

# When the signal goes, in seconds: after launch (importing, reading data) or after the
# "training ..." line (the first step, still being traced, or well inside the loop).
MOMENTS = {"starting": 2.0, "first step": 2.0, "training": 20.0}


def run_case(config, changes, signum, moment, output_dir):
    run_name = f"{moment.replace(' ', '_')}_{signum.name}"
    command = [sys.executable, "-u", "-m", "fmnist_app.train", "--config", str(config),
               "--output-dir", str(output_dir), "--model-dir", run_name,
               *[arg for change in changes for arg in ("--set", change)]]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines, training, line_times = [], threading.Event(), []

    def read():
        for line in process.stdout:
            lines.append(line.rstrip())
            line_times.append(time.monotonic())
            if line.startswith("training "):
                training.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if moment != "starting" and not training.wait(timeout=300):
        process.kill()
        raise SystemExit("the trainer never reached its training loop:\n" + "\n".join(lines))
    time.sleep(MOMENTS[moment])
    if process.poll() is not None:
        raise SystemExit("the trainer ended before the signal:\n" + "\n".join(lines))
    sent = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=120)
    seconds = time.monotonic() - sent
    reader.join(timeout=5)
    checkpoints = list((output_dir / run_name / "checkpoints").glob("*.index"))
    said = line_times[-1] - sent if line_times and line_times[-1] > sent else None
    return {"seconds": seconds, "said": said, "status": process.returncode,
            "checkpoint": bool(checkpoints),
            "traceback": any("Traceback" in line for line in lines),
            "last_line": lines[-1] if lines else ""}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config.json"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed on to the trainer")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}; recipe {args.config} {' '.join(args.set)}")
    print(f"{'moment':10} {'signal':8} {'seconds (line at)':20} {'status':>6} "
          f"{'ckpt':>5} {'traceback':>9}  last line")
    with tempfile.TemporaryDirectory() as scratch:
        for moment in MOMENTS:
            for signum in (signal.SIGINT, signal.SIGTERM):
                results = []
                for repeat in range(args.repeats):
                    folder = Path(scratch) / str(repeat)
                    results.append(run_case(args.config, args.set, signum, moment, folder))
                times = " ".join(f"{r['seconds']:.1f}" + (f" ({r['said']:.1f})" if r["said"]
                                 else "") for r in results)
                last = results[-1]
                print(f"{moment:10} {signum.name:8} {times:20} {last['status']:>6} "
                      f"{'yes' if last['checkpoint'] else 'no':>5} "
                      f"{'YES' if any(r['traceback'] for r in results) else 'no':>9}  "
                      f"{last['last_line'][:90]}", flush=True)


if __name__ == "__main__":
    main()
