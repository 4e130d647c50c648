"""Shard planning and the completion rule, without Ray: what makes a rerun reuse a shard, and what does not."""
from __future__ import annotations

import json

from yolor_deploy import fs
from yolor_deploy.distributed.shards import Item, plan_shards, read_complete_record, record_path, run_key, shard_folder


def items(n: int) -> list[Item]:
    return [Item(k, f"imgs/{k:03d}.jpg", "image") for k in range(n)]


def test_shards_are_consecutive_fixed_size_runs_of_the_list():
    shards = plan_shards(items(10), 4)
    assert [[i.index for i in s.items] for s in shards] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [s.name for s in shards] == ["000000", "000001", "000002"]
    assert plan_shards(items(10), 4) == shards  # the same list and size: the same shards
    assert items(12)[11].placeholder == "i000000011"


def test_run_key_changes_with_the_model_and_each_setting():
    base = run_key("a" * 64, {"conf_thres": 0.25, "save_txt": True})
    assert base == run_key("a" * 64, {"save_txt": True, "conf_thres": 0.25})
    assert len({base, run_key("b" * 64, {"conf_thres": 0.25, "save_txt": True}),
                run_key("a" * 64, {"conf_thres": 0.3, "save_txt": True}),
                run_key("a" * 64, {"conf_thres": 0.25, "save_txt": False})}) == 4


def test_a_shard_is_complete_only_with_its_record_key_sources_and_files(tmp_path):
    shard = plan_shards(items(3), 3)[0]
    folder = shard_folder(tmp_path, shard)
    fs.write_text(folder / "i000000000.jpg", "x")
    record = {"key": "k1", "shard": shard.to_dict(), "items": [{"files": ["i000000000.jpg"]}]}
    assert read_complete_record(tmp_path, shard, "k1") is None  # no record yet: not complete
    fs.write_json(record_path(tmp_path, shard), record)
    assert read_complete_record(tmp_path, shard, "k1") == json.loads(json.dumps(record))
    assert read_complete_record(tmp_path, shard, "k2") is None  # another model or settings
    other = plan_shards([Item(0, "imgs/new.jpg", "image"), *items(3)[1:]], 3)[0]
    assert read_complete_record(tmp_path, other, "k1") is None  # the folder's listing changed
    (folder / "i000000000.jpg").unlink()
    assert read_complete_record(tmp_path, shard, "k1") is None  # a file it lists is gone
    record_path(tmp_path, shard).write_text("{truncated")
    assert read_complete_record(tmp_path, shard, "k1") is None
