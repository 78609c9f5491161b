#!/usr/bin/env python3
"""Drives the speaking overlay page in headless Chromium (Debian's `chromium`) over the DevTools
protocol (python3-websockets), for tests/libobs_overlay.rs.

    overlay_page_check.py --url URL --out DIR --members N --html-name NAME --muted NAME

Checks, printing `CHECK <name> ok|FAILED <detail>` lines and `FIGURE` lines:
  every member shown with an avatar and a name; the name with HTML in it shows as text;
  the speaking class moves between members with their voices; the URL options change the
  layout (horizontal, avatar size, hidden names, only speaking, consent-muted members, own
  console); screenshots in DIR. Then prints `RESTART`, waits for `RESTARTED` on stdin (the test
  restarts the plugin) and checks the page reconnects by itself. Exit status 0 when all passed.
"""

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

from check_lines import Checks


class Page:
    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    async def call(self, method, **params):
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def eval(self, expr):
        r = await self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"page error in {expr[:60]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def goto(self, url):
        await self.call("Page.navigate", url=url)
        # The document is tiny; wait for its script to have run.
        for _ in range(100):
            if await self.eval("document.readyState") == "complete":
                return
            await asyncio.sleep(0.05)

    async def screenshot(self, path, clip=None):
        params = {"format": "png"}
        if clip:
            params["clip"] = dict(clip, scale=1)
        r = await self.call("Page.captureScreenshot", **params)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))


TILES = """Array.from(document.querySelectorAll('.psn-member')).map(el => {
  const r = el.getBoundingClientRect();
  const av = el.querySelector('.psn-avatar');
  const name = el.querySelector('.psn-name');
  return {id: el.dataset.onlineId, cls: el.className, x: r.x, y: r.y,
          img: av && av.tagName === 'IMG' ? {w: av.getBoundingClientRect().width, ok: av.complete && av.naturalWidth > 0} : null,
          initial: av && av.tagName !== 'IMG' ? av.textContent : null,
          name: name ? name.textContent : null,
          nameShown: !!(name && name.offsetParent),
          nameChildren: name ? name.children.length : -1};
})"""


ONE_WITH_AVATAR_TALKING = """document.querySelectorAll('.psn-speaking').length === 1 &&
  !!document.querySelector('.psn-speaking img.psn-avatar')"""

LIST_BOX = """(() => {
  const rs = Array.from(document.querySelectorAll('.psn-member')).map(e => e.getBoundingClientRect());
  const x = Math.min(...rs.map(r => r.left)) - 8, y = Math.min(...rs.map(r => r.top)) - 8;
  return {x: Math.max(0, x), y: Math.max(0, y),
          width: Math.max(...rs.map(r => r.right)) - x + 16, height: Math.max(...rs.map(r => r.bottom)) - y + 8};
})()"""


def loaded_avatars(count):
    """An expression: at least `count` avatar images are loaded and shown."""
    return ("Array.from(document.querySelectorAll('.psn-member img.psn-avatar'))"
            f".filter(i => i.complete && i.naturalWidth > 0).length >= {count}")


def chromium_binary():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("chromium is not installed (tools/setup.sh installs Debian's chromium)")


