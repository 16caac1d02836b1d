NAME = "pkg-in-venv"
