"""Interoperability with diffusers (an optional dependency: ``pip install sgmlab[bench]``)."""
