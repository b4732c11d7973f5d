/* pixlive payment page: follows one charge live and updates the page in place.
 *
 * Transports, tried in order: WebSocket, then SSE, then long poll. A transport that
 * fails twice in a row before it ever delivered a message is given up for the next one;
 * once one has delivered a message we stay on it and only reconnect (with backoff).
 * Every stream starts with a snapshot, which we trust over what the page shows, and we
 * resume from the last event id we applied, so nothing is missed or applied twice.
 */
(function () {
  "use strict";

  const root = document.getElementById("payment");
  if (!root) return;

  const LABELS = {
    ACTIVE: "Aguardando pagamento",
    PAID: "Pagamento confirmado",
    EXPIRED: "Cobrança expirada",
    CANCELLED: "Cobrança cancelada",
  };
  const FINAL = new Set(["PAID", "EXPIRED", "CANCELLED"]);
  const STATUS_OF_EVENT = {
    "payment.paid": "PAID",
    "payment.expired": "EXPIRED",
    "payment.cancelled": "CANCELLED",
  };
  const EVENT_TYPES = ["payment.created", "payment.paid", "payment.expired",
    "payment.cancelled", "payment.mismatch"];
  const MISMATCH_TEXT = "Recebemos um Pix que não corresponde a esta cobrança (valor " +
    "diferente ou cobrança já encerrada). Se você pagou, guarde o comprovante e fale " +
    "com quem enviou a cobrança.";
  const TRANSPORTS = ["websocket", "sse", "poll"];
  const OPEN_TIMEOUT_MS = 5000;     // no "open" by then: count the attempt as failed
  const FIRST_MESSAGE_MS = 10000;   // open but silent (a buffering proxy): failed too
  const POLL_TIMEOUT_S = 25;
  const BACKOFF_START_MS = 250;
  const BACKOFF_CAP_MS = 10000;

  const $ = (id) => document.getElementById(id);
  const statusEl = $("status");
  const countdownEl = $("countdown");
  const amountText = ($("amount") || {}).textContent || "";
  const base = "/payments/pix/" + encodeURIComponent(root.dataset.paymentId);

  let status = root.dataset.status;
  let lastEventId = Number(root.dataset.lastEventId) || 0;
  let expiresAt = Date.parse(root.dataset.expiresAt);
  const redirectSeconds = Number(root.dataset.redirectSeconds) || 0;

  /* ---------------- times, in the payer's own zone (the server wrote Brasília's) ---------------- */

  function two(n) { return String(n).padStart(2, "0"); }
  function hhmm(d) { return two(d.getHours()) + ":" + two(d.getMinutes()); }
  function ddmm(d) { return two(d.getDate()) + "/" + two(d.getMonth() + 1); }

  function deadlineText(ms) {
    const d = new Date(ms);
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return "Pague até " + (sameDay ? hhmm(d) : ddmm(d) + " às " + hhmm(d));
  }

  function momentText(ms) {
    const d = new Date(ms);
    return ddmm(d) + "/" + d.getFullYear() + " às " + hhmm(d);
  }

  function showDeadline() {
    const el = $("deadline");
    if (el && !Number.isNaN(expiresAt)) el.textContent = deadlineText(expiresAt);
  }

  function showReceipt(paidAt, endToEndId) {
    const when = Date.parse(paidAt);
    if (!Number.isNaN(when)) $("paid-at").textContent = momentText(when);
    if (endToEndId) $("end-to-end-id").textContent = endToEndId;
  }

  /* ---------------- the page ---------------- */

  function setStatus(next) {
    if (!LABELS[next]) return;
    const changed = next !== status;
    if (changed) {
      status = next;
      // Only touch the live region on a change, so readers announce each change once.
      statusEl.textContent = LABELS[next];
      document.title = amountText + " · " + LABELS[next];
    }
    root.dataset.status = next;
    for (const s of Object.keys(LABELS)) {
      root.classList.toggle("status-" + s.toLowerCase(), s === next);
    }
    if (FINAL.has(next)) finish(changed);
  }

  // A final status: nothing left to pay, count or listen to.
  function finish(changed) {
    const focused = document.activeElement;
    const hide = ["pay", "simulate-form", "deadline-line"];
    const lostFocus = changed && (!focused || focused === document.body ||
      hide.some((id) => { const el = $(id); return el && el.contains(focused); }));
    for (const id of hide) {
      const el = $(id);
      if (el) el.hidden = true;
    }
    if (status === "PAID") {
      $("amount-label").textContent = "Valor pago";
      $("receipt").hidden = false;
    }
    const back = $("return");
    if (back) back.hidden = false;
    // The control the keyboard was on has just gone: carry focus to the news, not <body>.
    if (lostFocus) $("state").focus();
    clearTimeout(countdownTimer);
    stop();
    // Only right after paying: a receipt opened again later stays on screen.
    if (changed && status === "PAID" && back && redirectSeconds > 0) startRedirect();
  }

  /* ---------------- back to the shop on its own, after payment (if the merchant asked) ---------------- */

  let redirectTimer = null;

  function startRedirect() {
    const link = $("return-link");
    const note = $("redirect-note");
    const stay = $("stay");
    let left = redirectSeconds;
    const show = () => {
      note.textContent = "Voltando para a loja em " + left + (left === 1 ? " segundo…" : " segundos…");
    };
    note.hidden = false;
    stay.hidden = false;
    show();
    const step = () => {
      left -= 1;
      if (left <= 0) { location.assign(link.href); return; }
      show();
      redirectTimer = setTimeout(step, 1000);
    };
    redirectTimer = setTimeout(step, 1000);
    // However long the wait, the payer may want to keep the receipt on screen.
    stay.addEventListener("click", () => {
      clearTimeout(redirectTimer);
      note.textContent = "Você continua nesta página.";
      stay.hidden = true;
      link.focus();
    });
  }

  function showNotice(text) {
    $("notice").textContent = text;
  }

  /* ---------------- countdown (client clock; the server decides expiry) ---------------- */

  let countdownTimer = null;

  const pad = two;

  function formatRemaining(ms) {
    const total = Math.floor(ms / 1000);   // 30 min shows 29:59 at once, as payers expect
    const days = Math.floor(total / 86400);
    if (days >= 2) return days + " dias";
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    return (h > 0 ? h + ":" + pad(m) : pad(m)) + ":" + pad(s);
  }

  function tick() {
    clearTimeout(countdownTimer);
    if (FINAL.has(status) || Number.isNaN(expiresAt)) return;
    const left = expiresAt - Date.now();
    countdownEl.hidden = false;
    if (left <= 0) {
      // Not marked expired here: the server's payment.expired event is the authority.
      countdownEl.textContent = "Expirando…";
      countdownEl.classList.add("urgent");
      return;
    }
    countdownEl.textContent = "Expira em " + formatRemaining(left);
    countdownEl.classList.toggle("urgent", left <= 60000);
    // Wake up just as the displayed second changes, so the clock never skips one.
    countdownTimer = setTimeout(tick, left % 1000 || 1000);
  }

  /* ---------------- messages (the same on every transport) ---------------- */

  function applySnapshot(snap) {
    if (!snap || !snap.payment) return;
    // Trust the snapshot over what we showed: it is the server's state now.
    lastEventId = Number(snap.last_event_id) || 0;
    root.dataset.lastEventId = String(lastEventId);
    const exp = Date.parse(snap.payment.expires_at);
    if (!Number.isNaN(exp) && exp !== expiresAt) {
      expiresAt = exp;
      showDeadline();
      tick();
    }
    if (snap.payment.status === "PAID") {
      showReceipt(snap.payment.paid_at, snap.payment.end_to_end_id);
    }
    setStatus(snap.payment.status);
  }

  function applyEvent(ev) {
    if (!ev || typeof ev.id !== "number" || ev.id <= lastEventId) return; // seen already
    lastEventId = ev.id;
    root.dataset.lastEventId = String(lastEventId);
    if (ev.type === "payment.mismatch") {
      showNotice(MISMATCH_TEXT); // money arrived but the charge is unchanged
    } else if (STATUS_OF_EVENT[ev.type]) {
      if (ev.type === "payment.paid") showReceipt(ev.at, (ev.data || {}).end_to_end_id);
      setStatus(STATUS_OF_EVENT[ev.type]);
    }
  }

  function handle(msg) {
    if (msg && msg.type === "snapshot") applySnapshot(msg);
    else applyEvent(msg);
  }

  /* ---------------- connection management ---------------- */

  const forced = new URLSearchParams(location.search).get("transport");
  let transportIndex = Math.max(0, TRANSPORTS.indexOf(forced === "ws" ? "websocket" : forced));
  let proven = false;   // has the current transport ever delivered a message?
  let failures = 0;     // attempts in a row that ended before any message
  let conn = null;      // { close() } of the live attempt
  let retryTimer = null;
  let stopped = false;

  function stop() {
    stopped = true;
    clearTimeout(retryTimer);
    if (conn) { const c = conn; conn = null; c.close(); }
  }

  function connect() {
    retryTimer = null;
    if (stopped) return;
    const name = TRANSPORTS[transportIndex];
    root.dataset.transport = name;
    if (name === "websocket") openWebSocket();
    else if (name === "sse") openEventSource();
    else poll();
  }

  // Called by a transport for each good message: it works, so keep it.
  function gotMessage() {
    proven = true;
    failures = 0;
  }

  // Called by a transport once its attempt is over, for whatever reason.
  function ended(deliveredAny, unavailable) {
    conn = null;
    if (stopped) return;
    if (!deliveredAny) failures += 1;
    const last = transportIndex === TRANSPORTS.length - 1;
    if (!proven && !last && (unavailable || failures >= 2)) {
      transportIndex += 1;   // this one does not work here: try the next one at once
      failures = 0;
      connect();
      return;
    }
    // Full jitter: a crowd of pages cut off together does not come back together.
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** failures);
    retryTimer = setTimeout(connect, Math.random() * ceiling);
  }

  // A phone coming back online or to the foreground should not sit out a long backoff.
  function retryNow() {
    if (retryTimer && !stopped && document.visibilityState !== "hidden") {
      clearTimeout(retryTimer);
      connect();
    }
  }
  window.addEventListener("online", retryNow);
  document.addEventListener("visibilitychange", retryNow);

  function openWebSocket() {
    if (typeof WebSocket !== "function") { ended(false, true); return; }
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(scheme + "//" + location.host + base + "/ws?after=" + lastEventId);
    } catch (e) {
      ended(false, true);
      return;
    }
    let delivered = false;
    let over = false;
    const timer = setTimeout(() => ws.close(), OPEN_TIMEOUT_MS);
    const done = () => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      ended(delivered, false);
    };
    conn = { close: () => { over = true; clearTimeout(timer); ws.close(1000); } };
    ws.onopen = () => {
      clearTimeout(timer);
      setTimeout(() => { if (!delivered && !over) ws.close(); }, FIRST_MESSAGE_MS);
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      delivered = true;
      gotMessage();
      handle(msg);   // a final event stops everything (and closes this socket)
    };
    ws.onerror = done;  // "close" follows "error"; done() runs once
    ws.onclose = done;
  }

  function openEventSource() {
    if (typeof EventSource !== "function") { ended(false, true); return; }
    // Our own reconnects (not EventSource's) let us back off and fall back, so the
    // resume point goes in the URL rather than in Last-Event-ID.
    const es = new EventSource(base + "/events?after=" + lastEventId);
    let delivered = false;
    let over = false;
    const timer = setTimeout(() => done(), OPEN_TIMEOUT_MS);
    const done = () => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      es.close();
      ended(delivered, false);
    };
    conn = { close: () => { over = true; clearTimeout(timer); es.close(); } };
    const onData = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      delivered = true;
      gotMessage();
      handle(msg);
    };
    es.addEventListener("open", () => {
      clearTimeout(timer);
      setTimeout(() => { if (!delivered) done(); }, FIRST_MESSAGE_MS);
    });
    es.addEventListener("snapshot", onData);
    for (const type of EVENT_TYPES) es.addEventListener(type, onData);
    es.addEventListener("error", done);  // also how the end of the stream shows up
  }

  function poll() {
    const ctrl = new AbortController();
    let over = false;
    // The server answers within POLL_TIMEOUT_S; a proxy that hangs longer is a failure.
    const timer = setTimeout(() => ctrl.abort(), (POLL_TIMEOUT_S + 10) * 1000);
    conn = { close: () => { over = true; clearTimeout(timer); ctrl.abort(); } };
    const url = base + "/poll?after=" + lastEventId + "&timeout=" + POLL_TIMEOUT_S;
    fetch(url, { signal: ctrl.signal, cache: "no-store", headers: { Accept: "application/json" } })
      .then((res) => {
        if (!res.ok) throw new Error("HTTP " + res.status);
        return res.json();
      })
      .then((body) => {
        clearTimeout(timer);
        if (over) return;
        gotMessage();
        // Events first (so a mismatch notice is not skipped), then the snapshot unless it
        // is older than them: we resume from whichever id is larger.
        for (const ev of body.events || []) applyEvent(ev);
        const snap = body.snapshot;
        if (!stopped && snap && (Number(snap.last_event_id) || 0) >= lastEventId) applySnapshot(snap);
        if (stopped) return;
        conn = null;
        connect();   // at once: the server itself does the waiting
      })
      .catch(() => {
        clearTimeout(timer);
        if (!over) ended(false, false);
      });
  }

  /* ---------------- copy and sandbox buttons ---------------- */

  const copyBtn = $("copy");
  const code = $("code");
  if (copyBtn && code) {
    copyBtn.hidden = false;   // without JS it stays hidden: the code can be selected by hand
    let resetTimer = null;
    const fallbackCopy = () => {
      code.focus();
      code.select();
      code.setSelectionRange(0, code.value.length);  // iOS ignores select() alone
      const ok = document.execCommand("copy");
      copyBtn.focus();
      if (!ok) throw new Error("copy refused");
    };
    copyBtn.addEventListener("click", async () => {
      try {
        if (navigator.clipboard && window.isSecureContext) {
          await navigator.clipboard.writeText(code.value);
        } else {
          fallbackCopy();
        }
      } catch (err) {
        try { fallbackCopy(); } catch (err2) { code.focus(); return; }  // let them copy by hand
      }
      copyBtn.textContent = "Copiado!";
      copyBtn.classList.add("copied");
      $("copy-feedback").textContent = "Código copiado";
      clearTimeout(resetTimer);
      resetTimer = setTimeout(() => {
        copyBtn.textContent = "Copiar código";
        copyBtn.classList.remove("copied");
        $("copy-feedback").textContent = "";
      }, 2000);
    });
    code.addEventListener("focus", () => code.select());
  }

  const simForm = $("simulate-form");
  if (simForm) {
    const btn = $("simulate");
    let busy = false;
    simForm.addEventListener("submit", async (e) => {
      e.preventDefault();   // no reload: the live stream shows the result
      if (busy) return;
      // Not `disabled`: a disabled button drops the keyboard's focus to <body>.
      busy = true;
      btn.setAttribute("aria-disabled", "true");
      try {
        const res = await fetch(simForm.action, {
          method: "POST",
          body: new URLSearchParams(new FormData(simForm)),
          headers: { Accept: "application/json" },
          redirect: "manual",   // a 303 back to this page is success; no need to fetch it
        });
        if (!res.ok && res.type !== "opaqueredirect") throw new Error("HTTP " + res.status);
      } catch (err) {
        showNotice("Não foi possível simular o pagamento. Tente de novo.");
      } finally {
        busy = false;
        btn.removeAttribute("aria-disabled");
      }
    });
  }

  /* ---------------- start ---------------- */

  setStatus(status);
  if (!FINAL.has(status)) {
    showDeadline();
    tick();
    connect();
  }
})();
