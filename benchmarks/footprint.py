"""Installed size of mouseguard's runtime: the distributions it needs, files summed.

Runs in whatever interpreter imports it: ``mouseguard bench`` runs it as
``python -m benchmarks.footprint mouseguard`` inside a temporary venv where the project was
installed without extras, or calls :func:`footprint` on its own interpreter with the runtime
requirements read from ``pyproject.toml`` (quick mode: no install, no package index).
Standard library only, plus ``packaging`` when present for markers.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import sys
from pathlib import Path

#: Installer tools every venv has; they are not part of what mouseguard needs.
INSTALLER_DISTS = {"pip", "setuptools", "wheel"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(requirement: str) -> tuple[str, bool]:
    """(name, applies here) for one requirement string; extras' requirements do not apply."""
    try:
        from packaging.requirements import Requirement

        req = Requirement(requirement)
        applies = req.marker is None or req.marker.evaluate({"extra": ""})
        return req.name, bool(applies)
    except ImportError:
        name = re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0)
        marker = requirement.split(";", 1)[1] if ";" in requirement else ""
        return name, "extra" not in marker


def dist_size(dist: md.Distribution) -> int:
    total = 0
    for f in dist.files or ():
        try:
            total += Path(f.locate()).stat().st_size
        except OSError:
            pass
    return total


def closure(requirements: list[str]) -> dict[str, md.Distribution]:
    """The installed distributions these requirements pull in, transitively (markers applied)."""
    found: dict[str, md.Distribution] = {}
    todo = list(requirements)
    while todo:
        name, applies = _parse(todo.pop())
        key = _canonical(name)
        if not applies or key in found:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        found[key] = dist
        todo.extend(dist.requires or ())
    return found


def footprint(requirements: list[str]) -> dict:
    dists = closure(requirements)
    sizes = {dist.metadata["Name"]: dist_size(dist) for key, dist in dists.items() if key not in INSTALLER_DISTS}
    return {
        "total_bytes": sum(sizes.values()),
        "by_distribution": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    print(json.dumps(footprint(sys.argv[1:])))
