"""Print a fingerprint of this checkout's install: the files that decide what install.sh
installs, the interpreter, where the checkout is, and what the venv holds (every installed
distribution with its version, spacy-rsft's entry points and the path of its editable
install). install.sh skips pip only while this matches what it printed after the last
complete install, so a changed pin, a re-created venv, a moved clone, an older commit's
install or a hand-upgraded package all install again. Run by .venv/bin/python.
"""
import hashlib
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = ["scripts/install.sh", "constraints.txt", "setup.cfg", "pyproject.toml",
         "spacy_rsft/about.py", "scripts/warm_imports.py"]


def fingerprint() -> str:
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    digest.update(f"{sys.version}\0{sys.prefix}\0{ROOT}\0".encode())
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    digest.update("\n".join(installed).encode())
    try:
        own = metadata.distribution("spacy-rsft")
        for part in ("entry_points.txt", "direct_url.json"):
            digest.update((own.read_text(part) or "").encode())
    except metadata.PackageNotFoundError:
        digest.update(b"spacy-rsft not installed")
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    print(fingerprint())
