// obs-psn-party speaking overlay: follows the party over Server-Sent Events and draws one
// element per member. Names only ever go in through textContent (an online id is never HTML).
"use strict";
(function () {
  const root = document.getElementById("psn-overlay");
  const token = root.dataset.token;
  const opts = new URLSearchParams(location.search);
  const flag = (name) => ["1", "true", "yes"].includes((opts.get(name) || "").toLowerCase());
  const layout = opts.get("layout") === "horizontal" ? "horizontal" : "vertical";
  const size = Math.min(256, Math.max(16, parseInt(opts.get("avatar_size") || "64", 10) || 64));
  const onlySpeaking = flag("only_speaking");
  const includeMe = flag("include_me");
  const showMuted = flag("show_muted");
  root.className = "psn-overlay psn-" + layout + (flag("hide_names") ? " psn-hide-names" : "");
  document.documentElement.style.setProperty("--psn-avatar-size", size + "px");

  const tiles = new Map(); // onlineId -> element

  function tile(member) {
    let el = tiles.get(member.onlineId);
    if (!el) {
      el = document.createElement("div");
      const name = document.createElement("span");
      name.className = "psn-name";
      name.textContent = member.onlineId;
      el.appendChild(name);
      el.dataset.onlineId = member.onlineId;
      tiles.set(member.onlineId, el);
    }
    // The avatar: the image once the plugin has it, else the first letter.
    const want = member.avatar != null ? "avatar/" + member.avatar + "?token=" + encodeURIComponent(token) : "";
    let avatar = el.querySelector(".psn-avatar");
    if (!avatar || avatar.dataset.src !== want) {
      const fresh = want ? document.createElement("img") : document.createElement("div");
      if (want) { fresh.src = want; fresh.alt = ""; fresh.className = "psn-avatar"; }
      else {
        fresh.className = "psn-avatar psn-avatar-initial";
        fresh.textContent = Array.from(member.onlineId)[0] || "?";
      }
      fresh.dataset.src = want;
      if (avatar) avatar.replaceWith(fresh); else el.prepend(fresh);
    }
    el.className = "psn-member psn-voice-" + member.voice +
      (member.speaking ? " psn-speaking" : "") +
      (member.mutedByConsent ? " psn-muted" : "") +
      (member.ownConsole ? " psn-own-console" : "");
    return el;
  }

  function render(snapshot) {
    const shown = (snapshot.members || []).filter((m) =>
      (includeMe || !m.ownConsole) &&
      (showMuted || !m.mutedByConsent) &&
      (!onlySpeaking || m.speaking));
    const keep = new Set(shown.map((m) => m.onlineId));
    for (const [id, el] of tiles) {
      if (!keep.has(id)) { el.remove(); tiles.delete(id); }
    }
    shown.forEach((m, i) => {
      const el = tile(m);
      if (root.children[i] !== el) root.insertBefore(el, root.children[i] || null);
    });
    root.dataset.connection = snapshot.connection || "";
  }

  let source = null;
  function connect() {
    source = new EventSource("events?token=" + encodeURIComponent(token));
    source.onmessage = (e) => { try { render(JSON.parse(e.data)); } catch (err) { /* keep the last picture */ } };
    source.onopen = () => { root.dataset.stream = "open"; };
    source.onerror = () => { root.dataset.stream = "reconnecting"; };
  }
  connect();
  // EventSource retries by itself after a dropped stream, but gives up for good on an answer
  // it does not like (OBS half started): start over then.
  setInterval(() => {
    if (source.readyState === EventSource.CLOSED) connect();
  }, 2000);
})();
