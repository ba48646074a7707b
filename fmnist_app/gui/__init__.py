"""The live demo: a PySide6 window over a Qt-free per-frame pipeline.

pipeline.py, snapshot.py, headless.py and window_options.py do not import Qt, so
`demo_program.py --no-gui` and the benchmark run where no display is available.
"""
