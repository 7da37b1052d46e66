/* critmin dashboard: the scenario lab, risk, stockpile and marketplace views' scripts (no dependency but the
   bundled Plotly). Every view also works as plain forms and links; these scripts swap results in place, show
   progress and talk to the marketplace service with the signed-in participant's token. */
(function () {
  "use strict";

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $all(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }

  // Put server-rendered HTML into a container and run its scripts (Plotly figures draw from inline scripts).
  function swap(target, html) {
    target.innerHTML = html;
    $all("script", target).forEach(function (old) {
      var s = document.createElement("script");
      Array.prototype.forEach.call(old.attributes, function (a) { s.setAttribute(a.name, a.value); });
      s.text = old.text;
      old.parentNode.replaceChild(s, old);
    });
    scrollers(target);
  }

  function fetchText(url, opts) {
    return fetch(url, opts || {}).then(function (r) {
      return r.text().then(function (t) { return {ok: r.ok, status: r.status, text: t}; });
    });
  }

  // A table wider than its box scrolls sideways: make the box reachable from the keyboard and name it.
  function scrollers(root) {
    $all(".table-wrap", root).forEach(function (box) {
      if (box.scrollWidth > box.clientWidth + 1) {
        if (!box.hasAttribute("tabindex")) { box.setAttribute("tabindex", "0"); }
        box.setAttribute("role", "region");
        var t = box.querySelector("table"), cap = t && t.querySelector("caption");
        var sec = box.closest("section"), h = sec && sec.querySelector("h2, h3");
        box.setAttribute("aria-label", (cap && cap.textContent.trim()) || (h && h.textContent.trim()) || "table");
      }
    });
  }
  scrollers(document);
  window.addEventListener("resize", function () { scrollers(document); });

  // The page's "Link to this view" follows the state the script put in the address bar.
  function shareLink() {
    var a = $(".share a");
    if (a) { a.href = location.pathname + location.search; a.textContent = location.pathname + location.search; }
  }

  function formQuery(form) {
    var params = new URLSearchParams();
    var fd = new FormData(form);
    var editing = !!(form.elements.edit && form.elements.edit.checked);
    var picks = [];
    fd.forEach(function (v, k) {
      if (k === "compare-pick") { picks.push(v); return; }
      if (k === "compare") { return; }
      if (form.id === "scenario-form" && !editing && ["type", "country", "commodities", "stage", "cut", "start",
          "duration"].indexOf(k) >= 0) { return; }
      params.append(k, v);
    });
    if (form.id === "compare-form") { params.set("compare", picks.join(",")); }
    if (form.id === "scenario-form") {   // no holding given: no stockpile fields in the URL
      ["stock_USA", "stock_JPN", "stock_release"].forEach(function (k) { if (params.get(k) === "") { params.delete(k); } });
      if (!params.has("stock_USA") && !params.has("stock_JPN")) { params.delete("stock_stage"); params.delete("stock_release"); }
    }
    return params.toString();
  }

  // ------------------------------------------------------------------ scenario lab
  $all("form[data-fragment]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var target = $(form.getAttribute("data-target"));
      var q = formQuery(form);
      target.setAttribute("aria-busy", "true");
      var note = document.createElement("p");
      note.className = "note loading";
      note.textContent = "Running…";
      target.insertBefore(note, target.firstChild);
      fetchText(form.getAttribute("data-fragment") + "?" + q).then(function (res) {
        swap(target, res.text);
        target.setAttribute("aria-busy", "false");
        target.setAttribute("data-status", String(res.status));
        if (res.ok) { history.pushState(null, "", form.getAttribute("action") + "?" + q); shareLink(); }
      }).catch(function (err) {
        target.setAttribute("aria-busy", "false");
        note.className = "error";
        note.textContent = "The run failed: " + err;
      });
    });
  });
  window.addEventListener("popstate", function () {
    if ($("#scenario-form") || $("#risk-form")) { location.reload(); }
  });

  var presetSelect = $("#sc-preset");
  if (presetSelect) {
    presetSelect.addEventListener("change", function () {
      fetchText(presetSelect.getAttribute("data-events") + "?preset=" + encodeURIComponent(presetSelect.value))
        .then(function (res) { if (res.ok) { swap($("#sc-events"), res.text); } });
    });
    $("#sc-add-event").addEventListener("click", function () {
      var rows = $all("#sc-events tbody tr");
      if (!rows.length) { return; }
      var row = rows[rows.length - 1].cloneNode(true);
      var n = rows.length + 1;
      $all("input", row).forEach(function (inp) {
        inp.value = "";
        inp.setAttribute("aria-label", inp.getAttribute("aria-label").replace(/event \d+/, "event " + n));
      });
      rows[rows.length - 1].parentNode.appendChild(row);
      $("#sc-edit").checked = true;
    });
    $("#sc-events").addEventListener("input", function () { $("#sc-edit").checked = true; });
  }

  // ------------------------------------------------------------------ risk
  var riskForm = $("#risk-form");
  if (riskForm) {
    var box = $("#risk-job"), bar = $("#rk-progress"), msg = $("#rk-message"), cancelBtn = $("#rk-cancel");
    var results = $("#risk-results");
    var current = null;

    var show = function (st) {
      box.hidden = false;
      bar.max = st.total || 1;
      bar.value = st.state === "done" ? (st.total || 1) : st.done;
      msg.textContent = st.state + (st.message && st.message !== st.state ? ": " + st.message : "") +
        (st.cached ? " (from the cache)" : "");
      box.setAttribute("data-state", st.state);
      cancelBtn.disabled = !(st.state === "queued" || st.state === "running");
    };
    var finish = function (q) {
      fetchText("/risk/result?" + q).then(function (res) {
        swap(results, res.text);
        results.setAttribute("aria-busy", "false");
        results.classList.remove("stale");
      });
    };
    var poll = function (id, q) {
      fetch("/risk/status/" + id).then(function (r) { return r.json(); }).then(function (st) {
        if (current !== id) { return; }
        show(st);
        if (st.state === "done") { finish(q); }
        else if (st.state === "queued" || st.state === "running") { setTimeout(function () { poll(id, q); }, 300); }
        else { results.setAttribute("aria-busy", "false"); }
      });
    };
    var start = function () {
      var q = formQuery(riskForm);
      results.setAttribute("aria-busy", "true");
      if (results.children.length) {   // the figures shown are the previous inputs' until this run is done
        results.classList.add("stale");
        results.setAttribute("title", "figures of the previous inputs (their settings are shown with them)");
      }
      fetch("/risk/run", {method: "POST", body: new URLSearchParams(q)})
        .then(function (r) { return r.json().then(function (b) { return {ok: r.ok, body: b}; }); })
        .then(function (res) {
          if (!res.ok) {
            box.hidden = false;
            msg.textContent = (res.body.field ? res.body.field + ": " : "") + (res.body.error || "refused");
            box.setAttribute("data-state", "failed");
            return;
          }
          current = res.body.id;
          show(res.body);
          if (res.body.state === "done") { finish(q); } else { poll(res.body.id, q); }
        });
      history.replaceState(null, "", "/risk?" + q);
      shareLink();
    };
    riskForm.addEventListener("submit", function (ev) { ev.preventDefault(); start(); });
    cancelBtn.addEventListener("click", function () {
      if (!current) { return; }
      fetch("/risk/cancel/" + current, {method: "POST"}).then(function (r) { return r.json(); }).then(show);
    });
    if (box.getAttribute("data-autostart") === "yes") { start(); }
  }

  // ------------------------------------------------------------------ stockpile: sections load on their own
  $all("[data-src]").forEach(function (el) {
    fetchText(el.getAttribute("data-src")).then(function (res) {
      swap(el, res.text);
      el.setAttribute("aria-busy", "false");
      el.setAttribute("data-status", String(res.status));
    }).catch(function (err) {
      el.setAttribute("aria-busy", "false");
      el.textContent = "Could not load this section: " + err;
    });
  });

  // ------------------------------------------------------------------ marketplace
  var app = $("#market-app");
  if (app) { market(app); }

  function market(app) {
    var API = app.getAttribute("data-api");
    var KEY = "critmin.market.token";
    var me = null;

    var err = function (text) { $("#mk-error").textContent = text || ""; };
    var key = function () {
      return (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
        : String(Date.now()) + "-" + Math.random().toString(36).slice(2);
    };
    var call = function (method, path, body, extra) {
      var token = sessionStorage.getItem(KEY);
      var headers = {"Authorization": "Bearer " + token};
      Object.keys(extra || {}).forEach(function (k) { headers[k] = extra[k]; });
      if (method !== "GET") { headers["Idempotency-Key"] = key(); }
      if (body !== undefined) { headers["Content-Type"] = "application/json"; }
      return fetch(API + path, {method: method, headers: headers,
                                body: body !== undefined ? JSON.stringify(body) : undefined})
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (b) {
            if (!r.ok) {
              var e = b && b.error ? b.error : {};
              var text = (e.field ? e.field + ": " : "") + (e.message || ("HTTP " + r.status));
              throw new Error(text);
            }
            return b;
          });
        });
    };
    var fill = function (id, rows) {
      var tbody = $("#" + id + " tbody");
      tbody.textContent = "";
      rows.forEach(function (cells) {
        var tr = document.createElement("tr");
        cells.forEach(function (c) {
          var td = document.createElement("td");
          if (c instanceof Node) { td.appendChild(c); } else { td.textContent = c === null || c === undefined ? "" : String(c); }
          tr.appendChild(td);
        });
        tbody.appendChild(tr);
      });
      if (!rows.length) {
        var tr = document.createElement("tr"), td = document.createElement("td");
        td.colSpan = $all("#" + id + " thead th").length;
        td.className = "note";
        td.textContent = "none";
        tr.appendChild(td);
        tbody.appendChild(tr);
      }
      scrollers($("#" + id).closest("section"));
    };
    var bookPath = function () {
      return "/v1/books/" + encodeURIComponent($("#mk-commodity").value) + "/" +
        encodeURIComponent($("#mk-form").value) + "/" + encodeURIComponent($("#mk-grade").value);
    };
    var refresh = function () {
      if (!me) { return Promise.resolve(); }
      err("");
      var jobs = [
        call("GET", bookPath()).then(function (b) {
          fill("mk-bids", b.bids.map(function (l) { return [l.price, l.quantity, l.orders]; }));
          fill("mk-asks", b.asks.map(function (l) { return [l.price, l.quantity, l.orders]; }));
        }),
        call("GET", "/v1/orders?limit=500").then(function (p) {
          fill("mk-orders", p.items.map(function (o) {
            var action = "";
            if (o.status === "open" && o.participant_id === me.id) {
              action = document.createElement("button");
              action.type = "button";
              action.className = "secondary";
              action.textContent = "Cancel";
              action.setAttribute("aria-label", "Cancel order " + o.id);
              action.addEventListener("click", function () {
                call("DELETE", "/v1/orders/" + encodeURIComponent(o.id), undefined, {"If-Match": '"' + o.version + '"'})
                  .then(refresh).catch(function (e) { err("Cancel refused: " + e.message); });
              });
            }
            return [o.id, o.participant_id, o.side, o.commodity + "/" + o.form + "/" + o.grade, o.quantity,
                    o.remaining, o.limit_price, o.status, action];
          }));
        }),
        call("GET", "/v1/trades?limit=500").then(function (p) {
          fill("mk-trades", p.items.map(function (t) {
            return [t.id, t.buyer_id, t.seller_id, t.commodity + "/" + t.form + "/" + t.grade, t.quantity, t.price,
                    t.origin, t.programme_id || "", t.support_paid];
          }));
        }),
        // my account, and those of the programmes I run (their floor or CfD payments)
        call("GET", "/v1/programmes").then(function (progs) {
          var owners = [me.id].concat(progs.filter(function (p) { return p.participant_id === me.id; })
                                           .map(function (p) { return p.id; }));
          return Promise.all(owners.map(function (o) { return call("GET", "/v1/accounts/" + encodeURIComponent(o)); }));
        }).then(function (accounts) {
          var rows = [];
          accounts.forEach(function (a) { a.balances.forEach(function (b) { rows.push([a.owner, b.asset, b.amount]); }); });
          fill("mk-account", rows);
        })
      ];
      var auditor = me.scopes.indexOf("audit") >= 0 && (me.role === "regulator" || me.role === "admin");
      $("#mk-audit-section").hidden = !auditor;
      if (auditor) {
        jobs.push(Promise.all([call("GET", "/v1/audit/head?verify=true"), call("GET", "/v1/ledger/trial-balance")])
          .then(function (r) {
            var h = r[0], tb = r[1];
            $("#mk-audit-head").textContent = h.count + " records; chain " + (h.valid ? "intact" : "BROKEN at " + h.first_bad) +
              "; head " + h.head.slice(0, 16) + "…; trial balance " + (tb.balanced ? "balanced" : "NOT balanced") +
              " over " + tb.postings + " postings, stored accounts " + (tb.accounts_agree ? "agree" : "DISAGREE") + ".";
          }));
        jobs.push(call("GET", "/v1/audit?limit=200").then(function (p) {
          fill("mk-audit", p.items.map(function (r) {
            return [r.seq, r.kind, JSON.stringify(r.payload).slice(0, 160), r.hash.slice(0, 16) + "…"];
          }));
        }));
      }
      return Promise.all(jobs).then(function () { app.setAttribute("data-loaded", String(Date.now())); })
        .catch(function (e) { err(e.message); });
    };
    var signedIn = function (m) {
      me = m;
      $("#mk-me").textContent = "Signed in as " + m.id + " (" + m.name + "; " + m.role + ", " + m.country +
        "; scopes " + m.scopes.join(", ") + ").";
      $("#mk-signout").hidden = false;
      $("#mk-token").value = "";
      app.setAttribute("data-participant", m.id);
      return refresh();
    };
    var signIn = function () {
      return call("GET", "/v1/me").then(signedIn).catch(function (e) {
        sessionStorage.removeItem(KEY);
        me = null;
        app.removeAttribute("data-participant");
        err("Sign-in refused: " + e.message);
      });
    };
    $("#mk-login").addEventListener("submit", function (ev) {
      ev.preventDefault();
      sessionStorage.setItem(KEY, $("#mk-token").value.trim());
      signIn();
    });
    $("#mk-signout").addEventListener("click", function () {
      sessionStorage.removeItem(KEY);
      me = null;
      app.removeAttribute("data-participant");
      $("#mk-me").textContent = "Not signed in.";
      $("#mk-signout").hidden = true;
      ["mk-bids", "mk-asks", "mk-orders", "mk-trades", "mk-account", "mk-audit"].forEach(function (id) {
        $("#" + id + " tbody").textContent = "";
      });
      $("#mk-audit-section").hidden = true;
    });
    $("#mk-refresh").addEventListener("click", refresh);
    $("#mk-place").addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!me) { err("Sign in first."); return; }
      var f = ev.target.elements;
      var body = {side: f.side.value, commodity: $("#mk-commodity").value, form: $("#mk-form").value,
                  grade: $("#mk-grade").value, quantity: f.quantity.value.trim(), limit_price: f.limit_price.value.trim(),
                  delivery_start: f.delivery_start.value, delivery_end: f.delivery_end.value,
                  location: f.location.value.trim()};
      if (f.origin.value.trim()) { body.origin = f.origin.value.trim().toUpperCase(); }
      if (f.irma_level.value) { body.attestations = {irma_level: parseInt(f.irma_level.value, 10)}; }
      if (f.allied_only.checked) { body.requirements = {allied_only: true}; }
      call("POST", "/v1/orders", body).then(function (res) {
        var n = res.trades.length;
        $("#mk-placed").textContent = "Order " + res.order.id + " placed (" + res.order.status + "); " + n +
          " trade" + (n === 1 ? "" : "s") + (n ? " at " + res.trades.map(function (t) { return t.quantity + " kg × " + t.price; }).join(", ") : "") + ".";
        return refresh();
      }).catch(function (e) { err("Order refused: " + e.message); });
    });
    $all("[data-csv]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var id = btn.getAttribute("data-csv");
        var q = function (s) { return '"' + String(s).replace(/"/g, '""') + '"'; };
        var lines = [$all("#" + id + " thead th").map(function (th) { return q(th.textContent.trim()); }).join(",")];
        $all("#" + id + " tbody tr").forEach(function (tr) {
          lines.push($all("td", tr).map(function (td) { return q(td.textContent.trim()); }).join(","));
        });
        var a = document.createElement("a");
        a.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], {type: "text/csv"}));
        a.download = id.replace("mk-", "market-") + ".csv";
        document.body.appendChild(a);
        a.click();
        setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
      });
    });
    if (sessionStorage.getItem(KEY)) { signIn(); }
  }
})();
