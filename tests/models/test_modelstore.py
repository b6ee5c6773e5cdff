"""emoapp.modelstore against a local fake of the Hugging Face hub.

:class:`FakeHub` is a small threaded HTTP server on 127.0.0.1 that answers the requests
huggingface_hub's ``snapshot_download`` / ``hf_hub_download`` make (model info, the
recursive tree listing, HEAD and GET on ``/{repo}/resolve/{rev}/{file}`` with the ETag and
X-Repo-Commit headers), serving tiny models built on the spot. The real huggingface_hub
code downloads from it; nothing leaves the machine.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from emoapp import modelstore
from emoapp.core.errors import EmoappError, ModelLoadError, UnmappedLabelsError
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.encoders.factory import RuntimeOptions, build_encoder, is_available_locally
from emoapp.registry import RegistryError, registry, resolve_model

FACE_ID = "trpakov/vit-face-expression"
VOICE_ID = "superb/hubert-large-superb-er"  # the default profile's models
TEXT_ID = "tae898/emoberta-large"
OTHER_COMMIT = "b" * 40


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """A local stand-in for huggingface.co, enough for snapshot_download."""

    LFS = (".safetensors", ".bin")

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}
        self.branches: dict[str, dict[str, str]] = {}
        self.tampered: dict[tuple[str, str, str], bytes] = {}  # served instead of the file
        self.vanished: set[tuple[str, str, str]] = set()  # listed, but GET gives 404
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        # HTTP/1.0: one request per connection, so no handler thread outlives a request
        # (server_close joins them).
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = False
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-hub")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo: str, commit: str, folder: Path, branch: str | None = "main") -> None:
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        files["README.md"] = b"---\nlicense: apache-2.0\n---\n# a tiny test model\n"
        self.repos.setdefault(repo, {})[commit] = files
        if branch:
            self.branches.setdefault(repo, {})[branch] = commit

    def gets(self, name: str) -> list[str]:
        with self._lock:
            return [
                path
                for method, path in self.requests
                if method == "GET" and path.endswith("/" + name)
            ]

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def _etag(self, name: str, data: bytes) -> str:
        if name.endswith(self.LFS):
            return hashlib.sha256(data).hexdigest()
        return git_blob_sha1(data)

    def _handler(hub) -> type[BaseHTTPRequestHandler]:  # the hub, not the handler
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
                self.send_response(code)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def not_found(self, code: str, commit: str | None = None) -> None:
                headers = {"X-Error-Code": code, "Content-Type": "application/json"}
                if commit:
                    headers["X-Repo-Commit"] = commit
                self.send(404, json.dumps({"error": code}).encode(), headers)

            def commit_of(self, repo: str, rev: str) -> str | None:
                if rev in hub.repos.get(repo, {}):
                    return rev
                return hub.branches.get(repo, {}).get(rev)

            def route(self) -> None:
                path = unquote(urlparse(self.path).path)
                with hub._lock:
                    hub.requests.append((self.command, path))
                if path == "/":
                    return self.send(200, b"fake hub")
                api = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/(revision|tree)/([^/]+))?", path)
                resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if api:
                    repo, kind, rev = api.group(1), api.group(2) or "revision", api.group(3)
                elif resolve:
                    repo, kind, rev = resolve.group(1), "resolve", resolve.group(2)
                else:
                    return self.send(404)
                rev = rev or "main"
                if repo not in hub.repos:
                    return self.not_found("RepoNotFound")
                commit = self.commit_of(repo, rev)
                if commit is None:
                    return self.not_found("RevisionNotFound")
                files = hub.repos[repo][commit]
                if kind == "revision":
                    body = {
                        "id": repo,
                        "sha": commit,
                        "siblings": [{"rfilename": name} for name in files],
                    }
                    return self.send(
                        200, json.dumps(body).encode(), {"Content-Type": "application/json"}
                    )
                if kind == "tree":
                    listing = []
                    for name, data in files.items():
                        entry = {
                            "type": "file",
                            "path": name,
                            "size": len(data),
                            "oid": git_blob_sha1(data),
                        }
                        if name.endswith(hub.LFS):
                            entry["lfs"] = {
                                "oid": hashlib.sha256(data).hexdigest(),
                                "size": len(data),
                                "pointerSize": 134,
                            }
                        listing.append(entry)
                    return self.send(
                        200, json.dumps(listing).encode(), {"Content-Type": "application/json"}
                    )
                name = resolve.group(3)
                key = (repo, commit, name)
                if name not in files or (self.command == "GET" and key in hub.vanished):
                    return self.not_found("EntryNotFound", commit)
                data = hub.tampered.get(key, files[name])
                return self.send(
                    200,
                    data,
                    {"ETag": f'"{hub._etag(name, files[name])}"', "X-Repo-Commit": commit},
                )

            do_GET = route
            do_HEAD = route

        return Handler


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let huggingface_hub make requests (conftest sets HF_HUB_OFFLINE=1 for every test);
    and no tqdm monitor thread, which the thread guard would count as a leak."""
    from huggingface_hub import constants
    from tqdm import tqdm

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(tqdm, "monitor_interval", 0)


