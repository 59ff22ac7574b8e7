/* mod_livy web UI: what every page shares. The pages only call the Livy JSON API of the mount
 * point they are served under (and its ui/api/ extras), with the user's own credentials, so
 * they show exactly what the API lets that user see; writes carry X-Requested-By (CSRF). */
"use strict";

const LivyUI = (() => {
    /* <mount>/ui/page.html -> <mount> */
    const base = location.pathname.replace(/\/ui(\/[^/]*)?$/, "");
    const POLL_MS = 2000;

    class ApiError extends Error {
        constructor(status, msg) {
            super(msg);
            this.status = status;
        }
    }

    async function call(method, path, body) {
        const init = { method, headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" };
        if (method !== "GET") {
            init.headers["X-Requested-By"] = "mod_livy-ui";
            init.headers["Content-Type"] = "application/json";
            init.body = body === undefined ? "{}" : JSON.stringify(body);
            if (method === "DELETE") delete init.body;
        }
        const r = await fetch(base + path, init);
        let data = null;
        try { data = await r.json(); } catch (e) { data = null; }
        if (!r.ok) throw new ApiError(r.status, (data && data.msg) || `${method} ${path}: HTTP ${r.status}`);
        return data;
    }

    /* el("td", {class: "num"}, "text", childNode...): text is always text, never markup. */
    function el(tag, attrs, ...children) {
        const e = document.createElement(tag);
        for (const [k, v] of Object.entries(attrs || {})) {
            if (v === null || v === undefined || v === false) continue;
            if (k === "text") e.textContent = v;
            else if (k === "onclick") e.addEventListener("click", v);
            else e.setAttribute(k, v === true ? "" : String(v));
        }
        for (const c of children) {
            if (c === null || c === undefined) continue;
            e.append(c instanceof Node ? c : document.createTextNode(String(c)));
        }
        return e;
    }

    function stateBadge(state, extraClass) {
        return el("span", { class: `state state-${state}${extraClass ? " " + extraClass : ""}` }, state ?? "—");
    }

    function duration(ms) {
        if (ms === null || ms === undefined || ms < 0 || Number.isNaN(ms)) return "—";
        const s = Math.floor(ms / 1000);
        if (s < 1) return `${ms} ms`;
        if (s < 60) return `${s}s`;
        const m = Math.floor(s / 60);
        if (m < 60) return `${m}m ${s % 60}s`;
        const h = Math.floor(m / 60);
        if (h < 48) return `${h}h ${m % 60}m`;
        return `${Math.floor(h / 24)}d ${h % 24}h`;
    }

    function text(v) {
        return v === null || v === undefined || v === "" ? "—" : String(v);
    }

    function status(msg) {
        const s = document.getElementById("status");
        if (s) s.textContent = msg || "";
    }

    /* Runs fn now and then every POLL_MS after it finished (never overlapping), until it
     * returns false. Errors are shown in the page's status line (and taken away once fn
     * succeeds again, unless something else was said since) and polling goes on. */
    function poll(fn) {
        let stopped = false, shown = null;
        async function tick() {
            let more = true;
            try {
                more = (await fn()) !== false;
                const s = document.getElementById("status");
                if (shown !== null && s && s.textContent === shown) status("");
                shown = null;
            } catch (e) {
                shown = e.message;
                status(shown);
            }
            if (more && !stopped) setTimeout(tick, POLL_MS);
        }
        tick();
        return () => { stopped = true; };
    }

    function param(name) {
        return new URLSearchParams(location.search).get(name);
    }

    /* A table of rows with headers, as an output. */
    function table(headers, rows) {
        const t = el("table", {});
        const tr = el("tr", {});
        for (const h of headers) tr.append(el("th", { scope: "col" }, h));
        t.append(el("thead", {}, tr));
        const tb = el("tbody", {});
        for (const row of rows) {
            const r = el("tr", {});
            for (const v of row) r.append(el("td", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : text(v)));
            tb.append(r);
        }
        t.append(tb);
        return t;
    }

    /* A statement's output as Livy gives it: error, image, table, SQL rows, JSON or text. */
    function renderOutput(output) {
        const box = el("div", { class: "output" });
        if (!output) return box;
        if (output.status === "error") {
            box.append(el("pre", { class: "error" }, `${output.ename}: ${output.evalue}`));
            if (output.traceback && output.traceback.length)
                box.append(el("pre", { class: "traceback" }, output.traceback.join("")));
            return box;
        }
        const data = output.data || {};
        if (data["image/png"]) {
            box.append(el("img", { src: "data:image/png;base64," + data["image/png"], alt: "Image output of the statement" }));
        } else if (data["application/vnd.livy.table.v1+json"]) {
            const t = data["application/vnd.livy.table.v1+json"];
            box.append(table((t.headers || []).map(h => h.name), t.data || []));
        } else if (data["application/json"] && data["application/json"].schema && Array.isArray(data["application/json"].data)) {
            const j = data["application/json"];
            box.append(table((j.schema.fields || []).map(f => f.name), j.data));
        } else if (data["application/json"] !== undefined) {
            box.append(el("pre", {}, JSON.stringify(data["application/json"], null, 2)));
        } else if (data["text/plain"] !== undefined) {
            box.append(el("pre", {}, data["text/plain"]));
        }
        return box;
    }

    /* Follows a log (…/log of a session or batch): the tail first, then only new lines. */
    function logFollower(path, pre) {
        let next = null;
        return async () => {
            const q = next === null ? "size=200" : `from=${next}&size=1000`;
            const page = await call("GET", `${path}?${q}`);
            if (next !== null && page.total < next) { /* trimmed: start again from the tail */
                next = null;
                pre.textContent = "";
                return;
            }
            const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            if (page.log.length) pre.append(document.createTextNode(page.log.join("\n") + "\n"));
            next = page.from + page.log.length;
            if (atBottom) pre.scrollTop = pre.scrollHeight;
        };
    }

    return { base, call, el, stateBadge, duration, text, status, poll, param, renderOutput, logFollower, ApiError };
})();
