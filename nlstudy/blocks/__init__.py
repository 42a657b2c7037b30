"""Blocks inserted into backbones: the non-local block and the blocks it is compared with."""

from nlstudy.blocks.nonlocal_block import MODES, PAIRWISE, NonLocalBlock

__all__ = ["MODES", "PAIRWISE", "NonLocalBlock"]
