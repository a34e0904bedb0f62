"""An inbox folder deleted while the daemon runs, then created again."""

from __future__ import annotations

import shutil

import pytest

from daemon.errors import InboxLockedError
from daemon.locks import LOCK_NAME, FolderLock
from tests.daemon.helpers import make_settings, start_service, wait_until, write_image

pytestmark = pytest.mark.usefixtures("no_leaked_threads")


def _logged(caplog, text: str) -> bool:
    return any(text in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_deleted_inbox_is_locked_and_watched_again(served_registry, folders, caplog, polling):
    inbox, output = folders
    caplog.set_level("INFO", logger="daemon")
    running = start_service(served_registry, make_settings(inbox, output, polling=polling))
    try:
        write_image(inbox / "before.jpg", "red", seed=1)
        running.wait_for_files(1)

        shutil.rmtree(inbox)
        wait_until(lambda: _logged(caplog, "was deleted or is no longer a folder"))
        assert running.service.inbox_missing

        inbox.mkdir()
        wait_until(lambda: _logged(caplog, "exists again"))
        assert (inbox / LOCK_NAME).is_file()
        with pytest.raises(InboxLockedError, match="in use by another sortbox daemon"):
            FolderLock(inbox, "inbox").acquire()
        assert not running.service.inbox_missing

        write_image(inbox / "after.jpg", "blue", seed=2)
        outcomes = running.wait_for_files(1)
    finally:
        summary = running.stop()

    assert [row.file_name for row in outcomes[0].rows] == ["after.jpg"]
    assert (output / "red" / "before.jpg").is_file()
    assert (output / "blue" / "after.jpg").is_file()
    assert summary.files == 2
    errors = [record for record in caplog.records if "inbox" in record.getMessage()
              and record.levelname == "ERROR"]
    assert len(errors) == 1


def test_replaced_inbox_is_taken_over(served_registry, folders, caplog, tmp_path):
    inbox, output = folders
    caplog.set_level("INFO", logger="daemon")
    running = start_service(served_registry, make_settings(inbox, output))
    try:
        # The old folder stays alive under another name, so its inode number cannot be reused
        # by the new folder. A check may run between the two renames, so either message counts.
        replacement = tmp_path / "replacement"
        replacement.mkdir()
        inbox.rename(tmp_path / "old-inbox")
        replacement.rename(inbox)
        wait_until(
            lambda: _logged(caplog, "was replaced by a new folder") or _logged(caplog, "exists again")
        )
        assert (inbox / LOCK_NAME).is_file()

        write_image(inbox / "new.jpg", "green", seed=3)
        outcomes = running.wait_for_files(1)
    finally:
        running.stop()

    assert [row.file_name for row in outcomes[0].rows] == ["new.jpg"]
    assert (output / "green" / "new.jpg").is_file()
