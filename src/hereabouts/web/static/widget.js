// hereabouts site-presence widget: "N here" for a site's rooms, never who.
//
// Drop-in ES module, no build step, no external URLs:
//   <script type="module" src="https://hub.example/widget.js"
//           data-origin="https://example.com" data-rooms="lobby,docs"
//           data-target="#presence"></script>
//
// What it does, and why:
// * Nothing leaves the browser until the visitor opts in, per origin (consent in
//   localStorage). Ghost mode is a hard off switch, also persisted: while on, the widget
//   does not even open its connection.
// * The visitor signs its own heartbeats (WebCrypto Ed25519) with a fresh key per room per
//   epoch (epoch = floor(unix ms / epoch length)); keys are non-extractable and never stored.
//   The hub verifies them with the same code as every Python participant, so the bytes
//   signed here are exactly the bytes sent: SIGNING_TAG ‖ body, body = JSON.stringify(...).
// * Room keys are computed here (SHA-256, as hereabouts/sites/rooms.py does) from the page's
//   origin, and sent with their room names: the hub recomputes each from the origin the
//   browser put on the WebSocket handshake and counts this page in its own site's rooms
//   only. (data-origin may name another origin only if the hub's operator made the page's
//   origin an alias of it.) The hub sends counts only.
// * When the hub asks for it (hello.pow_bits > 0), each new key comes with a proof of work:
//   a nonce such that SHA-256(POW_TAG ‖ challenge ‖ did ‖ nonce) starts with that many zero
//   bits, found by a small synchronous SHA-256 below (WebCrypto's digest costs a promise
//   per try). It travels beside the signed envelope, never inside it.
// * All text is set with textContent; styles through the CSSOM (allowed by a strict CSP).

const SIGNING_TAG = "hereabouts/v1/event\n";
const ROOM_KEY_TAG = "hereabouts/v1/site-room\n";
const ROOM_KEY_LENGTH = 26;
const MAX_ROOM_LENGTH = 64;
const B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const ED25519_MULTICODEC = [0xed, 0x01];
const STORAGE_PREFIX = "hereabouts/v1/";
const RECONNECT_MAX_MS = 30000; // back-off ceiling: a hub that is down is not hammered
const POW_TAG = "hereabouts/v1/site-pow\n";
const POW_YIELD_EVERY = 65536; // tries between yields to the page while searching
const CLOSE_POLICY = 1008; // the hub refuses this page (its origin): do not come back
const REFUSALS = new Set(["wrong_origin", "origin_not_allowed", "origin_invalid", "origin_missing"]);

const utf8 = new TextEncoder();

// --- encodings --------------------------------------------------------------------------

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function framed(bytes) {
  const out = new Uint8Array(4 + bytes.length);
  new DataView(out.buffer).setUint32(0, bytes.length); // big-endian, as rooms.py
  out.set(bytes, 4);
  return out;
}

export function base32(bytes) {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += B32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += B32[(value << (5 - bits)) & 31];
  return out;
}

export function base58(bytes) {
  const digits = [0];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += digits[i] << 8;
      digits[i] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = Math.floor(carry / 58);
    }
  }
  let out = "";
  for (const byte of bytes) {
    if (byte !== 0) break;
    out += "1";
  }
  for (let i = digits.length - 1; i >= 0; i--) out += B58[digits[i]];
  return out;
}

function base64(bytes) {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text); // padded, canonical: the form wire.py insists on
}

export function didFromPublicKey(raw) {
  return "did:key:z" + base58(concat(Uint8Array.from(ED25519_MULTICODEC), raw));
}

// --- rooms ------------------------------------------------------------------------------

export function normalizeOrigin(text) {
  const origin = new URL(String(text).trim()).origin; // lower case, punycode, no default port
  if (!origin || origin === "null") throw new Error("this origin cannot be counted");
  return origin;
}

