"""The compliance officer's desk: server-rendered pages and the JSON API (``/api/v1``)."""
