/* The sessions list: GET /sessions a page at a time, with ages and idle times from
 * ui/api/sessions; the filters narrow the page shown. */
"use strict";
(() => {
    const { call, el, stateBadge, duration, text, poll } = LivyUI;
    const PAGE = 25;
    let from = 0, total = 0;
    const stateSel = document.getElementById("filter-state");
    const ownerIn = document.getElementById("filter-owner");
    const body = document.querySelector("#sessions tbody");
    let last = null;

    function render() {
        if (!last) return;
        const [page, times] = last;
        const byId = new Map(times.sessions.map(t => [t.id, t]));
        const want = stateSel.value, owner = ownerIn.value.trim();
        const rows = [];
        for (const s of page.sessions) {
            if (want && s.state !== want) continue;
            if (owner && (s.owner || "") !== owner) continue;
            const t = byId.get(s.id) || {};
            const ended = t.ended !== null && t.ended !== undefined;
            const age = t.created ? (ended ? t.ended : times.now) - t.created : null;
            const idle = s.state === "idle" && t.lastActivity ? times.now - t.lastActivity : null;
            const tr = el("tr", { "data-session": s.id },
                el("td", { class: "num" }, el("a", { href: `session.html?id=${s.id}` }, s.id)),
                el("td", {}, text(s.name)),
                el("td", { "data-field": "state" }, stateBadge(s.state)),
                el("td", {}, text(s.kind)),
                el("td", {}, text(s.owner)),
                el("td", {}, text(s.proxyUser)),
                el("td", {}, text(s.appId)),
                el("td", { class: "num" }, duration(age)),
                el("td", { class: "num" }, idle === null ? "—" : duration(idle)));
            rows.push(tr);
        }
        if (!rows.length)
            rows.push(el("tr", {}, el("td", { colspan: 9, class: "muted" },
                page.sessions.length ? "No session on this page matches the filters." : "No sessions.")));
        body.replaceChildren(...rows);
        total = page.total;
        const shown = page.sessions.length;
        document.getElementById("page-info").textContent =
            total ? `${from + 1}–${from + shown} of ${total}` : "0 of 0";
        document.getElementById("sessions-caption").textContent =
            `Sessions ${total ? from + 1 : 0} to ${from + shown} of ${total}, updated every 2 seconds`;
        document.getElementById("prev").disabled = from === 0;
        document.getElementById("next").disabled = from + PAGE >= total;
    }

    async function refresh() {
        const q = `from=${from}&size=${PAGE}`;
        last = await Promise.all([call("GET", `/sessions?${q}`), call("GET", `/ui/api/sessions?${q}`)]);
        render();
    }

    document.getElementById("prev").addEventListener("click", () => { from = Math.max(0, from - PAGE); refresh(); });
    document.getElementById("next").addEventListener("click", () => { if (from + PAGE < total) { from += PAGE; refresh(); } });
    stateSel.addEventListener("change", render);
    ownerIn.addEventListener("input", render);
    document.getElementById("filters").addEventListener("submit", e => e.preventDefault());
    poll(refresh);
})();
