"""`predict --engine ray` on a real two-node Ray cluster (`ray.cluster_utils.Cluster`, one process tree): the
local engine's files byte for byte, every image exactly once through a killed worker, and a resumed rerun."""
from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import cv2
import pytest

from helpers.runtime_data import write_video
from helpers.trained_onnx import trained_onnx
from yolor_deploy.assets import val_images
from yolor_deploy.cli.main import main
from yolor_deploy.distributed import predict_with_ray
from yolor_deploy.distributed.shards import SHARDS_DIR

ray = pytest.importorskip("ray")
OUTPUTS = ["--save-json", "--save-txt", "--save-conf"]
DETECTOR = {"threads": 1}  # the local run below uses --threads 1 too: the same kernels, the same bits


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of one CPU each; this process is the driver."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    ray.init(address=c.address, logging_level="ERROR", log_to_driver=False)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """10 val images, plus a PNG sharing a stem with a JPEG (named 00002_2 locally), an unreadable JPEG whose
    PNG namesake follows it (the skipped file claims no name, so the PNG is 00010), and a 4-frame video."""
    folder = tmp_path_factory.mktemp("imgs")
    val = sorted(val_images().glob("*.jpg"))
    for p in val[:10]:
        shutil.copy(p, folder / p.name)
    cv2.imwrite(str(folder / "00002.png"), cv2.imread(str(val[11])))
    (folder / "00010.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cv2.imwrite(str(folder / "00010.png"), cv2.imread(str(val[10])))
    write_video(folder / "clip.avi", n=4)
    return folder


@pytest.fixture(scope="module")
def local_run(images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["predict", str(trained_onnx()), str(images), "--save-dir", str(out), "--threads", "1", "-q",
                 *OUTPUTS]) == 0
    return out


def files(folder: Path) -> dict[str, bytes]:
    """Every output file by relative path, the shards excepted."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and SHARDS_DIR not in p.relative_to(folder).parts}


def run_ray(images, save_dir: Path, detector=None, **kw):
    kw = {"save_txt": True, "save_conf": True, "save_json": True, "shard_size": 3, "num_workers": 2, **kw}
    return predict_with_ray(trained_onnx(), [images], save_dir, detector or DETECTOR, progress=False, **kw)


def test_cli_ray_engine_writes_the_local_engines_files(cluster, images, local_run, tmp_path, capsys):
    local = files(local_run)
    assert {"00002.jpg", "00002_2.png", "00010.png", "predictions.json", "labels/00002_2.txt"} <= set(local)
    assert {"clip.mp4", "clip.json", "labels/clip_3.txt"} <= set(local)
    assert "00010.jpg" not in local and len([k for k in local if k.startswith("labels/")]) == 12 + 4
    capsys.readouterr()
    out = tmp_path / "ray"
    assert main(["predict", str(trained_onnx()), str(images), "--save-dir", str(out), "--engine", "ray",
                 "--ray-address", cluster.address, "--num-workers", "2", "--shard-size", "3", "--threads", "1",
                 *OUTPUTS]) == 0
    captured = capsys.readouterr()
    assert files(out) == local  # same names, same bytes: annotated images, labels, predictions.json
    assert re.search(r"warning: .*00010\.jpg: cannot decode image .*; skipped", captured.err)
    table = captured.out.replace(" ", "")
    assert "shardsrun/reused│5/0" in table and "workersxthreads│2x1" in table and "images/frames│16" in table


def test_killed_worker_still_gives_every_image_exactly_once(cluster, images, local_run, tmp_path):
    killed: list[int] = []

    def kill_first_worker(summary):
        if not killed:  # the worker that finished the first shard holds the next one(s) when it dies
            killed.append(summary["worker_pid"])
            os.kill(summary["worker_pid"], signal.SIGKILL)

    result = run_ray(images, tmp_path / "ray", shard_size=1, on_shard_done=kill_first_worker)
    assert killed and len(result.worker_pids) >= 3  # two workers, and the killed one restarted under a new pid
    assert result.shards_run == 14 and result.frames == 16
    assert files(tmp_path / "ray") == files(local_run)


def test_rerun_skips_complete_shards(cluster, images, local_run, tmp_path):
    out = tmp_path / "ray"
    first = run_ray(images, out)
    assert (first.shards_run, first.shards_reused) == (5, 0)
    records = sorted((out / SHARDS_DIR).glob("*.json"))
    before = {p.name: p.stat().st_mtime_ns for p in records}
    records[2].unlink()  # as if the run had been stopped before that shard finished
    (out / "predictions.json").unlink()
    second = run_ray(images, out)
    assert (second.shards_run, second.shards_reused) == (1, 4)
    after = {p.name: p.stat().st_mtime_ns for p in sorted((out / SHARDS_DIR).glob("*.json"))}
    assert [n for n in after if after[n] != before[n]] == [records[2].name]  # only that shard was computed
    assert files(out) == files(local_run)
    third = run_ray(images, out)  # all complete: a merge only, no Ray work
    assert (third.shards_run, third.shards_reused, third.workers) == (0, 5, 0)


def test_file_uri_source_reads_through_pyarrow(cluster, images, local_run, tmp_path):
    out = tmp_path / "ray"
    result = run_ray(f"file://{images}", out, num_workers=1, shard_size=13)
    assert result.frames == 12 and result.sources == 13  # images only: a video is read from a local path
    assert files(out) == {k: v for k, v in files(local_run).items() if "clip" not in k}


def test_throughput_mode_workers_keep_calls_in_flight_and_write_the_same_files(cluster, images, local_run, tmp_path):
    """`--mode throughput` on Ray: each worker's Detector keeps 2 calls in flight (its one CPU shared, 1 thread
    each: the local run's kernels, so the same bytes)."""
    summaries: list[dict] = []
    result = run_ray(images, tmp_path / "ray", detector={"threads": 1, "mode": "throughput"},
                     on_shard_done=summaries.append)
    assert result.shards_run == 5 and {s["streams"] for s in summaries} == {2}
    assert files(tmp_path / "ray") == files(local_run)


def test_worker_options_share_the_workers_cpus_among_the_streams():
    from yolor_deploy.distributed.cluster import PoolSize
    from yolor_deploy.distributed.ray_predict import worker_detector_options

    assert worker_detector_options({"conf_thres": 0.3}, PoolSize(2, 4.0, 4)) == {"conf_thres": 0.3, "threads": 4}
    assert worker_detector_options({"mode": "throughput"}, PoolSize(2, 4.0, 4)) == \
        {"mode": "throughput", "streams": 4, "threads": 1}
    assert worker_detector_options({"mode": "throughput", "streams": 2}, PoolSize(1, 8.0, 8)) == \
        {"mode": "throughput", "streams": 2, "threads": 4}
    assert worker_detector_options({"mode": "throughput"}, PoolSize(4, 0.5, 1)) == \
        {"mode": "throughput", "streams": 2, "threads": 1}
