"""The user's own folders (platformdirs): what slapp keeps beside no project."""

from __future__ import annotations

from pathlib import Path


def cache_dir(name: str) -> Path | None:
    """``<user cache>/slapp/<name>``, made if missing (``XDG_CACHE_HOME`` on Linux); None
    when it cannot be made (a read-only home): callers then work without it."""
    import platformdirs

    folder = Path(platformdirs.user_cache_dir("slapp")) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder
