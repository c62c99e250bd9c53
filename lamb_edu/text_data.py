"""Tiny Shakespeare: find, download, verify, encode, window and mask the text for a masked language model.

``load_tiny_shakespeare()`` looks for ``input.txt`` (karpathy/char-rnn's ``data/tinyshakespeare``) in, in
this order, ``data_dir``, ``$LAMB_EDU_DATA/tinyshakespeare`` and the cache ``~/.cache/lamb_edu/tinyshakespeare``;
when it is missing it is downloaded into the cache through a temporary file renamed only once its SHA-256
is right. Whichever file is found is checked the same way: a wrong, truncated or corrupt file raises
``TextDataError``, one message naming the file and how to supply a good one.

The text is read as characters: its 65 distinct characters, sorted, are ids 0-64, and id 65 is the
mask token. The first 90 % of the characters train, the last 10 % validate; each split is cut into
non-overlapping windows of ``context`` characters. ``mask_windows`` applies BERT's masking: in every
window round(15 %) of the positions are chosen; of those, 80 % become the mask token, 10 % a random
character and 10 % stay; the targets are the original ids there and ``IGNORE`` (-100) elsewhere. It draws
from the generator it is given, so a seeded run masks exactly the same way every time.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from lamb_edu import backend

np = backend.np  # host NumPy: the text is read and masked on the CPU

__all__ = ["TextDataError", "CharText", "CHARACTERS", "TINY_SHAKESPEARE_URL", "TINY_SHAKESPEARE_SHA256",
           "TINY_SHAKESPEARE_BYTES", "IGNORE", "MASK_RATE", "load_tiny_shakespeare", "default_text_cache_dir",
           "mask_windows", "masked_count"]

TINY_SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINY_SHAKESPEARE_BYTES = 1_115_394
CHARACTERS = 65  # distinct characters of tiny Shakespeare; a model of it has CHARACTERS + 1 classes (the mask)
FILE_NAME = "input.txt"
FOLDER = "tinyshakespeare"
IGNORE = -100  # a target the loss leaves out, as PyTorch's ignore_index
MASK_RATE = 0.15
TRAIN_FRACTION = 0.9

HOW_TO_SUPPLY = (
    f"Put karpathy/char-rnn's tiny-Shakespeare {FILE_NAME} ({TINY_SHAKESPEARE_BYTES} bytes) in a folder and pass it "
    f"with --data-dir DIR (data_dir= in Python), or put it in $LAMB_EDU_DATA/{FOLDER}/, or let lamb-edu download it "
    f"from {TINY_SHAKESPEARE_URL}."
)


class TextDataError(FileNotFoundError):
    """The text file is missing, truncated, corrupt or not the canonical one (the message says which)."""


def default_text_cache_dir() -> Path:
    """``~/.cache/lamb_edu/tinyshakespeare``, where the download goes."""
    return Path.home() / ".cache" / "lamb_edu" / FOLDER


def _check_text(raw: bytes, path: Path | str, expected_sha256: str) -> str:
    """The file's characters, after its SHA-256 matches the canonical file's."""
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256.lower():
        short = " (truncated?)" if len(raw) < TINY_SHAKESPEARE_BYTES else ""
        raise TextDataError(f"tiny-Shakespeare file {path} is not the canonical file: {len(raw)} bytes{short} "
                            f"with SHA-256 {digest}, expected {TINY_SHAKESPEARE_BYTES} bytes with SHA-256 "
                            f"{expected_sha256}. {HOW_TO_SUPPLY}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:  # only a test checksum lets a non-text file get here
        raise TextDataError(f"tiny-Shakespeare file {path} is not UTF-8 text ({error}). {HOW_TO_SUPPLY}") from None


def _download(cache_dir: Path, url: str, expected_sha256: str, timeout: float) -> Path:
    """Fetch ``url`` into ``cache_dir/input.txt`` through a temporary file renamed once it checks out."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{FILE_NAME}.", suffix=".part")
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            out.write(response.read())
        _check_text(temporary.read_bytes(), url, expected_sha256)
        target = cache_dir / FILE_NAME
        os.replace(temporary, target)
        return target
    except TextDataError:
        raise
    except Exception as error:  # any network failure: one message, nothing left behind
        raise TextDataError(f"could not download {url} into {cache_dir}: {error}. {HOW_TO_SUPPLY}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _candidates(data_dir: str | os.PathLike | None, cache_dir: Path) -> list[tuple[Path, str]]:
    """Where to look, in order, each with a word saying where it came from."""
    places: list[tuple[Path, str]] = []
    if data_dir is not None:
        places.append((Path(data_dir).expanduser(), "data_dir"))
    if os.environ.get("LAMB_EDU_DATA"):
        places.append((Path(os.environ["LAMB_EDU_DATA"]).expanduser() / FOLDER, "LAMB_EDU_DATA"))
    places.append((cache_dir, "cache"))
    return places


def load_tiny_shakespeare(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    cache_dir: str | os.PathLike | None = None,
    url: str = TINY_SHAKESPEARE_URL,
    sha256: str = TINY_SHAKESPEARE_SHA256,
    timeout: float = 30.0,
) -> CharText:
    """The tiny-Shakespeare text as a ``CharText``, found, or downloaded, and checked (see the module's docstring).

    ``sha256`` replaces the canonical checksum, for test files. Raises ``TextDataError`` for a missing
    (with ``download=False``), truncated, corrupt or wrong file, and when the download fails.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_text_cache_dir()
    places = _candidates(data_dir, cache)
    path = next((folder / FILE_NAME for folder, _ in places if (folder / FILE_NAME).is_file()), None)
    if path is None:
        looked = ", ".join(f"{folder} ({origin})" for folder, origin in places)
        if not download:
            raise TextDataError(f"tiny-Shakespeare {FILE_NAME} not found; looked in {looked}; downloading is off. "
                                f"{HOW_TO_SUPPLY}")
        path = _download(cache, url, sha256, timeout)
    return CharText(_check_text(path.read_bytes(), path, sha256))


@dataclass(frozen=True)
class CharText:
    """A text as character ids: the sorted distinct characters are ids 0..n-1, id n is the mask token."""

    text: str

    @cached_property
    def vocabulary(self) -> str:
        """The distinct characters of the text, sorted (65 for tiny Shakespeare)."""
        return "".join(sorted(set(self.text)))

    @property
    def mask_id(self) -> int:
        """The id of the mask token, one past the last character."""
        return len(self.vocabulary)

    @property
    def vocab_size(self) -> int:
        """Characters plus the mask token: the model's number of input and output classes."""
        return len(self.vocabulary) + 1

    @cached_property
    def ids(self) -> Any:
        """The whole text as int64 ids."""
        return self.encode(self.text)

    @property
    def split_at(self) -> int:
        """The first character of the validation split (the last 10 % of the text)."""
        return int(len(self.text) * TRAIN_FRACTION)

    def encode(self, text: str, mask_char: str | None = None) -> Any:
        """``text`` as int64 ids; ``mask_char`` (say ``"_"``) stands for the mask token.

        Raises ValueError naming the characters outside the vocabulary.
        """
        table = {char: index for index, char in enumerate(self.vocabulary)}
        if mask_char is not None:
            table[mask_char] = self.mask_id
        unknown = sorted(set(text) - set(table))
        if unknown:
            raise ValueError(f"characters {''.join(unknown)!r} are not in the "
                             f"{len(self.vocabulary)}-character vocabulary")
        lookup = np.zeros(max(map(ord, table)) + 1, dtype=np.int64)
        for char, index in table.items():
            lookup[ord(char)] = index
        return lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)] if text else np.zeros(0, np.int64)

    def decode(self, ids: Any, mask_char: str = "_") -> str:
        """Ids back to characters, the mask token as ``mask_char``."""
        return "".join(self.vocabulary[i] if i < self.mask_id else mask_char for i in np.asarray(ids).tolist())

    def windows(self, split: str, context: int) -> Any:
        """The ``split`` ("train" or "validation") cut into non-overlapping windows: int64 (n, context)."""
        if split not in ("train", "validation"):
            raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
        if context < 1:
            raise ValueError(f"context must be at least 1, got {context}")
        part = self.ids[: self.split_at] if split == "train" else self.ids[self.split_at :]
        count = len(part) // context
        return part[: count * context].reshape(count, context)


