"""A config, manifest or model change seen while the agent runs locks first (issue 19, item 3):
a real agent under Xvfb with its real heartbeat; only the OS lock is a recording fake."""

import shutil

import pytest

from agent import states
from agent.config import Config
from agent.responses.actor import Actor
from agent.runner import Agent
from agent.tamper_watch import FileWatch, model_files
from tests.fakes import FakeLocker, RecordingTray
from tests.test_enrolled import set_manifest_threshold
from tests.waiting import wait_for


def test_a_file_written_replaced_added_or_removed_is_seen(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    config = tmp_path / "config.toml"
    watch = FileWatch([config, *model_files(folder)])
    assert watch.changed() == []
    config.write_text("[agent]\n")  # appeared
    assert watch.changed() == [config]
    watch.accept()
    (folder / "model.onnx.data").write_bytes(b"w")  # added beside the model: the folder changes
    assert watch.changed() == [folder]
    watch.accept()
    shutil.rmtree(folder)
    assert watch.changed() == [folder, folder / "manifest.json"]


@pytest.fixture
def watched_agent(tmp_path, xserver, synth_model):
    """An agent protecting with a copy of alice's model, watching its own config.toml."""
    model_dir = tmp_path / "models" / "alice"
    shutil.copytree(synth_model, model_dir)
    config_file = tmp_path / "config.toml"
    config_file.write_text('[agent]\nuser = "alice"\n')
    tray, locker = RecordingTray(), FakeLocker()
    agent = Agent(Config(), tray, Actor("lock", locker, tray.notify), model_dir=model_dir, user="alice",
                  status_path=tmp_path / "status.json", recordings_dir=tmp_path / "rec", heartbeat=0.3,
                  watched_files=[config_file])
    agent.start()
    try:
        wait_for(lambda: agent.hook_ok and agent.state == states.PROTECTED, what="protected")
        yield agent, locker, config_file, model_dir
    finally:
        agent.stop()


def locks_once_for(agent, locker, path):
    wait_for(lambda: locker.calls >= 1, timeout=5, what=f"a lock for the change of {path}")
    wait_for(lambda: agent.state == states.LOCKED, what="the locked state")
    assert f"{path} changed while mouseguard runs" in agent.detail
    import time

    time.sleep(1.0)
    assert locker.calls == 1  # once per change, not at every heartbeat


def test_a_config_edit_while_running_locks(watched_agent):
    # before: `action = "log"` written while the agent ran took effect at the next start, unasked
    agent, locker, config_file, _ = watched_agent
    config_file.write_text('[agent]\nuser = "alice"\naction = "log"\n')
    locks_once_for(agent, locker, config_file)


def test_a_manifest_edit_while_running_locks(watched_agent):
    agent, locker, _, model_dir = watched_agent
    set_manifest_threshold(model_dir, 0.0)
    locks_once_for(agent, locker, model_dir / "manifest.json")