export function normalizeRoom(room) {
  const name = String(room).normalize("NFC");
  const length = [...name].length; // code points, as Python counts them
  if (length < 1 || length > MAX_ROOM_LENGTH) throw new Error("a room name is 1-64 characters");
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) throw new Error("control character in room");
  return name;
}

export async function roomKey(origin, room) {
  const data = concat(
    utf8.encode(ROOM_KEY_TAG),
    framed(utf8.encode(normalizeOrigin(origin))),
    framed(utf8.encode(normalizeRoom(room))),
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return base32(digest).slice(0, ROOM_KEY_LENGTH).toLowerCase();
}

// --- proof of work -----------------------------------------------------------------------

const SHA256_K = Uint32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const SHA256_INIT = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
const sha256W = new Uint32Array(64);

// One SHA-256 compression of bytes[at, at + 64) into the eight words of state.
function compress(state, bytes, at) {
  const w = sha256W;
  for (let i = 0; i < 16; i++) {
    const j = at + 4 * i;
    w[i] = (bytes[j] << 24) | (bytes[j + 1] << 16) | (bytes[j + 2] << 8) | bytes[j + 3];
  }
  for (let i = 16; i < 64; i++) {
    const x = w[i - 15];
    const y = w[i - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i]) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0; state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0; state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0; state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0; state[7] = (state[7] + h) | 0;
}

// SHA-256 of prefix ‖ nonce for many nonces: the prefix's whole blocks are hashed once.
class PowHasher {
  constructor(prefix) {
    this.length = prefix.length;
    const whole = prefix.length - (prefix.length % 64);
    this.mid = Int32Array.from(SHA256_INIT);
    for (let at = 0; at < whole; at += 64) compress(this.mid, prefix, at);
    this.tail = prefix.slice(whole);
    this.block = new Uint8Array(128);
    this.state = new Int32Array(8);
  }

  // The first word of SHA-256(prefix ‖ digits); the whole digest goes to this.state.
  first(digits) {
    const block = this.block;
    block.fill(0);
    block.set(this.tail);
    let n = this.tail.length;
    for (let i = 0; i < digits.length; i++) block[n++] = digits.charCodeAt(i);
    block[n++] = 0x80;
    const end = n + 8 <= 64 ? 64 : 128;
    const bits = (this.length + digits.length) * 8; // below 2^32: prefixes are short
    new DataView(block.buffer).setUint32(end - 4, bits);
    this.state.set(this.mid);
    compress(this.state, block, 0);
    if (end === 128) compress(this.state, block, 64);
    return this.state[0];
  }
}

function powPrefix(challenge, did) {
  return concat(utf8.encode(POW_TAG), challenge, utf8.encode(did));
}

// The proof-of-work digest, for tests: SHA-256(POW_TAG ‖ challenge ‖ did ‖ nonce), in hex.
export function powDigest(challenge, did, nonce) {
  const hasher = new PowHasher(powPrefix(challenge, did));
  hasher.first(String(nonce));
  return Array.from(hasher.state, (word) => (word >>> 0).toString(16).padStart(8, "0")).join("");
}

// The smallest nonce (decimal digits) whose digest starts with `bits` zero bits (1-31).
export async function solvePow(challenge, did, bits) {
  const hasher = new PowHasher(powPrefix(challenge, did));
  const shift = 32 - bits;
  for (let n = 0; ; n++) {
    const digits = String(n);
    if (hasher.first(digits) >>> shift === 0) return digits;
    if ((n + 1) % POW_YIELD_EVERY === 0) await new Promise((done) => setTimeout(done, 0));
  }
}

function fromBase64Url(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(raw, (ch) => ch.charCodeAt(0));
}

// --- signing ----------------------------------------------------------------------------

export async function ephemeralKey() {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, did: didFromPublicKey(raw) };
}

