"""safe_join: every way a path could leave its root is refused; everything inside works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from files.paths import PathRefused, parts_of, safe_join


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "file.txt").write_text("inside")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    return outside


@pytest.mark.parametrize("relative", ["", ".", "./", "sub", "sub/", "sub/./file.txt", "sub//file.txt"])
def test_paths_inside_resolve_under_the_root(root, relative):
    result = safe_join(root, relative)
    assert result == Path(os.path.realpath(root / relative))
    assert str(result).startswith(os.path.realpath(root))


def test_a_path_that_does_not_exist_yet_is_allowed(root):
    assert safe_join(root, "new/deeper/model.pt") == Path(os.path.realpath(root)) / "new" / "deeper" / "model.pt"


@pytest.mark.parametrize("relative", ["..", "../outside", "sub/../../outside", "sub/..", "a/../b", "x/y/../../.."])
def test_dot_dot_is_refused_even_when_it_would_stay_inside(root, relative):
    with pytest.raises(PathRefused, match=r"'\.\.'"):
        safe_join(root, relative)


@pytest.mark.parametrize("relative", ["/etc/passwd", "/", "//etc", "\\etc\\passwd"])
def test_absolute_paths_are_refused(root, relative):
    with pytest.raises(PathRefused, match="Absolute"):
        safe_join(root, relative)


@pytest.mark.parametrize("relative", ["a\x00b", "sub/file.txt\x00.png", "line\nbreak", "tab\there", "del\x7f"])
def test_nul_and_control_characters_are_refused(root, relative):
    with pytest.raises(PathRefused, match="control character"):
        safe_join(root, relative)


def test_refusal_is_a_value_error(root):
    with pytest.raises(ValueError):
        safe_join(root, "../x")


def test_a_directory_symlink_pointing_out_is_refused_for_reading_and_writing(root, outside):
    (root / "link").symlink_to(outside, target_is_directory=True)
    for relative in ["link", "link/", "link/secret.txt", "link/new-file", "link/new/deeper"]:
        with pytest.raises(PathRefused, match="outside"):
            safe_join(root, relative)


def test_a_file_symlink_pointing_out_is_refused(root, outside):
    (root / "sub" / "passwd").symlink_to(outside / "secret.txt")
    with pytest.raises(PathRefused, match="outside"):
        safe_join(root, "sub/passwd")


def test_a_dangling_symlink_pointing_out_is_refused(root, outside):
    (root / "dangling").symlink_to(outside / "not-there-yet")
    with pytest.raises(PathRefused):
        safe_join(root, "dangling")


def test_an_intermediate_symlink_chain_pointing_out_is_refused(root, outside):
    (root / "hop1").symlink_to(root / "hop2")
    (root / "hop2").symlink_to(outside)
    with pytest.raises(PathRefused):
        safe_join(root, "hop1/secret.txt")


def test_a_relative_symlink_climbing_out_is_refused(root, outside):
    (root / "sub" / "up").symlink_to("../../outside")
    with pytest.raises(PathRefused):
        safe_join(root, "sub/up/secret.txt")


def test_a_symlink_that_stays_inside_is_followed(root):
    (root / "alias").symlink_to(root / "sub")
    assert safe_join(root, "alias/file.txt") == Path(os.path.realpath(root / "sub" / "file.txt"))


def test_a_sibling_whose_name_starts_like_the_root_is_outside(tmp_path, root):
    sibling = tmp_path / "root-evil"
    sibling.mkdir()
    (root / "sib").symlink_to(sibling)
    with pytest.raises(PathRefused):
        safe_join(root, "sib")


def test_a_root_that_is_itself_a_symlink_works(tmp_path, root):
    alias = tmp_path / "alias-root"
    alias.symlink_to(root)
    assert safe_join(alias, "sub/file.txt").read_text() == "inside"


@pytest.mark.parametrize(
    "relative", ["données/modèle.pt", "数据/训练.py", "emoji 🚀/file name with spaces.txt", "%2e%2e"]
)
def test_unicode_and_literal_percent_names_are_plain_names(root, relative):
    # Percent escapes are decoded by Django before a path gets here: a literal "%2e%2e" is just a name.
    result = safe_join(root, relative)
    assert result == Path(os.path.realpath(root)).joinpath(*relative.split("/"))


def test_parts_of_drops_empty_and_dot_components():
    assert parts_of("a//b/./c/") == ("a", "b", "c")
    assert parts_of("") == ()
