#!/usr/bin/env python3
"""The whole suite's secret scan (issue 6): every secret psn-sim handed out during the suite
(NPSSO, client secret, codes, access, ID and refresh tokens, bridge tokens; psn-sim appends
them to the ledger named by PSN_SIM_SECRET_LEDGER) is looked for in everything the suite
wrote: test output and panic messages, OBS logs, protocol traces, settings and scene JSON.

    tools/secret-scan.py LEDGER PATH...    files, or folders walked whole
    tools/secret-scan.py --self-test       shows that a planted secret is found

A secret counts as leaked when it appears whole, or any 16-character piece from its start or
its end does (a token cut short in a log line is still a leak), in the file as written or in it
decoded: percent-decoded (a URL or form body), with its JSON escapes undone (\u0041, \/), and
every base64 or base64url run decoded (an HTTP Basic header carries "client_id:secret" so). The plugin's two stores
(psn-tokens.json, and psn-client.json for credentials typed into the properties) are where
secrets belong: they are not searched, but must be private to the user (mode 0600). Findings name
the file, line and kind of secret, never the secret. Exit 1 on any finding."""

import base64
import binascii
import os
import re
import sys
import tempfile
import urllib.parse

PIECE = 16
STORES = ("psn-tokens.json", "psn-client.json")
# Secrets are made of these (psn-sim's random tokens, base64url JWT segments).
RUN = re.compile(rb"[A-Za-z0-9_-]{%d,}" % PIECE)
# Base64 (standard or URL-safe) long enough to carry a 16-byte piece.
B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{%d,}={0,2}" % (PIECE * 4 // 3))
JSON_ESCAPE = re.compile(rb"\\u([0-9a-fA-F]{4})|\\(/)")


def needles(secrets):
    """(pieces of 16 characters -> secret index, short secrets searched whole)."""
    pieces, short = {}, []
    for i, s in enumerate(secrets):
        b = s.encode()
        if b.count(b".") == 2:  # a JWT: its signature is what no one else has
            b = b.rsplit(b".", 1)[1]
        if len(b) < PIECE or not RUN.fullmatch(b):
            short.append((i, b))
            continue
        pieces[b[:PIECE]] = i
        pieces[b[-PIECE:]] = i
    return pieces, short


def kind(secret):
    if secret.count(".") == 2:
        return "a JWT (access or ID token)"
    if secret.startswith("sim-secret-"):
        return "the client secret"
    if secret.startswith("v3."):
        return "an authorization code"
    return "a %d-character token (NPSSO, refresh or bridge token)" % len(secret)


def json_unescaped(data):
    def one(m):
        if m.group(2):
            return b"/"
        return chr(int(m.group(1), 16)).encode("utf-8", "replace")
    return JSON_ESCAPE.sub(one, data)


def base64_decodings(data):
    """(offset in data, decoded bytes) for every base64 run, from each of its first 4 characters
    (a run may start mid-group when something precedes the encoded text without a separator)."""
    for m in B64_RUN.finditer(data):
        run = m.group().rstrip(b"=").replace(b"-", b"+").replace(b"_", b"/")
        for k in range(4):
            part = run[k:]
            part = part[:len(part) - len(part) % 4] if len(part) % 4 == 1 else part
            try:
                yield m.start(), base64.b64decode(part + b"=" * (-len(part) % 4))
            except (binascii.Error, ValueError):
                continue


def views(data):
    """The file as written, then each decoding of it worth a look: (how, bytes, offset map)."""
    yield "", data, None
    if b"%" in data:
        yield " percent-encoded", urllib.parse.unquote_to_bytes(data), None
    if b"\\" in data:
        yield " JSON-escaped", json_unescaped(data), None
    for at, decoded in base64_decodings(data):
        yield " base64-encoded", decoded, at


def scan_bytes(data, pieces, short):
    """Offsets in `data` where a secret (or a piece of one) is: [(offset, secret index)]."""
    found = []
    for m in RUN.finditer(data):
        run = m.group()
        for k in range(len(run) - PIECE + 1):
            i = pieces.get(run[k:k + PIECE])
            if i is not None:
                found.append((m.start(), i))
                break
    for i, b in short:
        at = data.find(b)
        if at >= 0:
            found.append((at, i))
    return found


def scan_file(path, pieces, short):
    """[(line, secret index, how it was written)] for every secret in the file."""
    found = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return found
    seen = set()
    for how, view, at in views(data):
        for offset, i in scan_bytes(view, pieces, short):
            # A decoded base64 run is located by where the run starts in the file.
            line = (view if at is None else data).count(b"\n", 0, offset if at is None else at) + 1
            if (line, i) not in seen:
                seen.add((line, i))
                found.append((line, i, how))
    return found