async def wait_until(page, expr, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if await page.eval(expr):
            return True
        await asyncio.sleep(0.05)
    return False


async def run(args):
    check = Checks()

    profile = tempfile.mkdtemp(prefix="overlay-chromium-")
    cmd = [chromium_binary(), "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
           "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
           "--disable-background-networking", "--disable-sync", "--hide-scrollbars",
           "--window-size=900,700", "about:blank"]
    if os.geteuid() == 0:
        cmd.insert(1, "--no-sandbox")
    browser = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        for _ in range(300):
            if os.path.exists(port_file) and open(port_file).read().strip():
                break
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with websockets.connect(ws_url, max_size=None) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Runtime.enable")
            # The stream's look: a dark scene behind the transparent page.
            await page.call("Emulation.setDefaultBackgroundColorOverride",
                            color={"r": 24, "g": 26, "b": 32, "a": 1})
            await page.call("Emulation.setDeviceMetricsOverride", width=900, height=700,
                            deviceScaleFactor=1, mobile=False)
            n = args.members
            url = args.url

            # Default options: every member but the muted one, own console left out.
            started = time.monotonic()
            await page.goto(url)
            shown = await wait_until(page, loaded_avatars(n - args.no_avatar), 20)
            print(f"FIGURE overlay_first_paint_with_avatars_s {time.monotonic() - started:.2f}", flush=True)
            tiles = await page.eval(TILES)
            ids = sorted(t["id"] for t in tiles)
            check("every_member_shown", shown and len(tiles) == n, f"{ids}")
            with_img = [t for t in tiles if t["img"] and t["img"]["ok"]]
            check("avatars_loaded", len(with_img) == n - args.no_avatar,
                  f"{len(with_img)} images, initials for {[t['id'] for t in tiles if t['initial']]}")
            check("names_shown", all(t["name"] == t["id"] and t["nameShown"] for t in tiles))
            html = [t for t in tiles if t["id"] == args.html_name]
            check("html_in_a_name_is_text", len(html) == 1 and html[0]["name"] == args.html_name
                  and html[0]["nameChildren"] == 0
                  and await page.eval("document.querySelectorAll('.psn-name *, img:not(.psn-avatar)').length") == 0,
                  f"{html}")
            check("muted_member_hidden_by_default", args.muted not in ids, f"{ids}")
            vertical = sorted(tiles, key=lambda t: t["y"])
            check("vertical_layout", all(a["y"] < b["y"] and abs(a["x"] - b["x"]) < 1 for a, b in zip(vertical, vertical[1:])))

            # The speaking class follows the voices: sample for 8 s.
            seen = {}
            moves = 0
            last = None
            shot = False
            end = time.monotonic() + 8
            while time.monotonic() < end:
                speaking = await page.eval("Array.from(document.querySelectorAll('.psn-speaking')).map(e => e.dataset.onlineId).sort().join(',')")
                for who in filter(None, speaking.split(",")):
                    seen[who] = seen.get(who, 0) + 1
                if speaking != last:
                    moves += 1
                    last = speaking
                # The README's picture: one member with an avatar talking, cropped to the list.
                if not shot and await page.eval(ONE_WITH_AVATAR_TALKING):
                    shot = True
                    await page.screenshot(os.path.join(args.out, "overlay-vertical.png"))
                    box = await page.eval(LIST_BOX)
                    await page.screenshot(os.path.join(args.out, "overlay-readme.png"), clip=box)
                await asyncio.sleep(0.05)
            talkers = sorted(seen)
            print(f"FIGURE overlay_speaking_changes_in_8s {moves}", flush=True)
            check("speaking_class_moves_with_the_voices", len(talkers) >= n - 1 and moves >= 4,
                  f"speaking seen for {talkers}, {moves} changes")
            check("muted_member_never_speaking", args.muted not in seen)

            # Options change the layout.
            await page.goto(url + "&layout=horizontal&avatar_size=96")
            await wait_until(page, loaded_avatars(n - args.no_avatar), 10)
            await asyncio.sleep(0.5)
            tiles = await page.eval(TILES)
            # Side by side, wrapping into rows when the source is narrow.
            reading = sorted(tiles, key=lambda t: (round(t["y"]), t["x"]))
            first_row = [t for t in tiles if abs(t["y"] - reading[0]["y"]) < 1]
            in_rows = all(a["x"] < b["x"] for a, b in zip(reading, reading[1:]) if abs(a["y"] - b["y"]) < 1)
            sizes = sorted({round(t["img"]["w"]) for t in tiles if t["img"]})
            check("horizontal_layout_and_avatar_size",
                  len(tiles) == n and len(first_row) >= 3 and in_rows and sizes == [96],
                  f"{len(first_row)} in the first row, sizes {sizes}")
            await page.screenshot(os.path.join(args.out, "overlay-horizontal.png"))

            await page.goto(url + "&hide_names=1")
            await wait_until(page, f"document.querySelectorAll('.psn-member').length >= {n}", 10)
            tiles = await page.eval(TILES)
            check("hide_names", len(tiles) == n and not any(t["nameShown"] for t in tiles))

            await page.goto(url + "&only_speaking=1")
            ok = await wait_until(page, "document.querySelectorAll('.psn-member').length >= 1", 10)
            samples = []
            for _ in range(40):
                samples.append(await page.eval("Array.from(document.querySelectorAll('.psn-member')).map(e => e.classList.contains('psn-speaking'))"))
                await asyncio.sleep(0.05)
            check("only_speaking", ok and all(all(s) for s in samples) and any(len(s) < n for s in samples))

            await page.goto(url + "&show_muted=1&include_me=1")
            await wait_until(page, f"document.querySelectorAll('.psn-member').length >= {n + 2}", 10)
            tiles = await page.eval(TILES)
            muted = [t for t in tiles if t["id"] == args.muted]
            me = [t for t in tiles if "psn-own-console" in t["cls"]]
            check("show_muted_and_include_me", len(muted) == 1 and "psn-muted" in muted[0]["cls"] and len(me) == 1,
                  f"{[(t['id'], t['cls']) for t in tiles]}")

            # A plugin restart: the page reconnects by itself.
            await page.goto(url)
            await wait_until(page, f"document.querySelectorAll('.psn-member').length >= {n}", 10)
            print("RESTART", flush=True)
            reply = asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            noticed = False
            while not reply.done():
                state = await page.eval("[document.getElementById('psn-overlay').dataset.stream, document.querySelectorAll('.psn-member').length]")
                noticed = noticed or state[0] != "open"
                await asyncio.sleep(0.05)
            line = await reply
            check("page_noticed_the_restart", noticed)
            if line.strip() != "RESTARTED":
                check("reconnects_after_restart", False, f"test said {line!r}")
            else:
                t0 = time.monotonic()
                back = await wait_until(
                    page,
                    loaded_avatars(n - args.no_avatar) + " && document.getElementById('psn-overlay').dataset.stream === 'open'",
                    30)
                print(f"FIGURE overlay_reconnect_s {time.monotonic() - t0:.2f}", flush=True)
                check("reconnects_after_restart", back)
                await page.screenshot(os.path.join(args.out, "overlay-after-restart.png"))
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)
    return check.all_passed()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--members", type=int, required=True, help="members shown by default")
    ap.add_argument("--no-avatar", type=int, default=0, help="of those, how many have no avatar")
    ap.add_argument("--html-name", required=True)
    ap.add_argument("--muted", required=True)
    args = ap.parse_args()
    ok = asyncio.run(run(args))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
