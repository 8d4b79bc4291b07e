"""Signs requests as Twilio does, with Twilio's own helper library (twilio.request_validator).

Reads from stdin: {"auth_token": "...", "requests": [{"url": "...", "form": {...}} | {"url": "...", "json": "<body>"}]}
Writes to stdout: [{"url": "<URL to call>", "signature": "<X-Twilio-Signature>"}], one per request.
A JSON body is signed the way Twilio signs one: its SHA-256 is added to the URL as bodySHA256 and
the URL alone is signed.
"""

import json
import sys
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

given = json.load(sys.stdin)
validator = RequestValidator(given["auth_token"])
signed = []
for request in given["requests"]:
    url = request["url"]
    if "json" in request:
        separator = "&" if "?" in url else "?"
        url = f"{url}{separator}{urlencode({'bodySHA256': validator.compute_hash(request['json'])})}"
        signature = validator.compute_signature(url, {})
        assert validator.validate(url, request["json"], signature)
    else:
        signature = validator.compute_signature(url, request["form"])
        assert validator.validate(url, request["form"], signature)
    signed.append({"url": url, "signature": signature})
json.dump(signed, sys.stdout)
