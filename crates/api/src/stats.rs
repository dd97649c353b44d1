//! `GET /containers/{id}/stats`: the engine's cgroup statistics (what
//! `berth stats` prints) in Docker's JSON (`cpu_stats`, `precpu_stats`,
//! `memory_stats`, `blkio_stats`, `pids_stats`, `networks`, `read`,
//! `preread`): one document (`stream=false`; with `one-shot=true`
//! without the previous sample) or one a second until the container stops
//! or the client goes.

use std::sync::Arc;
use std::time::Duration;

use berth_engine::{db::Status, ops, Engine};
use bytes::Bytes;
use hyper::{Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::berth::Ctx;
use crate::containers::find;
use crate::reply::{self, ApiError, Body};
use crate::routes::Req;

/// What one sample holds (the cgroup's and the host's counters).
#[derive(Clone)]
struct Sample {
    read: String,
    cpu: Value,
    memory: Value,
    blkio: Value,
    pids: Value,
    networks: Value,
}

/// Nanoseconds of CPU time the host spent (all CPUs), from /proc/stat,
/// as Docker's `system_cpu_usage`; and the CPUs online.
fn system_cpu() -> (u64, usize) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut total = 0u64;
    let mut cpus = 0usize;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("cpu ") {
            // USER_HZ ticks; Linux reports them at 100 per second.
            total = rest
                .split_whitespace()
                .take(8)
                .filter_map(|x| x.parse::<u64>().ok())
                .sum::<u64>()
                * 10_000_000;
        } else if l.starts_with("cpu") {
            cpus += 1;
        }
    }
    (total, cpus.max(1))
}

/// The host's memory (Docker reports it as the limit of an unlimited
/// container).
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Docker's `networks`: the container's interfaces but `lo`.
fn networks(pid: Option<i32>) -> Value {
    let Some(pid) = pid else {
        return Value::Null;
    };
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let mut m = Map::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let g = |i: usize| f.get(i).copied().unwrap_or(0);
        m.insert(
            name.to_string(),
            json!({
                "rx_bytes": g(0), "rx_packets": g(1), "rx_errors": g(2), "rx_dropped": g(3),
                "tx_bytes": g(8), "tx_packets": g(9), "tx_errors": g(10), "tx_dropped": g(11),
            }),
        );
    }
    if m.is_empty() {
        // dockerd leaves `networks` out without an interface (--network none).
        return Value::Null;
    }
    Value::Object(m)
}

fn blkio_entries(v: &Value) -> Value {
    let list: Vec<Value> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            json!({
                "major": e["major"].as_u64().unwrap_or(0),
                "minor": e["minor"].as_u64().unwrap_or(0),
                "op": e["op"].as_str().unwrap_or_default(),
                "value": e["value"].as_u64().unwrap_or(0),
            })
        })
        .collect();
    if list.is_empty() {
        Value::Null
    } else {
        Value::Array(list)
    }
}

