"""Tiny Shakespeare: where it is found, its checks, the character ids, the splits and BERT's masking."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from lamb_edu import data
from lamb_edu.text_data import IGNORE, CharText, TextDataError, load_tiny_shakespeare, mask_windows, masked_count

REAL_ROOT = os.environ.get("LAMB_EDU_DATA")  # read before the fixture below hides it from each test
SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20


def real_text() -> CharText:
    for root in (REAL_ROOT, str(Path(__file__).resolve().parents[2] / "shared" / "data")):
        if root and (Path(root) / "tinyshakespeare" / "input.txt").is_file():
            return load_tiny_shakespeare(Path(root) / "tinyshakespeare", download=False)
    pytest.skip("needs tinyshakespeare/input.txt under LAMB_EDU_DATA (CI: ../shared/data)")


@pytest.fixture(autouse=True)
def no_environment(monkeypatch, tmp_path):
    """No LAMB_EDU_DATA and a private home, so the real cache is never touched."""
    monkeypatch.delenv("LAMB_EDU_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write_sample(folder: Path, text: str = SAMPLE) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "input.txt").write_text(text)
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_real_text_has_the_issue_s_size_vocabulary_and_splits():
    text = real_text()
    assert len(text.text) == 1_115_394 and len(text.vocabulary) == 65 and text.vocab_size == 66 and text.mask_id == 65
    assert text.vocabulary[0] == "\n" and " " in text.vocabulary and text.vocabulary == "".join(sorted(text.vocabulary))
    assert text.split_at == 1_003_854  # int(0.9 * 1,115,394)
    train, validation = text.windows("train", 64), text.windows("validation", 64)
    assert train.shape == (1_003_854 // 64, 64) and validation.shape == ((1_115_394 - 1_003_854) // 64, 64)
    assert text.decode(train[0]) == text.text[:64] and text.decode(validation[0]) == text.text[1_003_854:1_003_918]
    counts = np.bincount(text.ids, minlength=65)
    # the most frequent character, the baseline of a masked-LM: a space, 15.2 % of the text
    assert text.vocabulary[counts.argmax()] == " " and 0.15 < counts.max() / len(text.ids) < 0.155


def test_encode_and_decode_are_inverse_and_unknown_characters_are_named():
    text = CharText(SAMPLE)
    ids = text.encode("hear me_", mask_char="_")
    assert ids.dtype == np.int64 and ids[-1] == text.mask_id and text.decode(ids) == "hear me_"
    assert [text.vocabulary[i] for i in ids[:4]] == list("hear")
    with pytest.raises(ValueError, match="'Zé'"):
        text.encode("Zé")
    with pytest.raises(ValueError, match="split"):
        text.windows("test", 8)


def test_search_order_data_dir_then_root_then_cache(tmp_path, monkeypatch):
    places = ("given", "root/tinyshakespeare", "cache")
    sums = {place: write_sample(tmp_path / place, SAMPLE + place) for place in places}
    monkeypatch.setenv("LAMB_EDU_DATA", str(tmp_path / "root"))
    cache = tmp_path / "cache"
    assert load_tiny_shakespeare(tmp_path / "given", cache_dir=cache, sha256=sums["given"]).text.endswith("given")
    assert load_tiny_shakespeare(cache_dir=cache, sha256=sums["root/tinyshakespeare"]).text.endswith("tinyshakespeare")
    monkeypatch.delenv("LAMB_EDU_DATA")
    assert load_tiny_shakespeare(cache_dir=cache, sha256=sums["cache"]).text.endswith("cache")


def test_a_corrupt_file_is_one_clear_error_naming_it(tmp_path):
    digest = write_sample(tmp_path / "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "input.txt").write_text(SAMPLE[:-10])
    with pytest.raises(TextDataError) as caught:
        load_tiny_shakespeare(tmp_path / "bad", download=False, sha256=digest)
    message = str(caught.value)
    assert str(tmp_path / "bad" / "input.txt") in message and "truncated?" in message and "--data-dir" in message
    assert "\n" not in message
    with pytest.raises(TextDataError, match="not found.*downloading is off"):
        load_tiny_shakespeare(tmp_path / "nowhere", download=False, cache_dir=tmp_path / "empty-cache", sha256=digest)


def serve(folder: Path):
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(folder))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_is_checked_and_a_bad_one_leaves_nothing(tmp_path):
    digest = write_sample(tmp_path / "site")
    server = serve(tmp_path / "site")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/input.txt"
        cache = tmp_path / "cache"
        with pytest.raises(TextDataError, match="not the canonical file"):
            load_tiny_shakespeare(cache_dir=cache, url=url, sha256="0" * 64)
        assert list(cache.iterdir()) == []
        assert load_tiny_shakespeare(cache_dir=cache, url=url, sha256=digest).text == SAMPLE
        assert [p.name for p in cache.iterdir()] == ["input.txt"]
    finally:
        server.shutdown()


def test_bert_masking_counts_fractions_and_targets():
    rng = np.random.default_rng(0)
    windows = rng.integers(0, 65, size=(4000, 64))
    inputs, targets = mask_windows(windows, np.random.default_rng(1), characters=65, mask_id=65)
    chosen = targets != IGNORE
    assert masked_count(64) == 10 and (chosen.sum(axis=1) == 10).all()
    assert (targets[chosen] == windows[chosen]).all() and (inputs[~chosen] == windows[~chosen]).all()
    masked = inputs[chosen] == 65
    kept = inputs[chosen] == windows[chosen]
    swapped = ~masked & ~kept
    total = chosen.sum()
    assert abs(masked.sum() / total - 0.8) < 0.01
    # a random replacement equals the original 1 time in 65, so "kept" is 10 % plus 10 %/65
    assert abs(kept.sum() / total - (0.1 + 0.1 / 65)) < 0.01 and abs(swapped.sum() / total - 0.1 * 64 / 65) < 0.01
    assert inputs.max() <= 65 and inputs[chosen][swapped].max() < 65
    again = mask_windows(windows, np.random.default_rng(1), characters=65, mask_id=65)
    assert (again[0] == inputs).all() and (again[1] == targets).all()
    other = mask_windows(windows, np.random.default_rng(2), characters=65, mask_id=65)
    assert (other[1] != targets).any()


def test_mnist_reads_a_data_root_holding_mnist_and_a_folder_of_files(tmp_path, monkeypatch):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7], dtype=np.uint8)

    def idx(array):
        return bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape) + array.tobytes()

    arrays = {"train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": labels,
              "t10k-images-idx3-ubyte": images, "t10k-labels-idx1-ubyte": labels}
    sums = {name: hashlib.sha256(idx(array)).hexdigest() for name, array in arrays.items()}
    for folder in (tmp_path / "root" / "mnist", tmp_path / "flat"):
        folder.mkdir(parents=True)
        for name, array in arrays.items():
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx(array)))
    for setting in (tmp_path / "root", tmp_path / "flat"):
        monkeypatch.setenv("LAMB_EDU_DATA", str(setting))
        loaded = data.load_mnist(download=False, checksums=sums, cache_dir=tmp_path / "cache")
        assert (loaded.train_labels == [3, 7]).all() and (loaded.test_images == images).all()
