// The review workspace, driven by the keyboard: j/k move, 1-9 rank, b best, e edit, a/r/s decide,
// ctrl+enter save, c comment, g guidelines, h history, ? shortcuts. Drag cards to rank.
// State lives in the form's hidden inputs, so htmx posts exactly what is on screen; drafts are autosaved
// to the server (held items) and to localStorage (always), so a crash or a refused save loses nothing.
(function () {
  "use strict";
  var ws = null, form = null, cards = [], focus = 0, startedAt = 0, diffTimer = null;

  // ---- word diff (LCS on word tokens, common prefix/suffix trimmed first) ----
  function tokens(text) { return text.match(/\S+|\s+/g) || []; }
  function wordDiff(before, after) {
    var a = tokens(before), b = tokens(after), start = 0, endA = a.length, endB = b.length;
    while (start < endA && start < endB && a[start] === b[start]) start++;
    while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB--; }
    var ops = [];
    if (start) ops.push(["=", a.slice(0, start).join("")]);
    var midA = a.slice(start, endA), midB = b.slice(start, endB), n = midA.length, m = midB.length;
    if (n * m > 4000000) { // too big for the table: show the middle as replaced rather than freeze the page
      if (n) ops.push(["-", midA.join("")]);
      if (m) ops.push(["+", midB.join("")]);
    } else {
      var table = [], i, j;
      for (i = 0; i <= n; i++) table.push(new Uint32Array(m + 1));
      for (i = n - 1; i >= 0; i--) for (j = m - 1; j >= 0; j--)
        table[i][j] = midA[i] === midB[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
      i = 0; j = 0;
      while (i < n || j < m) {
        if (i < n && j < m && midA[i] === midB[j]) { ops.push(["=", midA[i]]); i++; j++; }
        else if (j < m && (i === n || table[i][j + 1] >= table[i + 1][j])) { ops.push(["+", midB[j]]); j++; }
        else { ops.push(["-", midA[i]]); i++; }
      }
    }
    if (endA < a.length) ops.push(["=", a.slice(endA).join("")]);
    return ops;
  }
  function renderDiff(target, before, after) {
    target.textContent = "";
    var ops = wordDiff(before, after), last = null;
    ops.forEach(function (op) {
      var tag = op[0] === "+" ? "ins" : op[0] === "-" ? "del" : "span";
      if (last && last.tagName.toLowerCase() === tag) { last.textContent += op[1]; return; }
      last = document.createElement(tag);
      last.textContent = op[1]; // text only: model output is never parsed as HTML
      target.appendChild(last);
    });
    if (before === after) target.insertAdjacentHTML("afterbegin", '<p class="muted small">No change from the teacher\'s original yet.</p>');
  }

  // ---- state in the form ----
  function field(name) { return form.querySelector("[name=" + name + "]"); }
  function chosenId() { return field("chosen").value; }
  function cardById(id) { return cards.filter(function (c) { return c.dataset.id === String(id); })[0]; }
  function originalOf(card) { return card ? card.querySelector("textarea.original").value : ""; }
  function editor() { return form.querySelector(".editor"); }
  function editing() { return document.activeElement === field("edited_text"); }

  function paint() {
    var ranked = !!field("ranking").value;
    cards.forEach(function (card, index) {
      card.classList.toggle("focused", index === focus);
      card.classList.toggle("chosen", card.dataset.id === chosenId());
      card.querySelector(".rank").textContent = ranked ? "#" + (index + 1) : "";
    });
    if (cards[focus]) cards[focus].scrollIntoView({block: "nearest", inline: "nearest"});
  }
  function changed() {
    // A "Not saved" validation message answered an earlier submit; once the annotator ranks, picks or edits,
    // it no longer describes what is on screen (a stale-save conflict notice stays: it still holds).
    ws.querySelectorAll(".alert.error").forEach(function (alert) { alert.remove(); });
    var clientError = form.querySelector(".client-error");
    if (clientError) clientError.textContent = "";
    saveLocalDraft();
    document.body.dispatchEvent(new Event("draft-changed"));
  }
  function setRanking() {
    field("ranking").value = cards.map(function (c) { return c.dataset.id; }).join(",");
    paint(); changed();
  }
  function moveTo(position) {
    if (!cards.length || position >= cards.length) return;
    var card = cards[focus], box = card.parentNode;
    box.removeChild(card);
    box.insertBefore(card, box.children[position] || null);
    cards = Array.prototype.slice.call(box.children);
    focus = position;
    setRanking();
  }
  function choose(card) {
    var current = chosenId(), text = field("edited_text").value;
    if (current && current !== card.dataset.id && text && text !== originalOf(cardById(current)) &&
        !window.confirm("Your edit belongs to the candidate chosen before. Drop that edit?")) return;
    if (current !== card.dataset.id) { field("edited_text").value = ""; editor().hidden = true; }
    field("chosen").value = card.dataset.id;
    paint(); changed();
  }
  function openEditor() {
    var card = cardById(chosenId());
    if (!card) { choose(cards[focus]); card = cards[focus]; }
    var area = field("edited_text");
    if (!area.value) area.value = originalOf(card);
    editor().hidden = false;
    area.focus();
    updateDiff();
  }
  function updateDiff() {
    var target = form.querySelector(".live-diff"), card = cardById(chosenId());
    if (target && card && !editor().hidden) renderDiff(target, originalOf(card), field("edited_text").value);
  }

  function submit(decision) {
    var error = form.querySelector(".client-error");
    error.textContent = "";
    if (decision === "approve" && !chosenId() && !field("ranking").value && cards.length > 1) {
      error.textContent = "Pick the best candidate (b) or rank them (1–9) before approving.";
      return;
    }
    field("seconds_spent").value = ((performance.now() - startedAt) / 1000).toFixed(3);
    var button = form.querySelector("button[value=" + decision + "]");
    if (!button || button.disabled) return; // a save is already on its way
    var hidden = form.querySelector("input[type=hidden][name=decision]");
    hidden.disabled = false; // keyboard submits click no button, so the decision travels in this field
    hidden.value = decision;
    form.requestSubmit(button);
  }

  // ---- local drafts: survive a crash or a refused save ----
  function draftKey() { return ws.dataset.draftKey; }
  function saveLocalDraft() {
    try {
      localStorage.setItem(draftKey(), JSON.stringify({
        version: ws.dataset.version, ranking: field("ranking").value, chosen: chosenId(),
        edited_text: field("edited_text").value, comment: field("comment").value,
      }));
    } catch (e) { /* storage full or disabled: the server draft still works */ }
  }
  function restoreLocalDraft() {
    var raw = null;
    try { raw = localStorage.getItem(draftKey()); } catch (e) { return; }
    if (!raw || ws.dataset.keepState) return;
    var draft = JSON.parse(raw);
    if (draft.version !== ws.dataset.version) { localStorage.removeItem(draftKey()); return; }
    if (field("edited_text").value || field("comment").value || field("ranking").value) return; // the server had it
    if (draft.ranking) {
      var box = document.getElementById("candidates");
      draft.ranking.split(",").forEach(function (id) { var c = cardById(id); if (c) box.appendChild(c); });
      cards = Array.prototype.slice.call(box.children);
      field("ranking").value = draft.ranking;
    }
    field("chosen").value = draft.chosen || "";
    field("edited_text").value = draft.edited_text || "";
    field("comment").value = draft.comment || "";
    if (draft.edited_text) editor().hidden = false;
  }

  // ---- drag to rank ----
  function bindDrag() {
    var dragged = null;
    cards.forEach(function (card) {
      card.addEventListener("dragstart", function (e) { dragged = card; e.dataTransfer.effectAllowed = "move"; card.classList.add("dragging"); });
      card.addEventListener("dragend", function () { card.classList.remove("dragging"); dragged = null; });
      card.addEventListener("dragover", function (e) {
        if (!dragged || dragged === card) return;
        e.preventDefault();
        var rect = card.getBoundingClientRect(), after = e.clientX > rect.left + rect.width / 2;
        card.parentNode.insertBefore(dragged, after ? card.nextSibling : card);
      });
      card.addEventListener("drop", function (e) {
        e.preventDefault();
        cards = Array.prototype.slice.call(card.parentNode.children);
        focus = cards.indexOf(dragged || card);
        setRanking();
      });
      card.addEventListener("click", function (e) {
        if (e.target.closest("a")) return;
        focus = cards.indexOf(card); paint();
      });
    });
  }

  function init(root) {
    var found = root.querySelector(".ws[data-prompt]") || (root.matches && root.matches(".ws[data-prompt]") ? root : null);
    if (!found || found.dataset.ready) return;
    ws = found;
    ws.dataset.ready = "1";
    form = ws.querySelector("#review-form");
    cards = Array.prototype.slice.call(ws.querySelectorAll("#candidates .cand"));
    focus = 0;
    startedAt = performance.now();
    restoreLocalDraft();
    bindDrag();
    paint();
    updateDiff();
    field("edited_text").addEventListener("input", function () {
      clearTimeout(diffTimer); diffTimer = setTimeout(updateDiff, 120); changed();
    });
    field("comment").addEventListener("input", changed);
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      b.addEventListener("click", function (e) { e.preventDefault(); submit(b.value); });
    });
    if (ws.dataset.keepState) saveLocalDraft();
  }

  // A save went through: the local draft of that item is no longer needed. The key is taken when the request
  // leaves, because by the time the answer is in, the workspace may already show the next item.
  var savingKey = null;
  document.addEventListener("htmx:beforeRequest", function (e) {
    if (ws && e.detail.elt === form) savingKey = draftKey();
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    if (!e.detail.elt || e.detail.elt.id !== "review-form") return;
    if (savingKey && e.detail.successful && e.detail.xhr.status < 300) {
      try { localStorage.removeItem(savingKey); } catch (err) { /* ignore */ }
    }
    savingKey = null;
  });

  document.addEventListener("keydown", function (e) {
    var dialog = document.getElementById("shortcuts");
    if (e.key === "?" && !editing() && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) {
      e.preventDefault(); if (dialog && !dialog.open) dialog.showModal(); return;
    }
    if ((!ws || !document.body.contains(ws)) && document.querySelector(".ws[data-prompt]")) init(document);
    if (!ws || !document.body.contains(ws) || (dialog && dialog.open)) return;
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); submit("approve"); return; }
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName);
    if (e.key === "Escape" && typing) { document.activeElement.blur(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    var key = e.key;
    if (key === "Enter" && /^(A|BUTTON|SUMMARY)$/.test(document.activeElement.tagName)) return; // let it activate
    if (key === "j" || key === "ArrowRight") { focus = Math.min(focus + 1, cards.length - 1); paint(); }
    else if (key === "k" || key === "ArrowLeft") { focus = Math.max(focus - 1, 0); paint(); }
    else if (/^[1-9]$/.test(key)) moveTo(parseInt(key, 10) - 1);
    else if (key === "b" || key === "Enter") { if (cards[focus]) choose(cards[focus]); }
    else if (key === "e") openEditor();
    else if (key === "a") submit("approve");
    else if (key === "r") submit("reject");
    else if (key === "s") submit("skip");
    else if (key === "c") field("comment").focus();
    else if (key === "g") ws.classList.toggle("no-guidelines");
    else if (key === "h") window.location.href = ws.dataset.historyUrl;
    else return;
    e.preventDefault();
  });
  document.addEventListener("click", function (e) {
    if (e.target.closest("[data-action=help]")) document.getElementById("shortcuts").showModal();
  });

  // Right after the swap, not at htmx:load (which waits for the settle delay): a key pressed the moment the
  // next item appears must already act on it.
  document.addEventListener("htmx:afterSwap", function (e) { if (e.detail.target.id === "workspace") init(e.detail.target); });
  htmx.onLoad(function (element) { if (element.querySelector) init(element); });
})();
