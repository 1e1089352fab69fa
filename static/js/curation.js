// Shared behaviour of the curation pages: failed htmx requests are reported, never silently dropped.
(function () {
  "use strict";

  function toast(message, kind) {
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.createElement("div");
      box.id = "toasts";
      box.setAttribute("aria-live", "assertive");
      document.body.appendChild(box);
    }
    var item = document.createElement("div");
    item.className = "toast " + (kind || "error");
    item.textContent = message; // text, never HTML
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, 6000);
  }
  window.distilleryToast = toast;

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr.status;
    var reason = status === 403 ? "you do not have the role for this" : status === 404 ? "not found" : "server error";
    toast("Not done (" + status + ": " + reason + "). Nothing on this page was lost.");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The server could not be reached. Your work is still on this page: try again.");
  });
  // <button data-dismiss=".confirm"> removes its enclosing .confirm (no inline handlers: the CSP forbids them).
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss]");
    if (button) {
      var box = button.closest(button.getAttribute("data-dismiss"));
      if (box) { box.remove(); }
    }
  });
})();
