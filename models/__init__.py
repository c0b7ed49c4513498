"""The artefacts mouseguard ships, found the same way from a checkout and an installed wheel.

Rebuilt by one seeded command from the public data sets:
``mouseguard train build-artifacts --data ../shared/data`` (see ``models/README.md``).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
ENCODER = ROOT / "encoder"
BACKGROUND_POOL = ROOT / "background" / "pool.npz"
DEMO_MODEL = ROOT / "demo" / "model"
DEMO_GENUINE = ROOT / "demo" / "genuine.csv.gz"
DEMO_IMPOSTOR = ROOT / "demo" / "impostor.csv.gz"
MANIFEST = ROOT / "manifest.json"
