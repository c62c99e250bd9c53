"""The MNIST loader: IDX parsing and checks, the search order, downloads from a local server, batching."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import backend, data
from lamb_edu.data import FILES, MAX_IDX_BYTES, MNISTError, batches, epoch_permutation, load_mnist, prepare, read_idx

NAMES = list(FILES.values())
REAL_DATA = os.environ.get("LAMB_EDU_DATA")  # read before the fixture below hides it from each test


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding written out by hand: 0, 0, type 0x08, ndim, big-endian sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", size) for size in array.shape)
    return header + array.astype(np.uint8).tobytes()


def small_mnist(seed: int = 0, train: int = 12, test: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=test, dtype=np.uint8),
    }


def write_files(directory: Path, arrays: dict[str, np.ndarray], gzipped: bool = True) -> dict[str, str]:
    """Write the files, return their SHA-256 sums (of the uncompressed bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, array in arrays.items():
        raw = idx_bytes(array)
        sums[name] = hashlib.sha256(raw).hexdigest()
        if gzipped:
            (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (directory / name).write_bytes(raw)
    return sums


@pytest.fixture(autouse=True)
def no_environment(monkeypatch, tmp_path):
    """Each test starts with no LAMB_EDU_DATA and a private home, so the real cache is never touched."""
    monkeypatch.delenv("LAMB_EDU_DATA", raising=False)
    monkeypatch.delenv("LAMB_EDU_MNIST_MIRRORS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def assert_matches(loaded, arrays):
    assert loaded.train_images.dtype == np.uint8 and loaded.train_labels.dtype == np.int64
    np.testing.assert_array_equal(loaded.train_images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(loaded.train_labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(loaded.test_images, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(loaded.test_labels, arrays["t10k-labels-idx1-ubyte"])


@pytest.mark.parametrize("gzipped", [True, False])
def test_reads_good_files_plain_or_gzipped(tmp_path, gzipped):
    arrays = small_mnist()
    sums = write_files(tmp_path / "data", arrays, gzipped=gzipped)
    loaded = load_mnist(tmp_path / "data", download=False, checksums=sums)
    assert_matches(loaded, arrays)
    assert loaded.train_images.shape == (12, 28, 28) and loaded.test_labels.shape == (5,)


def test_search_order_is_data_dir_then_environment_then_cache(tmp_path, monkeypatch):
    first, second, third = small_mnist(1), small_mnist(2), small_mnist(3)
    sums = {}
    for directory, arrays in (("a", first), ("b", second), ("cache", third)):
        sums[directory] = write_files(tmp_path / directory, arrays)
    monkeypatch.setenv("LAMB_EDU_DATA", str(tmp_path / "b"))
    assert_matches(load_mnist(tmp_path / "a", download=False, cache_dir=tmp_path / "cache", checksums=sums["a"]), first)
    assert_matches(load_mnist(None, download=False, cache_dir=tmp_path / "cache", checksums=sums["b"]), second)
    monkeypatch.delenv("LAMB_EDU_DATA")
    assert_matches(load_mnist(None, download=False, cache_dir=tmp_path / "cache", checksums=sums["cache"]), third)


def test_bad_magic_is_named(tmp_path):
    arrays = small_mnist()
    sums = write_files(tmp_path, arrays, gzipped=False)
    raw = bytearray((tmp_path / "train-labels-idx1-ubyte").read_bytes())
    raw[2] = 0x0D  # float type code instead of unsigned byte
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes(raw))
    with pytest.raises(MNISTError, match=r"train-labels-idx1-ubyte.*bad magic.*--data-dir.*LAMB_EDU_DATA"):
        load_mnist(tmp_path, download=False, checksums=sums)


@pytest.mark.parametrize("gzipped", [True, False])
def test_truncated_file_is_named(tmp_path, gzipped):
    arrays = small_mnist()
    sums = write_files(tmp_path, arrays, gzipped=gzipped)
    name = "t10k-images-idx3-ubyte" + (".gz" if gzipped else "")
    raw = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(raw[: len(raw) - 100])
    with pytest.raises(MNISTError, match=r"t10k-images-idx3-ubyte.*truncated"):
        load_mnist(tmp_path, download=False, checksums=sums)


def test_header_and_length_must_agree(tmp_path):
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    path = tmp_path / "extra"
    path.write_bytes(idx_bytes(images) + b"\x00")
    with pytest.raises(MNISTError, match="longer than its header"):
        read_idx(path)


def test_wrong_checksum_is_rejected_against_canonical_values(tmp_path):
    # Well-formed IDX files that are not the canonical MNIST: the default checksums catch them.
    write_files(tmp_path, small_mnist())
    with pytest.raises(MNISTError, match=r"train-images-idx3-ubyte.*not the canonical file.*SHA-256"):
        load_mnist(tmp_path, download=False)


def test_labels_must_match_images(tmp_path):
    arrays = small_mnist()
    arrays["t10k-labels-idx1-ubyte"] = arrays["t10k-labels-idx1-ubyte"][:4]
    sums = write_files(tmp_path, arrays)
    with pytest.raises(MNISTError, match="5 images but 4 labels"):
        load_mnist(tmp_path, download=False, checksums=sums)


def test_missing_file_names_file_places_and_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMB_EDU_DATA", str(tmp_path / "env"))
    with pytest.raises(MNISTError) as caught:
        load_mnist(tmp_path / "given", download=False, cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    for expected in ("train-images-idx3-ubyte", str(tmp_path / "given"), str(tmp_path / "env"), str(tmp_path / "cache"),
                     "LAMB_EDU_DATA=DIR", "--data-dir"):
        assert expected in message
    assert "\n" not in message


# ------------------------------------------------------------------ downloads from a local server
class MirrorServer:
    """An HTTP server on 127.0.0.1 serving ``/<name>.gz`` files; ``mode`` makes it misbehave."""

    def __init__(self, files: dict[str, bytes], mode: str = "good") -> None:
        self.files, self.mode, self.requests = files, mode, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the name http.server calls)
                server.requests.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                if body is None or server.mode == "missing":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.mode == "drop":  # half the file, then hang up
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def gz_payloads(arrays):
    return {f"{name}.gz": gzip.compress(idx_bytes(array)) for name, array in arrays.items()}


def test_download_verifies_and_renames_into_cache(tmp_path):
    arrays = small_mnist()
    sums = {name: hashlib.sha256(idx_bytes(array)).hexdigest() for name, array in arrays.items()}
    cache = tmp_path / "cache"
    with MirrorServer(gz_payloads(arrays)) as server:
        loaded = load_mnist(None, cache_dir=cache, mirrors=[server.url], checksums=sums, progress=False)
    assert_matches(loaded, arrays)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{name}.gz" for name in NAMES)
    assert sorted(server.requests) == sorted(f"/{name}.gz" for name in NAMES)
    # a second load finds the cache and asks nobody
    assert_matches(load_mnist(None, download=False, cache_dir=cache, checksums=sums), arrays)


def test_dropped_connection_leaves_nothing_in_cache(tmp_path):
    arrays = small_mnist()
    sums = {name: hashlib.sha256(idx_bytes(array)).hexdigest() for name, array in arrays.items()}
    cache = tmp_path / "cache"
    with MirrorServer(gz_payloads(arrays), mode="drop") as server:
        with pytest.raises(MNISTError, match=r"train-images-idx3-ubyte.*127\.0\.0\.1.*--data-dir"):
            load_mnist(None, cache_dir=cache, mirrors=[server.url], checksums=sums, progress=False)
    assert list(cache.iterdir()) == []


def test_wrong_file_from_mirror_leaves_nothing_in_cache(tmp_path):
    cache = tmp_path / "cache"
    with MirrorServer(gz_payloads(small_mnist())) as server:  # well-formed, but not canonical MNIST
        with pytest.raises(MNISTError, match="not the canonical file"):
            load_mnist(None, cache_dir=cache, mirrors=[server.url], progress=False)
    assert list(cache.iterdir()) == []


def test_first_mirror_failing_then_second_succeeding(tmp_path, monkeypatch):
    arrays = small_mnist()
    sums = {name: hashlib.sha256(idx_bytes(array)).hexdigest() for name, array in arrays.items()}
    cache = tmp_path / "cache"
    with MirrorServer({}, mode="missing") as broken, MirrorServer(gz_payloads(arrays), mode="drop") as dropping, \
            MirrorServer(gz_payloads(arrays)) as good:
        # the mirror list can also come from the environment
        monkeypatch.setenv("LAMB_EDU_MNIST_MIRRORS", f"{broken.url} {dropping.url} {good.url}")
        loaded = load_mnist(None, cache_dir=cache, checksums=sums, progress=False)
    assert_matches(loaded, arrays)
    assert len(broken.requests) == 4 and len(dropping.requests) == 4 and len(good.requests) == 4
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{name}.gz" for name in NAMES)


# ------------------------------------------------------------------ batching
def test_prepare_normalises_like_pytorch_example():
    images = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    x, y = prepare(images, np.arange(7))
    x = backend.to_numpy(x)
    expected = (images.reshape(7, 784).astype(np.float64) / 255 - 0.1307) / 0.3081
    assert x.dtype == np.float32 and x.shape == (7, 784)
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
    assert backend.to_numpy(y).dtype == np.int64


def test_batches_shuffle_every_epoch_and_resume_mid_epoch():
    x = np.arange(23, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    y = np.arange(23)
    epoch0 = [backend.to_numpy(yb) for _, yb in batches(backend.asarray(x), backend.asarray(y), 5, seed=7, epoch=0)]
    assert [len(b) for b in epoch0] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate(epoch0).tolist()) == list(range(23))  # every example exactly once
    for xb, yb in batches(x, y, 5, seed=7, epoch=0):
        np.testing.assert_array_equal(xb[:, 0], yb)  # images and labels stay paired
    epoch1 = np.concatenate([yb for _, yb in batches(x, y, 5, seed=7, epoch=1)])
    assert not np.array_equal(np.concatenate(epoch0), epoch1)
    np.testing.assert_array_equal(np.concatenate(epoch0), epoch_permutation(23, 7, 0))
    resumed = [yb for _, yb in batches(x, y, 5, seed=7, epoch=0, start=2)]
    np.testing.assert_array_equal(np.concatenate(resumed), np.concatenate(epoch0[2:]))
    assert not np.array_equal(epoch_permutation(23, 8, 0), epoch_permutation(23, 7, 0))
    with pytest.raises(ValueError, match="batch_size"):
        next(batches(x, y, 0, seed=0, epoch=0))


@pytest.mark.mnist
def test_real_mnist_files_pass_every_check():
    directory = REAL_DATA or ""
    if directory and (Path(directory) / "mnist").is_dir():  # a data root (mnist/, tinyshakespeare/), as in CI
        directory = str(Path(directory) / "mnist")
    if not directory or not all((Path(directory) / f"{name}.gz").is_file() or (Path(directory) / name).is_file()
                                for name in NAMES):
        pytest.skip(f"real MNIST files not found in LAMB_EDU_DATA={directory!r} (set it to a directory holding them)")
    data = load_mnist(directory, download=False)
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert np.bincount(data.train_labels).tolist()[:2] == [5923, 6742]  # the well-known class counts


# ------------------------------------------------------------------ bounded reading (issue 23, item 10)
def _gzip_of_header_then_zeros(path: Path, header_array: np.ndarray, extra: int) -> None:
    """A small gzip file: an honest IDX file followed by ``extra`` zero bytes (it expands far beyond its size)."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(idx_bytes(header_array))
        chunk = bytes(1 << 20)
        for _ in range(extra // len(chunk)):
            out.write(chunk)


def test_a_gzip_that_expands_past_its_header_is_refused_without_expanding_it(tmp_path):
    """The header asks for 10 bytes; 64 MB follow in a 64 KB gzip. Refused after reading one byte too many."""
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    _gzip_of_header_then_zeros(path, np.zeros(10, dtype=np.uint8), 64 << 20)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(MNISTError, match=r"train-labels-idx1-ubyte\.gz is longer than its header says: header "
                                             r"shape \(10,\) needs 18 bytes, found more than that"):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"reading took {peak} bytes"  # gunzipping it whole took over 64 MB


@pytest.mark.parametrize("gzipped", [True, False])
def test_a_header_asking_for_more_than_the_bound_is_refused_before_reading(tmp_path, gzipped):
    header = bytes([0, 0, 0x08, 3]) + b"".join(struct.pack(">I", size) for size in (400_000, 28, 28))  # 314 MB
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gzipped else ""))
    path.write_bytes(gzip.compress(header + bytes(1000)) if gzipped else header + bytes(1000))
    with pytest.raises(MNISTError, match=rf"{path.name} has header shape \(400000, 28, 28\), 313600000 bytes of "
                                         rf"data: more than the {MAX_IDX_BYTES} bytes"):
        read_idx(path)


@pytest.mark.parametrize("change", ["crc", "garbage after"])
def test_a_damaged_gzip_is_named(tmp_path, change):
    raw = bytearray(gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8))))
    if change == "crc":
        raw[-8] ^= 0xFF  # the CRC-32 of the trailer, checked when the stream ends
    else:
        raw += b"not gzip"
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(MNISTError, match=r"t10k-labels-idx1-ubyte\.gz is a truncated or corrupt gzip file"):
        read_idx(path)


def test_read_arrays_are_read_only_and_match_plain_and_gzipped(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    (tmp_path / "plain").write_bytes(idx_bytes(images))
    (tmp_path / "zipped").write_bytes(gzip.compress(idx_bytes(images)))
    for name in ("plain", "zipped"):
        array = read_idx(tmp_path / name, hashlib.sha256(idx_bytes(images)).hexdigest())
        np.testing.assert_array_equal(array, images)
        assert not array.flags.writeable


def test_a_mirror_sending_more_than_the_download_bound_leaves_nothing(tmp_path, monkeypatch):
    arrays = small_mnist()
    sums = {name: hashlib.sha256(idx_bytes(array)).hexdigest() for name, array in arrays.items()}
    monkeypatch.setattr(data, "MAX_DOWNLOAD_BYTES", 1000)  # the small images' gzip files are larger
    cache = tmp_path / "cache"
    with MirrorServer(gz_payloads(arrays)) as server:
        with pytest.raises(MNISTError, match=r"train-images-idx3-ubyte.*more than 1000 bytes"):
            load_mnist(None, cache_dir=cache, mirrors=[server.url], checksums=sums, progress=False)
    assert list(cache.iterdir()) == []
