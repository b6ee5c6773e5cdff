"""The consent text and the consent store: versioned text, per-modality grants kept in a
small JSON file, a new text version asking again, listeners, thread safety."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import stat
import threading
from pathlib import Path

import pytest

from emoapp.core.messages import Modality
from emoapp.privacy import consent as consent_mod
from emoapp.privacy.audit import AuditLog
from emoapp.privacy.consent import (
    ConsentChange,
    ConsentError,
    ConsentStatus,
    ConsentStore,
    available_versions,
    consent_folder,
    load_consent_text,
    parse_modality,
)

# What each version of the consent text says may never change once written: a change
# needs a new version (so that grants given for the old words stop counting).
PINNED_TEXTS = {
    "1": "454418e974d63ac763dd0d5a14b54b2d1e8ab25de3d521e443982e36b1aa5ba0",
    "2": "bbd35bc1561769c093e8c2779a4fd10ae68fd3b5868ecd5b52d6125eadbd4daa",
    "3": "fc5cd19fe37d8cdde1193f1b2839c597eb922e0d3ca381b4c9728f3d3e881bab",
}


@pytest.fixture
def store(tmp_path: Path) -> ConsentStore:
    return ConsentStore(tmp_path / "config")


def copy_texts(tmp_path: Path) -> Path:
    folder = tmp_path / "consent-texts"
    shutil.copytree(consent_folder(), folder)
    return folder


def add_version(folder: Path, version: str) -> None:
    text = (folder / "consent-v1.toml").read_text(encoding="utf-8")
    text = text.replace('version = "1"', f'version = "{version}"', 1)
    text = text.replace("dropped as soon as newer ones arrive", "dropped at once")
    (folder / f"consent-v{version}.toml").write_text(text, encoding="utf-8")


# --- the text --------------------------------------------------------------------------------


def test_consent_text_is_found_through_data_dir_and_says_what_it_must():
    from emoapp.registry import data_dir

    assert consent_folder() == data_dir("resources") / "consent"
    text = load_consent_text()
    assert text.version == available_versions()[-1]
    for modality in Modality:
        section = text.sections[modality]
        for part in (section.title, section.captures, section.processing, section.kept):
            assert part.strip()
        assert "revoke" in section.revoke.lower() or not section.requires_grant
    assert text.requires_grant(Modality.FACE) and text.requires_grant(Modality.VOICE)
    assert not text.requires_grant(Modality.TEXT)
    assert text.granted_modalities == (Modality.FACE, Modality.VOICE)
    assert "this computer" in text.local and "network" in text.local
    assert "never written" in text.kept
    markdown = text.as_markdown(["camera"])
    assert "## Camera (face)" in markdown and "Microphone" not in markdown
    assert f"version {text.version}" in markdown


def test_every_consent_version_is_pinned():
    """Editing a published version in place would make old grants cover new words."""
    for version in available_versions():
        assert load_consent_text(version).sha256 == PINNED_TEXTS.get(version), (
            f"consent-v{version}.toml changed or is new: a change to what the text says "
            "needs a new version file; then pin its hash here"
        )


def test_malformed_consent_texts_are_refused(tmp_path: Path):
    folder = copy_texts(tmp_path)
    latest = max(available_versions(folder), key=int)
    other = str(int(latest) + 1)
    (folder / f"consent-v{latest}.toml").write_text(f'version = "{other}"\n', encoding="utf-8")
    with pytest.raises(ConsentError, match="does not match its name"):
        load_consent_text(folder=folder)
    (folder / f"consent-v{latest}.toml").write_text(
        f'version = "{latest}"\ndate = "x"\n', encoding="utf-8"
    )
    with pytest.raises(ConsentError, match="lacks"):
        load_consent_text(folder=folder)
    with pytest.raises(ConsentError, match="version 7 does not exist"):
        load_consent_text("7", folder=folder)
    with pytest.raises(ConsentError, match="no consent text"):
        load_consent_text(folder=tmp_path / "empty")


def test_modality_names_people_use():
    assert parse_modality("camera") is Modality.FACE
    assert parse_modality("Mic") is Modality.VOICE
    assert parse_modality("microphone") is Modality.VOICE
    assert parse_modality(Modality.TEXT) is Modality.TEXT
    with pytest.raises(ConsentError, match="unknown modality 'nose'"):
        parse_modality("nose")


# --- the store -------------------------------------------------------------------------------


def test_nothing_is_granted_until_granted_and_the_grant_is_saved(store: ConsentStore, tmp_path):
    assert not store.is_granted("camera")
    assert not store.is_granted(Modality.VOICE)
    assert store.status(Modality.FACE) is ConsentStatus.NEVER_ASKED
    assert not store.path.exists()  # asking writes nothing

    assert store.grant("camera") is True
    assert store.is_granted(Modality.FACE) and not store.is_granted(Modality.VOICE)
    assert store.grant(Modality.FACE) is False  # already granted: no change

    saved = json.loads(store.path.read_text())
    assert store.path == tmp_path / "config" / "consent.json"
    face = saved["modalities"]["face"]
    assert face["granted"] is True and face["version"] == store.text.version
    assert dt.datetime.fromisoformat(face["time"]).utcoffset() == dt.timedelta(0)
    assert set(saved["modalities"]) == {"face"}
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600

    again = ConsentStore(tmp_path / "config")  # a later run
    assert again.is_granted(Modality.FACE) and not again.is_granted(Modality.VOICE)
    record = again.record(Modality.FACE)
    assert record is not None and record.time == face["time"]


def test_revoke_and_revoke_all(store: ConsentStore, tmp_path):
    store.grant(Modality.FACE)
    store.grant(Modality.VOICE)
    assert store.revoke("mic") is True
    assert not store.is_granted(Modality.VOICE) and store.is_granted(Modality.FACE)
    assert store.status(Modality.VOICE) is ConsentStatus.REVOKED
    assert store.revoke(Modality.VOICE) is False
    assert store.revoke_all() == [Modality.FACE]
    assert store.revoke_all() == []
    later = ConsentStore(tmp_path / "config")
    assert not later.is_granted(Modality.FACE) and not later.is_granted(Modality.VOICE)
    saved = json.loads(store.path.read_text())["modalities"]
    assert saved["face"]["granted"] is False and saved["voice"]["granted"] is False


def test_typed_text_needs_no_grant(store: ConsentStore):
    assert store.is_granted(Modality.TEXT)
    assert store.status("text") is ConsentStatus.NOT_NEEDED
    with pytest.raises(ConsentError, match="text needs no consent"):
        store.grant(Modality.TEXT)
    with pytest.raises(ConsentError, match="text needs no consent"):
        store.revoke(Modality.TEXT)


def test_a_new_consent_version_asks_again(tmp_path: Path):
    folder = copy_texts(tmp_path)
    for later in folder.glob("consent-v*.toml"):
        if later.name != "consent-v1.toml":
            later.unlink()
    config = tmp_path / "config"
    v1 = load_consent_text("1", folder=folder)
    old = ConsentStore(config, text=v1)
    old.grant(Modality.FACE)
    old.grant(Modality.VOICE)

    add_version(folder, "2")
    v2 = load_consent_text(folder=folder)
    assert v2.version == "2" and v2.sha256 != v1.sha256
    new = ConsentStore(config, text=v2)
    assert not new.is_granted(Modality.FACE)
    assert new.status(Modality.FACE) is ConsentStatus.OUTDATED
    assert new.grant(Modality.FACE) is True
    assert new.is_granted(Modality.FACE) and not new.is_granted(Modality.VOICE)
    record = new.record(Modality.FACE)
    assert record is not None and record.version == "2"


def test_a_damaged_consent_file_counts_as_no_grant(tmp_path: Path):
    config = tmp_path / "config"
    ConsentStore(config).grant(Modality.FACE)
    path = config / "consent.json"
    for damage in ("{not json", '{"format": 1, "modalities": {"face": {"granted": "yes"}}}', "[]"):
        path.write_text(damage)
        store = ConsentStore(config)
        assert not store.is_granted(Modality.FACE)
        assert store.problem is not None and "consent is asked again" in store.problem
    store.grant(Modality.FACE)  # granting again rewrites the file
    assert ConsentStore(config).is_granted(Modality.FACE)


def test_a_grant_that_cannot_be_saved_does_not_count(tmp_path: Path, monkeypatch):
    store = ConsentStore(tmp_path / "config")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(consent_mod, "atomic_write_text", full_disk)
    with pytest.raises(ConsentError, match=r"camera consent not saved.*--allow-camera"):
        store.grant(Modality.FACE)
    assert not store.is_granted(Modality.FACE)
    assert store.audit.entries() == []


def test_a_revocation_that_cannot_be_saved_still_holds_and_is_heard(tmp_path, monkeypatch):
    store = ConsentStore(tmp_path / "config")
    store.grant(Modality.VOICE)
    heard: list[ConsentChange] = []
    store.add_listener(heard.append)

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(consent_mod, "atomic_write_text", read_only)
    with pytest.raises(ConsentError, match="revoked for now, but not saved"):
        store.revoke(Modality.VOICE)
    assert not store.is_granted(Modality.VOICE)
    assert [(c.modality, c.granted) for c in heard] == [(Modality.VOICE, False)]


def test_listeners_hear_every_change_and_can_unsubscribe(store: ConsentStore):
    heard: list[ConsentChange] = []
    remove = store.add_listener(heard.append)
    store.grant(Modality.FACE, via="test")
    store.grant(Modality.FACE)  # no change, no event
    store.revoke(Modality.FACE)
    assert [(c.modality, c.granted, c.via) for c in heard] == [
        (Modality.FACE, True, "test"),
        (Modality.FACE, False, "window"),
    ]
    assert all(c.version == store.text.version for c in heard)
    remove()
    store.grant(Modality.VOICE)
    assert len(heard) == 2


def test_a_broken_listener_does_not_keep_a_revocation_from_the_others(store: ConsentStore):
    heard = []

    def broken(change):
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    store.add_listener(heard.append)
    store.grant(Modality.FACE)
    store.revoke(Modality.FACE)
    assert [c.granted for c in heard] == [True, False]
    assert not store.is_granted(Modality.FACE)


def test_a_listener_may_call_back_into_the_store(store: ConsentStore):
    seen = []
    store.add_listener(lambda change: seen.append(store.is_granted(change.modality)))
    store.grant(Modality.VOICE)
    store.revoke(Modality.VOICE)
    assert seen == [True, False]


def test_concurrent_grants_and_revokes_end_consistent(store: ConsentStore, tmp_path: Path):
    events: list[ConsentChange] = []
    lock = threading.Lock()

    def listener(change: ConsentChange) -> None:
        with lock:
            events.append(change)

    store.add_listener(listener)
    barrier = threading.Barrier(4)

    def worker(modality: Modality) -> None:
        barrier.wait()
        for _ in range(10):
            store.grant(modality)
            store.revoke(modality)

    threads = [
        threading.Thread(target=worker, args=(m,), name=f"consent-{i}")
        for i, m in enumerate([Modality.FACE, Modality.FACE, Modality.VOICE, Modality.VOICE])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for modality in (Modality.FACE, Modality.VOICE):
        states = [c.granted for c in events if c.modality is modality]
        # Changes are serialised: events alternate grant/revoke, never two of a kind.
        assert states and all(a != b for a, b in itertools.pairwise(states))
        assert states[-1] is False
        assert not store.is_granted(modality)
    assert not ConsentStore(tmp_path / "config").is_granted(Modality.FACE)
    assert json.loads(store.path.read_text())["format"] == 1


def test_another_process_revoking_is_noticed(tmp_path: Path):
    config = tmp_path / "config"
    window = ConsentStore(config)
    window.grant(Modality.FACE)
    live = ConsentStore(config)  # e.g. `emoapp live` running at the same time
    heard = []
    live.add_listener(heard.append)
    assert live.is_granted(Modality.FACE)
    window.revoke(Modality.FACE)
    assert not live.is_granted(Modality.FACE)
    assert [(c.modality, c.granted) for c in heard] == [(Modality.FACE, False)]
    (config / "consent.json").unlink()  # deleting the file revokes everything
    window.grant(Modality.VOICE)
    assert live.is_granted(Modality.VOICE)
    (config / "consent.json").unlink()
    assert not live.is_granted(Modality.VOICE)


def test_changes_are_audited_without_content(tmp_path: Path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    store = ConsentStore(tmp_path / "config", audit=audit)
    store.grant(Modality.FACE, via="window")
    store.revoke(Modality.FACE, via="pause key")
    entries = audit.entries()
    assert [(e.event, e.details["modality"], e.details["via"]) for e in entries] == [
        ("consent-granted", "face", "window"),
        ("consent-revoked", "face", "pause key"),
    ]
    assert all(e.details["version"] == store.text.version for e in entries)
    # The default audit log sits next to the consent file.
    default = ConsentStore(tmp_path / "other")
    default.grant(Modality.VOICE)
    assert default.audit.path == tmp_path / "other" / "audit.jsonl"
    assert default.audit.entries()[0].event == "consent-granted"


def test_the_store_defaults_to_the_config_dir(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(tmp_path / "cfg"))
    store = ConsentStore()
    assert store.path == tmp_path / "cfg" / "consent.json"
    store.grant(Modality.FACE)
    assert (tmp_path / "cfg" / "consent.json").is_file()
    assert (tmp_path / "cfg" / "audit.jsonl").is_file()


def test_a_check_never_waits_on_a_change_in_progress(tmp_path: Path):
    """A listener (the runtime closing a device) may join a worker that checks consent,
    even while another process has just changed the file: the check must not block."""
    config = tmp_path / "config"
    store = ConsentStore(config)
    other = ConsentStore(config)  # another emoapp process
    answers: list[bool] = []
    heard: list[tuple[Modality, bool, str]] = []

    def listener(change: ConsentChange) -> None:
        heard.append((change.modality, change.granted, change.via))
        if change.granted or change.modality is not Modality.FACE:
            return
        other.revoke(Modality.VOICE)  # the file changes under `store`
        worker = threading.Thread(
            target=lambda: answers.append(store.is_granted(Modality.FACE)), name="worker"
        )
        worker.start()
        worker.join(timeout=5)
        assert not worker.is_alive(), "consent check blocked during a change"

    store.grant(Modality.FACE)
    store.grant(Modality.VOICE)
    store.add_listener(listener)
    store.revoke(Modality.FACE)
    assert answers == [False]
    # The other process's revocation is kept (not overwritten by this store's write) and
    # heard once the change is done.
    assert not store.is_granted(Modality.VOICE)
    assert not ConsentStore(config).is_granted(Modality.VOICE)
    assert heard == [
        (Modality.FACE, False, "window"),
        (Modality.VOICE, False, "another emoapp process"),
    ]


def test_two_processes_changing_different_modalities_keep_both(tmp_path: Path):
    config = tmp_path / "config"
    window, live = ConsentStore(config), ConsentStore(config)
    window.grant(Modality.FACE)
    live.grant(Modality.VOICE)  # written over the file as it is now, face included
    assert ConsentStore(config).is_granted(Modality.FACE)
    assert ConsentStore(config).is_granted(Modality.VOICE)
    window.revoke(Modality.FACE)
    assert live.is_granted(Modality.VOICE) and not live.is_granted(Modality.FACE)
