"""The sandbox leaves nothing in the user's folder: moto's request recorder, turned on, writes outside it."""

import urllib.request

import boto3


def test_the_sandbox_recorder_never_writes_into_the_working_folder(tmp_path, monkeypatch):
    from moto.moto_api import recorder

    from awsprac.engine.sandbox import Sandbox

    import tempfile

    work, temp = tmp_path / "project", tmp_path / "tmp"
    work.mkdir(), temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    # What moto holds when it was imported without MOTO_RECORDER_FILEPATH: a path in the current folder.
    monkeypatch.setattr(recorder, "_location", "moto_recording")
    box = Sandbox.start(set_env=False)
    try:
        for action in ("reset-recording", "start-recording"):
            urllib.request.urlopen(urllib.request.Request(f"{box.endpoint}/moto-api/recorder/{action}", data=b"", method="POST"), timeout=30)
        sts = boto3.client("sts", region_name="ap-northeast-1", endpoint_url=box.endpoint)
        assert sts.get_caller_identity()["Account"]
        urllib.request.urlopen(urllib.request.Request(f"{box.endpoint}/moto-api/recorder/stop-recording", data=b"", method="POST"), timeout=30)
        recorded = urllib.request.urlopen(f"{box.endpoint}/moto-api/recorder/download-recording", timeout=30).read()
    finally:
        box.stop()
    assert recorded.strip()  # it did record...
    assert list(work.iterdir()) == []  # ...but not in the working folder
    assert [p.suffix for p in temp.iterdir()] == [".recording"]