def files_under(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                for n in sorted(names):
                    yield os.path.join(root, n)
        elif os.path.isfile(p):
            yield p


def scan(ledger, paths):
    with open(ledger, encoding="utf-8") as f:
        secrets = sorted({line.strip() for line in f if line.strip()})
    pieces, short = needles(secrets)
    findings, files, size = [], 0, 0
    for path in files_under(paths):
        if os.path.abspath(path) == os.path.abspath(ledger):
            continue
        if os.path.basename(path) in STORES:
            if os.stat(path).st_mode & 0o777 != 0o600:
                findings.append((path, 0, None, ""))
            continue
        files += 1
        size += os.path.getsize(path)
        findings += [(path, line, i, how) for line, i, how in scan_file(path, pieces, short)]
    return secrets, findings, files, size


def report(ledger, paths):
    secrets, findings, files, size = scan(ledger, paths)
    for path, line, i, how in findings:
        if i is None:
            print("secret-scan: %s is readable by others (mode %o, must be 600)" % (path, os.stat(path).st_mode & 0o777))
        else:
            print("secret-scan: %s:%d carries%s %s" % (path, line, how, kind(secrets[i])))
    print("secret-scan: %d secrets looked for in %d files (%.1f MB): %s"
          % (len(secrets), files, size / 1e6, "%d found" % len(findings) if findings else "none found"))
    if not secrets:
        print("secret-scan: the ledger is empty: psn-sim wrote nothing to it", file=sys.stderr)
        return 1
    return 1 if findings else 0


def self_test():
    with tempfile.TemporaryDirectory() as d:
        ledger = os.path.join(d, "ledger")
        secrets = ["A" * 5 + "kq3ZP0x9LmW2vB7nT4rY8sU1", "eyJh.eyJz.Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4", "v3.Ab12Cd"]
        with open(ledger, "w") as f:
            f.write("\n".join(secrets) + "\n")
        os.mkdir(os.path.join(d, "out"))
        clean = os.path.join(d, "out", "clean.log")
        with open(clean, "w") as f:
            f.write("Authorization: Bearer <redacted>\nrefresh_token=<redacted 32 chars>\n")
        assert not scan(ledger, [clean])[1], "a clean file was reported"
        cases = {
            "whole.log": "token %s here\n" % secrets[0],
            "cut.log": 'line 1\n{"refresh_token":"%s..."}\n' % secrets[0][:20],
            "tail.json": "x=%s\n" % secrets[1].split(".")[2][-18:],
            "code.txt": "GET /?code=%s&cid=1\n" % secrets[2],
        }
        # Encoded forms, each of which the plain search misses (checked below).
        encoded = {
            "basic.log": "Authorization: Basic %s\n" % base64.b64encode(
                ("client-id-1:" + secrets[0]).encode()).decode(),
            "b64url.log": "blob=%s\n" % base64.urlsafe_b64encode(
                ("xy" + secrets[0]).encode()).decode().rstrip("="),
            "percent.log": "GET /?t=%s\n" % "".join("%%%02X" % b for b in secrets[0].encode()),
            "json.log": '{"t":"%s"}\n' % "".join("\\u%04x" % ord(c) for c in secrets[0]),
        }
        for name, text in encoded.items():
            assert secrets[0][:PIECE] not in text and secrets[0][-PIECE:] not in text, name
        cases.update(encoded)
        for name, text in cases.items():
            path = os.path.join(d, "out", name)
            with open(path, "w") as f:
                f.write(text)
            found = scan(ledger, [path])[1]
            assert found, "%s: the planted secret was not found" % name
        store = os.path.join(d, "out", STORES[0])
        with open(store, "w") as f:
            f.write(secrets[0])
        os.chmod(store, 0o600)
        found = scan(ledger, [os.path.join(d, "out")])[1]
        assert len(found) == len(cases), found
        os.chmod(store, 0o644)
        found = scan(ledger, [os.path.join(d, "out")])[1]
        assert (store, 0, None, "") in found, "a store readable by others was not reported"
    print("secret-scan: self-test passed (planted secrets found whole, cut short, in a JWT, base64 "
          "(a Basic header, base64url), percent-encoded and JSON-escaped; a private store skipped, "
          "a readable one reported)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(report(sys.argv[1], sys.argv[2:]))
