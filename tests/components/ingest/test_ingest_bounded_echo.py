"""Errors quote at most a short, escaped excerpt of the file they are about."""

import pytest

from kfpc.components.ingest.core import IngestError, ingest


def _error(path, tmp_path, **kw) -> str:
    with pytest.raises(IngestError) as err:
        ingest(str(path), tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()
    return str(err.value)


def test_a_bad_row_is_quoted_as_a_short_escaped_excerpt(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,2,3\n" + "SECRET-LINE:x:0:0:" + "y" * 5000 + "\n")
    message = _error(path, tmp_path)
    assert "Expected 3 columns, got 1" in message and "'SECRET-LINE:x:0:0:yy" in message
    assert len(message) < len(str(path)) + 200


def test_a_huge_header_is_not_echoed_whole(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(",".join(f"column_{i}_" + "z" * 100 for i in range(2000)) + "\n")
    message = _error(path, tmp_path)
    assert "header only" in message and "1990 more" in message
    assert len(message) < len(str(path)) + 1000


def test_a_one_column_file_with_a_long_line_quotes_an_excerpt(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a;" * 100_000 + "\n1\n")
    message = _error(path, tmp_path)
    assert "the delimiter is probably not ','" in message
    assert "(200000 chars)" in message and len(message) < len(str(path)) + 250


def test_control_characters_in_a_column_name_are_escaped(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('"x\x1b[31m",b,"x\x1b[31m"\n1,2,3\n')
    message = _error(path, tmp_path)
    assert "\x1b" not in message and "\\x1b[31m" in message
