"""Blocks inserted into backbones: the non-local block and the blocks it is compared with."""

from nlstudy.blocks.nonlocal_block import NonLocalBlock

__all__ = ["NonLocalBlock"]
