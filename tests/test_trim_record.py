"""compare.trim_record: a benchmark record cut down to the rows a lesson compares."""

from __future__ import annotations

import pytest

from clusterlab.compare import trim_record

RECORD = """(no cuda record yet; showing the latest of any device)
recorded in data/benchmarks/x.json by `python -m clusterlab.bench`
device: CPU: test, 2 threads   cpu: CPU: test   torch threads: 2
versions: python 3.11, numpy 2.4
date: 2026-11-23T18:18:10Z

k-means  n=100 d=2 k=5, 10 iterations, same init; ratio = time / clusterlab-torch
| engine | device | precision | median | first call | ratio | inertia |
|---|---|---|---|---|---|---|
| clusterlab-torch | CPU |  | 1 ms | 2 ms | 1.00 | 7.5 |
| clusterlab-keops | CPU |  | 9 ms | 9 ms | 9.00 | 7.5 |
| faiss | CPU |  | 3 ms | 3 ms | 3.00 | 7.5 |
note, faiss: a note

k-means  n=1,000 d=64 k=256, 10 iterations, same init; ratio = time / clusterlab-torch
| engine | device | precision | median | first call | ratio | inertia |
|---|---|---|---|---|---|---|
| clusterlab-torch | CPU |  | 2 ms | 2 ms | 1.00 | 8.5 |
| faiss | CPU |  | 4 ms | 4 ms | 2.00 | 8.5 |
"""


def test_keeps_the_compared_rows_and_the_tables_that_have_them():
    out = trim_record(RECORD, ("clusterlab-torch", "clusterlab-keops")).splitlines()
    assert out[:3] == RECORD.splitlines()[:3]  # which record, where it ran
    assert not any(line.startswith(("versions", "date", "note")) for line in out)
    rows = [line.split("|")[1].strip() for line in out if line.startswith("| c")]
    assert rows == ["clusterlab-torch", "clusterlab-keops"]
    assert sum(line.startswith("k-means") for line in out) == 1  # d=64 has no keops row
    assert out[4].startswith("k-means  n=100 d=2") and out[5].startswith("| engine |")


def test_all_tables_with_two_engines():
    out = trim_record(RECORD, ["clusterlab-torch", "faiss"])
    assert out.count("| faiss |") == 2 and "keops" not in out


def test_no_table_gives_the_text_back():
    assert trim_record("no benchmark recorded in data yet", ("faiss",)) == (
        "no benchmark recorded in data yet"
    )


@pytest.mark.parametrize(
    ("text", "engines", "message"),
    [(None, ("faiss",), "text must be a str"), (RECORD, "faiss", "engines must be a sequence")],
)
def test_bad_input(text, engines, message):
    with pytest.raises(TypeError, match=message):
        trim_record(text, engines)
