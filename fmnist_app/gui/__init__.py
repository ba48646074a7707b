"""The live demo window (PySide6 only); the per-frame work it runs is fmnist_app.live."""
