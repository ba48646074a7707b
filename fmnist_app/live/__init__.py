"""The live pipeline without Qt: frame -> guide-box crop -> 28x28 -> model -> smoothed answer.

Shared by the window (fmnist_app.gui), `demo_program.py --no-gui` and the perf scripts, so all
of them classify exactly the same thing.
"""
