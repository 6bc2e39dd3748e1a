// hereabouts dashboard: a live view of one node, its neighbourhood and its last hour.
//
// Data:
// * v1/stream (server-sent events): a "snapshot" replaces the peers, a "change" updates one
//   peer at once, joins its timeline and the log, and asks for a fresh copy of v1/peers and
//   v1/node (at most once a second) for the details a change does not carry;
// * v1/history, after every snapshot: the last hour of changes the timelines are drawn from,
//   merged with the changes the stream delivered meanwhile;
// * v1/node, every few seconds: the node's health, refusals by reason, and site rooms.
// Peer names and DIDs are untrusted: they only ever reach the page through textContent and
// attributes, never as markup.
"use strict";

(function () {
  const STATUS_ORDER = { ONLINE: 0, MISSING: 1, OFFLINE: 2 };
  const STATUSES = Object.keys(STATUS_ORDER);
  const REFRESH_DELAY_MS = 1000; // coalesces a burst of changes into one fetch of each
  const NODE_POLL_MS = 3000; // peers, health, rooms: fresh enough to watch, cheap to serve
  const REDRAW_MS = 5000; // the timelines slide left by about a pixel every ten seconds
  const RECONNECT_MIN_MS = 1000; // when the browser gives up on the stream, we retry ...
  const RECONNECT_MAX_MS = 30000; // ... backing off to at most this
  const DEFAULT_WINDOW_MS = 3600000; // until v1/history says otherwise
  const DEFAULT_LOG_LIMIT = 100;
  const FRESH_MS = 2000; // how long a change that just arrived stays highlighted in the log
  const DEFAULT_PER_PEER = 240;
  const MIN_SEGMENT_PX = 2; // a blip shorter than this is widened so that it stays visible
  // What a strip may span while the node has watched for less than an hour (see timeSpan):
  // round numbers of minutes whose quarters are round too.
  const SPANS_MIN = [1, 2, 4, 8, 12, 20, 40, 60];
  const TICKS = [0.25, 0.5, 0.75]; // fractions of the strip marked by a thin line
  const SVG_NS = "http://www.w3.org/2000/svg";

  const state = {
    node: null,
    peers: new Map(), // did -> peer object as sent by the node
    history: {
      loaded: false,
      windowMs: DEFAULT_WINDOW_MS,
      sinceMs: null, // watching began; before it nothing is known
      completeFromMs: null, // changes were dropped to the node's total bound before this
      perPeer: DEFAULT_PER_PEER,
      logLimit: DEFAULT_LOG_LIMIT,
      gaps: new Map(), // did -> complete_from_ms of that peer
      changes: new Map(), // did -> [{at_ms, old, new, cause}], oldest first
    },
    log: [], // change objects, newest first
    fresh: new Map(), // key of a log entry that arrived live -> when (highlighted a while)
    stripPx: 0, // the strips' width in pixels at the last render
    source: null,
    connected: false,
    reconnectMs: RECONNECT_MIN_MS,
    reconnectTimer: null,
    refreshTimer: null,
    historyRequest: 0,
  };

  // Why a name carries "~" and a fingerprint (docs/security.md: names are labels).
  const NAME_NOTES = {
    settling: "This key has not proved itself yet; its name is shown with its fingerprint.",
    contested: "Another key holds this name; this one is shown with its fingerprint.",
  };

  const TRANSPORT_NOTES = {
    mesh: "Reached only over the gossip mesh: its news comes hop by hop, and it reads as MISSING after the mesh's longer silence.",
    hybrid: "On the MQTT plaza and on the gossip mesh.",
  };

  const PART_TITLES = {
    broker: "Broker",
    tasks: "Tasks",
    storage: "Storage",
    identity: "Identity",
    network: "Network",
    mesh: "Mesh",
    sites: "Site hub",
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  }

  function shortDid(did) {
    const text = String(did || "");
    return text.length <= 24 ? text : text.slice(0, 16) + "…" + text.slice(-6);
  }

  function statusClass(status) {
    return STATUSES.includes(status) ? "status-" + status.toLowerCase() : "status-unknown";
  }

  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function ageText(ms) {
    if (!isNumber(ms)) return "";
    const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    if (s < 60) return s + " s ago";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s ago";
    if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
    return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h ago";
  }

  function clockText(ms) {
    return new Date(ms).toLocaleTimeString([], {
      hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
    });
  }

  function durationText(ms) {
    const s = Math.round(ms / 1000);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function byStatusThenName(a, b) {
    const sa = STATUS_ORDER[a.status] ?? 3;
    const sb = STATUS_ORDER[b.status] ?? 3;
    if (sa !== sb) return sa - sb;
    const byName = String(a.name || "").localeCompare(String(b.name || ""));
    return byName !== 0 ? byName : String(a.did).localeCompare(String(b.did));
  }

  function changeKey(did, change) {
    return [did, change.at_ms, change.old, change.new, change.cause].join("|");
  }

  // --- history --------------------------------------------------------------------------

  function addToHistory(did, change) {
    const h = state.history;
    if (change.cause === "forgotten") {
      h.changes.delete(did);
      h.gaps.delete(did);
      return;
    }
    if (!isNumber(change.at_ms)) return;
    const list = h.changes.get(did) || [];
    const key = changeKey(did, change);
    if (list.some((c) => changeKey(did, c) === key)) return;
    list.push({ at_ms: change.at_ms, old: change.old ?? null, new: change.new, cause: change.cause });
    list.sort((a, b) => a.at_ms - b.at_ms);
    if (list.length > h.perPeer) {
      list.splice(0, list.length - h.perPeer);
      h.gaps.set(did, list[0].at_ms);
    }
    h.changes.set(did, list);
  }

  function addToLog(change, fresh) {
    const key = changeKey(change.did, change);
    if (state.log.some((c) => changeKey(c.did, c) === key)) return;
    state.log.push(change);
    state.log.sort((a, b) => (b.at_ms ?? 0) - (a.at_ms ?? 0));
    state.log.length = Math.min(state.log.length, state.history.logLimit);
    if (fresh) state.fresh.set(key, Date.now());
  }

  function applyHistory(data) {
    if (!data || typeof data !== "object" || typeof data.peers !== "object" || !data.peers) return;
    const h = state.history;
    const local = h.changes;
    h.loaded = true;
    h.windowMs = isNumber(data.window_ms) ? data.window_ms : DEFAULT_WINDOW_MS;
    h.sinceMs = isNumber(data.since_ms) ? data.since_ms : null;
    h.completeFromMs = isNumber(data.complete_from_ms) ? data.complete_from_ms : null;
    const limits = data.limits || {};
    if (isNumber(limits.per_peer)) h.perPeer = limits.per_peer;
    if (isNumber(limits.recent)) h.logLimit = limits.recent;
    h.changes = new Map();
    h.gaps = new Map();
    for (const [did, entry] of Object.entries(data.peers)) {
      if (!entry || !Array.isArray(entry.changes)) continue;
      for (const change of entry.changes) if (change) addToHistory(did, change);
      if (isNumber(entry.complete_from_ms)) h.gaps.set(did, entry.complete_from_ms);
    }
    // What the stream delivered while this was on its way stays: duplicates fold together.
    for (const [did, list] of local) for (const change of list) addToHistory(did, change);
    if (Array.isArray(data.recent)) {
      for (const change of data.recent) {
        if (change && typeof change.did === "string") addToLog(change, false);
      }
    }
    renderPeers();
    renderLog();
  }

  // How much time the strips span, ending now: the history's window (an hour), or, while
  // the node has watched for less than that, the first of SPANS_MIN that covers the time
  // since it began, so that a young node's strips show what it has seen rather than an
  // hour of grey.
  function timeSpan(now) {
    const h = state.history;
    if (h.sinceMs === null) return h.windowMs;
    const watched = now - h.sinceMs;
    for (const minutes of SPANS_MIN) {
      if (minutes * 60000 >= watched) return Math.min(h.windowMs, minutes * 60000);
    }
    return h.windowMs;
  }

  function spanText(ms, fraction, first) {
    const s = Math.round((ms * fraction) / 1000);
    const text = ms > 120000 && s % 60 === 0 ? [s / 60, " min"] : [s, " s"];
    return "−" + text[0] + (first ? text[1] : "");
  }

  function renderAxis(span) {
    const labels = [1, 0.75, 0.5, 0.25].map((f, i) => spanText(span, f, i === 0));
    labels.push("now");
    const axis = $("axis");
    const text = labels.join(" ");
    if (axis.dataset.text === text) return;
    axis.dataset.text = text;
    axis.replaceChildren(...labels.map((label) => el("span", null, label)));
    const hour = span >= state.history.windowMs;
    $("axis-title").textContent = hour
      ? "Status over the last hour"
      : "Status since this node began watching, " + durationText(span) + " ago";
  }

  // The segments of one peer's strip between start and now: [from, to, status]. The
  // status before the first change kept is that change's "old" (null: not known yet).
  function segments(peer, start, now) {
    const h = state.history;
    const changes = (h.changes.get(peer.did) || []).filter((c) => c.at_ms > start && c.at_ms <= now);
    const known = Math.max(
      start,
      h.sinceMs ?? now,
      h.completeFromMs ?? start,
      h.gaps.get(peer.did) ?? start,
    );
    const out = [];
    if (known > start) out.push([start, Math.min(known, now), "unwatched"]);
    let status = changes.length ? changes[0].old : peer.status;
    let from = known;
    for (const change of changes) {
      if (change.at_ms > from && status) out.push([from, change.at_ms, status]);
      from = Math.max(from, change.at_ms);
      status = change.new;
    }
    if (now > from && status) out.push([from, now, status]);
    return out;
  }

  function drawTimeline(peer, now, windowMs) {
    const start = now - windowMs;
    const width = 1000; // viewBox units across the strip; stretched to the cell's width
    const chart = svg("svg", {
      class: "timeline",
      viewBox: `0 0 ${width} 10`,
      preserveAspectRatio: "none",
      role: "img",
    });
    const px = state.stripPx || 300; // the new chart is not laid out yet
    const minUnits = (MIN_SEGMENT_PX / px) * width;
    const totals = {};
    for (const [from, to, status] of segments(peer, start, now)) {
      const w = Math.max(((to - from) / windowMs) * width, minUnits);
      const x = Math.min(((from - start) / windowMs) * width, width - w); // widened inwards
      const cls = status === "unwatched" ? "seg-unwatched"
        : STATUSES.includes(status) ? "seg-" + status.toLowerCase() : "seg-unknown";
      const rect = svg("rect", { class: "seg " + cls, x: x.toFixed(2), y: 0, width: w.toFixed(2), height: 10 });
      rect.dataset.status = status;
      const label = status === "unwatched" ? "not watched yet" : status;
      const title = svg("title");
      title.textContent = `${label}: ${clockText(from)}–${clockText(to)} (${durationText(to - from)})`;
      rect.append(title);
      chart.append(rect);
      if (status !== "unwatched") totals[status] = (totals[status] || 0) + (to - from);
    }
    for (const fraction of TICKS) {
      const x = fraction * width;
      chart.append(svg("line", { class: "tick", x1: x, x2: x, y1: 0, y2: 10 }));
    }
    const summary = Object.entries(totals)
      .sort((a, b) => b[1] - a[1])
      .map(([status, ms]) => `${status.toLowerCase()} ${durationText(ms)}`);
    chart.setAttribute(
      "aria-label",
      "Last " + durationText(windowMs) + ": " + (summary.length ? summary.join(", ") : "not watched yet"),
    );
    return chart;
  }

  // --- rendering: node, peers, log --------------------------------------------------------

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

  function peerRow(peer, now, span) {
    const row = el("tr");
    row.dataset.did = String(peer.did);

    const name = el("td", "name");
    const label = el("span", "peer-name", peer.name || "(unnamed)");
    if (peer.claimed_name && peer.claimed_name !== peer.name) {
      label.title = NAME_NOTES[peer.name_status] || "";
    }
    name.append(label);
    if (peer.self) name.append(el("span", "self-tag", "(this node)"));
    if (peer.trust === "new") name.append(el("span", "tag tag-new", "new"));
    if (peer.trust === "member") name.append(el("span", "tag tag-member", "member"));
    if (peer.shared_key) name.append(el("span", "tag tag-alarm", "key used twice"));
    if (peer.reports > 0) {
      // Its assigned observers probed it and got no answer; from three on it goes MISSING sooner.
      const reports = el("span", "tag tag-alarm", `${peer.reports} unreachable report${peer.reports > 1 ? "s" : ""}`);
      reports.title = "assigned observers that probed this peer and got no answer (docs/mesh.md)";
      name.append(reports);
    }
    if (peer.transport && peer.transport !== "plaza") {
      // How the peer is reached: only plaza peers go untagged (the usual case).
      const via = el("span", "tag tag-via", peer.transport === "mesh" ? "mesh only" : "plaza + mesh");
      via.title = TRANSPORT_NOTES[peer.transport] || "";
      name.append(via);
    }
    const abbr = el("abbr", "did peer-did", shortDid(peer.did));
    abbr.title = String(peer.did);
    name.append(abbr);
    row.append(name);

    const statusCell = el("td", "status");
    statusCell.append(el("span", "badge " + statusClass(peer.status), peer.status));
    row.append(statusCell);

    const strip = el("td", "timeline-cell");
    strip.append(drawTimeline(peer, now, span));
    row.append(strip);

    const eventCell = el("td", "event");
    eventCell.append(el("span", "event-kind", peer.last_event || ""));
    if (peer.last_event_at) {
      const time = el("time", "age", ageText(peer.last_event_at_ms));
      time.dateTime = String(peer.last_event_at);
      time.title = String(peer.last_event_at);
      time.dataset.at = String(peer.last_event_at_ms ?? "");
      eventCell.append(time);
    }
    row.append(eventCell);

    const restarts = el("td", "num restarts", peer.restarts ?? 0);
    restarts.append(el("span", "cell-label", peer.restarts === 1 ? " restart" : " restarts"));
    row.append(restarts);
    return row;
  }

  function measureStrip() {
    const cell = document.querySelector("#peer-rows .timeline");
    if (cell && cell.clientWidth) state.stripPx = cell.clientWidth;
  }

  function renderPeers() {
    measureStrip();
    const now = Date.now();
    const span = timeSpan(now);
    renderAxis(span);
    const rows = [...state.peers.values()].sort(byStatusThenName).map((p) => peerRow(p, now, span));
    $("peer-rows").replaceChildren(...rows);
    $("empty").hidden = rows.length > 0;
    renderCounts();
  }

  function logEntry(change) {
    const item = el("li");
    if (state.fresh.has(changeKey(change.did, change))) item.className = "fresh";
    item.dataset.did = String(change.did);
    const time = el("time", "log-time", isNumber(change.at_ms) ? clockText(change.at_ms) : "");
    if (change.at) time.dateTime = String(change.at);
    item.append(time);
    const peer = state.peers.get(change.did);
    item.append(el("span", "log-name", change.name || (peer && peer.name) || shortDid(change.did)));
    const move = el("span", "log-move");
    if (change.cause === "forgotten") {
      move.append(el("span", "badge badge-small status-unknown", "forgotten"));
    } else {
      if (change.old) {
        move.append(el("span", "badge badge-small " + statusClass(change.old), change.old));
        move.append(el("span", "arrow", "→"));
      } else {
        move.append(el("span", "arrow", "new →"));
      }
      move.append(el("span", "badge badge-small " + statusClass(change.new), change.new));
    }
    const what = el("span", "log-what");
    what.append(move, el("span", "log-cause", change.cause || ""));
    item.append(what);
    return item;
  }

  function renderLog() {
    const now = Date.now();
    for (const [key, at] of state.fresh) if (now - at > FRESH_MS) state.fresh.delete(key);
    const items = state.log.map(logEntry);
    $("log").replaceChildren(...items);
    $("log-empty").hidden = items.length > 0;
  }

  function tickAges() {
    for (const cell of document.querySelectorAll("#peer-rows .age")) {
      const at = Number(cell.dataset.at);
      if (cell.dataset.at !== "" && isFinite(at)) cell.textContent = ageText(at);
    }
  }

  function showConnected(connected) {
    state.connected = connected;
    $("connection").hidden = connected;
  }

  // --- rendering: health and rooms --------------------------------------------------------

  function partDetail(name, part) {
    if (name === "broker") {
      const where = [part.endpoint, part.protocol ? "MQTT " + part.protocol : null].filter(Boolean).join(", ");
      if (part.connected) return "connected" + (where ? " · " + where : "");
      return "not connected" + (where ? " · " + where : "") + (part.last_error ? " · " + part.last_error : "");
    }
    if (part.ok === false) return String(part.error || "not ok");
    if (name === "tasks") return "all running";
    if (name === "storage") return part.held ? `ok · ${part.held} held` : "ok";
    if (name === "identity") return "this key is ours alone";
    if (name === "network") return part.mode ? String(part.mode) : "ok";
    if (name === "mesh") {
      const bits = [];
      if (isNumber(part.peers)) bits.push(`${part.peers} peer${part.peers === 1 ? "" : "s"}`);
      if (isNumber(part.rounds)) bits.push(`${part.rounds} rounds`);
      if (isNumber(part.graylisted) && part.graylisted) bits.push(`${part.graylisted} graylisted`);
      if (part.url) bits.push(String(part.url));
      return bits.length ? bits.join(" · ") : "ok";
    }
    if (name === "sites") {
      const bits = [];
      if (isNumber(part.connections)) bits.push(`${part.connections} browser${part.connections === 1 ? "" : "s"}`);
      if (isNumber(part.rooms)) bits.push(`${part.rooms} room${part.rooms === 1 ? "" : "s"}`);
      const probe = part.probe || {};
      if (isNumber(probe.last_round_trip_ms)) bits.push(`probe ${probe.last_round_trip_ms} ms`);
      if (part.ghost_forced) bits.push("ghost mode forced");
      return bits.length ? bits.join(" · ") : "ok";
    }
    return "ok";
  }

  function healthRow(title, ok, detail) {
    const row = el("div", ok === true ? "ok" : ok === false ? "bad" : "info");
    row.append(el("span", "dot"));
    const dt = el("dt", null, title);
    row.append(dt);
    row.append(el("dd", null, detail));
    return row;
  }

  function renderHealth(health) {
    const rows = [];
    const overall = $("health-overall");
    if (!health || typeof health !== "object") {
      overall.className = "badge status-unknown";
      overall.textContent = "unknown";
      $("health").replaceChildren();
      return;
    }
    overall.className = "badge " + (health.ok ? "status-online" : "status-bad");
    overall.textContent = health.ok ? "healthy" : "not healthy";
    const broker = health.broker;
    if (broker && typeof broker === "object") {
      rows.push(healthRow(PART_TITLES.broker, Boolean(broker.connected), partDetail("broker", broker)));
    }
    // Every part that reports "ok" gets a row: the known ones first, any new one after.
    const names = Object.keys(health).filter((name) => {
      const part = health[name];
      return name !== "broker" && part && typeof part === "object" && "ok" in part;
    });
    const known = Object.keys(PART_TITLES);
    names.sort((a, b) => {
      const ia = known.indexOf(a) < 0 ? known.length : known.indexOf(a);
      const ib = known.indexOf(b) < 0 ? known.length : known.indexOf(b);
      return ia - ib || a.localeCompare(b);
    });
    for (const name of names) {
      const part = health[name];
      rows.push(healthRow(PART_TITLES[name] || name, part.ok === true, partDetail(name, part)));
    }
    if (health.booting) rows.push(healthRow("Start", null, "first sync under way"));
    const keys = health.keys;
    if (keys && typeof keys === "object" && isNumber(keys.known)) {
      rows.push(healthRow("Keys", null, `${keys.known} known · ${keys.proven ?? 0} proven · ${keys.unproven ?? 0} new`));
    }
    $("health").replaceChildren(...rows);
  }

  function renderRejections(groups) {
    const box = $("rejections");
    if (!Array.isArray(groups) || groups.length === 0) {
      box.replaceChildren(el("p", "empty", "Nothing counted."));
      return;
    }
    const parts = [];
    for (const group of groups) {
      if (!group || typeof group !== "object") continue;
      const head = el("h4");
      head.append(el("span", null, group.title || group.metric || ""));
      head.append(el("span", "num", group.total ?? 0));
      head.title = String(group.metric || "");
      parts.push(head);
      const reasons = Object.entries(group.by_reason || {});
      if (reasons.length === 0) continue;
      const list = el("ul", "reasons");
      for (const [reason, count] of reasons) {
        const item = el("li");
        item.append(el("span", "reason", reason));
        item.append(el("span", "num", count));
        list.append(item);
      }
      parts.push(list);
    }
    box.replaceChildren(...parts);
  }

  function countText(room) {
    if (room.count === null || room.count === undefined) {
      return isNumber(room.fewer_than) ? `fewer than ${room.fewer_than} here` : "… here";
    }
    return `${room.count} here`;
  }

  function renderRooms(rooms) {
    const list = $("rooms");
    const note = $("rooms-note");
    if (rooms === null || rooms === undefined) {
      list.replaceChildren();
      note.textContent = "This node runs no site hub.";
      note.hidden = false;
      return;
    }
    const items = [];
    for (const room of Array.isArray(rooms) ? rooms : []) {
      if (!room || typeof room !== "object") continue;
      const item = el("li");
      item.dataset.key = String(room.key || "");
      if (room.name) item.append(el("span", "room-name", room.name));
      const key = el("span", "room-key", room.key || "");
      key.title = "Room key (the origin and the room name are not sent anywhere)";
      item.append(key);
      item.append(el("span", "room-count", countText(room)));
      items.push(item);
    }
    list.replaceChildren(...items);
    note.textContent = "No room is watched right now.";
    note.hidden = items.length > 0;
  }

  // --- data -----------------------------------------------------------------------------

  function applySnapshot(data) {
    if (!data || typeof data !== "object" || !Array.isArray(data.peers)) return;
    state.node = data.node || null;
    state.peers = new Map();
    for (const peer of data.peers) {
      if (peer && typeof peer.did === "string") state.peers.set(peer.did, peer);
    }
    // A peer the snapshot no longer has was forgotten while we were not listening.
    for (const did of [...state.history.changes.keys()]) {
      if (!state.peers.has(did)) state.history.changes.delete(did);
    }
    renderNode();
    renderPeers();
  }

  function applyChange(change) {
    if (!change || typeof change.did !== "string") return;
    addToHistory(change.did, change);
    addToLog(change, true);
    if (change.cause === "forgotten") {
      state.peers.delete(change.did);
    } else {
      const known = state.peers.get(change.did);
      const peer = known ? { ...known } : { did: change.did, name: change.name, restarts: 0 };
      peer.status = change.new;
      if (change.name) peer.name = change.name;
      state.peers.set(change.did, peer);
    }
    renderPeers();
    renderLog();
    scheduleRefresh();
  }

  async function getJson(path) {
    const response = await fetch(path, { cache: "no-store" });
    if (!response.ok) throw new Error(path + " answered " + response.status);
    return response.json();
  }

  async function loadHistory() {
    const request = ++state.historyRequest;
    try {
      const data = await getJson("v1/history");
      if (request === state.historyRequest) applyHistory(data);
    } catch (err) {
      // An older node has no history: the strips show only what this page has seen.
      if (!state.history.loaded && state.history.sinceMs === null) {
        state.history.sinceMs = Date.now();
        renderPeers();
      }
    }
  }

  async function loadNode() {
    try {
      const data = await getJson("v1/node");
      renderHealth(data.health);
      renderRejections(data.rejections);
      renderRooms(data.rooms);
    } catch (err) {
      // The stream's error handler reports an outage; health keeps its last known state.
    }
  }

  function scheduleRefresh() {
    if (state.refreshTimer !== null) return;
    state.refreshTimer = setTimeout(async () => {
      state.refreshTimer = null;
      try {
        applySnapshot(await getJson("v1/peers"));
      } catch (err) {
        // The stream's error handler reports the outage; nothing more to do here.
      }
      loadNode();
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
    source.addEventListener("snapshot", (event) => {
      applySnapshot(parse(event));
      loadHistory();
    });
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
    renderLog();
    connect();
    loadNode();
    setInterval(tickAges, 1000);
    // Trust marks and names settle without a status change: poll the peers too.
    setInterval(() => {
      if (!document.hidden) scheduleRefresh();
    }, NODE_POLL_MS);
    setInterval(() => {
      if (!document.hidden) renderPeers();
    }, REDRAW_MS);
    let resizeTimer = null;
    addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(renderPeers, 200);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