// The sealed envelope, as text: {"body":<body>,"signer":<did>,"sig":<base64>}, where the
// signature covers SIGNING_TAG ‖ the exact body bytes placed in the envelope.
export async function seal(kind, key, fields) {
  const body = JSON.stringify({ kind, did: key.did, ...fields });
  const signed = concat(utf8.encode(SIGNING_TAG), utf8.encode(body));
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, signed));
  return `{"body":${body},"signer":${JSON.stringify(key.did)},"sig":"${base64(sig)}"}`;
}

// --- persisted choices ------------------------------------------------------------------

function stored(name, origin) {
  try {
    return localStorage.getItem(STORAGE_PREFIX + name + "/" + origin);
  } catch {
    return null; // storage blocked: nothing is remembered, so nothing is granted
  }
}

function store(name, origin, value) {
  try {
    if (value === null) localStorage.removeItem(STORAGE_PREFIX + name + "/" + origin);
    else localStorage.setItem(STORAGE_PREFIX + name + "/" + origin, value);
  } catch {
    // Storage blocked: the choice holds for this page only.
  }
}

// --- the heartbeat schedule -------------------------------------------------------------

// When to heartbeat after one sent at `sentAt`, by the cadence in the hub's hello; the
// schedule of hereabouts/core/rotation.py, draw for draw. Every interval; a heartbeat that
// would cross an epoch boundary is sent instead at a random point of the spread after it,
// with a fresh key. That first heartbeat of the epoch draws the epoch's phase over a whole
// interval: past the spread, the next heartbeat comes then; inside it, the cadence goes on
// from the first. With the default spread of one interval the first heartbeat of an epoch
// takes the place of the regular one, and a hub gets the steady rate through a boundary.
export function nextHeartbeat(sentAt, cadence, random = Math.random) {
  const { heartbeat_interval_ms: interval, did_duration_ms: duration, rotation_spread_ms: spread } = cadence;
  const start = Math.floor(sentAt / duration) * duration;
  let regular = sentAt + interval;
  if (sentAt - start < spread) {
    const phase = Math.floor(random() * interval);
    if (phase >= spread) regular = start + phase;
  }
  const boundary = start + duration;
  return regular < boundary ? regular : boundary + Math.floor(random() * spread);
}

// --- the presence session (no DOM) ------------------------------------------------------

class Presence {
  constructor({ hubUrl, origin, rooms, onChange }) {
    this.hubUrl = hubUrl;
    this.origin = origin;
    this.rooms = rooms; // [{name, key}]
    this.current = rooms[0];
    this.onChange = onChange;
    this.counts = new Map(); // room key -> {count, fewer_than}
    this.status = "idle"; // idle | connecting | live | offline | refused
    this.ws = null;
    this.timer = null;
    this.reconnectTimer = null;
    this.backoffMs = 1000;
    this.offsetMs = 0; // hub clock minus ours: signed times follow the hub's clock
    this.cadence = null; // from the hub's hello
    this.forcedGhost = false; // the hub forces ghost mode on everyone: never send an event
    this.challenge = null; // this connection's proof-of-work challenge, when the hub asks
    this.connection = 0; // numbers connections: a key's proof of work holds for one
    this.key = null; // {privateKey, did, epoch, room, pow: {connection, nonce}}
    this.powMs = null; // how long the last proof of work took (shown to tests)
    this.wanted = false;
  }

  now() {
    return Date.now() + this.offsetMs;
  }

