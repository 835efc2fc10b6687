"""Named corpora: resolution order (path → $NER_RAY_DATA → cache → download), sha256-checked downloads
from a loopback HTTP server, and the one error that names the three ways to provide a corpus."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from ner_ray.data.corpora import (
    CorpusNotFoundError,
    cache_dir,
    load_corpus,
    locate,
)
from ner_ray.data.download import sha256_of
from ner_ray.registry import CORPORA


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $NER_RAY_DATA, a private empty cache, downloads allowed."""
    monkeypatch.delenv("NER_RAY_DATA", raising=False)
    monkeypatch.delenv("NER_RAY_MIRROR", raising=False)
    monkeypatch.delenv("NER_RAY_OFFLINE", raising=False)
    monkeypatch.setenv("NER_RAY_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def mirror(isolated, monkeypatch):
    """A loopback HTTP server serving a folder laid out like ../shared/data; yields that folder."""
    root = isolated / "mirror"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NER_RAY_MIRROR", f"http://127.0.0.1:{server.server_address[1]}/")
    yield root
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_registered_checksums_match_the_shared_files(shared_data):
    for spec in map(CORPORA.get, CORPORA.names()):
        if spec.packaged:
            continue
        for form in spec.forms.values():
            for entry in form.values():
                assert sha256_of(shared_data / entry.path) == entry.sha256, entry.path


def test_explicit_folder_then_environment(shared_data, isolated, monkeypatch):
    spec = CORPORA.get("ncbi_disease")
    assert locate(spec, "dev", data_dir=shared_data) == shared_data / "ncbi_disease/NCBIdevelopset_corpus.txt"
    assert locate(spec, "dev", data_dir=shared_data / "ncbi_disease") == shared_data / "ncbi_disease/NCBIdevelopset_corpus.txt"
    monkeypatch.setenv("NER_RAY_DATA", str(shared_data))
    assert locate(spec, "test") == shared_data / "ncbi_disease/NCBItestset_corpus.txt"


def test_download_from_loopback_checks_sha_and_fills_the_cache(shared_data, mirror):
    shutil.copytree(shared_data / "ncbi_disease", mirror / "ncbi_disease")
    corpus = load_corpus("ncbi_disease", splits=("dev", "test"))
    assert {s: len(d) for s, d in corpus.splits.items()} == {"dev": 100, "test": 100}
    cached = cache_dir() / "ncbi_disease/NCBIdevelopset_corpus.txt"
    assert corpus.files["dev"] == cached and cached.read_bytes() == (shared_data / "ncbi_disease/NCBIdevelopset_corpus.txt").read_bytes()
    # Now the cache answers, even with the mirror gone.
    shutil.rmtree(mirror / "ncbi_disease")
    assert locate(CORPORA.get("ncbi_disease"), "dev") == cached


def test_corrupt_download_is_rejected_and_nothing_is_cached(shared_data, mirror):
    (mirror / "ncbi_disease").mkdir()
    data = (shared_data / "ncbi_disease/NCBIdevelopset_corpus.txt").read_bytes()
    (mirror / "ncbi_disease/NCBIdevelopset_corpus.txt").write_bytes(data.replace(b"cancer", b"cancre", 1))
    with pytest.raises(CorpusNotFoundError, match="sha256"):
        locate(CORPORA.get("ncbi_disease"), "dev")
    folder = cache_dir() / "ncbi_disease"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_not_found_offline_names_the_three_ways(isolated, monkeypatch):
    monkeypatch.setenv("NER_RAY_OFFLINE", "1")
    with pytest.raises(CorpusNotFoundError) as err:
        load_corpus("bc5cdr", data_dir=isolated / "nowhere")
    message = str(err.value)
    for way in ("--data-dir", "NER_RAY_DATA", str(cache_dir() / "bc5cdr/CDR_TrainingSet.PubTator.txt")):
        assert way in message


def test_unreachable_source_is_the_same_clear_error(isolated, monkeypatch):
    monkeypatch.setenv("NER_RAY_MIRROR", "http://127.0.0.1:9/")  # discard port: nothing listens
    with pytest.raises(CorpusNotFoundError, match="downloading http://127.0.0.1:9/ncbi_disease"):
        locate(CORPORA.get("ncbi_disease"), "train")


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(FileNotFoundError, match="nor a named corpus; did you mean 'bc5cdr'"):
        load_corpus("bc5cdrr")
    with pytest.raises(ValueError, match="valid: dev, test, train"):
        locate(CORPORA.get("bc5cdr"), "validation")


def test_demo_corpus_ships_in_the_package(isolated, monkeypatch):
    monkeypatch.setenv("NER_RAY_OFFLINE", "1")
    corpus = load_corpus("demo")
    assert set(corpus.splits) == {"train", "dev", "test"}
    assert all(Path(p).is_file() for p in corpus.files.values())


def test_single_file_and_plain_folder(shared_data, tmp_path):
    corpus = load_corpus(shared_data / "ncbi_disease/conll/devel.tsv")
    assert list(corpus.splits) == ["dev"] and len(corpus.splits["dev"]) == 923
    corpus = load_corpus(shared_data / "bc5cdr/BC5CDR-IOB")
    assert sorted(corpus.splits) == ["dev", "test", "train"]
