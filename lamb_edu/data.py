"""MNIST: find, download, verify and batch the four IDX files.

``load_mnist()`` looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each plain or gzipped) in, in this order,
the ``data_dir`` argument, ``$LAMB_EDU_DATA/mnist``, the directory named by ``LAMB_EDU_DATA`` and the cache
``~/.cache/lamb_edu/mnist``. Missing files are downloaded into the cache from public mirrors, each to a
temporary file that is renamed only once it is complete and verified. Every file is checked: the IDX
magic number, the sizes in its header against its length, and the SHA-256 of its uncompressed bytes
against the canonical MNIST files. The header is read first and bounds the rest: a gzipped file is
decompressed as it is read, never past what its header asks for (at most ``MAX_IDX_BYTES``). Anything
wrong raises ``MNISTError`` with one message that names the file, where it looked and how to supply
the files.

For training, ``prepare`` turns images into flat float32 vectors normalised as in the PyTorch MNIST
example, ``(x / 255 - 0.1307) / 0.3081``, on the active backend, and ``batches`` yields shuffled
mini-batches from a permutation that depends only on ``(seed, epoch)``, so a run can resume mid-epoch.

``$LAMB_EDU_DATA`` is a data root holding ``mnist/`` and ``tinyshakespeare/``; a folder holding the MNIST
files directly works too. The text of the masked-LM task (``load_tiny_shakespeare``, ``mask_windows``)
lives in ``text_data.py`` and is re-exported here.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator, NamedTuple, NoReturn, Sequence

from lamb_edu import backend
from lamb_edu.text_data import CharText, TextDataError, load_tiny_shakespeare, mask_windows

np = backend.np  # host NumPy: file parsing and permutations happen on the CPU

__all__ = [
    "MNIST",
    "MNISTError",
    "FILES",
    "SHA256",
    "MIRRORS",
    "MEAN",
    "STD",
    "load_mnist",
    "read_idx",
    "MAX_IDX_BYTES",
    "MAX_DOWNLOAD_BYTES",
    "download_file",
    "default_cache_dir",
    "prepare",
    "batches",
    "epoch_permutation",
    "load_tiny_shakespeare",
    "CharText",
    "TextDataError",
    "mask_windows",
]

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# SHA-256 of the uncompressed canonical files (the gzip wrappers differ between mirrors, the data does not).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Tried in order; each serves ``<mirror><name>.gz``. LAMB_EDU_MNIST_MIRRORS (space-separated) overrides.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

MEAN, STD = 0.1307, 0.3081  # of the training pixels scaled to [0, 1], as in the PyTorch MNIST example

HOW_TO_SUPPLY = (
    "Put the four MNIST IDX files (gzipped or not) in one directory and pass it with --data-dir DIR "
    "(data_dir= in Python) or set LAMB_EDU_DATA=DIR."
)

_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes, the only type MNIST uses
# The most data an IDX file's header may ask for: 5.7 times the largest MNIST file (60000·28·28 bytes).
MAX_IDX_BYTES = 1 << 28
MAX_DOWNLOAD_BYTES = 1 << 26  # the most one download may write; the largest MNIST .gz has 9.9 MB
_CHUNK = 1 << 16


class MNIST(NamedTuple):
    """The four MNIST arrays: uint8 images (N, 28, 28) and int64 labels (N,)."""

    train_images: Any
    train_labels: Any
    test_images: Any
    test_labels: Any


class MNISTError(FileNotFoundError):
    """An MNIST file is missing, truncated, corrupt or not the canonical one (the message says which)."""


def default_cache_dir() -> Path:
    """``~/.cache/lamb_edu/mnist``, where downloads go."""
    return Path.home() / ".cache" / "lamb_edu" / "mnist"


def _gzip_or_plain(file: BinaryIO) -> tuple[BinaryIO, int | None]:
    """A stream of the file's uncompressed bytes (gunzipped as it is read, recognised by the gzip magic,
    not the name) and its length when known without decompressing (a plain file's size)."""
    gzipped = file.read(2) == b"\x1f\x8b"
    file.seek(0)
    if gzipped:
        return gzip.GzipFile(fileobj=file, mode="rb"), None
    return file, os.fstat(file.fileno()).st_size


def _read_header(stream: BinaryIO, path: Path) -> tuple[bytes, tuple[int, ...]]:
    """The IDX header (magic and sizes) and the shape it gives; MNISTError unless it is one of unsigned bytes."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != _IDX_UBYTE or magic[3] < 1:
        raise MNISTError(
            f"MNIST file {path} is not an IDX file of unsigned bytes (bad magic number {magic.hex() or 'none'}). "
            f"{HOW_TO_SUPPLY}"
        )
    sizes = stream.read(4 * magic[3])
    if len(sizes) < 4 * magic[3]:
        raise MNISTError(f"MNIST file {path} is truncated inside its header. {HOW_TO_SUPPLY}")
    shape = tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(magic[3]))
    return magic + sizes, shape


def _read_body(stream: BinaryIO, path: Path, header: bytes, shape: tuple[int, ...], length: int | None) -> Any:
    """The data after the header, exactly as many bytes as ``shape`` needs and never more: a plain file's
    length is compared first, a gzip stream is read up to that count and then asked for one byte more."""
    needed = math.prod(shape)
    expected_length = len(header) + needed
    if needed > MAX_IDX_BYTES:
        raise MNISTError(f"MNIST file {path} has header shape {shape}, {needed} bytes of data: more than the "
                         f"{MAX_IDX_BYTES} bytes an MNIST file may hold (the largest has 47040000). {HOW_TO_SUPPLY}")
    if length is not None and length != expected_length:
        _length_error(path, shape, expected_length, str(length), length < expected_length)
    data = np.empty(needed, dtype=np.uint8)
    view, filled = memoryview(data), 0
    while filled < needed and (count := stream.readinto(view[filled:])):
        filled += count
    if filled < needed:
        _length_error(path, shape, expected_length, str(len(header) + filled), True)
    if stream.read(1):
        _length_error(path, shape, expected_length, "more than that", False)
    data.flags.writeable = False  # as the arrays read before were: MNIST is not changed in place
    return data.reshape(shape)


def _length_error(path: Path, shape: tuple[int, ...], expected_length: int, found: str, truncated: bool) -> NoReturn:
    state = "truncated" if truncated else "longer than its header says"
    raise MNISTError(f"MNIST file {path} is {state}: header shape {shape} needs {expected_length} bytes, "
                     f"found {found}. {HOW_TO_SUPPLY}")


def read_idx(path: str | os.PathLike, expected_sha256: str | None = None) -> Any:
    """Read one IDX file of unsigned bytes (plain or gzipped) into a host NumPy uint8 array.

    The header is read first: the magic number (two zero bytes, type 0x08, the number of
    dimensions) and the sizes, which must ask for at most ``MAX_IDX_BYTES``. Then exactly that many
    bytes are read (a gzipped file is decompressed as it is read, so a small file that would expand
    to gigabytes is refused after one byte past what its header promised), and, when
    ``expected_sha256`` is given, the SHA-256 of the uncompressed bytes is checked. Any failure
    raises ``MNISTError`` naming the file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            stream, length = _gzip_or_plain(file)
            with stream:
                header, shape = _read_header(stream, path)
                data = _read_body(stream, path, header, shape, length)
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, MNISTError):
            raise
        raise MNISTError(f"MNIST file {path} is a truncated or corrupt gzip file ({error}). {HOW_TO_SUPPLY}") from None
    if expected_sha256 is not None:
        hasher = hashlib.sha256(header)
        hasher.update(memoryview(data.reshape(-1)))
        digest = hasher.hexdigest()
        if digest != expected_sha256.lower():
            raise MNISTError(
                f"MNIST file {path} is not the canonical file: SHA-256 of its uncompressed bytes is {digest}, "
                f"expected {expected_sha256}. {HOW_TO_SUPPLY}"
            )
    return data


