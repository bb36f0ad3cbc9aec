"""The soak's report: one self-contained HTML page (plots inline, PNG) and a JSON of the figures."""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from soak.observe import Record

RATE_BIN = 5.0  # seconds per point of the delivered-rate line

FAULT_COLOURS = {
    "redis": "#d62728",
    "prometheus": "#9467bd",
    "haproxy": "#ff7f0e",
    "worker-primary": "#8c564b",
    "watcher": "#2ca02c",
    "frontend-2": "#17becf",
}


def minutes(t: float, record: Record) -> float:
    return (t - record.started) / 60


def plots(record: Record, figures: dict[str, Any], delivered_times: list[float]) -> Figure:
    fig, axes = plt.subplots(5, 1, figsize=(13, 17), sharex=True, constrained_layout=True)
    load, weights, rss, fds, loss = axes

    asked_t = [minutes(t, record) for t, _ in record.asked]
    load.step(
        [0.0, *asked_t],
        [0.0, *(r for _, r in record.asked)],
        where="post",
        label="asked (slider)",
        color="black",
    )
    load.plot(
        [minutes(t, record) for t, _, _ in record.stats],
        [a for _, _, a in record.stats],
        label="achieved (frontends)",
        alpha=0.7,
    )
    # Over 5 s: one second holds 2 or 4 hashes at 3 req/s, which would draw a band.
    per_bin: dict[int, int] = defaultdict(int)
    for p in delivered_times:
        per_bin[int(p // RATE_BIN)] += 1
    bins_ = sorted(per_bin)
    load.plot(
        [minutes(b * RATE_BIN, record) for b in bins_],
        [per_bin[b] / RATE_BIN for b in bins_],
        label="hashes/s reaching the observer page (5 s)",
        alpha=0.7,
        linewidth=0.8,
    )
    load.set_ylabel("req/s")
    load.set_title("Load asked for and achieved")
    load.legend(loc="upper right")

    weights.plot(
        [minutes(t, record) for t, s in record.status],
        [s["weights"]["burst"] for _, s in record.status],
        label="burst weight (watcher)",
        drawstyle="steps-post",
    )
    proxy = [(t, w) for t, w in record.proxy_weights if w is not None]
    weights.plot(
        [minutes(t, record) for t, _ in proxy],
        [w for _, w in proxy],
        label="burst weight (HAProxy)",
        drawstyle="steps-post",
        linestyle="--",
    )
    seen: set[str] = set()
    for fault in figures["faults"]:
        start = fault["at"] / 60
        label = None if fault["kind"] in seen else fault["kind"]
        seen.add(fault["kind"])
        for ax in (weights, loss):
            ax.axvspan(
                start,
                start + max(fault["lasted"], 1) / 60,
                alpha=0.25,
                color=FAULT_COLOURS.get(fault["target"], "grey"),
                label=label if ax is weights else None,
            )
    weights.set_ylabel("% to burst")
    weights.set_title("Weights, fault windows shaded")
    weights.legend(loc="upper right", fontsize="small", ncol=3)

    by_name: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for t, name, _pid, rss_mb, _cpu, open_fds in record.procs:
        by_name[name].append((minutes(t, record), rss_mb, open_fds))
    for name, samples in sorted(by_name.items()):
        rss.plot([s[0] for s in samples], [s[1] for s in samples], label=name, linewidth=1)
        fds.plot([s[0] for s in samples], [s[2] for s in samples], label=name, linewidth=1)
    rss.set_ylabel("RSS MB")
    rss.set_title("Memory per process")
    rss.legend(loc="upper right", fontsize="small", ncol=3)
    fds.set_ylabel("open fds")
    fds.set_title("Open file descriptors per process")
    fds.legend(loc="upper right", fontsize="small", ncol=3)

    bins = figures["hashes"]["bins"]
    centres = [b["t"] / 60 for b in bins]
    width = 8 / 60
    loss.bar(
        centres,
        [b["inside"] for b in bins],
        width=width,
        color="grey",
        label="lost inside outage windows",
    )
    loss.bar(
        centres,
        [b["lost"] for b in bins],
        width=width,
        color="red",
        bottom=[b["inside"] for b in bins],
        label="lost outside (must be 0)",
    )
    if not any(b["inside"] or b["lost"] for b in bins):
        loss.text(0.5, 0.5, "no hash lost", transform=loss.transAxes, ha="center", fontsize=14)
    loss.set_ylabel("hashes lost / 10 s")
    loss.set_title("Hash loss per window (observer page against the channel)")
    loss.set_xlabel("minutes since the start")
    loss.legend(loc="upper right")
    return fig


def png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "-"
    return str(value)


def write(out_dir: Path, figures: dict[str, Any], picture: bytes) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "soak.png").write_bytes(picture)
    import orjson

    (out_dir / "soak.json").write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
    verdict = figures["verdict"]
    summary = table(
        [
            {"check": k, "result": v["value"], "limit": v["limit"], "pass": v["ok"]}
            for k, v in verdict["checks"].items()
        ],
        ["check", "result", "limit", "pass"],
    )
    faults = table(
        figures["faults"],
        [
            "at",
            "kind",
            "target",
            "lasted",
            "first_hash",
            "frequency_back",
            "watcher_ready",
            "worst",
            "lost_inside",
            "watcher_unready_because",
        ],
    )
    procs = table(
        [{"process": k, **v} for k, v in figures["processes"].items()],
        [
            "process",
            "incarnations",
            "rss_mb_last",
            "rss_mb_peaks",
            "rss_slope_mb_per_hour",
            "slope_span_s",
            "judged",
            "cpu_percent",
            "fds_last",
            "fds_max",
        ],
    )
    changes = table(
        figures["watcher"]["changes"], ["t", "to", "decision", "reason", "explained_by"]
    )
    log_rows = [
        {"log": name, "count": n, "kind": kind}
        for name, kinds in figures["logs"].items()
        for kind, n in kinds.items()
    ]
    logs = table(log_rows, ["log", "count", "kind"])
    hashes = {k: v for k, v in figures["hashes"].items() if k != "bins"}
    image = base64.b64encode(picture).decode()
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>istio-burst soak</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:2px 8px;
font-size:13px;text-align:left}}.pass{{color:green}}.fail{{color:#c00}}</style></head><body>
<h1>Soak test: <span class="{"pass" if verdict["ok"] else "fail"}">{
        "passed" if verdict["ok"] else "FAILED"
    }</span></h1>
<p>{html.escape(figures["run"]["description"])}</p>
{summary}
<h2>Hashes</h2><p>{html.escape(", ".join(f"{k}: {v}" for k, v in hashes.items()))}</p>
<img style="width:100%" src="data:image/png;base64,{image}" alt="plots">
<h2>Faults and recovery (seconds after each fault's end)</h2>{faults}
<h2>Processes</h2>{procs}
<h2>The watcher's changes</h2><p>missed bursts: {figures["watcher"]["missed_bursts"]};
burst delays (s): {figures["watcher"]["burst_delays"]}</p>{changes}
<h2>Warnings and errors in the logs, by kind</h2>{logs}
</body></html>"""
    path = out_dir / "soak.html"
    path.write_text(page)
    plt.close("all")
    return path
