/*
 * The browser uploader of a draft release (releases/templates/releases/publish/upload.html).
 *
 * For each picked file: ask the portal to start an upload (or find the unfinished one of the same path
 * and size, to resume it), ask which parts storage already has, PUT the missing parts straight to the
 * object storage through presigned URLs, four at a time, each part retried with a fresh URL, then ask the
 * portal to complete the upload and poll until it has verified the file's sha256 (or failed it).
 *
 * Plain JavaScript, no build step. The bucket must allow PUT from the portal's origin and expose the
 * ETag header (CORS; see README.md, "Uploads").
 */
(function () {
  "use strict";

  const PARALLEL_PARTS = 4;
  const PART_ATTEMPTS = 5;
  const POLL_MILLISECONDS = 1000;

  const form = document.getElementById("uploader");
  if (!form) return;
  const uploadsUrl = form.dataset.uploadsUrl;
  const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const table = document.querySelector("#upload-table tbody");
  const errorBox = document.getElementById("upload-error");
  const startButton = document.getElementById("upload-start");
  // Enter in the directory field would submit the form as a page load; uploads start from the button.
  form.addEventListener("submit", (event) => event.preventDefault());

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const sleep = (milliseconds) => new Promise((resolve) => setTimeout(resolve, milliseconds));

  async function api(method, url, body) {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: {
        Accept: "application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": csrfToken,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let answer = {};
    try {
      answer = await response.json();
    } catch (ignored) {
      // A proxy's HTML error page: the status says enough.
    }
    if (!response.ok) {
      throw new ApiError(response.status, answer.error || "http_error", answer.message || `HTTP ${response.status}`);
    }
    return answer;
  }

  function formatSize(bytes) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
  }

  // --- The table of files ---------------------------------------------------------------------

  function rowFor(path) {
    for (const row of table.querySelectorAll("tr[data-path]")) {
      if (row.dataset.path === path) return row;
    }
    const row = document.createElement("tr");
    row.dataset.path = path;
    row.innerHTML =
      '<td class="mono"></td><td><span class="status" data-role="status"></span><div data-role="detail" class="help"></div></td>' +
      '<td data-role="size"></td><td class="mono" data-role="sha256"></td><td></td>';
    row.cells[0].textContent = path;
    table.appendChild(row);
    return row;
  }

  function show(row, artifact, detail) {
    const status = row.querySelector("[data-role=status]");
    status.className = `status status-${artifact.status}`;
    status.textContent = artifact.status.charAt(0).toUpperCase() + artifact.status.slice(1);
    const detailBox = row.querySelector("[data-role=detail]");
    if (artifact.failure_reason) {
      detailBox.className = "errorlist";
      detailBox.textContent = artifact.failure_reason;
    } else {
      detailBox.className = "help";
      if (detail !== undefined) detailBox.replaceChildren(detail);
    }
    const size = artifact.size !== null ? artifact.size : artifact.expected_size;
    row.querySelector("[data-role=size]").textContent = size === null ? "" : formatSize(size);
    row.querySelector("[data-role=sha256]").textContent = artifact.sha256 || "";
    row.dataset.artifact = artifact.id;
    if (artifact.status === "failed" && artifact.urls && !row.querySelector("button[data-discard]")) {
      const discard = document.createElement("button");
      discard.type = "button";
      discard.className = "flush";
      discard.dataset.discard = artifact.urls.discard;
      discard.textContent = "Discard";
      row.cells[4].replaceChildren(discard);
    }
  }

  function showProblem(row, message) {
    const detailBox = row.querySelector("[data-role=detail]");
    detailBox.className = "errorlist";
    detailBox.textContent = message;
  }

  // --- One file ---------------------------------------------------------------------------------

  async function startOrResume(file, path, expectedSha256) {
    const listing = await api("GET", uploadsUrl);
    const existing = listing.artifacts.find((artifact) => artifact.path === path);
    if (existing && existing.status === "uploading" && existing.expected_size === file.size) {
      return existing;
    }
    const answer = await api("POST", uploadsUrl, { path, size: file.size, expected_sha256: expectedSha256 });
    return answer.artifact;
  }

  function putPart(url, blob, onProgress) {
    // XMLHttpRequest rather than fetch: it reports upload progress.
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("PUT", url);
      request.upload.onprogress = (event) => onProgress(event.loaded);
      request.onload = () => {
        if (request.status >= 200 && request.status < 300) {
          const etag = request.getResponseHeader("ETag");
          if (etag) resolve(etag);
          else reject(new Error("the storage did not expose the part's ETag (check the bucket's CORS rule)"));
        } else {
          reject(new Error(`the storage answered ${request.status}`));
        }
      };
      request.onerror = () => reject(new Error("the connection to the storage failed"));
      request.send(blob);
    });
  }

  async function uploadPart(artifact, file, number, progress) {
    const start = (number - 1) * artifact.part_size;
    const blob = file.slice(start, Math.min(start + artifact.part_size, file.size));
    for (let attempt = 1; ; attempt += 1) {
      try {
        // A fresh URL for every attempt: a retry never meets an expired signature.
        const answer = await api("POST", artifact.urls.part_urls, { part_numbers: [number] });
        return await putPart(answer.urls[String(number)], blob, (loaded) => progress(number, loaded));
      } catch (error) {
        progress(number, 0);
        const refusedByPortal = error instanceof ApiError && error.status < 500;
        if (refusedByPortal || attempt >= PART_ATTEMPTS) throw error;
        await sleep(Math.min(1000 * 2 ** attempt, 30000));
      }
    }
  }

  async function uploadFile(file, path, expectedSha256) {
    const row = rowFor(path);
    show(row, { id: "", status: "uploading", size: null, expected_size: file.size, sha256: "", failure_reason: "" });
    let artifact = await startOrResume(file, path, expectedSha256);
    const bar = document.createElement("progress");
    bar.max = file.size || 1;
    show(row, artifact, bar);

    const etags = new Map();
    const stored = await api("GET", artifact.urls.parts);
    for (const part of stored.parts) {
      const start = (part.part_number - 1) * artifact.part_size;
      const length = Math.max(0, Math.min(artifact.part_size, file.size - start));
      if (part.part_number <= artifact.part_count && part.size === length) etags.set(part.part_number, part.etag);
    }
    const sending = new Map();
    let storedBytes = 0;
    for (const number of etags.keys()) {
      const start = (number - 1) * artifact.part_size;
      storedBytes += Math.min(artifact.part_size, file.size - start);
    }
    const progress = (number, loaded) => {
      sending.set(number, loaded);
      let total = storedBytes;
      for (const value of sending.values()) total += value;
      bar.value = total;
    };
    bar.value = storedBytes;

    const missing = [];
    for (let number = 1; number <= artifact.part_count; number += 1) {
      if (!etags.has(number)) missing.push(number);
    }
    let next = 0;
    const worker = async () => {
      while (next < missing.length) {
        const number = missing[next];
        next += 1;
        etags.set(number, await uploadPart(artifact, file, number, progress));
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, missing.length) }, worker));

    const parts = [...etags.entries()]
      .sort((first, second) => first[0] - second[0])
      .map(([partNumber, etag]) => ({ part_number: partNumber, etag }));
    artifact = (await api("POST", artifact.urls.complete, { parts })).artifact;
    show(row, artifact, document.createTextNode("Checking the sha256 of the stored file…"));
    while (artifact.status === "verifying") {
      await sleep(POLL_MILLISECONDS);
      artifact = (await api("GET", artifact.urls.detail)).artifact;
    }
    show(row, artifact, document.createTextNode(""));
    return artifact;
  }

  // --- The form ---------------------------------------------------------------------------------

  function expectedSums(text) {
    // `sha256sum` prints "<64 hex>  <name>" (or "<64 hex> *<name>" in binary mode).
    const sums = new Map();
    for (const line of text.split("\n")) {
      const match = line.trim().match(/^([0-9a-fA-F]{64})\s+\*?(.+)$/);
      if (match) sums.set(match[2].trim().replace(/^\.\//, ""), match[1].toLowerCase());
    }
    return sums;
  }

  function releasePath(prefix, name) {
    const directory = prefix.trim().replace(/^\/+|\/+$/g, "");
    return directory ? `${directory}/${name}` : name;
  }

  startButton.addEventListener("click", async () => {
    const files = Array.from(document.getElementById("upload-files").files);
    errorBox.textContent = "";
    if (!files.length) {
      errorBox.textContent = "Pick one or more files first.";
      return;
    }
    const prefix = document.getElementById("upload-prefix").value;
    const sums = expectedSums(document.getElementById("upload-sums").value);
    startButton.disabled = true;
    window.addEventListener("beforeunload", warnBeforeLeaving);
    try {
      for (const file of files) {
        const path = releasePath(prefix, file.name);
        const expected = sums.get(path) || sums.get(file.name) || "";
        try {
          await uploadFile(file, path, expected);
        } catch (error) {
          showProblem(rowFor(path), `${error.message} Pick the file again to resume.`);
        }
      }
    } finally {
      window.removeEventListener("beforeunload", warnBeforeLeaving);
      startButton.disabled = false;
    }
  });

  function warnBeforeLeaving(event) {
    event.preventDefault();
    event.returnValue = "";
  }

  table.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-discard]");
    if (!button) return;
    button.disabled = true;
    try {
      await api("POST", button.dataset.discard);
      button.closest("tr").remove();
    } catch (error) {
      button.disabled = false;
      showProblem(button.closest("tr"), error.message);
    }
  });
})();
