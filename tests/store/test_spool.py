"""The on-disk spool: durable appends, ordered segments, torn lines, one owner at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from outdial.credentials import spool_keys
from store.settings import DatabaseSettings
from store.spool import Spool, SpoolBusyError, SpoolKeyError, spool_cipher, spool_dir


def _rows(start: int, count: int) -> list[dict[str, int]]:
    return [{"n": i} for i in range(start, start + count)]


def test_rows_come_back_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "calls", segment_rows=4)
    spool.open()
    spool.append(_rows(0, 3))
    spool.append(_rows(3, 3))  # fills the first segment past 4 rows: it is sealed
    spool.append(_rows(6, 2))
    assert spool.depth == 8
    assert len(spool.sealed_segments()) == 1
    spool.seal()
    segments = spool.sealed_segments()
    assert len(segments) == 2
    assert [r["n"] for s in segments for r in spool.read(s)] == list(range(8))
    spool.remove(segments[0])
    assert spool.depth == 2
    spool.close()


def test_reopen_finds_what_a_previous_owner_left(tmp_path: Path) -> None:
    first = Spool(tmp_path, "turns")
    first.open()
    first.append(_rows(0, 5))
    first.close()
    second = Spool(tmp_path, "turns")
    second.open()
    assert second.depth == 5
    second.append(_rows(5, 1))  # goes to a new segment, never the old one
    second.seal()
    segments = second.sealed_segments()
    assert len(segments) == 2
    assert [r["n"] for s in segments for r in second.read(s)] == list(range(6))
    second.close()


def test_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, "turns")
    spool.open()
    spool.append(_rows(0, 3))
    spool.seal()
    (segment,) = spool.sealed_segments()
    with segment.open("ab") as f:
        f.write(b'{"n": 3, "trunc')  # an append cut short by a crash
    spool.close()
    again = Spool(tmp_path, "turns")
    again.open()
    assert again.depth == 3
    assert [r["n"] for r in again.read(segment)] == [0, 1, 2]
    assert again.torn_lines == 1
    again.close()


def test_kinds_share_a_directory_without_mixing(tmp_path: Path) -> None:
    turns, calls = Spool(tmp_path, "turns"), Spool(tmp_path, "calls")
    turns.open()
    calls.open()
    turns.append(_rows(0, 2))
    calls.append(_rows(10, 1))
    turns.close()
    calls.close()
    reopened = Spool(tmp_path, "calls")
    reopened.open()
    assert reopened.depth == 1
    reopened.close()


def test_second_owner_is_refused(tmp_path: Path) -> None:
    owner = Spool(tmp_path, "turns")
    owner.open()
    with pytest.raises(SpoolBusyError, match="in use by another process"):
        Spool(tmp_path, "turns").open()
    owner.close()
    successor = Spool(tmp_path, "turns")
    successor.open()
    successor.close()


@pytest.mark.parametrize("kind", ["", "Turns", "a-b", "../x"])
def test_bad_kind_is_refused(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ValueError, match="spool kind"):
        Spool(tmp_path, kind)


def test_append_before_open_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        Spool(tmp_path, "turns").append(_rows(0, 1))


def test_spool_dir_follows_the_settings(tmp_path: Path) -> None:
    assert spool_dir(DatabaseSettings(), tmp_path) == tmp_path / "spool"
    chosen = DatabaseSettings(spool_dir=str(tmp_path / "elsewhere"))
    assert spool_dir(chosen, tmp_path) == tmp_path / "elsewhere"


def test_rows_are_encrypted_at_rest_and_read_back(tmp_path: Path) -> None:
    old_key, key = Fernet.generate_key(), Fernet.generate_key()
    plain = Spool(tmp_path, "turns")  # written before the upgrade: plain JSON lines
    plain.open()
    plain.append([{"text": "before"}])
    plain.close()
    older = Spool(tmp_path, "turns", cipher=spool_cipher([old_key]))
    older.open()
    older.append([{"text": "Hi Ann Example"}])
    older.close()
    spool = Spool(tmp_path, "turns", cipher=spool_cipher([key, old_key]))
    spool.open()
    spool.append([{"text": "owes 1,234.56"}])
    spool.seal()
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("turns-*.jsonl"))
    assert b"Ann Example" not in on_disk and b"1,234.56" not in on_disk
    read = [r["text"] for s in spool.sealed_segments() for r in spool.read(s)]
    assert read == ["before", "Hi Ann Example", "owes 1,234.56"]
    spool.close()

    stranger = Spool(tmp_path, "turns", cipher=spool_cipher([Fernet.generate_key()]))
    stranger.open()
    with pytest.raises(SpoolKeyError, match="none of the spool keys"):
        [stranger.read(s) for s in stranger.sealed_segments()]
    stranger.close()
    keyless = Spool(tmp_path, "turns")
    keyless.open()
    with pytest.raises(SpoolKeyError, match="configure its key"):
        [keyless.read(s) for s in keyless.sealed_segments()]
    keyless.close()


def test_the_spool_key_is_made_once_and_a_credential_comes_first(tmp_path: Path) -> None:
    made = spool_keys(tmp_path, {})
    assert len(made) == 1 and (tmp_path / "spool.key").stat().st_mode & 0o777 == 0o600
    assert spool_keys(tmp_path, {}) == made
    credentials = tmp_path / "creds"
    credentials.mkdir()
    (credentials / "spool-key").write_bytes(Fernet.generate_key() + b"\n")
    keys = spool_keys(tmp_path, {"CREDENTIALS_DIRECTORY": str(credentials)})
    assert keys[1:] == made and keys[0] == (credentials / "spool-key").read_bytes().strip()
