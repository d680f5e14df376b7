"""Verifies an AWS_MSK_IAM payload (JSON on stdin) with botocore's SigV4 signer, as an
independent implementation: the signature is recomputed by botocore's SigV4QueryAuth for
the payload's host, credential scope, date and session token, with the secret from the
environment (SIGV4_SECRET), and compared. The payload must not be expired at
now + SIGV4_CLOCK_OFFSET seconds. Prints "ok" or "error: <reason>"."""

import datetime
import json
import os
import sys
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import botocore.auth
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def check(p):
    for key, want in [("version", "2020_10_22"), ("action", "kafka-cluster:Connect"),
                      ("x-amz-algorithm", "AWS4-HMAC-SHA256"), ("x-amz-signedheaders", "host")]:
        if p.get(key) != want:
            return f"{key} is {p.get(key)!r}, expected {want!r}"
    key_id, day, region, service, term = p["x-amz-credential"].split("/")
    if service != "kafka-cluster" or term != "aws4_request":
        return f"bad credential scope {p['x-amz-credential']!r}"
    signed_at = datetime.datetime.strptime(p["x-amz-date"], "%Y%m%dT%H%M%SZ")
    if signed_at.strftime("%Y%m%d") != day:
        return "the credential scope's day is not the signing day"
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    now += datetime.timedelta(seconds=float(os.environ.get("SIGV4_CLOCK_OFFSET", "0")))
    expires = int(p["x-amz-expires"])
    if now > signed_at + datetime.timedelta(seconds=expires):
        return f"signature expired (signed {p['x-amz-date']}, valid {expires} s)"
    if signed_at > now + datetime.timedelta(minutes=5):
        return "signed in the future"
    creds = Credentials(key_id, os.environ["SIGV4_SECRET"], p.get("x-amz-security-token"))
    req = AWSRequest(method="GET", url=f"https://{p['host']}/",
                     params={"Action": "kafka-cluster:Connect"})
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=signed_at):
        SigV4QueryAuth(creds, "kafka-cluster", region, expires=expires).add_auth(req)
    want = parse_qs(urlsplit(req.prepare().url).query)["X-Amz-Signature"][0]
    if want != p["x-amz-signature"]:
        return "signature does not match"
    return None


try:
    problem = check(json.loads(sys.stdin.read()))
except Exception as e:  # a malformed payload is a refusal, not a crash
    problem = f"malformed payload: {type(e).__name__}: {e}"
print("ok" if problem is None else f"error: {problem}")
