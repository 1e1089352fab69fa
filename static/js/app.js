// Relative times ("3 minutes ago") that keep up while a page stays open: every <time class="rel" datetime="...">
// is rewritten from its datetime every 15 s, and again after each htmx swap. The server's text stays as the
// no-JavaScript fallback; the title keeps the absolute time.
(function () {
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  function text(date) {
    const diff = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(diff) < 10) return "just now";
    for (const [unit, size] of units) {
      if (Math.abs(diff) >= size || unit === "second") return fmt.format(Math.round(diff / size), unit);
    }
  }
  function update(root) {
    (root || document).querySelectorAll("time.rel[datetime]").forEach((el) => {
      const date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      if (!el.title) el.title = date.toLocaleString();
      el.textContent = text(date);
    });
  }
  document.addEventListener("DOMContentLoaded", () => update());
  document.addEventListener("htmx:afterSwap", (e) => update(e.target));
  setInterval(update, 15000);
})();

// A submit button with data-confirm asks first (the Revert buttons of the history): a plain form post has no
// hx-confirm, and a listener here rather than an inline onsubmit keeps pages free of inline script.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  if (button && button.dataset.confirm && !window.confirm(button.dataset.confirm)) event.preventDefault();
}, true);
