"""URL data sources: downloaded once per node in ``prepare_data``, atomically, and a failed
download names the URL and the config field. A server on 127.0.0.1 stands in for the web."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from reft_lightning.data.datasets import RecordsDataModule
from reft_lightning.data.fetch import CACHE_ENV, resolve_source

RECORDS = [{"question": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(6)]


class _Files(BaseHTTPRequestHandler):
    """Serves ``/train.jsonl`` and ``/test.jsonl``; counts requests; anything else is a 404."""

    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        if self.path not in ("/train.jsonl", "/test.jsonl"):
            self.send_error(404)
            return
        body = "".join(json.dumps(r) + "\n" for r in RECORDS).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    _Files.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_prepare_data_downloads_once_and_setup_reads_the_cache(server: str, tmp_path: Path) -> None:
    data = RecordsDataModule(
        train_file=f"{server}/train.jsonl", test_file=f"{server}/test.jsonl", val_size=2, tokenizer="unused"
    )
    data.prepare_data()
    assert sorted(_Files.requests) == ["/test.jsonl", "/train.jsonl"]

    splits = data.load_splits()  # what setup reads, on every process: no second request
    assert sorted(_Files.requests) == ["/test.jsonl", "/train.jsonl"]
    assert [e.answer for e in splits["test"]] == [r["answer"] for r in RECORDS]
    cache = tmp_path / "cache"
    assert sorted(p.name.split("-", 1)[1] for p in cache.iterdir()) == ["test.jsonl", "train.jsonl"]


def test_a_failed_download_names_url_and_field_and_leaves_no_partial_file(
    server: str, tmp_path: Path
) -> None:
    url = f"{server}/missing.jsonl"
    with pytest.raises(
        RuntimeError, match=r"data\.init_args\.train_file: could not download .*/missing\.jsonl"
    ):
        resolve_source(url, "data.init_args.train_file")
    cache = tmp_path / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_missing_local_file_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"data\.init_args\.test_file: data file not found: .*nope\.jsonl"
    ):
        resolve_source(str(tmp_path / "nope.jsonl"), "data.init_args.test_file")
