"""`edge fleet report`: what the collected events say, per station per day (each station's own
day), each station's backlog as its latest health gave it, and the codes refused at more than one
station."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from .database import EventDatabase
from .views import code_tail, reason_text, station_time


def daily(db: EventDatabase, since_day: str | None = None) -> list[dict[str, Any]]:
    """Per station per day: fills (the valve opened), kg filled, overfills, trips, aborts, and the
    refused scans by reason."""
    where, params = (" AND day >= ?", (since_day,)) if since_day else ("", ())
    rows = db.query(f"SELECT station, day, type, payload FROM events WHERE type IN ('fill', 'scan'){where}", params)
    days: dict[tuple[str, str], dict[str, Any]] = {}
    for station, day, kind, raw in rows:
        entry = days.setdefault((station, day), {"station": station, "day": day, "fills": 0, "kg": 0.0, "overfills": 0,
                                                "trips": 0, "aborts": 0, "refusals": Counter()})
        event = json.loads(raw)
        if kind == "scan":
            for reason in event.get("reasons") or ["(none given)"]:
                entry["refusals"][reason] += 1
            continue
        if event.get("valve_opened"):
            entry["fills"] += 1
            entry["kg"] += event.get("net_kg") or 0.0
        entry["overfills"] += bool(event.get("overfilled"))
        entry["trips"] += bool(event.get("tripped"))
        entry["aborts"] += event.get("status") == "aborted"
    result = []
    for key in sorted(days, key=lambda k: (k[1], k[0])):
        entry = days[key]
        result.append({**entry, "kg": round(entry["kg"], 2), "refusals": dict(entry["refusals"].most_common())})
    return result


def heads(db: EventDatabase, station: str, since_day: str | None = None) -> list[dict[str, Any]]:
    """The chain heads a station sent (each verify's proven head), oldest first: the witness file
    `edge verify --witness` reads, so the station's history is compared with what the company holds."""
    where, params = (" AND day >= ?", (station, since_day)) if since_day else ("", (station,))
    rows = db.query(f"SELECT day, ts, payload FROM events WHERE type = 'chain_head' AND station = ?{where}", params)
    found = [{"station": station, "day": day, "ts": ts, "entry": json.loads(raw)["entry"], "hash": json.loads(raw)["hash"]}
             for day, ts, raw in rows]
    return sorted(found, key=lambda head: head["entry"])


def backlogs(db: EventDatabase) -> list[dict[str, Any]]:
    """Each station's backlog as its latest health reported it: events owed to the company, city
    uploads waiting, and uploads the city refused for good (dead letters)."""
    result = []
    for row in db.stations():
        health = row["health"]
        result.append({
            "station": row["station"],
            "online": row["online"],
            "as_of": health.get("ts"),
            "tz": health.get("tz"),
            "fleet_pending": (health.get("outbox") or {}).get("pending"),
            "uploads_pending": (health.get("uploads") or {}).get("pending"),
            "dead_letters": (health.get("uploads") or {}).get("dead"),
        })
    return result


def refused_at_several_stations(db: EventDatabase) -> list[dict[str, Any]]:
    """Cylinders, or codes no station could resolve to a cylinder, refused at more than one
    station: someone is trying them around the company. An unknown code is the more suspicious
    case, so it is matched on the code itself."""
    rows = db.query("SELECT station, cylinder_id, payload, ts FROM events WHERE type = 'scan'")
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for station, cylinder, raw, ts in rows:
        code = json.loads(raw).get("code") or ""
        key = ("cylinder", cylinder) if cylinder else ("code", code)
        if not key[1]:
            continue
        entry = found.setdefault(key, {"cylinder_id": cylinder, "code": None if cylinder else code,
                                       "stations": defaultdict(int), "last": ts, "last_station": station})
        entry["stations"][station] += 1
        if _instant(ts) >= _instant(entry["last"]):
            entry["last"], entry["last_station"] = ts, station
    several = [{**e, "stations": dict(sorted(e["stations"].items()))} for e in found.values() if len(e["stations"]) > 1]
    return sorted(several, key=lambda e: (e["cylinder_id"] is not None, e["cylinder_id"] or e["code"]))


def render(report: dict[str, Any], table: Any) -> str:
    """The report for a person: `table` is the CLI's column formatter."""
    zones = {b["station"]: b["tz"] for b in report["backlogs"]}
    days = [{**d, "refusals": "; ".join(f"{reason_text(r)} {n}" for r, n in d["refusals"].items()) or "-"}
            for d in report["days"]]
    backlog = [{**b, "as_of": station_time(b["as_of"], b["tz"]), "online": "online" if b["online"] else "OFFLINE"}
               for b in report["backlogs"]]
    several = [{"what": e["cylinder_id"] or f"code {code_tail(e['code'])} (no station knows it)",
                "stations": ", ".join(f"{s} ({n})" for s, n in e["stations"].items()),
                "last": f"{station_time(e['last'], zones.get(e['last_station']))} at {e['last_station']}"}
               for e in report["refused_at_several_stations"]]
    return "\n".join([
        "per station per day (each station's own day)",
        table(days, ["day", "station", "fills", "kg", "overfills", "trips", "aborts", "refusals"]),
        "",
        "backlog per station (from its latest health)",
        table(backlog, ["station", "online", "as_of", "fleet_pending", "uploads_pending", "dead_letters"],
              headers={"as_of": "as of (station time)", "fleet_pending": "events owed", "uploads_pending": "city uploads",
                       "dead_letters": "dead letters"}),
        "",
        "refused at more than one station",
        table(several, ["what", "stations", "last"]),
        "",
        f"quarantined messages: {report['quarantined']}" + (" (see the quarantine table)" if report["quarantined"] else ""),
    ])


def _instant(ts: str) -> datetime:
    return datetime.fromisoformat(ts)
