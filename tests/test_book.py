"""The episode book: real SQLite files under real data dirs, and a real engine writing to them.

The first part opens, fills, migrates, damages and prunes book files directly; the
second runs episodes in real Chromium and reads the book from a second, read-only
connection the moment an answer arrives, so "in the book before the answer" is
checked on disk, not on the manager's word. The full disk is a real one: a small
tmpfs, filled until SQLite and the media files get ENOSPC.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.agent_view import StepNotRecordedError, page_text
from engine.book import BookError, EpisodeBook
from engine.book.schema import MIGRATIONS, SCHEMA_VERSION, migrate, stored_version
from engine.book.store import BOOK_FILE
from engine.manager import CLOSED_EPISODES_CACHED
from engine.recorder import Recording, StepMedia
from engine.records import EpisodeLimits, EpisodeState, EpisodeStatus, FailureReason, StepRecord
from engine.transcript import AgentExchange

from support.control import PrivateControlServer
from support.disk import fill, small_disk
from support.engine import EngineHarness
from support.waiting import wait_for

DAY_S = 86_400.0


def state(episode_id: str, *, status: EpisodeStatus = EpisodeStatus.CLOSED, created_at: float | None = None,
          task_id: str = "miniwob.click-test", success: bool = False) -> EpisodeState:
    created = time.time() if created_at is None else created_at
    return EpisodeState(
        episode_id=episode_id, task_id=task_id, seed=1, status=status, goal="Click the button.", step_index=2,
        max_steps=10, done=status is not EpisodeStatus.RUNNING, success=success,
        failure_reason=FailureReason.SUCCESS if success else FailureReason.NONE, limits=EpisodeLimits(),
        invalid_actions=0, repeated_actions=0, oracle_calls=0, created_at=created, last_activity_at=created,
        setup_ms=12.5, closed_by="trainer" if status is EpisodeStatus.CLOSED else None,
    )


def record(index: int, **fields: Any) -> StepRecord:
    values: dict[str, Any] = {
        "index": index, "tool": "click", "arguments": {"id": str(index)}, "valid": True, "url": "http://a/b",
        "started_at": 1_700_000_000.123456789 + index, "action_ms": 3.25, "observation_ms": 7.5,
        "validate_ms": 0.125, **fields,
    }
    return StepRecord(**values)


def exchange(seq: int, step_index: int | None) -> AgentExchange:
    return AgentExchange(seq=seq, tool="click" if step_index else "observe", arguments={"id": "1"},
                         result_text=f"page text {seq} é", is_error=False, step_index=step_index, at=1.5 + seq)


def save_episode(book: EpisodeBook, episode_id: str, *, media: bool = False, **state_fields: Any) -> None:
    recorded = {index: StepMedia(observation_text=f"text {index}", screenshot_png=b"\x89PNG" + bytes([index]))
                for index in (0, 1)} if media else {}
    book.save(state(episode_id, **state_fields), Recording(screenshots=media, observations=media),
              [record(1), record(2)], [exchange(1, None), exchange(2, 1)], recorded)


@pytest.fixture()
def book(tmp_path: Path) -> Iterator[EpisodeBook]:
    opened = EpisodeBook.open(tmp_path / "data")
    try:
        yield opened
    finally:
        opened.close()


# -- the file ---------------------------------------------------------------------------------


def test_a_new_book_is_in_wal_mode_at_the_current_schema_version(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    EpisodeBook.open(data_dir).close()
    with contextlib.closing(sqlite3.connect(data_dir / BOOK_FILE)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert stored_version(connection) == SCHEMA_VERSION == len(MIGRATIONS)
    assert (data_dir / "book.lock").is_file()


def test_what_is_saved_reads_back_equal_from_another_connection(book: EpisodeBook, tmp_path: Path) -> None:
    odd = record(3, task_reward=math.inf, progress=0.1 + 0.2, task_info={"raw": -math.inf, "why": "x"},
                 terminated=True, failure_reason=FailureReason.WRONG_TARGET)
    save_episode(book, "ep_a", media=True)
    book.save(state("ep_a"), Recording(screenshots=True, observations=True), [odd])
    book.set_trainer_data("ep_a", {"reward_weights": {"step_penalty": 0.07}, "auto_difficulty": True})

    reader = EpisodeBook.open(tmp_path / "data", read_only=True)
    try:
        (entry,) = list(reader.entries())
        assert entry.state == state("ep_a", created_at=entry.state.created_at)
        assert entry.records == (record(1), record(2), odd)  # floats exactly, infinities included
        assert entry.exchanges == (exchange(1, None), exchange(2, 1))
        assert entry.trainer_data == {"reward_weights": {"step_penalty": 0.07}, "auto_difficulty": True}
        snapshot = reader.snapshot("ep_a")
        assert snapshot is not None and set(snapshot.media) == {0, 1}
        assert snapshot.media[1] == StepMedia(observation_text="text 1", screenshot_png=b"\x89PNG\x01")
        assert (tmp_path / "data" / "media" / "ep_a" / "1.png").read_bytes() == b"\x89PNG\x01"
    finally:
        reader.close()


def test_entries_filter_and_come_oldest_first(book: EpisodeBook) -> None:
    now = time.time()
    save_episode(book, "ep_new", created_at=now, success=True)
    save_episode(book, "ep_old", created_at=now - 100, task_id="miniwob.enter-text")
    save_episode(book, "ep_mid", created_at=now - 50, success=True)
    assert [e.state.episode_id for e in book.entries()] == ["ep_old", "ep_mid", "ep_new"]
    assert [e.state.episode_id for e in book.entries(success=True)] == ["ep_mid", "ep_new"]
    assert [e.state.episode_id for e in book.entries(task_id="miniwob.enter-text")] == ["ep_old"]
    assert [e.state.episode_id for e in book.entries(since=now - 60, until=now)] == ["ep_mid"]


def test_a_second_server_on_the_data_dir_is_refused_until_the_first_is_gone(tmp_path: Path) -> None:
    first = EpisodeBook.open(tmp_path / "data")
    with pytest.raises(BookError, match=r"another safebrowse server \(pid \d+\) is using the data dir"):
        EpisodeBook.open(tmp_path / "data")
    reader = EpisodeBook.open(tmp_path / "data", read_only=True)  # an export takes no lock
    reader.close()
    first.close()
    EpisodeBook.open(tmp_path / "data").close()


def test_a_data_dir_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BookError, match=r"the data dir .*a-file/data is not writable"):
        EpisodeBook.open(blocker / "data")


def test_a_data_dir_on_a_read_only_disk_is_refused(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 1 << 20) as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        with pytest.raises(BookError, match=r"is not writable \(Read-only file system\)"):
            EpisodeBook.open(disk / "data")


def test_a_book_from_a_newer_safebrowse_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    EpisodeBook.open(data_dir).close()
    with contextlib.closing(sqlite3.connect(data_dir / BOOK_FILE)) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    message = f"book schema version {SCHEMA_VERSION + 1} is newer than this safebrowse ({SCHEMA_VERSION})"
    with pytest.raises(BookError, match=re.escape(message)):
        EpisodeBook.open(data_dir)
    with pytest.raises(BookError, match=re.escape(message)):
        EpisodeBook.open(data_dir, read_only=True)


def test_a_version_1_book_is_migrated_by_the_next_migration_and_keeps_its_episodes(tmp_path: Path) -> None:
    """Adding version 2 is one function appended to MIGRATIONS: here, one that adds a column."""
    data_dir = tmp_path / "data"
    book = EpisodeBook.open(data_dir)
    save_episode(book, "ep_kept")
    book.close()

    def version_2(connection: sqlite3.Connection) -> None:
        connection.execute("ALTER TABLE episodes ADD COLUMN note TEXT NOT NULL DEFAULT 'from v2'")

    with contextlib.closing(sqlite3.connect(data_dir / BOOK_FILE, isolation_level=None)) as connection:
        assert stored_version(connection) == 1
        assert migrate(connection, (*MIGRATIONS, version_2)) == 2
        assert stored_version(connection) == 2
        assert connection.execute("SELECT episode_id, note FROM episodes").fetchall() == [("ep_kept", "from v2")]
        assert migrate(connection, (*MIGRATIONS, version_2)) == 2  # nothing left to apply


def test_a_new_file_starts_at_version_0_and_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "book.sqlite3"

    def broken(connection: sqlite3.Connection) -> None:
        connection.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("migration bug")

    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        assert stored_version(connection) == 0
        assert migrate(connection) == SCHEMA_VERSION
        with pytest.raises(RuntimeError, match="migration bug"):
            migrate(connection, (*MIGRATIONS, broken))
        assert stored_version(connection) == SCHEMA_VERSION
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "half_done" not in tables and {"episodes", "steps", "exchanges", "media"} <= tables


def test_a_file_that_is_not_a_book_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    junk = b"these are not the pages of a SQLite database\n" * 200
    (data_dir / BOOK_FILE).write_bytes(junk)
    with pytest.raises(BookError, match="is damaged or is not a SQLite database"):
        EpisodeBook.open(data_dir)
    assert (data_dir / BOOK_FILE).read_bytes() == junk  # never silently replaced by an empty book


def test_a_damaged_book_is_refused_by_its_check_at_open(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    book = EpisodeBook.open(data_dir)
    for number in range(40):
        save_episode(book, f"ep_{number}")
    book.close()
    path = data_dir / BOOK_FILE
    pages = bytearray(path.read_bytes())
    assert len(pages) > 10 * 4096
    for page in (6, 7):  # pages of the tables' b-trees, written over
        pages[page * 4096: page * 4096 + 100] = b"\xff" * 100
    path.write_bytes(bytes(pages))
    with pytest.raises(BookError, match=r"is damaged .*move it aside .* or restore a backup"):
        EpisodeBook.open(data_dir)
    assert path.read_bytes() == bytes(pages)


def test_retention_removes_closed_episodes_past_the_count_or_age_with_their_files(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    book = EpisodeBook.open(data_dir, max_episodes=3, max_age_days=1.0, max_media_episodes=1)
    now = time.time()
    try:
        for age in range(5):  # ep_0 is the newest
            save_episode(book, f"ep_{age}", media=True, created_at=now - age * 60)
        save_episode(book, "ep_stale", media=True, created_at=now - 2 * DAY_S)
        save_episode(book, "ep_running", media=True, created_at=now - 3 * DAY_S, status=EpisodeStatus.RUNNING)
        pruned = book.prune(now)
        assert set(pruned.removed) == {"ep_3", "ep_4", "ep_stale"}
        assert set(pruned.media_dropped) == {"ep_1", "ep_2"}
        assert [e.state.episode_id for e in book.entries()] == ["ep_running", "ep_2", "ep_1", "ep_0"]
        with contextlib.closing(sqlite3.connect(data_dir / BOOK_FILE)) as connection:
            for table in ("steps", "exchanges", "media"):
                kept = {row[0] for row in connection.execute(f"SELECT DISTINCT episode_id FROM {table}")}
                expected = {"ep_running", "ep_0"} if table == "media" else {"ep_running", "ep_0", "ep_1", "ep_2"}
                assert kept == expected, table
        assert {path.name for path in (data_dir / "media").iterdir()} == {"ep_running", "ep_0"}
        assert book.prune(now).removed == ()
    finally:
        book.close()


# -- a real engine writing -------------------------------------------------------------------


def read_back(data_dir: Path, episode_id: str) -> tuple[list[StepRecord], list[dict[str, Any]], EpisodeState]:
    """The episode as a second, read-only connection finds it on disk now."""
    uri = (data_dir / BOOK_FILE).resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
        records = [StepRecord.model_validate_json(text) for (text,) in connection.execute(
            "SELECT record_json FROM steps WHERE episode_id = ? ORDER BY step_index", (episode_id,))]
        exchanges = [json.loads(text) for (text,) in connection.execute(
            "SELECT exchange_json FROM exchanges WHERE episode_id = ? ORDER BY seq", (episode_id,))]
        (state_json,) = connection.execute("SELECT state_json FROM episodes WHERE episode_id = ?",
                                           (episode_id,)).fetchone()
    return records, exchanges, EpisodeState.model_validate_json(state_json)


@pytest.fixture(scope="module")
def harness() -> Iterator[EngineHarness]:
    h = EngineHarness("book-tests")
    try:
        yield h
    finally:
        h.stop()


def test_every_answered_call_is_in_the_book_when_the_answer_arrives(harness: EngineHarness) -> None:
    created, session = harness.open("miniwob.enter-text", seed=4)
    episode_id = created.episode_id
    assert read_back(harness.data_dir, episode_id)[2].status is EpisodeStatus.RUNNING  # recorded before create returned
    box = next(e.id for e in created.observation.elements if e.role == "textbox") if created.observation else "1"
    calls: list[tuple[str, dict[str, Any]]] = [
        ("fill", {"id": box, "text": "not the name"}), ("click", {"id": "99999"}), ("noop", {"wait_ms": 0}),
        ("press", {"key": "Enter"}),
    ]
    screen = harness.run(session.observe())
    records, exchanges, _ = read_back(harness.data_dir, episode_id)
    assert exchanges[-1]["tool"] == "observe" and exchanges[-1]["result_text"] == page_text(screen.observation)
    for count, (tool, arguments) in enumerate(calls, start=1):
        result = harness.run(session.act(tool, arguments))
        records, exchanges, stored_state = read_back(harness.data_dir, episode_id)
        assert records == harness.manager.trajectory(episode_id)  # this step included, whole
        assert len(records) == count and records[-1].tool == tool
        assert exchanges[-1]["result_text"] == page_text(result.observation, result.error)
        assert exchanges[-1]["step_index"] == count
        assert stored_state == harness.manager.state(episode_id)
        if stored_state.status is not EpisodeStatus.RUNNING:
            break
    harness.run(harness.manager.close(episode_id))
    assert read_back(harness.data_dir, episode_id)[2].closed_by == "trainer"


def test_a_record_replaced_after_its_step_is_written_again(harness: EngineHarness) -> None:
    created, session = harness.open("miniwob.click-test-2", seed=3)
    harness.run(session.act("noop", {"wait_ms": 0}))
    assert read_back(harness.data_dir, created.episode_id)[0][-1].terminated is False
    harness.run(harness.manager.end(created.episode_id, FailureReason.CLIENT_STEP_CAP))
    records, _, stored_state = read_back(harness.data_dir, created.episode_id)
    assert records[-1].terminated and records[-1].failure_reason is FailureReason.CLIENT_STEP_CAP
    assert stored_state.failure_reason is FailureReason.CLIENT_STEP_CAP
    harness.run(harness.manager.close(created.episode_id))


# -- a full disk ------------------------------------------------------------------------------


def steps_until_refused(server: PrivateControlServer, token: str, limit: int = 400) -> int:
    """Act until the server says it cannot record; returns how many steps were answered before."""
    session = server.session(token)
    for answered in range(limit):
        try:
            server.run(session.act("noop", {"wait_ms": 0}))
        except StepNotRecordedError as refused:
            assert str(refused) == "The server cannot record this step now; try again later."
            return answered
    raise AssertionError(f"{limit} steps were all recorded: the disk never filled")


def assert_book_full(response: Any) -> None:
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["error"] == "book_full" and "Free space" in body["detail"]
    assert "reward" not in body["detail"]


def test_a_full_disk_refuses_steps_keeps_what_was_recorded_and_recovers_once_freed(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", 24 << 20) as disk:
        server = PrivateControlServer("book-full", data_dir=disk / "data", idle_timeout_s=3600)
        try:
            created = server.control.create("miniwob.enter-text", seed=2, max_steps=1000, max_repeated_actions=10_000,
                                           record_observations=True)
            episode_id = created["episode_id"]
            idle = server.control.create("miniwob.click-test", seed=1)["episode_id"]
            filler = fill(disk, leave_bytes=160_000)
            answered = steps_until_refused(server, created["agent_token"])
            assert answered >= 1

            # What was recorded stays; the refused step is kept in memory, not lost.
            records, _, _ = read_back(disk / "data", episode_id)
            assert len(records) == answered
            assert len(server.manager.trajectory(episode_id)) == answered + 1
            # Further calls are refused while the book cannot take them (without acting, unless what is
            # pending could be written first), and the trainer is told why.
            with pytest.raises(StepNotRecordedError):
                server.run(server.session(created["agent_token"]).act("noop", {"wait_ms": 0}))
            assert server.manager.state(episode_id).step_index in (answered + 1, answered + 2)
            assert_book_full(server.control.http.get(f"/v1/episodes/{episode_id}"))
            assert_book_full(server.control.http.get(f"/v1/episodes/{episode_id}/trajectory"))
            refused_create = [server.control.http.post("/v1/episodes", json={"task_id": "miniwob.click-test"})
                              for _ in range(4)]
            assert any(response.status_code == 507 for response in refused_create)
            for response in refused_create:
                if response.status_code == 201:  # created while a page had room; closed, recorded or not
                    server.control.http.delete(f"/v1/episodes/{response.json()['episode_id']}")

            # Not a byte left: a close is still done (the browser context freed); 507 says if it could not
            # be recorded (SQLite may reuse log space an earlier failed write had taken).
            last_byte = fill(disk, leave_bytes=0, name="last-byte")
            assert server.control.http.delete(f"/v1/episodes/{idle}").status_code in (200, 507)
            assert not server.manager.get(idle).browser.is_open

            # Space again: the next call writes everything pending first, then acts.
            filler.unlink()
            last_byte.unlink()
            assert server.control.close(idle)["closed_by"] == "trainer"  # recorded now
            assert read_back(disk / "data", idle)[2].status is EpisodeStatus.CLOSED
            server.run(server.session(created["agent_token"]).act("noop", {"wait_ms": 0}))
            records, exchanges, _ = read_back(disk / "data", episode_id)
            assert records == server.manager.trajectory(episode_id)
            assert len(records) in (answered + 2, answered + 3)
            refused = [e for e in exchanges if e["step_index"] == answered + 1]
            assert refused and refused[0]["result_text"] == "The server cannot record this step now; try again later."
            assert server.control.state(episode_id)["step_index"] == len(records)
            server.control.close(episode_id)
        finally:
            server.stop()


def test_the_book_size_cap_refuses_like_a_full_disk(tmp_path: Path) -> None:
    server = PrivateControlServer("book-cap", data_dir=tmp_path / "data", book_settings={"book_max_mb": 0.15})
    try:
        created = server.control.create("miniwob.enter-text", seed=2, max_steps=1000, max_repeated_actions=10_000)
        answered = steps_until_refused(server, created["agent_token"])
        assert len(read_back(tmp_path / "data", created["episode_id"])[0]) == answered
        assert_book_full(server.control.http.get(f"/v1/episodes/{created['episode_id']}"))
        # A close is never refused: the browser context is freed, and 507 says if it cannot be recorded
        # yet (a close writes less than a step: the refused step's text is replaced by the refusal).
        closing = server.control.http.delete(f"/v1/episodes/{created['episode_id']}")
        assert closing.status_code in (200, 507), closing.text
        assert server.manager.state(created["episode_id"]).status is EpisodeStatus.CLOSED
        assert not server.manager.get(created["episode_id"]).browser.is_open
        if closing.status_code == 200:
            assert read_back(tmp_path / "data", created["episode_id"])[2].status is EpisodeStatus.CLOSED
    finally:
        server.stop()


# -- what the manager holds, and retention while serving -------------------------------------


def test_closed_episodes_past_the_few_kept_in_memory_are_read_back_from_the_book(tmp_path: Path) -> None:
    server = PrivateControlServer("book-cache", data_dir=tmp_path / "data")
    try:
        ids, before = [], {}
        for seed in range(CLOSED_EPISODES_CACHED + 2):
            created = server.control.create("miniwob.click-test", seed=seed, record_observations=True)
            server.run(server.session(created["agent_token"]).act("noop", {"wait_ms": 0}))
            server.control.close(created["episode_id"])
            ids.append(created["episode_id"])
            before[created["episode_id"]] = (server.control.state(created["episode_id"]),
                                              server.control.http.get(f"/v1/episodes/{created['episode_id']}"
                                                                      "/trajectory?observations=true").json())
        live = {episode.id for episode in server.manager.episodes()}
        assert ids[0] not in live and ids[1] not in live and ids[-1] in live  # only the newest closed stay whole
        for episode_id in ids[:2]:
            trajectory = server.control.http.get(f"/v1/episodes/{episode_id}/trajectory?observations=true").json()
            assert (server.control.state(episode_id), trajectory) == before[episode_id]
            assert trajectory["steps"][0]["observation_text"]  # media read from the data dir's files
        listed = [summary["episode_id"] for summary in server.control.http.get("/v1/episodes").json()["episodes"]]
        assert listed == ids
    finally:
        server.stop()


def test_retention_applies_at_start_and_while_serving(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = PrivateControlServer("book-retention-1", data_dir=data_dir)
    try:
        ids = []
        for seed in range(3):
            created = first.control.create("miniwob.click-test", seed=seed)
            first.control.close(created["episode_id"])
            ids.append(created["episode_id"])
    finally:
        first.stop()

    # Started with room for two closed episodes: the oldest is gone from the book at start.
    second = PrivateControlServer("book-retention-2", data_dir=data_dir, idle_timeout_s=2.0,
                                  book_settings={"book_max_episodes": 2})
    try:
        def listed() -> list[str]:
            return [e["episode_id"] for e in second.control.http.get("/v1/episodes").json()["episodes"]]

        assert listed() == ids[1:]
        assert second.control.http.get(f"/v1/episodes/{ids[0]}").status_code == 404
        # While serving, the reaper's pass prunes too (every second with this idle timeout).
        newest = second.control.create("miniwob.click-test", seed=9)["episode_id"]
        assert listed() == [*ids[1:], newest]  # running episodes are never pruned
        second.control.close(newest)
        wait_for(lambda: listed() == [ids[2], newest], "the book was not pruned while serving")
        with contextlib.closing(sqlite3.connect(data_dir / BOOK_FILE)) as book:
            assert {row[0] for row in book.execute("SELECT episode_id FROM episodes")} == {ids[2], newest}
    finally:
        second.stop()
