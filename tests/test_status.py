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
    EXIT_ACTED,
    EXIT_NOT_PROTECTING,
    EXIT_NOT_RUNNING,
    EXIT_PROTECTED,
    STALE_SECONDS,
    assess,
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
    extra = values.pop("extra", None)
    write_status(path, **values, now=now, extra=extra)
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


def test_read_missing_is_none(tmp_path):
    assert read_status(tmp_path / "status.json") is None
    assert format_status(None, now=time.time()).startswith("not running (no status file")


NOW = time.time()


@pytest.mark.parametrize("content, why", [
    ("", "not JSON"),
    ("{not json", "not JSON"),
    ("[" * 100_000 + "]" * 100_000, "not JSON"),  # json raises RecursionError
    ("[1, 2]", "not a JSON object"),
    (b"\xff\xfe", "not UTF-8 text"),
    ('{"updated": 1e300}', "'updated' is not a time"),  # time.localtime overflows
    ('{"updated": NaN}', "'updated' is not a time"),
    ('{"updated": "now"}', "'updated' is not a time"),
    ('{"updated": 1' + "0" * 400 + "}", "'updated' is not a time"),  # too large for a float
    ('{"state": "protected"}', "'updated' is missing"),
    (f'{{"updated": {NOW}, "pid": 1, "blocks_scored": "many"}}', "'blocks_scored' is not a count"),
    (f'{{"updated": {NOW}, "pid": 1, "blocks_scored": -1}}', "'blocks_scored' is not a count"),
    (f'{{"updated": {NOW}, "pid": {10**30}}}', "'pid' is not a process id"),  # os.kill overflows
    (f'{{"updated": {NOW}, "pid": true}}', "'pid' is not a process id"),
    (f'{{"updated": {NOW}, "pid": 1, "since": 1e300}}', "'since' is not a time"),
    (f'{{"updated": {NOW}, "pid": 1, "last_score": "high"}}', "'last_score' is not a score"),
    (f'{{"updated": {NOW}, "pid": 1, "last_score": {10**400}}}', "'last_score' is not a score"),
    (f'{{"updated": {NOW}, "pid": 1, "state": ["protected"]}}', "'state' is not text"),
    (f'{{"updated": {NOW}, "pid": 1, "detail": {{"a": 1}}}}', "'detail' is not text"),
])
def test_unreadable_file_is_said_so(tmp_path, content, why):
    path = tmp_path / "status.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    text = format_status(read_status(path), now=NOW, is_alive=alive)
    assert text == f"unknown (the status file {path} is unreadable: {why})"


def test_folder_in_place_of_the_file(tmp_path):
    (tmp_path / "status.json").mkdir()
    text = format_status(read_status(tmp_path / "status.json"), now=NOW)
    assert text.startswith(f"unknown (the status file {tmp_path / 'status.json'} is unreadable: ")
    assert "\n" not in text


@pytest.mark.parametrize("content", ['{"updated": 1e300}', "{not json", None])
def test_status_command_on_unreadable_file(tmp_path, content):
    path = tmp_path / "state" / "status.json"
    if content is None:
        path.mkdir(parents=True)
    else:
        path.parent.mkdir()
        path.write_text(content)
    out = subprocess.run([sys.executable, "-m", "agent", "status"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "MOUSEGUARD_HOME": str(tmp_path)})
    # Same exit as "not running": the command reports, it did not fail.
    assert (out.returncode, out.stderr) == (EXIT_NOT_RUNNING, "")
    assert out.stdout.startswith(f"unknown (the status file {path} is unreadable: ") and out.stdout.count("\n") == 2
    assert out.stdout.splitlines()[1] == f"  log: {tmp_path / 'logs' / 'mouseguard.log'}"


def test_format_running(tmp_path):
    status = write(tmp_path / "s.json", now=SINCE + 175, model=str(tmp_path))
    text = format_status(status, now=SINCE + 180, is_alive=alive)
    lines = text.splitlines()
    assert lines[0] == "protected since 14:02 (3 min ago), 412 blocks scored, last rolling score 0.91"
    assert f"  model: {tmp_path}" in lines
    assert "  agent pid 4242" in lines


def test_a_model_not_there_yet_is_not_named_as_if_it_were(tmp_path):
    # before: "model: /home/.../models/alice" for a user not enrolled yet, a folder that does not exist
    status = write(tmp_path / "s.json", now=SINCE, state=states.LEARNING, model=str(tmp_path / "alice"))
    lines = format_status(status, now=SINCE + 1, is_alive=alive).splitlines()
    assert f"  model: none yet (enrolment writes it to {tmp_path / 'alice'})" in lines


def test_no_score_shown_during_the_grace_period_after_a_lock(tmp_path):
    # before: the rolling score that locked stayed on show, frozen, while nothing was judged
    status = write(tmp_path / "s.json", now=SINCE, state=states.LOCKED, last_score=None,
                   detail="locked: mean P(genuine) 0.210 < 0.500", extra={"grace_until": SINCE + 60})
    first = format_status(status, now=SINCE + 1, is_alive=alive).splitlines()[0]
    assert first.endswith("no decision until 14:03 (grace period after acting)") and "0.91" not in first
    assert assess(status, SINCE + 1, is_alive=alive)[0] == EXIT_ACTED


@pytest.mark.parametrize("state, code", [
    (states.PROTECTED, EXIT_PROTECTED), (states.SUSPICIOUS, EXIT_PROTECTED), (states.LOCKED, EXIT_ACTED),
    (states.ALERTED, EXIT_ACTED), (states.PAUSED, EXIT_NOT_PROTECTING), (states.LEARNING, EXIT_NOT_PROTECTING),
    (states.NOT_ENROLLED, EXIT_NOT_PROTECTING), (states.NOT_PROTECTING, EXIT_NOT_PROTECTING),
])
def test_exit_codes(tmp_path, state, code):
    status = write(tmp_path / "s.json", now=SINCE, state=state)
    assert assess(status, SINCE + 1, is_alive=alive)[0] == code
    assert assess(status, SINCE + 1, is_alive=dead)[0] == EXIT_NOT_RUNNING
    assert assess(None, SINCE)[0] == EXIT_NOT_RUNNING
    assert len({EXIT_PROTECTED, EXIT_NOT_PROTECTING, EXIT_NOT_RUNNING, EXIT_ACTED, 2}) == 5  # 2: bad input


def test_stopped_says_why(tmp_path):
    status = write(tmp_path / "s.json", now=SINCE, state=states.NOT_PROTECTING,
                   extra={"stopped": "refused to start: no X display"})
    text = format_status(status, now=SINCE + 30, is_alive=alive)
    assert text == "not running: refused to start: no X display (14:02, 30 s ago)"


def test_trial_line(tmp_path):
    status = write(tmp_path / "s.json", now=SINCE, extra={"trial_hours_left": 5.25})
    assert "  trial: alert only, 5.2 h of active use left, then it locks" in \
        format_status(status, now=SINCE + 1, is_alive=alive).splitlines()


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


def test_a_file_from_the_future_is_not_running(tmp_path):
    # written under a clock set far ahead, or forged: a live pid alone does not make it current
    status = write(tmp_path / "s.json", now=SINCE + 86400)
    assert format_status(status, now=SINCE, is_alive=alive).startswith("not running (")
    near = write(tmp_path / "n.json", now=SINCE + 5)  # a few seconds of clock skew is fine
    assert format_status(near, now=SINCE, is_alive=alive).startswith("protected")


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
