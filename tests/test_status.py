"""The status file between the running agent and `mouseguard status`."""

import json
import os
import stat
import subprocess
import sys
import time

import pytest

from agent import states
from agent.status import (
    STALE_SECONDS,
    format_status,
    pid_alive,
    read_status,
    write_status,
)

SINCE = time.mktime((2024, 5, 6, 14, 2, 0, 0, 0, -1))  # local 14:02


def alive(pid):
    return True


def dead(pid):
    return False


def write(path, now, **changes):
    values = dict(state=states.PROTECTED, since=SINCE, blocks_scored=412, last_score=0.9123, pid=4242,
                  detail="", model="/m/alice")
    values.update(changes)
    write_status(path, **values, now=now)
    return read_status(path)


def test_write_read_round_trip(tmp_path):
    path = tmp_path / "status.json"
    write_status(path, states.SUSPICIOUS, SINCE, 7, 0.41, 99, detail="score falling", model="/m", now=SINCE + 5)
    status = read_status(path)
    assert status == {
        "version": 1, "state": "suspicious", "since": SINCE, "updated": SINCE + 5, "blocks_scored": 7,
        "last_score": 0.41, "pid": 99, "detail": "score falling", "model": "/m",
    }
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # atomic: no temporary left


def test_updated_defaults_to_now(tmp_path):
    before = time.time()
    write_status(tmp_path / "s.json", states.LEARNING, before, 0, None, os.getpid())
    status = read_status(tmp_path / "s.json")
    assert before <= status["updated"] <= time.time()
    assert status["last_score"] is None


def test_unknown_state_is_refused(tmp_path):
    with pytest.raises(ValueError):
        write_status(tmp_path / "s.json", "happy", SINCE, 0, None, 1)


@pytest.mark.parametrize("content", [None, "", "{not json", "[1, 2]", b"\xff\xfe"])
def test_read_missing_or_foreign_is_none(tmp_path, content):
    path = tmp_path / "status.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    assert read_status(path) is None


def test_format_running(tmp_path):
    status = write(tmp_path / "s.json", now=SINCE + 175)
    text = format_status(status, now=SINCE + 180, is_alive=alive)
    lines = text.splitlines()
    assert lines[0] == "protected since 14:02 (3 min ago), 412 blocks scored, last rolling score 0.91"
    assert "  model: /m/alice" in lines
    assert "  agent pid 4242" in lines


def test_format_details(tmp_path):
    status = write(tmp_path / "s.json", now=SINCE, state=states.NOT_PROTECTING, blocks_scored=1,
                   last_score=None, detail="mouse hook stopped", model="")
    lines = format_status(status, now=SINCE + 2, is_alive=alive).splitlines()
    assert lines[0] == "not protecting since 14:02 (just now), 1 block scored, no rolling score yet"
    assert lines[1] == "  mouse hook stopped"
    assert not any("model:" in line for line in lines)


def test_format_older_start_shows_date(tmp_path):
    status = write(tmp_path / "s.json", now=SINCE + 2 * 86400)
    first = format_status(status, now=SINCE + 2 * 86400 + 1, is_alive=alive).splitlines()[0]
    assert first.startswith("protected since 2024-05-06 14:02 (2 days ago)")


def test_dead_pid_is_not_running(tmp_path):
    status = write(tmp_path / "s.json", now=SINCE + 60)
    text = format_status(status, now=SINCE + 90, is_alive=dead)
    assert text == "not running (last seen 14:03, 30 s ago, protected)"


def test_stale_file_is_not_running_even_if_pid_exists(tmp_path):
    status = write(tmp_path / "s.json", now=SINCE)
    text = format_status(status, now=SINCE + STALE_SECONDS + 60, is_alive=alive)
    assert text.startswith("not running (last seen 14:02, 3 min ago, protected; process 4242 exists")
    assert "\n" not in text


def test_no_status_is_not_running():
    assert format_status(None, now=time.time()).startswith("not running (")
    assert format_status({"state": "protected"}, now=time.time()).startswith("not running (")


def test_real_pids(tmp_path):
    assert pid_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)
    assert not pid_alive(0) and not pid_alive(-1)

    now = time.time()
    write_status(tmp_path / "s.json", states.PROTECTED, now - 10, 3, 0.8, os.getpid(), now=now)
    assert format_status(read_status(tmp_path / "s.json"), now=now + 1).startswith("protected since ")
    write_status(tmp_path / "s.json", states.PROTECTED, now - 10, 3, 0.8, child.pid, now=now)
    assert format_status(read_status(tmp_path / "s.json"), now=now + 1).startswith("not running (last seen ")


def test_file_is_plain_json(tmp_path):
    write(tmp_path / "s.json", now=SINCE)
    assert json.loads((tmp_path / "s.json").read_text())["state"] == "protected"