@pytest.fixture
def hub(online: None, tiny_models: dict[str, Path]) -> Iterator[FakeHub]:
    """The fake hub serving the tiny models under the default profile's registry ids, at
    their pinned revisions."""
    with FakeHub() as fake:
        for modality, model_id in (("face", FACE_ID), ("voice", VOICE_ID), ("text", TEXT_ID)):
            fake.add(model_id, registry()[model_id].revision, tiny_models[modality])
        yield fake


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "models"


def text_revision() -> str:
    revision = registry()[TEXT_ID].revision
    assert revision is not None
    return revision


def test_pull_records_a_manifest_and_the_model_then_loads_offline(
    hub: FakeHub, cache: Path, tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    [result] = modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)

    assert result.status == "pulled"
    assert result.revision == text_revision()
    manifest_file = (
        cache
        / f"models--{TEXT_ID.replace('/', '--')}"
        / "emoapp-manifests"
        / (f"{text_revision()}.json")
    )
    data = json.loads(manifest_file.read_text())
    assert data["id"] == TEXT_ID and data["revision"] == text_revision() and data["pulled_at"]
    recorded = {f["path"]: f for f in data["files"]}
    source = tiny_models["text"] / "model.safetensors"
    assert (
        recorded["model.safetensors"]["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    )
    assert recorded["model.safetensors"]["size"] == source.stat().st_size
    assert {"config.json", "README.md", "tokenizer.json"} <= set(recorded)
    assert data["task"] == "text-classification"

    # From now on: no network at all.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    requests_before = len(hub.requests)
    spec = resolve_model(Modality.TEXT, TEXT_ID)
    assert spec is not None
    options = RuntimeOptions(device="cpu", models_dir=str(cache))
    assert is_available_locally(spec, options)
    encoder = build_encoder(spec, options)
    encoder.load()
    [out] = encoder.encode(["I am so happy to see you today."])
    assert isinstance(out, ModalityPrediction)
    assert out.model_id == TEXT_ID and abs(out.probs.sum() - 1) < 1e-6
    assert len(hub.requests) == requests_before

    # Pulling again only re-checks the files: no request to the hub.
    [again] = modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)
    assert again.status == "present" and len(hub.requests) == requests_before


def test_verify_reports_corrupted_and_missing_files_and_force_repairs(
    hub: FakeHub, cache: Path
) -> None:
    modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)
    [report] = modelstore.verify(TEXT_ID, cache)
    assert report.ok, report.describe()

    snapshot = report.snapshot
    assert snapshot is not None
    with (snapshot / "model.safetensors").open("r+b") as fh:  # flip one byte in the blob
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    (snapshot / "tokenizer.json").unlink()

    [report] = modelstore.verify(None, cache)
    assert report.status == "damaged"
    assert report.changed == ("model.safetensors",)
    assert report.missing == ("tokenizer.json",)
    assert "--force" in report.describe() and "\n" not in report.describe()

    # A plain pull will not paper over a changed file...
    with pytest.raises(modelstore.PullError, match="checksum"):
        modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)
    # ...a forced one fetches everything again.
    [result] = modelstore.pull(TEXT_ID, cache, progress=False, force=True, endpoint=hub.endpoint)
    assert result.status == "pulled"
    assert all(r.ok for r in modelstore.verify(TEXT_ID, cache))


