"""GroupLens loader and download verification."""

import hashlib
import zipfile

import pytest

from recsys.data.movielens import DataFormatError, download_movielens, load_movielens
from recsys.data.synthetic import write_synthetic


def test_loads_synthetic_in_grouplens_format(movielens):
    assert set(movielens.interactions.columns) == {"user_id", "item_id", "rating", "timestamp"}
    assert movielens.interactions["rating"].between(1, 5).all()
    assert (movielens.items["year"] > 1900).all()
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


def test_download_verifies_md5_and_says_what_to_set(tmp_path, synthetic_dir):
    archive, md5 = _zip_of(synthetic_dir, tmp_path)
    with pytest.raises(DataFormatError, match="md5 mismatch"):
        download_movielens(archive.as_uri(), "0" * 32, tmp_path / "cache-bad")
    with pytest.raises(DataFormatError, match="DATA_DIR"):
        download_movielens((tmp_path / "absent.zip").as_uri(), md5, tmp_path / "cache-absent")
    out = download_movielens(archive.as_uri(), md5, tmp_path / "cache")
    assert (out / "ratings.dat").read_bytes() == (synthetic_dir / "ratings.dat").read_bytes()
    assert download_movielens("file:///does/not/exist.zip", md5, tmp_path / "cache") == out  # cached
