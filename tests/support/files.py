"""Comparing the files of two directory trees (a source volume and its restore)."""

import filecmp
from pathlib import Path


def same_tree(left: Path, right: Path) -> bool:
    """True when both trees hold the same names with byte-identical contents."""
    comparison = filecmp.dircmp(left, right)
    if comparison.left_only or comparison.right_only or comparison.diff_files or comparison.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    return not mismatch and not errors and all(same_tree(left / d, right / d) for d in comparison.common_dirs)
