"""GroupLens loader, download verification, splits."""

import hashlib
import zipfile

import numpy as np
import pytest

from recsys.data import DataFormatError, download_movielens, load_movielens
from recsys.split import PROTOCOLS, split, validation_split
from recsys.synthetic import write_synthetic


def test_loads_synthetic_in_grouplens_format(movielens):
    assert set(movielens.ratings.columns) == {"user_id", "item_id", "rating", "timestamp"}
    assert movielens.ratings["rating"].between(1, 5).all()
    assert (movielens.movies["year"] > 1900).all()
    assert len(movielens.fingerprint()) == 16


def test_missing_directory_and_file_are_named(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        load_movielens(tmp_path / "nope")
    with pytest.raises(DataFormatError, match="ratings.dat: file missing"):
        load_movielens(tmp_path)


def test_malformed_line_names_file_and_line(tmp_path):
    d = write_synthetic(tmp_path / "d", n_users=10, n_items=30, seed=1)
    lines = (d / "ratings.dat").read_text(encoding="latin-1").splitlines()
    lines[2] = "1::2::3"  # third line: a field short
    (d / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match=r"ratings.dat:3: expected 4"):
        load_movielens(d)
    lines[2] = "1::x::3::978300760"
    (d / "ratings.dat").write_text("\n".join(lines) + "\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match=r"ratings.dat:3: field 'item_id' is not an integer"):
        load_movielens(d)


def _zip_of(src, tmp_path):
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in src.iterdir():
            zf.write(f, f"ml-1m/{f.name}")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_download_verifies_md5(tmp_path, synthetic_dir):
    archive, md5 = _zip_of(synthetic_dir, tmp_path)
    with pytest.raises(DataFormatError, match="md5 mismatch"):
        download_movielens(archive.as_uri(), "0" * 32, tmp_path / "cache-bad")
    out = download_movielens(archive.as_uri(), md5, tmp_path / "cache")
    assert (out / "ratings.dat").read_bytes() == (synthetic_dir / "ratings.dat").read_bytes()
    assert download_movielens("file:///does/not/exist.zip", md5, tmp_path / "cache") == out  # cached


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_split_invariants(movielens, protocol):
    train, test = split(movielens.ratings, protocol)
    key = ["user_id", "item_id", "timestamp"]
    assert not train.merge(test, on=key).shape[0], "a test interaction is in train"
    assert set(test["item_id"]) <= set(train["item_id"])
    last_train = train.groupby("user_id")[["timestamp", "item_id"]].max()
    first_test = test.groupby("user_id")["timestamp"].min()
    both = first_test.index.intersection(last_train.index)
    assert (first_test[both] >= last_train.loc[both, "timestamp"]).all(), "test precedes train in time"
    if protocol == "loo":
        assert (test.groupby("user_id").size() == 1).all()
        assert (train["rating"] >= 4).all()
    inner, val = validation_split(train, protocol)
    assert len(inner) + len(val) <= len(train)
    assert not inner.merge(val, on=key).shape[0]


def test_user_temporal_test_size_is_rounded_tenth():
    import pandas as pd

    n = 25  # round(2.5) == 2 with numpy's banker's rounding
    items = np.arange(n)
    df = pd.concat([
        # ties on timestamp are broken by movie id
        pd.DataFrame({"user_id": 1, "item_id": items, "rating": 3, "timestamp": items // 3}),
        pd.DataFrame({"user_id": 2, "item_id": items[::-1], "rating": 3, "timestamp": items}),
    ])
    train, test = split(df, "user-temporal")
    assert test[test.user_id == 1]["item_id"].tolist() == [23, 24]
    assert test[test.user_id == 2]["item_id"].tolist() == [1, 0]
    assert len(train) == 46