  start() {
    this.wanted = true;
    clearTimeout(this.reconnectTimer);
    if (this.ws || this.status === "refused") return;
    this.status = "connecting";
    this.onChange();
    const ws = new WebSocket(this.hubUrl);
    this.ws = ws;
    ws.onmessage = (message) => this.receive(message.data);
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopBeating();
      if (event.code === CLOSE_POLICY || this.status === "refused") {
        this.status = "refused"; // this hub does not count this page: do not retry
        this.onChange();
        return;
      }
      this.status = this.wanted ? "offline" : "idle";
      this.onChange();
      if (this.wanted) {
        this.reconnectTimer = setTimeout(() => this.start(), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, RECONNECT_MAX_MS);
      }
    };
  }

  // Stop: one signed leave for the room we are counted in, then close.
  async stop() {
    this.wanted = false;
    clearTimeout(this.reconnectTimer);
    this.stopBeating();
    const ws = this.ws;
    if (!ws) return;
    await this.sendLeave();
    this.ws = null;
    this.status = "idle";
    ws.close(1000);
    this.onChange();
  }

  receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (frame.type === "hello") {
      this.offsetMs = frame.now_ms - Date.now();
      this.cadence = frame;
      this.forcedGhost = frame.ghost_forced === true;
      this.challenge = frame.pow_bits > 0 ? fromBase64Url(frame.pow_challenge) : null;
      this.connection += 1;
      this.backoffMs = 1000;
      this.status = "live";
      this.send({ type: "watch", rooms: this.rooms.map((r) => ({ name: r.name, key: r.key })) });
      if (!this.forcedGhost) this.beat();
    } else if (frame.type === "counts") {
      for (const [key, count] of Object.entries(frame.rooms)) this.counts.set(key, count);
    } else if (frame.type === "error" && REFUSALS.has(frame.reason)) {
      this.status = "refused"; // wrong data-origin, or an origin the hub does not serve
      this.stopBeating();
      if (this.ws) this.ws.close(1000);
    }
    this.onChange();
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  sendRaw(text) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  epochOf(ms) {
    return Math.floor(ms / this.cadence.did_duration_ms);
  }

  async heartbeat() {
    const at = this.now();
    const epoch = this.epochOf(at);
    const room = this.current;
    if (!this.key || this.key.epoch !== epoch || this.key.room !== room.key) {
      this.key = { ...(await ephemeralKey()), epoch, room: room.key }; // old key dropped here
    }
    const fields = { room_key: room.key, epoch, at_ms: at };
    const sealed = await seal("site_heartbeat", this.key, fields);
    const pow = await this.proofOfWork(this.key);
    if (this.wanted && this.current === room) this.sendRaw(`{"type":"event","sealed":${sealed}${pow}}`);
    // A leave signed now, dated like this heartbeat, stays valid for a stale timeout: sent
    // synchronously when the page goes away, where there is no time left to sign.
    const leave = await seal("site_leave", this.key, fields);
    if (this.current === room) this.preparedLeave = `{"type":"event","sealed":${leave}}`;
    return at;
  }

  // The "pow" member for a heartbeat of `key`: found once per key per connection and sent
  // with each of its heartbeats on that connection (the hub checks it only while it does
  // not hold the key yet, so a lost first heartbeat costs nothing).
  async proofOfWork(key) {
    if (!this.challenge || !this.cadence.pow_bits) return "";
    if (!key.pow || key.pow.connection !== this.connection) {
      const connection = this.connection;
      const started = performance.now();
      const nonce = await solvePow(this.challenge, key.did, this.cadence.pow_bits);
      this.powMs = performance.now() - started;
      key.pow = { connection, nonce };
    }
    return `,"pow":"${key.pow.nonce}"`;
  }

  // The page is going away: the leave signed with the last heartbeat, now, synchronously.
  sendPreparedLeave() {
    if (this.preparedLeave) this.sendRaw(this.preparedLeave);
    this.preparedLeave = null;
  }

  async sendLeave() {
    const key = this.key;
    this.key = null;
    this.preparedLeave = null;
    if (!key || !this.cadence) return;
    const at = this.now();
    if (key.epoch < this.epochOf(at) - 1) return; // that DID is long stale anyway
    const sealed = await seal("site_leave", key, { room_key: key.room, epoch: key.epoch, at_ms: at });
    this.sendRaw(`{"type":"event","sealed":${sealed}}`);
  }

  // Heartbeat now, then on the hub's schedule (nextHeartbeat).
  async beat() {
    this.stopBeating();
    if (this.forcedGhost) return;
    const generation = (this.generation = (this.generation || 0) + 1);
    const sentAt = await this.heartbeat();
    if (generation !== this.generation || !this.wanted) return;
    const due = nextHeartbeat(sentAt, this.cadence);
    this.timer = setTimeout(() => this.beat(), Math.max(0, due - this.now()));
  }

  stopBeating() {
    clearTimeout(this.timer);
    this.timer = null;
    this.generation = (this.generation || 0) + 1;
  }

  async switchRoom(room) {
    if (room === this.current) return;
    this.stopBeating();
    await this.sendLeave();
    this.current = room;
    if (this.status === "live") this.beat();
    this.onChange();
  }
}

