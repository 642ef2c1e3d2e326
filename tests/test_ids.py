import os
import uuid

import pytest

from broker.ids import random_uuid


def test_ids_are_version_4_uuids_and_do_not_repeat_across_blocks() -> None:
    ids = [random_uuid() for _ in range(2000)]  # several blocks of 256
    assert all(i.version == 4 and i.variant == uuid.RFC_4122 for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_the_ids_left_in_its_parents_block() -> None:
    random_uuid()  # a block is half used when the process forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, b"".join(random_uuid().bytes for _ in range(8)))
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 16 * 8)
    os.close(read)
    parent = b"".join(random_uuid().bytes for _ in range(8))
    assert len(child) == 16 * 8
    assert {child[i : i + 16] for i in range(0, 128, 16)}.isdisjoint({parent[i : i + 16] for i in range(0, 128, 16)})
