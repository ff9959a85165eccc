"use strict";
// The page of the API: everything it shows comes from the API's JSON answers and is set as
// text (textContent, attributes), never parsed as HTML.
(() => {
  const KEY_ITEM = "zimage.apiKey";
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
  const PAGE_SIZE = 12;
  // Relative URLs, so the page works at the local root and under a stage prefix (/dev/); at
  // /dev without the slash, "v1/..." would leave the stage out.
  const base = location.pathname.endsWith("/") ? "" : `${location.pathname.split("/").pop()}/`;
  const $ = (id) => document.getElementById(id);

  let apiKey = sessionStorage.getItem(KEY_ITEM) || "";
  let running = null; // {id, canceled} while a Generate follows its job
  let cursor = null;

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      Object.assign(this, { status, code, field });
    }
  }

  function apiError(status, data) {
    if (data && data.error) return new ApiError(status, data.error.code, data.error.message, data.error.field);
    if (status === 403) return new ApiError(status, "forbidden", "the API key is missing or not accepted here", "x-api-key");
    const message = data && data.message ? data.message : `the API answered HTTP ${status}`;
    return new ApiError(status, "error", message);
  }

  async function call(method, path, { body, wait } = {}) {
    if (!apiKey) throw new ApiError(0, "no_key", "enter an API key first", "x-api-key");
    const headers = { "x-api-key": apiKey };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (wait) headers.Prefer = `wait=${wait}`;
    let answer;
    try {
      answer = await fetch(base + path, {
        method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, "network_error", `the API did not answer (${err.message})`);
    }
    let data = null;
    try { data = await answer.json(); } catch { data = null; }
    if (!answer.ok) throw apiError(answer.status, data);
    return data;
  }

  function make(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function showError(box, err) {
    box.replaceChildren();
    const code = err instanceof ApiError ? err.code : "error";
    box.append(make("strong", code), make("span", `: ${err.message}`));
    if (err.field) box.append(make("div", `field: ${err.field}`));
    box.hidden = false;
  }

  function formatBytes(n) {
    return n >= 1048576 ? `${(n / 1048576).toFixed(2)} MB` : n >= 1024 ? `${(n / 1024).toFixed(1)} kB` : `${n} bytes`;
  }

  function seconds(ms) { return `${(ms / 1000).toFixed(2)} s`; }

  function facts(list, entries) {
    list.replaceChildren();
    for (const [name, value] of entries) {
      if (value === undefined || value === null || value === "") continue;
      list.append(make("dt", name), make("dd", value));
    }
  }

  // --- the key ------------------------------------------------------------------------------
  function showKey() {
    $("key-form").hidden = Boolean(apiKey);
    $("key-set").hidden = !apiKey;
    $("key-tail").textContent = apiKey.slice(-4);
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey = $("key-input").value.trim();
    $("key-input").value = "";
    if (apiKey) sessionStorage.setItem(KEY_ITEM, apiKey);
    showKey();
    if (!$("gallery").hidden) loadGallery(false);
    $("prompt").focus();
  });

  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    apiKey = "";
    $("grid").replaceChildren();
    $("more").hidden = true;
    showKey();
    $("key-input").focus();
  });

  // --- sections -----------------------------------------------------------------------------
  function showSection(name) {
    for (const section of ["playground", "gallery"]) {
      $(section).hidden = section !== name;
      const tab = $(`tab-${section}`);
      if (section === name) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    if (name === "gallery") loadGallery(false);
  }
  $("tab-playground").addEventListener("click", () => showSection("playground"));
  $("tab-gallery").addEventListener("click", () => showSection("gallery"));

  // --- the request --------------------------------------------------------------------------
  function selectedSize() {
    if ($("size").value !== "custom") return $("size").value;
    return `${$("width").value.trim()}*${$("height").value.trim()}`;
  }

  $("size").addEventListener("change", () => {
    const custom = $("size").value === "custom";
    $("custom-size").hidden = !custom;
    $("custom-size-height").hidden = !custom;
  });

  function readRequest() {
    const request = { prompt: $("prompt").value, size: selectedSize() };
    const seed = $("seed").value.trim();
    if (seed !== "") request.seed = Number(seed);
    const metadata = $("metadata-field").hidden ? "" : $("metadata").value.trim();
    if (metadata) {
      try {
        request.metadata = JSON.parse(metadata);
      } catch {
        throw new ApiError(0, "invalid_request", "metadata must be a JSON object", "metadata");
      }
    }
    return request;
  }

  // The metadata field shows only when this API's own document says it takes one.
  fetch(`${base}v1/openapi.json`, { cache: "no-store" })
    .then((answer) => (answer.ok ? answer.json() : null))
    .then((doc) => {
      const schema = doc && doc.components && doc.components.schemas && doc.components.schemas.CreateImageRequest;
      if (schema && schema.properties && schema.properties.metadata) $("metadata-field").hidden = false;
    })
    .catch(() => {});

  function curlFor(request) {
    const url = new URL(`${base}v1/images`, location.href).href;
    const body = JSON.stringify(request).replace(/'/g, "'\\''");
    return `curl -s -X POST '${url}' -H "x-api-key: $ZIMAGE_API_KEY" -H 'Content-Type: application/json' -H 'Prefer: wait=25' -d '${body}'`;
  }

  $("copy-curl").addEventListener("click", async () => {
    $("playground-error").hidden = true;
    let command;
    try { command = curlFor(readRequest()); } catch (err) { showError($("playground-error"), err); return; }
    const box = $("curl");
    box.textContent = command;
    box.hidden = false;
    try {
      await navigator.clipboard.writeText(command);
      box.setAttribute("title", "copied; set ZIMAGE_API_KEY to your key");
    } catch {
      box.setAttribute("title", "select the command and copy it");
    }
  });

  // --- generate, follow, cancel -------------------------------------------------------------
  function showStatus(job) {
    $("job-status").hidden = false;
    $("status-text").textContent = `${job.id}: ${job.status}`;
    const eta = job.eta_seconds;
    $("eta-text").textContent = !TERMINAL.has(job.status) && eta !== undefined ? `about ${eta} s left` : "";
    const bar = $("progress");
    if (job.status === "succeeded") bar.value = 100;
    else if (typeof job.progress === "number") bar.value = job.progress;
    else if (!TERMINAL.has(job.status)) bar.removeAttribute("value");
  }

  // `seenAt`: the URL the page already loaded the image from while following the job.
  function showResult(job, timings, seenAt) {
    const figure = $("result");
    const img = $("result-image");
    if (job.status !== "succeeded" || !job.image) {
      figure.hidden = true;
      if (job.status === "failed" && job.error) {
        showError($("playground-error"), new ApiError(0, job.error.code, job.error.message));
      }
      return;
    }
    const image = job.image;
    img.alt = `Generated: ${job.prompt}`;
    img.width = image.width;
    img.height = image.height;
    img.onload = null;
    img.addEventListener("load", () => {
      timings.push(["on screen after", seconds(performance.now() - timings.start)]);
      facts($("result-facts"), timings.rows());
    }, { once: true });
    keepFresh(img, job);
    img.src = seenAt || image.url;
    const download = $("download");
    download.href = image.download_url || image.url;
    download.textContent = `Download ${job.id}`;
    download.hidden = false;
    timings.image = image;
    facts($("result-facts"), timings.rows());
    figure.hidden = false;
  }

  function timingsFor(started, accepted, job) {
    const rows = [];
    const timings = {
      start: started,
      push: (row) => rows.push(row),
      rows: () => {
        const image = timings.image || {};
        const generated = job.completed_at ? (Date.parse(job.completed_at) - Date.parse(job.created_at)) : null;
        return [
          ["size", `${image.width} × ${image.height}`],
          ["type", image.content_type],
          ["bytes", image.bytes !== undefined ? `${formatBytes(image.bytes)} (${image.bytes})` : null],
          ["sha256", image.sha256],
          ["seed", job.seed],
          ["accepted after", seconds(accepted - started)],
          ["generated in", generated !== null ? seconds(generated) : null],
          ...rows,
        ];
      },
    };
    return timings;
  }

  // A job is followed as the CLI follows it (cli/zimage_cli/following.py), the cheapest way that
  // keeps its latency: a sleep on this side until the job's eta costs nothing; then the page
  // looks at where its image will be (links.image: an S3 GET, about a tenth of a read) a few
  // times a second, less often as the job grows late, and reads the job once the image is there,
  // held at most a second for the record written just after it. S3 cannot tell a failure or a
  // cancel, so while no image comes the job is also read now and then.
  const HOLD_SECONDS = 1;
  const LOOK_AHEAD_SECONDS = 0.5; // etas are whole seconds, rounded up
  const LOOK_INTERVAL_SECONDS = 0.25;
  const LATE_LOOK_SHARE = 0.5;
  const READ_GAP_SHARE = 0.5;
  const MIN_READ_GAP_SECONDS = 5;
  // Unlike the CLI, the page caps the gap: someone watching it should see a failure within seconds.
  const MAX_READ_GAP_SECONDS = 10;
  function sleepBeforeLooking(job, followedFor) {
    if (job.eta_seconds) return Math.max(0, job.eta_seconds - LOOK_AHEAD_SECONDS);
    if (job.eta_seconds === 0 && job.links && job.links.image) return 0;
    return Math.min(Math.max(1, followedFor * 0.25), 5);
  }
  // An <img> may load from the image's origin (the page's policy allows it) without CORS; the
  // image it loads is the one the page then shows, so the image is downloaded once.
  // A look S3 does not answer in LOOK_TIMEOUT_SECONDS counts as not there, so a stalled request
  // never holds the follow.
  const LOOK_TIMEOUT_SECONDS = 5;
  function imageIsThere(url) {
    return new Promise((done) => {
      const probe = new Image();
      const timer = setTimeout(() => { probe.src = ""; done(false); }, LOOK_TIMEOUT_SECONDS * 1000);
      probe.onload = () => { clearTimeout(timer); done(true); };
      probe.onerror = () => { clearTimeout(timer); done(false); };
      probe.src = url;
    });
  }
  // Look at the image's URL until the image is there (true) or `until` (performance.now()) passes.
  async function lookUntil(url, until, expectedAt) {
    while (!(running && running.canceled)) {
      if (await imageIsThere(url)) return true;
      const late = Math.max(0, (performance.now() - expectedAt) / 1000);
      const interval = Math.max(LOOK_INTERVAL_SECONDS, LATE_LOOK_SHARE * late) * 1000;
      if (performance.now() + interval >= until) {
        await pause(Math.max(0, until - performance.now()) / 1000);
        return false;
      }
      await pause(interval / 1000);
    }
    return false;
  }
  function sleep(seconds) { return new Promise((done) => setTimeout(done, seconds * 1000)); }
  // A sleep that Cancel ends within a quarter of a second.
  async function pause(seconds) {
    const until = performance.now() + seconds * 1000;
    while (performance.now() < until && !(running && running.canceled)) {
      await sleep(Math.min(0.25, (until - performance.now()) / 1000));
    }
  }
  // The sleep keeps the eta live on this side, and ends early when Cancel is pressed.
  async function sleepCountingDown(job, seconds) {
    const readAt = performance.now();
    const until = readAt + seconds * 1000;
    while (performance.now() < until && !(running && running.canceled)) {
      await sleep(Math.min(1, (until - performance.now()) / 1000));
      if (typeof job.eta_seconds === "number") {
        const left = Math.max(0, Math.round(job.eta_seconds - (performance.now() - readAt) / 1000));
        $("eta-text").textContent = `about ${left} s left`;
      }
    }
  }

  async function generate(event) {
    event.preventDefault();
    if (running) return;
    $("playground-error").hidden = true;
    $("result").hidden = true;
    $("download").hidden = true;
    let request;
    try { request = readRequest(); } catch (err) { showError($("playground-error"), err); return; }
    running = { id: null, canceled: false };
    $("generate").disabled = true;
    $("cancel").disabled = false;
    const started = performance.now();
    try {
      let job = await call("POST", "v1/images", { body: request });
      const accepted = performance.now();
      running.id = job.id;
      showStatus(job);
      if (running.canceled) job = await call("DELETE", `v1/images/${encodeURIComponent(job.id)}`);
      let seen = null; // the links.image URL the image was seen at
      let expectedAt = null;
      while (!TERMINAL.has(job.status)) {
        if (!seen) {
          if (job.eta_seconds) expectedAt = performance.now() + job.eta_seconds * 1000;
          const followedFor = (performance.now() - accepted) / 1000;
          await sleepCountingDown(job, sleepBeforeLooking(job, followedFor));
          const watched = job.links && job.links.image;
          if (watched && !running.canceled) {
            const age = (performance.now() - accepted) / 1000;
            const readGap = Math.min(MAX_READ_GAP_SECONDS, Math.max(MIN_READ_GAP_SECONDS, READ_GAP_SHARE * age));
            if (await lookUntil(watched, performance.now() + readGap * 1000, expectedAt || performance.now())) {
              seen = watched;
            }
          }
        }
        job = await call("GET", `v1/images/${encodeURIComponent(job.id)}`, { wait: HOLD_SECONDS });
        showStatus(job);
        if (seen && !TERMINAL.has(job.status)) await sleep(LOOK_INTERVAL_SECONDS);
      }
      showResult(job, timingsFor(started, accepted, job), seen);
    } catch (err) {
      $("job-status").hidden = true;
      showError($("playground-error"), err);
    } finally {
      running = null;
      $("generate").disabled = false;
      $("cancel").disabled = true;
    }
  }
  $("generate-form").addEventListener("submit", generate);

  $("cancel").addEventListener("click", async () => {
    if (!running) return;
    running.canceled = true;
    $("cancel").disabled = true;
    if (!running.id) return; // the submit's answer cancels it when it comes
    try {
      showStatus(await call("DELETE", `v1/images/${encodeURIComponent(running.id)}`));
    } catch (err) {
      showError($("playground-error"), err);
    }
  });

  // --- images whose URL expired -------------------------------------------------------------
  // A presigned URL lives minutes; an image shown from an older answer is fetched again once.
  function keepFresh(img, job) {
    img.dataset.job = job.id;
    delete img.dataset.refetched;
    if (img.dataset.watched) return;
    img.dataset.watched = "1";
    img.addEventListener("error", async () => {
      if (img.dataset.refetched) return;
      img.dataset.refetched = "1";
      try {
        const fresh = await call("GET", `v1/images/${encodeURIComponent(img.dataset.job)}`);
        if (fresh.image && fresh.image.url) img.src = fresh.image.url;
      } catch { /* the tile keeps its alt text */ }
    });
  }

  function expired(image) {
    return !image.url || Date.parse(image.expires_at) <= Date.now() + 5000;
  }

  async function freshJob(job) {
    if (job.status !== "succeeded" || !job.image || !expired(job.image)) return job;
    return call("GET", `v1/images/${encodeURIComponent(job.id)}`);
  }

  // --- the gallery --------------------------------------------------------------------------
  function tile(job) {
    const item = make("li");
    const button = make("button", null, "tile");
    button.type = "button";
    button.dataset.job = job.id;
    button.setAttribute("aria-label", `${job.status}: ${job.prompt}`);
    if (job.status === "succeeded" && job.image && job.image.url) {
      const img = make("img");
      img.alt = job.prompt;
      img.loading = "lazy";
      img.width = job.image.width;
      img.height = job.image.height;
      keepFresh(img, job);
      freshJob(job).then((fresh) => { img.src = fresh.image.url; }).catch(() => {});
      button.append(img);
    } else {
      button.append(make("span", job.status, `placeholder ${job.status}`));
    }
    button.append(make("span", job.prompt, "caption"));
    button.addEventListener("click", () => openDetails(job.id));
    item.append(button);
    return item;
  }

  async function loadGallery(more) {
    $("gallery-error").hidden = true;
    if (!apiKey) {
      showError($("gallery-error"), new ApiError(0, "no_key", "enter an API key to see its jobs", "x-api-key"));
      return;
    }
    const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if ($("status-filter").value) params.set("status", $("status-filter").value);
    if (more && cursor) params.set("cursor", cursor);
    try {
      const page = await call("GET", `v1/images?${params}`);
      if (!more) $("grid").replaceChildren();
      for (const job of page.items) $("grid").append(tile(job));
      cursor = page.next_cursor || null;
      $("more").hidden = !cursor;
      $("gallery-empty").hidden = $("grid").children.length > 0 || Boolean(cursor);
    } catch (err) {
      showError($("gallery-error"), err);
    }
  }
  $("status-filter").addEventListener("change", () => loadGallery(false));
  $("refresh").addEventListener("click", () => loadGallery(false));
  $("more").addEventListener("click", () => loadGallery(true));

  async function openDetails(jobId) {
    const body = $("details-body");
    body.replaceChildren();
    $("details-title").textContent = jobId;
    const dialog = $("details");
    if (!dialog.open) dialog.showModal();
    try {
      const job = await call("GET", `v1/images/${encodeURIComponent(jobId)}`);
      const list = make("dl");
      facts(list, [
        ["status", job.status],
        ["prompt", job.prompt],
        ["size", job.size],
        ["seed", job.seed],
        ["created", job.created_at],
        ["completed", job.completed_at],
        ["progress", !TERMINAL.has(job.status) && job.progress !== undefined ? `${job.progress}%` : null],
        ["why it failed", job.error ? `${job.error.code}: ${job.error.message}` : null],
        ["metadata", job.metadata ? JSON.stringify(job.metadata) : null],
        ["bytes", job.image ? String(job.image.bytes) : null],
        ["sha256", job.image ? job.image.sha256 : null],
      ]);
      if (job.image && job.image.url) {
        const img = make("img");
        img.alt = job.prompt;
        img.width = job.image.width;
        img.height = job.image.height;
        keepFresh(img, job);
        img.src = job.image.url;
        const link = make("a", `Download ${job.id}`);
        link.href = job.image.download_url || job.image.url;
        body.append(img, link);
      }
      body.prepend(list);
    } catch (err) {
      const box = make("div", null, "error");
      box.setAttribute("role", "alert");
      showError(box, err);
      body.append(box);
    }
  }

  $("details-close").addEventListener("click", () => $("details").close());

  showKey();
})();
