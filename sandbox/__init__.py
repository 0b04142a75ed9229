"""A runnable fake of Apache DevLake's REST API with realistic sample data (`python -m sandbox`)."""

from .fake_devlake import FakeDevLake, RequestRecord

__all__ = ["FakeDevLake", "RequestRecord"]
