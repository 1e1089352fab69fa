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

// Forms whose fields depend on a choice (the training form: KD settings only for KD, LoRA settings only for
// LoRA...): a field with data-show-when="method=kd student_source=lora" shows when any condition holds.
function distilleryShowWhen(root) {
  (root || document).querySelectorAll("form").forEach((form) => {
    const dependent = form.querySelectorAll("[data-show-when]");
    if (!dependent.length) return;
    const apply = () => dependent.forEach((field) => {
      const show = field.dataset.showWhen.split(/\s+/).some((condition) => {
        const [name, value] = condition.split("=");
        const chooser = form.elements[name];
        return chooser && chooser.value === value;
      });
      const box = field.closest("label") || field;
      box.hidden = !show;
    });
    if (!form.dataset.showWhenBound) {
      form.addEventListener("change", apply);
      form.dataset.showWhenBound = "1";
    }
    apply();
  });
}
document.addEventListener("DOMContentLoaded", () => distilleryShowWhen());
document.addEventListener("htmx:afterSwap", (e) => distilleryShowWhen(e.target.closest("form") ? e.target.closest("form").parentNode : e.target));