/// One sample of a running container (`None` once it stopped).
fn sample(e: &Engine, id: &str) -> Option<Sample> {
    let (row, s) = ops::stats(e, id).ok()?;
    let s = serde_json::to_value(&s).ok()?;
    let (system, online) = system_cpu();
    let u = &s["cpu"]["usage"];
    let t = &s["cpu"]["throttling"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let percpu = u["percpu"].as_array().cloned().unwrap_or_default();
    let cpu = json!({
        "cpu_usage": {
            "total_usage": n(&u["total"]),
            "percpu_usage": if percpu.is_empty() { Value::Null } else { Value::Array(percpu) },
            "usage_in_kernelmode": n(&u["kernel"]),
            "usage_in_usermode": n(&u["user"]),
        },
        "system_cpu_usage": system,
        "online_cpus": online,
        "throttling_data": {
            "periods": n(&t["periods"]),
            "throttled_periods": n(&t["throttledPeriods"]),
            "throttled_time": n(&t["throttledTime"]),
        },
    });
    let m = &s["memory"];
    let limit = n(&m["usage"]["limit"]);
    let host = host_memory();
    // As dockerd: no limit (or one above the host's memory) reads as the
    // host's memory.
    let limit = if limit == 0 || (host > 0 && limit > host) {
        host
    } else {
        limit
    };
    let mut memory = json!({
        "usage": n(&m["usage"]["usage"]),
        "max_usage": n(&m["usage"]["max"]),
        "stats": m["raw"].as_object().cloned().unwrap_or_default(),
        "limit": limit,
    });
    // dockerd leaves a zero failcnt out.
    if n(&m["usage"]["failcnt"]) > 0 {
        memory["failcnt"] = m["usage"]["failcnt"].clone();
    }
    let blkio = json!({
        "io_service_bytes_recursive": blkio_entries(&s["blkio"]["ioServiceBytesRecursive"]),
        "io_serviced_recursive": blkio_entries(&s["blkio"]["ioServicedRecursive"]),
        "io_queue_recursive": null,
        "io_service_time_recursive": null,
        "io_wait_time_recursive": null,
        "io_merged_recursive": null,
        "io_time_recursive": null,
        "sectors_recursive": null,
    });
    let mut pids = json!({"current": n(&s["pids"]["current"])});
    if n(&s["pids"]["limit"]) > 0 {
        pids["limit"] = s["pids"]["limit"].clone();
    }
    Some(Sample {
        read: berth_engine::rfc3339_ms(berth_engine::now_ms()),
        cpu,
        memory,
        blkio,
        pids,
        networks: networks(row.pid),
    })
}

/// Docker's zero time (a `preread` without a previous sample).
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The zeroed CPU stats of "no previous sample".
fn no_cpu() -> Value {
    json!({
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

fn doc(id: &str, name: &str, cur: Option<&Sample>, prev: Option<&Sample>) -> Value {
    let (read, preread) = (
        cur.map_or(ZERO_TIME.to_string(), |c| c.read.clone()),
        prev.map_or(ZERO_TIME.to_string(), |p| p.read.clone()),
    );
    let mut v = json!({
        "read": read,
        "preread": preread,
        "pids_stats": cur.map_or(json!({}), |c| c.pids.clone()),
        "blkio_stats": cur.map_or(json!({
            "io_service_bytes_recursive": null, "io_serviced_recursive": null,
            "io_queue_recursive": null, "io_service_time_recursive": null,
            "io_wait_time_recursive": null, "io_merged_recursive": null,
            "io_time_recursive": null, "sectors_recursive": null,
        }), |c| c.blkio.clone()),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cur.map_or_else(no_cpu, |c| c.cpu.clone()),
        "precpu_stats": prev.map_or_else(no_cpu, |p| p.cpu.clone()),
        "memory_stats": cur.map_or(json!({}), |c| c.memory.clone()),
        "name": format!("/{name}"),
        "id": id,
    });
    if let Some(n) = cur.map(|c| &c.networks).filter(|n| !n.is_null()) {
        v["networks"] = n.clone();
    }
    v
}

async fn take(ctx: &Ctx, id: &str) -> Result<Option<Sample>, ApiError> {
    let id = id.to_string();
    ctx.read(move |e| Ok(sample(e, &id))).await
}

/// `GET /containers/{id}/stats?stream=&one-shot=`.
pub async fn stats(ctx: &Arc<Ctx>, r: &Req, id: &str) -> Result<Response<Body>, ApiError> {
    let stream = match r.q("stream") {
        None | Some("") => true,
        Some(_) => r.flag("stream"),
    };
    let one_shot = r.flag("one-shot");
    if one_shot && stream {
        return Err(ApiError::bad("cannot have stream=true and one-shot=true"));
    }
    let row = find(ctx, id).await?;
    let (cid, name) = (row.id.clone(), row.name.clone());
    if !stream {
        // Docker's stream=false waits for a second sample, so the client
        // can compute the CPU use from precpu_stats.
        let first = if row.status == Status::Running {
            take(ctx, &cid).await?
        } else {
            None
        };
        let v = match (first, one_shot) {
            (Some(f), true) => doc(&cid, &name, Some(&f), None),
            (Some(f), false) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let cur = take(ctx, &cid).await?;
                match cur {
                    Some(c) => doc(&cid, &name, Some(&c), Some(&f)),
                    None => doc(&cid, &name, None, None),
                }
            }
            (None, _) => doc(&cid, &name, None, None),
        };
        return Ok(reply::json(StatusCode::OK, &v));
    }
    let (resp, tx) = reply::stream("application/json");
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let mut prev: Option<Sample> = None;
        loop {
            let cur: Option<Sample> = take(&ctx, &cid).await.unwrap_or_default();
            let line = format!("{}\n", doc(&cid, &name, cur.as_ref(), prev.as_ref()));
            // The client went: stop sampling.
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
            // A stopped container: one zeroed document, as dockerd sends,
            // then the end of the stream.
            let Some(c) = cur else { return };
            prev = Some(c);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(resp)
}
