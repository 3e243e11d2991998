"""Where data lives, and `bench data fetch`: the open PhysioNet demos, file by file, checked against the
sha256 values pinned in their dataset cards (`[fetch]` in datasets/<name>.toml).

One setting says where data lives: $MEDREC_DATA, else `<cache root>/data` (cache root: $MEDREC_CACHE,
else ~/.cache/medrec-bench). `bench data fetch NAME` fills `<data home>/NAME/`; the demo datasets read
it when --data-dir is omitted, and the drug-knowledge resources default to `<data home>/medkb`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.prep.downloads import DownloadError, Transport, download_verified, is_valid
from bench.errors import UserError
from bench.registry import DatasetCard, dataset_cards

ENV_VAR = "MEDREC_DATA"
MEDKB = "medkb"
SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def data_home() -> Path:
    """$MEDREC_DATA, else `<cache root>/data`."""
    from bench.prep.bundle_store import cache_root  # not at import: it pulls in polars for every verb

    return Path(os.environ.get(ENV_VAR) or cache_root() / "data")


@dataclass(frozen=True)
class PinnedFile:
    """One file of a download: its path relative to the dataset folder (and to the base URL), its sha256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A fetchable dataset: where its files are (base_url), the page that explains a manual download, the files."""

    name: str
    base_url: str
    page: str
    files: tuple[PinnedFile, ...]

    def url(self, file: PinnedFile) -> str:
        return self.base_url.rstrip("/") + "/" + file.path


def manifest(card: DatasetCard) -> Manifest | None:
    """The card's `[fetch]` table as a Manifest; None when the dataset is not fetchable."""
    if not card.fetch:
        return None
    raw = card.fetch
    pins = raw.get("sha256")
    if not isinstance(raw.get("base_url"), str) or not isinstance(pins, dict) or not pins:
        raise UserError(f"{card.path}: [fetch] needs base_url and a [fetch.sha256] table of file = digest")
    files = []
    for path, digest in pins.items():
        if not isinstance(digest, str) or not SHA256.fullmatch(digest) or Path(path).is_absolute() or ".." in Path(path).parts:
            raise UserError(f"{card.path}: [fetch.sha256] {path!r}: expected a relative path = a 64-hex sha256")
        files.append(PinnedFile(path, digest.lower()))
    return Manifest(card.name, raw["base_url"], str(raw.get("page", raw["base_url"])), tuple(files))


def fetchable() -> dict[str, Manifest]:
    """Every dataset card with a `[fetch]` table, by name."""
    found = {name: manifest(card) for name, card in dataset_cards().items()}
    return {name: m for name, m in found.items() if m is not None}


def fetchable_manifest(name: str) -> Manifest:
    """The manifest of `name`, or a one-line error listing the fetchable datasets."""
    found = fetchable()
    if name in found:
        return found[name]
    card = dataset_cards().get(name)
    if card is None:
        why = "no such dataset (`bench ls` lists them)"
    elif card.format:
        why = f"not open access ({card.download}): download it yourself and pass its folder with --data-dir"
    else:
        why = "it is built in, nothing to download"
    raise UserError(f"cannot fetch {name!r}: {why}; `bench data fetch` downloads {', '.join(sorted(found))}")


def missing_files(folder: Path, files: tuple[PinnedFile, ...]) -> list[str]:
    """The manifest paths not present in `folder` (presence only; fetch checks the digests)."""
    return [f.path for f in files if not (folder / f.path).is_file()]


def default_data_dir(card: DatasetCard) -> Path:
    """The folder a dataset reads when --data-dir is omitted: `<data home>/NAME` for a fetchable dataset
    whose files are all there; otherwise a one-line error saying what to pass or run."""
    found = manifest(card)
    where = f" ({card.download})" if card.download else ""
    if found is None:
        raise UserError(f"dataset {card.name} needs --data-dir: the folder of the raw tables{where}")
    folder = data_home() / card.name
    fetch = (f"run `bench data fetch {card.name}` (it downloads there; ${ENV_VAR} moves it) or pass --data-dir DIR, "
             f"the folder of the raw tables{where}")
    if not folder.is_dir():
        raise UserError(f"dataset {card.name}: no --data-dir and nothing in {folder}: {fetch}")
    missing = missing_files(folder, found.files)
    if missing:
        raise UserError(f"dataset {card.name}: {folder} lacks {', '.join(missing)}: {fetch}")
    return folder


@dataclass(frozen=True)
class Fetched:
    """What happened to one file: downloaded (replaced, when a wrong copy was there) or skipped (valid)."""

    path: str
    action: str
    size: int


class FetchProgress:
    """Callbacks for a progress display; the default does nothing."""

    def file(self, path: str, size: int | None) -> None:
        """A download of `path` started (size None when unknown)."""

    def advance(self, n: int) -> None:
        """`n` more bytes written."""

    def done(self, path: str, action: str) -> None:
        """`path` is downloaded or skipped."""


def fetch_dataset(found: Manifest, folder: Path, transport: Transport, force: bool = False,
                  progress: FetchProgress | None = None) -> list[Fetched]:
    """Bring every pinned file of `found` into `folder`: a file present with the pinned sha256 is skipped
    (unless `force`), any other is downloaded to a temp file, checked and renamed into place."""
    progress = progress or FetchProgress()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--to {folder}: not a folder")
    done = []
    for file in found.files:
        target = folder / file.path
        if not force and is_valid(target, file.sha256):
            done.append(Fetched(file.path, "skipped", target.stat().st_size))
            progress.done(file.path, "skipped")
            continue
        action = "replaced" if target.exists() else "downloaded"
        url = found.url(file)
        try:
            size = download_verified(url, target, file.sha256, transport, partial(progress.file, file.path),
                                     progress.advance)
        except DownloadError as exc:
            raise UserError(f"cannot download {url} ({exc.reason}); offline? Download the files from {found.page} "
                            f"into a folder DIR, check them with `bench data fetch {found.name} --to DIR` and pass --data-dir DIR") from None
        done.append(Fetched(file.path, action, size))
        progress.done(file.path, action)
    return done


def folder_status(folder: Path, files: tuple[PinnedFile, ...]) -> str:
    """`complete`, `not fetched`, or what is missing or differs from the pins (checks every digest)."""
    if not folder.is_dir():
        return "not fetched"
    missing = missing_files(folder, files)
    differ = [f.path for f in files if f.path not in missing and not is_valid(folder / f.path, f.sha256)]
    if not missing and not differ:
        return f"complete ({len(files)} files, pinned sha256)"
    parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"differs {', '.join(differ)}"] if differ else [])
    return "; ".join(parts)
