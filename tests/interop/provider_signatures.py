"""Checks tidings' provider signatures with the providers' own Python libraries, both ways.

Reads from stdin: {"cases": [{"provider", "secret", "url", "headers": {...}, "body"}]}, each a
request as tidings' signer makes it for that provider's sample. For each case:

- plivo: plivo.utils.validate_v3_signature accepts X-Plivo-Signature-V3 for the URL, form
  parameters and nonce; then Plivo's own signer (plivo.utils.signature_v3) signs the same request
  anew with another nonce, and that signature is written out for tidings to verify;
- vonage: vonage_jwt.verify_signature accepts the Authorization JWT under the signature secret
  (and its payload_hash is the body's SHA-256, as Vonage's documentation says to check);
- mailtrap: mailtrap.webhooks.verify_signature accepts Mailtrap-Signature over the body.

Writes {"failures": [...], "plivo_resigned": [{"index", "nonce", "signature"}]} to stdout.
"""

import hashlib
import json
import sys
from urllib.parse import parse_qsl

import jwt
import mailtrap.webhooks
import plivo.utils
import plivo.utils.signature_v3 as plivo_v3
import vonage_jwt

given = json.load(sys.stdin)
failures = []
resigned = []
for index, case in enumerate(given["cases"]):
    provider, secret, body = case["provider"], case["secret"], case["body"]
    headers = {k.lower(): v for k, v in case["headers"].items()}
    where = f"{provider} case {index}"
    if provider == "plivo":
        params = dict(parse_qsl(body, keep_blank_values=True))
        if not plivo.utils.validate_v3_signature(
            "POST", case["url"], headers["x-plivo-signature-v3-nonce"], secret,
            headers["x-plivo-signature-v3"], dict(params),
        ):
            failures.append(f"{where}: plivo's validator refuses tidings' X-Plivo-Signature-V3")
        nonce = "27369183105418365927"
        base = plivo_v3.construct_post_url(case["url"], dict(params))
        signature = plivo_v3.get_signature_v3(secret.encode(), base, nonce.encode()).decode()
        resigned.append({"index": index, "nonce": nonce, "signature": signature})
    elif provider == "vonage":
        token = headers["authorization"].split(" ", 1)[1]
        if not vonage_jwt.verify_signature(token, secret):
            failures.append(f"{where}: vonage_jwt refuses tidings' JWT")
        claims = jwt.decode(token, secret, algorithms=["HS256"])
        if claims.get("payload_hash") != hashlib.sha256(body.encode()).hexdigest():
            failures.append(f"{where}: payload_hash is not the body's SHA-256")
    elif provider == "mailtrap":
        if not mailtrap.webhooks.verify_signature(body, headers["mailtrap-signature"], secret):
            failures.append(f"{where}: mailtrap's verifier refuses tidings' Mailtrap-Signature")
    else:
        failures.append(f"{where}: no library for {provider}")
json.dump({"failures": failures, "plivo_resigned": resigned}, sys.stdout)
