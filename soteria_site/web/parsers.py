"""The one parser of request bodies: JSON, as DRF's, but a body nested deeper than Python's
decoder can follow is invalid JSON (400), not an internal error."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SoteriaJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json's decoder recurses per nesting level: some thousand `[` in a 64 KiB body
            # exhaust the stack. No Soteria request nests more than three levels.
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