def _search_dirs(data_dir: str | os.PathLike | None, cache_dir: Path) -> list[tuple[Path, str]]:
    """Where to look, in order, each with a word saying where it came from."""
    dirs: list[tuple[Path, str]] = []
    if data_dir is not None:
        dirs.append((Path(data_dir).expanduser(), "data_dir"))
    if os.environ.get("LAMB_EDU_DATA"):
        root = Path(os.environ["LAMB_EDU_DATA"]).expanduser()
        # a data root holding mnist/ (and tinyshakespeare/), or, as before, a folder of the MNIST files
        dirs += [(root / "mnist", "LAMB_EDU_DATA"), (root, "LAMB_EDU_DATA")]
    dirs.append((cache_dir, "cache"))
    return dirs


def _find(name: str, dirs: Sequence[tuple[Path, str]]) -> Path | None:
    for directory, _ in dirs:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _mirrors(mirrors: Sequence[str] | None) -> tuple[str, ...]:
    if mirrors is not None:
        return tuple(mirrors)
    from_env = os.environ.get("LAMB_EDU_MNIST_MIRRORS", "").split()
    return tuple(from_env) if from_env else MIRRORS


def download_file(
    name: str,
    cache_dir: str | os.PathLike,
    expected_sha256: str,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download ``<mirror><name>.gz`` into ``cache_dir`` from the first mirror that gives a good file.

    Each attempt streams into a temporary file in ``cache_dir`` (with a tqdm progress bar; at most
    ``MAX_DOWNLOAD_BYTES``), checks the
    byte count against Content-Length and the file with ``read_idx`` (magic, sizes, SHA-256), and only
    then renames it to ``<name>.gz``; a failed attempt deletes its temporary file. Raises ``MNISTError``
    listing every mirror's failure when none works.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415  (only needed when downloading)

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{name}.gz"
    failures = []
    for mirror in _mirrors(mirrors):
        url = f"{mirror.rstrip('/')}/{name}.gz"
        handle, temporary_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.", suffix=".part")
        temporary = Path(temporary_name)
        try:
            with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                received = 0
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=not progress, leave=False) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                        if received > MAX_DOWNLOAD_BYTES:  # a mirror that never stops would fill the disk
                            raise OSError(f"more than {MAX_DOWNLOAD_BYTES} bytes (an MNIST file is under 10 MB)")
            if total is not None and received != total:
                raise OSError(f"connection closed after {received} of {total} bytes")
            read_idx(temporary, expected_sha256)
            os.replace(temporary, target)
            return target
        except Exception as error:  # any failure: try the next mirror, leave nothing behind
            failures.append(f"{url}: {error}")
        finally:
            temporary.unlink(missing_ok=True)
    raise MNISTError(
        f"Could not download MNIST file {name} into {cache_dir}: " + "; ".join(failures or ["no mirrors given"])
        + f". {HOW_TO_SUPPLY}"
    )


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    checksums: dict[str, str] | None = None,
    progress: bool = True,
) -> MNIST:
    """Load MNIST as an ``MNIST(train_images, train_labels, test_images, test_labels)`` of host arrays.

    Each file is looked for in ``data_dir``, then ``$LAMB_EDU_DATA``, then ``cache_dir`` (default
    ``~/.cache/lamb_edu/mnist``), and downloaded into the cache when missing and ``download`` is true.
    ``checksums`` (file name to SHA-256) replaces the canonical values, for test files; ``mirrors``
    replaces the mirror list. Raises ``MNISTError`` for a missing, truncated, corrupt or wrong file.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dirs = _search_dirs(data_dir, cache)
    expected = checksums if checksums is not None else SHA256
    arrays = {}
    for field, name in FILES.items():
        path = _find(name, dirs)
        if path is None:
            looked = ", ".join(f"{directory} ({origin})" for directory, origin in dirs)
            if not download:
                raise MNISTError(f"MNIST file {name} not found; looked in {looked}; downloading is off. "
                                 f"{HOW_TO_SUPPLY}")
            try:
                path = download_file(name, cache, expected[name], mirrors=mirrors, progress=progress)
            except MNISTError as error:
                raise MNISTError(f"MNIST file {name} not found (looked in {looked}). {error}") from None
        arrays[field] = read_idx(path, expected[name])
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.ndim != 1:
            raise MNISTError(
                f"MNIST {split} files have shapes {images.shape} and {labels.shape}, expected (N, 28, 28) and (N,). "
                f"{HOW_TO_SUPPLY}"
            )
        if len(images) != len(labels):
            raise MNISTError(f"MNIST {split} files disagree: {len(images)} images but {len(labels)} labels. "
                             f"{HOW_TO_SUPPLY}")
        if labels.size and labels.max() > 9:
            raise MNISTError(f"MNIST {split} labels contain {int(labels.max())}, digits are 0-9. {HOW_TO_SUPPLY}")
    return MNIST(
        arrays["train_images"],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"],
        arrays["test_labels"].astype(np.int64),
    )


def prepare(images: Any, labels: Any) -> tuple[Any, Any]:
    """Images (N, 28, 28) uint8 and labels to ``(x, y)`` on the active backend.

    ``x`` is float32 (N, 784), ``(pixel / 255 - 0.1307) / 0.3081``; ``y`` is int64. Done once per
    run, so batches are taken by indexing arrays that already live on the device.
    """
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    x -= np.float32(MEAN)
    x /= np.float32(STD)
    return backend.asarray(x), backend.asarray(np.asarray(labels, dtype=np.int64))


def epoch_permutation(n: int, seed: int, epoch: int) -> Any:
    """The shuffle of ``range(n)`` for one epoch: a function of ``(seed, epoch)`` alone, on the host."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def batches(x: Any, y: Any, batch_size: int, seed: int, epoch: int, start: int = 0) -> Iterator[tuple[Any, Any]]:
    """Yield shuffled ``(x_batch, y_batch)`` for one epoch, beginning at batch number ``start``.

    The order is ``epoch_permutation(len(x), seed, epoch)``; the last batch may be smaller. Starting
    at batch ``start`` is how a resumed run picks up exactly where it stopped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = backend.asarray(epoch_permutation(len(x), seed, epoch))
    for begin in range(start * batch_size, len(x), batch_size):
        index = order[begin : begin + batch_size]
        yield x[index], y[index]
