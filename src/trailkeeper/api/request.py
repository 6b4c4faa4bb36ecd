"""A request class whose body decoding can only fail with a 400.

msgspec raises UnicodeDecodeError for invalid UTF-8 and RecursionError for absurd nesting;
Litestar would turn both into a 500. Every JSON body goes through `json()`, so catching them
here covers every route.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from trailkeeper.errors import InvalidInput


class SafeRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise InvalidInput("request body is not valid UTF-8") from None
        except RecursionError:
            raise InvalidInput("request body is nested too deeply") from None
