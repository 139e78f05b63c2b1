// meetwire's little script: copy buttons, and live pages that fetch their changing part again
// while something is going on. Every page works without it.
"use strict";

document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  const done = () => { button.textContent = "Copied"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => selectText(source));
  } else {
    selectText(source);
  }
});

function selectText(node) {
  const range = document.createRange();
  range.selectNodeContents(node);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

// A container with data-src is refreshed from that URL every two seconds while its content
// says data-live="1"; expanded details stay expanded.
const LIVE_EVERY_MS = 2000;

function isLive(container) {
  const root = container.querySelector("[data-live]");
  return root && root.dataset.live === "1";
}

async function refresh(container) {
  const response = await fetch(container.dataset.src, { credentials: "same-origin" });
  if (response.redirected || !response.ok) {
    window.location.reload();
    return;
  }
  const html = await response.text();
  const open = new Set(
    Array.from(container.querySelectorAll("details[open][data-key]"), (d) => d.dataset.key)
  );
  container.innerHTML = html;
  container.querySelectorAll("details[data-key]").forEach((d) => {
    if (open.has(d.dataset.key)) d.open = true;
  });
}

function follow(container) {
  if (!isLive(container)) return;
  setTimeout(async () => {
    try {
      await refresh(container);
    } finally {
      follow(container);
    }
  }, LIVE_EVERY_MS);
}

document.querySelectorAll("[data-src]").forEach(follow);
