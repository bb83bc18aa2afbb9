/* Platform admin panel: progressive enhancement only. Every page works
 * without this file; with it: partial list refresh, confirm dialogs, the
 * theme toggle, column toggles without a reload, relation search, select
 * all, and the role grid's row/column toggles. No dependencies. */
(function () {
  "use strict";

  var meta = function (name) {
    var m = document.querySelector('meta[name="' + name + '"]');
    return m ? m.getAttribute("content") : "";
  };
  var csrf = function () { return meta("csrf-token"); };
  var base = function () { return meta("panel-base"); };

  /* POST a few fields in the background (the session layer checks _csrf). */
  function post(url, fields) {
    var body = new URLSearchParams();
    body.append("_csrf", csrf());
    Object.keys(fields).forEach(function (k) {
      var v = fields[k];
      (Array.isArray(v) ? v : [v]).forEach(function (x) { body.append(k, x); });
    });
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
      body: body
    });
  }

  function debounce(fn, ms) {
    var t;
    return function () {
      var args = arguments, self = this;
      clearTimeout(t);
      t = setTimeout(function () { fn.apply(self, args); }, ms);
    };
  }

  /* ---- theme ---------------------------------------------------------- */
  document.addEventListener("click", function (e) {
    var btn = e.target.closest("[data-theme-toggle]");
    if (!btn) return;
    e.preventDefault();
    var root = document.documentElement;
    var dark = root.getAttribute("data-theme") === "dark" ||
      (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
    var next = dark ? "light" : "dark";
    root.setAttribute("data-theme", next);
    btn.value = dark ? "dark" : "light";
    post(base() + "/theme", { theme: next });
  });

  /* ---- confirmations -------------------------------------------------- */
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.hasAttribute("data-confirm") && !window.confirm(form.getAttribute("data-confirm"))) {
      e.preventDefault();
    }
  });

  /* Links to a confirmation page: confirm here and POST directly. */
  document.addEventListener("click", function (e) {
    var link = e.target.closest("a[data-confirm-post]");
    if (!link) return;
    e.preventDefault();
    if (!window.confirm(link.getAttribute("data-confirm-text") || "Are you sure?")) return;
    var form = document.createElement("form");
    form.method = "post";
    form.action = link.getAttribute("data-confirm-post");
    [["_csrf", csrf()], ["confirmed", "1"]].forEach(function (p) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = p[0];
      input.value = p[1];
      form.appendChild(input);
    });
    document.body.appendChild(form);
    form.submit();
  });

  /* Bulk actions: confirm destructive ones, then skip the confirm page. */
  document.addEventListener("submit", function (e) {
    var form = e.target.closest("[data-bulk-form]");
    if (!form) return;
    var submitter = e.submitter;
    if (submitter && submitter.hasAttribute("formaction")) return;
    var select = form.querySelector("[data-bulk-action]");
    if (!select) return;
    var option = select.options[select.selectedIndex];
    if (!option || !option.hasAttribute("data-confirm")) return;
    var all = submitter && submitter.value === "all";
    var n = form.querySelectorAll("[data-row-check]:checked").length;
    var what = all ? "every matching record" : n + " selected record" + (n === 1 ? "" : "s");
    if (!all && n === 0) return;
    if (!window.confirm(option.textContent + " " + what + "?")) {
      e.preventDefault();
      return;
    }
    var c = form.querySelector('input[name="confirmed"]') || document.createElement("input");
    c.type = "hidden";
    c.name = "confirmed";
    c.value = "1";
    form.appendChild(c);
  });

  /* ---- row selection -------------------------------------------------- */
  function syncSelection(form) {
    var boxes = form.querySelectorAll("[data-row-check]");
    var checked = form.querySelectorAll("[data-row-check]:checked").length;
    var head = form.querySelector("[data-select-page]");
    if (head) {
      head.checked = boxes.length > 0 && checked === boxes.length;
      head.indeterminate = checked > 0 && checked < boxes.length;
    }
    var banner = form.querySelector("[data-select-all-banner]");
    if (banner) banner.hidden = !(boxes.length > 0 && checked === boxes.length);
  }
  document.addEventListener("change", function (e) {
    var t = e.target;
    var form = t.closest("[data-bulk-form]");
    if (!form) return;
    if (t.hasAttribute("data-select-page")) {
      form.querySelectorAll("[data-row-check]").forEach(function (b) { b.checked = t.checked; });
    }
    if (t.hasAttribute("data-select-page") || t.hasAttribute("data-row-check")) syncSelection(form);
  });

  /* ---- column toggles ------------------------------------------------- */
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (!t.hasAttribute("data-col-toggle")) return;
    var name = t.getAttribute("data-col-toggle");
    document.querySelectorAll('[data-list-table] [data-col="' + CSS.escape(name) + '"]').forEach(function (cell) {
      cell.classList.toggle("is-hidden", !t.checked);
    });
    var form = t.closest("[data-columns-form]");
    if (!form) return;
    var cols = Array.prototype.map.call(form.querySelectorAll("[data-col-toggle]:checked"), function (b) { return b.value; });
    // The bulk form's export takes the visible columns: keep them in step.
    document.querySelectorAll("[data-bulk-form]").forEach(function (bulk) {
      var format = bulk.querySelector('select[name="format"]');
      if (!format) return;
      bulk.querySelectorAll('input[name="export_columns"]').forEach(function (o) { o.remove(); });
      var after = format.closest("label") || format;
      cols.slice().reverse().forEach(function (c) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = "export_columns";
        input.value = c;
        after.parentNode.insertBefore(input, after.nextSibling);
      });
    });
    post(form.action, { cols: cols });
  });
  document.querySelectorAll("[data-js-hide]").forEach(function (el) { el.hidden = true; });

  /* ---- partial list refresh ------------------------------------------- */
  var region = document.querySelector("[data-list-region]");
  var filters = document.querySelector("[data-list-filters]");
  var pending = null;

  function listUrl(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (v, k) {
      if (typeof v === "string" && v.trim() !== "") params.append(k, v);
    });
    var q = params.toString();
    return form.action + (q ? "?" + q : "");
  }

  function refresh(url, push) {
    if (!region) { window.location.href = url; return; }
    if (pending) pending.abort();
    pending = new AbortController();
    region.classList.add("list-loading");
    fetch(url, {
      credentials: "same-origin",
      headers: { "X-Panel-Fragment": "list" },
      signal: pending.signal
    }).then(function (res) {
      var type = res.headers.get("content-type") || "";
      if (!res.ok || type.indexOf("text/html") !== 0 || res.redirected) throw new Error("full load");
      return res.text();
    }).then(function (html) {
      region.innerHTML = html;
      region.classList.remove("list-loading");
      if (push) history.pushState({ list: true }, "", url);
      else history.replaceState({ list: true }, "", url);
    }).catch(function (err) {
      if (err && err.name === "AbortError") return;
      window.location.href = url;
    });
  }

  if (filters && region) {
    var apply = function () { refresh(listUrl(filters), false); };
    filters.addEventListener("submit", function (e) { e.preventDefault(); apply(); });
    filters.addEventListener("change", function (e) {
      if (!e.target.hasAttribute("data-debounce")) apply();
    });
    var typed = debounce(apply, 300);
    filters.addEventListener("input", function (e) {
      if (e.target.hasAttribute("data-debounce")) typed();
    });
    region.addEventListener("click", function (e) {
      var a = e.target.closest("a[data-list-link]");
      if (!a || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
      e.preventDefault();
      refresh(a.href, true);
    });
    window.addEventListener("popstate", function () { refresh(window.location.href, false); });
  }

  /* ---- relation pickers ----------------------------------------------- */
  function initPicker(box) {
    var url = box.getAttribute("data-lookup");
    var value = box.querySelector("[data-picker-value]");
    var title = box.querySelector("[data-picker-title]");
    if (!url || !value || box.hasAttribute("data-picker-ready")) return;
    box.setAttribute("data-picker-ready", "");
    var search = document.createElement("input");
    search.type = "search";
    search.className = "picker-search";
    search.placeholder = "Search…";
    search.setAttribute("aria-label", "Search");
    search.setAttribute("autocomplete", "off");
    var list = document.createElement("ul");
    list.className = "picker-results";
    list.hidden = true;
    list.setAttribute("role", "listbox");
    value.insertAdjacentElement("afterend", search);
    box.appendChild(list);
    var active = -1;

    function choose(item) {
      value.value = item.id;
      if (title) title.textContent = item.title;
      search.value = "";
      list.hidden = true;
      value.dispatchEvent(new Event("change", { bubbles: true }));
    }
    function render(items) {
      list.textContent = "";
      active = -1;
      items.forEach(function (item) {
        var li = document.createElement("li");
        li.setAttribute("role", "option");
        li.textContent = item.title + " (#" + item.id + ")";
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(item); });
        li._item = item;
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
    }
    var lookup = debounce(function () {
      var q = search.value.trim();
      fetch(url + "?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { data: [] }; })
        .then(function (body) { render(body.data || []); })
        .catch(function () { render([]); });
    }, 250);
    search.addEventListener("input", lookup);
    search.addEventListener("focus", lookup);
    search.addEventListener("blur", function () { setTimeout(function () { list.hidden = true; }, 150); });
    search.addEventListener("keydown", function (e) {
      var items = list.querySelectorAll("li");
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        if (!items.length) return;
        active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        items.forEach(function (li, i) { li.setAttribute("aria-selected", i === active ? "true" : "false"); });
      } else if (e.key === "Enter" && active >= 0 && items[active]) {
        e.preventDefault();
        choose(items[active]._item);
      } else if (e.key === "Escape") {
        list.hidden = true;
      }
    });
    value.addEventListener("input", function () { if (title) title.textContent = ""; });
  }
  document.querySelectorAll("[data-picker]").forEach(initPicker);

  /* ---- live updates ----------------------------------------------------
   * When the platform serves broadcasting (a <meta name="live-key">), a
   * small Pusher-protocol client subscribes to the open list's resource
   * channel (the list refreshes when a record changes, unless rows are
   * selected) and to the user's own channel (the bell counts up). */
  (function () {
    var key = meta("live-key");
    if (!key || !window.WebSocket || !window.fetch) return;
    var handlers = {};
    var listChannel = region && region.getAttribute("data-live-channel");
    if (listChannel) {
      var stale = debounce(function () {
        if (document.querySelector("[data-row-check]:checked")) return;
        refresh(window.location.href, false);
      }, 250);
      handlers[listChannel] = function (event) {
        if (event.indexOf("pusher") !== 0) stale();
      };
    }
    var user = meta("live-user");
    if (user) {
      handlers["private-user." + user] = function (event) {
        if (event !== "notification.created") return;
        var badge = document.querySelector("[data-bell-count]");
        if (!badge) return;
        var n = (parseInt(badge.textContent, 10) || 0) + 1;
        badge.textContent = String(n);
        badge.classList.remove("is-zero");
        var bell = badge.closest(".bell");
        if (bell) bell.setAttribute("aria-label", n + " unread notifications");
      };
    }
    var tries = 0;
    function subscribe(ws, socketId, channel) {
      fetch(base() + "/broadcasting/auth", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-TOKEN": csrf(), "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ socket_id: socketId, channel_name: channel })
      }).then(function (r) { return r.ok ? r.json() : null; }).then(function (a) {
        if (!a || ws.readyState !== 1) return;
        var data = { channel: channel, auth: a.auth };
        if (a.channel_data) data.channel_data = a.channel_data;
        ws.send(JSON.stringify({ event: "pusher:subscribe", data: data }));
      }).catch(function () {});
    }
    function connect() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var ws = new WebSocket(scheme + window.location.host + "/app/" + encodeURIComponent(key) +
        "?protocol=7&client=platform-panel&version=1");
      ws.onmessage = function (m) {
        var f;
        try { f = JSON.parse(m.data); } catch (e) { return; }
        if (f.event === "pusher:connection_established") {
          tries = 0;
          var id = JSON.parse(f.data).socket_id;
          Object.keys(handlers).forEach(function (c) { subscribe(ws, id, c); });
        } else if (f.event === "pusher:ping") {
          ws.send(JSON.stringify({ event: "pusher:pong", data: {} }));
        } else if (f.channel && handlers[f.channel]) {
          handlers[f.channel](f.event, f.data);
        }
      };
      ws.onclose = function (e) {
        // 4000-4099: the server asks not to reconnect.
        if (e.code >= 4000 && e.code < 4100) return;
        tries += 1;
        setTimeout(connect, Math.min(30000, 1000 * Math.pow(2, tries)));
      };
    }
    if (Object.keys(handlers).length) connect();
  })();

  /* ---- role grid ------------------------------------------------------ */
  document.querySelectorAll("[data-role-grid]").forEach(function (grid) {
    function syncRow(row) {
      var boxes = row.querySelectorAll('input[name="p"]');
      var all = row.querySelector("[data-grid-all]");
      if (!all) return;
      var n = row.querySelectorAll('input[name="p"]:checked').length;
      all.checked = n === boxes.length;
      all.indeterminate = n > 0 && n < boxes.length;
    }
    function syncCols() {
      grid.querySelectorAll("[data-grid-col]").forEach(function (head) {
        var i = head.getAttribute("data-grid-col");
        var boxes = grid.querySelectorAll('input[name="p"][data-col="' + i + '"]');
        var n = grid.querySelectorAll('input[name="p"][data-col="' + i + '"]:checked').length;
        head.checked = boxes.length > 0 && n === boxes.length;
        head.indeterminate = n > 0 && n < boxes.length;
      });
    }
    grid.addEventListener("change", function (e) {
      var t = e.target;
      if (t.hasAttribute("data-grid-all")) {
        t.closest("[data-grid-row]").querySelectorAll('input[name="p"]').forEach(function (b) { b.checked = t.checked; });
      } else if (t.hasAttribute("data-grid-col")) {
        var i = t.getAttribute("data-grid-col");
        grid.querySelectorAll('input[name="p"][data-col="' + i + '"]').forEach(function (b) { b.checked = t.checked; });
        grid.querySelectorAll("[data-grid-row]").forEach(syncRow);
      } else if (t.name === "p") {
        var row = t.closest("[data-grid-row]");
        if (row) syncRow(row);
      }
      syncCols();
    });
    grid.querySelectorAll("[data-grid-row]").forEach(syncRow);
    syncCols();
  });

  /* ---- copy a new token ----------------------------------------------- */
  document.addEventListener("click", function (e) {
    var el = e.target.closest("[data-copy]");
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent.trim());
  });
})();