def test_a_failed_pull_never_shadows_a_good_one(hub: FakeHub, cache: Path, tmp_path: Path) -> None:
    from emoapp.bench.tinymodels import make_text_model

    modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)
    newer = make_text_model(tmp_path / "newer", seed=1)  # other weights: other blobs
    hub.add(TEXT_ID, OTHER_COMMIT, newer, branch=None)
    hub.vanished.add((TEXT_ID, OTHER_COMMIT, "model.safetensors"))

    with pytest.raises(modelstore.PullError) as info:
        modelstore.pull(f"{TEXT_ID}@{OTHER_COMMIT}", cache, progress=False, endpoint=hub.endpoint)
    assert "\n" not in str(info.value)

    assert modelstore.read_manifest(TEXT_ID, OTHER_COMMIT, cache) is None
    partial = resolve_model(Modality.TEXT, f"{TEXT_ID}@{OTHER_COMMIT}")
    good = resolve_model(Modality.TEXT, TEXT_ID)
    assert partial is not None and good is not None
    options = RuntimeOptions(models_dir=str(cache))
    assert not is_available_locally(partial, options)  # no config.json: not whole
    assert is_available_locally(good, options)
    assert all(r.ok for r in modelstore.verify(None, cache))


def test_a_file_corrupted_in_transit_is_refused(
    hub: FakeHub, cache: Path, tiny_models: dict[str, Path]
) -> None:
    hub.tampered[(TEXT_ID, text_revision(), "model.safetensors")] = (
        b"\0" * (tiny_models["text"] / "model.safetensors").stat().st_size
    )

    with pytest.raises(modelstore.PullError, match="checksum"):
        modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)
    assert modelstore.read_manifest(TEXT_ID, text_revision(), cache) is None
    spec = resolve_model(Modality.TEXT, TEXT_ID)
    assert spec is not None and not is_available_locally(
        spec, RuntimeOptions(models_dir=str(cache))
    )


def test_a_model_for_the_wrong_task_is_refused_before_its_weights_move(
    online: None, cache: Path, tiny_models: dict[str, Path]
) -> None:
    with FakeHub() as fake:
        fake.add(FACE_ID, registry()[FACE_ID].revision, tiny_models["text"])
        with pytest.raises(ModelLoadError, match="text-classification model") as info:
            modelstore.pull(FACE_ID, cache, progress=False, endpoint=fake.endpoint)
        assert "image-classification" in str(info.value)
        assert fake.gets("model.safetensors") == []


def test_a_model_whose_labels_cannot_be_mapped_is_refused(
    online: None, cache: Path, tmp_path: Path
) -> None:
    from emoapp.bench.tinymodels import make_text_model

    odd = make_text_model(tmp_path / "odd", labels=("anger", "boredom"))
    with FakeHub() as fake:
        fake.add(TEXT_ID, text_revision(), odd)
        with pytest.raises(UnmappedLabelsError, match="boredom"):
            modelstore.pull(TEXT_ID, cache, progress=False, endpoint=fake.endpoint)


def test_unknown_models_and_revisions(hub: FakeHub, cache: Path) -> None:
    with pytest.raises(modelstore.PullError, match="not found on the hub"):
        modelstore.pull("nobody/no-such-model", cache, progress=False, endpoint=hub.endpoint)
    with pytest.raises(modelstore.PullError, match="revision"):
        modelstore.pull(f"{TEXT_ID}@{'c' * 40}", cache, progress=False, endpoint=hub.endpoint)
    with pytest.raises(RegistryError, match="not a profile"):
        modelstore.pull("no-such-thing", cache, progress=False, endpoint=hub.endpoint)
    with pytest.raises(RegistryError, match="unknown built-in model"):
        modelstore.pull("baseline/nothing", cache, progress=False, endpoint=hub.endpoint)


