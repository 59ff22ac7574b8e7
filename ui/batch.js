/* One batch: its details and its log, followed; delete goes through the API. */
"use strict";
(() => {
    const { call, el, stateBadge, text, poll, param, logFollower, status } = LivyUI;
    const id = param("id");
    if (id === null || !/^\d+$/.test(id)) { status("No batch id in the address (batch.html?id=N)."); return; }
    document.title = `Batch ${id} · mod_livy`;
    const title = document.getElementById("title");
    let gone = false;
    title.textContent = `Batch ${id}`;

    async function refresh() {
        if (gone) return false;
        let b;
        try { b = await call("GET", `/batches/${id}`); }
        catch (e) {
            if (e.status === 404) {
                gone = true;
                status(`Batch ${id} is gone (deleted, or past its retain period).`);
                document.getElementById("delete").disabled = true;
                return false;
            }
            throw e;
        }
        title.replaceChildren(`Batch ${b.id}${b.name ? " (" + b.name + ")" : ""} `, stateBadge(b.state, "batch"));
        const out = [];
        for (const [k, v] of [["State", stateBadge(b.state, "batch")], ["Owner", b.owner], ["Proxy user", b.proxyUser], ["App id", b.appId]]) {
            out.push(el("dt", {}, k));
            out.push(el("dd", {}, v instanceof Node ? v : text(v)));
        }
        document.getElementById("settings").replaceChildren(...out);
    }

    const logPre = document.getElementById("log");
    const followLog = logFollower(`/batches/${id}/log`, logPre);
    document.getElementById("delete").addEventListener("click", async e => {
        const button = e.currentTarget; /* null once an await has passed */
        if (!confirm(`Delete batch ${id}? Its application is killed if it still runs.`)) return;
        button.disabled = true;
        try { await call("DELETE", `/batches/${id}`); status(`Batch ${id} deleted.`); }
        catch (err) { status(err.message); button.disabled = false; }
    });
    poll(refresh);
    poll(async () => {
        if (gone) return false;
        try { await followLog(); }
        catch (e) {
            if (e.status === 404) return false; /* gone: the other poll says so */
            if (e.status === 403) { logPre.textContent = e.message; return false; } /* no view access */
            throw e;
        }
    });
})();