def masked_count(context: int) -> int:
    """Positions chosen in each window of ``context`` characters: round(15 %), at least one."""
    return max(1, round(MASK_RATE * context))


def mask_windows(windows: Any, rng: Any, characters: int, mask_id: int) -> tuple[Any, Any]:
    """BERT's masking of int64 ``windows`` (n, context): ``(inputs, targets)``, both int64 (n, context).

    In each window ``masked_count(context)`` positions are drawn without replacement; of them 80 % become
    ``mask_id``, 10 % a character drawn uniformly from ``range(characters)`` and 10 % stay as they were.
    ``targets`` holds the original id at the chosen positions and ``IGNORE`` elsewhere.
    """
    windows = np.asarray(windows, dtype=np.int64)
    n, context = windows.shape
    k = masked_count(context)
    chosen = np.argsort(rng.random((n, context)), axis=1)[:, :k]  # k distinct positions per window
    rows = np.repeat(np.arange(n), k)
    cols = chosen.reshape(-1)
    fate = rng.random(n * k)
    replacement = rng.integers(0, characters, size=n * k)
    inputs = windows.copy()
    inputs[rows, cols] = np.where(fate < 0.8, mask_id, np.where(fate < 0.9, replacement, windows[rows, cols]))
    targets = np.full_like(windows, IGNORE)
    targets[rows, cols] = windows[rows, cols]
    return inputs, targets
