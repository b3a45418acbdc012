"""Reading a rules folder: plain files inside it only, bounded, never blocking; the digest
names the content read."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest
from support.rulesets import configmap_mount, copy_rules

from escalator.config import default_rules_dir
from escalator.errors import PolicyError
from escalator.policy import load_policy
from escalator.ruleset.folder import (
    MAX_ENTRIES,
    MAX_FILE_BYTES,
    MAX_FILES,
    RulesFolder,
    read_folder,
)


def refused(folder: Path) -> list[str]:
    """The problems load_policy reports for a folder, as text (fails if it loads)."""
    with pytest.raises(PolicyError) as info:
        load_policy(folder)
    return [str(p) for p in info.value.problems]


def read_within(folder: Path, seconds: float = 10) -> RulesFolder:
    """read_folder on another thread; fails if it has not returned within `seconds`."""
    result: list[RulesFolder] = []
    reader = threading.Thread(target=lambda: result.append(read_folder(folder)), daemon=True)
    reader.start()
    reader.join(seconds)
    assert not reader.is_alive(), f"reading {folder} blocked for {seconds} s"
    return result[0]


def test_the_digest_names_the_content_wherever_and_however_it_is_laid_out(
        tmp_path: Path) -> None:
    shipped = default_rules_dir()
    names = sorted([p.name for p in shipped.glob("*.yaml")]
                   + [f"lexicons/{p.name}" for p in (shipped / "lexicons").glob("*.yaml")])
    expected = hashlib.sha256()
    for name in names:
        data = (shipped / name).read_bytes()
        expected.update(name.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    digest = "sha256:" + expected.hexdigest()

    policy = load_policy(shipped)
    assert policy.ruleset.digest == digest
    policy.close()
    assert read_folder(copy_rules(tmp_path / "copy")).digest == digest
    mounted = read_folder(configmap_mount(tmp_path / "mount"))
    assert (mounted.digest, mounted.atomic) == (digest, True)


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    os.mkfifo(rules / "pipe.yaml")
    os.mkfifo(rules / "lexicons" / "pipe.yaml")
    folder = read_within(rules)
    assert "named pipe" in folder.refused["pipe.yaml"].why
    assert "named pipe" in folder.refused["lexicons/pipe.yaml"].why
    assert folder.refused["pipe.yaml"].code == "file_unreadable"
    problems = refused(rules)
    assert any(p.startswith("pipe.yaml:") and "only plain files" in p for p in problems)
    assert any(p.startswith(f"{rules}/lexicons/pipe.yaml:") for p in problems)


def test_sockets_folders_and_links_to_devices_are_refused(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    (rules / "folder.yaml").mkdir()
    (rules / "device.yaml").symlink_to("/dev/zero")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(rules / "socket.yaml"))
        folder = read_within(rules)
    assert "is a folder, not a plain file" in folder.refused["folder.yaml"].why
    assert "outside the rules folder" in folder.refused["device.yaml"].why
    assert "is a socket" in folder.refused["socket.yaml"].why
    assert set(folder.files) == set(read_folder(default_rules_dir()).files)


def test_links_are_followed_only_inside_the_folder(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    before = read_folder(rules).digest
    # Inside: a file kept in a subfolder and linked from the top is read as usual.
    (rules / "parts").mkdir()
    os.replace(rules / "loops.yaml", rules / "parts" / "loops.yaml")
    (rules / "loops.yaml").symlink_to("parts/loops.yaml")
    assert read_folder(rules).digest == before
    load_policy(rules).close()

    (tmp_path / "elsewhere.yaml").write_text("rules: []\n")
    (rules / "extra.yaml").symlink_to("../elsewhere.yaml")
    (rules / "lexicons" / "system.yaml").symlink_to("/etc/passwd")
    (rules / "gone.yaml").symlink_to("parts/gone.yaml")
    (rules / "loop.yaml").symlink_to("loop.yaml")
    problems = refused(rules)
    assert any(p.startswith("extra.yaml:") and f"link to {tmp_path}/elsewhere.yaml, outside "
               "the rules folder" in p for p in problems)
    assert any(p.startswith(f"{rules}/lexicons/system.yaml:") and "/etc/passwd" in p
               for p in problems)
    assert any(p.startswith("gone.yaml:") and "does not exist" in p for p in problems)
    assert any(p.startswith("loop.yaml:") and "cannot be read" in p for p in problems)
    # Nothing outside was read, so nothing outside is in the digest.
    assert read_folder(rules).digest == before


def test_a_lexicons_folder_leading_out_is_refused_once(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    shutil.move(rules / "lexicons", tmp_path / "shared-lexicons")
    (rules / "lexicons").symlink_to(tmp_path / "shared-lexicons")
    problems = refused(rules)
    assert problems == [f"{rules}/lexicons: is a link to {tmp_path}/shared-lexicons, outside "
                        "the rules folder; only files inside the folder are read (copy the "
                        "file in instead)"]


def test_files_and_folders_too_large_are_refused_before_they_are_read(tmp_path: Path) -> None:
    rules = copy_rules(tmp_path / "rules")
    with (rules / "huge.yaml").open("wb") as huge:
        huge.truncate(10 * 1024**3)  # 10 GiB (sparse): refused by its size, never read
    (rules / "big.yaml").write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    folder = read_within(rules)
    assert folder.refused["huge.yaml"].why == ("is 10737418240 bytes; a rule or lexicon file "
                                               "may be at most 1024 KiB")
    assert "may be at most 1024 KiB" in folder.refused["big.yaml"].why
    assert (folder.refused["big.yaml"].code, folder.refused["big.yaml"].limit) == (
        "budget", "file_bytes")
    (rules / "huge.yaml").unlink()
    (rules / "big.yaml").unlink()

    for n in range(5):
        (rules / f"comments-{n}.yaml").write_bytes(b"#" * MAX_FILE_BYTES)
    assert "more than 4 MiB together" in read_folder(rules).refused[""].why
    for n in range(5):
        (rules / f"comments-{n}.yaml").unlink()

    for n in range(MAX_FILES):
        (rules / f"note-{n:03}.yaml").write_text("# empty\n")
    problems = refused(rules)
    assert f"{rules}: holds more than {MAX_FILES} rule and lexicon files; remove some" \
        in problems
    for n in range(MAX_ENTRIES):
        (rules / f"other-{n:04}.txt").touch()
    assert "holds more than 1000 names" in read_within(rules).refused[""].why


def test_a_configmap_mount_is_read_from_one_generation(tmp_path: Path) -> None:
    mount = configmap_mount(tmp_path / "mount")
    # Right after a swap the kubelet may not yet have removed the link of a key the new
    # generation dropped: it dangles, and is not read.
    (mount / "dropped.yaml").symlink_to("..data/dropped.yaml")
    folder = read_folder(mount)
    assert folder.atomic and not folder.refused
    assert folder.files.keys() == read_folder(default_rules_dir()).files.keys()

    (tmp_path / "..outside").mkdir()
    (mount / "..data").unlink()
    (mount / "..data").symlink_to(tmp_path / "..outside")
    assert "outside the rules folder" in read_folder(mount).refused["..data"].why