def test_a_hub_id_outside_the_registry_resolves_its_branch(
    hub: FakeHub, cache: Path, tiny_models: dict[str, Path]
) -> None:
    hub.add("someone/tiny-voice", OTHER_COMMIT, tiny_models["voice"])
    [result] = modelstore.pull("someone/tiny-voice", cache, progress=False, endpoint=hub.endpoint)
    assert result.revision == OTHER_COMMIT
    assert result.manifest.task == "audio-classification"
    assert modelstore.resolved_revision("someone/tiny-voice", None, cache) == OTHER_COMMIT


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_network_is_one_line_that_says_pulled_models_still_work(
    online: None, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(modelstore.PullError) as info:
        modelstore.pull(
            TEXT_ID, cache, progress=False, endpoint=f"http://127.0.0.1:{_closed_port()}"
        )
    message = str(info.value)
    assert message.startswith("cannot reach the Hugging Face hub: ")
    assert message.endswith("models already pulled keep working offline")
    assert "\n" not in message

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(modelstore.PullError, match="HF_HUB_OFFLINE"):
        modelstore.pull(TEXT_ID, cache, progress=False, endpoint="http://127.0.0.1:9")


def test_a_full_disk_is_one_line_and_leaves_nothing_behind(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import file_download

    real_http_get = file_download.http_get

    def disk_fills_up(url: str, temp_file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if url.endswith("model.safetensors"):
            temp_file.write(b"\0" * 10)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_http_get(url, temp_file, *args, **kwargs)

    monkeypatch.setattr(file_download, "http_get", disk_fills_up)
    with pytest.raises(modelstore.PullError, match="disk filled up") as info:
        modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)
    assert "\n" not in str(info.value)
    assert modelstore.read_manifest(TEXT_ID, text_revision(), cache) is None
    assert not list(cache.rglob("*.incomplete"))
    assert not (modelstore.snapshot_dir(TEXT_ID, text_revision(), cache) / "config.json").exists()


def test_not_enough_space_is_refused_before_downloading(
    hub: FakeHub, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 1))
    with pytest.raises(modelstore.PullError, match="not enough disk space"):
        modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)
    assert hub.gets("model.safetensors") == []


def test_pulling_a_profile_pulls_each_hub_model_and_skips_baselines(
    hub: FakeHub, cache: Path
) -> None:
    notes: list[str] = []
    results = modelstore.pull(
        "default", cache, progress=False, endpoint=hub.endpoint, on_skip=notes.append
    )
    assert sorted(r.id for r in results) == sorted([FACE_ID, VOICE_ID, TEXT_ID])
    assert notes == []
    assert (
        modelstore.pull(
            "baseline", cache, progress=False, endpoint=hub.endpoint, on_skip=notes.append
        )
        == []
    )
    assert len(notes) == 3 and all("built in" in n for n in notes)
    assert [r.id for r in modelstore.verify(None, cache) if r.ok] == sorted(
        [FACE_ID, VOICE_ID, TEXT_ID]
    )


def test_models_dir_follows_the_usual_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("EMOAPP_MODELS_DIR", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert modelstore.models_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert modelstore.models_dir() == tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert modelstore.models_dir() == tmp_path / "hub"
    monkeypatch.setenv("EMOAPP_MODELS_DIR", str(tmp_path / "emo"))
    assert modelstore.models_dir() == tmp_path / "emo"
    assert modelstore.models_dir(tmp_path / "given") == tmp_path / "given"


def test_a_damaged_manifest_is_one_line(hub: FakeHub, cache: Path) -> None:
    modelstore.pull(TEXT_ID, cache, progress=False, endpoint=hub.endpoint)
    path = modelstore.manifest_path(TEXT_ID, text_revision(), cache)
    path.write_text("{not json")
    with pytest.raises(EmoappError, match="damaged"):
        modelstore.verify(None, cache)