// --- the widget (DOM) -------------------------------------------------------------------

function el(tag, text, style) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (style) Object.assign(node.style, style);
  return node;
}

const BUTTON = {
  font: "inherit",
  padding: "0.3em 0.8em",
  border: "1px solid currentColor",
  borderRadius: "1em",
  background: "transparent",
  color: "inherit",
  cursor: "pointer",
};

const GHOST_NOTE = "Ghost mode is on: nothing is shared and you are not counted, on any visit, until you turn it off.";
const FORCED_GHOST_NOTE = "This site has turned ghost mode on for every visitor: nothing is shared and nobody is counted.";

function describeCount(count) {
  if (!count) return "… here";
  if (count.count === null || count.count === undefined) return `fewer than ${count.fewer_than} here`;
  return `${count.count} here`;
}

function describeDuration(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds < 120) return `${seconds} seconds`;
  return `${Math.round(seconds / 60)} minutes`;
}

class Widget {
  constructor({ mount, origin, rooms, hubUrl }) {
    this.origin = origin;
    this.consent = stored("consent", origin) === "granted";
    this.ghost = stored("ghost", origin) === "on";
    this.presence = new Presence({ hubUrl, origin, rooms, onChange: () => this.render() });
    this.build(mount);
    this.render();
    if (this.consent && !this.ghost) this.presence.start();
    addEventListener("pagehide", () => this.presence.sendPreparedLeave());
  }

