// hereabouts dashboard: a live view of one node's neighbourhood.
//
// Data comes from the node's event stream (v1/stream): a "snapshot" replaces the whole table,
// a "change" updates one peer's status at once and asks for a fresh copy of v1/peers (at most
// once a second) for the details a change does not carry. Peer names and DIDs are untrusted:
// they only ever reach the page through textContent and attributes, never as markup.
"use strict";

(function () {
  const STATUS_ORDER = { ONLINE: 0, MISSING: 1, OFFLINE: 2 };
  const STATUSES = Object.keys(STATUS_ORDER);
  const REFRESH_DELAY_MS = 1000; // coalesces a burst of changes into one v1/peers fetch
  const RECONNECT_MIN_MS = 1000; // when the browser gives up on the stream, we retry ...
  const RECONNECT_MAX_MS = 30000; // ... backing off to at most this

  const state = {
    node: null,
    peers: new Map(), // did -> peer object as sent by the node
    source: null,
    connected: false,
    reconnectMs: RECONNECT_MIN_MS,
    reconnectTimer: null,
    refreshTimer: null,
  };

  // Why a name carries "~" and a fingerprint (docs/security.md: names are labels).
  const NAME_NOTES = {
    settling: "This key has not proved itself yet; its name is shown with its fingerprint.",
    contested: "Another key holds this name; this one is shown with its fingerprint.",
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function shortDid(did) {
    const text = String(did || "");
    return text.length <= 24 ? text : text.slice(0, 16) + "…" + text.slice(-6);
  }

  function statusClass(status) {
    return STATUSES.includes(status) ? "status-" + status.toLowerCase() : "status-unknown";
  }

  function ageText(ms) {
    if (typeof ms !== "number" || !isFinite(ms)) return "";
    const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s ago";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h ago";
  }

  function byStatusThenName(a, b) {
    const sa = STATUS_ORDER[a.status] ?? 3;
    const sb = STATUS_ORDER[b.status] ?? 3;
    if (sa !== sb) return sa - sb;
    const byName = String(a.name || "").localeCompare(String(b.name || ""));
    return byName !== 0 ? byName : String(a.did).localeCompare(String(b.did));
  }

  // --- rendering ------------------------------------------------------------------------

  function renderNode() {
    const node = state.node;
    if (!node) return;
    const warnings = Array.isArray(node.warnings) ? node.warnings : [];
    const banner = $("warnings");
    banner.replaceChildren(...warnings.map((text) => el("li", null, text)));
    banner.hidden = warnings.length === 0;
    $("node-name").textContent = node.name || "(unnamed)";
    const did = $("node-did");
    did.textContent = shortDid(node.did);
    did.title = String(node.did || "");
    document.title = (node.name || "node") + " · hereabouts";
  }

  function renderCounts() {
    const counts = { ONLINE: 0, MISSING: 0, OFFLINE: 0 };
    for (const peer of state.peers.values()) {
      if (peer.status in counts) counts[peer.status] += 1;
    }
    for (const status of STATUSES) {
      const cell = $("count-" + status);
      const text = String(counts[status]);
      if (cell.textContent !== text) cell.textContent = text; // no needless announcements
    }
  }

  function peerRow(peer) {
    const row = el("tr");
    row.dataset.did = String(peer.did);

    const name = el("td", "name", peer.name || "(unnamed)");
    if (peer.claimed_name && peer.claimed_name !== peer.name) {
      name.title = NAME_NOTES[peer.name_status] || "";
    }
    if (peer.self) name.append(el("span", "self-tag", "(this node)"));
    if (peer.trust === "new") name.append(el("span", "tag tag-new", "new"));
    if (peer.shared_key) name.append(el("span", "tag tag-alarm", "key used twice"));
    row.append(name);

    const didCell = el("td");
    const abbr = el("abbr", "did", shortDid(peer.did));
    abbr.title = String(peer.did);
    didCell.append(abbr);
    row.append(didCell);

    const statusCell = el("td");
    statusCell.append(el("span", "badge " + statusClass(peer.status), peer.status));
    row.append(statusCell);

    const eventCell = el("td");
    eventCell.append(el("span", "event-kind", peer.last_event || ""));
    if (peer.last_event_at) {
      const time = el("time", "event-time", peer.last_event_at);
      time.dateTime = String(peer.last_event_at);
      eventCell.append(time);
    }
    row.append(eventCell);

    const age = el("td", "age", ageText(peer.last_event_at_ms));
    age.dataset.at = String(peer.last_event_at_ms ?? "");
    row.append(age);

    row.append(el("td", "num", peer.restarts ?? 0));
    return row;
  }

  function renderPeers() {
    const rows = [...state.peers.values()].sort(byStatusThenName).map(peerRow);
    $("peer-rows").replaceChildren(...rows);
    $("empty").hidden = rows.length > 0;
    renderCounts();
  }

  function tickAges() {
    for (const cell of document.querySelectorAll("#peer-rows td.age")) {
      const at = Number(cell.dataset.at);
      if (cell.dataset.at !== "" && isFinite(at)) cell.textContent = ageText(at);
    }
  }

  function showConnected(connected) {
    state.connected = connected;
    $("connection").hidden = connected;
  }

  // --- data -----------------------------------------------------------------------------

  function applySnapshot(data) {
    if (!data || typeof data !== "object" || !Array.isArray(data.peers)) return;
    state.node = data.node || null;
    state.peers = new Map();
    for (const peer of data.peers) {
      if (peer && typeof peer.did === "string") state.peers.set(peer.did, peer);
    }
    renderNode();
    renderPeers();
  }

  function applyChange(change) {
    if (!change || typeof change.did !== "string") return;
    if (change.cause === "forgotten") {
      state.peers.delete(change.did);
      renderPeers();
      return;
    }
    const known = state.peers.get(change.did);
    const peer = known ? { ...known } : { did: change.did, name: change.name, restarts: 0 };
    peer.status = change.new;
    if (change.name) peer.name = change.name;
    state.peers.set(change.did, peer);
    renderPeers();
    scheduleRefresh();
  }

  function scheduleRefresh() {
    if (state.refreshTimer !== null) return;
    state.refreshTimer = setTimeout(async () => {
      state.refreshTimer = null;
      try {
        const response = await fetch("v1/peers", { cache: "no-store" });
        if (response.ok) applySnapshot(await response.json());
      } catch (err) {
        // The stream's error handler reports the outage; nothing more to do here.
      }
    }, REFRESH_DELAY_MS);
  }

  function parse(event) {
    try {
      return JSON.parse(event.data);
    } catch (err) {
      console.warn("hereabouts: unreadable event", err);
      return null;
    }
  }

  function connect() {
    state.reconnectTimer = null;
    const source = new EventSource("v1/stream");
    state.source = source;
    source.addEventListener("open", () => {
      state.reconnectMs = RECONNECT_MIN_MS;
      showConnected(true);
    });
    source.addEventListener("snapshot", (event) => applySnapshot(parse(event)));
    source.addEventListener("change", (event) => applyChange(parse(event)));
    source.addEventListener("error", () => {
      showConnected(false);
      // While CONNECTING the browser retries by itself; once CLOSED it has given up
      // (for example the node answered with an error page), so we retry, backing off.
      if (source.readyState === EventSource.CLOSED && state.reconnectTimer === null) {
        source.close();
        state.reconnectTimer = setTimeout(connect, state.reconnectMs);
        state.reconnectMs = Math.min(state.reconnectMs * 2, RECONNECT_MAX_MS);
      }
    });
  }

  function start() {
    showConnected(false);
    $("connection").hidden = true; // no alarm before the first attempt has had a chance
    renderPeers();
    connect();
    setInterval(tickAges, 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
