"""Flask's JSON, written by orjson.

The same JSON the standard library's encoder writes with the API's settings (compact, keys in
the order they were set, non-ASCII text as UTF-8), in a fraction of the time: encoding a list
page was a tenth of its cost (bench/README.md). Values orjson has no native form for, and
datetimes (which Flask writes as HTTP dates), go through Flask's own `default`, so no answer
changes; an answer holding a value orjson refuses (an integer past 64 bits, which a user's
`params` may hold) is written by the standard library. Floats that are not finite never reach
it: metric values travel as the strings "NaN" and "Infinity" (app/metrics/summary.py).
Pretty-printed answers (debug, `compact = False`) stay with the standard library.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


class OrjsonProvider(DefaultJSONProvider):
    sort_keys = False  # the order each answer sets its keys in (orjson cannot sort otherwise)
    ensure_ascii = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        body = None if kwargs else self._orjson(obj, _OPTIONS)
        # kwargs (indent, separators…): the standard library's options
        return super().dumps(obj, **kwargs) if body is None else body.decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        pretty = self.compact is False or (self.compact is None and self._app.debug)
        obj = self._prepare_response_obj(args, kwargs)
        body = None if pretty else self._orjson(obj, _OPTIONS | orjson.OPT_APPEND_NEWLINE)
        if body is None:
            return cast(Response, super().response(*args, **kwargs))
        return Response(body, mimetype=self.mimetype)  # the app's response_class: Flask's

    def _orjson(self, obj: Any, option: int) -> bytes | None:
        """`obj` as orjson writes it; None for a value orjson refuses (an integer past 64
        bits), which the standard library writes instead."""
        try:
            return orjson.dumps(obj, default=self.default, option=option)
        except orjson.JSONEncodeError:
            return None