  build(mount) {
    const root = el("div", null, { display: "inline-block", position: "relative", font: "inherit" });
    root.className = "hereabouts-widget";
    root.setAttribute("role", "region");
    root.setAttribute("aria-label", "Who is here");

    this.indicator = el("button", null, { ...BUTTON });
    this.indicator.type = "button";
    this.indicator.className = "hb-indicator";
    this.indicator.setAttribute("aria-haspopup", "dialog");
    this.indicator.setAttribute("aria-expanded", "false");
    this.count = el("span");
    this.count.className = "hb-count";
    this.count.setAttribute("aria-live", "polite");
    this.indicator.append(this.count);
    this.indicator.addEventListener("click", () => this.toggle());

    this.prompt = el("div", null, { display: "flex", gap: "0.5em", alignItems: "center", flexWrap: "wrap" });
    this.prompt.className = "hb-prompt";
    const question = el("span", "Show that you are here? Only a count is shared.");
    const yes = el("button", "Count me in", BUTTON);
    yes.type = "button";
    yes.className = "hb-optin";
    yes.addEventListener("click", () => this.grant());
    const why = el("button", "What is shared?", BUTTON);
    why.type = "button";
    why.className = "hb-about";
    why.setAttribute("aria-haspopup", "dialog");
    why.addEventListener("click", () => this.toggle(true));
    this.prompt.append(question, yes, why);

    this.panel = el("div", null, {
      position: "absolute",
      right: "0",
      top: "calc(100% + 0.4em)",
      zIndex: "2147483000",
      width: "22em",
      maxWidth: "90vw",
      padding: "1em",
      background: "Canvas",
      color: "CanvasText",
      border: "1px solid GrayText",
      borderRadius: "0.5em",
      boxShadow: "0 0.3em 1em rgba(0,0,0,0.2)",
      textAlign: "left",
    });
    this.panel.className = "hb-panel";
    this.panel.id = "hb-panel-" + Math.random().toString(36).slice(2);
    this.panel.setAttribute("role", "dialog");
    this.panel.setAttribute("aria-label", "Site presence");
    this.panel.tabIndex = -1;
    this.panel.hidden = true;
    this.indicator.setAttribute("aria-controls", this.panel.id);
    this.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.toggle(false);
    });

    this.roomsSection = el("section");
    this.roomsSection.append(el("h2", "Rooms", { fontSize: "1em", margin: "0 0 0.4em" }));
    this.roomList = el("ul", null, { listStyle: "none", padding: "0", margin: "0 0 0.8em" });
    this.roomList.className = "hb-rooms";
    this.roomButtons = new Map();
    for (const room of this.presence.rooms) {
      const item = el("li");
      const button = el("button", null, { ...BUTTON, borderRadius: "0.3em", width: "100%", margin: "0.1em 0" });
      button.type = "button";
      button.className = "hb-room";
      button.dataset.room = room.name;
      button.addEventListener("click", () => this.presence.switchRoom(room));
      item.append(button);
      this.roomList.append(item);
      this.roomButtons.set(room, button);
    }
    this.roomsSection.append(this.roomList);

    const privacy = el("section");
    privacy.className = "hb-privacy";
    privacy.append(el("h2", "What is shared", { fontSize: "1em", margin: "0 0 0.4em" }));
    const points = el("ul", null, { margin: "0 0 0.8em", paddingLeft: "1.2em" });
    this.rotationText = el("li");
    points.append(
      el("li", "Counts only: everyone sees how many people are here, never who."),
      this.rotationText,
      el("li", "Per site: nothing is shared until you opt in on this site, and you can stop at any time."),
      el("li", "Ghost mode turns all sharing off at once; this browser remembers it."),
    );
    privacy.append(points);

    this.ghostButton = el("button", null, BUTTON);
    this.ghostButton.type = "button";
    this.ghostButton.className = "hb-ghost";
    this.ghostButton.addEventListener("click", () => this.setGhost(!this.ghost));
    this.stopButton = el("button", "Stop sharing on this site", BUTTON);
    this.stopButton.type = "button";
    this.stopButton.className = "hb-revoke";
    this.stopButton.addEventListener("click", () => this.revoke());
    // One row of buttons, spaced by the gap only: a margin on one of them would set it
    // off from the others.
    const close = el("button", "Close", { ...BUTTON, marginLeft: "auto" });
    close.type = "button";
    close.className = "hb-close";
    close.addEventListener("click", () => this.toggle(false));
    const controls = el("div", null, { display: "flex", flexWrap: "wrap", alignItems: "center", gap: "0.4em" });
    controls.className = "hb-controls";
    controls.append(this.ghostButton, this.stopButton, close);

    this.ghostNote = el("p", GHOST_NOTE, {
      margin: "0 0 0.8em",
      padding: "0.5em",
      border: "1px dashed currentColor",
      borderRadius: "0.3em",
    });
    this.ghostNote.className = "hb-ghost-note";
    this.ghostNote.setAttribute("role", "status");

    this.panel.append(this.ghostNote, this.roomsSection, privacy, controls);
    root.append(this.indicator, this.prompt, this.panel);
    mount.append(root);
    this.root = root;
  }

  render() {
    const p = this.presence;
    const duration = p.cadence ? p.cadence.did_duration_ms : 300000;
    this.rotationText.textContent =
      `No lasting identity: you appear under a random key that changes every ${describeDuration(duration)}.`;
    this.prompt.hidden = this.consent;
    this.prompt.style.display = this.consent ? "none" : "flex";
    this.indicator.hidden = !this.consent;
    const ghost = this.ghost || p.forcedGhost;
    this.roomsSection.hidden = !this.consent || ghost;
    this.stopButton.hidden = !this.consent;
    this.ghostButton.hidden = !this.consent;
    this.ghostButton.disabled = p.forcedGhost;
    this.ghostNote.hidden = !ghost;
    this.ghostNote.textContent = p.forcedGhost ? FORCED_GHOST_NOTE : GHOST_NOTE;
    this.root.dataset.state = !this.consent ? "prompt" : p.forcedGhost ? "ghost-forced" : ghost ? "ghost" : p.status;
    if (p.powMs !== null) this.root.dataset.powMs = String(Math.round(p.powMs));

    if (ghost) {
      this.count.textContent = "Ghost mode on";
      this.indicator.setAttribute("aria-label", "Ghost mode on: you are not counted. Open settings");
      Object.assign(this.indicator.style, { borderStyle: "dashed", opacity: "0.8" });
    } else {
      const shown =
        p.status === "live" ? describeCount(p.counts.get(p.current.key))
        : p.status === "offline" ? "offline"
        : p.status === "refused" ? "not counted on this site"
        : "… here";
      this.count.textContent = shown;
      this.indicator.removeAttribute("aria-label");
      Object.assign(this.indicator.style, { borderStyle: "solid", opacity: "1" });
    }
    this.ghostButton.textContent = p.forcedGhost
      ? "Ghost mode: on (set by this site)"
      : this.ghost ? "Ghost mode: on" : "Ghost mode: off";
    this.ghostButton.setAttribute("aria-pressed", String(ghost));
    for (const [room, button] of this.roomButtons) {
      const current = room === p.current;
      button.textContent = `${room.name} — ${describeCount(p.counts.get(room.key))}${current ? " (you)" : ""}`;
      button.setAttribute("aria-pressed", String(current));
      button.style.fontWeight = current ? "bold" : "normal";
    }
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.indicator.setAttribute("aria-expanded", String(open));
    if (open) this.panel.focus();
    else if (!this.indicator.hidden) this.indicator.focus();
  }

  grant() {
    this.consent = true;
    store("consent", this.origin, "granted");
    this.render();
    if (!this.ghost) this.presence.start();
  }

  async revoke() {
    this.consent = false;
    store("consent", this.origin, null);
    this.toggle(false);
    await this.presence.stop();
    this.render();
  }

  async setGhost(on) {
    this.ghost = on;
    store("ghost", this.origin, on ? "on" : null);
    this.render();
    if (on) await this.presence.stop();
    else if (this.consent) this.presence.start();
    this.render();
  }
}

// --- start-up ---------------------------------------------------------------------------

function ownScript() {
  for (const script of document.querySelectorAll("script[type=module][src]")) {
    if (script.src === import.meta.url) return script;
  }
  return null;
}

async function main() {
  const script = ownScript();
  if (!script) return; // imported as a library (tests): no widget
  const data = script.dataset;
  const origin = normalizeOrigin(data.origin || location.origin);
  const names = (data.rooms || "lobby").split(",").map((n) => n.trim()).filter(Boolean);
  const rooms = [];
  for (const name of names) {
    const normal = normalizeRoom(name);
    rooms.push({ name: normal, key: await roomKey(origin, normal) });
  }
  const hub = new URL("/v1/site", import.meta.url);
  hub.protocol = hub.protocol === "https:" ? "wss:" : "ws:";
  let mount = data.target ? document.querySelector(data.target) : null;
  if (!mount) {
    mount = el("div", null, { position: "fixed", top: "0.5em", right: "0.5em", zIndex: "2147483000" });
    document.body.append(mount);
  }
  new Widget({ mount, origin, rooms, hubUrl: hub.href });
}

if (document.readyState === "loading") addEventListener("DOMContentLoaded", main);
else main();
