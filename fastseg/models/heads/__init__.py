"""Decoders and heads shared by the networks."""
from .unpool_decoder import UnpoolDecoder  # noqa: F401
