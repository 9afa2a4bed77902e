"""``python -m dataflywheel`` runs the ``flywheel`` command."""

from dataflywheel.cli.main import app

app()
